/**
 * The request core of the registry client: every call becomes an {@link Op} that runs here.
 *
 * - Endpoints: the registry's endpoints from `hosts.toml` (cached briefly), filtered by the op's
 *   capability; a failing mirror falls through to the next endpoint, and only the last one (the
 *   server) is retried, as containerd does.
 * - Auth: the `/v2/` ping that learns an endpoint's challenges, then `Authorizer` headers per request;
 *   a 401 re-learns the challenge, widens the scopes or drops a cached token and tries again.
 * - Retries: transient failures and retryable statuses per the `RetryPolicy`, honouring `Retry-After`,
 *   with per-host back-off.
 * - Redirects: followed for GET/HEAD; `Authorization` and configured headers never cross origins.
 */
import type { Readable } from 'node:stream';
import type { AuthConfig } from '../../credentials/index.js';
import { KimgError, isKimgError } from '../../errors/index.js';
import { Authorizer, normalizeScopes, scopesCover, type AuthDecision } from '../auth.js';
import { debugFromEnv, retryChannel } from '../diagnostics.js';
import { resolveRegistryEndpoints, type HostCapability, type RegistryEndpoint } from '../hosts.js';
import { HostBackoff, RetryPolicy, SYSTEM_CLOCK, parseRetryAfter, type Clock } from '../retry.js';
import { DEFAULT_REGISTRY_CLIENT_OPTIONS, type CallOptions, type RegistryClientOptions } from '../types.js';
import { challengeScopes } from '../www-authenticate.js';
import { discard } from './body.js';
import { errorFromResponse, type ErrorContext } from './http-errors.js';
import { redactUrl } from './redact.js';
import { header, Transport, type HttpRequest, type HttpResponse } from './transport.js';

/** One registry operation: what to send, to which capability, and which answers count as success. */
export interface Op {
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

/** The accepted response, the endpoint that gave it, and the auth decision it was sent with. */
export interface OpResult {
  res: HttpResponse;
  endpoint: RegistryEndpoint;
  decision: AuthDecision | undefined;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** The host a credential's `serverAddress` names (`https://` assumed), lower-cased. */
function hostOf(serverAddress: string): string {
  const s = /^[a-z][a-z0-9+.-]*:\/\//i.test(serverAddress) ? serverAddress : `https://${serverAddress}`;
  try {
    return new URL(s).host.toLowerCase();
  } catch {
    return serverAddress.toLowerCase();
  }
}

/** Names of Docker Hub: a credential for one of them serves the others. */
const DOCKER_HUB = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'registry.hub.docker.com',
]);

/** The scopes an op asks for (widened by challenges) and how many 401s it has answered. */
interface AuthRound {
  scopes: string[];
  retries: number;
}

/** Endpoints, auth, retries and redirects for one `RegistryClient`; owns its connections and tokens. */
export class RequestCore {
  private readonly transport: Transport;
  private readonly authorizer: Authorizer;
  readonly policy: RetryPolicy;
  readonly clock: Clock;
  private readonly backoff: HostBackoff;
  /** The client's stall window (a call may set its own). */
  readonly stallMs: number;
  /** Whole-body deadline of manifests and token responses. */
  readonly metadataDeadlineMs: number;
  /** Minimum blob throughput (bytes/s over each stall window); 0 = none. */
  readonly minBlobBytesPerSecond: number;
  readonly debug: ((line: string) => void) | undefined;
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
    this.metadataDeadlineMs =
      options.metadataDeadlineMs ?? DEFAULT_REGISTRY_CLIENT_OPTIONS.metadataDeadlineMs;
    if (!(this.metadataDeadlineMs > 0))
      throw new KimgError(
        'INVALID_ARGUMENT',
        `metadataDeadlineMs must be > 0, got ${String(options.metadataDeadlineMs)}`,
      );
    this.minBlobBytesPerSecond =
      options.minBlobBytesPerSecond ?? DEFAULT_REGISTRY_CLIENT_OPTIONS.minBlobBytesPerSecond;
    if (!(this.minBlobBytesPerSecond >= 0))
      throw new KimgError(
        'INVALID_ARGUMENT',
        `minBlobBytesPerSecond must be >= 0, got ${String(options.minBlobBytesPerSecond)}`,
      );
    this.debug = options.debug ?? debugFromEnv();
    this.backoff = new HostBackoff(this.clock);
    this.transport = new Transport({
      connectionsPerOrigin: options.connectionsPerHost ?? DEFAULT_REGISTRY_CLIENT_OPTIONS.connectionsPerHost,
      userAgent: options.userAgent ?? DEFAULT_REGISTRY_CLIENT_OPTIONS.userAgent,
      debug: this.debug,
    });
    this.authorizer = new Authorizer(
      (req) => this.sendTokenRequest(req),
      this.clock,
      this.metadataDeadlineMs,
    );
  }

  /** Closes all connections. Calls after `close()` fail with `ABORTED`. */
  async close(): Promise<void> {
    await this.transport.close();
  }

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

  /**
   * The credentials for `ep`: the call's own (`null` = anonymous; skipped when their `serverAddress`
   * names another host), else the `credentials` option for the registry, or for a mirror its host.
   */
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
  async execute(op: Op): Promise<OpResult> {
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

  /** Runs `op` on one endpoint: auth, retries of transient failures and statuses, 401 handling. */
  private async onEndpoint(ep: RegistryEndpoint, op: Op, retries: boolean): Promise<OpResult> {
    const base = this.baseUrl(ep);
    const signal = op.call.signal;
    const creds = op.noAuth ? undefined : await this.credentialsFor(ep, op.registry, op.call);
    if (!op.noAuth && !this.authorizer.known(base)) await this.ping(ep, op, retries);
    const url = this.buildUrl(ep, op);
    const replayable =
      retries && (op.body === undefined || Buffer.isBuffer(op.body) || typeof op.body === 'function');
    const auth: AuthRound = { scopes: op.scopes, retries: 0 };
    for (let attempt = 1; ; attempt++) {
      const wait = this.backoff.waitFor(ep.host);
      if (wait > 0) await this.clock.sleep(wait, signal).catch((e: unknown) => this.rethrowAbort(e, op, url));
      const decision = op.noAuth
        ? undefined
        : await this.authorizer.authorize(base, op.registry, auth.scopes, creds, signal);
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
      if (res.status === 401 && decision && auth.retries < 2 && res.url.origin === url.origin) {
        if (await this.onUnauthorized(base, op, res, decision, auth, attempt)) {
          auth.retries++;
          attempt--;
          discard(res.body);
          continue;
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

  /** `GET /v2/` without auth, so the authorizer learns the endpoint's challenges (once per base URL). */
  private async ping(ep: RegistryEndpoint, op: Op, retries: boolean): Promise<void> {
    await this.authorizer.ping(
      this.baseUrl(ep),
      async () => {
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
            call: { signal: op.call.signal, stallTimeoutMs: op.call.stallTimeoutMs },
            accept: (s) => s < 500 && s !== 429 && s !== 408,
            noAuth: true,
          },
          retries,
        );
        return r.res;
      },
      op.call.signal,
    );
  }

  /**
   * A 401 from the endpoint: learns its challenge, and answers whether a new attempt can succeed (a
   * wider scope, a stale cached token, a newly announced scheme). A bearer `insufficient_scope` that
   * no retry fixes becomes `DENIED` (credentials were sent) or `UNAUTHORIZED` (none were). Otherwise
   * false: the 401 is reported like any other status.
   */
  private async onUnauthorized(
    base: string,
    op: Op,
    res: HttpResponse,
    decision: AuthDecision,
    auth: AuthRound,
    attempt: number,
  ): Promise<boolean> {
    const changed = this.authorizer.learn(base, res.headers['www-authenticate']);
    const bearer = this.authorizer.challengesFor(base).find((c) => c.scheme === 'bearer');
    let retry = false;
    if (bearer) {
      const extra = challengeScopes(bearer);
      if (extra.length > 0 && !scopesCover(auth.scopes, extra)) {
        auth.scopes = normalizeScopes([...auth.scopes, ...extra]);
        retry = true;
      }
    }
    if (decision.fromCache) {
      this.authorizer.invalidate(decision.tokenKey);
      retry = true;
    }
    if (changed && decision.scheme === 'none' && this.authorizer.challengesFor(base).length > 0) retry = true;
    if (retry) return true;
    if (bearer?.params.error !== 'insufficient_scope') return false;
    const e = await errorFromResponse(res, {
      ...op.ctx,
      hadCredentials: decision.withCredentials,
      attempts: attempt,
    });
    const access = `${op.ctx.action ?? 'access'}${op.ctx.action ? ' access' : ''}`;
    const repository = JSON.stringify(op.repository ?? '');
    if (decision.withCredentials) {
      throw new KimgError(
        'DENIED',
        `registry ${op.registry} denied ${access} to repository ${repository}: the credentials for host ${op.registry} were accepted but do not grant ${auth.scopes.join(' ')}; check that the pull secret has access to this repository`,
        { ...e.details, cause: e },
      );
    }
    throw new KimgError(
      'UNAUTHORIZED',
      `registry ${op.registry} requires credentials for ${access} to repository ${repository} and none were found for host ${op.registry}: provide them (a pull secret, --creds or --docker-config)`,
      { ...e.details, cause: e },
    );
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
}
