/**
 * The node agent (`kimg node`): the kubelet's image side for static pods. It watches `staticPodPath`,
 * and for every pod runs the image manager (pull policy, credentials, verification of present images,
 * back-off, events) over kimg's store, keeps each container's image state as the kubelet shows it,
 * runs image GC on its period with the pods' images in use, serves the CRI ImageService on its socket
 * and an HTTP endpoint (metrics, health, status page, JSON API, server-sent events).
 *
 * Static pods (kubelet `pkg/kubelet/config/common.go`): the namespace defaults to `default`; the name
 * becomes `<name>-<nodeName>`; the UID, when the manifest has none, is a hash of the manifest, the
 * file and the node name — so an edited manifest is a new pod (fresh back-off, the old pod's back-off
 * entries are dropped). Static pods cannot reference API objects, so their pull Secrets and
 * ServiceAccounts come from a directory of Kubernetes YAML (`secretsDir`), re-read at every sync.
 * An edited manifest is decoded and defaulted afresh, as the kubelet's file source does: changing
 * `image: x:1` to `image: x` makes the policy `Always`.
 *
 * Images go to kimg's store (with per-layer progress), or to a CRI runtime (`imageServiceEndpoint`,
 * e.g. containerd). A pre-pull list is pulled after the pods' pulls, through the same manager.
 *
 * A pod whose images are not all ready is synced again every `resyncMs` (the kubelet's pod worker
 * re-queue): the first failure shows `ErrImagePull`, syncs inside the back-off window
 * `ImagePullBackOff`, the next attempt after the window pulls again.
 *
 * The parts (in `internal/`): the services come from the composition root (`services.ts` over
 * `openNodeRuntime`); manifests become pods (`static-pods.ts`), each synced by its worker
 * (`pod-worker.ts`, `pod-sync.ts`); the image manager's events, progress and results reach the pod
 * views through pure reducers (`waiting-reasons.ts`, `pull-progress.ts`, `pod-status.ts`); the
 * pre-pulls (`prepull-runner.ts`), image GC (`image-gc-runner.ts`) and `/api/store`
 * (`store-summary.ts`) sit beside them. This file only wires them and starts the servers.
 *
 * Source: kubernetes `pkg/kubelet/config/{file.go,common.go}`, `pkg/kubelet/pod_workers.go`,
 * `pkg/kubelet/images/image_manager.go`, `pkg/kubelet/images/image_gc_manager.go`.
 */
import { join } from 'node:path';
import { hostname } from 'node:os';
import type { NodeConfig } from '../config/index.js';
import { configVerboseInfo, startCriServer, storeVerboseInfo, type CriServer } from '../cri/index.js';
import { KimgError } from '../errors/index.js';
import { KubeEventRecorder, PodSecretManager, type KubeClient } from '../kube/index.js';
import {
  IMAGE_GC_PERIOD_MS,
  type FsUsageSource,
  type ImageGCResult,
  type ImageManager,
} from '../manager/index.js';
import type { RegistryClientOptions } from '../registry/index.js';
import type { NodeRuntime } from '../runtime/index.js';
import type { PullProgressHub } from '../pull/index.js';
import type { Store } from '../store/index.js';
import { startAgentHttpServer, type AgentHttpServer } from './http.js';
import { Cleanups } from './internal/cleanups.js';
import { ImageGcRunner } from './internal/image-gc-runner.js';
import { jsonLogger, warnOnceLogger } from './internal/log.js';
import {
  API_SERVER_ORIGIN,
  ClusterPodSecrets,
  ClusterPodSource,
  apiAgentPod,
} from './internal/cluster-pods.js';
import { PodImageStatus } from './internal/pod-status.js';
import { ImageVolumes } from './internal/image-volumes.js';
import { podSyncer } from './internal/pod-sync.js';
import { PodWorkers } from './internal/pod-worker.js';
import { PrepullRunner, logPrepullFailure } from './internal/prepull-runner.js';
import { openAgentServices, type AgentServiceHooks, type AgentServices } from './internal/services.js';
import { StaticPodReconciler, toAgentPod, type AgentPod } from './internal/static-pods.js';
import { summarizeStore } from './internal/store-summary.js';
import { NodeMetrics } from './metrics.js';
import { PodStateStore, podStatus } from './pod-state.js';
import type { PrepullImage, PrepullState } from './prepull.js';
import type { AgentLog, AgentLogEntry, StoreSummary } from './types.js';
import { ManifestWatcher } from './watcher.js';

export type { AgentLogEntry, StoreSummary };

/** Options of {@link startNodeAgent}. */
export interface NodeAgentOptions {
  /** The node configuration (`loadNodeConfig`); `kubelet.staticPodPath` must be set. */
  config: NodeConfig;
  /** Directory of Kubernetes YAML/JSON with the pods' pull Secrets and ServiceAccounts. */
  secretsDir?: string;
  /**
   * The HTTP endpoint (`host:port`, port 0 = any): default the config's `listen.metrics`, else
   * `127.0.0.1:10259`; `null` = no HTTP server.
   */
  metricsAddr?: string | null;
  /** The CRI socket: default the config's `listen.cri`; `null` or unset there = no CRI server. */
  criListen?: string | null;
  /** Store root; default the config's `rootDir`, else the store's default resolution. */
  root?: string;
  /**
   * Pull into a CRI runtime (e.g. `unix:///run/containerd/containerd.sock`) instead of kimg's store.
   * kimg's root still keeps the back-off, pull records and GC state; the runtime's own platform and
   * registry configuration apply (no per-layer progress, no store sweep).
   */
  imageServiceEndpoint?: string;
  /**
   * Pull with kimg's pipeline into containerd's own store at this socket (src/containerd); default the
   * configuration's `kimg.containerd`. Ignored when `imageServiceEndpoint` is set.
   */
  containerd?: string;
  /** Registry client settings (plain HTTP hosts, CAs); the config's `hostsDir` is added. */
  registry?: RegistryClientOptions;
  /** Node name (static pod name suffix, GC events). Default the host name, lower-cased. */
  nodeName?: string;
  /** Platform to pull (`os/arch[/variant]`); default the host. */
  platform?: string;
  /** Re-sync period of pods whose images are not all ready. Default 5000 ms. */
  resyncMs?: number;
  /** Periodic rescan of the manifest directory. Default 20 000 ms. */
  rescanMs?: number;
  /** Image GC period. Default 5 min (the kubelet's). */
  gcPeriodMs?: number;
  /** Image filesystem usage for GC (tests); default `statfs` of the store root. */
  usage?: FsUsageSource;
  /**
   * Standalone mode: projected service-account tokens for credential providers with
   * `tokenAttributes`, `<dir>/<namespace>/<serviceaccount>/token`; default the configuration's
   * `kimg.serviceAccountTokenDir`. Refused in cluster mode, whose tokens come from the API server's
   * TokenRequest API (bound to the pod).
   */
  serviceAccountTokenDir?: string;
  /** Read the node-wide docker config (kubelet search path). Default true. */
  nodeDockerConfig?: boolean;
  /** Environment (node docker config search, plugins). Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Log sink; default one JSON object per line on stderr. */
  log?: (entry: AgentLogEntry) => void;
  /**
   * Images to pre-pull after the pods' pulls (lower priority), through the same image manager,
   * credentials and records; kept in use for GC while listed.
   */
  prepull?: readonly PrepullImage[];
  /** Watch `staticPodPath` (default true). False: no static pods (`kimg prepull`). */
  staticPods?: boolean;
  /**
   * Cluster mode: the pods bound to `nodeName` come from the API server (list + watch), their pull
   * Secrets too (watch-based, only those referenced), and Events go to the API server
   * (`events.k8s.io/v1`). Pod status is never written. Static pods then run only when the
   * configuration names a `staticPodPath`.
   */
  cluster?: NodeAgentClusterOptions;
}

/** Cluster mode settings of the agent. */
export interface NodeAgentClusterOptions {
  client: KubeClient;
  /** Re-deliver the cached pods this often (ms); default 0 (the pod workers re-sync pods not ready). */
  resyncMs?: number;
  /** Event series refresh period (ms); default client-go's 6 min. */
  eventsRefreshMs?: number;
  /** First retry delay of the watches after a failure (ms; tests). Default 800. */
  initialBackoffMs?: number;
}

/** A running agent. */
export interface NodeAgent {
  /** `http://host:port` of the HTTP endpoint, when it runs. */
  readonly url: string | undefined;
  /** `unix://…` of the CRI socket, when it runs. */
  readonly criAddress: string | undefined;
  readonly state: PodStateStore;
  readonly metrics: NodeMetrics;
  /** Per-layer progress of every in-flight pull (`/api/pulls/progress`, the status page, metrics). */
  readonly progress: PullProgressHub;
  readonly store: Store;
  readonly manager: ImageManager;
  readonly nodeName: string;
  /** Rescans the manifest directory now and waits for it. */
  rescan(): Promise<void>;
  /** Syncs every idle pod now, waits for syncs in progress (no second one behind them). */
  syncAll(): Promise<void>;
  /** Runs image GC now with the images in use ({@link NodeAgent.inUse}). */
  garbageCollect(): Promise<ImageGCResult>;
  /**
   * The images image GC keeps as in use: the pods' (image ids of ready containers) and the pre-pulls',
   * and over containerd those of its containers, whoever started them (asked now; image ids, or the
   * image name of a container created without containerd's CRI plugin).
   */
  inUse(): Promise<string[]>;
  /** The store summary served on `/api/store`. */
  storeSummary(): Promise<StoreSummary>;
  /** The pre-pulls and their states. */
  prepullState(): PrepullState[];
  /** Settles when every pre-pull has been tried once. */
  readonly prepullDone: Promise<void>;
  /** Cluster mode: the API client (its request counts) and a way to wait for Events in flight. */
  readonly kube?: { client: KubeClient; flushEvents(): Promise<void>; watchedObjects(): string[] };
  /** Stops everything (syncs are cancelled, servers closed, the store closed). Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_METRICS_ADDR = '127.0.0.1:10259';
/** The pod worker's re-queue period for a pod whose images are not all ready. */
const DEFAULT_RESYNC_MS = 5000;
/** Watched instead of `staticPodPath` when static pods are off: no manifests, ever. */
const NO_STATIC_PODS = '/nonexistent-kimg-static-pods';

/** What every part of a starting agent shares. */
interface AgentCore {
  options: NodeAgentOptions;
  nodeName: string;
  log: AgentLog;
  warnOnce: (message: string, fields?: Record<string, unknown>) => void;
  metrics: NodeMetrics;
  state: PodStateStore;
  status: PodImageStatus;
  cleanups: Cleanups;
  /** Cluster mode: Events to the API server. */
  events?: KubeEventRecorder;
  /** Cluster mode: the node's pods from the API server. */
  clusterSource?: ClusterPodSource;
  /**
   * Cluster mode: the watch-based cache of the pods' Secrets and ServiceAccounts (built before the
   * services: token-mode credential providers look ServiceAccounts up in it).
   */
  secretManager?: PodSecretManager;
}

/**
 * Starts the node agent (see the module comment) and resolves once the first scan of the manifests
 * has started every pod's sync and the servers listen.
 *
 * @throws KimgError `CONFIG_INVALID` (no `staticPodPath`, invalid puller or GC settings),
 *   `FILE_NOT_FOUND` (secrets dir), `CREDENTIAL_PROVIDER_CONFIG_INVALID`, `STORE_LOCKED`/`STORE_IO`,
 *   and listen failures (`INVALID_ARGUMENT` for a bad address, `STORE_IO`-like system errors as INTERNAL).
 */
export async function startNodeAgent(options: NodeAgentOptions): Promise<NodeAgent> {
  const log = options.log ?? jsonLogger;
  const staticPodPath = staticPodPathOf(options);
  checkTokenDir(options);
  const state = new PodStateStore();
  const core: AgentCore = {
    options,
    nodeName: (options.nodeName ?? hostname()).toLowerCase(),
    log,
    warnOnce: warnOnceLogger(log),
    metrics: new NodeMetrics(),
    state,
    status: new PodImageStatus(state),
    cleanups: new Cleanups(log),
  };
  if (options.cluster !== undefined) {
    const events = new KubeEventRecorder({
      client: options.cluster.client,
      reportingInstance: core.nodeName,
      podFor: (key) => core.clusterSource?.pod(key),
      ...(options.cluster.eventsRefreshMs !== undefined
        ? { refreshMs: options.cluster.eventsRefreshMs }
        : {}),
      onError: (e) => core.warnOnce(`recording an Event failed: ${e.message}`, { code: e.code }),
    });
    core.events = events;
    const cluster = options.cluster;
    core.secretManager = new PodSecretManager({
      client: cluster.client,
      onError: (e, object) =>
        core.warnOnce(`watch of ${object} failed (retrying): ${e.message}`, { code: e.code }),
      ...(cluster.initialBackoffMs !== undefined ? { initialBackoffMs: cluster.initialBackoffMs } : {}),
    });
    // Registered first: runs last, after the workers stopped, so their last Events are sent.
    core.cleanups.push(() => events.close());
  }
  try {
    const services = await openServices(core);
    return await runAgent(core, services, staticPodPath);
  } catch (e) {
    await core.cleanups.run();
    throw e;
  }
}

/**
 * Projected token files are the standalone node's token source. A cluster node asks the API server
 * for tokens bound to the pod (TokenRequest, `TokenRequestSource`), as the kubelet does; a token
 * directory there would hand every pod of a ServiceAccount whatever file the operator left, so it is
 * refused rather than silently preferred.
 * @throws KimgError `CONFIG_INVALID`.
 */
function checkTokenDir(options: NodeAgentOptions): void {
  if (options.cluster === undefined) return;
  const dir = options.serviceAccountTokenDir ?? options.config.kimg.serviceAccountTokenDir;
  if (dir === undefined) return;
  throw new KimgError(
    'CONFIG_INVALID',
    `a service-account token directory (${dir}) is for standalone nodes; in cluster mode the tokens of credential providers with tokenAttributes are the API server's: drop ${options.serviceAccountTokenDir !== undefined ? 'the token directory option' : 'kimg.serviceAccountTokenDir from the configuration'}`,
    { file: options.config.files.join(', ') },
  );
}

/** The manifest directory to watch, or `undefined` when static pods are off. @throws `CONFIG_INVALID`. */
function staticPodPathOf(options: NodeAgentOptions): string | undefined {
  if (options.staticPods === false) return undefined;
  const path = options.config.kubelet.staticPodPath;
  if ((path === '' || path === undefined) && options.cluster !== undefined) return undefined;
  if (path === '' || path === undefined) {
    throw new KimgError(
      'CONFIG_INVALID',
      'the node configuration has no staticPodPath: set staticPodPath to the directory of pod manifests',
      { file: options.config.files.join(', ') },
    );
  }
  return path;
}

/** Builds the services (the one place they are constructed), wired to the agent's state and metrics. */
function openServices(core: AgentCore): Promise<AgentServices> {
  const o = core.options;
  const hooks: AgentServiceHooks = {
    metrics: core.metrics,
    log: core.log,
    warnOnce: core.warnOnce,
    onProgress: (image, ev) => core.status.onProgress(image, ev),
    onPulled: () => core.state.storeChanged(),
    onManagerEvent: (e) => {
      core.status.onManagerEvent(e);
      core.events?.record(e);
    },
    onGcEvent: (e) =>
      core.state.recordEvent({
        type: e.type,
        reason: e.reason,
        message: e.message,
        object: { kind: 'Node', name: core.nodeName },
        timestamp: e.timestamp,
      }),
  };
  const settings = {
    config: o.config,
    env: o.env ?? process.env,
    nodeName: core.nodeName,
    ...(o.root !== undefined ? { root: o.root } : {}),
    ...(o.imageServiceEndpoint !== undefined ? { imageServiceEndpoint: o.imageServiceEndpoint } : {}),
    ...(o.containerd !== undefined ? { containerd: o.containerd } : {}),
    ...(o.registry !== undefined ? { registry: o.registry } : {}),
    ...(o.platform !== undefined ? { platform: o.platform } : {}),
    ...(o.secretsDir !== undefined ? { secretsDir: o.secretsDir } : {}),
    ...(o.serviceAccountTokenDir !== undefined ? { serviceAccountTokenDir: o.serviceAccountTokenDir } : {}),
    ...(o.nodeDockerConfig !== undefined ? { nodeDockerConfig: o.nodeDockerConfig } : {}),
    ...(o.usage !== undefined ? { usage: o.usage } : {}),
    ...(o.cluster !== undefined && core.secretManager !== undefined
      ? { cluster: { client: o.cluster.client, secretManager: core.secretManager } }
      : {}),
  };
  return openAgentServices(settings, hooks, core.cleanups);
}

/** The static pods: the manifest watcher, its reconciler and the pods' workers. */
interface PodPipeline {
  watcher: ManifestWatcher;
  reconciler: StaticPodReconciler;
  workers: PodWorkers<AgentPod>;
  /** Cluster mode: the API pods, their reconciler (same workers) and their Secrets' watches. */
  cluster?: { source: ClusterPodSource; reconciler: StaticPodReconciler; secrets: PodSecretManager };
}

/** Everything settled: both reconcilers' queues. */
async function podsSettled(pods: PodPipeline): Promise<void> {
  await pods.reconciler.settled();
  await pods.cluster?.reconciler.settled();
}

/** Wires manifests → pods → workers → syncs; nothing runs until the watcher starts. */
function podPipeline(
  core: AgentCore,
  services: AgentServices,
  staticPodPath: string | undefined,
): PodPipeline {
  const { state, status, log, metrics } = core;
  const { runtime } = services;
  state.on('change', (c: { kind: string }) => {
    if (c.kind === 'pods') metrics.setPodStatuses(state.list().map(podStatus));
  });
  const cluster = clusterParts(core, services);
  const volumes = new ImageVolumes({
    root: join(runtime.store.root, 'volumes'),
    source: runtime.backend.kind === 'local' ? runtime.store : undefined,
  });
  const workers = new PodWorkers<AgentPod>({
    resyncMs: core.options.resyncMs ?? DEFAULT_RESYNC_MS,
    syncPod: podSyncer({
      manager: runtime.manager,
      secrets: {
        refresh: () => services.secrets.refresh(),
        resolvePod: (uid, pod, fields) =>
          cluster !== undefined && fields.source === API_SERVER_ORIGIN
            ? cluster.podSecrets.resolvePod(uid, pod, fields)
            : services.secrets.resolvePod(uid, pod, fields),
      },
      status,
      metrics,
      log,
      markUsed: (spec, when) => runtime.markUsed(spec, when),
      volumes,
    }),
  });
  // What both pod sources (manifest files, API server) do when a pod starts, goes away or is forgotten;
  // they differ only in where the pod's Secrets are kept.
  const lifecycle = (forgetSecrets: (pod: AgentPod) => void) => ({
    start: (pod: AgentPod): void => {
      status.podStarted(pod, Date.now());
      workers.start(pod);
    },
    drop: async (pod: AgentPod, why: string): Promise<void> => {
      workers.stop(pod.key, new Error('pod removed or changed'));
      status.podStopped(pod);
      volumes.remove(pod.uid);
      forgetSecrets(pod);
      await runtime.manager.clearBackoff({ podUID: pod.uid }).catch(() => []);
      log({ level: 'info', msg: `pod ${why}`, pod: pod.key, uid: pod.uid });
    },
    forget: (key: string) => state.remove(key),
  });
  const reconciler = new StaticPodReconciler({
    toPod: (m) => toAgentPod(m, core.nodeName, services.secrets.objects),
    ...lifecycle((pod) => services.secrets.forgetPod(pod.uid)),
    added: (pod) => log({ level: 'info', msg: 'pod added', pod: pod.key, file: pod.file }),
  });
  const watcher = new ManifestWatcher({
    path: staticPodPath ?? NO_STATIC_PODS,
    onPods: reconciler.onPods,
    onProblem: (file, message) => core.warnOnce(message, { file }),
    ...(core.options.rescanMs !== undefined ? { rescanMs: core.options.rescanMs } : {}),
  });
  core.cleanups.push(() => watcher.close());
  core.cleanups.push(() => workers.stopAll(new Error('pod removed or changed')));
  if (cluster === undefined) return { watcher, reconciler, workers };
  const apiReconciler = new StaticPodReconciler({
    toPod: (m, previous) => apiAgentPod(m, previous, services.secrets.objects),
    ...lifecycle((pod) => cluster.podSecrets.forgetPod(pod.uid, pod.object)),
    added: (pod) => log({ level: 'info', msg: 'pod added', pod: pod.key, source: API_SERVER_ORIGIN }),
  });
  const source = new ClusterPodSource({
    client: cluster.client,
    nodeName: core.nodeName,
    onPods: apiReconciler.onPods,
    log,
    ...(cluster.options.resyncMs !== undefined ? { resyncMs: cluster.options.resyncMs } : {}),
    ...(cluster.options.initialBackoffMs !== undefined
      ? { initialBackoffMs: cluster.options.initialBackoffMs }
      : {}),
  });
  core.clusterSource = source;
  // Registered after the workers' stop: runs before it, so no new pod starts while they stop.
  core.cleanups.push(() => cluster.secretManager.close());
  core.cleanups.push(() => source.close());
  return {
    watcher,
    reconciler,
    workers,
    cluster: { source, reconciler: apiReconciler, secrets: cluster.secretManager },
  };
}

/** Cluster mode's secret manager and the pod Secrets resolver over it, or undefined. */
function clusterParts(
  core: AgentCore,
  services: AgentServices,
):
  | {
      client: KubeClient;
      options: NodeAgentClusterOptions;
      secretManager: PodSecretManager;
      podSecrets: ClusterPodSecrets;
    }
  | undefined {
  const options = core.options.cluster;
  const secretManager = core.secretManager;
  if (options === undefined || core.events === undefined || secretManager === undefined) return undefined;
  const podSecrets = new ClusterPodSecrets(
    secretManager,
    services.runtime.credentials,
    core.events,
    core.warnOnce,
  );
  return { client: options.client, options, secretManager, podSecrets };
}

/** The image ids in use: the pods' ready containers', then the pre-pulls'. */
function imagesInUse(state: PodStateStore, prepull: PrepullRunner): string[] {
  const ids = new Set<string>();
  for (const p of state.list()) {
    for (const c of p.containers) if (c.imageRef !== '') ids.add(c.imageRef);
    for (const v of p.volumes ?? []) if (v.imageRef !== '') ids.add(v.imageRef);
  }
  for (const id of prepull.imageRefs()) ids.add(id);
  return [...ids];
}

/** Starts the pods, the pre-pulls, image GC and the servers over built services. */
async function runAgent(
  core: AgentCore,
  services: AgentServices,
  staticPodPath: string | undefined,
): Promise<NodeAgent> {
  const { options, state, metrics, log, cleanups } = core;
  const { runtime } = services;
  const pods = podPipeline(core, services, staticPodPath);
  const prepull = new PrepullRunner(options.prepull ?? [], {
    managerFor: (platform) => runtime.managerFor(platform),
    secrets: services.secrets,
    podsBusy: () => pods.workers.busy(),
    podsStarted: () => podsSettled(pods),
    metrics,
    log,
    changed: () => state.storeChanged(),
  });
  cleanups.push(() => prepull.stop(new Error('agent closing')));
  const ownInUse = (): string[] => imagesInUse(state, prepull);
  // The runtime's GC adds its containers' images on every run; the summary shows the same set.
  const inUse = async (): Promise<string[]> => [
    ...new Set([...ownInUse(), ...(await runtime.containersInUse())]),
  ];
  const gcPeriodMs = options.gcPeriodMs ?? IMAGE_GC_PERIOD_MS;
  const gc = new ImageGcRunner({
    gc: runtime.gc,
    periodMs: gcPeriodMs,
    inUse: ownInUse,
    metrics,
    log,
    storeChanged: () => state.storeChanged(),
  });
  gc.start();
  cleanups.push(() => gc.stop());
  const storeSummary = async (): Promise<StoreSummary> =>
    summarizeStore({
      root: imageStoreLocation(options, runtime),
      imageService: runtime.imageService,
      records: () => runtime.store.images.list(),
      inUse: await inUse(),
      prepull: prepull.states(),
      policy: runtime.gcPolicy,
      gcPeriodMs,
      lastGc: gc.lastRun,
      usage: runtime.usage,
    });
  const cri = await startCri(core, runtime);
  const events = core.events;
  const cluster = pods.cluster;
  const kube =
    options.cluster !== undefined && events !== undefined && cluster !== undefined
      ? {
          client: options.cluster.client,
          flushEvents: () => events.flush(),
          watchedObjects: () => cluster.secrets.watchedObjects(),
        }
      : undefined;
  let closed: Promise<void> | undefined;
  let prepullDone: Promise<void> = Promise.resolve();
  const agent: NodeAgent = {
    get url() {
      return http?.url;
    },
    get criAddress() {
      return cri?.address;
    },
    state,
    metrics,
    progress: runtime.progress,
    store: runtime.store,
    manager: runtime.manager,
    nodeName: core.nodeName,
    rescan: async () => {
      await pods.watcher.scan();
      await podsSettled(pods);
    },
    syncAll: async () => {
      await podsSettled(pods);
      await pods.workers.syncAll();
    },
    garbageCollect: () => gc.runNow(),
    inUse,
    storeSummary,
    prepullState: () => prepull.states(),
    get prepullDone() {
      return prepullDone;
    },
    ...(kube !== undefined ? { kube } : {}),
    close: () => (closed ??= cleanups.run()),
  };
  const http = await startHttp(core, agent);
  if (staticPodPath !== undefined) await pods.watcher.start();
  await pods.cluster?.source.start();
  await podsSettled(pods);
  prepullDone = prepull.run().catch(logPrepullFailure(log));
  log({
    level: 'info',
    msg: 'node agent started',
    node: core.nodeName,
    staticPodPath: options.config.kubelet.staticPodPath,
    ...(options.cluster !== undefined ? { apiServer: options.cluster.client.config.server } : {}),
    store: imageStoreLocation(options, runtime),
    ...(http !== undefined ? { http: http.url } : {}),
    ...(cri !== undefined ? { cri: cri.address } : {}),
  });
  return agent;
}

/**
 * Where the images live, for `/api/store` and the start-up log: the CRI runtime's endpoint,
 * containerd's socket (kimg's root then keeps only pull records, back-off and GC state), or kimg's root.
 */
function imageStoreLocation(options: NodeAgentOptions, runtime: NodeRuntime): string {
  return options.imageServiceEndpoint ?? runtime.containerd?.client.address ?? runtime.store.root;
}

/** The CRI ImageService socket, when configured. */
async function startCri(core: AgentCore, runtime: NodeRuntime): Promise<CriServer | undefined> {
  const { options } = core;
  const listen = options.criListen === undefined ? options.config.kimg.listen.cri : options.criListen;
  if (listen === undefined || listen === null) return undefined;
  // Verbose ImageStatus renders the image's config from the store the image is in (as kimg serve).
  const { containerd } = runtime;
  const cri = await startCriServer({
    listen,
    imageService: runtime.imageService,
    version: { runtimeName: 'kimg', runtimeVersion: '0.0.0' },
    ...(containerd !== undefined
      ? { verboseInfo: configVerboseInfo((id) => containerd.readImageConfig(id)) }
      : runtime.backend.kind === 'local'
        ? { verboseInfo: storeVerboseInfo(runtime.store) }
        : {}),
    drainTimeoutMs: 5000,
    log: (line) => core.log({ level: 'warn', msg: line, component: 'cri' }),
  });
  core.cleanups.push(() => cri.close());
  return cri;
}

/** The HTTP endpoint, unless turned off. */
async function startHttp(core: AgentCore, agent: NodeAgent): Promise<AgentHttpServer | undefined> {
  const { options } = core;
  const address =
    options.metricsAddr === undefined
      ? (options.config.kimg.listen.metrics ?? DEFAULT_METRICS_ADDR)
      : options.metricsAddr;
  if (address === null) return undefined;
  const http = await startAgentHttpServer({ address, agent, log: core.log });
  core.cleanups.push(() => http.close());
  return http;
}
