/**
 * `unpackImage`: a stored image → an OCI runtime bundle (`DIR/rootfs` + `DIR/config.json`), or, with
 * `snapshots`, → one overlay-ready directory per layer diff keyed by chain ID plus a bundle whose
 * rootfs is the mount point for them.
 *
 * Per layer: the blob is streamed from the content store through the decompressor into the tar reader
 * and the applier, while the decompressed bytes are hashed (the diff ID); a digest other than
 * `rootfs.diff_ids[i]` stops the unpack with `DIGEST_MISMATCH` naming the layer, and the partial
 * rootfs is removed. Every byte is read once. In snapshot mode layers do not depend on each other, so
 * they are extracted concurrently; in bundle mode they are applied in order (each layer's inflate runs
 * on libuv's pool and its hash on a worker thread, overlapping the writes on the main thread).
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lchownSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { posix } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { open, type FileHandle } from 'node:fs/promises';
import { KimgError, quote } from '../errors/index.js';
import type { Descriptor, ImageManifest } from '../oci/index.js';
import { chainIds } from '../oci/index.js';
import {
  createHasherFactory,
  lookupImage,
  type ContentStore,
  type HasherFactory,
  type ImageRecord,
  type ImageStore,
} from '../store/index.js';
import {
  applyDirTimes,
  LayerApplier,
  type ApplyMode,
  type DirTimes,
  type LayerApplyStats,
} from './internal/apply.js';
import { decompressor, layerCompression } from './internal/decompress.js';
import { lstatOrUndefined, resolveInRoot } from './internal/resolve.js';
import { mknodWhiteouts, setXattrs } from './internal/special.js';
import { toRuntimeSpec, type ImageConfigFile, type RuntimeSpec } from './internal/runtime-config.js';
import { readTar } from './internal/tar.js';
import { resolveUser, readRootfsFile, type ResolvedUser } from './internal/user.js';

/** What `unpackImage` reads: the image records and the blobs. */
export interface UnpackSource {
  images: ImageStore;
  /** The blobs; a content store's own hasher (`LocalContentStore.hasher`) is shared when it has one. */
  content: Pick<ContentStore, 'openRead' | 'readBlob'> & {
    hasher?: HasherFactory;
    /** Where a blob's file is, for a local store (`LocalContentStore.blobPath`). */
    blobPath?(digest: string): string;
  };
}

/** Progress of an unpack, per layer. */
export type UnpackEvent =
  | { type: 'resolved'; image: string; manifest: string; layers: number }
  | { type: 'layer-start'; index: number; digest: string; diffId: string; size: number }
  | { type: 'layer-bytes'; index: number; digest: string; completed: number; total: number }
  | {
      type: 'layer-done';
      index: number;
      digest: string;
      diffId: string;
      entries: number;
      files: number;
      bytes: number;
    }
  | { type: 'layer-cached'; index: number; digest: string; chainId: string }
  | { type: 'warning'; message: string };

export interface UnpackOptions {
  /** Unpack as a non-root user: no owners, devices as empty files, a user namespace in config.json. */
  rootless?: boolean;
  /** Unpack into a non-empty directory (its `rootfs` and `config.json` are replaced). */
  force?: boolean;
  /**
   * Overlay-ready layer directories keyed by chain ID here; the bundle's rootfs is their mount point.
   * Needs root and no `rootless` (`INVALID_ARGUMENT` otherwise, before anything is written).
   */
  snapshots?: string;
  /** Runtime handler the image is stored for (default `''`). */
  runtimeHandler?: string;
  /** Layers extracted at once in snapshot mode (default 2: the machine's cores are the limit). */
  concurrency?: number;
  /** Hasher for diff IDs (default: the content store's, else a worker-thread pool for this call). */
  hasher?: HasherFactory;
  onProgress?: (e: UnpackEvent) => void;
  signal?: AbortSignal;
}

export const DEFAULT_UNPACK_OPTIONS = { rootless: false, force: false, concurrency: 2 } as const;

/** One layer of the result. */
export interface UnpackedLayer {
  digest: string;
  mediaType: string;
  diffId: string;
  chainId: string;
  /** The layer's snapshot directory (snapshot mode). */
  snapshot?: string;
  /** Whether the snapshot existed already (snapshot mode). */
  cached?: boolean;
  stats?: LayerApplyStats;
}

export interface UnpackResult {
  image: string;
  manifestDigest: string;
  imageId: string;
  bundle: string;
  rootfs: string;
  config: RuntimeSpec;
  layers: UnpackedLayer[];
  /** Snapshot mode: the overlay `lowerdir` list, top layer first. */
  lowerDirs?: string[];
}

function invalidConfig(message: string, digest: string): KimgError {
  return new KimgError('MANIFEST_INVALID', message, { input: digest });
}

async function readJson<T>(content: UnpackSource['content'], digest: string): Promise<T> {
  const buf = await content.readBlob(digest, { verify: true });
  try {
    return JSON.parse(buf.toString('utf8')) as T;
  } catch {
    throw invalidConfig(`blob ${digest} is not valid JSON`, digest);
  }
}

/** Reads a stored manifest and checks its shape (`MANIFEST_INVALID`). */
export async function readManifest(source: UnpackSource, digest: string): Promise<ImageManifest> {
  const manifest = await readJson<ImageManifest>(source.content, digest);
  if (!manifest || !Array.isArray(manifest.layers) || typeof manifest.config?.digest !== 'string') {
    throw invalidConfig(`manifest ${digest} has no config or layers`, digest);
  }
  return manifest;
}

/** Reads and checks the manifest and config of a record. */
async function loadImage(
  source: UnpackSource,
  record: ImageRecord,
): Promise<{ manifest: ImageManifest; config: ImageConfigFile; diffIds: string[] }> {
  const manifest = await readManifest(source, record.manifestDigest);
  const config = await readJson<ImageConfigFile>(source.content, manifest.config.digest);
  const rootfs = config.rootfs;
  if (rootfs?.type !== 'layers') {
    throw invalidConfig(
      `image config ${manifest.config.digest}: rootfs.type must be "layers"`,
      manifest.config.digest,
    );
  }
  const diffIds = rootfs.diff_ids ?? [];
  if (
    !Array.isArray(diffIds) ||
    diffIds.some((d) => typeof d !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d))
  ) {
    throw invalidConfig(
      `image config ${manifest.config.digest}: rootfs.diff_ids are not sha256 digests`,
      manifest.config.digest,
    );
  }
  if (diffIds.length !== manifest.layers.length) {
    throw invalidConfig(
      `image ${record.name}: ${manifest.layers.length} layers but ${diffIds.length} diff_ids in the config`,
      manifest.config.digest,
    );
  }
  for (const l of manifest.layers) layerCompression(l.mediaType);
  return { manifest, config, diffIds };
}

/** Prepares DIR: refuses a non-empty one unless `force`; 0700 (a world-readable bundle exposes setuid files). */
function prepareBundle(dir: string, force: boolean): { rootfs: string } {
  const st = lstatOrUndefined(dir);
  if (st !== undefined) {
    if (!st.isDirectory()) {
      throw new KimgError('TARGET_NOT_EMPTY', `unpack target ${quote(dir)} exists and is not a directory`, {
        file: dir,
      });
    }
    const names = readdirSync(dir);
    if (names.length > 0) {
      if (!force) {
        throw new KimgError(
          'TARGET_NOT_EMPTY',
          `unpack target ${quote(dir)} is not empty (${names.length} entries): use --force to replace its rootfs and config.json`,
          { file: dir },
        );
      }
      rmSync(posix.join(dir, 'rootfs'), { recursive: true, force: true });
      rmSync(posix.join(dir, 'config.json'), { force: true });
    }
  } else {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  chmodSync(dir, 0o700);
  const rootfs = posix.join(dir, 'rootfs');
  mkdirSync(rootfs, 0o755);
  return { rootfs };
}

/** Counts compressed bytes for progress. */
function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

interface LayerJob {
  index: number;
  layer: Descriptor;
  diffId: string;
  root: string;
  mode: ApplyMode;
  dirTimes: DirTimes;
}

/** Compressed bytes per read: the two buffers of the ring are reused for the whole layer. */
const READ_BYTES = 256 * 1024;

/**
 * Writes the layer blob into the decompressor. From a local store the file is read into a ring of two
 * reused buffers (a read stream allocates a new buffer per read, and V8 frees those lazily: reading
 * 330 MB that way added ~45 MiB of resident memory); a write's callback fires once the decompressor
 * has consumed the chunk and its output was read, so a buffer is never refilled while still in use.
 * Other content stores are read through `openRead`.
 */
async function feed(
  source: Pick<UnpackSource, 'content'>,
  digest: string,
  dec: Transform,
  onBytes: (n: number) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  const path = source.content.blobPath?.(digest);
  if (path === undefined) {
    const blob = await source.content.openRead(digest);
    await pipeline(blob, counter(onBytes), dec, signal ? { signal } : {});
    return;
  }
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    dec.destroy();
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new KimgError(
        'BLOB_NOT_FOUND',
        `blob ${digest} is not in the content store: pull or load the image again`,
        {
          input: digest,
          cause: e,
        },
      );
    }
    throw e;
  }
  const ring = [Buffer.allocUnsafeSlow(READ_BYTES), Buffer.allocUnsafeSlow(READ_BYTES)];
  try {
    for (let i = 0; ; i++) {
      signal?.throwIfAborted();
      const buf = ring[i & 1] as Buffer;
      const { bytesRead } = await fh.read(buf, 0, READ_BYTES, null);
      if (bytesRead === 0) break;
      onBytes(bytesRead);
      await new Promise<void>((resolve, reject) =>
        dec.write(buf.subarray(0, bytesRead), (e) => (e ? reject(e) : resolve())),
      );
    }
    dec.end();
  } catch (e) {
    dec.destroy(e as Error);
    throw e;
  } finally {
    await fh.close();
  }
}

/** Streams one layer into `root`, checking its diff ID. */
async function applyLayer(
  source: Pick<UnpackSource, 'content'>,
  job: LayerJob,
  opts: {
    rootless: boolean;
    hasher: HasherFactory;
    now: number;
    emit: (e: UnpackEvent) => void;
    signal?: AbortSignal;
    containerd?: boolean;
    implicitDirs?: Set<string>;
    gunzipChunk?: number;
  },
): Promise<LayerApplyStats> {
  const { index, layer, diffId } = job;
  opts.emit({ type: 'layer-start', index, digest: layer.digest, diffId, size: layer.size });
  const dec = decompressor(layerCompression(layer.mediaType), opts.gunzipChunk);
  let completed = 0;
  let lastReport = 0;
  const onBytes = (n: number) => {
    completed += n;
    if (completed - lastReport >= 4 * 1024 * 1024 || completed === layer.size) {
      lastReport = completed;
      opts.emit({ type: 'layer-bytes', index, digest: layer.digest, completed, total: layer.size });
    }
  };
  const piping = feed(source, layer.digest, dec, onBytes, opts.signal);
  const hasher = opts.hasher.create('sha256');
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of dec as AsyncIterable<Buffer>) {
      hasher.update(chunk);
      yield chunk;
      await hasher.capacity();
    }
  }
  const applier = new LayerApplier(
    job.root,
    {
      mode: job.mode,
      rootless: opts.rootless,
      now: opts.now,
      onWarning: (message) => opts.emit({ type: 'warning', message: `layer ${layer.digest}: ${message}` }),
      ...(opts.containerd !== undefined ? { containerd: opts.containerd } : {}),
      ...(opts.implicitDirs !== undefined ? { implicitDirs: opts.implicitDirs } : {}),
    },
    job.dirTimes,
  );
  try {
    await Promise.all([applier.apply(readTar(hashed())), piping]);
  } catch (e) {
    hasher.dispose();
    dec.destroy();
    await piping.catch(() => undefined);
    if (e instanceof KimgError && e.code === 'LAYER_INVALID') {
      throw new KimgError('LAYER_INVALID', `layer ${index} (${layer.digest}): ${e.message}`, {
        ...e.details,
        cause: e,
      });
    }
    if (e instanceof KimgError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
      throw new KimgError(
        'LAYER_INVALID',
        `layer ${index} (${layer.digest}) does not decompress: ${(e as Error).message}`,
        {
          input: layer.digest,
          cause: e,
        },
      );
    }
    if ((e as Error).name === 'AbortError') throw new KimgError('ABORTED', 'unpack aborted', { cause: e });
    throw new KimgError('STORE_IO', `layer ${index} (${layer.digest}): ${(e as Error).message}`, {
      cause: e,
    });
  }
  const actual = await hasher.digest();
  if (actual !== diffId) {
    throw new KimgError(
      'DIGEST_MISMATCH',
      `layer ${index} (${layer.digest}) decompresses to ${actual}, but the image config's rootfs.diff_ids[${index}] is ${diffId}`,
      { input: layer.digest, expected: diffId, actual },
    );
  }
  opts.emit({ type: 'layer-done', index, digest: layer.digest, diffId, ...applier.stats });
  return applier.stats;
}

/** Runs `fn` over `items` with at most `n` at once, failing fast. */
async function bounded<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  async function worker(): Promise<void> {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T);
      } catch (e) {
        failed ??= e;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed !== undefined) throw failed;
  return out;
}

/** Applies the layers in order into `root` (a rootfs), then the directories' times. */
async function applyInOrder(
  source: UnpackSource,
  layers: readonly Descriptor[],
  diffIds: readonly string[],
  root: string,
  layerOpts: Parameters<typeof applyLayer>[2],
): Promise<LayerApplyStats[]> {
  const dirTimes: DirTimes = new Map();
  // The root starts at the epoch unless a layer sets it: a fixed time, so two unpacks of an image agree
  // (umoci leaves it at the time of the unpack).
  dirTimes.set('', { atime: 0, mtime: 0 });
  const out: LayerApplyStats[] = [];
  for (const [index, layer] of layers.entries()) {
    const diffId = diffIds[index] as string;
    out.push(await applyLayer(source, { index, layer, diffId, root, mode: 'rootfs', dirTimes }, layerOpts));
  }
  applyDirTimes(root, dirTimes);
  return out;
}

/**
 * Applies the layers of a stored image into `dir` (an image volume's directory: no bundle, no config).
 * `dir` is created, or must be empty unless `force`; on failure its content is removed.
 */
export async function unpackLayersInto(
  source: UnpackSource,
  record: ImageRecord,
  dir: string,
  options: Pick<UnpackOptions, 'force' | 'rootless' | 'hasher' | 'onProgress' | 'signal'> = {},
): Promise<LayerApplyStats[]> {
  const { manifest, diffIds } = await loadImage(source, record);
  const existing = lstatOrUndefined(dir);
  const busy = existing !== undefined && (!existing.isDirectory() || readdirSync(dir).length > 0);
  if (busy && options.force !== true) {
    throw new KimgError('TARGET_NOT_EMPTY', `volume directory ${quote(dir)} is not empty`, { file: dir });
  }
  if (existing !== undefined) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const shared = options.hasher ?? source.content.hasher;
  const hasher = shared ?? createHasherFactory('auto');
  const emit = (e: UnpackEvent) => options.onProgress?.(e);
  const layerOpts = {
    rootless: options.rootless ?? false,
    hasher,
    now: Math.floor(Date.now() / 1000),
    emit,
    ...(options.signal ? { signal: options.signal } : {}),
  };
  try {
    return await applyInOrder(source, manifest.layers, diffIds, dir, layerOpts);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  } finally {
    if (shared === undefined) await hasher.close();
  }
}

/**
 * Unpacks the stored image `ref` (a reference or image id, as `kimg images` lists) into the bundle
 * directory `dir`. Failure codes: `IMAGE_NOT_PRESENT`, `BLOB_NOT_FOUND`, `MANIFEST_INVALID`,
 * `UNSUPPORTED_MEDIA_TYPE`, `DIGEST_MISMATCH`, `LAYER_INVALID`, `UNPACK_UNSAFE`, `TARGET_NOT_EMPTY`,
 * `USER_NOT_FOUND`, `STORE_IO`, `ABORTED`. On failure the bundle's rootfs and config.json are removed
 * (snapshots already committed stay; they are complete and verified).
 */
export async function unpackImage(
  source: UnpackSource,
  ref: string,
  dir: string,
  options: UnpackOptions = {},
): Promise<UnpackResult> {
  const rootless = options.rootless ?? DEFAULT_UNPACK_OPTIONS.rootless;
  if (options.snapshots !== undefined) checkSnapshotPrivileges(rootless);
  const emit = (e: UnpackEvent) => options.onProgress?.(e);
  const record = await lookupImage(source.images, ref, { runtimeHandler: options.runtimeHandler ?? '' });
  const { manifest, config, diffIds } = await loadImage(source, record);
  emit({
    type: 'resolved',
    image: record.name,
    manifest: record.manifestDigest,
    layers: manifest.layers.length,
  });
  const bundle = posix.resolve(dir);
  const { rootfs } = prepareBundle(bundle, options.force ?? DEFAULT_UNPACK_OPTIONS.force);
  // One hasher pool per process: each worker thread costs ~10 MiB of resident memory.
  const shared = options.hasher ?? source.content.hasher;
  const ownsHasher = shared === undefined;
  const hasher = shared ?? createHasherFactory('auto');
  const now = Math.floor(Date.now() / 1000);
  const chains = chainIds(diffIds);
  const layerOpts = { rootless, hasher, now, emit, ...(options.signal ? { signal: options.signal } : {}) };
  try {
    const layers: UnpackedLayer[] = manifest.layers.map((l, i) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      diffId: diffIds[i] as string,
      chainId: chains[i] as string,
    }));
    let lowerDirs: string[] | undefined;
    let readFile: (path: string) => string | undefined;
    if (options.snapshots !== undefined) {
      const snapRoot = posix.resolve(options.snapshots);
      // Each layer's snapshot directory once it is committed: a layer whose top is opaque needs its
      // lowers' names. Workers take layers in order and lowers never wait on uppers, so no cycle.
      const settle: Array<{ resolve(dir: string): void; reject(e: unknown): void }> = [];
      const done = layers.map(
        () =>
          new Promise<string>((resolve, reject) => {
            settle.push({ resolve, reject });
          }),
      );
      for (const d of done) d.catch(() => undefined);
      await bounded(layers, options.concurrency ?? DEFAULT_UNPACK_OPTIONS.concurrency, async (l) => {
        const index = layers.indexOf(l);
        const parent = index > 0 ? (layers[index - 1] as UnpackedLayer).chainId : '';
        try {
          const r = await ensureSnapshot(
            source,
            snapRoot,
            l,
            manifest.layers[index] as Descriptor,
            index,
            parent,
            () => Promise.all(done.slice(0, index)),
            layerOpts,
          );
          Object.assign(l, r);
          settle[index]?.resolve(r.snapshot as string);
        } catch (e) {
          settle[index]?.reject(e);
          throw e;
        }
      });
      lowerDirs = layers.map((l) => l.snapshot as string).reverse();
      const dirs = lowerDirs;
      readFile = (p) => readLayered(dirs, p);
    } else {
      const stats = await applyInOrder(source, manifest.layers, diffIds, rootfs, layerOpts);
      for (const [i, st] of stats.entries()) (layers[i] as UnpackedLayer).stats = st;
      readFile = (p) => readRootfsFile(rootfs, p);
    }
    const user: ResolvedUser = resolveUser(readFile, config.config?.User ?? '');
    const spec = toRuntimeSpec(config, {
      user,
      rootless,
      hostUid: process.geteuid?.() ?? 0,
      hostGid: process.getegid?.() ?? 0,
    });
    writeFileSync(posix.join(bundle, 'config.json'), JSON.stringify(spec, null, 2) + '\n', { mode: 0o600 });
    return {
      image: record.name,
      manifestDigest: record.manifestDigest,
      imageId: record.imageId,
      bundle,
      rootfs,
      config: spec,
      layers,
      ...(lowerDirs !== undefined ? { lowerDirs } : {}),
    };
  } catch (e) {
    rmSync(rootfs, { recursive: true, force: true });
    rmSync(posix.join(bundle, 'config.json'), { force: true });
    throw e;
  } finally {
    if (ownsHasher) await hasher.close();
  }
}

/**
 * Snapshot directories keep whiteouts as overlayfs reads them: 0/0 character devices (`mknod` needs
 * CAP_MKNOD) and `trusted.overlay.opaque` (trusted.* xattrs need CAP_SYS_ADMIN). Without root either
 * would fail midway with an errno, so it is refused before anything is written; a rootless unpack is
 * meant for a user namespace, whose overlay mounts read `user.overlay.*` instead, so it is refused too.
 */
function checkSnapshotPrivileges(rootless: boolean): void {
  const root = process.geteuid?.() === 0;
  if (root && !rootless) return;
  throw new KimgError(
    'INVALID_ARGUMENT',
    rootless
      ? 'snapshot directories cannot be unpacked rootless: their overlayfs whiteouts are device nodes and trusted.* xattrs; unpack a bundle with --rootless instead, or snapshots as root'
      : 'snapshot directories need root: their overlayfs whiteouts are device nodes (CAP_MKNOD) and trusted.* xattrs (CAP_SYS_ADMIN); run as root, or unpack a bundle (--rootless works without root)',
    { input: 'snapshots' },
  );
}

/** Reads a file from stacked layer directories (top first), stopping at an overlay whiteout. */
function readLayered(dirs: readonly string[], path: string): string | undefined {
  for (const d of dirs) {
    const st = lstatOrUndefined(posix.join(d, path));
    if (st === undefined) continue;
    if (st.isCharacterDevice() && st.rdev === 0) return undefined;
    return readRootfsFile(d, path);
  }
  return undefined;
}

/**
 * A layer whose top directory is opaque (`.wh..wh..opq` at its root) hides every lower name, but
 * overlayfs ignores the opaque flag on a layer's root. So, as the bundle unpack removes them, the
 * snapshot gets a 0/0 whiteout for every top-level name of the lower snapshots the layer does not
 * create, and each top-level directory it does create is marked opaque (below it, only its own content
 * shows, as in the bundle). The snapshot is keyed by chain ID, which names exactly these lowers.
 */
function hideLowerTop(stagedFs: string, lowerDirs: readonly string[]): void {
  const own = new Set(readdirSync(stagedFs));
  const lower = new Set(lowerDirs.flatMap((d) => readdirSync(d)));
  const opaque = [];
  const whiteouts = [];
  for (const name of lower) {
    const host = posix.join(stagedFs, name);
    if (!own.has(name)) whiteouts.push(host);
    else if (lstatOrUndefined(host)?.isDirectory() === true)
      opaque.push({ path: host, name: 'trusted.overlay.opaque', value: Buffer.from('y') });
  }
  mknodWhiteouts(whiteouts);
  const refused = setXattrs(opaque).refused[0];
  if (refused !== undefined) {
    throw new KimgError(
      'STORE_IO',
      `cannot mark ${quote(refused.op.path)} opaque for overlayfs (errno ${refused.errno}): trusted.* xattrs need root`,
      { file: refused.op.path },
    );
  }
}

/** Snapshot directory layout: `<root>/sha256/<chain hex>/{fs/,meta.json}`, staged under `<root>/tmp/`. */
async function ensureSnapshot(
  source: UnpackSource,
  snapRoot: string,
  l: UnpackedLayer,
  layer: Descriptor,
  index: number,
  parent: string,
  lowers: () => Promise<string[]>,
  opts: Parameters<typeof applyLayer>[2],
): Promise<Partial<UnpackedLayer>> {
  const hex = l.chainId.slice('sha256:'.length);
  const final = posix.join(snapRoot, 'sha256', hex);
  const fs = posix.join(final, 'fs');
  if (existsSync(posix.join(final, 'meta.json'))) {
    opts.emit({ type: 'layer-cached', index, digest: l.digest, chainId: l.chainId });
    return { snapshot: fs, cached: true };
  }
  mkdirSync(posix.join(snapRoot, 'sha256'), { recursive: true, mode: 0o700 });
  mkdirSync(posix.join(snapRoot, 'tmp'), { recursive: true, mode: 0o700 });
  const staging = posix.join(snapRoot, 'tmp', `${hex.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
  mkdirSync(staging, 0o700);
  try {
    const stagedFs = posix.join(staging, 'fs');
    mkdirSync(stagedFs, 0o755);
    const dirTimes: DirTimes = new Map();
    const stats = await applyLayer(
      source,
      { index, layer, diffId: l.diffId, root: stagedFs, mode: 'overlay', dirTimes },
      opts,
    );
    if (stats.topOpaque === true && index > 0) hideLowerTop(stagedFs, await lowers());
    applyDirTimes(stagedFs, dirTimes);
    const meta = { chainId: l.chainId, diffId: l.diffId, digest: l.digest, mediaType: l.mediaType, parent };
    writeFileSync(posix.join(staging, 'meta.json'), JSON.stringify(meta) + '\n', { mode: 0o600 });
    try {
      renameSync(staging, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another unpack committed the same chain ID first: theirs is as good as ours.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      rmSync(staging, { recursive: true, force: true });
    }
    return { snapshot: fs, cached: false, stats };
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}

/** Options of {@link extractLayerFile}. */
export interface ExtractLayerOptions {
  /**
   * `overlay`: one layer's diff for overlayfs (0/0 character-device whiteouts, `trusted.overlay.opaque`);
   * `rootfs`: whiteouts applied, for the bottom layer of a stack (nothing below it to hide).
   */
  mode: 'overlay' | 'rootfs';
  /** Apply as containerd's `archive.Apply` does where it differs (see docs/design/containerd-backend.md). */
  containerd?: boolean;
  /** The layer's index in its image, for messages. */
  index?: number;
  /**
   * gunzip's output chunk size. Default zlib's 16 KiB (the memory-lean choice of `unpackImage`); each
   * chunk is one round trip to libuv's pool and one pass through the tar reader and a write, so larger
   * chunks cost less CPU per byte (256 KiB: about a third of the CPU of 16 KiB for a 128 MiB layer here).
   */
  gunzipChunk?: number;
  hasher: HasherFactory;
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

/** What {@link extractLayerFile} did. */
export interface ExtractedLayer {
  stats: LayerApplyStats;
  /** Directories created for entries whose parents the layer does not name (relative, parents first). */
  implicitDirs: string[];
}

/**
 * Extracts one layer blob, read from the file `blobPath`, into the existing empty directory `dir`,
 * with the decompressed bytes hashed: a digest other than `diffId` is `DIGEST_MISMATCH` naming the
 * layer. Directory times are set at the end. `dir` is left as it is on failure (the caller owns it).
 * @throws KimgError `BLOB_NOT_FOUND`, `UNSUPPORTED_MEDIA_TYPE`, `DIGEST_MISMATCH`, `LAYER_INVALID`,
 *   `UNPACK_UNSAFE`, `STORE_IO`, `ABORTED`.
 */
export async function extractLayerFile(
  blobPath: string,
  layer: Descriptor,
  diffId: string,
  dir: string,
  options: ExtractLayerOptions,
): Promise<ExtractedLayer> {
  const unreadable = (): Promise<never> =>
    Promise.reject(new KimgError('INTERNAL', `layer ${layer.digest} is read from ${quote(blobPath)} only`));
  const content = { blobPath: () => blobPath, openRead: unreadable, readBlob: unreadable };
  const dirTimes: DirTimes = new Map();
  const implicit = new Set<string>();
  const stats = await applyLayer(
    { content },
    { index: options.index ?? 0, layer, diffId, root: dir, mode: options.mode, dirTimes },
    {
      rootless: false,
      hasher: options.hasher,
      now: Math.floor(Date.now() / 1000),
      emit: (e) => (e.type === 'warning' ? options.onWarning?.(e.message) : undefined),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      ...(options.containerd !== undefined ? { containerd: options.containerd } : {}),
      ...(options.gunzipChunk !== undefined ? { gunzipChunk: options.gunzipChunk } : {}),
      implicitDirs: implicit,
    },
  );
  applyDirTimes(dir, dirTimes);
  return { stats, implicitDirs: [...implicit].sort((a, b) => a.length - b.length) };
}

/**
 * Gives each implicit directory of a layer extracted into `dir` (see {@link extractLayerFile}) what
 * containerd's `archive` `mkparent` gives it: the owner, mode and atime of the same directory in the
 * first lower layer (`lowerDirs`, top first; symlinks resolved inside each) that has something at that
 * path, when it is a directory; a non-directory there stops the search and the directory is 0755 (in
 * the group of a set-group-ID parent).
 * The mtime stays: containerd sets it before the directory's entries are created, which then change
 * it. xattrs of the lower directory are not copied (containerd copies its non-`trusted.` ones).
 */
export function inheritImplicitDirs(
  dir: string,
  implicitDirs: readonly string[],
  lowerDirs: readonly string[],
): void {
  for (const rel of implicitDirs) {
    const host = posix.join(dir, rel);
    const own = lstatOrUndefined(host);
    if (own === undefined || !own.isDirectory()) continue;
    const lower = lowerDirOf(lowerDirs, rel);
    if (lower !== undefined) {
      lchownSync(host, lower.uid, lower.gid);
      chmodSync(host, lower.mode & 0o7777);
      lutimesSync(host, lower.atime, own.mtime);
      continue;
    }
    // containerd creates it 0755 (an explicit chmod: no inherited set-group-ID bit) inside a parent
    // that already has its attributes, so a set-group-ID parent gives it its group.
    const parent = lstatOrUndefined(posix.dirname(host));
    if (parent !== undefined && (parent.mode & 0o2000) !== 0) lchownSync(host, own.uid, parent.gid);
    chmodSync(host, 0o755);
  }
}

/** The first lower layer's directory at `rel` (symlinks resolved inside it); none past a non-directory. */
function lowerDirOf(lowerDirs: readonly string[], rel: string): Stats | undefined {
  for (const lower of lowerDirs) {
    const r = resolveInRoot(lower, rel);
    if (r.notDir !== undefined) return undefined;
    if (r.missingFrom !== undefined) continue;
    const st = lstatOrUndefined(r.host);
    if (st === undefined) continue;
    return st.isDirectory() ? st : undefined;
  }
  return undefined;
}
