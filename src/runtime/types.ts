/**
 * The composition root's options and result (see `index.ts` for the module overview).
 */
import type { Registry } from 'prom-client';
import type {
  CredentialProblem,
  DockerConfig,
  KubeObject,
  PodCredentialContext,
  PodCredentials,
  SpawnPlugin,
  ServiceAccountInfo,
  TokenSource,
} from '../credentials/index.js';
import type { NodeConfig } from '../config/index.js';
import type {
  Clock,
  EventRecorder,
  FsUsageSource,
  ImageGCEventRecorder,
  ImageGCManager,
  ImageGCPolicy,
  ImageManager,
  ImageService,
  ImageSpec,
  LocalImageService,
  PullBackoff,
  PullRecordsVerifier,
  ReconcileReport,
} from '../manager/index.js';
import type { RegistryClient, RegistryClientOptions } from '../registry/index.js';
import type { ImagePullEvent, ImagePullResult, PullProgressHub } from '../pull/index.js';
import type { Store } from '../store/index.js';
import type { ContainerdImageService } from '../containerd/index.js';

/**
 * Where images are pulled to and listed from: the ONE setting that picks the image service backend.
 *
 * - `local`: kimg's own store (`LocalImageService`): per-layer progress, store sweep after image GC.
 * - `cri`: a CRI runtime's ImageService at `endpoint` (`unix:///run/containerd/containerd.sock`, or a
 *   `kimg serve` socket); the runtime applies its own platform and registry configuration. kimg's root
 *   still keeps the back-off, pull records and image GC state.
 *
 * A new backend is one more case here and one more branch in `openImageBackend`.
 */
export type ImageServiceBackend =
  | {
      kind: 'local';
      /** Platform to pull (`os/arch[/variant]`); default the host. */
      platform?: string;
      /** Blobs downloaded at once per pull; default 3. */
      concurrency?: number;
    }
  | {
      kind: 'cri';
      /** The runtime's socket. */
      endpoint: string;
      /** Per-call deadline; default the CRI client's. */
      timeoutMs?: number;
    }
  | {
      /**
       * containerd's own store: kimg's pipeline fetches, containerd stores, unpacks and runs
       * (src/containerd, docs/design/containerd-backend.md).
       */
      kind: 'containerd';
      /** containerd's socket as `ctr --address` takes it, or a `unix://` URL. */
      address: string;
      /** Default `k8s.io` (containerd's CRI plugin's namespace). */
      namespace?: string;
      /** Default `overlayfs`. */
      snapshotter?: string;
      /** Platform to pull; default the host. */
      platform?: string;
      /** Blobs downloaded at once per pull; default 3. */
      concurrency?: number;
      /**
       * false: every blob byte through containerd's content Write protocol, even when kimg can write
       * containerd's content directory (default true; src/containerd `direct-content.ts`).
       */
      directWrite?: boolean;
      /**
       * false: every layer through containerd's Diff.Apply, even when kimg can extract it into the
       * overlayfs snapshotter itself (default true; src/containerd `local-apply.ts`).
       */
      localApply?: boolean;
    };

/** The kind names of {@link ImageServiceBackend}. */
export type ImageServiceBackendKind = ImageServiceBackend['kind'];

/** Credential sources of the runtime; `false` in {@link NodeRuntimeOverrides.credentials} = none. */
export interface RuntimeCredentialOptions {
  /** The node-wide docker config: `false` = not searched; default searched from `/var/lib/kubelet`. */
  nodeDockerConfig?: false | { rootDir?: string };
  /** Docker config files given on the command line: they join the node group. */
  dockerConfigs?: readonly DockerConfig[];
  /** Kubernetes objects holding pull Secrets and ServiceAccounts (replaceable later). */
  objects?: readonly KubeObject[];
  /** Where the objects come from, for messages. Default `the manifests`. */
  objectsOrigin?: string;
  /** Runs the configured exec plugins (to time them); default `spawnPlugin`. */
  spawnPlugin?: SpawnPlugin;
  /**
   * Service-account tokens for plugins with `tokenAttributes` (KEP-4412): projected token files
   * (`ProjectedTokenFileSource`) or, in cluster mode, the TokenRequest API. Default: the configuration's
   * `kimg.serviceAccountTokenDir` (projected token files); `null`: none even when the configuration
   * names one. None: such plugins are skipped and say why.
   */
  tokenSource?: TokenSource | null;
  /**
   * Looks up a pod's ServiceAccount for those plugins (cluster mode: the API server's); default the
   * ServiceAccounts among `objects`.
   */
  getServiceAccount?: (namespace: string, name: string, podUid: string) => Promise<ServiceAccountInfo>;
  /** A source gave nothing for a pod's lookup (missing Secret, plugin failure, invalid node file). */
  onProblem?: (problem: CredentialProblem, pod: PodCredentialContext) => void;
}

/** Image GC settings beyond the configuration's. */
export interface RuntimeGCOptions {
  /** Default: the configuration's thresholds and ages (`imageGCPolicyFromConfig`). */
  policy?: ImageGCPolicy;
  /** Image filesystem usage; default `statfs` of the store root (of the runtime's mount for `cri`). */
  usage?: FsUsageSource;
  /** The Node events are about. Default `localhost`. */
  nodeName?: string;
  /** Images never removed, besides the default sandbox image and the configuration's `pinnedImages`. */
  pinnedImages?: readonly string[];
  recorder?: ImageGCEventRecorder;
  /** Registers image GC counters here. */
  metricsRegistry?: Registry;
}

/** Pieces a face or a test injects instead of the defaults. All optional. */
export interface NodeRuntimeOverrides {
  /** Environment (store root resolution, node docker config search, plugins). Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The image service backend. Default `{ kind: 'local' }`. */
  imageService?: ImageServiceBackend;
  /** Store root; default the configuration's `rootDir`, else the store's own resolution. */
  root?: string;
  /** An already open store to use instead (the runtime does not close it). */
  store?: Store;
  /** Registry client settings; the configuration's `hostsDir` is added unless given. */
  registry?: RegistryClientOptions;
  /** A registry client to use instead (the runtime does not close it). */
  registryClient?: RegistryClient;
  /** Registry for names without one; default the configuration's. */
  defaultRegistry?: string;
  /** Credential sources; `false` = none (pulls are anonymous unless the caller passes auth). */
  credentials?: false | RuntimeCredentialOptions;
  /**
   * `reconcile` (default): pull intents left by a killed process are turned into records at open, as
   * the kubelet does at start-up. `read-only`: nothing is written at open (`kimg explain`, `kimg gc`).
   */
  verification?: 'reconcile' | 'read-only';
  /** Verifier notices and backend warnings (never credentials). */
  onNotice?: (message: string) => void;
  /** Default the system clock (manager, back-off, verifier, image GC). */
  clock?: Clock;
  /** The image manager's event recorder. Default: events are only returned in results. */
  recorder?: EventRecorder;
  /** Wraps every image service the runtime builds (metrics of pulls in progress). */
  wrapImageService?: (service: ImageService) => ImageService;
  /** `local` and `containerd` backends: progress of every pull. Must not throw. */
  onProgress?: (spec: ImageSpec, event: ImagePullEvent) => void;
  /** The hub in-flight pulls report to; default a new one ({@link NodeRuntime.progress}). */
  progress?: PullProgressHub;
  /**
   * `local` and `containerd` backends (kimg's pipeline runs the pull): after each successful pull, with
   * the record it committed (or found complete) and its statistics. Must not throw.
   */
  onPulled?: (spec: ImageSpec, result: ImagePullResult) => void;
  /** Image GC settings. */
  gc?: RuntimeGCOptions;
}

/**
 * A node's image runtime: every piece the faces need, built once from the configuration. Close it
 * when done: it closes what it opened, in reverse order.
 */
export interface NodeRuntime {
  readonly config: NodeConfig;
  /** The backend in use (with the defaults applied). */
  readonly backend: ImageServiceBackend;
  /** kimg's store: images for `local`; back-off, pull records and GC state for every backend. */
  readonly store: Store;
  readonly registry: RegistryClient;
  /** The image service (wrapped by `wrapImageService` when given). */
  readonly imageService: ImageService;
  /** The store-backed service, for the `local` backend only. */
  readonly local: LocalImageService | undefined;
  /** The service over containerd's store, for the `containerd` backend only (in-use images for GC). */
  readonly containerd: ContainerdImageService | undefined;
  /**
   * Per-layer progress of every in-flight pull of every image service the runtime built (layers for
   * `local` and `containerd`; image lines only for `cri`, whose PullImage reports none).
   */
  readonly progress: PullProgressHub;
  /** The credential sources and the per-pod lookup. Empty sources with `credentials: false`. */
  readonly credentials: PodCredentials;
  /** Credential verification of present images (pull records under the store root). */
  readonly verifier: PullRecordsVerifier;
  /** What reconciliation did at open (empty when `read-only`). */
  readonly reconcileReport: ReconcileReport;
  /** The persisted image back-off (`<root>/manager/backoff.json`), shared by every manager. */
  readonly backoff: PullBackoff;
  /** The image manager for the configured platform. */
  readonly manager: ImageManager;
  /** Image GC over the image service. */
  readonly gc: ImageGCManager;
  /** The image GC policy in use. */
  readonly gcPolicy: ImageGCPolicy;
  /** The image filesystem usage image GC reads (`gc.usage`, or the backend's filesystem). */
  readonly usage: FsUsageSource;
  /**
   * The images the backend's containers use, asked afresh on each call: for `containerd`, every
   * container of its namespace (the CRI plugin's image id, else the container's image name); for
   * `cri`, every container the runtime on the configuration's `containerRuntimeEndpoint` lists (CRI
   * ListContainers: the image id, else the image the container names); none for `local`.
   * {@link NodeRuntime.gc} adds them to every run's in-use images itself; a face showing what GC keeps
   * (the agent's store summary) merges them the same way.
   * @throws KimgError `CONTAINERD_UNAVAILABLE` / `CONTAINERD_ERROR`; `RUNTIME_UNAVAILABLE` /
   *   `RUNTIME_ERROR` / `INVALID_ARGUMENT` (a `cri` runtime endpoint that is not a unix socket).
   */
  containersInUse(): Promise<string[]>;
  /**
   * A manager for another platform (pre-pull entries with `platform`), sharing credentials, verifier
   * and back-off; `undefined` = {@link NodeRuntime.manager}. A `cri` backend pulls for its own
   * platform: the platform is ignored (with a notice).
   */
  managerFor(platform: string | undefined): ImageManager;
  /** Marks an image used now (image GC reads it); false when unknown or the backend tracks its own. */
  markUsed(spec: ImageSpec, when?: Date): Promise<boolean>;
  /** Closes what the runtime opened, in reverse order. Idempotent. */
  close(): Promise<void>;
}
