/**
 * Service-account tokens for credential provider plugins with `tokenAttributes` (KEP-4412) in cluster
 * mode, from the API server's TokenRequest API as the kubelet gets them: one token per ServiceAccount,
 * audience and pod, bound to the pod (`boundObjectRef` kind Pod, so it dies with the pod), asked for
 * with the API's default lifetime of one hour (the API server may grant less).
 *
 * Tokens are cached like the kubelet's token manager caches them: reused until 80% of their granted
 * lifetime has passed, or 24 hours, whichever comes first; then a new one is requested. Concurrent
 * lookups for the same key share one request. A token is a secret: it is never logged and never in an
 * error (errors name the ServiceAccount and audience only).
 */
import type { Clock } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import type { ServiceAccountInfo, ServiceAccountTokenRequest, TokenSource } from '../credentials/index.js';
import type { KubeClient, KubeJson, ServiceAccountToken, ServiceAccountTokenOptions } from './client.js';

/** The lifetime asked for: the TokenRequest API's default (one hour). */
export const TOKEN_REQUEST_EXPIRATION_SECONDS = 3600;

/** A token is renewed once this share of its lifetime has passed. */
const REFRESH_SHARE = 0.8;
/** …or once it is this old, whichever comes first. */
const MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** The one call the source makes (a {@link KubeClient}). */
export type TokenRequester = Pick<KubeClient, 'createServiceAccountToken'>;

/** Options of {@link TokenRequestSource}. */
export interface TokenRequestSourceOptions {
  client: TokenRequester;
  /** Default the system clock. */
  clock?: Clock;
}

interface Cached {
  token: string;
  /** Epoch ms after which a new token is requested. */
  refreshAt: number;
}

/** Tokens from the TokenRequest API, cached per ServiceAccount, audience and pod (module comment). */
export class TokenRequestSource implements TokenSource {
  private readonly client: TokenRequester;
  private readonly clock: Clock;
  private readonly cache = new Map<string, Cached>();
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(options: TokenRequestSourceOptions) {
    this.client = options.client;
    this.clock = options.clock ?? systemClock;
  }

  /** @throws KimgError `KUBE_FORBIDDEN` (RBAC: `create` on `serviceaccounts/token`), `KUBE_NOT_FOUND`, … */
  token(request: ServiceAccountTokenRequest): Promise<string> {
    const key = JSON.stringify([request.namespace, request.name, request.audience, request.podUid]);
    const now = this.clock.now();
    this.prune(now);
    const hit = this.cache.get(key);
    if (hit !== undefined && now < hit.refreshAt) return Promise.resolve(hit.token);
    let flight = this.inflight.get(key);
    if (flight === undefined) {
      flight = this.request(key, request).finally(() => this.inflight.delete(key));
      this.inflight.set(key, flight);
    }
    return flight;
  }

  /** Cached tokens (tests; never their values). */
  get size(): number {
    return this.cache.size;
  }

  private async request(key: string, r: ServiceAccountTokenRequest): Promise<string> {
    const asked = this.clock.now();
    const options: ServiceAccountTokenOptions = {
      audiences: [r.audience],
      expirationSeconds: TOKEN_REQUEST_EXPIRATION_SECONDS,
      ...(r.podUid !== '' && r.podName !== '' ? { boundPod: { name: r.podName, uid: r.podUid } } : {}),
    };
    const answer = await this.client.createServiceAccountToken(r.namespace, r.name, options);
    this.cache.set(key, { token: answer.token, refreshAt: refreshAt(answer, asked) });
    return answer.token;
  }

  /** Drops expired tokens: a pod's tokens go once they are stale, so the cache follows the pods. */
  private prune(now: number): void {
    for (const [k, v] of this.cache) if (now >= v.refreshAt) this.cache.delete(k);
  }
}

/**
 * When a token granted at `asked` is renewed: its issue time is its expiry less the granted lifetime
 * (the request time when the API server does not echo the lifetime).
 */
export function refreshAt(answer: ServiceAccountToken, asked: number): number {
  const issued =
    answer.expirationSeconds !== undefined ? answer.expiresAt - answer.expirationSeconds * 1000 : asked;
  const lifetime = Math.max(0, answer.expiresAt - issued);
  return issued + Math.min(lifetime * REFRESH_SHARE, MAX_AGE_MS);
}

/** What token-mode providers read of a ServiceAccount: its uid and annotations. */
export function serviceAccountInfo(sa: KubeJson): ServiceAccountInfo {
  const annotations = sa.metadata?.annotations;
  return {
    uid: sa.metadata?.uid ?? '',
    annotations:
      typeof annotations === 'object' && annotations !== null ? (annotations as Record<string, string>) : {},
  };
}

/** Options of {@link tokenRequestCredentials}. */
export interface TokenRequestCredentialsOptions {
  /** ServiceAccounts already read (a pod's, read for its pull Secrets): not read again. */
  known?: readonly (KubeJson | undefined)[];
  /** Default the system clock. */
  clock?: Clock;
}

/**
 * The two things credential provider plugins with `tokenAttributes` need, from the API server, for a
 * one-shot caller (`kimg explain pod/NAME --token-request`): tokens from the TokenRequest API (bound
 * to the pod, for the provider's audience, cached per call as {@link TokenRequestSource} does) and the
 * pod's ServiceAccount (its uid and the annotations the provider asks for), read with one `get` per
 * ServiceAccount unless already `known`. The node agent gets the same tokens from the same source and
 * its ServiceAccounts from its watches instead.
 *
 * The caller's identity needs `create` on `serviceaccounts/token` (and `get` on `serviceaccounts`);
 * a denial makes the provider skip, saying so. Minting a token is a write a reader may not expect,
 * which is why the face asks for it explicitly.
 */
export function tokenRequestCredentials(
  client: Pick<KubeClient, 'createServiceAccountToken' | 'getServiceAccount'>,
  options: TokenRequestCredentialsOptions = {},
): {
  tokenSource: TokenRequestSource;
  getServiceAccount: (namespace: string, name: string) => Promise<ServiceAccountInfo>;
} {
  const read = new Map<string, Promise<KubeJson>>();
  for (const sa of options.known ?? []) {
    if (sa === undefined) continue;
    read.set(`${sa.metadata?.namespace ?? 'default'}/${sa.metadata?.name ?? ''}`, Promise.resolve(sa));
  }
  return {
    tokenSource: new TokenRequestSource({
      client,
      ...(options.clock !== undefined ? { clock: options.clock } : {}),
    }),
    getServiceAccount: async (namespace, name) => {
      const key = `${namespace}/${name}`;
      let sa = read.get(key);
      if (sa === undefined) {
        sa = client.getServiceAccount(namespace, name);
        read.set(key, sa);
        // A failed read is not kept: the next lookup asks again.
        sa.catch(() => read.delete(key));
      }
      return serviceAccountInfo(await sa);
    },
  };
}
