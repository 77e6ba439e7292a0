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
 * An edited manifest is defaulted as an API update (`applyUpdateDefaults`): a container whose image
 * changed keeps its stored `imagePullPolicy`, it is not re-defaulted from the new tag.
 *
 * Images go to kimg's store (with per-layer progress), or to a CRI runtime (`imageServiceEndpoint`,
 * e.g. containerd). A pre-pull list is pulled after the pods' pulls, through the same manager.
 *
 * A pod whose images are not all ready is synced again every `resyncMs` (the kubelet's pod worker
 * re-queue): the first failure shows `ErrImagePull`, syncs inside the back-off window
 * `ImagePullBackOff`, the next attempt after the window pulls again.
 *
 * Source: kubernetes `pkg/kubelet/config/{file.go,common.go}`, `pkg/kubelet/pod_workers.go`,
 * `pkg/kubelet/images/image_manager.go`, `pkg/kubelet/images/image_gc_manager.go`.
 */
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { NodeConfig } from '../config/index.js';
import {
  CachedNodeDockerConfig,
  DEFAULT_KUBELET_ROOT_DIR,
  PluginManager,
  lookupPullCredentials,
  readKubernetesObjects,
  resolvePodPullSecrets,
  spawnPlugin,
  type KubeObject,
  type PodPullSecrets,
  type SpawnPlugin,
} from '../credentials/index.js';
import { CriImageService, startCriServer, storeVerboseInfo, type CriServer } from '../cri/index.js';
import { KimgError, toKimgError } from '../errors/index.js';
import {
  FileBackoffStore,
  FileImageGCStateStore,
  ImageGCManager,
  ImageManager,
  LocalImageService,
  StatfsUsageSource,
  DEFAULT_PINNED_IMAGES,
  IMAGE_GC_PERIOD_MS,
  applyPodDefaults,
  applyUpdateDefaults,
  backoffKey,
  imageGCPolicyFromConfig,
  imageManagerOptionsFromConfig,
  openNodeVerifier,
  runtimeHandlerFor,
  storeUsageHints,
  type CredentialCandidate,
  type FsUsageSource,
  type ImageGCResult,
  type ImageService,
  type ManagerEvent,
  type PodInfo,
  type PodManifest,
} from '../manager/index.js';
import { applyDefaultTag } from '../reference/index.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/index.js';
import { openStore, type Store } from '../store/index.js';
import { startAgentHttpServer, type AgentHttpServer } from './http.js';
import { NodeMetrics } from './metrics.js';
import { PodStateStore, podStatus, type ContainerImageState, type PodView } from './pod-state.js';
import { ManifestWatcher, type ManifestPod } from './watcher.js';
import type { PrepullImage, PrepullState } from './prepull.js';

/** A structured log line (written as one JSON object). Never holds a credential. */
export interface AgentLogEntry {
  level: 'info' | 'warn' | 'error';
  msg: string;
  [field: string]: unknown;
}

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
}

/** A running agent. */
export interface NodeAgent {
  /** `http://host:port` of the HTTP endpoint, when it runs. */
  readonly url: string | undefined;
  /** `unix://…` of the CRI socket, when it runs. */
  readonly criAddress: string | undefined;
  readonly state: PodStateStore;
  readonly metrics: NodeMetrics;
  readonly store: Store;
  readonly manager: ImageManager;
  readonly nodeName: string;
  /** Rescans the manifest directory now and waits for it. */
  rescan(): Promise<void>;
  /** Syncs every idle pod now, waits for syncs in progress (no second one behind them). */
  syncAll(): Promise<void>;
  /** Runs image GC now with the pods' images in use. */
  garbageCollect(): Promise<ImageGCResult>;
  /** The images in use by the pods (image ids of ready containers). */
  inUse(): string[];
  /** The store summary served on `/api/store`. */
  storeSummary(): Promise<StoreSummary>;
  /** The pre-pulls and their states. */
  prepullState(): PrepullState[];
  /** Settles when every pre-pull has been tried once. */
  readonly prepullDone: Promise<void>;
  /** Stops everything (syncs are cancelled, servers closed, the store closed). Idempotent. */
  close(): Promise<void>;
}

/** `/api/store`: images, sizes, disk usage vs the GC thresholds, the last GC run. */
export interface StoreSummary {
  root: string;
  images: {
    names: string[];
    id: string;
    size: number;
    pinned: boolean;
    inUse: boolean;
    lastUsed?: string;
  }[];
  totalBytes: number;
  prepull: PrepullState[];
  usage?: { capacityBytes: number; availableBytes: number; usedPercent: number };
  gc: {
    highThresholdPercent: number;
    lowThresholdPercent: number;
    periodMs: number;
    lastRun?: { at: number; removed: number; bytes: number; reclaimed: number; error?: string };
  };
}

interface AgentPod {
  key: string;
  manifestKey: string;
  name: string;
  namespace: string;
  uid: string;
  file: string;
  hash: string;
  /** After defaulting (what the API server would store). */
  object: Record<string, unknown>;
  runtimeHandler?: string;
}

interface Worker {
  pod: AgentPod;
  abort: AbortController;
  timer?: NodeJS.Timeout;
  running?: Promise<void>;
  again: boolean;
  stopped: boolean;
}

const DEFAULT_METRICS_ADDR = '127.0.0.1:10259';

function staticPodUid(object: unknown, file: string, nodeName: string): string {
  return createHash('md5').update(file).update(JSON.stringify(object)).update(nodeName).digest('hex');
}

function containersOf(object: Record<string, unknown>): ContainerImageState[] {
  const spec = (object.spec ?? {}) as Record<string, unknown>;
  const out: ContainerImageState[] = [];
  for (const list of ['initContainers', 'containers', 'ephemeralContainers']) {
    const cs = spec[list];
    if (!Array.isArray(cs)) continue;
    for (const c of cs as Record<string, unknown>[]) {
      out.push({
        name: typeof c.name === 'string' ? c.name : '',
        list,
        image: typeof c.image === 'string' ? c.image : '',
        imagePullPolicy: typeof c.imagePullPolicy === 'string' ? c.imagePullPolicy : '',
        state: 'Waiting',
        reason: '',
        message: '',
        imageRef: '',
      });
    }
  }
  return out;
}

function jsonLogger(entry: AgentLogEntry): void {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
}

async function readSecretObjects(dir: string | undefined): Promise<KubeObject[]> {
  if (dir === undefined) return [];
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.') && /\.(ya?ml|json)$/i.test(n)).sort();
  } catch (e) {
    throw new KimgError(
      'FILE_NOT_FOUND',
      `secrets directory ${dir} cannot be read: give an existing directory`,
      {
        file: dir,
        cause: e,
      },
    );
  }
  return readKubernetesObjects(names.map((n) => join(dir, n)));
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
  const { config } = options;
  const log = options.log ?? jsonLogger;
  const env = options.env ?? process.env;
  const staticPodPath = config.kubelet.staticPodPath;
  const watchPods = options.staticPods !== false;
  if (watchPods && (staticPodPath === '' || staticPodPath === undefined)) {
    throw new KimgError(
      'CONFIG_INVALID',
      'the node configuration has no staticPodPath: set staticPodPath to the directory of pod manifests',
      { file: config.files.join(', ') },
    );
  }
  const nodeName = (options.nodeName ?? hostname()).toLowerCase();
  const resyncMs = options.resyncMs ?? 5000;
  const gcPeriodMs = options.gcPeriodMs ?? IMAGE_GC_PERIOD_MS;
  const metrics = new NodeMetrics();
  const state = new PodStateStore();
  const root = options.root ?? config.kimg.rootDir;
  const registry = new RegistryClient({
    ...(config.kimg.hostsDir !== undefined ? { hostsDir: config.kimg.hostsDir } : {}),
    ...options.registry,
    warn: (m) => log({ level: 'warn', msg: m }),
  });
  const cleanups: (() => Promise<void> | void)[] = [() => registry.close()];
  const runCleanups = async (): Promise<void> => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        log({ level: 'warn', msg: `shutdown: ${toKimgError(e).message}` });
      }
    }
  };
  try {
    const store = await openStore({ ...(root !== undefined ? { root } : {}), env });
    cleanups.push(() => store.close());

    // Which containers are pulling which image (progress events name the spec's image).
    const pulling = new Map<string, Set<string>>(); // image → "key\0uid\0container"
    const onProgress = (image: string, ev: import('../pull/index.js').ImagePullEvent): void => {
      const targets = pulling.get(image);
      if (targets === undefined) return;
      for (const t of targets) {
        const [key = '', uid = '', container = ''] = t.split('\0');
        state.updateContainer(key, uid, container, (c) => {
          if (c.pulling === undefined) return;
          const layers = c.pulling.layers;
          if (ev.type === 'layer-start') {
            const l = layers.find((x) => x.digest === ev.digest);
            if (l === undefined)
              layers.push({
                digest: ev.digest,
                size: ev.size,
                completed: ev.cached ? ev.size : ev.resumedFrom,
                kind: ev.kind,
                cached: ev.cached,
                done: false,
              });
          } else if (ev.type === 'bytes') {
            const l = layers.find((x) => x.digest === ev.digest);
            if (l !== undefined) l.completed = ev.completed;
          } else if (ev.type === 'layer-done') {
            const l = layers.find((x) => x.digest === ev.digest);
            if (l !== undefined) {
              l.completed = l.size;
              l.done = true;
            }
          }
        });
      }
    };
    const backend =
      options.imageServiceEndpoint !== undefined
        ? new CriImageService({ endpoint: options.imageServiceEndpoint })
        : undefined;
    if (backend !== undefined) cleanups.push(() => backend.close());
    const countPulls = (svc: ImageService): ImageService => ({
      imageStatus: (s, o) => svc.imageStatus(s, o),
      listImages: (o) => svc.listImages(o),
      removeImage: (s, o) => svc.removeImage(s, o),
      ...(svc.imageFsInfo !== undefined ? { imageFsInfo: (o) => svc.imageFsInfo!(o) } : {}),
      pullImage: async (spec, auth, sandbox, o) => {
        metrics.pullsInProgress.inc();
        try {
          return await svc.pullImage(spec, auth, sandbox, o);
        } finally {
          metrics.pullsInProgress.dec();
        }
      },
    });
    const makeImageService = (
      platform: string | undefined,
    ): { local: LocalImageService | undefined; service: ImageService } => {
      if (backend !== undefined) {
        if (platform !== undefined)
          log({
            level: 'warn',
            msg: `a CRI image service pulls for its own platform: ${platform} is ignored`,
          });
        return { local: undefined, service: countPulls(backend) };
      }
      const svc = new LocalImageService({
        store,
        registry,
        ...(platform !== undefined ? { platform } : {}),
        ...(config.kimg.defaultRegistry !== 'docker.io'
          ? { defaultRegistry: config.kimg.defaultRegistry }
          : {}),
        onProgress: (spec, ev) => onProgress(spec.image, ev),
        onPulled: () => state.storeChanged(),
      });
      // Pulls in progress, counted at the image service (after the queue).
      return { local: svc, service: countPulls(svc) };
    };
    const { local, service: imageService } = makeImageService(options.platform);

    // Credentials: the pod's Secrets (secrets dir), the node docker config, exec plugins.
    // The node-wide docker config with the kubelet's 5-minute cache (a file written later is seen).
    const nodeDockerCache =
      options.nodeDockerConfig !== false
        ? new CachedNodeDockerConfig({ env, rootDir: DEFAULT_KUBELET_ROOT_DIR })
        : undefined;
    await nodeDockerCache?.get();
    let secretObjects = await readSecretObjects(options.secretsDir);
    let plugins: PluginManager | undefined;
    const { imageCredentialProviderConfig: pluginConfig, imageCredentialProviderBinDir: binDir } =
      config.kimg;
    if (pluginConfig !== undefined && binDir !== undefined) {
      const timed: SpawnPlugin = async (command, args, o) => {
        const name = command.split('/').pop() ?? command;
        const end = metrics.pluginDuration.startTimer({ plugin_name: name });
        const r = await spawnPlugin(command, args, o);
        end();
        if (r.code !== 0 || r.spawnError !== undefined || r.timedOut)
          metrics.pluginErrors.inc({ plugin_name: name });
        return r;
      };
      plugins = await PluginManager.load({
        configPath: pluginConfig,
        binDir,
        environ: env,
        spawn: timed,
        getServiceAccount: async (namespace, name) => {
          const sa = secretObjects.find(
            (o) => o.kind === 'ServiceAccount' && o.name === name && (o.namespace ?? 'default') === namespace,
          );
          if (sa === undefined)
            throw new KimgError(
              'SECRET_NOT_FOUND',
              `ServiceAccount ${namespace}/${name} is not in the secrets directory`,
            );
          const meta = (sa.object.metadata ?? {}) as Record<string, unknown>;
          const annotations = (
            typeof meta.annotations === 'object' && meta.annotations !== null ? meta.annotations : {}
          ) as Record<string, string>;
          return { uid: typeof meta.uid === 'string' ? meta.uid : '', annotations };
        },
      });
    }
    const podSecrets = new Map<string, PodPullSecrets>(); // uid → secrets
    const warned = new Set<string>();
    const warnOnce = (m: string, fields: Record<string, unknown> = {}): void => {
      if (warned.has(m)) return;
      warned.add(m);
      log({ level: 'warn', msg: m, ...fields });
    };
    const credentials = async (image: string, pod: PodInfo): Promise<CredentialCandidate[]> => {
      const secrets = podSecrets.get(pod.uid);
      const nodeDocker = await nodeDockerCache?.get();
      const lookup = await lookupPullCredentials(image, {
        ...(secrets !== undefined ? { podSecrets: secrets } : {}),
        ...(nodeDocker !== undefined ? { node: nodeDocker } : {}),
        ...(plugins !== undefined ? { plugins } : {}),
        pod: {
          podNamespace: pod.namespace,
          podName: pod.name,
          podUid: pod.uid,
          serviceAccountName: secrets?.serviceAccountName ?? 'default',
        },
      });
      for (const p of lookup.problems) warnOnce(p.message, { pod: `${pod.namespace}/${pod.name}` });
      return lookup.matches.map((m) => ({ key: m.key, auth: m.auth, source: { ...m.source } }));
    };

    const { verifier } = await openNodeVerifier({
      root: store.root,
      config: config.kubelet,
      imageService,
      onNotice: (n) => log({ level: 'warn', msg: n.message }),
    });
    const backoffStore = new FileBackoffStore(store.root);
    const makeManager = (service: ImageService): ImageManager =>
      new ImageManager({
        imageService: service,
        verifier,
        ...imageManagerOptionsFromConfig(config.kubelet),
        credentials,
        backoffStore,
        recorder: {
          record: (e: ManagerEvent) => onManagerEvent(e),
        },
      });
    const manager = makeManager(imageService);

    const pods = new Map<string, AgentPod>(); // key → pod
    const workers = new Map<string, Worker>(); // key → worker
    const byUid = new Map<string, AgentPod>();

    function onManagerEvent(e: ManagerEvent): void {
      const pod = byUid.get(e.object.pod.uid);
      state.recordEvent({
        type: e.type,
        reason: e.reason,
        message: e.message,
        object: {
          kind: 'Pod',
          namespace: e.object.pod.namespace,
          name: e.object.pod.name,
          uid: e.object.pod.uid,
          container: e.object.container,
        },
        timestamp: e.timestamp,
      });
      if (pod === undefined) return;
      const target = `${pod.key}\0${pod.uid}\0${e.object.container}`;
      const stopPulling = (c: ContainerImageState): void => {
        if (c.pulling === undefined) return;
        delete c.pulling;
        for (const [img, set] of pulling) {
          set.delete(target);
          if (set.size === 0) pulling.delete(img);
        }
      };
      state.updateContainer(pod.key, pod.uid, e.object.container, (c) => {
        switch (e.reason) {
          case 'Pulling': {
            c.state = 'Waiting';
            c.reason = 'ContainerCreating';
            c.message = e.message;
            delete c.nextRetryAt;
            c.pulling = { startedAt: e.timestamp, layers: [] };
            let image = c.image;
            try {
              image = applyDefaultTag(c.image);
            } catch {
              // the manager reports an invalid name itself
            }
            let set = pulling.get(image);
            if (set === undefined) pulling.set(image, (set = new Set()));
            set.add(target);
            break;
          }
          case 'Failed':
            stopPulling(c);
            c.state = 'Waiting';
            c.reason = 'ErrImagePull';
            break;
          case 'BackOff':
            c.state = 'Waiting';
            c.reason = 'ImagePullBackOff';
            break;
          case 'ErrImageNeverPull':
            c.state = 'Waiting';
            c.reason = 'ErrImageNeverPull';
            c.message = e.message;
            break;
          case 'Pulled':
            stopPulling(c);
            break;
          default:
            break;
        }
      });
    }

    const updateMetricsPods = (): void => metrics.setPodStatuses(state.list().map(podStatus));
    state.on('change', (c: { kind: string }) => {
      if (c.kind === 'pods') updateMetricsPods();
    });

    const schedule = (w: Worker, delayMs: number): void => {
      if (w.stopped) return;
      if (w.timer !== undefined) clearTimeout(w.timer);
      w.timer = setTimeout(() => {
        w.timer = undefined;
        void sync(w);
      }, delayMs);
      w.timer.unref();
    };

    const sync = (w: Worker): Promise<void> => {
      if (w.stopped) return Promise.resolve();
      if (w.running !== undefined) {
        w.again = true;
        return w.running;
      }
      w.running = (async () => {
        try {
          do {
            w.again = false;
            await syncOnce(w);
          } while (w.again && !w.stopped);
        } finally {
          w.running = undefined;
        }
      })();
      return w.running;
    };

    const syncOnce = async (w: Worker): Promise<void> => {
      const pod = w.pod;
      try {
        secretObjects = await readSecretObjects(options.secretsDir).catch((e: unknown) => {
          warnOnce(toKimgError(e).message);
          return secretObjects;
        });
        const secrets = resolvePodPullSecrets(pod.object, secretObjects);
        for (const p of secrets.problems) warnOnce(p.message, { pod: pod.key });
        podSecrets.set(pod.uid, secrets);
      } catch (e) {
        warnOnce(toKimgError(e).message, { pod: pod.key });
      }
      let ok = false;
      try {
        const result = await manager.ensurePodImages(pod.object as PodManifest, {
          signal: w.abort.signal,
          ...(pod.runtimeHandler !== undefined ? { runtimeHandler: pod.runtimeHandler } : {}),
        });
        if (w.stopped) return;
        ok = result.ok;
        const entries = await manager.listBackoff().catch(() => []);
        const now = new Date();
        for (const line of result.results) {
          const r = line.result;
          if (r?.ok === true && r.spec !== undefined) await local?.markUsed(r.spec, now).catch(() => false);
          if (r?.pull !== undefined) metrics.observePull(r.pull.pullMs / 1000, r.pull.imageSize);
          if (
            r !== undefined &&
            !r.ok &&
            r.events.some((e) => e.reason === 'Failed') &&
            r.error !== undefined
          )
            metrics.pullErrors.inc({ reason: r.error.code });
          if (r !== undefined && r.action === 'pulled')
            log({
              level: 'info',
              msg: 'pulled image',
              pod: pod.key,
              container: line.container,
              image: line.image,
              bytes: r.pull?.imageSize,
              ms: r.pull?.pullMs,
            });
          if (r !== undefined && !r.ok && r.events.some((e) => e.reason === 'Failed'))
            log({
              level: 'warn',
              msg: 'image pull failed',
              pod: pod.key,
              container: line.container,
              image: line.image,
              code: r.error?.code,
              error: r.message,
            });
          const entry = entries.find((x) => x.key === backoffKey(pod.uid, line.image));
          state.updateContainer(pod.key, pod.uid, line.container, (c) => {
            if (line.skipped !== undefined) {
              c.state = 'Waiting';
              c.reason = 'PodInitializing';
              c.message = 'an init container image is not ready';
              return;
            }
            if (r === undefined) return;
            delete c.pulling;
            c.imagePullPolicy = r.pullPolicy;
            if (r.ok) {
              c.state = 'Ready';
              c.reason = '';
              c.message = r.message;
              c.imageRef = r.imageRef;
              delete c.nextRetryAt;
              delete c.lastError;
            } else {
              c.state = 'Waiting';
              c.reason = r.reason ?? 'ErrImagePull';
              c.message = r.message;
              c.imageRef = '';
              if (entry !== undefined && entry.retryAtMs > Date.now()) c.nextRetryAt = entry.retryAtMs;
              else delete c.nextRetryAt;
              if (entry?.lastError !== undefined) c.lastError = entry.lastError;
              else if (r.reason !== 'ImagePullBackOff') c.lastError = `${c.reason}: ${r.message}`;
            }
          });
        }
        state.updatePod(pod.key, pod.uid, (p) => {
          p.syncs++;
          p.lastSyncAt = Date.now();
        });
      } catch (e) {
        if (w.stopped) return;
        log({
          level: 'error',
          msg: `sync of pod ${pod.key} failed: ${toKimgError(e).message}`,
          pod: pod.key,
        });
        state.updatePod(pod.key, pod.uid, (p) => {
          p.syncs++;
          p.lastSyncAt = Date.now();
        });
      }
      if (!ok) schedule(w, resyncMs);
    };

    const stopWorker = (key: string): void => {
      const w = workers.get(key);
      if (w === undefined) return;
      w.stopped = true;
      w.abort.abort(new Error('pod removed or changed'));
      if (w.timer !== undefined) clearTimeout(w.timer);
      workers.delete(key);
    };

    const startPod = (pod: AgentPod): void => {
      pods.set(pod.key, pod);
      byUid.set(pod.uid, pod);
      const view: PodView = {
        key: pod.key,
        name: pod.name,
        namespace: pod.namespace,
        uid: pod.uid,
        file: pod.file,
        createdAt: Date.now(),
        syncs: 0,
        containers: containersOf(pod.object),
      };
      state.upsert(view);
      const w: Worker = { pod, abort: new AbortController(), again: false, stopped: false };
      workers.set(pod.key, w);
      void sync(w);
    };

    const dropPod = async (pod: AgentPod, why: string): Promise<void> => {
      stopWorker(pod.key);
      pods.delete(pod.key);
      byUid.delete(pod.uid);
      podSecrets.delete(pod.uid);
      for (const [img, set] of pulling) {
        for (const t of [...set]) if (t.startsWith(`${pod.key}\0${pod.uid}\0`)) set.delete(t);
        if (set.size === 0) pulling.delete(img);
      }
      await manager.clearBackoff({ podUID: pod.uid }).catch(() => []);
      log({ level: 'info', msg: `pod ${why}`, pod: pod.key, uid: pod.uid });
    };

    const toAgentPod = (m: ManifestPod, previous: AgentPod | undefined): AgentPod => {
      const raw = structuredClone(m.object);
      const object =
        previous !== undefined ? applyUpdateDefaults(previous.object, raw) : applyPodDefaults(raw);
      const meta = (object.metadata ??= {}) as Record<string, unknown>;
      const name = `${m.name}-${nodeName}`;
      meta.name = name;
      meta.namespace = m.namespace;
      const uid =
        typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : staticPodUid(m.object, m.file, nodeName);
      meta.uid = uid;
      const pod: AgentPod = {
        key: `${m.namespace}/${name}`,
        manifestKey: m.key,
        name,
        namespace: m.namespace,
        uid,
        file: m.file,
        hash: m.hash,
        object,
      };
      const handler = runtimeHandlerFor(object, secretObjects);
      if (handler !== undefined) pod.runtimeHandler = handler;
      return pod;
    };

    const byManifest = new Map<string, AgentPod>(); // manifest key → pod
    let reconcile: Promise<void> = Promise.resolve();
    const onPods = (manifests: Map<string, ManifestPod>): void => {
      reconcile = reconcile.then(async () => {
        for (const [mk, pod] of [...byManifest]) {
          if (!manifests.has(mk)) {
            byManifest.delete(mk);
            await dropPod(pod, 'removed');
            state.remove(pod.key);
          }
        }
        for (const [mk, m] of manifests) {
          const prev = byManifest.get(mk);
          if (prev !== undefined && prev.hash === m.hash && prev.file === m.file) continue;
          const next = toAgentPod(m, prev);
          if (prev !== undefined) {
            await dropPod(prev, 'changed');
            if (prev.key !== next.key) state.remove(prev.key);
          } else {
            log({ level: 'info', msg: 'pod added', pod: next.key, file: m.file });
          }
          byManifest.set(mk, next);
          startPod(next);
        }
      });
    };

    const watcher = new ManifestWatcher({
      path: watchPods ? staticPodPath : '/nonexistent-kimg-static-pods',
      onPods,
      onProblem: (file, message) => warnOnce(message, { file }),
      ...(options.rescanMs !== undefined ? { rescanMs: options.rescanMs } : {}),
    });
    cleanups.push(() => watcher.close());
    cleanups.push(() => {
      for (const k of [...workers.keys()]) stopWorker(k);
    });

    // Pre-pulls: after the pods' pulls, through the same manager (a second one per other platform).
    const prepulls: PrepullState[] = (options.prepull ?? []).map((p) => ({
      ...p,
      state: 'Pending',
      imageRef: '',
      reason: '',
      message: '',
    }));
    const prepullAbort = new AbortController();
    cleanups.push(() => prepullAbort.abort(new Error('agent closing')));
    const platformManagers = new Map<string, ImageManager>();
    const managerFor = (platform: string | undefined): ImageManager => {
      if (platform === undefined) return manager;
      let m = platformManagers.get(platform);
      if (m === undefined)
        platformManagers.set(platform, (m = makeManager(makeImageService(platform).service)));
      return m;
    };
    const podsBusy = (): boolean => [...workers.values()].some((w) => w.running !== undefined);
    const runPrepulls = async (): Promise<void> => {
      await reconcile;
      for (let i = 0; i < prepulls.length; i++) {
        const p = prepulls[i]!;
        while (podsBusy() && !prepullAbort.signal.aborted) await new Promise((r) => setTimeout(r, 50));
        if (prepullAbort.signal.aborted) return;
        const uid = `kimg-prepull-${i}`;
        try {
          const secrets = resolvePodPullSecrets(
            {
              kind: 'Pod',
              metadata: { name: 'kimg-prepull', namespace: 'default' },
              spec: { imagePullSecrets: p.secret !== undefined ? [{ name: p.secret }] : [] },
            },
            secretObjects,
          );
          for (const pr of secrets.problems) warnOnce(pr.message, { prepull: p.image });
          podSecrets.set(uid, secrets);
        } catch (e) {
          warnOnce(toKimgError(e).message, { prepull: p.image });
        }
        p.state = 'Pulling';
        state.storeChanged();
        const r = await managerFor(p.platform).ensureImageExists({
          pod: { name: 'kimg-prepull', namespace: 'default', uid },
          container: { name: `prepull-${i}`, image: p.image, imagePullPolicy: 'IfNotPresent' },
          signal: prepullAbort.signal,
        });
        if (r.pull !== undefined) metrics.observePull(r.pull.pullMs / 1000, r.pull.imageSize);
        if (!r.ok && r.error !== undefined && r.events.some((e) => e.reason === 'Failed'))
          metrics.pullErrors.inc({ reason: r.error.code });
        p.state = r.ok ? 'Present' : 'Failed';
        p.imageRef = r.imageRef;
        p.reason = r.reason ?? '';
        p.message = r.message;
        if (r.error !== undefined) p.code = r.error.code;
        else delete p.code;
        log({
          level: r.ok ? 'info' : 'warn',
          msg: r.ok ? 'pre-pulled image' : 'pre-pull failed',
          image: p.image,
          ...(p.platform !== undefined ? { platform: p.platform } : {}),
          ...(r.ok ? { id: r.imageRef } : { code: r.error?.code, error: r.message }),
        });
        state.storeChanged();
      }
    };

    const inUse = (): string[] => {
      const ids = new Set<string>();
      for (const p of state.list()) for (const c of p.containers) if (c.imageRef !== '') ids.add(c.imageRef);
      for (const p of prepulls) if (p.imageRef !== '') ids.add(p.imageRef);
      return [...ids];
    };

    // Image GC.
    const policy = imageGCPolicyFromConfig(config.kubelet);
    let lastGc: StoreSummary['gc']['lastRun'];
    const usage =
      options.usage ??
      (backend !== undefined
        ? {
            // The runtime's image filesystem (statfs of the mount point it reports).
            imageFsStats: async () => {
              const fs = (await backend.imageFsInfo())[0];
              const st = await new StatfsUsageSource(fs?.mountpoint || store.root).imageFsStats();
              return fs !== undefined ? { ...st, usedBytes: fs.usedBytes } : st;
            },
          }
        : new StatfsUsageSource(store.root, async () => {
            const df = await store.df();
            return df.blobs.bytes + df.ingests.bytes;
          }));
    const gcManager = new ImageGCManager({
      service: imageService,
      usage,
      policy,
      nodeName,
      state: new FileImageGCStateStore(store.root),
      ...(backend === undefined
        ? { hints: storeUsageHints(store), sweep: async () => (await store.gc()).bytesFreed }
        : {}),
      pinnedImages: [...DEFAULT_PINNED_IMAGES, ...config.kimg.pinnedImages],
      metricsRegistry: metrics.registry,
      recorder: {
        record: (e) =>
          state.recordEvent({
            type: e.type,
            reason: e.reason,
            message: e.message,
            object: { kind: 'Node', name: nodeName },
            timestamp: e.timestamp,
          }),
      },
    });
    const onGcResult = (r: ImageGCResult): void => {
      metrics.gcReclaimedBytes.inc(r.bytesReclaimed);
      lastGc = {
        at: r.startedAt,
        removed: r.removed.length,
        bytes: r.removed.reduce((a, x) => a + x.bytes, 0),
        reclaimed: r.bytesReclaimed,
        ...(r.error !== undefined ? { error: r.error } : {}),
      };
      if (r.removed.length > 0) {
        for (const x of r.removed)
          log({
            level: 'info',
            msg: 'image garbage collected',
            image: x.image.names[0] ?? x.image.id,
            reason: x.reason,
            bytes: x.bytes,
          });
        state.storeChanged();
      }
      if (r.error !== undefined) log({ level: 'warn', msg: `image garbage collection: ${r.error}` });
    };
    const gcLoop = gcManager.start({
      periodMs: gcPeriodMs,
      inUse,
      onResult: onGcResult,
      onError: (e) => log({ level: 'error', msg: `image garbage collection failed: ${e.message}` }),
    });
    cleanups.push(() => gcLoop.stop());

    const storeSummary = async (): Promise<StoreSummary> => {
      const used = new Set(inUse());
      const infos = await imageService.listImages();
      const records = await store.images.list();
      const images = infos.map((i) => {
        const rec = records.filter((r) => r.imageId === i.id);
        const lastUsed = rec
          .map((r) => r.lastUsed)
          .sort()
          .pop();
        return {
          names: [...i.repoTags, ...i.repoDigests],
          id: i.id,
          size: i.size,
          pinned: i.pinned,
          inUse: used.has(i.id),
          ...(lastUsed !== undefined ? { lastUsed } : {}),
        };
      });
      const summary: StoreSummary = {
        root: options.imageServiceEndpoint ?? store.root,
        images,
        totalBytes: images.reduce((a, i) => a + i.size, 0),
        prepull: prepulls.map((p) => ({ ...p })),
        gc: {
          highThresholdPercent: policy.highThresholdPercent,
          lowThresholdPercent: policy.lowThresholdPercent,
          periodMs: gcPeriodMs,
          ...(lastGc !== undefined ? { lastRun: lastGc } : {}),
        },
      };
      try {
        const fs = await usage.imageFsStats();
        summary.usage = {
          capacityBytes: fs.capacityBytes,
          availableBytes: fs.availableBytes,
          usedPercent:
            fs.capacityBytes > 0
              ? Math.round(((fs.capacityBytes - fs.availableBytes) * 1000) / fs.capacityBytes) / 10
              : 0,
        };
      } catch {
        // usage unknown
      }
      return summary;
    };

    // Servers.
    let cri: CriServer | undefined;
    const criListen = options.criListen === undefined ? config.kimg.listen.cri : options.criListen;
    if (criListen !== undefined && criListen !== null) {
      cri = await startCriServer({
        listen: criListen,
        imageService,
        version: { runtimeName: 'kimg', runtimeVersion: '0.0.0' },
        ...(backend === undefined ? { verboseInfo: storeVerboseInfo(store) } : {}),
        drainTimeoutMs: 5000,
        log: (line) => log({ level: 'warn', msg: line, component: 'cri' }),
      });
      const c = cri;
      cleanups.push(() => c.close());
    }
    let http: AgentHttpServer | undefined;
    const metricsAddr =
      options.metricsAddr === undefined
        ? (config.kimg.listen.metrics ?? DEFAULT_METRICS_ADDR)
        : options.metricsAddr;

    const agent: NodeAgent = {
      get url() {
        return http?.url;
      },
      get criAddress() {
        return cri?.address;
      },
      state,
      metrics,
      store,
      manager,
      nodeName,
      rescan: async () => {
        await watcher.scan();
        await reconcile;
      },
      syncAll: async () => {
        await reconcile;
        // A sync in progress counts (no second sync behind it); idle pods are synced now.
        await Promise.all([...workers.values()].map((w) => w.running ?? sync(w)));
      },
      garbageCollect: async () => {
        const r = await gcManager.garbageCollect({ inUse: inUse() });
        onGcResult(r);
        return r;
      },
      inUse,
      storeSummary,
      prepullState: () => prepulls.map((p) => ({ ...p })),
      get prepullDone() {
        return prepullDone;
      },
      close: async () => {
        if (closed) return closed;
        closed = runCleanups();
        return closed;
      },
    };
    let closed: Promise<void> | undefined;
    let prepullDone: Promise<void> = Promise.resolve();

    if (metricsAddr !== null) {
      http = await startAgentHttpServer({ address: metricsAddr, agent, log });
      const h = http;
      cleanups.push(() => h.close());
    }
    if (watchPods) await watcher.start();
    await reconcile;
    prepullDone = runPrepulls().catch((e: unknown) => {
      log({ level: 'error', msg: `pre-pull: ${toKimgError(e).message}` });
    });
    log({
      level: 'info',
      msg: 'node agent started',
      node: nodeName,
      staticPodPath,
      store: store.root,
      ...(http !== undefined ? { http: http.url } : {}),
      ...(cri !== undefined ? { cri: cri.address } : {}),
    });
    return agent;
  } catch (e) {
    await runCleanups();
    throw e;
  }
}
