/**
 * The image service backend: which store images go to (kimg's own, containerd's, or a CRI runtime's)
 * is chosen here, once ({@link imageServiceBackend}), and opened here, once ({@link openImageBackend}).
 * `openNodeRuntime` opens its backend through this factory; the store commands (`kimg pull`, `images`,
 * `rmi`, `inspect`) open only the backend, without the manager, credentials and image GC they do not
 * use.
 *
 * Start-up stays light: containerd's client and the CRI client (gRPC and their protos, ~150 ms) are
 * loaded only when the backend is containerd or CRI, the pull pipeline only for a pull, and the
 * manager (the store-backed image service) only when the caller asks for the image service; `kimg
 * images` reads kimg's store with nothing else loaded, and `kimg pull` adds only the pipeline.
 */
import type { KimgSettings } from '../config/index.js';
import type { ContainerdClient, ContainerdImageService } from '../containerd/index.js';
import type { CriImageService } from '../cri/index.js';
import type { AuthConfig } from '../credentials/index.js';
import { KimgError } from '../errors/index.js';
import type { ImageService, LocalImageService } from '../manager/index.js';
import { formatPlatform } from '../platform/index.js';
import type { ImagePullEvent, ImagePullStats } from '../pull/index.js';
import type { RegistryClient } from '../registry/index.js';
import { openStore, type ImageRecord, type Store } from '../store/index.js';
import type { ImageServiceBackend, NodeRuntimeOverrides } from './types.js';

/** What a face asks for on top of the node's configuration (its flags). */
export interface BackendChoice {
  /** A CRI runtime's ImageService socket (`--image-service-endpoint`): wins over everything else. */
  criEndpoint?: string | undefined;
  /** containerd's socket (`--containerd`): wins over the configuration's `kimg.containerd.address`. */
  containerd?: string | undefined;
  /** Platform to pull (kimg's pipeline: kimg's store and containerd). */
  platform?: string | undefined;
  /** Blobs downloaded at once per pull (kimg's pipeline). */
  concurrency?: number | undefined;
}

/**
 * The backend in effect: a CRI endpoint if given; else containerd when `--containerd` or the
 * configuration's `kimg.containerd` names it (the flag's address, the file's namespace, snapshotter,
 * directWrite and localApply); else kimg's store.
 */
export function imageServiceBackend(
  settings: Pick<KimgSettings, 'containerd'> | undefined,
  choice: BackendChoice = {},
): ImageServiceBackend {
  if (choice.criEndpoint !== undefined && choice.criEndpoint !== '')
    return { kind: 'cri', endpoint: choice.criEndpoint };
  const pipeline = {
    ...(choice.platform !== undefined ? { platform: choice.platform } : {}),
    ...(choice.concurrency !== undefined ? { concurrency: choice.concurrency } : {}),
  };
  const file = settings?.containerd;
  const address =
    choice.containerd !== undefined && choice.containerd !== '' ? choice.containerd : file?.address;
  if (address === undefined) return { kind: 'local', ...pipeline };
  return {
    kind: 'containerd',
    address,
    ...(file?.namespace !== undefined ? { namespace: file.namespace } : {}),
    ...(file?.snapshotter !== undefined ? { snapshotter: file.snapshotter } : {}),
    ...(file?.directWrite !== undefined ? { directWrite: file.directWrite } : {}),
    ...(file?.localApply !== undefined ? { localApply: file.localApply } : {}),
    ...pipeline,
  };
}

/** What {@link openImageBackend} opens the backend with. All optional. */
export interface ImageBackendOptions {
  /** Environment for the store root resolution. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** kimg's store root (`local`); default the store's own resolution. */
  root?: string | undefined;
  /** An open store to use (and not close); else one is opened for `local` only. */
  store?: Store;
  /** The registry client pulls use (not closed); needed by `pull` and by the `local` image service. */
  registry?: RegistryClient;
  /** Registry for names without one. Default `docker.io`. */
  defaultRegistry?: string;
  /** Also build the backend's {@link ImageService} (the node runtime's manager, GC and CRI server). */
  imageService?: boolean;
  /** Progress and results of the image service's pulls. */
  onProgress?: NodeRuntimeOverrides['onProgress'];
  onPulled?: NodeRuntimeOverrides['onPulled'];
}

/** One image pulled by {@link ImageBackend.pull}. */
export interface BackendPullResult {
  /** The name the image is stored under. */
  name: string;
  /** The digest the reference resolved to (an index or a manifest). */
  digest: string;
  /** The image id (config digest). */
  id: string;
  size: number;
  /** The platform pulled, `os/arch[/variant]`. */
  platform: string;
  stats: ImagePullStats;
}

/** An opened backend. */
export interface ImageBackend {
  readonly backend: ImageServiceBackend;
  /** kimg's store: always for `local`, else only when one was given. */
  readonly store: Store | undefined;
  /** The image service, when asked for (`imageService: true`). */
  readonly imageService: ImageService | undefined;
  /** The store-backed service (`local`, when the image service was asked for). */
  readonly local: LocalImageService | undefined;
  /** The service over containerd's store (`containerd`); its `client` reads containerd directly. */
  readonly containerd: ContainerdImageService | undefined;
  /** The CRI client (`cri`, and `containerd`'s CRI plugin on the same socket). */
  readonly cri: CriImageService | undefined;
  /**
   * Pulls `image` through kimg's pipeline into the backend's store (`local`, `containerd`) with
   * `auth` (null = anonymous) and resolves once it is committed.
   * @throws KimgError the pipeline's codes; `INVALID_ARGUMENT` for a `cri` backend or no registry.
   */
  pull(
    image: string,
    options: { auth: AuthConfig | null; signal?: AbortSignal; onProgress?: (e: ImagePullEvent) => void },
  ): Promise<BackendPullResult>;
  /** Closes what was opened here (not an injected store or registry). Idempotent. */
  close(): Promise<void>;
}

function platformOf(r: ImageRecord): string {
  const p = r.platform;
  return formatPlatform({
    os: p.os,
    architecture: p.architecture,
    ...(p.variant ? { variant: p.variant } : {}),
  });
}

async function openContainerd(
  backend: Extract<ImageServiceBackend, { kind: 'containerd' }>,
  o: ImageBackendOptions,
): Promise<{ containerd: ContainerdImageService; cri: CriImageService; client: ContainerdClient }> {
  const [{ ContainerdClient, ContainerdImageService }, { CriImageService }] = await Promise.all([
    import('../containerd/index.js'),
    import('../cri/index.js'),
  ]);
  const client = new ContainerdClient({
    address: backend.address,
    ...(backend.namespace !== undefined ? { namespace: backend.namespace } : {}),
  });
  // containerd's CRI plugin serves on the same socket: its ImageFsInfo is containerd's own answer
  // (image GC reads usage through it too).
  const cri = new CriImageService({ endpoint: `unix://${client.socket}` });
  const containerd = new ContainerdImageService({
    client,
    registry: o.registry,
    snapshotter: backend.snapshotter,
    platform: backend.platform,
    concurrency: backend.concurrency,
    directWrite: backend.directWrite,
    localApply: backend.localApply,
    ...(o.defaultRegistry !== undefined && o.defaultRegistry !== 'docker.io'
      ? { defaultRegistry: o.defaultRegistry }
      : {}),
    ...(o.onProgress !== undefined ? { onProgress: o.onProgress } : {}),
    ...(o.onPulled !== undefined ? { onPulled: o.onPulled } : {}),
    criImageFsInfo: (opts) => cri.imageFsInfo(opts),
  });
  return { containerd, cri, client };
}

/**
 * Opens the backend (see the module comment); close it when done.
 * @throws KimgError store codes (`local`: the store cannot be opened).
 */
export async function openImageBackend(
  backend: ImageServiceBackend,
  options: ImageBackendOptions = {},
): Promise<ImageBackend> {
  const o = options;
  const store =
    o.store ??
    (backend.kind === 'local'
      ? await openStore({ ...(o.root !== undefined ? { root: o.root } : {}), env: o.env ?? process.env })
      : undefined);
  const ownStore = o.store === undefined ? store : undefined;
  try {
    let local: LocalImageService | undefined;
    let containerd: ContainerdImageService | undefined;
    let cri: CriImageService | undefined;
    let client: ContainerdClient | undefined;
    if (backend.kind === 'local' && o.imageService === true) {
      const { localImageService } = await import('./internal/local.js');
      local = localImageService(backend, { ...o, store: store!, registry: requireRegistry(o) });
    } else if (backend.kind === 'containerd') {
      ({ containerd, cri, client } = await openContainerd(backend, o));
    } else if (backend.kind === 'cri') {
      const { CriImageService } = await import('../cri/index.js');
      cri = new CriImageService({
        endpoint: backend.endpoint,
        ...(backend.timeoutMs !== undefined ? { timeoutMs: backend.timeoutMs } : {}),
      });
    }
    let closed: Promise<void> | undefined;
    return {
      backend,
      store,
      imageService: o.imageService === true ? (local ?? containerd ?? cri) : undefined,
      local,
      containerd,
      cri,
      pull: (image, call) => pullInto(backend, { ...o, store, containerd }, image, call),
      close() {
        closed ??= (async () => {
          cri?.close();
          client?.close();
          await ownStore?.close();
        })();
        return closed;
      },
    };
  } catch (e) {
    await ownStore?.close();
    throw e;
  }
}

function requireRegistry(o: ImageBackendOptions): RegistryClient {
  if (o.registry === undefined)
    throw new KimgError('INVALID_ARGUMENT', "a pull through kimg's pipeline needs the registry option");
  return o.registry;
}

async function pullInto(
  backend: ImageServiceBackend,
  o: ImageBackendOptions & { containerd: ContainerdImageService | undefined },
  image: string,
  call: Parameters<ImageBackend['pull']>[1],
): Promise<BackendPullResult> {
  const registry = requireRegistry(o);
  const common = {
    registry,
    auth: call.auth,
    defaultRegistry: o.defaultRegistry,
    signal: call.signal,
    onProgress: call.onProgress,
  };
  if (backend.kind === 'containerd' && o.containerd !== undefined) {
    const { pullIntoContainerd } = await import('../containerd/index.js');
    const r = await pullIntoContainerd(image, {
      ...common,
      client: o.containerd.client,
      platform: backend.platform,
      concurrency: backend.concurrency,
      snapshotter: o.containerd.snapshotter,
      directWrite: backend.directWrite,
      localApply: backend.localApply,
    });
    return {
      name: r.image,
      digest: r.digest,
      id: r.id,
      size: r.size,
      platform: platformOf(r.record),
      stats: r.stats,
    };
  }
  if (backend.kind !== 'local' || o.store === undefined)
    throw new KimgError('INVALID_ARGUMENT', `a ${backend.kind} backend pulls through its own runtime`);
  const { pullImage } = await import('../pull/index.js');
  const r = await pullImage(image, {
    ...common,
    store: o.store,
    platform: backend.platform,
    concurrency: backend.concurrency,
  });
  const rec = r.record;
  return {
    name: rec.name,
    digest: rec.digest,
    id: rec.imageId,
    size: rec.size,
    platform: platformOf(rec),
    stats: r.stats,
  };
}
