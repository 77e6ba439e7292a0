/**
 * The OCI image layout on disk (opencontainers/image-spec `image-layout.md`): an `oci-layout` file
 * `{"imageLayoutVersion":"1.0.0"}`, an `index.json` image index whose entries name images with the
 * `org.opencontainers.image.ref.name` annotation, and `blobs/<alg>/<encoded>`.
 *
 * This file parses and validates those documents and the manifests they point at, for the store's own
 * layout (failures are `STORE_CORRUPT`, naming the file) and for layouts given to `load`/`save`
 * (failures are `LAYOUT_INVALID`). Manifests are never re-serialized: the store keeps registry bytes.
 */
import { KimgError, quote, type KimgErrorCode } from '../errors/index.js';
import {
  isIndexMediaType,
  isManifestMediaType,
  MediaType,
  type ImageIndex,
  type ImageManifest,
  jsonSizeProblem,
  manifestDocumentProblem,
  type OciPlatform,
} from '../oci/index.js';

/** The `oci-layout` file name and the version kimg writes. */
export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_VERSION = '1.0.0';
/** The layout's index file name. */
export const INDEX_FILE = 'index.json';

/** Annotations kimg puts on its own `index.json` entries (entries without them are left alone). */
export const ANNOTATION_KIMG_NAME = 'io.kimg.image.name';
export const ANNOTATION_KIMG_HANDLER = 'io.kimg.runtime-handler';

type LayoutErrorCode = Extract<KimgErrorCode, 'STORE_CORRUPT' | 'LAYOUT_INVALID'>;

function invalid(code: LayoutErrorCode, file: string, what: string, cause?: unknown): KimgError {
  const hint = code === 'STORE_CORRUPT' ? 'run `kimg store verify --repair`' : 'check the OCI layout';
  return new KimgError(code, `${quote(file)} is not valid: ${what}: ${hint}`, {
    file,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Parses JSON or throws `code` naming the file. */
export function parseJsonFile(text: string | Uint8Array, file: string, code: LayoutErrorCode): unknown {
  const s = typeof text === 'string' ? text : Buffer.from(text).toString('utf8');
  // Sizes as Go's decoder reads them: `6.5536e4` is not an int64 (src/oci `jsonSizeProblem`).
  const sizes = jsonSizeProblem(s);
  if (sizes !== undefined) throw invalid(code, file, sizes);
  try {
    return JSON.parse(s) as unknown;
  } catch (e) {
    throw invalid(
      code,
      file,
      `not JSON (${(e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ')})`,
      e,
    );
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates the `oci-layout` document. */
export function parseOciLayout(
  text: string | Uint8Array,
  file: string,
  code: LayoutErrorCode,
): { imageLayoutVersion: string } {
  const v = parseJsonFile(text, file, code);
  if (!isObject(v) || typeof v.imageLayoutVersion !== 'string')
    throw invalid(code, file, 'missing imageLayoutVersion');
  // image-spec `image-layout.md` defines 1.0.0 only; a later version may lay blobs out differently.
  if (v.imageLayoutVersion !== OCI_LAYOUT_VERSION) {
    throw invalid(
      code,
      file,
      `imageLayoutVersion ${quote(v.imageLayoutVersion, 40)} is not supported (kimg reads ${OCI_LAYOUT_VERSION})`,
    );
  }
  return { imageLayoutVersion: v.imageLayoutVersion };
}

/**
 * Validates an image index document (the layout's `index.json`, or an index blob) with the rules the
 * registry client applies (src/oci `manifestDocumentProblem`).
 */
export function parseIndexDocument(
  text: string | Uint8Array,
  file: string,
  code: LayoutErrorCode,
): ImageIndex {
  const v = parseJsonFile(text, file, code);
  const problem = manifestDocumentProblem(v, true);
  if (problem !== undefined) throw invalid(code, file, problem);
  return v as unknown as ImageIndex;
}

/** A parsed manifest or index blob. */
export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

/**
 * Parses a manifest blob. The media type comes from the document's `mediaType` field, else from the
 * descriptor that pointed at it (OCI makes the field optional), else from its shape. The document is
 * checked with the registry client's rules (src/oci `manifestDocumentProblem`), so what a pull accepts
 * the store reads back. Failures name the file with `code`; an unknown media type is
 * `UNSUPPORTED_MEDIA_TYPE`.
 */
export function parseManifestBlob(
  bytes: Uint8Array,
  descriptorMediaType: string | undefined,
  file: string,
  code: LayoutErrorCode,
): ParsedManifest {
  const v = parseJsonFile(bytes, file, code);
  if (!isObject(v)) throw invalid(code, file, 'manifest is not a JSON object');
  let mediaType = typeof v.mediaType === 'string' && v.mediaType !== '' ? v.mediaType : descriptorMediaType;
  if (mediaType === undefined)
    mediaType = Array.isArray(v.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  if (isIndexMediaType(mediaType)) {
    return { kind: 'index', mediaType, index: parseIndexDocument(bytes, file, code) };
  }
  if (!isManifestMediaType(mediaType)) {
    throw new KimgError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${quote(file)} has media type ${quote(mediaType)}, which kimg does not handle (OCI or Docker schema 2 only)`,
      {
        file,
        input: mediaType,
      },
    );
  }
  const problem = manifestDocumentProblem(v, false);
  if (problem !== undefined) throw invalid(code, file, problem);
  return { kind: 'manifest', mediaType, manifest: v as unknown as ImageManifest };
}

/** The platform an image config declares (image-spec `config.md`), if it declares one. */
export function platformFromConfig(bytes: Uint8Array): OciPlatform | undefined {
  try {
    const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
    if (!isObject(v) || typeof v.os !== 'string' || typeof v.architecture !== 'string') return undefined;
    const p: OciPlatform = { os: v.os, architecture: v.architecture };
    if (typeof v.variant === 'string' && v.variant !== '') p.variant = v.variant;
    if (typeof v['os.version'] === 'string' && v['os.version'] !== '') p['os.version'] = v['os.version'];
    return p;
  } catch {
    return undefined;
  }
}

/** An empty image index, as written for a new layout. */
export function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
}

/** Serializes an index.json the way kimg writes it (stable, two-space indent, trailing newline). */
export function serializeIndex(index: ImageIndex): string {
  return JSON.stringify(index, null, 2) + '\n';
}
