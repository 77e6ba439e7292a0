/**
 * Image volumes (KEP-4639, `volumes[].image`): the content of a stored image or OCI artifact as a
 * directory a pod mounts read-only.
 *
 * - An image (a manifest whose layers are all tar layers): the layers applied in order into `dir`,
 *   exactly as `unpackImage` builds a rootfs (same safety, diff IDs checked), without a runtime config.
 * - An OCI artifact (any other layer media types): each blob with an `org.opencontainers.image.title`
 *   annotation becomes the file of that name (ORAS's convention, which the KEP follows), digest
 *   verified while copying, mode 0444; blobs without a title are not materialised. A title must be a
 *   plain relative path inside `dir` (`UNPACK_UNSAFE` otherwise: no `..`, no absolute paths); two
 *   titles naming the same file, or a file and a directory above another title, are `MANIFEST_INVALID`.
 *   Every title is checked before anything is written; a failure while writing removes `dir`.
 *
 * Read-only is the mount's property (the runtime bind-mounts `dir` with `ro`); the files keep the
 * modes the image gives them.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { posix } from 'node:path';
import { KimgError, quote } from '../errors/index.js';
import { lookupImage } from '../store/index.js';
import type { Descriptor } from '../oci/index.js';
import { LAYER_MEDIA_TYPES } from './internal/decompress.js';
import { cleanName, climbsAboveRoot, lstatOrUndefined } from './internal/resolve.js';
import { readManifest, unpackLayersInto, type UnpackOptions, type UnpackSource } from './unpack.js';

/** The annotation naming an artifact blob's file (image-spec `annotations.md`). */
export const ANNOTATION_TITLE = 'org.opencontainers.image.title';

export interface ImageVolumeResult {
  kind: 'image' | 'artifact';
  /** The image's manifest digest. */
  manifestDigest: string;
  imageId: string;
  dir: string;
  /** Artifact files written (relative paths). */
  files?: string[];
}

/**
 * Materialises the stored image or artifact `ref` into `dir` (created; must be empty unless `force`).
 * Failure codes: those of `unpackImage`, plus `UNPACK_UNSAFE` for a title that leaves `dir` and
 * `MANIFEST_INVALID` for titles that collide; on failure `dir` is removed.
 */
export async function materializeImageVolume(
  source: UnpackSource,
  ref: string,
  dir: string,
  options: Pick<
    UnpackOptions,
    'force' | 'rootless' | 'runtimeHandler' | 'hasher' | 'onProgress' | 'signal'
  > = {},
): Promise<ImageVolumeResult> {
  const record = await lookupImage(source.images, ref, { runtimeHandler: options.runtimeHandler ?? '' });
  const manifest = await readManifest(source, record.manifestDigest);
  const target = posix.resolve(dir);
  const isImage =
    manifest.layers.length > 0 && manifest.layers.every((l) => LAYER_MEDIA_TYPES.has(l.mediaType));
  if (isImage) {
    await unpackLayersInto(source, record, target, options);
    return { kind: 'image', manifestDigest: record.manifestDigest, imageId: record.imageId, dir: target };
  }
  const titled = artifactFiles(manifest.layers);
  prepareVolumeDir(target, options.force === true);
  try {
    for (const { layer, title, rel } of titled) await writeArtifactFile(source, layer, title, target, rel);
  } catch (e) {
    rmSync(target, { recursive: true, force: true });
    throw e;
  }
  const files = titled.map((t) => t.rel);
  return {
    kind: 'artifact',
    manifestDigest: record.manifestDigest,
    imageId: record.imageId,
    dir: target,
    files,
  };
}

/** One artifact blob to write: its descriptor, its title and the cleaned relative path. */
interface ArtifactFile {
  layer: Descriptor;
  title: string;
  rel: string;
}

/**
 * The titled blobs of an artifact, checked as a set before anything is written: each title a relative
 * path inside the volume (`UNPACK_UNSAFE`), no two naming the same file and none naming a directory
 * another title needs (`MANIFEST_INVALID`: the artifact cannot be laid out as files).
 */
function artifactFiles(layers: readonly Descriptor[]): ArtifactFile[] {
  const out: ArtifactFile[] = [];
  const byPath = new Map<string, string>();
  for (const layer of layers) {
    const title = layer.annotations?.[ANNOTATION_TITLE];
    if (title === undefined || title === '') continue;
    if (title.startsWith('/') || climbsAboveRoot(title) || title.includes('\0') || cleanName(title) === '/') {
      throw new KimgError(
        'UNPACK_UNSAFE',
        `artifact file title ${quote(title)} is not a relative path inside the volume`,
        { input: title },
      );
    }
    const rel = cleanName(title).slice(1);
    const other = byPath.get(rel);
    if (other !== undefined) {
      throw new KimgError(
        'MANIFEST_INVALID',
        `artifact file titles ${quote(other)} and ${quote(title)} name the same file`,
        { input: title },
      );
    }
    byPath.set(rel, title);
    out.push({ layer, title, rel });
  }
  for (const { rel, title } of out) {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const above = byPath.get(parts.slice(0, i).join('/'));
      if (above !== undefined) {
        throw new KimgError(
          'MANIFEST_INVALID',
          `artifact file title ${quote(title)} needs ${quote(above)} to be a directory, but it is a file of the artifact`,
          { input: title },
        );
      }
    }
  }
  return out;
}

/** Creates the volume directory; an existing non-empty one is refused unless `force` (then replaced). */
function prepareVolumeDir(target: string, force: boolean): void {
  const existing = lstatOrUndefined(target);
  if (existing !== undefined) {
    const busy = !existing.isDirectory() || readdirSync(target).length > 0;
    if (busy && !force) {
      throw new KimgError('TARGET_NOT_EMPTY', `volume directory ${quote(target)} is not empty`, {
        file: target,
      });
    }
    rmSync(target, { recursive: true, force: true });
  }
  mkdirSync(target, { recursive: true, mode: 0o755 });
}

/** Copies one blob to `target/rel` (mode 0444), checking its digest while copying. */
async function writeArtifactFile(
  source: UnpackSource,
  layer: Descriptor,
  title: string,
  target: string,
  rel: string,
): Promise<void> {
  const host = posix.join(target, rel);
  mkdirSync(posix.dirname(host), { recursive: true, mode: 0o755 });
  const hash = createHash('sha256');
  const fd = openSync(
    host,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o444,
  );
  try {
    const blob = await source.content.openRead(layer.digest);
    for await (const chunk of blob as AsyncIterable<Buffer>) {
      hash.update(chunk);
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
    }
  } finally {
    closeSync(fd);
  }
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== layer.digest) {
    throw new KimgError(
      'DIGEST_MISMATCH',
      `artifact blob ${layer.digest} (${quote(title)}) hashes to ${actual}`,
      {
        input: layer.digest,
        expected: layer.digest,
        actual,
      },
    );
  }
}
