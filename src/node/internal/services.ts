/**
 * The agent's services, built in one place from the node configuration: the registry client, kimg's
 * store, the image service (kimg's store with per-layer progress, or a CRI runtime), the credential
 * sources, the pull-records verifier, the persisted back-off, the image manager (one more per other
 * platform a pre-pull names) and the image GC manager. The agent only hands in where its events go.
 */
import type { NodeConfig } from '../../config/index.js';
import { CriImageService } from '../../cri/index.js';
import {
  DEFAULT_PINNED_IMAGES,
  FileBackoffStore,
  FileImageGCStateStore,
  ImageGCManager,
  ImageManager,
  LocalImageService,
  StatfsUsageSource,
  imageGCPolicyFromConfig,
  imageManagerOptionsFromConfig,
  openNodeVerifier,
  storeUsageHints,
  type FsUsageSource,
  type ImageGCEvent,
  type ImageService,
  type ManagerEvent,
} from '../../manager/index.js';
import { RegistryClient, type RegistryClientOptions } from '../../registry/index.js';
import { openStore, type ImagePullEvent, type Store } from '../../store/index.js';
import type { NodeMetrics } from '../metrics.js';
import { AgentCredentials, type WarnOnce } from './agent-credentials.js';
import type { Cleanups } from './cleanups.js';
import { countPulls, timedPluginSpawn } from './instrument.js';
import type { AgentLog } from './log.js';

/** The settings the services are built from (the agent's options). */
export interface AgentServiceSettings {
  config: NodeConfig;
  env: NodeJS.ProcessEnv;
  nodeName: string;
  root?: string;
  imageServiceEndpoint?: string;
  registry?: RegistryClientOptions;
  platform?: string;
  secretsDir?: string;
  nodeDockerConfig?: boolean;
  usage?: FsUsageSource;
}

/** Where the services' events go. */
export interface AgentServiceHooks {
  metrics: NodeMetrics;
  log: AgentLog;
  warnOnce: WarnOnce;
  /** Layer progress of a pull into kimg's store (per image as the pod spells it, default tag applied). */
  onProgress(image: string, ev: ImagePullEvent): void;
  /** An image was committed to kimg's store. */
  onPulled(): void;
  onManagerEvent(e: ManagerEvent): void;
  onGcEvent(e: ImageGCEvent): void;
}

/** The built services. */
export interface AgentServices {
  store: Store;
  /** The node's image service, pulls counted. */
  imageService: ImageService;
  /** kimg's store as image service; undefined with a CRI runtime. */
  local: LocalImageService | undefined;
  /** The CRI runtime; undefined with kimg's store. */
  backend: CriImageService | undefined;
  credentials: AgentCredentials;
  manager: ImageManager;
  /** The image manager pulling for `platform` (the node's for `undefined`), made on first use. */
  managerFor(platform: string | undefined): ImageManager;
  gc: ImageGCManager;
  /** The image filesystem usage GC and the store summary read. */
  usage: FsUsageSource;
}

/**
 * Builds the services; each one's shutdown is registered on `cleanups` (store and clients close after
 * everything registered later).
 * @throws KimgError `STORE_LOCKED`/`STORE_IO`, `FILE_NOT_FOUND` (secrets dir),
 *   `CREDENTIAL_PROVIDER_CONFIG_INVALID`, `CONFIG_INVALID` (puller or GC settings).
 */
export async function openAgentServices(
  s: AgentServiceSettings,
  hooks: AgentServiceHooks,
  cleanups: Cleanups,
): Promise<AgentServices> {
  const { config } = s;
  const { metrics } = hooks;
  const registry = new RegistryClient({
    ...(config.kimg.hostsDir !== undefined ? { hostsDir: config.kimg.hostsDir } : {}),
    ...s.registry,
    warn: (m) => hooks.log({ level: 'warn', msg: m }),
  });
  cleanups.push(() => registry.close());
  const root = s.root ?? config.kimg.rootDir;
  const store = await openStore({ ...(root !== undefined ? { root } : {}), env: s.env });
  cleanups.push(() => store.close());
  const backend =
    s.imageServiceEndpoint !== undefined
      ? new CriImageService({ endpoint: s.imageServiceEndpoint })
      : undefined;
  if (backend !== undefined) cleanups.push(() => backend.close());
  const imageServiceFor = (
    platform: string | undefined,
  ): { local?: LocalImageService; service: ImageService } => {
    if (backend !== undefined) {
      if (platform !== undefined)
        hooks.log({
          level: 'warn',
          msg: `a CRI image service pulls for its own platform: ${platform} is ignored`,
        });
      return { service: countPulls(backend, metrics) };
    }
    const local = new LocalImageService({
      store,
      registry,
      ...(platform !== undefined ? { platform } : {}),
      ...(config.kimg.defaultRegistry !== 'docker.io'
        ? { defaultRegistry: config.kimg.defaultRegistry }
        : {}),
      onProgress: (spec, ev) => hooks.onProgress(spec.image, ev),
      onPulled: () => hooks.onPulled(),
    });
    return { local, service: countPulls(local, metrics) };
  };
  const { local, service: imageService } = imageServiceFor(s.platform);
  const credentials = await openCredentials(s, hooks);
  const { verifier } = await openNodeVerifier({
    root: store.root,
    config: config.kubelet,
    imageService,
    onNotice: (n) => hooks.log({ level: 'warn', msg: n.message }),
  });
  const backoffStore = new FileBackoffStore(store.root);
  const makeManager = (service: ImageService): ImageManager =>
    new ImageManager({
      imageService: service,
      verifier,
      ...imageManagerOptionsFromConfig(config.kubelet),
      credentials: credentials.resolver,
      backoffStore,
      recorder: { record: (e) => hooks.onManagerEvent(e) },
    });
  const manager = makeManager(imageService);
  const platformManagers = new Map<string, ImageManager>();
  const managerFor = (platform: string | undefined): ImageManager => {
    if (platform === undefined) return manager;
    let m = platformManagers.get(platform);
    if (m === undefined) platformManagers.set(platform, (m = makeManager(imageServiceFor(platform).service)));
    return m;
  };
  const usage = s.usage ?? imageFsUsage(store, backend);
  const gc = new ImageGCManager({
    service: imageService,
    usage,
    policy: imageGCPolicyFromConfig(config.kubelet),
    nodeName: s.nodeName,
    state: new FileImageGCStateStore(store.root),
    ...(backend === undefined
      ? { hints: storeUsageHints(store), sweep: async () => (await store.gc()).bytesFreed }
      : {}),
    pinnedImages: [...DEFAULT_PINNED_IMAGES, ...config.kimg.pinnedImages],
    metricsRegistry: metrics.registry,
    recorder: { record: (e) => hooks.onGcEvent(e) },
  });
  return { store, imageService, local, backend, credentials, manager, managerFor, gc, usage };
}

/** The credential sources: the secrets directory, the node docker config, the exec plugins (timed). */
function openCredentials(s: AgentServiceSettings, hooks: AgentServiceHooks): Promise<AgentCredentials> {
  const { imageCredentialProviderConfig: configPath, imageCredentialProviderBinDir: binDir } = s.config.kimg;
  return AgentCredentials.open({
    ...(s.secretsDir !== undefined ? { secretsDir: s.secretsDir } : {}),
    env: s.env,
    nodeDockerConfig: s.nodeDockerConfig !== false,
    ...(configPath !== undefined && binDir !== undefined
      ? { plugins: { configPath, binDir, spawn: timedPluginSpawn(hooks.metrics) } }
      : {}),
    warnOnce: hooks.warnOnce,
  });
}

/**
 * The image filesystem's usage: kimg's store root (`statfs`, used bytes = blobs and ingests), or the
 * filesystem a CRI runtime reports (`statfs` of its mount point, used bytes as reported).
 */
function imageFsUsage(store: Store, backend: CriImageService | undefined): FsUsageSource {
  if (backend === undefined)
    return new StatfsUsageSource(store.root, async () => {
      const df = await store.df();
      return df.blobs.bytes + df.ingests.bytes;
    });
  return {
    imageFsStats: async () => {
      const fs = (await backend.imageFsInfo())[0];
      const st = await new StatfsUsageSource(fs?.mountpoint || store.root).imageFsStats();
      return fs !== undefined ? { ...st, usedBytes: fs.usedBytes } : st;
    },
  };
}
