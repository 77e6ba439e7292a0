/**
 * Image volumes (KEP-4639, `volumes[].image`): the content of a stored image or OCI artifact as a
 * directory a pod mounts read-only.
 *
 * - An image (a manifest whose layers are all tar layers): the layers applied in order into `dir`,
 *   exactly as `unpackImage` builds a rootfs (same safety, diff IDs checked), without a runtime config.
 * - An OCI artifact (any other layer media types): each blob with an `org.opencontainers.image.title`
 *   annotation becomes the file of that name (ORAS's convention, which the KEP follows), digest
 *   verified while copying, mode 0444; blobs without a title are not materialised. A title must be a
 *   plain relative path inside `dir` (`UNPACK_UNSAFE` otherwise: no `..`, no absolute paths).
 *
 * Read-only is the mount's property (the runtime bind-mounts `dir` with `ro`); the files keep the
 * modes the image gives them.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, writeSync } from 'node:fs';
import { posix } from 'node:path';
import { KimgError, quote } from '../errors/index.js';
import { lookupImage } from '../store/index.js';
import { LAYER_MEDIA_TYPES } from './internal/decompress.js';
import { cleanName, climbsAboveRoot } from './internal/resolve.js';
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
 * Failure codes: those of `unpackImage`, plus `UNPACK_UNSAFE` for a title that leaves `dir`.
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
  mkdirSync(target, { recursive: true, mode: 0o755 });
  const files: string[] = [];
  for (const layer of manifest.layers) {
    const title = layer.annotations?.[ANNOTATION_TITLE];
    if (title === undefined || title === '') continue;
    if (title.startsWith('/') || climbsAboveRoot(title) || title.includes('\0') || cleanName(title) === '/') {
      throw new KimgError(
        'UNPACK_UNSAFE',
        `artifact file title ${quote(title)} is not a relative path inside the volume`,
        {
          input: title,
        },
      );
    }
    const rel = cleanName(title).slice(1);
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
    files.push(rel);
  }
  return {
    kind: 'artifact',
    manifestDigest: record.manifestDigest,
    imageId: record.imageId,
    dir: target,
    files,
  };
}
