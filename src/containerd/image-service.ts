/**
 * The CRI image service over containerd's own store: PullImage runs kimg's pipeline into containerd
 * (`pullIntoContainerd`); ListImages / ImageStatus / RemoveImage / ImageFsInfo answer from containerd's
 * image records and content with the semantics of containerd's CRI plugin (containerd
 * `pkg/cri/server/image_{list,status,remove}.go`, `helpers.go` localResolve, `pkg/cri/store/image`):
 *
 * - An image is a config digest (its id); every record of the namespace whose target resolves (for
 *   this platform) to that config is one of its names. Names `<repo>:<tag>` are repo tags,
 *   `<repo>@<digest>` repo digests, `sha256:<id>` neither. Records whose content cannot be read are
 *   left out, as CRI's image store leaves them out.
 * - Size = target + the platform's manifest + config + layers, as containerd's `Image.Size` walks it.
 * - Lookup: a digest or id (full, or an unambiguous prefix of the hex) is an id; anything else is
 *   normalized like `ParseDockerRef` and looked up exactly, then widened to its id.
 * - RemoveImage deletes every name of the image, the last one synchronously (containerd then collects
 *   the image's content and snapshots at once); an absent image is success.
 * - ImageFsInfo is containerd's CRI answer on the same socket when the CRI plugin is there, else the
 *   sum of the snapshotter's usage.
 * - A verbose ImageStatus shows the image's config blob as containerd's CRI renders it: this service
 *   reads the blob (`readImageConfig`), src/cri renders it (`configVerboseInfo`).
 *
 * Targets are immutable, so what a target resolves to is cached by digest.
 */
import type { AuthConfig } from '../credentials/index.js';
import { KimgError } from '../errors/index.js';
import {
  pullWithCallbacks,
  userFromImageConfig,
  type PullCallbacks,
  type ImageFsUsage,
  type ImageInfo,
  type ImageService,
  type ImageServiceCallOptions,
  type ImageSpec,
  type PodSandboxInfo,
} from '../manager/index.js';
import {
  isIndexMediaType,
  MAX_CONFIG_BYTES,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '../oci/index.js';
import {
  defaultMatcher,
  hostPlatform,
  parsePlatform,
  platformMatcher,
  selectManifest,
} from '../platform/index.js';
import { tryParseReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/index.js';
import { containerdStatus, type ContainerdClient, type ContainerdImage } from './client.js';
import { containerImageInUse } from './containers.js';
import { LABEL_CRI_PINNED } from './labels.js';
import { pullIntoContainerd, type ContainerdPullResult } from './pull.js';

/**
 * Options of {@link ContainerdImageService}. `onProgress` and `onPulled` ({@link PullCallbacks}) are
 * the ones `LocalImageService` takes; `onPulled` is also given containerd's view of the pull.
 */
export interface ContainerdImageServiceOptions extends PullCallbacks<ContainerdPullResult> {
  client: ContainerdClient;
  /** Needed by `pullImage` only (listing, status and removal never reach a registry). */
  registry?: RegistryClient | undefined;
  /** Snapshotter to unpack into. Default `overlayfs`. */
  snapshotter?: string | undefined;
  /** Platform to pull and to resolve indexes for (`os/arch[/variant]`). Default the host. */
  platform?: string | undefined;
  defaultRegistry?: string | undefined;
  concurrency?: number | undefined;
  /** Unpack during the pull (default true). */
  unpack?: boolean | undefined;
  /** See `ContainerdPullOptions.directWrite` (default true). */
  directWrite?: boolean | undefined;
  /** See `ContainerdPullOptions.localApply` (default false). */
  localApply?: boolean | undefined;
  /**
   * containerd's CRI ImageFsInfo (the CRI plugin serves on containerd's socket): the composition root
   * passes it. Without it, or when it fails, the snapshotter's summed usage is answered.
   */
  criImageFsInfo?: ((options?: ImageServiceCallOptions) => Promise<ImageFsUsage[]>) | undefined;
}

interface TargetInfo {
  id: string;
  size: number;
  user: string | undefined;
}

interface ResolvedImage {
  id: string;
  names: string[];
  size: number;
  user: string | undefined;
  pinned: boolean;
}

function isTagged(name: string): boolean {
  // `sha256:<hex>` is the id record: neither a tag nor a digest for CRI.
  if (name.includes('@') || /^[a-z0-9]+:[a-f0-9]+$/.test(name)) return false;
  return name.lastIndexOf(':') > name.lastIndexOf('/');
}

function checkSpec(spec: ImageSpec | undefined, call: string): asserts spec is ImageSpec {
  if (typeof spec !== 'object' || spec === null || typeof spec.image !== 'string' || spec.image === '') {
    throw new KimgError('INVALID_ARGUMENT', `${call} needs an image spec with a non-empty image`, {
      input: String((spec as { image?: unknown } | undefined)?.image ?? ''),
    });
  }
}

/** The CRI image service over containerd (see the module comment). */
export class ContainerdImageService implements ImageService {
  readonly client: ContainerdClient;
  readonly registry: RegistryClient | undefined;
  readonly snapshotter: string;
  private readonly options: ContainerdImageServiceOptions;
  private readonly targets = new Map<string, Promise<TargetInfo>>();

  constructor(options: ContainerdImageServiceOptions) {
    this.client = options.client;
    this.registry = options.registry;
    this.snapshotter = options.snapshotter ?? 'overlayfs';
    this.options = options;
  }

  private matcher() {
    return this.options.platform !== undefined
      ? platformMatcher(parsePlatform(this.options.platform))
      : defaultMatcher(hostPlatform());
  }

  /** What a target resolves to for this platform; cached (content is immutable). */
  private resolveTarget(img: ContainerdImage, signal?: AbortSignal): Promise<TargetInfo> {
    const key = img.target.digest;
    let p = this.targets.get(key);
    if (!p) {
      p = this.readTarget(img, signal);
      this.targets.set(key, p);
      p.catch(() => this.targets.delete(key));
    }
    return p;
  }

  private async readTarget(img: ContainerdImage, signal?: AbortSignal): Promise<TargetInfo> {
    const o = signal !== undefined ? { signal } : {};
    const readJson = async <T>(digest: string): Promise<T> =>
      JSON.parse((await this.client.contentRead(digest, o)).toString('utf8')) as T;
    let size = img.target.size;
    let manifestDigest = img.target.digest;
    if (isIndexMediaType(img.target.mediaType)) {
      const index = await readJson<ImageIndex>(img.target.digest);
      const chosen = selectManifest(index.manifests, this.matcher(), { index: img.name });
      manifestDigest = chosen.digest;
      size += chosen.size;
    }
    const manifest = await readJson<ImageManifest>(manifestDigest);
    size += manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0);
    const config = await readJson<ImageConfig>(manifest.config.digest);
    const user = typeof config.config?.User === 'string' ? config.config.User : undefined;
    return { id: manifest.config.digest, size, user };
  }

  /** Every image of the namespace, grouped by id. */
  private async images(signal?: AbortSignal): Promise<Map<string, ResolvedImage>> {
    const records = await this.client.imageList([], signal !== undefined ? { signal } : {});
    // CRI's image store takes an image's size from the record it saw first (later names only add
    // references): the oldest name's target decides. The `sha256:<id>` record is left to the end: every
    // pull re-points it at its own target, so its current target says nothing about the first one.
    const isId = (n: string): number => (/^sha256:[a-f0-9]{64}$/.test(n) ? 1 : 0);
    records.sort(
      (a, b) =>
        isId(a.name) - isId(b.name) ||
        (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0) ||
        a.name.localeCompare(b.name),
    );
    const resolved = await Promise.all(
      records.map(async (r) => {
        try {
          return await this.resolveTarget(r, signal);
        } catch {
          return undefined; // CRI leaves out images whose content it cannot read.
        }
      }),
    );
    const out = new Map<string, ResolvedImage>();
    records.forEach((r, i) => {
      const t = resolved[i];
      if (t === undefined) return;
      let g = out.get(t.id);
      if (!g) out.set(t.id, (g = { id: t.id, names: [], size: t.size, user: t.user, pinned: false }));
      g.names.push(r.name);
      if (r.labels[LABEL_CRI_PINNED] === 'pinned') g.pinned = true;
    });
    return out;
  }

  /** Finds the image `refOrId` names (containerd CRI localResolve). */
  private async find(refOrId: string, signal?: AbortSignal): Promise<ResolvedImage | undefined> {
    const all = await this.images(signal);
    if (/^sha256:[a-f0-9]{64}$/.test(refOrId)) return all.get(refOrId);
    const parsed = tryParseReference(
      refOrId,
      this.options.defaultRegistry !== undefined ? { defaultRegistry: this.options.defaultRegistry } : {},
    );
    if (parsed.ok) {
      const name = parsed.reference.pullRef;
      for (const img of all.values()) if (img.names.includes(name)) return img;
    }
    // Not a known name: an id, possibly shortened (CRI's image store looks ids up in a digest set).
    const hex = /^(?:sha256:)?([a-f0-9]+)$/.exec(refOrId)?.[1];
    if (hex === undefined) return undefined;
    const matches = [...all.values()].filter((i) => i.id.startsWith(`sha256:${hex}`));
    return matches.length === 1 ? matches[0] : undefined;
  }

  private toInfo(img: ResolvedImage): ImageInfo {
    const info: ImageInfo = {
      id: img.id,
      repoTags: img.names.filter(isTagged).sort(),
      repoDigests: img.names.filter((n) => n.includes('@')).sort(),
      size: img.size,
      pinned: img.pinned,
      ...userFromImageConfig(img.user),
    };
    return info;
  }

  async imageStatus(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<ImageInfo | undefined> {
    checkSpec(spec, 'imageStatus');
    const img = await this.find(spec.image, options?.signal);
    return img ? this.toInfo(img) : undefined;
  }

  async pullImage(
    spec: ImageSpec,
    auth: AuthConfig | undefined,
    _sandbox?: PodSandboxInfo,
    options?: ImageServiceCallOptions,
  ): Promise<string> {
    checkSpec(spec, 'pullImage');
    if (this.registry === undefined)
      throw new KimgError('INVALID_ARGUMENT', 'ContainerdImageService.pullImage needs the registry option');
    const registry = this.registry;
    const result = await pullWithCallbacks(spec, this.options, (onProgress) =>
      pullIntoContainerd(spec.image, {
        client: this.client,
        registry,
        auth: auth ?? null,
        platform: this.options.platform,
        defaultRegistry: this.options.defaultRegistry,
        concurrency: this.options.concurrency,
        unpack: this.options.unpack,
        directWrite: this.options.directWrite,
        localApply: this.options.localApply,
        snapshotter: this.snapshotter,
        signal: options?.signal,
        onProgress,
      }),
    );
    return result.id;
  }

  async listImages(options?: ImageServiceCallOptions): Promise<ImageInfo[]> {
    const all = await this.images(options?.signal);
    return [...all.values()].map((i) => this.toInfo(i));
  }

  async removeImage(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<void> {
    checkSpec(spec, 'removeImage');
    const img = await this.find(spec.image, options?.signal);
    if (!img) return;
    const names = [...img.names];
    for (let i = 0; i < names.length; i++) {
      const last = i === names.length - 1;
      await this.client.imageDelete(names[i]!, {
        sync: last,
        ...(options?.signal ? { signal: options.signal } : {}),
      });
    }
  }

  async imageFsInfo(options?: ImageServiceCallOptions): Promise<ImageFsUsage[]> {
    const viaCri = this.options.criImageFsInfo;
    if (viaCri) {
      try {
        const r = await viaCri(options);
        if (r.length > 0) return r;
      } catch {
        // No CRI plugin on this socket: the snapshotter's own usage.
      }
    }
    let used = 0;
    let inodes = 0;
    for (const s of await this.client.snapshotList(this.snapshotter)) {
      try {
        const u = await this.client.snapshotUsage(this.snapshotter, s.name);
        used += u.size;
        inodes += u.inodes;
      } catch (e) {
        if (containerdStatus(e) !== 'NOT_FOUND') throw e;
      }
    }
    return [{ timestamp: Date.now() * 1e6, mountpoint: '', usedBytes: used, inodesUsed: inodes }];
  }

  /**
   * The config blob of image `id` (its config digest) from containerd's content store, read with the
   * bound every config read has: what a verbose ImageStatus renders (`configVerboseInfo` of src/cri).
   * @throws `CONTAINERD_ERROR` (NOT_FOUND) when containerd holds no such blob.
   */
  async readImageConfig(id: string, options?: ImageServiceCallOptions): Promise<Buffer> {
    return this.client.contentRead(id, {
      maxBytes: MAX_CONFIG_BYTES,
      ...(options?.signal !== undefined ? { signal: options.signal } : {}),
    });
  }

  /**
   * The images this namespace's containers use, running or not (image GC's "in use", asked afresh on
   * every run): each container's image id from containerd's CRI metadata, else its image name
   * ({@link containerImageInUse}).
   * @throws KimgError `CONTAINERD_UNAVAILABLE` / `CONTAINERD_ERROR`: in-use unknown, so GC must not run.
   */
  async imagesInUse(options?: ImageServiceCallOptions): Promise<string[]> {
    const containers = await this.client.containerList([], options?.signal ? { signal: options.signal } : {});
    const images = new Set<string>();
    for (const c of containers) {
      const image = containerImageInUse(c);
      if (image !== undefined) images.add(image);
    }
    return [...images];
  }
}
