/**
 * kimg's own image service: the CRI `ImageService` RPCs over kimg's on-disk store and a registry
 * client, so the image manager (and `kimg serve`, `kimg ensure`) run without containerd.
 *
 * Semantics follow containerd's CRI image service:
 * - Names are resolved like containerd's `LocalResolve`: a full image id (`sha256:<hex>`) is an id;
 *   anything else is normalized (`busybox:latest` → `docker.io/library/busybox:latest`, the store's
 *   record name `Reference.pullRef`) and looked up by name; when that finds nothing the input is tried
 *   as an image id or a hex prefix of one (≥ 4 characters), as containerd's digest set does.
 * - An image is its image id (the config digest) per runtime handler: `repoTags` are the tagged names
 *   of every record with that id, `repoDigests` `<repository>@<digest>` for each record; `size` is the
 *   content size of the record (index + manifest + config + compressed layers, containerd's
 *   `images.Size`); `uid`/`username` come from the config's `User` (the part before `:`; numeric →
 *   uid, otherwise a user name; containerd `getUserFromImage`).
 * - A repo digest (`<repository>@<digest>`) names the image even when it was pulled by tag, as
 *   containerd's repo-digest record does; a tag that moved keeps the old image under its repo digest.
 * - `pullImage` returns the image id; `removeImage` removes every record of the image the spec names
 *   (by name: the image with all its tags, like containerd's RemoveImage) and succeeds when absent.
 * - The runtime handler is part of an image's identity (records are keyed by name and handler).
 *
 * Last use: image GC reads a record's `lastUsed`. The CRI has no "used" call (the kubelet
 * tracks use itself), so this service never changes `lastUsed` on a status query; callers that start
 * containers (`kimg ensure`, the node agent) call {@link LocalImageService.markUsed} for the images
 * they use. A pull keeps the previous `lastUsed` of a re-pulled name and sets it to now for a new one.
 *
 * Source: containerd `internal/cri/server/images/{service.go (LocalResolve), image_status.go
 * (toCRIImage, getUserFromImage), image_pull.go, image_remove.go, imagefs_info.go}` @ v2.0; cri-api
 * `api.proto`; docs/design/upstream-parity.md.
 */
import { KimgError, isKimgError } from '../errors/index.js';
import type { AuthConfig } from '../credentials/index.js';
import type { Platform } from '../platform/index.js';
import { MAX_CONFIG_BYTES } from '../oci/index.js';
import { tryParseReference, type Reference } from '../reference/index.js';
import type { RegistryClient } from '../registry/index.js';
import { pullImage as storePullImage } from '../pull/index.js';
import {
  isTaggedName,
  recordsForReference,
  repositoryOfName,
  type ImageRecord,
  type Store,
} from '../store/index.js';
import type {
  ImageFsUsage,
  ImageInfo,
  ImageService,
  ImageServiceCallOptions,
  ImageSpec,
  PodSandboxInfo,
} from './image-service.js';
import { pullWithCallbacks, type PullCallbacks } from './pull-callbacks.js';

/** Options of {@link LocalImageService} (`onProgress`, `onPulled`: {@link PullCallbacks}). */
export interface LocalImageServiceOptions extends PullCallbacks {
  /** An open store; the service does not close it. */
  store: Store;
  /** The registry client pulls go through (its own credentials are not used: each pull passes `auth`). */
  registry: RegistryClient;
  /** Platform to pull (`os/arch[/variant]` or an object). Default: the host. */
  platform?: string | Platform;
  /** Registry for single-component names. Default `docker.io`. */
  defaultRegistry?: string;
  /** Blobs downloaded at once per pull. Default 3 (containerd `max_concurrent_downloads`). */
  concurrency?: number;
}

const FULL_ID = /^sha256:[a-f0-9]{64}$/;

/** containerd `getUserFromImage`: the user part before `:`, numeric → uid, otherwise a user name. */
export function userFromImageConfig(user: string | undefined): { uid?: number; username?: string } {
  if (user === undefined || user === '') return {};
  const name = user.split(':')[0] ?? '';
  if (/^[+-]?\d+$/.test(name)) {
    const n = Number(name);
    if (Number.isSafeInteger(n)) return { uid: n };
  }
  return name === '' ? {} : { username: name };
}

function checkSpec(spec: ImageSpec | undefined, call: string): asserts spec is ImageSpec {
  if (typeof spec !== 'object' || spec === null || typeof spec.image !== 'string' || spec.image === '') {
    throw new KimgError('INVALID_ARGUMENT', `${call} needs an image spec with a non-empty image`, {
      input: String((spec as { image?: unknown } | undefined)?.image ?? ''),
    });
  }
}

function checkSignal(options: ImageServiceCallOptions | undefined): void {
  if (options?.signal?.aborted) {
    throw new KimgError('ABORTED', 'the image service call was cancelled', { cause: options.signal.reason });
  }
}

/** The CRI image service over kimg's store (see the module comment). */
export class LocalImageService implements ImageService {
  readonly store: Store;
  readonly registry: RegistryClient;
  private readonly options: LocalImageServiceOptions;

  constructor(options: LocalImageServiceOptions) {
    if (
      typeof options !== 'object' ||
      options === null ||
      options.store === undefined ||
      options.registry === undefined
    ) {
      throw new KimgError('INVALID_ARGUMENT', 'LocalImageService needs {store, registry}');
    }
    this.store = options.store;
    this.registry = options.registry;
    this.options = options;
  }

  /** Parses a name the way the store names records; undefined when it is not a reference. */
  private parseName(input: string): Reference | undefined {
    try {
      const r = tryParseReference(
        input,
        this.options.defaultRegistry !== undefined ? { defaultRegistry: this.options.defaultRegistry } : {},
      );
      return r.ok ? r.reference : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The records of the image `spec` names (all names of that image id, for the spec's handler): empty
   * when absent. `INVALID_ARGUMENT` when an id prefix is ambiguous.
   */
  async resolveRecords(spec: ImageSpec): Promise<ImageRecord[]> {
    checkSpec(spec, 'resolving an image');
    const handler = spec.runtimeHandler ?? '';
    const input = spec.image;
    let imageId: string | undefined;
    if (FULL_ID.test(input)) {
      imageId = input;
    } else {
      const ref = this.parseName(input);
      if (ref !== undefined) {
        // By name, or by repo digest for an image pulled by tag (see the store's `recordsForReference`).
        const named = await recordsForReference(this.store.images, ref, handler);
        imageId = named[0]?.imageId;
      }
    }
    if (imageId === undefined) {
      const byId = (await this.store.images.findByImageId(input)).filter((r) => r.runtimeHandler === handler);
      const ids = new Set(byId.map((r) => r.imageId));
      if (ids.size > 1) {
        throw new KimgError(
          'INVALID_ARGUMENT',
          `image id prefix ${JSON.stringify(input)} is ambiguous: it matches ${[...ids].join(', ')}`,
          {
            input,
            items: [...ids],
          },
        );
      }
      return byId;
    }
    const all = await this.store.images.findByImageId(imageId);
    return all.filter((r) => r.runtimeHandler === handler && r.imageId === imageId);
  }

  /** The CRI `Image` of one image id's records (all with the same id and handler, non-empty). */
  private async toInfo(records: ImageRecord[]): Promise<ImageInfo> {
    const first = records[0];
    if (first === undefined) throw new KimgError('INTERNAL', 'toInfo needs at least one record');
    const repoTags: string[] = [];
    const repoDigests = new Set<string>();
    for (const r of records) {
      if (isTaggedName(r.name)) repoTags.push(r.name);
      repoDigests.add(`${repositoryOfName(r.name)}@${r.digest}`);
    }
    const info: ImageInfo = {
      id: first.imageId,
      repoTags: repoTags.sort(),
      repoDigests: [...repoDigests].sort(),
      size: Math.max(...records.map((r) => r.size)),
      pinned: records.some((r) => r.pinned === true),
      spec:
        first.runtimeHandler === ''
          ? { image: first.imageId }
          : { image: first.imageId, runtimeHandler: first.runtimeHandler },
    };
    Object.assign(info, await this.userOf(first.imageId));
    return info;
  }

  private async userOf(imageId: string): Promise<{ uid?: number; username?: string }> {
    let text: string;
    try {
      text = (await this.store.content.readBlob(imageId, { maxBytes: MAX_CONFIG_BYTES })).toString('utf8');
    } catch (e) {
      if (isKimgError(e) && e.code === 'BLOB_NOT_FOUND') {
        throw new KimgError(
          'STORE_CORRUPT',
          `the config ${imageId} of a stored image is missing from the store: run \`kimg store verify --repair\``,
          { input: imageId, cause: e },
        );
      }
      throw e;
    }
    try {
      const config = JSON.parse(text) as { config?: { User?: unknown } };
      const user = config.config?.User;
      return userFromImageConfig(typeof user === 'string' ? user : undefined);
    } catch {
      return {};
    }
  }

  /**
   * The image `spec` names (name, full id or id prefix), or undefined when absent.
   * @throws KimgError `INVALID_ARGUMENT` (empty spec, ambiguous id prefix), store codes.
   */
  async imageStatus(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<ImageInfo | undefined> {
    checkSignal(options);
    const records = await this.resolveRecords(spec);
    return records.length === 0 ? undefined : this.toInfo(records);
  }

  /**
   * Pulls `spec.image` for `spec.runtimeHandler` with `auth` (undefined = anonymous) and returns the
   * image id. The sandbox is not used (kimg keeps no per-sandbox state).
   * @throws KimgError the store pull's codes (`UNAUTHORIZED`, `NOT_FOUND`, reference codes, …).
   */
  async pullImage(
    spec: ImageSpec,
    auth: AuthConfig | undefined,
    _sandbox?: PodSandboxInfo,
    options?: ImageServiceCallOptions,
  ): Promise<string> {
    checkSpec(spec, 'pullImage');
    const result = await pullWithCallbacks(spec, this.options, (onProgress) =>
      storePullImage(spec.image, {
        store: this.store,
        registry: this.registry,
        auth: auth ?? null,
        platform: this.options.platform,
        defaultRegistry: this.options.defaultRegistry,
        runtimeHandler: spec.runtimeHandler ?? '',
        concurrency: this.options.concurrency,
        signal: options?.signal,
        onProgress,
      }),
    );
    return result.record.imageId;
  }

  /** Every present image: one entry per image id and runtime handler. @throws KimgError store codes. */
  async listImages(options?: ImageServiceCallOptions): Promise<ImageInfo[]> {
    checkSignal(options);
    const groups = new Map<string, ImageRecord[]>();
    for (const r of await this.store.images.list()) {
      const key = `${r.imageId},${r.runtimeHandler}`;
      const g = groups.get(key);
      if (g) g.push(r);
      else groups.set(key, [r]);
    }
    const out: ImageInfo[] = [];
    for (const g of groups.values()) out.push(await this.toInfo(g));
    return out;
  }

  /**
   * Removes every record of the image `spec` names, for its runtime handler; absent = success. Blobs
   * stay until store GC. @throws KimgError `INVALID_ARGUMENT` (ambiguous prefix), store codes.
   */
  async removeImage(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<void> {
    checkSignal(options);
    const records = await this.resolveRecords(spec);
    for (const r of records)
      await this.store.images.delete({ name: r.name, runtimeHandler: r.runtimeHandler });
  }

  /** The store's filesystem: bytes of blobs and ingests under the root. @throws KimgError store codes. */
  async imageFsInfo(options?: ImageServiceCallOptions): Promise<ImageFsUsage[]> {
    checkSignal(options);
    const df = await this.store.df();
    return [
      {
        timestamp: Date.now() * 1_000_000,
        mountpoint: this.store.root,
        usedBytes: df.blobs.bytes + df.ingests.bytes,
        inodesUsed: df.blobs.count + df.ingests.count,
      },
    ];
  }

  /**
   * Marks the image `spec` names as used now (sets `lastUsed` of all its records), for image GC.
   * Returns false when the image is absent.
   * @throws KimgError store codes.
   */
  async markUsed(spec: ImageSpec, when: Date = new Date()): Promise<boolean> {
    const records = await this.resolveRecords(spec);
    for (const r of records)
      await this.store.images.touch({ name: r.name, runtimeHandler: r.runtimeHandler }, when);
    return records.length > 0;
  }
}
