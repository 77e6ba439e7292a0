/**
 * Registry authorization: Basic and Bearer-token auth of the distribution protocol.
 *
 * Flow (distribution `docs/content/spec/auth/token.md`; containerd `core/remotes/docker/authorizer.go`,
 * `auth/fetch.go`; go-containerregistry `pkg/v1/remote/transport/bearer.go`):
 *
 * 1. Ping `GET /v2/` once per endpoint. 200 means no auth; 401 carries `WWW-Authenticate` challenges.
 * 2. `Basic` challenge: send `Authorization: Basic base64(user:password)` when credentials exist.
 * 3. `Bearer realm=…,service=…[,scope=…]` challenge: obtain a token for the scopes the operation
 *    needs (`repository:<path>:pull[,push]`, plus `repository:<from>:pull` for cross-repository
 *    mounts, plus any scope the registry named):
 *    - with a password or identity token: OAuth2 `POST` to the realm
 *      (`grant_type=password` / `refresh_token`, `service`, space-joined `scope`, `client_id`);
 *      on 400/401/404 (or 405 with a username) fall back to `GET` like containerd;
 *    - otherwise, or as the fallback: `GET realm?service=…&scope=…` with Basic credentials if any,
 *      anonymous otherwise.
 *    The response's `token` (GET) or `access_token` (POST) is used, the other as a fallback;
 *    `expires_in` defaults to 60 s as the token spec says (containerd treats a missing value as
 *    "never expires"; kimg follows the spec) and tokens are refreshed shortly before they expire.
 *    A registry token (docker config `registrytoken`) is sent as the bearer token directly.
 * 4. Tokens are cached per realm + service + sorted scope set + credential identity (so trying
 *    several credentials in turn, kubelet-style, never mixes their tokens), and concurrent requests
 *    for the same token share one fetch.
 *
 * Secrets are read from `Secret` only where they go on the wire; nothing here logs or throws them.
 */
import { createHash } from 'node:crypto';
import type { AuthConfig } from '../credentials/index.js';
import { KimgError, isKimgError } from '../errors/index.js';
import { discard, readCapped, readErrorBody } from './internal/body.js';
import { errorFromStatus, parseRegistryErrors } from './internal/http-errors.js';
import { redactUrl } from './internal/redact.js';
import type { HttpRequest, HttpResponse } from './internal/transport.js';
import type { Clock } from './retry.js';
import { challengeScopes, parseWwwAuthenticate, type AuthChallenge } from './www-authenticate.js';

/** `repository:<path>:<actions>` (distribution token scope). */
export function repositoryScope(
  path: string,
  actions: readonly ('pull' | 'push' | 'delete' | '*')[],
): string {
  return `repository:${path}:${actions.join(',')}`;
}

/**
 * Merges scopes on the same resource (`repository:a:pull` + `repository:a:push` →
 * `repository:a:pull,push`), de-duplicates and sorts them, as containerd does for its token cache key.
 * Strings that are not `type:name:actions` are kept as they are.
 */
export function normalizeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  const opaque = new Set<string>();
  for (const s of scopes) {
    const first = s.indexOf(':');
    const last = s.lastIndexOf(':');
    if (first <= 0 || last === first) {
      if (s.length > 0) opaque.add(s);
      continue;
    }
    const resource = s.slice(0, last);
    const actions = s
      .slice(last + 1)
      .split(',')
      .filter((a) => a.length > 0);
    let set = byResource.get(resource);
    if (!set) byResource.set(resource, (set = new Set()));
    for (const a of actions) set.add(a);
  }
  const out = [...opaque];
  for (const [resource, actions] of byResource) out.push(`${resource}:${[...actions].sort().join(',')}`);
  return out.sort();
}

/** True when every scope in `need` is covered by `have` (same resource, all actions). */
export function scopesCover(have: readonly string[], need: readonly string[]): boolean {
  const merged = new Set(normalizeScopes([...have, ...need]));
  const base = new Set(normalizeScopes(have));
  if (merged.size !== base.size) return false;
  for (const m of merged) if (!base.has(m)) return false;
  return true;
}

/** What the authorizer decided to send with a request. */
export interface AuthDecision {
  /** The `Authorization` header value, if any. */
  header?: string;
  scheme: 'none' | 'basic' | 'bearer';
  /** The token came from the cache (a 401 may mean it went stale). */
  fromCache: boolean;
  /** Cache key of the token, to invalidate it. */
  tokenKey?: string;
  /** Whether credentials were used for this decision. */
  withCredentials: boolean;
}

interface TokenEntry {
  token: string;
  expiresAt: number;
}

/** How the authorizer sends HTTP (the client's retrying sender). */
export type AuthSend = (req: Omit<HttpRequest, 'stallMs'> & { stallMs?: number }) => Promise<HttpResponse>;

/** Token lifetime when the server gives none (distribution token spec: 60 s). */
export const DEFAULT_TOKEN_LIFETIME_S = 60;
/** Largest token response read. */
const TOKEN_BODY_CAP = 1024 * 1024;

function usableCredentials(c: AuthConfig | undefined): c is AuthConfig {
  if (!c) return false;
  return Boolean(
    (c.username && c.password && !c.password.isEmpty) ||
    (c.identityToken && !c.identityToken.isEmpty) ||
    (c.registryToken && !c.registryToken.isEmpty),
  );
}

const fingerprints = new WeakMap<AuthConfig, string>();

/** A stable in-memory identity for credentials (a hash; never printed). */
function credentialKey(c: AuthConfig | undefined): string {
  if (!usableCredentials(c)) return 'anonymous';
  let fp = fingerprints.get(c);
  if (!fp) {
    const h = createHash('sha256');
    h.update(c.username ?? '').update('\0');
    h.update(c.password?.reveal() ?? '').update('\0');
    h.update(c.identityToken?.reveal() ?? '').update('\0');
    h.update(c.registryToken?.reveal() ?? '');
    fp = h.digest('hex').slice(0, 32);
    fingerprints.set(c, fp);
  }
  return fp;
}

/**
 * The work in flight for `key` in `flights`, joined, or started with `start` (which carries this
 * caller's signal) and forgotten once settled. The flight runs under the signal of the caller that
 * started it: when that caller is cancelled, a joiner whose own call goes on starts the work again
 * rather than failing with a cancel that was not its own.
 */
async function singleFlight<T>(
  flights: Map<string, Promise<T>>,
  key: string,
  start: () => Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  for (;;) {
    let p = flights.get(key);
    const joined = p !== undefined;
    if (p === undefined) {
      const started = start();
      const forget = (): void => {
        if (flights.get(key) === started) flights.delete(key);
      };
      started.then(forget, forget);
      flights.set(key, started);
      p = started;
    }
    try {
      return await p;
    } catch (e) {
      if (joined && isKimgError(e) && e.code === 'ABORTED' && signal?.aborted !== true) continue;
      throw e;
    }
  }
}

/**
 * Per-client authorization state: known challenges per endpoint and the token cache.
 * Not exported from the module: the client owns one.
 */
export class Authorizer {
  /** Challenges per endpoint base (`https://host/v2`); empty array = no auth needed. */
  private readonly challenges = new Map<string, AuthChallenge[]>();
  private readonly pings = new Map<string, Promise<void>>();
  private readonly tokens = new Map<string, TokenEntry>();
  private readonly inflight = new Map<string, Promise<TokenEntry>>();

  constructor(
    private readonly send: AuthSend,
    private readonly clock: Clock,
    /** Whole-body deadline of a token response (the client's `metadataDeadlineMs`). */
    private readonly bodyDeadlineMs = 120_000,
  ) {}

  /** Whether the endpoint has been pinged (or its challenges learned otherwise). */
  known(base: string): boolean {
    return this.challenges.has(base);
  }

  /** Records the challenges of a 401 for `base`; returns true when they differ from what was known. */
  learn(base: string, wwwAuthenticate: string | string[] | undefined): boolean {
    const chs = parseWwwAuthenticate(wwwAuthenticate);
    const before = JSON.stringify(this.challenges.get(base) ?? null);
    // keep only the schemes kimg can answer; an unknown-only list means "cannot authorize"
    this.challenges.set(base, chs);
    return JSON.stringify(chs) !== before;
  }

  /** The challenges known for `base`. */
  challengesFor(base: string): AuthChallenge[] {
    return this.challenges.get(base) ?? [];
  }

  /**
   * Pings `<base>/` once (single-flight) to learn whether and how the endpoint authenticates. `signal`
   * is this caller's (the one `ping` itself carries when this call starts the flight).
   * @throws the transport's coded errors when the endpoint cannot be reached.
   */
  async ping(base: string, ping: () => Promise<HttpResponse>, signal?: AbortSignal): Promise<void> {
    if (this.challenges.has(base)) return;
    await singleFlight(
      this.pings,
      base,
      async () => {
        const res = await ping();
        if (res.status === 401) {
          this.learn(base, res.headers['www-authenticate']);
        } else {
          this.challenges.set(base, []);
        }
        discard(res.body);
      },
      signal,
    );
  }

  /** Forgets a cached token (after a 401 that may mean it expired or was revoked). */
  invalidate(tokenKey: string | undefined): void {
    if (tokenKey) this.tokens.delete(tokenKey);
  }

  /**
   * Decides the `Authorization` for a request to `base` needing `scopes`, fetching a token when the
   * endpoint uses Bearer auth.
   * @throws KimgError `TOKEN_REFUSED` (token server refused the credentials), `UNAUTHORIZED`
   *   (anonymous token refused), `REGISTRY_UNAVAILABLE` / `TLS_ERROR` (token server unreachable),
   *   `REGISTRY_PROTOCOL_ERROR` (bad challenge or token response).
   */
  async authorize(
    base: string,
    registry: string,
    scopes: readonly string[],
    creds: AuthConfig | undefined,
    signal?: AbortSignal,
  ): Promise<AuthDecision> {
    const chs = this.challenges.get(base) ?? [];
    const bearer = chs.find((c) => c.scheme === 'bearer');
    const basic = chs.find((c) => c.scheme === 'basic');
    const hasCreds = usableCredentials(creds);
    if (bearer) {
      if (creds?.registryToken && !creds.registryToken.isEmpty) {
        return {
          header: `Bearer ${creds.registryToken.reveal()}`,
          scheme: 'bearer',
          fromCache: false,
          withCredentials: true,
        };
      }
      const realm = bearer.params.realm;
      if (!realm) {
        throw new KimgError(
          'REGISTRY_PROTOCOL_ERROR',
          `registry ${registry} asked for token auth without a realm (no realm specified for token auth challenge): the registry is misconfigured`,
          { host: registry },
        );
      }
      const service = bearer.params.service ?? '';
      const all = normalizeScopes([...scopes, ...challengeScopes(bearer)]);
      const key = JSON.stringify([realm, service, all, credentialKey(creds)]);
      const cached = this.tokens.get(key);
      if (cached && this.fresh(cached)) {
        return {
          header: `Bearer ${cached.token}`,
          scheme: 'bearer',
          fromCache: true,
          tokenKey: key,
          withCredentials: hasCreds,
        };
      }
      const t = await singleFlight(
        this.inflight,
        key,
        async () => {
          const fetched = await this.fetchToken(
            registry,
            realm,
            service,
            all,
            hasCreds ? creds : undefined,
            signal,
          );
          this.tokens.set(key, fetched);
          return fetched;
        },
        signal,
      );
      return {
        header: `Bearer ${t.token}`,
        scheme: 'bearer',
        fromCache: false,
        tokenKey: key,
        withCredentials: hasCreds,
      };
    }
    if (basic && creds?.username && creds.password && !creds.password.isEmpty) {
      const raw = Buffer.from(`${creds.username}:${creds.password.reveal()}`, 'utf8').toString('base64');
      return { header: `Basic ${raw}`, scheme: 'basic', fromCache: false, withCredentials: true };
    }
    return { scheme: 'none', fromCache: false, withCredentials: false };
  }

  private fresh(t: TokenEntry): boolean {
    return this.clock.now() < t.expiresAt;
  }

  private async fetchToken(
    registry: string,
    realm: string,
    service: string,
    scopes: string[],
    creds: AuthConfig | undefined,
    signal?: AbortSignal,
  ): Promise<TokenEntry> {
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new KimgError(
        'REGISTRY_PROTOCOL_ERROR',
        `registry ${registry} named an invalid token realm ${JSON.stringify(redactUrl(realm))}: the registry is misconfigured`,
        { host: registry },
      );
    }
    if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:') {
      throw new KimgError(
        'REGISTRY_PROTOCOL_ERROR',
        `registry ${registry} named a token realm with scheme ${realmUrl.protocol}: only http and https are supported`,
        { host: registry },
      );
    }
    const secret =
      creds?.identityToken && !creds.identityToken.isEmpty ? creds.identityToken : creds?.password;
    if (creds && secret && !secret.isEmpty) {
      const form = new URLSearchParams();
      if (
        creds.username &&
        creds.password &&
        !creds.password.isEmpty &&
        !(creds.identityToken && !creds.identityToken.isEmpty)
      ) {
        form.set('grant_type', 'password');
        form.set('username', creds.username);
        form.set('password', creds.password.reveal());
      } else {
        form.set('grant_type', 'refresh_token');
        form.set('refresh_token', secret.reveal());
      }
      if (service) form.set('service', service);
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      form.set('client_id', 'kimg');
      const res = await this.send({
        method: 'POST',
        url: realmUrl,
        headers: {
          'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
          accept: 'application/json',
        },
        body: Buffer.from(form.toString(), 'utf8'),
        signal,
      });
      const canFallBack =
        res.status === 400 ||
        res.status === 401 ||
        res.status === 404 ||
        (res.status === 405 && Boolean(creds.username));
      if (res.status >= 200 && res.status < 300)
        return this.parseTokenResponse(res, registry, realmUrl, true);
      if (!canFallBack || !creds.username || !creds.password || creds.password.isEmpty) {
        throw await this.tokenError(res, registry, realmUrl, true);
      }
      discard(res.body);
    }
    const url = new URL(realmUrl.href);
    if (service) url.searchParams.set('service', service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { accept: 'application/json' };
    const withCreds = Boolean(creds?.username && creds.password && !creds.password.isEmpty);
    if (withCreds && creds?.password) {
      headers.authorization = `Basic ${Buffer.from(`${creds.username ?? ''}:${creds.password.reveal()}`, 'utf8').toString('base64')}`;
    }
    const res = await this.send({ method: 'GET', url, headers, signal });
    if (res.status >= 200 && res.status < 300) return this.parseTokenResponse(res, registry, url, false);
    throw await this.tokenError(res, registry, url, withCreds);
  }

  private async tokenError(
    res: HttpResponse,
    registry: string,
    url: URL,
    withCreds: boolean,
  ): Promise<KimgError> {
    const body = await readErrorBody(res.body);
    const regErrors = parseRegistryErrors(body);
    const realm = redactUrl(new URL(url.origin + url.pathname));
    const details = {
      method: res.method,
      url: redactUrl(url),
      host: url.host,
      status: res.status,
      registryErrors: regErrors,
      retryable: false,
    };
    if (res.status === 401 || res.status === 403) {
      if (withCreds) {
        return new KimgError(
          'TOKEN_REFUSED',
          `the token server ${realm} of registry ${registry} refused the credentials (${res.status}): check the pull secret (or --creds / docker config) for host ${registry}`,
          details,
        );
      }
      return new KimgError(
        'UNAUTHORIZED',
        `registry ${registry} requires authentication: its token server ${realm} refused anonymous access (${res.status}); provide credentials for host ${registry} (a pull secret, --creds or --docker-config)`,
        details,
      );
    }
    if (res.status >= 500 || res.status === 429) {
      return errorFromStatus(
        res.status,
        res.headers,
        regErrors,
        { method: res.method, url },
        { registry, kind: 'token', hadCredentials: withCreds },
      );
    }
    return new KimgError(
      'TOKEN_REFUSED',
      `the token server ${realm} of registry ${registry} answered ${res.status}${regErrors.length > 0 ? ` (${regErrors.map((r) => r.code).join(', ')})` : ''}: ${withCreds ? `check the credentials for host ${registry}` : 'it refused the anonymous token request'}`,
      details,
    );
  }

  private async parseTokenResponse(
    res: HttpResponse,
    registry: string,
    url: URL,
    oauth: boolean,
  ): Promise<TokenEntry> {
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      const { bytes, truncated } = await readCapped(res.body, TOKEN_BODY_CAP, {
        ms: this.bodyDeadlineMs,
        error: () =>
          new KimgError(
            'STALLED',
            `the token server of registry ${registry} did not send its response within ${this.bodyDeadlineMs / 1000}s: it is too slow or stalled; retry later`,
            { host: url.host, retryable: true },
          ),
      });
      if (truncated) throw new Error('token response larger than 1 MiB');
      parsed = JSON.parse(bytes.toString('utf8')) as typeof parsed;
      if (typeof parsed !== 'object' || parsed === null) throw new Error('not a JSON object');
    } catch (e) {
      if (isKimgError(e)) throw e;
      throw new KimgError(
        'REGISTRY_PROTOCOL_ERROR',
        `the token server ${redactUrl(new URL(url.origin + url.pathname))} of registry ${registry} sent an unreadable token response: ${(e as Error).message}`,
        {
          host: url.host,
          cause: e,
        },
      );
    }
    const first = oauth ? parsed.access_token : parsed.token;
    const second = oauth ? parsed.token : parsed.access_token;
    const token =
      typeof first === 'string' && first.length > 0
        ? first
        : typeof second === 'string' && second.length > 0
          ? second
          : undefined;
    if (!token) {
      throw new KimgError(
        'REGISTRY_PROTOCOL_ERROR',
        `the token server ${redactUrl(new URL(url.origin + url.pathname))} of registry ${registry} did not include a token in the response`,
        { host: url.host },
      );
    }
    const lifetimeS =
      typeof parsed.expires_in === 'number' && parsed.expires_in > 0
        ? parsed.expires_in
        : DEFAULT_TOKEN_LIFETIME_S;
    const lifetimeMs = lifetimeS * 1000;
    // refresh a little before expiry: 10 % of the lifetime, at most 10 s
    const margin = Math.min(10_000, lifetimeMs * 0.1);
    return { token, expiresAt: this.clock.now() + lifetimeMs - margin };
  }
}
