import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { KimgError } from '../../../src/errors/index.js';
import { Authorizer } from '../../../src/registry/auth.js';
import { SYSTEM_CLOCK } from '../../../src/registry/retry.js';
import type { HttpResponse } from '../../../src/registry/internal/transport.js';

const BASE = 'http://registry.test/v2';

function unauthorized(): HttpResponse {
  return {
    status: 401,
    headers: { 'www-authenticate': 'Basic realm="r"' },
    body: Readable.from([]),
  } as unknown as HttpResponse;
}

const send = (): Promise<HttpResponse> => Promise.reject(new Error('no token requests here'));

test("a ping joined by a second caller: the first caller's cancel does not fail the second, which pings again", async () => {
  const auth = new Authorizer(send, SYSTEM_CLOCK);
  const first = new AbortController();
  let pings = 0;
  let cancelFirst!: () => void;
  const firstPing = auth.ping(
    BASE,
    () => {
      pings++;
      // The first caller's request ends with its own cancel.
      return new Promise<HttpResponse>((_, reject) => {
        cancelFirst = () => {
          first.abort();
          reject(new KimgError('ABORTED', `GET ${BASE}/ was cancelled`));
        };
      });
    },
    first.signal,
  );
  const second = new AbortController();
  const secondPing = auth.ping(
    BASE,
    async () => {
      pings++;
      return unauthorized();
    },
    second.signal,
  );
  cancelFirst();
  await assert.rejects(firstPing, (e: KimgError) => e.code === 'ABORTED');
  await secondPing;
  assert.equal(pings, 2, 'the second caller pinged again');
  assert.deepEqual(
    auth.challengesFor(BASE).map((c) => c.scheme),
    ['basic'],
  );
});

test('a joined ping that fails for another reason fails every caller, once', async () => {
  const auth = new Authorizer(send, SYSTEM_CLOCK);
  let pings = 0;
  const down = (): Promise<HttpResponse> => {
    pings++;
    return Promise.reject(new KimgError('REGISTRY_UNAVAILABLE', 'connection refused'));
  };
  const results = await Promise.allSettled([auth.ping(BASE, down), auth.ping(BASE, down)]);
  assert.deepEqual(
    results.map((r) => (r.status === 'rejected' ? (r.reason as KimgError).code : 'ok')),
    ['REGISTRY_UNAVAILABLE', 'REGISTRY_UNAVAILABLE'],
  );
  assert.equal(pings, 1);
});

test("a joiner cancelled itself gets the first caller's cancel, without a new ping", async () => {
  const auth = new Authorizer(send, SYSTEM_CLOCK);
  const both = new AbortController();
  let pings = 0;
  const cancelled = (): Promise<HttpResponse> => {
    pings++;
    return new Promise<HttpResponse>((_, reject) =>
      both.signal.addEventListener('abort', () => reject(new KimgError('ABORTED', 'cancelled'))),
    );
  };
  const a = auth.ping(BASE, cancelled, both.signal);
  const b = auth.ping(BASE, cancelled, both.signal);
  both.abort();
  await assert.rejects(a, (e: KimgError) => e.code === 'ABORTED');
  await assert.rejects(b, (e: KimgError) => e.code === 'ABORTED');
  assert.equal(pings, 1);
});
