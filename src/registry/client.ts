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
 *   `Docker-Content-Digest`, 4 MiB-ish cap as containerd); `getImageManifest` selects an index entry
 *   by platform.
 * - Blobs: `openBlob` streams with verification (or raw, bounded, from an offset), resumes broken
 *   downloads with `Range`, follows redirects and drops `Authorization` when the origin changes.
 * - Push: `pushBlob` (existence check, cross-repo mount, POST + PUT or PATCH chunks + PUT),
 *   `putManifest` (by tag or digest, bytes unchanged).
 * - Lists: `listTags`, `listRepositories` (pagination with `n`/`last` and the `Link` header).
 * - Errors: one coded `KimgError` per failure (see `internal/http-errors.ts`); retries by the
 *   `RetryPolicy`; cancellation by `AbortSignal`; stalls by the stall window.
 */
import { Readable } from 'node:stream';
import type { AuthConfig } from '../credentials/index.js';
import { KimgError, isKimgError } from '../errors/index.js';
import {
  INDEX_MEDIA_TYPES,
  MANIFEST_ACCEPT,
  MANIFEST_MEDIA_TYPES,
  MediaType,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from '../oci/index.js';
import { Authorizer, normalizeScopes, repositoryScope, scopesCover, type AuthDecision } from './auth.js';
import { debugFromEnv, retryChannel } from './diagnostics.js';
import { resolveRegistryEndpoints, type HostCapability, type RegistryEndpoint } from './hosts.js';
import { BlobReader, type BlobSink } from './internal/blob-reader.js';
import { BODY_STALLED_CODE } from './internal/h1.js';
import { discard, readCapped } from './internal/body.js';
import { errorFromResponse, type ErrorContext } from './internal/http-errors.js';
import { redactUrl } from './internal/redact.js';
import { header, Transport, type HttpRequest, type HttpResponse } from './internal/transport.js';
import {
  HostBackoff,
  RetryPolicy,
  SYSTEM_CLOCK,
  parseRetryAfter,
  isRetryableNetworkError,
  type Clock,
  type RetryPolicyOptions,
} from './retry.js';
import { selectManifest, type PlatformLike, type PlatformMatcher } from '../platform/index.js';
import { isDigest, parseDigest } from '../reference/index.js';
import { ContentVerifier, createVerifyStream, digestOf } from './verify.js';
import { challengeScopes, parseWwwAuthenticate } from './www-authenticate.js';

/**
 * Largest manifest accepted: containerd's `4*1048*1048` (4,393,984 bytes; note 1048, not 1024),
 * which is at least the 4 MiB the distribution spec asks registries and clients to support.
 */
export const MAX_MANIFEST_BYTES = 4 * 1048 * 1048;

/** Where an image lives: the reference's domain and repository path (src/reference `Reference`). */
export interface RepositoryRef {
  /** Registry host as in the reference (`docker.io`, `127.0.0.1:5000`). */
  domain: string;
  /** Repository path (`library/busybox`). */
  path: string;
}

/** A repository plus a tag and/or digest (the digest wins when both are present). */
export interface ImageRef extends RepositoryRef {
  tag?: string | undefined;
  digest?: string | undefined;
}

/** Looks up credentials for a host (the registry's domain, or a mirror's host). */
export type CredentialLookup = (host: string) => AuthConfig | undefined | Promise<AuthConfig | undefined>;

/** Options of {@link RegistryClient}. Defaults in {@link DEFAULT_REGISTRY_CLIENT_OPTIONS}. */
export interface RegistryClientOptions {
  /** Credentials per host; called with the registry domain (or a mirror host). Default: none. */
  credentials?: CredentialLookup;
  /** containerd-style hosts directory (`/etc/containerd/certs.d`). */
  hostsDir?: string;
  /** Hosts reached over plain HTTP (`host:port`, or a host name for all its ports). */
  plainHttp?: readonly string[];
  /** Extra CA files trusted for every HTTPS endpoint. */
  caFiles?: readonly string[];
  /** Replaces hosts resolution entirely (tests, embedding). */
  endpoints?: (registry: string) => RegistryEndpoint[] | Promise<RegistryEndpoint[]>;
  /** No bytes (or no response) for this long fails a request with `STALLED`. Default 60 s. */
  stallTimeoutMs?: number;
  /** Retry policy or its options. */
  retry?: RetryPolicy | Partial<RetryPolicyOptions>;
  /** Time source (tests). */
  clock?: Clock;
  /** Random source for jitter (tests). */
  random?: () => number;
  userAgent?: string;
  /** Debug line sink; default: stderr when `KIMG_DEBUG` is set. */
  debug?: (line: string) => void;
  /** Non-fatal configuration warnings (a hosts.toml that does not parse). Default: debug log. */
  warn?: (message: string) => void;
  /** Max connections per origin. Default 16. */
  connectionsPerHost?: number;
  /** How long resolved endpoints (hosts.toml) are reused before re-reading. Default 10 s. */
  hostsCacheMs?: number;
}

/** Defaults of {@link RegistryClientOptions}. */
export const DEFAULT_REGISTRY_CLIENT_OPTIONS = Object.freeze({
  /** containerd's default `image_pull_progress_timeout` is 5m; issue B asks for 60 s per request. */
  stallTimeoutMs: 60_000,
  connectionsPerHost: 16,
  hostsCacheMs: 10_000,
  userAgent: 'kimg',
});

/** Options every call takes. */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  /**
   * Credentials for this call, overriding the `credentials` option; `null` = anonymous. Applied to
   * every endpoint of the registry unless `serverAddress` names another host (containerd CRI).
   */
  auth?: AuthConfig | null | undefined;
  /** Stall window for this call. */
  stallTimeoutMs?: number | undefined;
}

/** A fetched manifest or index: the exact bytes and what they are. */
export interface FetchedManifest {
  /** `mediaType`, `digest` (of `bytes`) and `size` (= bytes.length). */
  descriptor: Descriptor;
  mediaType: string;
  digest: string;
  bytes: Buffer;
  /** Parsed JSON. */
  manifest: ImageManifest | ImageIndex;
  /** True for an OCI index / Docker manifest list. */
  isIndex: boolean;
}

/** A platform as `selectManifest` understands it: a string (`linux/arm64/v8`) or an object. */
export type PlatformSelector = (index: ImageIndex, indexDescriptor: Descriptor) => Descriptor;

/** Options of {@link RegistryClient.getImageManifest}. */
export interface ImageManifestOptions extends CallOptions {
  /**
   * The platform to select from an index (src/platform `selectManifest`): a platform, a matcher, or
   * omitted for this host's platform (containerd's default).
   */
  platform?: PlatformLike | PlatformMatcher;
  /** A custom chooser of the index entry; overrides `platform`. */
  select?: PlatformSelector;
}

/** Result of {@link RegistryClient.getImageManifest}. */
export interface ImageManifestResult {
  /** The index the reference named, if it named one. */
  index?: FetchedManifest;
  /** The image manifest (selected from the index, or named directly). */
  manifest: FetchedManifest;
}

/** Options of {@link RegistryClient.openBlob}. */
export interface OpenBlobOptions extends CallOptions {
  /** Verify digest and size while streaming (default true). False = size-bounded raw stream. */
  verify?: boolean;
  /** Start at this byte (raw mode only; sends `Range`). Default 0. */
  offset?: number;
  /** Called per chunk with the position reached. */
  onProgress?: (position: number, size: number) => void;
}

/** Options of {@link RegistryClient.pushBlob}. */
export interface PushBlobOptions extends CallOptions {
  /** Repositories (on the same registry) to try to mount the blob from before uploading. */
  mountFrom?: readonly string[];
  /** Upload a Buffer in PATCH chunks of this size instead of one PUT. */
  chunkSize?: number;
  /** Skip the existence check. */
  skipExistsCheck?: boolean;
}

/** What {@link RegistryClient.pushBlob} did. */
export type PushBlobResult =
  { status: 'exists' } | { status: 'mounted'; from: string } | { status: 'uploaded' };

/** Content to upload: bytes, or a factory for a fresh stream per attempt. */
export type BlobContent = Buffer | Uint8Array | (() => Readable);

interface Op {
  registry: string;
  repository?: string | undefined;
  capability: HostCapability;
  method: HttpRequest['method'];
  /** Path after the API root (`/small/manifests/1`). */
  path?: string;
  /** A full URL on a fixed endpoint (upload locations, pagination links). */
  url?: URL;
  endpoint?: RegistryEndpoint;
  query?: [string, string][];
  headers?: Record<string, string>;
  body?: Buffer | (() => Readable) | undefined;
  scopes: string[];
  ctx: Omit<ErrorContext, 'hadCredentials'>;
  followRedirects: boolean;
  call: CallOptions;
  /** Statuses returned to the caller rather than turned into errors. */
  accept: (status: number) => boolean;
  /** No auth, no ping (the ping itself). */
  noAuth?: boolean;
  /** Bulk body (blob GET): the transport's lean HTTP/1.1 path (see `HttpRequest.direct`). */
  direct?: boolean;
}

interface OpResult {
  res: HttpResponse;
  endpoint: RegistryEndpoint;
  decision: AuthDecision | undefined;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
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

function hostOf(serverAddress: string): string {
  const s = /^[a-z][a-z0-9+.-]*:\/\//i.test(serverAddress) ? serverAddress : `https://${serverAddress}`;
  try {
    return new URL(s).host.toLowerCase();
  } catch {
    return serverAddress.toLowerCase();
  }
}

const DOCKER_HUB = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'registry.hub.docker.com',
]);

/** The registry client. One per process (or per configuration); reuses connections and tokens. */
export class RegistryClient {
  private readonly transport: Transport;
  private readonly authorizer: Authorizer;
  private readonly policy: RetryPolicy;
  private readonly clock: Clock;
  private readonly backoff: HostBackoff;
  private readonly stallMs: number;
  private readonly debug: ((line: string) => void) | undefined;
  private readonly endpointCache = new Map<string, { at: number; endpoints: Promise<RegistryEndpoint[]> }>();

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.policy =
      options.retry instanceof RetryPolicy
        ? options.retry
        : new RetryPolicy(options.retry ?? {}, options.random);
    this.stallMs = options.stallTimeoutMs ?? DEFAULT_REGISTRY_CLIENT_OPTIONS.stallTimeoutMs;
    if (!(this.stallMs > 0))
      throw new KimgError(
        'INVALID_ARGUMENT',
        `stallTimeoutMs must be > 0, got ${String(options.stallTimeoutMs)}`,
      );
    this.debug = options.debug ?? debugFromEnv();
    this.backoff = new HostBackoff(this.clock);
    this.transport = new Transport({
      connectionsPerOrigin: options.connectionsPerHost ?? DEFAULT_REGISTRY_CLIENT_OPTIONS.connectionsPerHost,
      userAgent: options.userAgent ?? DEFAULT_REGISTRY_CLIENT_OPTIONS.userAgent,
      debug: this.debug,
    });
    this.authorizer = new Authorizer((req) => this.sendTokenRequest(req), this.clock);
  }

  /** Closes all connections. Calls after `close()` fail with `ABORTED`. */
  async close(): Promise<void> {
    await this.transport.close();
  }

  // ------------------------------------------------------------------------------------------
  // endpoints, credentials, the request loop
  // ------------------------------------------------------------------------------------------

  /** The endpoints serving `registry`, in order (cached briefly). */
  async endpoints(registry: string): Promise<RegistryEndpoint[]> {
    if (this.options.endpoints) return this.options.endpoints(registry);
    const now = this.clock.now();
    const c = this.endpointCache.get(registry);
    if (c && now - c.at < (this.options.hostsCacheMs ?? DEFAULT_REGISTRY_CLIENT_OPTIONS.hostsCacheMs))
      return c.endpoints;
    const p = resolveRegistryEndpoints(registry, {
      ...(this.options.hostsDir !== undefined ? { hostsDir: this.options.hostsDir } : {}),
      ...(this.options.plainHttp !== undefined ? { plainHttp: this.options.plainHttp } : {}),
      ...(this.options.caFiles !== undefined ? { caFiles: this.options.caFiles } : {}),
      warn: this.options.warn ?? ((m) => this.debug?.(`warning: ${m}`)),
    });
    this.endpointCache.set(registry, { at: now, endpoints: p });
    p.catch(() => this.endpointCache.delete(registry));
    return p;
  }

  private async credentialsFor(
    ep: RegistryEndpoint,
    registry: string,
    call: CallOptions,
  ): Promise<AuthConfig | undefined> {
    if (call.auth === null) return undefined;
    if (call.auth !== undefined) {
      const sa = call.auth.serverAddress;
      if (sa) {
        const h = hostOf(sa);
        const ok =
          h === ep.host.toLowerCase() ||
          h === registry.toLowerCase() ||
          (DOCKER_HUB.has(h) && DOCKER_HUB.has(registry.toLowerCase()));
        if (!ok) return undefined;
      }
      return call.auth;
    }
    return this.options.credentials?.(ep.mirror ? ep.host : registry);
  }

  private baseUrl(ep: RegistryEndpoint): string {
    return `${ep.scheme}://${ep.host}${ep.path}`;
  }

  private buildUrl(ep: RegistryEndpoint, op: Op): URL {
    const u = op.url ? new URL(op.url.href) : new URL(this.baseUrl(ep) + (op.path ?? '/'));
    for (const [k, v] of op.query ?? []) u.searchParams.append(k, v);
    if (ep.mirror && !u.searchParams.has('ns')) u.searchParams.set('ns', op.registry);
    return u;
  }

  /**
   * Runs `op` against the registry's endpoints that have its capability, in order, falling through
   * to the next endpoint on failure. Resolves with the first accepted response.
   */
  private async execute(op: Op): Promise<OpResult> {
    const all = op.endpoint ? [op.endpoint] : await this.endpoints(op.registry);
    const eps = all.filter((e) => e.capabilities.includes(op.capability));
    if (eps.length === 0) {
      throw new KimgError(
        'HOSTS_CONFIG_INVALID',
        `no endpoint of registry ${op.registry} has the ${op.capability} capability: check its hosts.toml`,
        { host: op.registry },
      );
    }
    let lastError: unknown;
    for (const [i, ep] of eps.entries()) {
      try {
        // like containerd, only the last endpoint (the server) is retried: a failing mirror is skipped
        return await this.onEndpoint(ep, op, i === eps.length - 1);
      } catch (e) {
        lastError = e;
        if (isKimgError(e, ['ABORTED', 'INVALID_ARGUMENT'])) throw e;
        if (i < eps.length - 1)
          this.debug?.(
            `endpoint ${ep.host} failed (${isKimgError(e) ? e.code : String(e)}); trying ${eps[i + 1]!.host}`,
          );
      }
    }
    throw lastError;
  }

  private async onEndpoint(ep: RegistryEndpoint, op: Op, retries: boolean): Promise<OpResult> {
    const base = this.baseUrl(ep);
    const signal = op.call.signal;
    const creds = op.noAuth ? undefined : await this.credentialsFor(ep, op.registry, op.call);
    if (!op.noAuth && !this.authorizer.known(base)) {
      await this.authorizer.ping(base, async () => {
        const r = await this.onEndpoint(
          ep,
          {
            registry: op.registry,
            capability: op.capability,
            method: 'GET',
            path: '/',
            scopes: [],
            ctx: { registry: op.registry, kind: 'ping' },
            followRedirects: true,
            call: { signal, stallTimeoutMs: op.call.stallTimeoutMs },
            accept: (s) => s < 500 && s !== 429 && s !== 408,
            noAuth: true,
          },
          retries,
        );
        return r.res;
      });
    }
    const url = this.buildUrl(ep, op);
    const replayable =
      retries && (op.body === undefined || Buffer.isBuffer(op.body) || typeof op.body === 'function');
    let scopes = op.scopes;
    let attempt = 0;
    let authRetries = 0;
    for (;;) {
      attempt++;
      const wait = this.backoff.waitFor(ep.host);
      if (wait > 0) await this.clock.sleep(wait, signal).catch((e: unknown) => this.rethrowAbort(e, op, url));
      const decision = op.noAuth
        ? undefined
        : await this.authorizer.authorize(base, op.registry, scopes, creds, signal);
      let res: HttpResponse;
      try {
        res = await this.sendFollowing(ep, url, op, decision);
      } catch (e) {
        const delay =
          replayable && isKimgError(e) && e.details.retryable === true && e.code !== 'STALLED'
            ? this.policy.delayBeforeRetry(attempt)
            : undefined;
        if (delay !== undefined && isKimgError(e)) {
          this.noteRetry(op, url, ep.host, attempt, delay, e.code);
          continue;
        }
        throw e;
      }
      // only a 401 from the endpoint itself speaks for its auth (not one from a redirect target)
      if (res.status === 401 && decision && authRetries < 2 && res.url.origin === url.origin) {
        const changed = this.authorizer.learn(base, res.headers['www-authenticate']);
        const bearer = this.authorizer.challengesFor(base).find((c) => c.scheme === 'bearer');
        let retry = false;
        if (bearer) {
          const extra = challengeScopes(bearer);
          if (extra.length > 0 && !scopesCover(scopes, extra)) {
            scopes = normalizeScopes([...scopes, ...extra]);
            retry = true;
          }
        }
        if (decision.fromCache) {
          this.authorizer.invalidate(decision.tokenKey);
          retry = true;
        }
        if (changed && decision.scheme === 'none' && this.authorizer.challengesFor(base).length > 0)
          retry = true;
        if (retry) {
          authRetries++;
          attempt--;
          discard(res.body);
          continue;
        }
        if (bearer?.params.error === 'insufficient_scope') {
          const e = await errorFromResponse(res, {
            ...op.ctx,
            hadCredentials: decision.withCredentials,
            attempts: attempt,
          });
          if (decision.withCredentials) {
            throw new KimgError(
              'DENIED',
              `registry ${op.registry} denied ${op.ctx.action ?? 'access'}${op.ctx.action ? ' access' : ''} to repository ${JSON.stringify(op.repository ?? '')}: the credentials for host ${op.registry} were accepted but do not grant ${scopes.join(' ')}; check that the pull secret has access to this repository`,
              { ...e.details, cause: e },
            );
          }
          throw new KimgError(
            'UNAUTHORIZED',
            `registry ${op.registry} requires credentials for ${op.ctx.action ?? 'access'}${op.ctx.action ? ' access' : ''} to repository ${JSON.stringify(op.repository ?? '')} and none were found for host ${op.registry}: provide them (a pull secret, --creds or --docker-config)`,
            { ...e.details, cause: e },
          );
        }
      }
      if (this.policy.isRetryableStatus(res.status) && replayable) {
        const retryAfter = parseRetryAfter(header(res.headers, 'retry-after'), this.clock.now());
        if (retryAfter === undefined || retryAfter <= this.policy.options.maxRetryAfterMs) {
          const delay = this.policy.delayBeforeRetry(attempt, retryAfter);
          if (delay !== undefined) {
            discard(res.body);
            this.noteRetry(op, url, ep.host, attempt, delay, `HTTP ${res.status}`);
            continue;
          }
        }
      }
      if (op.accept(res.status)) {
        this.backoff.success(ep.host);
        return { res, endpoint: ep, decision };
      }
      const hadCredentials = decision?.withCredentials ?? false;
      throw await errorFromResponse(res, { ...op.ctx, hadCredentials, attempts: attempt });
    }
  }

  private rethrowAbort(e: unknown, op: Op, url: URL): never {
    if (op.call.signal?.aborted)
      throw new KimgError('ABORTED', `${op.method} ${redactUrl(url)} was cancelled`, {
        method: op.method,
        url: redactUrl(url),
        host: url.host,
        cause: e,
      });
    throw e;
  }

  private noteRetry(op: Op, url: URL, host: string, attempt: number, delay: number, reason: string): void {
    this.backoff.failure(host, delay);
    const msg = { method: op.method, url: redactUrl(url), host, attempt, delayMs: delay, reason };
    if (retryChannel.hasSubscribers) retryChannel.publish(msg);
    this.debug?.(`retrying ${op.method} ${msg.url} in ${delay} ms after attempt ${attempt} (${reason})`);
  }

  /** Sends one request, following redirects (GET/HEAD) and dropping credentials across origins. */
  private async sendFollowing(
    ep: RegistryEndpoint,
    url: URL,
    op: Op,
    decision: AuthDecision | undefined,
  ): Promise<HttpResponse> {
    let current = url;
    let method = op.method;
    let crossed = false;
    const stallMs = op.call.stallTimeoutMs ?? this.stallMs;
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string | string[]> = {};
      if (!crossed) {
        for (const [k, v] of Object.entries(ep.headers)) headers[k.toLowerCase()] = v;
        if (decision?.header) headers.authorization = decision.header;
      }
      for (const [k, v] of Object.entries(op.headers ?? {})) headers[k.toLowerCase()] = v;
      const body = hops > 0 ? null : typeof op.body === 'function' ? op.body() : (op.body ?? null);
      const res = await this.transport.send({
        method,
        url: current,
        headers,
        body,
        signal: op.call.signal,
        stallMs,
        tls: current.host === ep.host ? ep.tls : undefined,
        connectTimeoutMs: ep.dialTimeoutMs,
        direct: op.direct,
      });
      if (!op.followRedirects || !REDIRECTS.has(res.status) || (method !== 'GET' && method !== 'HEAD'))
        return res;
      const loc = header(res.headers, 'location');
      if (!loc) return res;
      discard(res.body);
      if (hops >= 10) {
        throw new KimgError(
          'REGISTRY_PROTOCOL_ERROR',
          `registry ${op.registry} redirected ${op.method} ${redactUrl(url)} more than 10 times`,
          { method: op.method, url: redactUrl(url), host: url.host },
        );
      }
      let next: URL;
      try {
        next = new URL(loc, current);
      } catch {
        throw new KimgError(
          'REGISTRY_PROTOCOL_ERROR',
          `registry ${op.registry} redirected to an invalid location`,
          { method: op.method, url: redactUrl(url), host: url.host },
        );
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new KimgError(
          'REGISTRY_PROTOCOL_ERROR',
          `registry ${op.registry} redirected to unsupported scheme ${next.protocol}`,
          { method: op.method, url: redactUrl(url), host: url.host },
        );
      }
      // Authorization (and configured headers) never follow a redirect to another origin.
      if (next.origin !== current.origin) crossed = true;
      this.debug?.(
        `redirect ${res.status} ${redactUrl(current)} -> ${redactUrl(next)}${crossed ? ' (credentials dropped)' : ''}`,
      );
      if (res.status === 303 && method !== 'HEAD') method = 'GET';
      current = next;
    }
  }

  /** Token requests: retried on transient failures, no redirects-with-credentials. */
  private async sendTokenRequest(
    req: Omit<HttpRequest, 'stallMs'> & { stallMs?: number },
  ): Promise<HttpResponse> {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.transport.send({ ...req, stallMs: req.stallMs ?? this.stallMs });
        if (this.policy.isRetryableStatus(res.status)) {
          const retryAfter = parseRetryAfter(header(res.headers, 'retry-after'), this.clock.now());
          const delay =
            retryAfter !== undefined && retryAfter > this.policy.options.maxRetryAfterMs
              ? undefined
              : this.policy.delayBeforeRetry(attempt, retryAfter);
          if (delay !== undefined) {
            discard(res.body);
            await this.clock.sleep(delay, req.signal);
            continue;
          }
        }
        return res;
      } catch (e) {
        const delay =
          isKimgError(e) && e.details.retryable === true && e.code !== 'STALLED'
            ? this.policy.delayBeforeRetry(attempt)
            : undefined;
        if (delay === undefined) throw e;
        await this.clock.sleep(delay, req.signal);
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // API
  // ------------------------------------------------------------------------------------------

  /**
   * Checks that the registry answers the distribution API (`GET /v2/`) on its first endpoint.
   * @throws `REGISTRY_UNAVAILABLE`, `TLS_ERROR`, `ABORTED`.
   */
  async ping(registry: string, call: CallOptions = {}): Promise<{ status: number; authSchemes: string[] }> {
    const { res } = await this.execute({
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
    const reference = this.referenceOf(ref);
    let res: HttpResponse;
    try {
      ({ res } = await this.execute(this.manifestOp(ref, reference, 'HEAD', call)));
    } catch (e) {
      if (
        isKimgError(e, 'REGISTRY_ERROR') &&
        (e.details.status === 405 || e.details.status === 400 || e.details.status === 501)
      ) {
        return (await this.getManifest(ref, call)).descriptor;
      }
      throw e;
    }
    discard(res.body);
    const digest = header(res.headers, 'docker-content-digest');
    const len = header(res.headers, 'content-length');
    const type = contentType(res.headers);
    const known = MANIFEST_MEDIA_TYPES.includes(type) || INDEX_MEDIA_TYPES.includes(type);
    if (!digest || !isDigest(digest) || len === undefined || !/^\d+$/.test(len) || !known) {
      if (type && SCHEMA1.has(type as never)) throw this.schema1Error(ref, reference, type);
      return (await this.getManifest(ref, call)).descriptor;
    }
    if (isDigest(reference) && digest !== reference) {
      // the registry says the manifest has another digest than the one we asked for by digest
      return (await this.getManifest(ref, call)).descriptor;
    }
    return { mediaType: type, digest, size: Number(len) };
  }

  /**
   * Fetches the manifest or index a reference names, exactly as stored (bytes verified).
   * @throws as {@link resolve}, plus `MANIFEST_TOO_LARGE`, `MANIFEST_INVALID`.
   */
  async getManifest(ref: ImageRef, call: CallOptions = {}): Promise<FetchedManifest> {
    return this.fetchManifest(ref, this.referenceOf(ref), undefined, call);
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
    const top = await this.getManifest(ref, opts);
    if (!top.isIndex) return { manifest: top };
    const index = top.manifest as ImageIndex;
    const child = opts.select
      ? opts.select(index, top.descriptor)
      : selectManifest(index.manifests, opts.platform, { index: this.display(ref) });
    const manifest = await this.fetchManifest(
      { domain: ref.domain, path: ref.path, digest: child.digest },
      child.digest,
      child,
      opts,
    );
    if (manifest.isIndex) {
      throw new KimgError(
        'UNSUPPORTED_MEDIA_TYPE',
        `the entry ${child.digest} selected from ${this.display(ref)} is itself an index (${manifest.mediaType}); nested indexes are not supported`,
        {
          input: this.display(ref),
          actual: manifest.mediaType,
        },
      );
    }
    return { index: top, manifest };
  }

  private referenceOf(ref: ImageRef): string {
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

  private display(ref: ImageRef): string {
    return `${ref.domain}/${ref.path}${ref.digest ? '@' + ref.digest : ref.tag ? ':' + ref.tag : ''}`;
  }

  private manifestOp(ref: RepositoryRef, reference: string, method: 'GET' | 'HEAD', call: CallOptions): Op {
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

  private schema1Error(ref: ImageRef, reference: string, type: string): KimgError {
    return new KimgError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${ref.domain}/${ref.path} ${reference} is a Docker schema 1 manifest (${type}), which is no longer supported (containerd dropped it in v2.0): rebuild or re-push the image with a current tool`,
      { input: this.display(ref), actual: type },
    );
  }

  private async fetchManifest(
    ref: ImageRef,
    reference: string,
    expected: Descriptor | undefined,
    call: CallOptions,
  ): Promise<FetchedManifest> {
    const what = `manifest ${reference} of ${ref.domain}/${ref.path}`;
    let res: HttpResponse;
    let bytes: Buffer;
    for (let attempt = 1; ; attempt++) {
      ({ res } = await this.execute(this.manifestOp(ref, reference, 'GET', call)));
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
          : bodyReadError(e, res, call.stallTimeoutMs ?? this.stallMs, call.signal);
        const delay =
          err.details.retryable === true && err.code !== 'STALLED'
            ? this.policy.delayBeforeRetry(attempt)
            : undefined;
        if (delay === undefined) throw err;
        this.debug?.(`reading ${what} failed (${err.message}); retrying in ${delay} ms`);
        await this.clock.sleep(delay, call.signal);
        continue;
      }
      if (read.truncated) {
        throw new KimgError(
          'MANIFEST_TOO_LARGE',
          `${what} is larger than the ${MAX_MANIFEST_BYTES}-byte limit for manifests`,
          { expected: MAX_MANIFEST_BYTES, actual: MAX_MANIFEST_BYTES + 1, host: res.url.host },
        );
      }
      bytes = read.bytes;
      break;
    }
    // digest: of the bytes, checked against what was asked for and what the registry claims
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
    const fieldType = typeof obj.mediaType === 'string' ? obj.mediaType : undefined;
    const ct = contentType(res.headers);
    if (
      SCHEMA1.has(ct as never) ||
      (fieldType && SCHEMA1.has(fieldType as never)) ||
      obj.schemaVersion === 1
    ) {
      throw this.schema1Error(ref, reference, fieldType ?? (ct || 'schemaVersion 1'));
    }
    const knownType = (t: string): boolean =>
      MANIFEST_MEDIA_TYPES.includes(t) || INDEX_MEDIA_TYPES.includes(t);
    let mediaType: string;
    if (knownType(ct)) mediaType = ct;
    else if (GENERIC_TYPES.has(ct)) {
      if (fieldType !== undefined) mediaType = fieldType;
      else if (Array.isArray(obj.manifests)) mediaType = MediaType.OciIndex;
      else mediaType = MediaType.OciManifest;
    } else {
      throw new KimgError(
        'UNSUPPORTED_MEDIA_TYPE',
        `${what} has media type ${JSON.stringify(ct)}, which kimg does not handle (supported: ${[...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES].join(', ')})`,
        {
          actual: ct,
          host: res.url.host,
        },
      );
    }
    if (!knownType(mediaType)) {
      throw new KimgError(
        'UNSUPPORTED_MEDIA_TYPE',
        `${what} has media type ${JSON.stringify(mediaType)}, which kimg does not handle (supported: ${[...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES].join(', ')})`,
        {
          actual: mediaType,
          host: res.url.host,
        },
      );
    }
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
    return (await this.startBlob(repo, desc, opts, undefined)) ?? Readable.from([]);
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
    const reader = await this.startBlob(repo, desc, opts, sink);
    if (reader) await reader.done();
  }

  /** Validates, opens and starts a blob download; undefined when there is nothing to fetch. */
  private async startBlob(
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
        const { res } = await this.execute({
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
        policy: this.policy,
        clock: this.clock,
        stallMs: opts.stallTimeoutMs ?? this.stallMs,
        signal: opts.signal,
        onProgress: opts.onProgress,
        debug: this.debug,
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
  async fetchBlob(
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
    const stream = await this.openBlob(repo, desc, opts);
    const chunks: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
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
    parseDigest(digest);
    const { res } = await this.execute({
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
  async blobExists(
    repo: RepositoryRef,
    digest: string,
    call: CallOptions & { forPush?: boolean } = {},
  ): Promise<{ exists: boolean; size?: number }> {
    try {
      return { exists: true, ...(await this.statBlob(repo, digest, call)) };
    } catch (e) {
      if (isKimgError(e, 'NOT_FOUND')) return { exists: false };
      if (isKimgError(e, 'REGISTRY_PROTOCOL_ERROR')) return { exists: true };
      throw e;
    }
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
      const ex = await this.blobExists(repo, desc.digest, { ...opts, forPush: true });
      if (ex.exists) return { status: 'exists' };
    }
    let location: URL | undefined;
    let endpoint: RegistryEndpoint | undefined;
    for (const from of opts.mountFrom ?? []) {
      if (from === repo.path) continue;
      const r = await this.startUpload(repo, opts, { mount: desc.digest, from });
      if (r.mounted) return { status: 'mounted', from };
      location = r.location;
      endpoint = r.endpoint;
      break;
    }
    if (!location || !endpoint) ({ location, endpoint } = await this.startUpload(repo, opts));
    const put = new URL(location.href);
    put.searchParams.set('digest', desc.digest);
    const scopes = [repositoryScope(repo.path, ['pull', 'push'])];
    const ctx = {
      registry: repo.domain,
      repository: repo.path,
      kind: 'upload' as const,
      target: desc.digest,
      action: 'push' as const,
    };
    const base = {
      registry: repo.domain,
      repository: repo.path,
      capability: 'push' as const,
      endpoint,
      scopes,
      ctx,
      followRedirects: false,
      call: opts,
    };
    /** The closing PUT of a chunked or streamed upload: `?digest=` on the last Location, no body. */
    const closeUpload = async (loc: URL): Promise<HttpResponse> => {
      const fin = new URL(loc.href);
      fin.searchParams.set('digest', desc.digest);
      const { res } = await this.execute({
        ...base,
        method: 'PUT',
        url: fin,
        headers: { 'content-length': '0' },
        accept: (s) => s === 201 || s === 204,
      });
      return res;
    };
    let finalRes: HttpResponse;
    if (data && opts.chunkSize && opts.chunkSize > 0 && data.length > opts.chunkSize) {
      let loc = location;
      for (let start = 0; start < data.length; start += opts.chunkSize) {
        const chunk = data.subarray(start, Math.min(data.length, start + opts.chunkSize));
        const { res } = await this.execute({
          ...base,
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
        loc = this.location(res, loc);
        discard(res.body);
      }
      finalRes = await closeUpload(loc);
    } else if (data) {
      ({ res: finalRes } = await this.execute({
        ...base,
        method: 'PUT',
        url: put,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
        body: data,
        accept: (s) => s === 201 || s === 204,
      }));
    } else {
      // a stream: one streamed PATCH, verified on the way, then the closing PUT
      const factory = content as () => Readable;
      const { res } = await this.execute({
        ...base,
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
      const loc = this.location(res, location);
      discard(res.body);
      finalRes = await closeUpload(loc);
    }
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

  private location(res: HttpResponse, base: URL): URL {
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

  private async startUpload(
    repo: RepositoryRef,
    call: CallOptions,
    mount?: { mount: string; from: string },
  ): Promise<{ mounted: boolean; location: URL; endpoint: RegistryEndpoint }> {
    const scopes = [repositoryScope(repo.path, ['pull', 'push'])];
    if (mount) scopes.push(repositoryScope(mount.from, ['pull']));
    const { res, endpoint } = await this.execute({
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
    const location = this.location(res, res.url);
    discard(res.body);
    return { mounted: res.status === 201, location, endpoint };
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
    const reference = this.referenceOf(ref);
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
    const { res } = await this.execute({
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
        `registry ${ref.domain} stored the manifest pushed to ${this.display(ref)} as ${got}, not ${digest}`,
        { expected: digest, actual: got, host: res.url.host },
      );
    }
    return digest;
  }

  /**
   * Lists a repository's tags, following pagination (`n`, `last`, `Link: <…>; rel="next"`).
   * @throws `NOT_FOUND` (repository unknown), auth and registry errors.
   */
  async listTags(
    repo: RepositoryRef,
    opts: CallOptions & { pageSize?: number; limit?: number } = {},
  ): Promise<string[]> {
    return this.paginate(
      repo.domain,
      repo.path,
      `/${repo.path}/tags/list`,
      'tags',
      [repositoryScope(repo.path, ['pull'])],
      opts,
    );
  }

  /**
   * Lists the registry's repositories (`GET /v2/_catalog`), following pagination.
   * @throws auth and registry errors (many registries deny the catalog).
   */
  async listRepositories(
    registry: string,
    opts: CallOptions & { pageSize?: number; limit?: number } = {},
  ): Promise<string[]> {
    return this.paginate(registry, undefined, '/_catalog', 'repositories', ['registry:catalog:*'], opts);
  }

  private async paginate(
    registry: string,
    repository: string | undefined,
    path: string,
    field: 'tags' | 'repositories',
    scopes: string[],
    opts: CallOptions & { pageSize?: number; limit?: number },
  ): Promise<string[]> {
    const out: string[] = [];
    const limit = opts.limit ?? Number.MAX_SAFE_INTEGER;
    let next: { url: URL; endpoint: RegistryEndpoint } | undefined;
    for (let page = 0; page < 100_000; page++) {
      const op: Op = {
        registry,
        repository,
        capability: 'pull',
        method: 'GET',
        scopes,
        ctx: { registry, repository, kind: field === 'tags' ? 'tags' : 'catalog', action: 'pull' },
        followRedirects: true,
        call: opts,
        accept: (s) => s === 200,
        headers: { accept: 'application/json' },
      };
      if (next) {
        op.url = next.url;
        op.endpoint = next.endpoint;
      } else {
        op.path = path;
        if (opts.pageSize) op.query = [['n', String(opts.pageSize)]];
      }
      const { res, endpoint } = await this.execute(op);
      const { bytes, truncated } = await readCapped(res.body, 16 * 1024 * 1024);
      if (truncated)
        throw new KimgError(
          'REGISTRY_PROTOCOL_ERROR',
          `registry ${registry} sent a ${field} page larger than 16 MiB`,
          { host: res.url.host },
        );
      let list: unknown;
      try {
        list = (JSON.parse(bytes.toString('utf8')) as Record<string, unknown>)[field];
      } catch (e) {
        throw new KimgError(
          'REGISTRY_PROTOCOL_ERROR',
          `registry ${registry} sent an unreadable ${field} list: ${(e as Error).message}`,
          { host: res.url.host, cause: e },
        );
      }
      if (
        list !== null &&
        list !== undefined &&
        !(Array.isArray(list) && list.every((t) => typeof t === 'string'))
      ) {
        throw new KimgError(
          'REGISTRY_PROTOCOL_ERROR',
          `registry ${registry} sent a ${field} list that is not an array of strings`,
          { host: res.url.host },
        );
      }
      for (const t of (list as string[] | null) ?? []) {
        out.push(t);
        if (out.length >= limit) return out;
      }
      const link = nextLink(header(res.headers, 'link'));
      if (!link) return out;
      next = { url: new URL(link, res.url), endpoint };
    }
    throw new KimgError('REGISTRY_PROTOCOL_ERROR', `registry ${registry} kept paginating the ${field} list`, {
      host: registry,
    });
  }
}

/** The `rel="next"` target of a `Link` header, if any. */
export function nextLink(v: string | undefined): string | undefined {
  if (!v) return undefined;
  for (const part of v.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*(.*)$/.exec(part);
    if (!m) continue;
    if (/(?:^|;)\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?\s*(?:;|$)/i.test(m[2] ?? '')) return m[1];
  }
  return undefined;
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
