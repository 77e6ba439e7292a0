/**
 * The TokenRequest token cache of cluster mode: a token is reused until 80% of the lifetime the API
 * server granted (or 24 hours) has passed, per ServiceAccount, audience and pod; concurrent lookups
 * share one request; a failed request is not cached. Time is a fake clock. `tokenRequestCredentials`
 * (explain's `--token-request`) reads each ServiceAccount at most once, none it was handed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KimgError, isKimgError } from '../../../src/errors/index.js';
import {
  TOKEN_REQUEST_EXPIRATION_SECONDS,
  TokenRequestSource,
  tokenRequestCredentials,
  type KubeJson,
  type ServiceAccountToken,
  type ServiceAccountTokenOptions,
  type TokenRequester,
} from '../../../src/kube/index.js';
import { FakeClock } from '../../helpers/clock.js';

interface Asked {
  namespace: string;
  name: string;
  options: ServiceAccountTokenOptions;
}

/** An API server's TokenRequest answers: `grant` seconds of lifetime, numbered tokens. */
function requester(
  clock: FakeClock,
  grant: (asked: number) => { seconds: number; echo: boolean } = (s) => ({ seconds: s, echo: true }),
): TokenRequester & { asked: Asked[]; fail?: KimgError } {
  const r = {
    asked: [] as Asked[],
    fail: undefined as KimgError | undefined,
    createServiceAccountToken(
      namespace: string,
      name: string,
      options: ServiceAccountTokenOptions,
    ): Promise<ServiceAccountToken> {
      r.asked.push({ namespace, name, options });
      if (r.fail !== undefined) return Promise.reject(r.fail);
      const g = grant(options.expirationSeconds);
      return Promise.resolve({
        token: `token-${r.asked.length}`,
        expiresAt: clock.now() + g.seconds * 1000,
        ...(g.echo ? { expirationSeconds: g.seconds } : {}),
      });
    },
  };
  return r;
}

const ask = {
  namespace: 'team',
  name: 'puller',
  uid: 'sa-uid',
  audience: 'registry.example',
  podName: 'web',
  podUid: 'pod-1',
};

describe('TokenRequestSource', () => {
  test('asks for a pod-bound token for the audience, one hour, and reuses it until 80% of its lifetime', async () => {
    const clock = new FakeClock(1_000_000);
    const api = requester(clock);
    const source = new TokenRequestSource({ client: api, clock });
    assert.equal(await source.token(ask), 'token-1');
    assert.deepEqual(api.asked, [
      {
        namespace: 'team',
        name: 'puller',
        options: {
          audiences: ['registry.example'],
          expirationSeconds: TOKEN_REQUEST_EXPIRATION_SECONDS,
          boundPod: { name: 'web', uid: 'pod-1' },
        },
      },
    ]);
    assert.equal(TOKEN_REQUEST_EXPIRATION_SECONDS, 3600);
    clock.advance(2880_000 - 1);
    assert.equal(await source.token(ask), 'token-1');
    clock.advance(1);
    assert.equal(await source.token(ask), 'token-2');
    assert.equal(api.asked.length, 2);
  });

  test('one token per ServiceAccount, audience and pod', async () => {
    const clock = new FakeClock();
    const api = requester(clock);
    const source = new TokenRequestSource({ client: api, clock });
    const tokens = await Promise.all([
      source.token(ask),
      source.token({ ...ask, audience: 'other' }),
      source.token({ ...ask, podUid: 'pod-2', podName: 'web-2' }),
      source.token({ ...ask, name: 'builder' }),
      source.token({ ...ask, namespace: 'other' }),
    ]);
    assert.equal(new Set(tokens).size, 5);
    assert.equal(source.size, 5);
    assert.equal(await source.token({ ...ask, audience: 'other' }), tokens[1]);
    assert.equal(api.asked.length, 5);
  });

  test('concurrent lookups share one request', async () => {
    const clock = new FakeClock();
    const api = requester(clock);
    const source = new TokenRequestSource({ client: api, clock });
    const all = await Promise.all([source.token(ask), source.token(ask), source.token(ask)]);
    assert.deepEqual(all, ['token-1', 'token-1', 'token-1']);
    assert.equal(api.asked.length, 1);
  });

  test('a lifetime the API server shortened is what counts; without the echo, from the request time', async () => {
    const clock = new FakeClock();
    const api = requester(clock, () => ({ seconds: 600, echo: true }));
    const source = new TokenRequestSource({ client: api, clock });
    await source.token(ask);
    clock.advance(480_000 - 1);
    await source.token(ask);
    assert.equal(api.asked.length, 1);
    clock.advance(1);
    await source.token(ask);
    assert.equal(api.asked.length, 2);

    const clock2 = new FakeClock(5_000);
    const api2 = requester(clock2, () => ({ seconds: 1000, echo: false }));
    const source2 = new TokenRequestSource({ client: api2, clock: clock2 });
    await source2.token(ask);
    clock2.advance(800_000 - 1);
    await source2.token(ask);
    assert.equal(api2.asked.length, 1);
    clock2.advance(1);
    await source2.token(ask);
    assert.equal(api2.asked.length, 2);
  });

  test('a token older than 24 hours is renewed even when its lifetime is longer', async () => {
    const clock = new FakeClock();
    const api = requester(clock, () => ({ seconds: 7 * 24 * 3600, echo: true }));
    const source = new TokenRequestSource({ client: api, clock });
    await source.token(ask);
    clock.advance(24 * 3600_000 - 1);
    await source.token(ask);
    assert.equal(api.asked.length, 1);
    clock.advance(1);
    await source.token(ask);
    assert.equal(api.asked.length, 2);
  });

  test('a failure is the API error, not cached, and holds no token; a pod without uid is not bound', async () => {
    const clock = new FakeClock();
    const api = requester(clock);
    const source = new TokenRequestSource({ client: api, clock });
    api.fail = new KimgError('KUBE_FORBIDDEN', 'RBAC denies create serviceaccounts/token "puller"');
    await assert.rejects(source.token(ask), (e: unknown) => isKimgError(e, 'KUBE_FORBIDDEN'));
    api.fail = undefined;
    assert.equal(await source.token(ask), 'token-2');
    assert.equal(source.size, 1);
    await source.token({ ...ask, podUid: '', podName: '' });
    assert.equal(api.asked.at(-1)?.options.boundPod, undefined);
  });

  test('stale tokens are dropped, so the cache follows the pods', async () => {
    const clock = new FakeClock();
    const source = new TokenRequestSource({ client: requester(clock), clock });
    await source.token(ask);
    await source.token({ ...ask, podUid: 'pod-2' });
    assert.equal(source.size, 2);
    clock.advance(3600_000);
    await source.token({ ...ask, podUid: 'pod-3' });
    assert.equal(source.size, 1);
  });
});

describe('tokenRequestCredentials', () => {
  test('ServiceAccounts: the known ones are not read, others once each, a failed read is asked again', async () => {
    const clock = new FakeClock();
    const reads: string[] = [];
    let failNext = false;
    const sa = (namespace: string, name: string): KubeJson => ({
      metadata: { namespace, name, uid: `uid-${name}`, annotations: { 'registry.example/role': name } },
    });
    const client = {
      ...requester(clock),
      getServiceAccount(namespace: string, name: string): Promise<KubeJson> {
        reads.push(`${namespace}/${name}`);
        if (failNext) {
          failNext = false;
          return Promise.reject(new KimgError('KUBE_FORBIDDEN', 'RBAC denies get serviceaccounts'));
        }
        return Promise.resolve(sa(namespace, name));
      },
    };
    const creds = tokenRequestCredentials(client, { known: [sa('apps', 'builder'), undefined], clock });
    assert.deepEqual(await creds.getServiceAccount('apps', 'builder'), {
      uid: 'uid-builder',
      annotations: { 'registry.example/role': 'builder' },
    });
    assert.deepEqual(reads, [], 'a ServiceAccount already read is not read again');
    failNext = true;
    await assert.rejects(creds.getServiceAccount('apps', 'other'), (e: unknown) =>
      isKimgError(e, 'KUBE_FORBIDDEN'),
    );
    assert.equal((await creds.getServiceAccount('apps', 'other')).uid, 'uid-other');
    await creds.getServiceAccount('apps', 'other');
    assert.deepEqual(reads, ['apps/other', 'apps/other'], 'read again after a failure, then kept');
    assert.ok(creds.tokenSource instanceof TokenRequestSource);
  });
});
