/**
 * `RegistryClient`: an OCI distribution client (distribution-spec `spec.md`) for pulling and pushing
 * images, shaped after containerd's resolver / fetcher / pusher (`core/remotes/docker/*`) and
 * go-containerregistry's `remote` package.
 *
 * - Hosts: each registry's endpoints come from containerd-style `hosts.toml` (mirrors first, server
 *   last, capabilities respected) or the defaults; a failing endpoint falls through to the next.
 * - Auth: `Authorizer` (Basic, Bearer tokens; see `auth.ts`). Credentials come from the
 *   `credentials(host)` option, or per call (`auth`), so a caller can try several in turn.
 * - Manifests: `resolve` (HEAD, GET fallback) and `getManifest` (GET, `Accept` with the four types
 *   kimg understands, `Content-Type` checked, bytes verified against the requested digest and
 *   `Docker-Content-Digest`, the 4,393,216-byte cap of containerd); `getImageManifest` selects an
 *   index entry by platform.
 * - Blobs: `openBlob` streams with verification (or raw, bounded, from an offset), resumes broken
 *   downloads with `Range`, follows redirects and drops `Authorization` when the origin changes.
 * - Push: `pushBlob` (existence check, cross-repo mount, POST + PUT or PATCH chunks + PUT),
 *   `putManifest` (by tag or digest, bytes unchanged).
 * - Lists: `listTags`, `listRepositories` (pagination with `n`/`last` and the `Link` header).
 * - Errors: one coded `KimgError` per failure (see `internal/http-errors.ts`); retries by the
 *   `RetryPolicy`; cancellation by `AbortSignal`; stalls by the stall window.
 *
 * The class is a façade, split by concern the way regclient splits its own: `internal/request.ts`
 * (endpoints, mirror fallback, the auth dance, retries, redirects), `internal/manifests.ts`,
 * `internal/blobs.ts`, `internal/push.ts` and `internal/lists.ts` (tags and catalog).
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/index.js';
import type { RegistryEndpoint } from './hosts.js';
import type { BlobSink } from './internal/blob-reader.js';
import * as blobs from './internal/blobs.js';
import { listRepositories, listTags } from './internal/lists.js';
import { fetchManifest, getImageManifest, referenceOf, resolveManifest } from './internal/manifests.js';
import { pushBlob, putManifest } from './internal/push.js';
import { RequestCore } from './internal/request.js';
import { discard } from './internal/body.js';
import type {
  BlobContent,
  CallOptions,
  FetchedManifest,
  ImageManifestOptions,
  ImageManifestResult,
  ImageRef,
  OpenBlobOptions,
  PushBlobOptions,
  PushBlobResult,
  RegistryClientOptions,
  RepositoryRef,
} from './types.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

/** The registry client. One per process (or per configuration); reuses connections and tokens. */
export class RegistryClient {
  private readonly core: RequestCore;

  /** @throws `INVALID_ARGUMENT` for a stall timeout that is not positive. */
  constructor(options: RegistryClientOptions = {}) {
    this.core = new RequestCore(options);
  }

  /** Closes all connections. Calls after `close()` fail with `ABORTED`. */
  async close(): Promise<void> {
    await this.core.close();
  }

  /** The endpoints serving `registry`, in order (cached briefly). */
  async endpoints(registry: string): Promise<RegistryEndpoint[]> {
    return this.core.endpoints(registry);
  }

  /**
   * Checks that the registry answers the distribution API (`GET /v2/`) on its first endpoint.
   * @throws `REGISTRY_UNAVAILABLE`, `TLS_ERROR`, `ABORTED`.
   */
  async ping(registry: string, call: CallOptions = {}): Promise<{ status: number; authSchemes: string[] }> {
    const { res } = await this.core.execute({
      registry,
      capability: 'pull',
      method: 'GET',
      path: '/',
      scopes: [],
      ctx: { registry, kind: 'ping' },
      followRedirects: true,
      call,
      accept: (s) => s < 500,
      noAuth: true,
    });
    discard(res.body);
    return {
      status: res.status,
      authSchemes: parseWwwAuthenticate(res.headers['www-authenticate']).map((c) => c.scheme),
    };
  }

  /**
   * Resolves a tag (or digest) to a descriptor of the manifest it names: `HEAD` first, `GET` when
   * the registry does not support HEAD or omits `Docker-Content-Digest` (containerd resolver).
   * @throws `NOT_FOUND`, `UNAUTHORIZED`, `DENIED`, `TOKEN_REFUSED`, `REGISTRY_UNAVAILABLE`,
   *   `TLS_ERROR`, `TOO_MANY_REQUESTS`, `UNSUPPORTED_MEDIA_TYPE`, `DIGEST_MISMATCH`, `ABORTED`.
   */
  async resolve(ref: ImageRef, call: CallOptions = {}): Promise<Descriptor> {
    return resolveManifest(this.core, ref, call);
  }

  /**
   * Fetches the manifest or index a reference names, exactly as stored (bytes verified).
   * @throws as {@link resolve}, plus `MANIFEST_TOO_LARGE`, `MANIFEST_INVALID`.
   */
  async getManifest(ref: ImageRef, call: CallOptions = {}): Promise<FetchedManifest> {
    return fetchManifest(this.core, ref, referenceOf(ref), undefined, call);
  }

  /**
   * Fetches the image manifest for a reference: if it names an index, the entry for `platform`
   * (default: this host's platform) is chosen with src/platform `selectManifest` (or by `select`),
   * and that child is fetched and verified against the index entry's digest, size and media type.
   * Entries without a platform are last-resort candidates; checking their config is the caller's job.
   * @throws as {@link getManifest}; `PLATFORM_NOT_FOUND` (listing what the index offers) or whatever
   *   `select` throws; `UNSUPPORTED_MEDIA_TYPE` for a nested index.
   */
  async getImageManifest(ref: ImageRef, opts: ImageManifestOptions = {}): Promise<ImageManifestResult> {
    return getImageManifest(this.core, ref, opts);
  }

  /**
   * Opens a blob for reading. Resolves once the registry has answered (so `NOT_FOUND`,
   * `UNAUTHORIZED`, `TLS_ERROR` reject here); the stream then errors with `DIGEST_MISMATCH`,
   * `SIZE_MISMATCH`, `STALLED`, `ABORTED` or `REGISTRY_UNAVAILABLE`. Broken connections are resumed
   * with `Range`. With `verify: false` the stream is bounded by `desc.size` and starts at `offset`.
   * @throws `INVALID_ARGUMENT` for `offset` with verification on, or an offset beyond the size.
   */
  async openBlob(
    repo: RepositoryRef,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: OpenBlobOptions = {},
  ): Promise<Readable> {
    return blobs.openBlob(this.core, repo, desc, opts);
  }

  /**
   * Downloads a blob into `sink` (the store's ingest writer): the bytes go from the connection's read
   * buffer straight into `sink.write`, with no stream and no copy in between (see `h1.ts` for why).
   * Same options, errors, resumption and verification as {@link openBlob}; resolves once every byte
   * was taken by the sink.
   */
  async copyBlob(
    repo: RepositoryRef,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    sink: BlobSink,
    opts: OpenBlobOptions = {},
  ): Promise<void> {
    return blobs.copyBlob(this.core, repo, desc, sink, opts);
  }

  /**
   * Reads a whole (small) blob into memory, verified. For configs and the like.
   * @throws as {@link openBlob}; `INVALID_ARGUMENT` if the size exceeds `maxBytes` (default 16 MiB).
   */
  async fetchBlob(
    repo: RepositoryRef,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: CallOptions & { maxBytes?: number } = {},
  ): Promise<Buffer> {
    return blobs.fetchBlob(this.core, repo, desc, opts);
  }

  /**
   * The size of a blob (`HEAD`), as the registry reports it.
   * @throws `NOT_FOUND` (the blob does not exist), `REGISTRY_PROTOCOL_ERROR` (no Content-Length),
   *   `UNAUTHORIZED`, `DENIED`, `REGISTRY_UNAVAILABLE`, `TLS_ERROR`, `ABORTED`.
   */
  async statBlob(
    repo: RepositoryRef,
    digest: string,
    call: CallOptions & { forPush?: boolean } = {},
  ): Promise<{ size: number }> {
    return blobs.statBlob(this.core, repo, digest, call);
  }

  /**
   * Whether a blob exists in a repository (`HEAD`); its size when it does.
   * @throws `UNAUTHORIZED`, `DENIED`, `REGISTRY_UNAVAILABLE`, `TLS_ERROR`, `ABORTED` (never `NOT_FOUND`).
   */
  async blobExists(
    repo: RepositoryRef,
    digest: string,
    call: CallOptions & { forPush?: boolean } = {},
  ): Promise<{ exists: boolean; size?: number }> {
    return blobs.blobExists(this.core, repo, digest, call);
  }

  /**
   * Uploads a blob unless it is already there: existence check, then cross-repository mount from
   * `mountFrom`, then `POST` + monolithic `PUT ?digest=` (or `PATCH` chunks + `PUT`). The content is
   * verified against `desc` as it is sent (a Buffer up front; a stream while streaming).
   * @throws `DIGEST_MISMATCH` / `SIZE_MISMATCH` (content differs from `desc`), `UNAUTHORIZED`,
   *   `DENIED`, `TOKEN_REFUSED`, `REGISTRY_UNAVAILABLE`, `REGISTRY_ERROR`, `ABORTED`.
   */
  async pushBlob(
    repo: RepositoryRef,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    content: BlobContent,
    opts: PushBlobOptions = {},
  ): Promise<PushBlobResult> {
    return pushBlob(this.core, repo, desc, content, opts);
  }

  /**
   * Uploads a manifest or index under a tag or digest, byte for byte (so its digest is preserved).
   * Returns the digest. Children of an index must be pushed first (by digest).
   * @throws `DIGEST_MISMATCH` (a digest reference that does not match the bytes, or a registry that
   *   stored different bytes), `MANIFEST_TOO_LARGE`, `MANIFEST_INVALID`, registry errors.
   */
  async putManifest(
    ref: ImageRef,
    bytes: Buffer,
    mediaType: string,
    call: CallOptions = {},
  ): Promise<string> {
    return putManifest(this.core, ref, bytes, mediaType, call);
  }

  /**
   * Lists a repository's tags, following pagination (`n`, `last`, `Link: <…>; rel="next"`).
   * @throws `NOT_FOUND` (repository unknown), auth and registry errors.
   */
  async listTags(
    repo: RepositoryRef,
    opts: CallOptions & { pageSize?: number; limit?: number } = {},
  ): Promise<string[]> {
    return listTags(this.core, repo, opts);
  }

  /**
   * Lists the registry's repositories (`GET /v2/_catalog`), following pagination.
   * @throws auth and registry errors (many registries deny the catalog).
   */
  async listRepositories(
    registry: string,
    opts: CallOptions & { pageSize?: number; limit?: number } = {},
  ): Promise<string[]> {
    return listRepositories(this.core, registry, opts);
  }
}
