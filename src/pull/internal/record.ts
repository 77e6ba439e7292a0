/**
 * The image record a pull commits last, once everything it names is in the target.
 */
import type { ImageManifest, OciPlatform } from '../../oci/index.js';
import type { ImageRecord } from '../../store/index.js';
import type { ResolvedImage } from './resolve.js';

/**
 * The record for `name`: digests and media types of what was resolved, the content size as
 * containerd's `images.Size` counts it (top index + manifest + config + distinct layers), and the
 * `lastUsed`/`pinned` of the record it replaces.
 */
export function buildRecord(
  name: string,
  runtimeHandler: string,
  resolved: ResolvedImage,
  platform: OciPlatform,
  previous: ImageRecord | undefined,
  now: string,
): ImageRecord {
  const { index, manifestDoc, manifest, root } = resolved;
  return {
    name,
    runtimeHandler,
    digest: root.digest,
    mediaType: root.mediaType,
    manifestDigest: manifestDoc.digest,
    manifestMediaType: manifestDoc.mediaType,
    manifestSize: manifestDoc.bytes.length,
    ...(index ? { indexDigest: index.digest } : {}),
    imageId: manifest.config.digest,
    size: imageSize(resolved),
    platform,
    layers: manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    pulledAt: now,
    lastUsed: previous?.lastUsed ?? now,
    ...(previous?.pinned ? { pinned: true } : {}),
    source: 'pull',
  };
}

function imageSize({ index, manifestDoc, manifest }: ResolvedImage): number {
  return (
    (index ? index.bytes.length : 0) +
    manifestDoc.bytes.length +
    manifest.config.size +
    distinctLayerBytes(manifest)
  );
}

function distinctLayerBytes(manifest: ImageManifest): number {
  return [...new Map(manifest.layers.map((l) => [l.digest, l.size])).values()].reduce((a, b) => a + b, 0);
}
