/**
 * Blobs: verified streaming reads (`openBlob`), reads straight into a store writer (`copyBlob`, see
 * `h1.ts`), small whole reads, and `HEAD` for existence and size. Downloads run in a `BlobReader`,
 * which resumes broken connections with `Range` and verifies digest and size as bytes arrive.
 */
import { Readable } from 'node:stream';
import { KimgError, isKimgError } from '../../errors/index.js';
import type { Descriptor } from '../../oci/index.js';
import { parseDigest } from '../../reference/index.js';
import { repositoryScope } from '../auth.js';
import type { CallOptions, OpenBlobOptions, RepositoryRef } from '../types.js';
import { BlobReader, type BlobSink } from './blob-reader.js';
import { discard } from './body.js';
import type { ErrorContext } from './http-errors.js';
import type { RequestCore } from './request.js';
import { header } from './transport.js';

/**
 * Opens a blob for reading. Resolves once the registry has answered (so `NOT_FOUND`,
 * `UNAUTHORIZED`, `TLS_ERROR` reject here); the stream then errors with `DIGEST_MISMATCH`,
 * `SIZE_MISMATCH`, `STALLED`, `ABORTED` or `REGISTRY_UNAVAILABLE`. Broken connections are resumed
 * with `Range`. With `verify: false` the stream is bounded by `desc.size` and starts at `offset`.
 * @throws `INVALID_ARGUMENT` for `offset` with verification on, or an offset beyond the size.
 */
export async function openBlob(
  core: RequestCore,
  repo: RepositoryRef,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  opts: OpenBlobOptions = {},
): Promise<Readable> {
  return (await startBlob(core, repo, desc, opts, undefined)) ?? Readable.from([]);
}

/**
 * Downloads a blob into `sink` (the store's ingest writer): the bytes go from the connection's read
 * buffer straight into `sink.write`, with no stream and no copy in between (see `h1.ts` for why).
 * Same options, errors, resumption and verification as {@link openBlob}; resolves once every byte
 * was taken by the sink.
 */
export async function copyBlob(
  core: RequestCore,
  repo: RepositoryRef,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  sink: BlobSink,
  opts: OpenBlobOptions = {},
): Promise<void> {
  const reader = await startBlob(core, repo, desc, opts, sink);
  if (reader) await reader.done();
}

/** Validates, opens and starts a blob download; undefined when there is nothing to fetch. */
async function startBlob(
  core: RequestCore,
  repo: RepositoryRef,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  opts: OpenBlobOptions,
  sink: BlobSink | undefined,
): Promise<BlobReader | undefined> {
  const verify = opts.verify ?? true;
  const offset = opts.offset ?? 0;
  parseDigest(desc.digest);
  if (!Number.isSafeInteger(desc.size) || desc.size < 0)
    throw new KimgError('INVALID_ARGUMENT', `invalid blob size ${String(desc.size)} for ${desc.digest}`, {
      input: desc.digest,
    });
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `offset ${String(offset)} is outside blob ${desc.digest} of ${desc.size} bytes`,
      { input: desc.digest },
    );
  }
  if (verify && offset > 0) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `cannot verify blob ${desc.digest} from offset ${offset}: open it with verify: false and hash the whole content yourself`,
      { input: desc.digest },
    );
  }
  const ctx: ErrorContext = {
    registry: repo.domain,
    repository: repo.path,
    kind: 'blob',
    target: desc.digest,
    action: 'pull',
    hadCredentials: false,
  };
  const what = `blob ${desc.digest} of ${repo.domain}/${repo.path}`;
  const reader = new BlobReader(
    async (start, signal) => {
      const { res } = await core.execute({
        registry: repo.domain,
        repository: repo.path,
        capability: 'pull',
        method: 'GET',
        path: `/${repo.path}/blobs/${desc.digest}`,
        headers: start > 0 ? { range: `bytes=${start}-` } : {},
        scopes: [repositoryScope(repo.path, ['pull'])],
        ctx,
        followRedirects: true,
        call: { ...opts, signal },
        accept: (s) => s === 200 || s === 206 || s === 416,
        direct: true,
      });
      return res;
    },
    {
      digest: desc.digest,
      size: desc.size,
      offset,
      verify,
      what,
      errorContext: ctx,
      policy: core.policy,
      clock: core.clock,
      stallMs: opts.stallTimeoutMs ?? core.stallMs,
      signal: opts.signal,
      onProgress: opts.onProgress,
      debug: core.debug,
      sink,
    },
  );
  if (desc.size === 0 && offset === 0 && !verify) {
    // nothing to fetch
    reader.destroy();
    return undefined;
  }
  try {
    await reader.start();
  } catch (e) {
    reader.destroy();
    throw e;
  }
  return reader;
}

/**
 * Reads a whole (small) blob into memory, verified. For configs and the like.
 * @throws as {@link openBlob}; `INVALID_ARGUMENT` if the size exceeds `maxBytes` (default 16 MiB).
 */
export async function fetchBlob(
  core: RequestCore,
  repo: RepositoryRef,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  opts: CallOptions & { maxBytes?: number } = {},
): Promise<Buffer> {
  const max = opts.maxBytes ?? 16 * 1024 * 1024;
  if (desc.size > max)
    throw new KimgError(
      'INVALID_ARGUMENT',
      `blob ${desc.digest} is ${desc.size} bytes, more than the ${max} bytes fetchBlob reads into memory: use openBlob`,
      { input: desc.digest },
    );
  const stream = await openBlob(core, repo, desc, opts);
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * The size of a blob (`HEAD`), as the registry reports it.
 * @throws `NOT_FOUND` (the blob does not exist), `REGISTRY_PROTOCOL_ERROR` (no Content-Length),
 *   `UNAUTHORIZED`, `DENIED`, `REGISTRY_UNAVAILABLE`, `TLS_ERROR`, `ABORTED`.
 */
export async function statBlob(
  core: RequestCore,
  repo: RepositoryRef,
  digest: string,
  call: CallOptions & { forPush?: boolean } = {},
): Promise<{ size: number }> {
  parseDigest(digest);
  const { res } = await core.execute({
    registry: repo.domain,
    repository: repo.path,
    capability: call.forPush ? 'push' : 'pull',
    method: 'HEAD',
    path: `/${repo.path}/blobs/${digest}`,
    scopes: [repositoryScope(repo.path, call.forPush ? ['pull', 'push'] : ['pull'])],
    ctx: {
      registry: repo.domain,
      repository: repo.path,
      kind: 'blob',
      target: digest,
      action: call.forPush ? 'push' : 'pull',
    },
    followRedirects: true,
    call,
    accept: (s) => s === 200,
  });
  discard(res.body);
  const len = header(res.headers, 'content-length');
  if (len === undefined || !/^\d+$/.test(len)) {
    throw new KimgError(
      'REGISTRY_PROTOCOL_ERROR',
      `registry ${repo.domain} did not say the size of blob ${digest} (no Content-Length on HEAD)`,
      { host: res.url.host },
    );
  }
  return { size: Number(len) };
}

/**
 * Whether a blob exists in a repository (`HEAD`); its size when it does.
 * @throws `UNAUTHORIZED`, `DENIED`, `REGISTRY_UNAVAILABLE`, `TLS_ERROR`, `ABORTED` (never `NOT_FOUND`).
 */
export async function blobExists(
  core: RequestCore,
  repo: RepositoryRef,
  digest: string,
  call: CallOptions & { forPush?: boolean } = {},
): Promise<{ exists: boolean; size?: number }> {
  try {
    return { exists: true, ...(await statBlob(core, repo, digest, call)) };
  } catch (e) {
    if (isKimgError(e, 'NOT_FOUND')) return { exists: false };
    if (isKimgError(e, 'REGISTRY_PROTOCOL_ERROR')) return { exists: true };
    throw e;
  }
}
