/** Pure pieces of the registry client: retry policy, back-off, redaction, error mapping, scopes. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import {
  HostBackoff,
  RetryPolicy,
  nextLink,
  normalizeScopes,
  parseRetryAfter,
  redactUrl,
  repositoryScope,
  isRetryableNetworkError,
  type RegistryClock as Clock,
} from '../../../src/registry/index.js';
import { errorFromStatus, parseRegistryErrors } from '../../../src/registry/internal/http-errors.js';
import { scopesCover } from '../../../src/registry/auth.js';
import { parseContentRange } from '../../../src/registry/internal/blob-reader.js';
import { fuzzParams } from '../../helpers/fuzz.js';

describe('RetryPolicy', () => {
  test('exponential back-off with jitter, capped, attempts bounded', () => {
    const p = new RetryPolicy({ baseDelayMs: 100, maxDelayMs: 1000, jitter: 0.5, maxAttempts: 5 }, () => 1);
    assert.deepEqual(
      [1, 2, 3, 4].map((a) => p.delayBeforeRetry(a)),
      [100, 200, 400, 800],
    );
    assert.equal(p.delayBeforeRetry(5), undefined);
    const low = new RetryPolicy({ baseDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 }, () => 0);
    assert.deepEqual(
      [1, 2, 5].map((a) => low.backoff(a)),
      [50, 100, 500],
    );
  });

  test('Retry-After wins over the computed delay', () => {
    const p = new RetryPolicy({}, () => 0.5);
    assert.equal(p.delayBeforeRetry(1, 1000), 1000);
  });

  test('property: delays stay within [base·2^(n-1)·(1-j), cap]', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (n, j, r) => {
          const p = new RetryPolicy(
            { baseDelayMs: 200, maxDelayMs: 10_000, jitter: j, maxAttempts: 100 },
            () => r,
          );
          const d = p.backoff(n);
          const exp = Math.min(10_000, 200 * 2 ** (n - 1));
          assert.ok(d >= Math.floor(exp * (1 - j)) && d <= Math.ceil(exp), `${d} vs ${exp}`);
        },
      ),
      fuzzParams(),
    );
  });

  test('retryable statuses and network errors', () => {
    const p = new RetryPolicy();
    for (const s of [408, 429, 500, 502, 503, 504]) assert.equal(p.isRetryableStatus(s), true);
    for (const s of [400, 401, 403, 404, 405, 501]) assert.equal(p.isRetryableStatus(s), false);
    assert.equal(isRetryableNetworkError(Object.assign(new Error('x'), { code: 'ECONNRESET' })), true);
    assert.equal(isRetryableNetworkError(new Error('other side closed')), true);
    assert.equal(
      isRetryableNetworkError(
        new Error('x', { cause: Object.assign(new Error('y'), { code: 'KIMG_CONNECT_TIMEOUT' }) }),
      ),
      true,
    );
    assert.equal(isRetryableNetworkError(Object.assign(new Error('x'), { code: 'CERT_HAS_EXPIRED' })), false);
  });

  test('invalid options are INVALID_ARGUMENT', () => {
    assert.throws(
      () => new RetryPolicy({ maxAttempts: 0 }),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
    );
    assert.throws(
      () => new RetryPolicy({ jitter: 2 }),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
    );
  });

  test('Retry-After: seconds and HTTP dates', () => {
    assert.equal(parseRetryAfter('1'), 1000);
    assert.equal(parseRetryAfter(['7', '9']), 7000);
    assert.equal(
      parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')),
      10_000,
    );
    assert.equal(
      parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:29:00 GMT')),
      0,
    );
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });
});

describe('HostBackoff', () => {
  test('a failure delays every request to that host; successes decay it', () => {
    let now = 1000;
    const clock: Clock = { now: () => now, sleep: async () => undefined };
    const b = new HostBackoff(clock);
    assert.equal(b.waitFor('a'), 0);
    b.failure('a', 500);
    b.failure('a', 200);
    assert.equal(b.failures('a'), 2);
    assert.equal(b.waitFor('a'), 500);
    assert.equal(b.waitFor('b'), 0);
    now += 300;
    assert.equal(b.waitFor('a'), 200);
    b.success('a');
    assert.equal(b.failures('a'), 1);
    b.success('a');
    assert.equal(b.failures('a'), 0);
    assert.equal(b.waitFor('a'), 0);
  });
});

describe('redactUrl', () => {
  test('keeps protocol keys, redacts the rest, drops userinfo', () => {
    assert.equal(
      redactUrl('https://user:pw@s3.example/blob?X-Amz-Signature=secret&digest=sha256:abc&_state=tok'),
      'https://s3.example/blob?X-Amz-Signature=REDACTED&digest=sha256%3Aabc&_state=REDACTED',
    );
    assert.equal(
      redactUrl('http://r/v2/x/tags/list?n=10&last=b&ns=docker.io'),
      'http://r/v2/x/tags/list?n=10&last=b&ns=docker.io',
    );
    assert.equal(redactUrl('not a url'), '<unparsable url>');
  });

  test('property: a secret query value or password never survives', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/),
        fc.stringMatching(/^[A-Za-z0-9]{12,20}$/),
        (key, secret) => {
          fc.pre(!['scope', 'service', 'mount', 'from', 'digest', 'n', 'last', 'ns'].includes(key));
          const out = redactUrl(`https://u:${secret}@h.example/p?${key}=${secret}&n=1`);
          assert.ok(!out.includes(secret), out);
        },
      ),
      fuzzParams(),
    );
  });
});

describe('errorFromStatus', () => {
  const req = { method: 'GET', url: new URL('https://reg.example/v2/app/manifests/v1?sig=SECRET') };
  const ctx = {
    registry: 'reg.example',
    repository: 'app',
    kind: 'manifest' as const,
    target: 'v1',
    hadCredentials: true,
    action: 'pull' as const,
  };
  const table: [number, string[], string, RegExp][] = [
    [
      404,
      ['MANIFEST_UNKNOWN'],
      'NOT_FOUND',
      /registry reg\.example says the tag "v1" in repository "app" does not exist .*check the tag/,
    ],
    [404, ['NAME_UNKNOWN'], 'NOT_FOUND', /repository "app" does not exist/],
    [404, [], 'NOT_FOUND', /does not exist \(404\)/],
    [
      401,
      ['UNAUTHORIZED'],
      'UNAUTHORIZED',
      /rejected the credentials .*check the pull secret .*for host reg\.example/,
    ],
    [403, ['DENIED'], 'DENIED', /denied pull access/],
    [429, ['TOOMANYREQUESTS'], 'TOO_MANY_REQUESTS', /rate-limiting .*retry after 3s/],
    [503, [], 'REGISTRY_UNAVAILABLE', /failed GET/],
    [400, ['MANIFEST_INVALID'], 'REGISTRY_ERROR', /unexpected status \(400 MANIFEST_INVALID/],
  ];
  for (const [status, codes, code, re] of table) {
    test(`${status} ${codes.join(',')} → ${code}`, () => {
      const e = errorFromStatus(
        status,
        { 'retry-after': '3', 'ratelimit-remaining': '0' },
        codes.map((c) => ({ code: c, message: 'm' })),
        req,
        ctx,
      );
      assert.equal(e.code, code);
      assert.match(e.message, re);
      assert.equal(e.details.status, status);
      assert.equal(e.details.method, 'GET');
      assert.equal(e.details.url, 'https://reg.example/v2/app/manifests/v1?sig=REDACTED');
      assert.ok(!e.message.includes('SECRET'));
      if (code === 'TOO_MANY_REQUESTS') {
        assert.equal(e.details.retryAfterSeconds, 3);
        assert.deepEqual(e.details.items, ['retry-after: 3', 'ratelimit-remaining: 0']);
        assert.equal(e.details.retryable, true);
      }
    });
  }

  test('missing credentials are told apart from rejected ones', () => {
    const e = errorFromStatus(401, {}, [], req, { ...ctx, hadCredentials: false });
    assert.match(e.message, /requires authentication .*no credentials were found for host reg\.example/);
  });

  test('registry errors[] parsing tolerates junk', () => {
    assert.deepEqual(
      parseRegistryErrors(
        Buffer.from('{"errors":[{"code":"DENIED","message":"no","detail":[1]},5,{"message":3}]}'),
      ),
      [{ code: 'DENIED', message: 'no', detail: [1] }, { code: 'UNKNOWN' }],
    );
    assert.deepEqual(parseRegistryErrors(Buffer.from('<html>')), []);
  });
});

describe('scopes, links, ranges', () => {
  test('normalizeScopes merges actions per resource and sorts', () => {
    assert.deepEqual(
      normalizeScopes(['repository:b:pull', 'repository:a:push', 'repository:a:pull', 'repository:a:pull']),
      ['repository:a:pull,push', 'repository:b:pull'],
    );
    assert.equal(repositoryScope('x/y', ['pull', 'push']), 'repository:x/y:pull,push');
    assert.equal(scopesCover(['repository:a:pull,push'], ['repository:a:pull']), true);
    assert.equal(scopesCover(['repository:a:pull'], ['repository:a:push']), false);
    assert.equal(scopesCover(['repository:a:pull'], ['registry:catalog:*']), false);
  });

  test('property: normalizeScopes is idempotent and order-insensitive', () => {
    const scope = fc
      .tuple(
        fc.constantFrom('repository', 'registry'),
        fc.stringMatching(/^[a-z]{1,3}(\/[a-z]{1,3})?$/),
        fc.subarray(['pull', 'push', 'delete', '*'], { minLength: 1 }),
      )
      .map(([t, n, a]) => `${t}:${n}:${a.join(',')}`);
    fc.assert(
      fc.property(fc.array(scope, { maxLength: 6 }), (list) => {
        const n = normalizeScopes(list);
        assert.deepEqual(normalizeScopes(n), n);
        assert.deepEqual(normalizeScopes([...list].reverse()), n);
        assert.equal(scopesCover(n, list), true);
      }),
      fuzzParams(),
    );
  });

  test('Link rel="next"', () => {
    assert.equal(nextLink('</v2/x/tags/list?n=2&last=b>; rel="next"'), '/v2/x/tags/list?n=2&last=b');
    assert.equal(nextLink('<https://a/p>; rel=prev, <https://a/n>; rel=next'), 'https://a/n');
    assert.equal(nextLink('<https://a/p>; rel="prev"'), undefined);
    assert.equal(nextLink(undefined), undefined);
  });

  test('Content-Range', () => {
    assert.deepEqual(parseContentRange('bytes 100-199/200'), { start: 100, end: 199, total: 200 });
    assert.deepEqual(parseContentRange('bytes 0-9/*'), { start: 0, end: 9, total: undefined });
    assert.equal(parseContentRange('bytes 10-5/20'), undefined);
    assert.equal(parseContentRange('bytes 0-20/20'), undefined);
    assert.equal(parseContentRange('items 0-1/2'), undefined);
  });
});
