/**
 * Import and export of OCI image layouts: `kimg load oci:DIR[:REF]` and `kimg save IMAGE oci:DIR[:REF]`,
 * the "pre-pulled image" path (an air-gapped node is seeded from a directory, not a registry).
 *
 * Load reads the layout's `index.json`, picks the entries (by `org.opencontainers.image.ref.name` =
 * REF, or all), and copies every blob an image needs through the content store's verifying writer
 * (size and digest checked while copying, `DIGEST_MISMATCH`/`SIZE_MISMATCH` name the layout file). An
 * index is resolved to one manifest for the platform (`selectManifest`, default: this host), and the
 * index blob is kept too, like a pull. Loaded images are recorded with `source: 'load'`.
 *
 * Save writes the image's platform manifest, config and layers into a layout (created if needed, merged
 * if it exists) and adds an `index.json` entry named REF (default: the image's full name), so the result
 * is valid for `skopeo`, `umoci` and `kimg load`.
 *
 * Layout spec strings follow containers-image's `oci:` transport: `oci:PATH[:REF]`, PATH ends at the
 * first `:` (so REF may contain colons, e.g. `oci:/tmp/x:127.0.0.1:5000/small:1`).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { isKimgError, KimgError, quote } from '../errors/index.js';
import { readBoundedFile } from '../bounded/index.js';
import {
  ANNOTATION_REF_NAME,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  type Descriptor,
  type OciPlatform,
} from '../oci/index.js';
import { parsePlatform, selectManifest, toOciPlatform, type PlatformLike } from '../platform/index.js';
import { parseReference } from '../reference/index.js';
import { LocalContentStore, type ContentStore } from './content-store.js';
import { parseDigest } from './internal/digest.js';
import { ensureDir, readFileIfExists, writeFileAtomic } from './internal/fsutil.js';
import {
  ANNOTATION_KIMG_NAME,
  emptyIndex,
  INDEX_FILE,
  OCI_LAYOUT_FILE,
  OCI_LAYOUT_VERSION,
  parseIndexDocument,
  parseManifestBlob,
  parseOciLayout,
  platformFromConfig,
  serializeIndex,
} from './layout.js';
import type { ImageRecord } from './records.js';
import type { StoreContext } from './types.js';

/** A parsed `oci:DIR[:REF]`. */
export interface LayoutSpec {
  dir: string;
  ref?: string;
}

/**
 * Parses `oci:DIR[:REF]` (containers-image syntax: DIR ends at the first `:`). `USAGE` when the
 * transport prefix is missing or DIR is empty.
 */
export function parseLayoutSpec(spec: string): LayoutSpec {
  if (!spec.startsWith('oci:')) {
    throw new KimgError('USAGE', `${quote(spec)} is not an OCI layout reference: write oci:DIR[:REF]`, {
      input: spec,
    });
  }
  const rest = spec.slice(4);
  const i = rest.indexOf(':');
  const dir = i < 0 ? rest : rest.slice(0, i);
  const ref = i < 0 ? undefined : rest.slice(i + 1);
  if (dir === '')
    throw new KimgError('USAGE', `${quote(spec)} names no directory: write oci:DIR[:REF]`, { input: spec });
  return { dir: resolve(dir), ...(ref !== undefined && ref !== '' ? { ref } : {}) };
}

/** Counts of a copy. */
export interface CopyStats {
  /** Blobs written. */
  copied: number;
  /** Blobs already present at the destination. */
  skipped: number;
  /** Bytes written. */
  bytes: number;
}

/** Options of `Store.load`. */
export interface LoadOptions {
  /** The layout directory and optional REF (`parseLayoutSpec`). */
  layout: LayoutSpec | string;
  /** Store the image under this name (required when the layout's ref name is not a full reference). */
  name?: string;
  /** Platform for an index (`os/arch[/variant]` or a platform); default: this host. */
  platform?: string | PlatformLike;
  /** Shown in lock messages. */
  holder?: string;
}

/** One loaded image. */
export interface LoadedImage {
  name: string;
  digest: string;
  manifestDigest: string;
  imageId: string;
  size: number;
}

/** The result of `Store.load`. */
export interface LoadResult {
  images: LoadedImage[];
  blobs: CopyStats;
}

/** Options of `Store.save`. */
export interface SaveOptions {
  /** The stored image (canonical name or anything `parseReference` accepts). */
  image: string;
  runtimeHandler?: string;
  /** Destination layout and optional REF (default REF: the image's full name). */
  layout: LayoutSpec | string;
}

/** The result of `Store.save`. */
export interface SaveResult {
  dir: string;
  ref: string;
  manifestDigest: string;
  blobs: CopyStats;
}

/**
 * Caps for a layout's small files: `oci-layout` is one short JSON object; `index.json`, manifests and
 * configs have src/oci's caps (the same the registry client and the store apply).
 */
const MAX_OCI_LAYOUT_BYTES = 4096;
const MAX_METADATA_BYTES = Math.max(MAX_MANIFEST_BYTES, MAX_CONFIG_BYTES);

/**
 * Reads a small file of a layout given to `load`: bounded and regular (a FIFO or a symlink to
 * `/dev/zero` in a layout is refused, never waited on or read without end); undefined when missing.
 * @throws KimgError `LAYOUT_INVALID` (not a regular file, over `maxBytes`), `STORE_IO`.
 */
async function readLayoutFile(file: string, maxBytes: number, what: string): Promise<Buffer | undefined> {
  try {
    return await readBoundedFile(file, { maxBytes, code: 'LAYOUT_INVALID', what });
  } catch (e) {
    if (isKimgError(e)) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
      return undefined;
    throw new KimgError('STORE_IO', `cannot read ${quote(file)}: ${(e as Error).message}`, {
      file,
      cause: e,
    });
  }
}

/**
 * The name an image is stored under for user input, as containerd CRI names images
 * (`ParseDockerRef`, `Reference.pullRef`): `busybox` → `docker.io/library/busybox:latest`,
 * `x:1@sha256:…` → `docker.io/library/x@sha256:…` (a tag next to a digest is dropped).
 */
export function canonicalImageName(input: string): string {
  return parseReference(input).pullRef;
}

function layoutBlobPath(dir: string, digest: string): string {
  const { algorithm, encoded } = parseDigest(digest);
  return join(dir, 'blobs', algorithm, encoded);
}

async function readLayoutJson(dir: string): Promise<{ index: ReturnType<typeof parseIndexDocument> }> {
  const layoutFile = join(dir, OCI_LAYOUT_FILE);
  const lbuf = await readLayoutFile(layoutFile, MAX_OCI_LAYOUT_BYTES, 'OCI layout file');
  if (lbuf === undefined) {
    throw new KimgError(
      'LAYOUT_INVALID',
      `${quote(dir)} is not an OCI image layout: ${quote(layoutFile)} is missing`,
      { file: layoutFile },
    );
  }
  parseOciLayout(lbuf, layoutFile, 'LAYOUT_INVALID');
  const indexFile = join(dir, INDEX_FILE);
  const ibuf = await readLayoutFile(indexFile, MAX_MANIFEST_BYTES, 'OCI layout index');
  if (ibuf === undefined) {
    throw new KimgError(
      'LAYOUT_INVALID',
      `${quote(dir)} is not an OCI image layout: ${quote(indexFile)} is missing`,
      { file: indexFile },
    );
  }
  return { index: parseIndexDocument(ibuf, indexFile, 'LAYOUT_INVALID') };
}

/** Reads a small blob from a layout, verifying size and digest. */
async function readLayoutBlob(dir: string, d: Descriptor): Promise<Buffer> {
  const file = layoutBlobPath(dir, d.digest);
  if (d.size > MAX_METADATA_BYTES) {
    throw new KimgError(
      'MANIFEST_TOO_LARGE',
      `${quote(file)} is ${d.size} bytes, over the ${MAX_METADATA_BYTES}-byte limit for manifests and configs`,
      {
        file,
        expected: MAX_METADATA_BYTES,
        actual: d.size,
      },
    );
  }
  const buf = await readLayoutFile(file, MAX_METADATA_BYTES, 'layout blob');
  if (buf === undefined)
    throw new KimgError(
      'LAYOUT_INVALID',
      `blob ${d.digest} is missing from the layout: ${quote(file)} does not exist`,
      { file, input: d.digest },
    );
  if (buf.byteLength !== d.size) {
    throw new KimgError(
      'SIZE_MISMATCH',
      `${quote(file)} is ${buf.byteLength} bytes, its descriptor says ${d.size}`,
      { file, input: d.digest, expected: d.size, actual: buf.byteLength },
    );
  }
  const { algorithm } = parseDigest(d.digest);
  const actual = `${algorithm}:${createHash(algorithm).update(buf).digest('hex')}`;
  if (actual !== d.digest) {
    throw new KimgError(
      'DIGEST_MISMATCH',
      `${quote(file)} does not match its digest: expected ${d.digest}, got ${actual}`,
      { file, input: d.digest, expected: d.digest, actual },
    );
  }
  return buf;
}

/**
 * Streams one blob from `open()` into `dest` through a verifying writer (resuming a left-over ingest).
 * Integrity failures are re-thrown with the same code, naming `sourceName`.
 */
async function copyBlob(
  dest: ContentStore,
  d: { digest: string; size: number },
  open: (offset: number) => Promise<AsyncIterable<Uint8Array>>,
  sourceName: string,
  holder: string,
  stats: CopyStats,
): Promise<void> {
  const w = await dest.writer({
    ref: `copy ${d.digest}`,
    expected: { digest: d.digest, size: d.size },
    holder,
  });
  if (w.existing) {
    await w.commit();
    stats.skipped++;
    return;
  }
  try {
    for await (const chunk of await open(w.offset)) await w.write(chunk);
    const r = await w.commit();
    if (r.alreadyExisted) stats.skipped++;
    else {
      stats.copied++;
      stats.bytes += d.size;
    }
  } catch (e) {
    await w.close().catch(() => undefined);
    if (isKimgError(e, ['DIGEST_MISMATCH', 'SIZE_MISMATCH'])) {
      throw new KimgError(e.code, `${quote(sourceName)}: ${e.message}`, {
        ...e.details,
        file: sourceName,
        cause: e,
      });
    }
    throw e;
  }
}

function isBareTag(s: string): boolean {
  return !s.includes('/') && !s.includes(':') && !s.includes('@');
}

function nameFor(entry: Descriptor, override: string | undefined, dir: string): string {
  if (override !== undefined) return canonicalImageName(override);
  const kimgName = entry.annotations?.[ANNOTATION_KIMG_NAME];
  const refName = entry.annotations?.[ANNOTATION_REF_NAME];
  if (kimgName !== undefined) return canonicalImageName(kimgName);
  if (refName === undefined || isBareTag(refName)) {
    const what =
      refName === undefined
        ? 'has no ref name'
        : `is named ${quote(refName)}, which is not a full image reference`;
    throw new KimgError(
      'INVALID_ARGUMENT',
      `the image ${entry.digest} in ${quote(dir)} ${what}: pass --name IMAGE to say what to store it as`,
      {
        input: refName ?? entry.digest,
      },
    );
  }
  return canonicalImageName(refName);
}

/** Loads images from an OCI layout into the store (see the file header). */
export async function loadLayout(ctx: StoreContext, options: LoadOptions): Promise<LoadResult> {
  const spec = typeof options.layout === 'string' ? parseLayoutSpec(options.layout) : options.layout;
  const dir = resolve(spec.dir);
  const holder = options.holder ?? `kimg load ${dir}`;
  const platform = typeof options.platform === 'string' ? parsePlatform(options.platform) : options.platform;
  const { index } = await readLayoutJson(dir);
  let entries = index.manifests;
  if (spec.ref !== undefined) {
    const ref = spec.ref;
    entries = entries.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] === ref);
    if (entries.length === 0) {
      const names = index.manifests
        .map((d) => d.annotations?.[ANNOTATION_REF_NAME])
        .filter((n): n is string => n !== undefined);
      throw new KimgError(
        'IMAGE_NOT_PRESENT',
        `no image named ${quote(ref)} in the layout ${quote(dir)}${names.length ? ` (it has ${names.map((n) => quote(n)).join(', ')})` : ' (it names no images)'}`,
        {
          input: ref,
          items: names,
        },
      );
    }
  }
  if (entries.length === 0)
    throw new KimgError('LAYOUT_INVALID', `the layout ${quote(dir)} lists no images in its index.json`, {
      file: join(dir, INDEX_FILE),
    });
  if (entries.length > 1 && options.name !== undefined) {
    throw new KimgError(
      'USAGE',
      `the layout ${quote(dir)} has ${entries.length} images: choose one with oci:DIR:REF to use --name`,
      { input: options.name },
    );
  }
  const names = entries.map((e) => nameFor(e, options.name, dir));
  const stats: CopyStats = { copied: 0, skipped: 0, bytes: 0 };
  const images: LoadedImage[] = [];
  await ctx.withLease(holder, async () => {
    for (const [i, entry] of entries.entries()) {
      const name = names[i] as string;
      const record = await importEntry(ctx, dir, entry, name, platform, holder, stats);
      await ctx.images.put(record);
      images.push({
        name,
        digest: record.digest,
        manifestDigest: record.manifestDigest,
        imageId: record.imageId,
        size: record.size,
      });
    }
  });
  return { images, blobs: stats };
}

async function storeSmallBlob(
  ctx: StoreContext,
  bytes: Buffer,
  d: Descriptor,
  stats: CopyStats,
): Promise<void> {
  const r = await ctx.content.writeBlob(bytes, { digest: d.digest, size: d.size });
  if (r.alreadyExisted) stats.skipped++;
  else {
    stats.copied++;
    stats.bytes += d.size;
  }
}

async function importEntry(
  ctx: StoreContext,
  dir: string,
  entry: Descriptor,
  name: string,
  platform: PlatformLike | undefined,
  holder: string,
  stats: CopyStats,
): Promise<ImageRecord> {
  const topBytes = await readLayoutBlob(dir, entry);
  let parsed = parseManifestBlob(
    topBytes,
    entry.mediaType,
    layoutBlobPath(dir, entry.digest),
    'LAYOUT_INVALID',
  );
  await storeSmallBlob(ctx, topBytes, entry, stats);
  const top = { digest: entry.digest, mediaType: parsed.mediaType, size: entry.size };
  let manifestDesc: Descriptor = { ...entry, mediaType: parsed.mediaType };
  let indexDigest: string | undefined;
  let entryPlatform: OciPlatform | undefined = entry.platform;
  for (let depth = 0; parsed.kind === 'index'; depth++) {
    if (depth >= 4)
      throw new KimgError(
        'MANIFEST_INVALID',
        `image index ${entry.digest} in ${quote(dir)} nests indexes more than 4 deep`,
        { input: entry.digest },
      );
    indexDigest ??= manifestDesc.digest;
    const child = selectManifest(parsed.index.manifests, platform, { index: manifestDesc.digest });
    const bytes = await readLayoutBlob(dir, child);
    parsed = parseManifestBlob(bytes, child.mediaType, layoutBlobPath(dir, child.digest), 'LAYOUT_INVALID');
    await storeSmallBlob(ctx, bytes, child, stats);
    manifestDesc = { ...child, mediaType: parsed.mediaType };
    entryPlatform = child.platform ?? entryPlatform;
  }
  const manifest = parsed.manifest;
  const configBytes = await readLayoutBlob(dir, manifest.config);
  await storeSmallBlob(ctx, configBytes, manifest.config, stats);
  for (const layer of manifest.layers) {
    const file = layoutBlobPath(dir, layer.digest);
    const st = await fsp.stat(file).catch(() => undefined);
    if (!st?.isFile())
      throw new KimgError(
        'LAYOUT_INVALID',
        `layer ${layer.digest} is missing from the layout: ${quote(file)} does not exist`,
        { file, input: layer.digest },
      );
    await copyBlob(
      ctx.content,
      layer,
      async (offset) =>
        (await fsp.open(file, 'r')).createReadStream({ start: offset, highWaterMark: 256 * 1024 }),
      file,
      holder,
      stats,
    );
  }
  const now = new Date().toISOString();
  const size =
    (indexDigest ? top.size : 0) +
    manifestDesc.size +
    manifest.config.size +
    manifest.layers.reduce((a, l) => a + l.size, 0);
  const plat: OciPlatform = entryPlatform
    ? toOciPlatform({
        os: entryPlatform.os,
        architecture: entryPlatform.architecture,
        ...(entryPlatform.variant ? { variant: entryPlatform.variant } : {}),
        ...(entryPlatform['os.version'] ? { osVersion: entryPlatform['os.version'] } : {}),
      })
    : (platformFromConfig(configBytes) ?? { os: 'unknown', architecture: 'unknown' });
  return {
    name,
    runtimeHandler: '',
    digest: top.digest,
    mediaType: top.mediaType,
    manifestDigest: manifestDesc.digest,
    manifestMediaType: manifestDesc.mediaType,
    manifestSize: manifestDesc.size,
    ...(indexDigest ? { indexDigest } : {}),
    imageId: manifest.config.digest,
    size,
    platform: plat,
    layers: manifest.layers.map((l) => ({
      mediaType: l.mediaType,
      digest: l.digest,
      size: l.size,
      ...(l.annotations ? { annotations: l.annotations } : {}),
      ...(l.urls ? { urls: l.urls } : {}),
    })),
    pulledAt: now,
    lastUsed: now,
    source: 'load',
  };
}

/** Writes a stored image into an OCI layout (see the file header). */
export async function saveLayout(ctx: StoreContext, options: SaveOptions): Promise<SaveResult> {
  const spec = typeof options.layout === 'string' ? parseLayoutSpec(options.layout) : options.layout;
  const dir = resolve(spec.dir);
  const name = canonicalImageName(options.image);
  const rec = await ctx.images.require({ name, runtimeHandler: options.runtimeHandler ?? '' });
  const ref = spec.ref ?? rec.name;

  await ensureDir(dir, 0o755);
  const layoutFile = join(dir, OCI_LAYOUT_FILE);
  const lbuf = await readFileIfExists(layoutFile);
  if (lbuf === undefined) {
    const existing = (await fsp.readdir(dir)).filter((n) => !n.startsWith('.'));
    if (existing.length > 0) {
      throw new KimgError(
        'LAYOUT_INVALID',
        `${quote(dir)} is not empty and is not an OCI image layout (no oci-layout file): choose an empty or new directory`,
        { file: layoutFile },
      );
    }
    await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }), 0o644);
  } else {
    parseOciLayout(lbuf, layoutFile, 'LAYOUT_INVALID');
  }
  const indexFile = join(dir, INDEX_FILE);
  const ibuf = await readFileIfExists(indexFile);
  const index = ibuf === undefined ? emptyIndex() : parseIndexDocument(ibuf, indexFile, 'LAYOUT_INVALID');

  const ingestDir = join(dir, '.kimg-ingest');
  const dest = new LocalContentStore({ blobsDir: join(dir, 'blobs'), ingestDir, hasher: ctx.hasher });
  const stats: CopyStats = { copied: 0, skipped: 0, bytes: 0 };
  const holder = `kimg save ${rec.name}`;
  const blobs: { digest: string; size: number }[] = [
    { digest: rec.manifestDigest, size: rec.manifestSize },
    { digest: rec.imageId, size: (await ctx.content.info(rec.imageId)).size },
    ...rec.layers,
  ];
  try {
    for (const b of blobs) {
      await copyBlob(
        dest,
        b,
        (offset) => ctx.content.openRead(b.digest, { offset }),
        ctx.content.blobPath(b.digest),
        holder,
        stats,
      );
    }
  } finally {
    await fsp.rm(ingestDir, { recursive: true, force: true }).catch(() => undefined);
  }
  const entry: Descriptor = {
    mediaType: rec.manifestMediaType,
    digest: rec.manifestDigest,
    size: rec.manifestSize,
    annotations: { [ANNOTATION_REF_NAME]: ref, [ANNOTATION_KIMG_NAME]: rec.name },
    platform: rec.platform,
  };
  const manifests = index.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] !== ref);
  manifests.push(entry);
  await writeFileAtomic(indexFile, serializeIndex({ ...index, manifests }), 0o644);
  return { dir, ref, manifestDigest: rec.manifestDigest, blobs: stats };
}
