/**
 * Image records: what the node knows about each stored image, one JSON file per image under
 * `<root>/images/`, written atomically (temp + fsync + rename + fsync dir) with mode 0600.
 *
 * An image is keyed by (canonical name, runtime handler) — the handler is `''` for the default runtime,
 * like CRI's `ImageSpec.runtime_handler` and kubelet's image GC key (`<imageID>,<handler>`). The image
 * id is the config digest, as containerd's CRI reports it (`Image.id`). Records are the source of truth
 * for which images exist; the layout's `index.json` is derived from them (see `store.ts` for the order
 * of writes and the repair on open).
 */
import { createHash } from 'node:crypto';
import { KimgError, quote, quoteValue } from '../errors/index.js';
import type { Descriptor, OciPlatform } from '../oci/index.js';
import { isValidDigest } from './internal/digest.js';

/** The on-disk record format version (inside each record file). */
export const RECORD_FORMAT_VERSION = 1;

/** How an image came into the store. `load` images count as pre-pulled. */
export type ImageSource = 'pull' | 'load';

/** The key of an image record. */
export interface ImageKey {
  /**
   * Full reference in containerd CRI form (`ParseDockerRef`): `127.0.0.1:5000/small:1`,
   * `docker.io/library/busybox@sha256:…` (a tag next to a digest is dropped). See `canonicalImageName`.
   */
  name: string;
  /** Runtime handler; `''` (default) for the default runtime. */
  runtimeHandler?: string;
}

/** One stored image. */
export interface ImageRecord {
  /** Canonical reference the image is stored under. */
  name: string;
  /** Runtime handler (`''` = default). */
  runtimeHandler: string;
  /** The digest the name resolved to (the repo digest): the index digest when pulled from an index. */
  digest: string;
  /** Media type of that top-level manifest or index. */
  mediaType: string;
  /** The platform-specific image manifest the image uses. */
  manifestDigest: string;
  manifestMediaType: string;
  manifestSize: number;
  /** The index / manifest list the manifest was selected from, when there was one. */
  indexDigest?: string;
  /** Image id = config digest (CRI `Image.id`, containerd's image ref). */
  imageId: string;
  /** Content size in bytes: top index (if any) + manifest + config + compressed layers, like containerd's `images.Size`. */
  size: number;
  /** The platform of the selected manifest. */
  platform: OciPlatform;
  /** Layer descriptors in order (mediaType, digest, size[, annotations, urls]). */
  layers: Descriptor[];
  /** When the image was pulled or loaded (ISO 8601). */
  pulledAt: string;
  /** When the image was last used by a container (ISO 8601); starts equal to `pulledAt`. */
  lastUsed: string;
  /** Never removed by image GC (CRI `pinned`). */
  pinned?: boolean;
  source: ImageSource;
}

/** The file name (without directory) of a record. */
export function recordFileName(key: ImageKey): string {
  const h = createHash('sha256')
    .update(key.name)
    .update('\0')
    .update(key.runtimeHandler ?? '')
    .digest('hex');
  return `${h}.json`;
}

/** Serializes a record file: `{ "version": 1, "record": {...} }`. */
export function serializeRecord(record: ImageRecord): string {
  return JSON.stringify({ version: RECORD_FORMAT_VERSION, record }, null, 2) + '\n';
}

function corrupt(file: string, what: string, cause?: unknown): KimgError {
  return new KimgError(
    'STORE_CORRUPT',
    `image record ${quote(file)} is not valid: ${what}: run \`kimg store verify --repair\` (it quarantines the file)`,
    {
      file,
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIsoDate(v: unknown): v is string {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v));
}

/**
 * Validates a record object (from a file or from a caller). Throws `STORE_CORRUPT` naming `file`, or
 * `INVALID_ARGUMENT` when `file` is undefined (a caller passed a bad record).
 */
export function validateRecord(v: unknown, file?: string): ImageRecord {
  const fail = (what: string) =>
    file === undefined
      ? new KimgError('INVALID_ARGUMENT', `invalid image record: ${what}`, { input: what })
      : corrupt(file, what);
  if (!isObject(v)) throw fail('not an object');
  const str = (k: string) => {
    if (typeof v[k] !== 'string') throw fail(`${k} must be a string`);
    return v[k] as string;
  };
  const dig = (k: string) => {
    if (!isValidDigest(v[k])) throw fail(`${k} ${quoteValue(v[k])} is not a valid digest`);
    return v[k] as string;
  };
  const name = str('name');
  if (name === '' || /\s/.test(name)) throw fail(`name ${quote(name)} is not a reference`);
  str('runtimeHandler');
  dig('digest');
  str('mediaType');
  dig('manifestDigest');
  str('manifestMediaType');
  if (typeof v.manifestSize !== 'number' || !Number.isSafeInteger(v.manifestSize) || v.manifestSize < 0)
    throw fail('manifestSize must be a non-negative integer');
  if (v.indexDigest !== undefined) dig('indexDigest');
  dig('imageId');
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0)
    throw fail('size must be a non-negative integer');
  if (
    !isObject(v.platform) ||
    typeof v.platform.os !== 'string' ||
    typeof v.platform.architecture !== 'string'
  )
    throw fail('platform needs os and architecture');
  if (!Array.isArray(v.layers)) throw fail('layers must be an array');
  v.layers.forEach((l, i) => {
    if (
      !isObject(l) ||
      typeof l.mediaType !== 'string' ||
      !isValidDigest(l.digest) ||
      typeof l.size !== 'number' ||
      !Number.isSafeInteger(l.size) ||
      l.size < 0
    ) {
      throw fail(`layers[${i}] is not a descriptor`);
    }
  });
  if (!isIsoDate(v.pulledAt)) throw fail('pulledAt must be an ISO 8601 date');
  if (!isIsoDate(v.lastUsed)) throw fail('lastUsed must be an ISO 8601 date');
  if (v.pinned !== undefined && typeof v.pinned !== 'boolean') throw fail('pinned must be a boolean');
  if (v.source !== 'pull' && v.source !== 'load') throw fail(`source must be "pull" or "load"`);
  return v as unknown as ImageRecord;
}

/** Parses a record file's text. Throws `STORE_CORRUPT` naming the file (or `STORE_VERSION_UNSUPPORTED`). */
export function parseRecordFile(text: string, file: string): ImageRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw corrupt(file, `not JSON (${(e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ')})`, e);
  }
  if (!isObject(v)) throw corrupt(file, 'not a JSON object');
  if (typeof v.version !== 'number') throw corrupt(file, 'missing version');
  if (v.version > RECORD_FORMAT_VERSION) {
    throw new KimgError(
      'STORE_VERSION_UNSUPPORTED',
      `image record ${quote(file)} has format version ${v.version}, newer than this kimg understands (${RECORD_FORMAT_VERSION}): upgrade kimg`,
      { file, expected: RECORD_FORMAT_VERSION, actual: v.version },
    );
  }
  return validateRecord(v.record, file);
}

/** `a` and `b` name the same image. */
export function sameKey(a: ImageKey, b: ImageKey): boolean {
  return a.name === b.name && (a.runtimeHandler ?? '') === (b.runtimeHandler ?? '');
}
