/**
 * Manifests: resolving a reference to a descriptor (`HEAD`, `GET` fallback, as containerd's resolver),
 * fetching a manifest or index byte for byte with its digest verified against the reference and
 * `Docker-Content-Digest`, its media type settled from `Content-Type` or the JSON, its shape checked,
 * and choosing an index entry by platform (src/platform `selectManifest`).
 */
import { KimgError, isKimgError } from '../../errors/index.js';
import {
  INDEX_MEDIA_TYPES,
  MANIFEST_ACCEPT,
  MANIFEST_MEDIA_TYPES,
  MediaType,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from '../../oci/index.js';
import { selectManifest } from '../../platform/index.js';
import { isDigest, parseDigest } from '../../reference/index.js';
import { repositoryScope } from '../auth.js';
import { isRetryableNetworkError } from '../retry.js';
import {
  MAX_MANIFEST_BYTES,
  type CallOptions,
  type FetchedManifest,
  type ImageManifestOptions,
  type ImageManifestResult,
  type ImageRef,
  type RepositoryRef,
} from '../types.js';
import { digestOf } from '../verify.js';
import { discard, readCapped } from './body.js';
import { BODY_STALLED_CODE } from './h1.js';
import { redactUrl } from './redact.js';
import type { Op, RequestCore } from './request.js';
import { header, type HttpResponse } from './transport.js';

const SCHEMA1 = new Set([MediaType.DockerSchema1, MediaType.DockerSchema1Signed]);
const GENERIC_TYPES = new Set([
  '',
  'application/json',
  'text/plain',
  'application/octet-stream',
  'binary/octet-stream',
]);

function contentType(h: Record<string, string | string[] | undefined>): string {
  return (header(h, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

/** The tag or digest of `ref` (the digest wins); `INVALID_ARGUMENT` when it has neither. */
export function referenceOf(ref: ImageRef): string {
  const r = ref.digest ?? ref.tag;
  if (!r)
    throw new KimgError(
      'INVALID_ARGUMENT',
      `reference ${ref.domain}/${ref.path} has neither tag nor digest`,
      { input: `${ref.domain}/${ref.path}` },
    );
  if (ref.digest) parseDigest(ref.digest);
  return r;
}

/** `domain/path:tag` or `domain/path@digest`, for messages. */
export function display(ref: ImageRef): string {
  return `${ref.domain}/${ref.path}${ref.digest ? '@' + ref.digest : ref.tag ? ':' + ref.tag : ''}`;
}

function manifestOp(ref: RepositoryRef, reference: string, method: 'GET' | 'HEAD', call: CallOptions): Op {
  return {
    registry: ref.domain,
    repository: ref.path,
    capability: isDigest(reference) ? 'pull' : 'resolve',
    method,
    path: `/${ref.path}/manifests/${reference}`,
    headers: { accept: MANIFEST_ACCEPT },
    scopes: [repositoryScope(ref.path, ['pull'])],
    ctx: {
      registry: ref.domain,
      repository: ref.path,
      kind: 'manifest',
      target: reference,
      action: 'pull',
    },
    followRedirects: true,
    call,
    accept: (s) => s === 200,
  };
}

function schema1Error(ref: ImageRef, reference: string, type: string): KimgError {
  return new KimgError(
    'UNSUPPORTED_MEDIA_TYPE',
    `${ref.domain}/${ref.path} ${reference} is a Docker schema 1 manifest (${type}), which is no longer supported (containerd dropped it in v2.0): rebuild or re-push the image with a current tool`,
    { input: display(ref), actual: type },
  );
}

/**
 * Resolves a tag (or digest) to a descriptor of the manifest it names: `HEAD` first, `GET` when the
 * registry does not support HEAD, omits `Docker-Content-Digest` or names another digest.
 */
export async function resolveManifest(
  core: RequestCore,
  ref: ImageRef,
  call: CallOptions,
): Promise<Descriptor> {
  const reference = referenceOf(ref);
  let res: HttpResponse;
  try {
    ({ res } = await core.execute(manifestOp(ref, reference, 'HEAD', call)));
  } catch (e) {
    if (
      isKimgError(e, 'REGISTRY_ERROR') &&
      (e.details.status === 405 || e.details.status === 400 || e.details.status === 501)
    ) {
      return (await fetchManifest(core, ref, reference, undefined, call)).descriptor;
    }
    throw e;
  }
  discard(res.body);
  const digest = header(res.headers, 'docker-content-digest');
  const len = header(res.headers, 'content-length');
  const type = contentType(res.headers);
  const known = MANIFEST_MEDIA_TYPES.includes(type) || INDEX_MEDIA_TYPES.includes(type);
  if (!digest || !isDigest(digest) || len === undefined || !/^\d+$/.test(len) || !known) {
    if (type && SCHEMA1.has(type as never)) throw schema1Error(ref, reference, type);
    return (await fetchManifest(core, ref, reference, undefined, call)).descriptor;
  }
  if (isDigest(reference) && digest !== reference) {
    // the registry says the manifest has another digest than the one we asked for by digest
    return (await fetchManifest(core, ref, reference, undefined, call)).descriptor;
  }
  return { mediaType: type, digest, size: Number(len) };
}

/**
 * The image manifest for a reference: if it names an index, the entry chosen by `opts.select` or for
 * `opts.platform` (default: this host's), fetched and verified against the index entry.
 */
export async function getImageManifest(
  core: RequestCore,
  ref: ImageRef,
  opts: ImageManifestOptions,
): Promise<ImageManifestResult> {
  const top = await fetchManifest(core, ref, referenceOf(ref), undefined, opts);
  if (!top.isIndex) return { manifest: top };
  const index = top.manifest as ImageIndex;
  const child = opts.select
    ? opts.select(index, top.descriptor)
    : selectManifest(index.manifests, opts.platform, { index: display(ref) });
  const manifest = await fetchManifest(
    core,
    { domain: ref.domain, path: ref.path, digest: child.digest },
    child.digest,
    child,
    opts,
  );
  if (manifest.isIndex) {
    throw new KimgError(
      'UNSUPPORTED_MEDIA_TYPE',
      `the entry ${child.digest} selected from ${display(ref)} is itself an index (${manifest.mediaType}); nested indexes are not supported`,
      {
        input: display(ref),
        actual: manifest.mediaType,
      },
    );
  }
  return { index: top, manifest };
}

/**
 * Fetches the manifest `reference` of `ref` exactly as stored: size-capped, digest verified, media
 * type settled, shape checked; `expected` is the index entry it was chosen from, if any.
 */
export async function fetchManifest(
  core: RequestCore,
  ref: ImageRef,
  reference: string,
  expected: Descriptor | undefined,
  call: CallOptions,
): Promise<FetchedManifest> {
  const what = `manifest ${reference} of ${ref.domain}/${ref.path}`;
  const { res, bytes } = await readManifest(core, ref, reference, what, call);
  const digest = checkManifestDigest(res, bytes, reference, what);
  if (expected && expected.size !== bytes.length) {
    throw new KimgError(
      'SIZE_MISMATCH',
      `${what} is ${bytes.length} bytes but the index entry says ${expected.size}`,
      { expected: expected.size, actual: bytes.length, host: res.url.host },
    );
  }
  // media type: Content-Type, else the JSON mediaType field
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new KimgError('MANIFEST_INVALID', `${what} is not valid JSON: ${(e as Error).message}`, {
      host: res.url.host,
      cause: e,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new KimgError('MANIFEST_INVALID', `${what} is not a JSON object`, { host: res.url.host });
  }
  const obj = parsed as Record<string, unknown>;
  const mediaType = manifestMediaType(res, obj, ref, reference, expected, what);
  const isIndex = INDEX_MEDIA_TYPES.includes(mediaType);
  validateShape(obj, isIndex, what);
  const descriptor: Descriptor = { mediaType, digest, size: bytes.length };
  return {
    descriptor,
    mediaType,
    digest,
    bytes,
    manifest: obj as unknown as ImageManifest | ImageIndex,
    isIndex,
  };
}

/** GETs the manifest and reads it whole within {@link MAX_MANIFEST_BYTES}, retrying broken reads. */
async function readManifest(
  core: RequestCore,
  ref: ImageRef,
  reference: string,
  what: string,
  call: CallOptions,
): Promise<{ res: HttpResponse; bytes: Buffer }> {
  for (let attempt = 1; ; attempt++) {
    const { res } = await core.execute(manifestOp(ref, reference, 'GET', call));
    const len = header(res.headers, 'content-length');
    if (len !== undefined && /^\d+$/.test(len) && Number(len) > MAX_MANIFEST_BYTES) {
      discard(res.body);
      throw new KimgError(
        'MANIFEST_TOO_LARGE',
        `${what} is ${len} bytes, more than the ${MAX_MANIFEST_BYTES}-byte limit for manifests`,
        { expected: MAX_MANIFEST_BYTES, actual: Number(len), host: res.url.host },
      );
    }
    let read: { bytes: Buffer; truncated: boolean };
    try {
      read = await readCapped(res.body, MAX_MANIFEST_BYTES);
    } catch (e) {
      const err = isKimgError(e)
        ? e
        : bodyReadError(e, res, call.stallTimeoutMs ?? core.stallMs, call.signal);
      const delay =
        err.details.retryable === true && err.code !== 'STALLED'
          ? core.policy.delayBeforeRetry(attempt)
          : undefined;
      if (delay === undefined) throw err;
      core.debug?.(`reading ${what} failed (${err.message}); retrying in ${delay} ms`);
      await core.clock.sleep(delay, call.signal);
      continue;
    }
    if (read.truncated) {
      throw new KimgError(
        'MANIFEST_TOO_LARGE',
        `${what} is larger than the ${MAX_MANIFEST_BYTES}-byte limit for manifests`,
        { expected: MAX_MANIFEST_BYTES, actual: MAX_MANIFEST_BYTES + 1, host: res.url.host },
      );
    }
    return { res, bytes: read.bytes };
  }
}

/**
 * The digest of the manifest bytes, checked against what was asked for (a digest reference) and what
 * the registry claims (`Docker-Content-Digest`, in its own algorithm).
 */
function checkManifestDigest(res: HttpResponse, bytes: Buffer, reference: string, what: string): string {
  const headerDigest = header(res.headers, 'docker-content-digest');
  const algorithm = isDigest(reference) ? parseDigest(reference).algorithm : 'sha256';
  const digest = digestOf(bytes, algorithm);
  if (isDigest(reference) && digest !== reference) {
    throw new KimgError(
      'DIGEST_MISMATCH',
      `${what} failed verification: the registry served content with digest ${digest}; the content is corrupt or was altered`,
      {
        expected: reference,
        actual: digest,
        bytesRead: bytes.length,
        host: res.url.host,
      },
    );
  }
  if (headerDigest && isDigest(headerDigest)) {
    const alg = parseDigest(headerDigest).algorithm;
    const actual = alg === algorithm ? digest : digestOf(bytes, alg);
    if (actual !== headerDigest) {
      throw new KimgError(
        'DIGEST_MISMATCH',
        `${what} does not match the registry's Docker-Content-Digest ${headerDigest} (content digest ${actual}): the content is corrupt or was altered`,
        {
          expected: headerDigest,
          actual,
          bytesRead: bytes.length,
          host: res.url.host,
        },
      );
    }
  }
  return digest;
}

/**
 * The manifest's media type: a known `Content-Type`, else (for a generic one) the JSON `mediaType`
 * field or the shape; schema 1 and unknown types are refused, and the field, the served type and
 * the index entry must agree.
 */
function manifestMediaType(
  res: HttpResponse,
  obj: Record<string, unknown>,
  ref: ImageRef,
  reference: string,
  expected: Descriptor | undefined,
  what: string,
): string {
  const fieldType = typeof obj.mediaType === 'string' ? obj.mediaType : undefined;
  const ct = contentType(res.headers);
  if (SCHEMA1.has(ct as never) || (fieldType && SCHEMA1.has(fieldType as never)) || obj.schemaVersion === 1) {
    throw schema1Error(ref, reference, fieldType ?? (ct || 'schemaVersion 1'));
  }
  const knownType = (t: string): boolean => MANIFEST_MEDIA_TYPES.includes(t) || INDEX_MEDIA_TYPES.includes(t);
  const unsupported = (t: string): KimgError =>
    new KimgError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${what} has media type ${JSON.stringify(t)}, which kimg does not handle (supported: ${[...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES].join(', ')})`,
      {
        actual: t,
        host: res.url.host,
      },
    );
  let mediaType: string;
  if (knownType(ct)) mediaType = ct;
  else if (GENERIC_TYPES.has(ct)) {
    if (fieldType !== undefined) mediaType = fieldType;
    else if (Array.isArray(obj.manifests)) mediaType = MediaType.OciIndex;
    else mediaType = MediaType.OciManifest;
  } else {
    throw unsupported(ct);
  }
  if (!knownType(mediaType)) throw unsupported(mediaType);
  if (fieldType !== undefined && fieldType !== mediaType) {
    throw new KimgError(
      'MANIFEST_INVALID',
      `${what} says mediaType ${JSON.stringify(fieldType)} but was served as ${JSON.stringify(mediaType)}`,
      { expected: mediaType, actual: fieldType, host: res.url.host },
    );
  }
  if (expected && expected.mediaType && knownType(expected.mediaType) && expected.mediaType !== mediaType) {
    throw new KimgError(
      'MANIFEST_INVALID',
      `${what} is ${JSON.stringify(mediaType)} but its index entry says ${JSON.stringify(expected.mediaType)}`,
      { expected: expected.mediaType, actual: mediaType, host: res.url.host },
    );
  }
  return mediaType;
}

function validateShape(obj: Record<string, unknown>, isIndex: boolean, what: string): void {
  const bad = (msg: string): never => {
    throw new KimgError('MANIFEST_INVALID', `${what} is invalid: ${msg}`);
  };
  if (obj.schemaVersion !== 2) bad(`schemaVersion is ${JSON.stringify(obj.schemaVersion)}, expected 2`);
  const checkDesc = (d: unknown, where: string): void => {
    if (typeof d !== 'object' || d === null) bad(`${where} is not a descriptor object`);
    const x = d as Record<string, unknown>;
    if (typeof x.mediaType !== 'string') bad(`${where}.mediaType is missing`);
    if (typeof x.digest !== 'string' || !isDigest(x.digest)) bad(`${where}.digest is missing or malformed`);
    if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0)
      bad(`${where}.size is not a non-negative integer`);
  };
  if (isIndex) {
    if (!Array.isArray(obj.manifests)) bad('"manifests" is not an array');
    (obj.manifests as unknown[]).forEach((d, i) => checkDesc(d, `manifests[${i}]`));
  } else {
    checkDesc(obj.config, 'config');
    if (!Array.isArray(obj.layers)) bad('"layers" is not an array');
    (obj.layers as unknown[]).forEach((d, i) => checkDesc(d, `layers[${i}]`));
  }
}

function bodyReadError(
  e: unknown,
  res: HttpResponse,
  stallMs: number,
  signal: AbortSignal | undefined,
): KimgError {
  if (signal?.aborted)
    return new KimgError('ABORTED', `${res.method} ${redactUrl(res.url)} was cancelled`, {
      host: res.url.host,
      cause: e,
    });
  const code = (e as { code?: unknown })?.code;
  if (code === BODY_STALLED_CODE) {
    return new KimgError(
      'STALLED',
      `no bytes from ${res.url.host} for ${stallMs / 1000}s while reading ${res.method} ${redactUrl(res.url)}: the registry stalled; retry later`,
      {
        host: res.url.host,
        retryable: true,
        cause: e,
      },
    );
  }
  return new KimgError(
    'REGISTRY_UNAVAILABLE',
    `reading the response to ${res.method} ${redactUrl(res.url)} from ${res.url.host} failed: ${(e as Error)?.message ?? String(e)}`,
    {
      host: res.url.host,
      retryable: isRetryableNetworkError(e),
      cause: e,
    },
  );
}
