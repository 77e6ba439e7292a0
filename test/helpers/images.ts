/**
 * Deterministic OCI test images, written as an OCI image layout (image-spec `image-layout.md`):
 * `oci-layout`, `index.json` (one entry per tag, annotated `org.opencontainers.image.ref.name`) and
 * `blobs/sha256/<hex>`. skopeo (`oci:DIR:TAG`), umoci and containerd read these layouts.
 *
 * Every layer is a real gzip-compressed tar (ustar) holding `layerN/`, `layerN/info.txt` and
 * `layerN/data.bin` of the requested size, so unpackers accept it and can verify its diff_id. Content is
 * seeded by the image name, tag, platform and layer index (or an explicit per-layer seed):
 * - `random`: the AES-256-CTR keystream of a key derived from the seed (incompressible);
 * - `text`:   4 KiB chunks of log/source-like lines from a fixed pool, in a seeded order (compresses
 *             about 3-4x with gzip -6);
 * - `zero`:   zero bytes.
 * Tar mtimes are fixed and gzip writes mtime 0, so the uncompressed bytes (diff_ids) never change and
 * the compressed digests are stable under the same zlib build (Node 20's zlib 1.3.1 here).
 *
 * Generation streams (source → tar → hash → gzip → hash → file), so memory stays flat for any size;
 * a 1 GiB image is fine (bench), but keep `npm test` images in the KB-MB range.
 */
import { createCipheriv, createHash, randomBytes, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { MediaType } from '../../src/oci/index.js';

export interface LayerSpec {
  /** Bytes of `data.bin` (uncompressed payload). */
  size: number;
  /** Default 'random'. */
  kind?: 'random' | 'text' | 'zero';
  /**
   * Content seed; default derived from image name, tag, platform and layer index. Two layers with the
   * same seed, kind, size and position are byte-identical, even across images (shared-blob tests).
   */
  seed?: string;
  /** gzip level; default 1 for random (deflate stores it anyway), 6 otherwise. */
  level?: number;
}

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

export interface GenerateOptions {
  /** Image name; seeds the content. */
  name: string;
  /** Tag in index.json; default '1'. Also seeds the content. */
  tag?: string;
  layers: LayerSpec[];
  /** One image per platform under an OCI image index (the top manifest). Default: a single linux/amd64 image manifest. */
  platforms?: PlatformSpec[];
  /** config.User */
  user?: string;
}

export interface GeneratedLayer {
  digest: string;
  /** Compressed size. */
  size: number;
  diffId: string;
  uncompressedSize: number;
  mediaType: string;
}

export interface GeneratedManifest {
  digest: string;
  size: number;
  mediaType: string;
  platform?: PlatformSpec;
  config: { digest: string; size: number };
  layers: GeneratedLayer[];
}

export interface GeneratedImage {
  layoutDir: string;
  tag: string;
  /** Digest of the top-level object: the image manifest, or the index for multi-platform images. */
  digest: string;
  mediaType: string;
  size: number;
  /** One per platform (one for a single-platform image). */
  manifests: GeneratedManifest[];
  /** Sum of the sizes of all distinct blobs of this image (layers, configs, manifests, index). */
  blobBytes: number;
  /** Sum of the uncompressed layer sizes. */
  uncompressedBytes: number;
  /** `oci:<layoutDir>:<tag>` for skopeo. */
  ociRef: string;
}

/** Fixed timestamps: config `created` and tar mtimes. */
export const IMAGE_CREATED = '2024-01-01T00:00:00Z';
const TAR_MTIME = Date.parse(IMAGE_CREATED) / 1000;
const CHUNK = 1 << 20;
const DEFAULT_PLATFORM: PlatformSpec = { os: 'linux', architecture: 'amd64' };

// ---- content sources -----------------------------------------------------------------------------

function keystream(seed: string): (n: number) => Buffer {
  const key = createHash('sha256').update(`kimg-test-image:key\0${seed}`).digest();
  const iv = createHash('sha256').update(`kimg-test-image:iv\0${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const zeros = Buffer.alloc(CHUNK);
  return (n) => {
    let out = Buffer.alloc(0);
    while (out.length < n) {
      const k = Math.min(CHUNK, n - out.length);
      const part = cipher.update(k === CHUNK ? zeros : zeros.subarray(0, k));
      out = out.length === 0 ? part : Buffer.concat([out, part]);
    }
    return out;
  };
}

function* randomSource(seed: string, size: number): Generator<Buffer> {
  const next = keystream(seed);
  for (let left = size; left > 0; left -= CHUNK) yield next(Math.min(CHUNK, left));
}

function* zeroSource(size: number): Generator<Buffer> {
  const zeros = Buffer.alloc(Math.min(CHUNK, Math.max(size, 1)));
  for (let left = size; left > 0; left -= CHUNK) yield zeros.subarray(0, Math.min(CHUNK, left));
}

const TEXT_CHUNK = 4096;
const TEXT_POOL_SIZE = 1024;
let textPool: Buffer[] | undefined;

/** A fixed pool of 4 KiB text chunks (log lines, code, prose) from a small seeded PRNG. */
function getTextPool(): Buffer[] {
  if (textPool) return textPool;
  let state = 0x9e3779b9;
  const rnd = (n: number): number => {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % n;
  };
  const parts = [
    'ba',
    'co',
    'de',
    'fi',
    'gu',
    'ha',
    'jo',
    'ki',
    'lu',
    'me',
    'no',
    'pa',
    'qui',
    're',
    'si',
    'to',
  ];
  const words: string[] = [];
  for (let i = 0; i < 512; i++) {
    let w = '';
    for (let j = 0, n = 1 + rnd(4); j < n; j++) w += parts[rnd(parts.length)];
    words.push(w);
  }
  const w = (): string => words[rnd(words.length)] ?? 'x';
  const levels = ['INFO', 'WARN', 'DEBUG', 'ERROR'];
  const pool: Buffer[] = [];
  for (let c = 0; c < TEXT_POOL_SIZE; c++) {
    let s = '';
    while (s.length < TEXT_CHUNK) {
      switch (rnd(4)) {
        case 0:
          s += `2024-01-0${1 + rnd(9)}T${10 + rnd(14)}:${10 + rnd(50)}:${10 + rnd(50)}Z ${levels[rnd(4)]} ${w()}.${w()}: ${w()} ${w()} id=${rnd(1 << 30).toString(16)}\n`;
          break;
        case 1:
          s += `    const ${w()} = await ${w()}.${w()}(${rnd(10000)}, '${w()}');\n`;
          break;
        case 2:
          s += `  if (${w()} !== ${w()}) { return ${w()}(${w()}, ${rnd(100)}); }\n`;
          break;
        default:
          s += `# ${w()} ${w()} ${w()} ${w()} ${w()}\n`;
      }
    }
    pool.push(Buffer.from(s.slice(0, TEXT_CHUNK), 'latin1'));
  }
  textPool = pool;
  return pool;
}

function* textSource(seed: string, size: number): Generator<Buffer> {
  const pool = getTextPool();
  const order = keystream(`text-order\0${seed}`);
  for (let left = size; left > 0; left -= CHUNK) {
    const n = Math.min(CHUNK, left);
    const out = Buffer.allocUnsafe(n);
    const picks = order(2 * Math.ceil(n / TEXT_CHUNK));
    for (let off = 0, k = 0; off < n; off += TEXT_CHUNK, k += 2) {
      const chunk = pool[picks.readUInt16LE(k) % TEXT_POOL_SIZE] as Buffer;
      chunk.copy(out, off, 0, Math.min(TEXT_CHUNK, n - off));
    }
    yield out;
  }
}

// ---- tar -----------------------------------------------------------------------------------------

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A POSIX ustar header block: a regular file ('0'), a symlink to `linkname` ('2') or a directory ('5'). */
function tarHeader(name: string, size: number, type: '0' | '2' | '5', mode: number, linkname = ''): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  if (Buffer.byteLength(linkname) > 100) throw new Error(`tar link target too long: ${linkname}`);
  if (size >= 8 ** 11) throw new Error(`tar entry too large for ustar: ${size}`);
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(TAR_MTIME, 12), 136, 'ascii');
  h.write(' '.repeat(8), 148, 'ascii'); // checksum field counts as spaces while summing
  h.write(type, 156, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/** One member of a generated layer: a directory, a symlink, or a regular file of `size` bytes from `source`. */
export interface TarEntry {
  name: string;
  dir?: boolean;
  /** Makes the entry a symlink to this target. */
  symlink?: string;
  size?: number;
  source?: () => Iterable<Buffer>;
  /** Permission bits; default 0o755 for directories, 0o644 for files, 0o777 for symlinks. */
  mode?: number;
}

function* tarStream(entries: TarEntry[], hash: Hash, counter: { n: number }): Generator<Buffer> {
  const emit = (b: Buffer): Buffer => {
    hash.update(b);
    counter.n += b.length;
    return b;
  };
  for (const e of entries) {
    if (e.dir === true) {
      yield emit(tarHeader(e.name, 0, '5', e.mode ?? 0o755));
      continue;
    }
    if (e.symlink !== undefined) {
      yield emit(tarHeader(e.name, 0, '2', e.mode ?? 0o777, e.symlink));
      continue;
    }
    const size = e.size ?? 0;
    yield emit(tarHeader(e.name, size, '0', e.mode ?? 0o644));
    let written = 0;
    for (const b of e.source?.() ?? []) {
      written += b.length;
      yield emit(b);
    }
    if (written !== size) throw new Error(`tar entry ${e.name}: wrote ${written} bytes, header says ${size}`);
    const pad = (512 - (size % 512)) % 512;
    if (pad > 0) yield emit(Buffer.alloc(pad));
  }
  yield emit(Buffer.alloc(1024)); // end-of-archive: two zero blocks
}

// ---- blobs ---------------------------------------------------------------------------------------

function blobPath(layoutDir: string, hex: string): string {
  return join(layoutDir, 'blobs', 'sha256', hex);
}

/** Writes `value` as a JSON blob of the layout; returns its descriptor fields. */
export async function writeJsonBlob(
  layoutDir: string,
  value: unknown,
): Promise<{ digest: string; size: number }> {
  const buf = Buffer.from(JSON.stringify(value));
  const hex = createHash('sha256').update(buf).digest('hex');
  const tmp = blobPath(layoutDir, `.tmp-${randomBytes(8).toString('hex')}`);
  await writeFile(tmp, buf);
  await rename(tmp, blobPath(layoutDir, hex));
  return { digest: `sha256:${hex}`, size: buf.length };
}

/** Writes the gzip-compressed tar of `entries` as a layer blob of the layout (streaming). */
export async function writeLayerBlob(
  layoutDir: string,
  entries: TarEntry[],
  level: number,
): Promise<GeneratedLayer> {
  const diff = createHash('sha256');
  const comp = createHash('sha256');
  const raw = { n: 0 };
  let compressed = 0;
  const tmp = blobPath(layoutDir, `.tmp-${randomBytes(8).toString('hex')}`);
  try {
    await pipeline(
      Readable.from(tarStream(entries, diff, raw)),
      createGzip({ level, chunkSize: 256 * 1024 }),
      async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          comp.update(chunk);
          compressed += chunk.length;
          yield chunk;
        }
      },
      createWriteStream(tmp),
    );
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const hex = comp.digest('hex');
  await rename(tmp, blobPath(layoutDir, hex));
  return {
    digest: `sha256:${hex}`,
    size: compressed,
    diffId: `sha256:${diff.digest('hex')}`,
    uncompressedSize: raw.n,
    mediaType: MediaType.OciLayerGzip,
  };
}

async function inParallel<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const out: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await (tasks[i] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return out;
}

function platformKey(p: PlatformSpec): string {
  return [p.os, p.architecture, p.variant ?? '', p['os.version'] ?? ''].join('/');
}

async function buildPlatformImage(
  layoutDir: string,
  opts: GenerateOptions,
  tag: string,
  platform: PlatformSpec,
): Promise<GeneratedManifest> {
  const tasks = opts.layers.map((spec, i) => () => {
    const kind = spec.kind ?? 'random';
    if (!Number.isSafeInteger(spec.size) || spec.size < 0)
      throw new Error(`layer ${i}: bad size ${spec.size}`);
    const seed = spec.seed ?? `${opts.name}\0${tag}\0${platformKey(platform)}\0${i}`;
    // With an explicit seed the layer must be byte-identical across images, so info.txt names the
    // seed, not the image.
    const info = Buffer.from(
      spec.seed !== undefined
        ? `kimg test layer seed ${JSON.stringify(spec.seed)} layer ${i} (${kind}, ${spec.size} bytes)\n`
        : `kimg test image ${opts.name}:${tag} layer ${i} (${kind}, ${spec.size} bytes)\n`,
    );
    const source =
      kind === 'random'
        ? () => randomSource(seed, spec.size)
        : kind === 'text'
          ? () => textSource(seed, spec.size)
          : () => zeroSource(spec.size);
    const entries: TarEntry[] = [
      { name: `layer${i}/`, dir: true },
      { name: `layer${i}/info.txt`, size: info.length, source: () => [info] },
      { name: `layer${i}/data.bin`, size: spec.size, source },
    ];
    return writeLayerBlob(layoutDir, entries, spec.level ?? (kind === 'random' ? 1 : 6));
  });
  const layers = await inParallel(tasks, 2);
  const config = {
    created: IMAGE_CREATED,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform['os.version'] !== undefined ? { 'os.version': platform['os.version'] } : {}),
    ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
    config: {
      ...(opts.user !== undefined ? { User: opts.user } : {}),
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      Labels: { 'org.kimg.test.image': `${opts.name}:${tag}` },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l, i) => ({
      created: IMAGE_CREATED,
      created_by: `kimg test helper: layer ${i}, ${l.uncompressedSize} bytes of tar`,
    })),
  };
  const cfg = await writeJsonBlob(layoutDir, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const m = await writeJsonBlob(layoutDir, manifest);
  return { digest: m.digest, size: m.size, mediaType: MediaType.OciManifest, platform, config: cfg, layers };
}

const layoutLocks = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier index.json update of the same layout (in this process). */
async function withLayoutLock<T>(layoutDir: string, fn: () => Promise<T>): Promise<T> {
  const key = resolve(layoutDir);
  const prev = layoutLocks.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  layoutLocks.set(
    key,
    run.catch(() => undefined),
  );
  return run;
}

/**
 * Writes a deterministic image into the OCI layout at `layoutDir` (created if needed; other tags in
 * it are kept, an existing entry for the same tag is replaced) and describes what it wrote.
 */
export async function generateImage(layoutDir: string, opts: GenerateOptions): Promise<GeneratedImage> {
  const tag = opts.tag ?? '1';
  if (opts.layers.length === 0) throw new Error('generateImage: at least one layer is required');
  await mkdir(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  const manifests: GeneratedManifest[] = [];
  for (const p of opts.platforms ?? [DEFAULT_PLATFORM]) {
    manifests.push(await buildPlatformImage(layoutDir, opts, tag, p));
  }
  let top: { digest: string; size: number; mediaType: string };
  if (opts.platforms !== undefined) {
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: manifests.map((m) => ({
        mediaType: m.mediaType,
        digest: m.digest,
        size: m.size,
        ...(m.platform ? { platform: m.platform } : {}),
      })),
    };
    top = { ...(await writeJsonBlob(layoutDir, index)), mediaType: MediaType.OciIndex };
  } else {
    const only = manifests[0] as GeneratedManifest;
    top = { digest: only.digest, size: only.size, mediaType: only.mediaType };
  }

  await tagInLayout(layoutDir, tag, top);
  return describeImage(layoutDir, tag, top, manifests);
}

/**
 * Points tag `tag` of the layout's index.json at `top` (an earlier entry for the tag is replaced, other
 * tags are kept); atomic (write + rename) and serialized per layout within this process.
 */
export async function tagInLayout(
  layoutDir: string,
  tag: string,
  top: { digest: string; size: number; mediaType: string },
): Promise<void> {
  await withLayoutLock(layoutDir, async () => {
    const file = join(layoutDir, 'index.json');
    let index: { schemaVersion: number; mediaType?: string; manifests: Array<Record<string, unknown>> } = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [],
    };
    try {
      index = JSON.parse(await readFile(file, 'utf8')) as typeof index;
    } catch {
      /* new layout */
    }
    index.manifests = index.manifests.filter(
      (m) =>
        (m.annotations as Record<string, string> | undefined)?.['org.opencontainers.image.ref.name'] !== tag,
    );
    index.manifests.push({
      mediaType: top.mediaType,
      digest: top.digest,
      size: top.size,
      annotations: { 'org.opencontainers.image.ref.name': tag },
    });
    const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    await writeFile(tmp, JSON.stringify(index, null, 2));
    await rename(tmp, file);
  });
}

/** The {@link GeneratedImage} summary of an image written into a layout. */
export function describeImage(
  layoutDir: string,
  tag: string,
  top: { digest: string; size: number; mediaType: string },
  manifests: GeneratedManifest[],
): GeneratedImage {
  const sizes = new Map<string, number>();
  sizes.set(top.digest, top.size);
  for (const m of manifests) {
    sizes.set(m.digest, m.size);
    sizes.set(m.config.digest, m.config.size);
    for (const l of m.layers) sizes.set(l.digest, l.size);
  }
  let blobBytes = 0;
  for (const s of sizes.values()) blobBytes += s;
  const uncompressedBytes = manifests.reduce(
    (a, m) => a + m.layers.reduce((b, l) => b + l.uncompressedSize, 0),
    0,
  );
  return {
    layoutDir,
    tag,
    digest: top.digest,
    mediaType: top.mediaType,
    size: top.size,
    manifests,
    blobBytes,
    uncompressedBytes,
    ociRef: `oci:${layoutDir}:${tag}`,
  };
}
