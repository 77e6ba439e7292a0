/**
 * `openNodeRuntime`: builds the node's image runtime from the configuration, in dependency order, and
 * closes what it opened in reverse order (also when a later step fails).
 */
import type { NodeConfig } from '../config/index.js';
import {
  PodCredentials,
  ProjectedTokenFileSource,
  type PodCredentialsOptions,
  type TokenSource,
} from '../credentials/index.js';
import { toKimgError } from '../errors/index.js';
import {
  DEFAULT_PINNED_IMAGES,
  FileBackoffStore,
  FileImageGCStateStore,
  FilePullRecords,
  ImageGCManager,
  ImageManager,
  PullBackoff,
  PullRecordsVerifier,
  imageGCPolicyFromConfig,
  imageManagerOptionsFromConfig,
  openNodeVerifier,
  storeUsageHints,
  type FsUsageSource,
  type ImageService,
  type ImageSpec,
  type ReconcileReport,
} from '../manager/index.js';
import { PullProgressHub, type ImagePullEvent } from '../pull/index.js';
import type { CriRuntimeService, criContainerImageInUse } from '../cri/index.js';
import { RegistryClient } from '../registry/index.js';
import { openStore, type Store } from '../store/index.js';
import { openImageBackend, type ImageBackend } from './backend.js';
import { backendUsage, localImageService } from './internal/local.js';
import type {
  ImageServiceBackend,
  NodeRuntime,
  NodeRuntimeOverrides,
  RuntimeCredentialOptions,
} from './types.js';

type Cleanup = () => Promise<void> | void;

/** Runs cleanups last-first; a failing one does not stop the others. Returns the first error. */
async function runCleanups(cleanups: Cleanup[]): Promise<unknown> {
  let first: unknown;
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch (e) {
      first ??= e;
    }
  }
  return first;
}

/**
 * The service-account token source of the plugins' token mode: the caller's (a command-line flag, the
 * TokenRequest API), else the configuration's `serviceAccountTokenDir` (projected token files), else
 * none. `tokenSource: null` opts out of the configuration's.
 */
function tokenSourceOf(config: NodeConfig, c: RuntimeCredentialOptions): TokenSource | undefined {
  if (c.tokenSource === null) return undefined;
  if (c.tokenSource !== undefined) return c.tokenSource;
  const dir = config.kimg.serviceAccountTokenDir;
  return dir !== undefined ? new ProjectedTokenFileSource(dir) : undefined;
}

function credentialOptions(config: NodeConfig, o: NodeRuntimeOverrides): PodCredentialsOptions {
  const env = o.env ?? process.env;
  if (o.credentials === false) return { env, nodeDockerConfig: false };
  const c = o.credentials ?? {};
  const { imageCredentialProviderConfig: configPath, imageCredentialProviderBinDir: binDir } = config.kimg;
  const tokenSource = tokenSourceOf(config, c);
  return {
    env,
    ...(c.nodeDockerConfig !== undefined ? { nodeDockerConfig: c.nodeDockerConfig } : {}),
    ...(c.dockerConfigs !== undefined ? { dockerConfigs: c.dockerConfigs } : {}),
    ...(c.objects !== undefined ? { objects: c.objects } : {}),
    ...(c.objectsOrigin !== undefined ? { objectsOrigin: c.objectsOrigin } : {}),
    ...(configPath !== undefined && binDir !== undefined
      ? {
          plugins: {
            configPath,
            binDir,
            ...(c.spawnPlugin !== undefined ? { spawn: c.spawnPlugin } : {}),
            ...(tokenSource !== undefined ? { tokenSource } : {}),
            ...(c.getServiceAccount !== undefined ? { getServiceAccount: c.getServiceAccount } : {}),
          },
        }
      : {}),
  };
}

async function openVerifier(
  config: NodeConfig,
  store: Store,
  service: ImageService,
  o: NodeRuntimeOverrides,
): Promise<{ verifier: PullRecordsVerifier; report: ReconcileReport }> {
  const onNotice = o.onNotice;
  const common = {
    ...(o.clock !== undefined ? { clock: o.clock } : {}),
    ...(onNotice !== undefined ? { onNotice: (n: { message: string }) => onNotice(n.message) } : {}),
  };
  if (o.verification === 'read-only') {
    const verifier = new PullRecordsVerifier({
      records: new FilePullRecords(store.root),
      policy: config.kubelet.imagePullCredentialsVerificationPolicy,
      allowlist: config.kubelet.preloadedImagesVerificationAllowlist,
      ...common,
    });
    return { verifier, report: { intents: [], reconciled: [], kept: [], problems: [], repairs: [] } };
  }
  return openNodeVerifier({ root: store.root, config: config.kubelet, imageService: service, ...common });
}

/**
 * Opens the node's image runtime (see the module comment in `index.ts`).
 *
 * @throws KimgError `STORE_IO` / store codes (the store cannot be opened),
 *   `CREDENTIAL_PROVIDER_CONFIG_INVALID` (plugins), `CONFIG_INVALID` (verification policy, GC policy).
 *   Whatever was opened before the failure is closed.
 */
export async function openNodeRuntime(
  config: NodeConfig,
  overrides: NodeRuntimeOverrides = {},
): Promise<NodeRuntime> {
  const o = overrides;
  const env = o.env ?? process.env;
  const cleanups: Cleanup[] = [];
  try {
    const root = o.root ?? config.kimg.rootDir;
    const store = o.store ?? (await openStore({ ...(root !== undefined ? { root } : {}), env }));
    if (o.store === undefined) cleanups.push(() => store.close());
    const registry =
      o.registryClient ??
      new RegistryClient({
        ...(config.kimg.hostsDir !== undefined ? { hostsDir: config.kimg.hostsDir } : {}),
        ...o.registry,
      });
    if (o.registryClient === undefined) cleanups.push(() => registry.close());
    const backend: ImageServiceBackend = o.imageService ?? { kind: 'local' };
    const progress = o.progress ?? new PullProgressHub();
    const backendOptions = {
      store,
      registry,
      defaultRegistry: o.defaultRegistry ?? config.kimg.defaultRegistry,
      ...(o.onPulled !== undefined ? { onPulled: o.onPulled } : {}),
      onProgress: (spec: ImageSpec, ev: ImagePullEvent) => {
        progress.event(spec.image, ev);
        o.onProgress?.(spec, ev);
      },
    };
    const opened = await openImageBackend(backend, { ...backendOptions, imageService: true });
    cleanups.push(() => opened.close());
    const wrap = (s: ImageService): ImageService => (o.wrapImageService ? o.wrapImageService(s) : s);
    const imageService = wrap(opened.imageService!);
    const credentials = await PodCredentials.open(credentialOptions(config, o));
    const { verifier, report } = await openVerifier(config, store, imageService, o);
    const backoff = new PullBackoff({
      store: new FileBackoffStore(store.root),
      ...(o.clock !== undefined ? { clock: o.clock } : {}),
    });
    const onProblem = o.credentials === false ? undefined : o.credentials?.onProblem;
    const resolver = credentials.resolver(onProblem);
    const makeManager = (service: ImageService): ImageManager =>
      new ImageManager({
        // kimg's pipeline (`local`, `containerd`) reports every pull to the hub through its events,
        // whoever calls the service (a manager or a CRI server); a `cri` runtime's PullImage reports
        // nothing, so the managers' pulls through it are reported around the call (image lines).
        imageService: backend.kind === 'cri' ? reportPulls(service, progress) : service,
        verifier,
        ...imageManagerOptionsFromConfig(config.kubelet),
        credentials: resolver,
        backoff,
        ...(o.recorder !== undefined ? { recorder: o.recorder } : {}),
        ...(o.clock !== undefined ? { clock: o.clock } : {}),
      });
    const manager = makeManager(imageService);
    const gcPolicy = o.gc?.policy ?? imageGCPolicyFromConfig(config.kubelet);
    const usage = o.gc?.usage ?? backendUsage(opened, store);
    const containerd = opened.containerd;
    // containerd's containers keep their images, whoever created them (the kubelet, `ctr run`); a CRI
    // runtime's containers too: its RemoveImage leaves that check to the kubelet.
    const containersInUse =
      containerd !== undefined
        ? () => containerd.imagesInUse()
        : backend.kind === 'cri'
          ? criContainersInUse(config.kubelet.containerRuntimeEndpoint, backend.timeoutMs, cleanups)
          : undefined;
    const gc = openImageGC(config, store, usage, opened, imageService, gcPolicy, o, containersInUse);
    const platformManagers = new Map<string, ImageManager>();
    let closed: Promise<void> | undefined;
    const runtime: NodeRuntime = {
      config,
      backend,
      store,
      registry,
      imageService,
      progress,
      local: opened.local,
      containerd: opened.containerd,
      credentials,
      verifier,
      reconcileReport: report,
      backoff,
      manager,
      gc,
      gcPolicy,
      usage,
      containersInUse: containersInUse ?? (() => Promise.resolve([])),
      managerFor(platform) {
        if (platform === undefined) return manager;
        let m = platformManagers.get(platform);
        if (m !== undefined) return m;
        if (backend.kind !== 'local') {
          o.onNotice?.(`a CRI image service pulls for its own platform: ${platform} is ignored`);
          m = manager;
        } else m = makeManager(wrap(localImageService(backend, backendOptions, platform)));
        platformManagers.set(platform, m);
        return m;
      },
      markUsed: (spec, when = new Date()) => opened.local?.markUsed(spec, when) ?? Promise.resolve(false),
      close() {
        closed ??= runCleanups(cleanups).then((e) => {
          if (e !== undefined) throw toKimgError(e);
        });
        return closed;
      },
    };
    return runtime;
  } catch (e) {
    await runCleanups(cleanups);
    throw e;
  }
}

/**
 * The images of the containers of the CRI runtime at `endpoint` (the kubelet's
 * `containerRuntimeEndpoint`, which lists the containers even when images go to another
 * `imageServiceEndpoint`), asked on every call. The client is loaded and connected on the first call,
 * so opening the runtime stays light, and closed with the runtime.
 */
function criContainersInUse(
  endpoint: string,
  timeoutMs: number | undefined,
  cleanups: Cleanup[],
): () => Promise<string[]> {
  let opened: Promise<{ client: CriRuntimeService; imageOf: typeof criContainerImageInUse }> | undefined;
  cleanups.push(async () => (await opened?.catch(() => undefined))?.client.close());
  return async () => {
    opened ??= import('../cri/index.js').then((cri) => ({
      client: new cri.CriRuntimeService({ endpoint, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }),
      imageOf: cri.criContainerImageInUse,
    }));
    const { client, imageOf } = await opened;
    return (await client.listContainers()).flatMap((c) => {
      const image = imageOf(c);
      return image !== undefined ? [image] : [];
    });
  };
}

function openImageGC(
  config: NodeConfig,
  store: Store,
  usage: FsUsageSource,
  opened: ImageBackend,
  service: ImageService,
  policy: NonNullable<NodeRuntimeOverrides['gc']>['policy'] & object,
  o: NodeRuntimeOverrides,
  containersInUse: (() => Promise<string[]>) | undefined,
): ImageGCManager {
  const g = o.gc ?? {};
  const local = opened.local !== undefined;
  return new ImageGCManager({
    service,
    usage,
    policy,
    state: new FileImageGCStateStore(store.root),
    // Only kimg's store knows first-detection and last-use times, and has blobs to sweep.
    ...(local ? { hints: storeUsageHints(store), sweep: async () => (await store.gc()).bytesFreed } : {}),
    ...(containersInUse !== undefined ? { containersInUse } : {}),
    pinnedImages: [...DEFAULT_PINNED_IMAGES, ...config.kimg.pinnedImages, ...(g.pinnedImages ?? [])],
    ...(g.nodeName !== undefined ? { nodeName: g.nodeName } : {}),
    ...(g.recorder !== undefined ? { recorder: g.recorder } : {}),
    ...(g.metricsRegistry !== undefined ? { metricsRegistry: g.metricsRegistry } : {}),
    ...(o.clock !== undefined ? { clock: o.clock } : {}),
  });
}

/**
 * `svc` with every pull reported to the progress hub: an image line while it runs, and its final line
 * (done, or the error's code and message) when it ends.
 */
function reportPulls(svc: ImageService, progress: PullProgressHub): ImageService {
  return {
    imageStatus: (s, opts) => svc.imageStatus(s, opts),
    listImages: (opts) => svc.listImages(opts),
    removeImage: (s, opts) => svc.removeImage(s, opts),
    ...(svc.imageFsInfo !== undefined ? { imageFsInfo: (opts) => svc.imageFsInfo!(opts) } : {}),
    pullImage: async (spec, auth, sandbox, opts) => {
      progress.begin(spec.image);
      try {
        const ref = await svc.pullImage(spec, auth, sandbox, opts);
        progress.end(spec.image);
        return ref;
      } catch (e) {
        const err = toKimgError(e);
        progress.end(spec.image, { code: err.code, message: err.message });
        throw e;
      }
    },
  };
}
