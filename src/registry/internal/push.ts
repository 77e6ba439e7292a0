/**
 * Push: blobs (existence check, cross-repository mount, then `POST` + monolithic `PUT ?digest=`, or
 * `PATCH` chunks / one streamed `PATCH` + the closing `PUT`), content verified against its descriptor
 * as it is sent; and manifests, uploaded byte for byte under a tag or digest.
 */
import type { Readable } from 'node:stream';
import { KimgError, isKimgError } from '../../errors/index.js';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, type Descriptor } from '../../oci/index.js';
import { isDigest, parseDigest } from '../../reference/index.js';
import { repositoryScope } from '../auth.js';
import type { RegistryEndpoint } from '../hosts.js';
import {
  MAX_MANIFEST_BYTES,
  type BlobContent,
  type CallOptions,
  type ImageRef,
  type PushBlobOptions,
  type PushBlobResult,
  type RepositoryRef,
} from '../types.js';
import { ContentVerifier, createVerifyStream, digestOf } from '../verify.js';
import { blobExists } from './blobs.js';
import { discard } from './body.js';
import { display, referenceOf } from './manifests.js';
import { redactUrl } from './redact.js';
import type { Op, RequestCore } from './request.js';
import { header, type HttpResponse } from './transport.js';

/**
 * Uploads a blob unless it is already there: existence check, then cross-repository mount from
 * `mountFrom`, then `POST` + monolithic `PUT ?digest=` (or `PATCH` chunks + `PUT`). The content is
 * verified against `desc` as it is sent (a Buffer up front; a stream while streaming).
 * @throws `DIGEST_MISMATCH` / `SIZE_MISMATCH` (content differs from `desc`), `UNAUTHORIZED`,
 *   `DENIED`, `TOKEN_REFUSED`, `REGISTRY_UNAVAILABLE`, `REGISTRY_ERROR`, `ABORTED`.
 */
export async function pushBlob(
  core: RequestCore,
  repo: RepositoryRef,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  content: BlobContent,
  opts: PushBlobOptions = {},
): Promise<PushBlobResult> {
  parseDigest(desc.digest);
  const data =
    typeof content === 'function'
      ? undefined
      : Buffer.isBuffer(content)
        ? content
        : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  if (data) {
    const v = new ContentVerifier(desc.digest, desc.size, { what: `blob ${desc.digest} to push` });
    v.update(data);
    v.finish();
  }
  if (!opts.skipExistsCheck) {
    const ex = await blobExists(core, repo, desc.digest, { ...opts, forPush: true });
    if (ex.exists) return { status: 'exists' };
  }
  let location: URL | undefined;
  let endpoint: RegistryEndpoint | undefined;
  for (const from of opts.mountFrom ?? []) {
    if (from === repo.path) continue;
    const r = await startUpload(core, repo, opts, { mount: desc.digest, from });
    if (r.mounted) return { status: 'mounted', from };
    location = r.location;
    endpoint = r.endpoint;
    break;
  }
  if (!location || !endpoint) ({ location, endpoint } = await startUpload(core, repo, opts));
  const upload: Upload = {
    core,
    digest: desc.digest,
    base: {
      registry: repo.domain,
      repository: repo.path,
      capability: 'push',
      endpoint,
      scopes: [repositoryScope(repo.path, ['pull', 'push'])],
      ctx: {
        registry: repo.domain,
        repository: repo.path,
        kind: 'upload',
        target: desc.digest,
        action: 'push',
      },
      followRedirects: false,
      call: opts,
    },
  };
  let finalRes: HttpResponse;
  if (data && opts.chunkSize && opts.chunkSize > 0 && data.length > opts.chunkSize)
    finalRes = await uploadChunks(upload, location, data, opts.chunkSize);
  else if (data) finalRes = await uploadWhole(upload, location, data);
  else finalRes = await uploadStream(upload, location, desc, content as () => Readable);
  const got = header(finalRes.headers, 'docker-content-digest');
  discard(finalRes.body);
  if (got && got !== desc.digest) {
    throw new KimgError(
      'DIGEST_MISMATCH',
      `registry ${repo.domain} stored blob ${desc.digest} under digest ${got}`,
      { expected: desc.digest, actual: got, host: finalRes.url.host },
    );
  }
  return { status: 'uploaded' };
}

/** An upload session: the blob's digest and the request fields every request of it shares. */
interface Upload {
  core: RequestCore;
  digest: string;
  base: Omit<Op, 'method' | 'accept'>;
}

/** Monolithic upload: one `PUT ?digest=` with the whole content. */
async function uploadWhole(u: Upload, location: URL, data: Buffer): Promise<HttpResponse> {
  const put = new URL(location.href);
  put.searchParams.set('digest', u.digest);
  const { res } = await u.core.execute({
    ...u.base,
    method: 'PUT',
    url: put,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
    body: data,
    accept: (s) => s === 201 || s === 204,
  });
  return res;
}

/** Chunked upload: `PATCH` per chunk with `Content-Range`, following each `Location`, then the close. */
async function uploadChunks(
  u: Upload,
  location: URL,
  data: Buffer,
  chunkSize: number,
): Promise<HttpResponse> {
  let loc = location;
  for (let start = 0; start < data.length; start += chunkSize) {
    const chunk = data.subarray(start, Math.min(data.length, start + chunkSize));
    const { res } = await u.core.execute({
      ...u.base,
      method: 'PATCH',
      url: loc,
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `${start}-${start + chunk.length - 1}`,
        'content-length': String(chunk.length),
      },
      body: chunk,
      accept: (s) => s === 202 || s === 204,
    });
    loc = uploadLocation(res, loc);
    discard(res.body);
  }
  return closeUpload(u, loc);
}

/** Streamed upload: one streamed `PATCH`, verified against `desc` on the way, then the close. */
async function uploadStream(
  u: Upload,
  location: URL,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  factory: () => Readable,
): Promise<HttpResponse> {
  const { res } = await u.core.execute({
    ...u.base,
    method: 'PATCH',
    url: location,
    headers: { 'content-type': 'application/octet-stream' },
    body: () => {
      const verify = createVerifyStream(desc.digest, desc.size, { what: `blob ${desc.digest} to push` });
      const src = factory();
      // a failing source fails the request with a coded error; a failing verify stops the source
      src.once('error', (e: unknown) => {
        verify.destroy(
          isKimgError(e)
            ? (e as KimgError)
            : new KimgError(
                'INTERNAL',
                `reading the content of blob ${desc.digest} to push failed: ${(e as Error)?.message ?? String(e)}`,
                { cause: e },
              ),
        );
      });
      verify.once('error', () => src.destroy());
      src.pipe(verify);
      return verify;
    },
    accept: (s) => s === 202 || s === 204,
  });
  const loc = uploadLocation(res, location);
  discard(res.body);
  return closeUpload(u, loc);
}

/** The closing PUT of a chunked or streamed upload: `?digest=` on the last Location, no body. */
async function closeUpload(u: Upload, loc: URL): Promise<HttpResponse> {
  const fin = new URL(loc.href);
  fin.searchParams.set('digest', u.digest);
  const { res } = await u.core.execute({
    ...u.base,
    method: 'PUT',
    url: fin,
    headers: { 'content-length': '0' },
    accept: (s) => s === 201 || s === 204,
  });
  return res;
}

function uploadLocation(res: HttpResponse, base: URL): URL {
  const loc = header(res.headers, 'location');
  if (!loc) {
    throw new KimgError(
      'REGISTRY_PROTOCOL_ERROR',
      `registry ${base.host} answered ${res.method} ${redactUrl(base)} without a Location header for the upload`,
      { host: base.host, status: res.status },
    );
  }
  return new URL(loc, base);
}

async function startUpload(
  core: RequestCore,
  repo: RepositoryRef,
  call: CallOptions,
  mount?: { mount: string; from: string },
): Promise<{ mounted: boolean; location: URL; endpoint: RegistryEndpoint }> {
  const scopes = [repositoryScope(repo.path, ['pull', 'push'])];
  if (mount) scopes.push(repositoryScope(mount.from, ['pull']));
  const { res, endpoint } = await core.execute({
    registry: repo.domain,
    repository: repo.path,
    capability: 'push',
    method: 'POST',
    path: `/${repo.path}/blobs/uploads/`,
    query: mount
      ? [
          ['mount', mount.mount],
          ['from', mount.from],
        ]
      : [],
    headers: { 'content-length': '0' },
    scopes,
    ctx: {
      registry: repo.domain,
      repository: repo.path,
      kind: mount ? 'mount' : 'upload',
      target: mount?.mount,
      action: 'push',
    },
    followRedirects: false,
    call,
    accept: (s) => s === 201 || s === 202,
  });
  const location = uploadLocation(res, res.url);
  discard(res.body);
  return { mounted: res.status === 201, location, endpoint };
}

/**
 * Uploads a manifest or index under a tag or digest, byte for byte (so its digest is preserved).
 * Returns the digest. Children of an index must be pushed first (by digest).
 * @throws `DIGEST_MISMATCH` (a digest reference that does not match the bytes, or a registry that
 *   stored different bytes), `MANIFEST_TOO_LARGE`, `MANIFEST_INVALID`, registry errors.
 */
export async function putManifest(
  core: RequestCore,
  ref: ImageRef,
  bytes: Buffer,
  mediaType: string,
  call: CallOptions = {},
): Promise<string> {
  const reference = referenceOf(ref);
  if (bytes.length > MAX_MANIFEST_BYTES)
    throw new KimgError(
      'MANIFEST_TOO_LARGE',
      `manifest of ${bytes.length} bytes exceeds the ${MAX_MANIFEST_BYTES}-byte limit`,
      { actual: bytes.length, expected: MAX_MANIFEST_BYTES },
    );
  const algorithm = isDigest(reference) ? parseDigest(reference).algorithm : 'sha256';
  const digest = digestOf(bytes, algorithm);
  if (isDigest(reference) && digest !== reference) {
    throw new KimgError(
      'DIGEST_MISMATCH',
      `manifest bytes hash to ${digest}, not to ${reference} they are pushed as`,
      { expected: reference, actual: digest },
    );
  }
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType) && !INDEX_MEDIA_TYPES.includes(mediaType)) {
    throw new KimgError(
      'UNSUPPORTED_MEDIA_TYPE',
      `cannot push a manifest of media type ${JSON.stringify(mediaType)}: supported are ${[...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES].join(', ')}`,
      { actual: mediaType },
    );
  }
  const { res } = await core.execute({
    registry: ref.domain,
    repository: ref.path,
    capability: 'push',
    method: 'PUT',
    path: `/${ref.path}/manifests/${reference}`,
    headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
    body: bytes,
    scopes: [repositoryScope(ref.path, ['pull', 'push'])],
    ctx: {
      registry: ref.domain,
      repository: ref.path,
      kind: 'manifest',
      target: reference,
      action: 'push',
    },
    followRedirects: false,
    call,
    accept: (s) => s === 201 || s === 200 || s === 204,
  });
  const got = header(res.headers, 'docker-content-digest');
  discard(res.body);
  if (got && isDigest(got) && got.startsWith(`${algorithm}:`) && got !== digest) {
    throw new KimgError(
      'DIGEST_MISMATCH',
      `registry ${ref.domain} stored the manifest pushed to ${display(ref)} as ${got}, not ${digest}`,
      { expected: digest, actual: got, host: res.url.host },
    );
  }
  return digest;
}
