import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { challengeScopes, parseWwwAuthenticate, type AuthChallenge } from '../../../src/registry/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

describe('parseWwwAuthenticate: examples', () => {
  const cases: [string | string[], AuthChallenge[]][] = [
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:library/ubuntu:pull',
          },
        },
      ],
    ],
    // quoted comma inside scope, several scopes in one value
    [
      'Bearer realm="http://127.0.0.1:5559/token",service="kimg-registry",scope="repository:a:pull,push repository:b:pull"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'http://127.0.0.1:5559/token',
            service: 'kimg-registry',
            scope: 'repository:a:pull,push repository:b:pull',
          },
        },
      ],
    ],
    // several challenges in one header, case-insensitive names, whitespace around '='
    [
      'Basic realm="x", BEARER Realm = "https://t/token" , Service=svc',
      [
        { scheme: 'basic', params: { realm: 'x' } },
        { scheme: 'bearer', params: { realm: 'https://t/token', service: 'svc' } },
      ],
    ],
    // several header lines
    [
      ['Basic realm="a"', 'Bearer realm="b",error="insufficient_scope"'],
      [
        { scheme: 'basic', params: { realm: 'a' } },
        { scheme: 'bearer', params: { realm: 'b', error: 'insufficient_scope' } },
      ],
    ],
    // escapes in quoted strings
    [
      'Basic realm="a \\"quoted\\" \\\\ realm"',
      [{ scheme: 'basic', params: { realm: 'a "quoted" \\ realm' } }],
    ],
    // unquoted URL (common in the wild, not a token strictly)
    [
      'Bearer realm=https://auth.example/token?x=1,service=reg',
      [{ scheme: 'bearer', params: { realm: 'https://auth.example/token?x=1', service: 'reg' } }],
    ],
    // token68
    [
      'Negotiate abc+/d==, Basic realm="r"',
      [
        { scheme: 'negotiate', params: {}, token68: 'abc+/d==' },
        { scheme: 'basic', params: { realm: 'r' } },
      ],
    ],
    // scheme only
    ['Basic', [{ scheme: 'basic', params: {} }]],
    // empty list elements
    [', ,Basic realm="r",, ,', [{ scheme: 'basic', params: { realm: 'r' } }]],
    // first occurrence of a parameter wins
    ['Bearer realm="a",realm="b"', [{ scheme: 'bearer', params: { realm: 'a' } }]],
    // unterminated quoted string runs to the end
    ['Bearer realm="https://x', [{ scheme: 'bearer', params: { realm: 'https://x' } }]],
    ['', []],
    ['   ', []],
    ['"only a string"', []],
  ];
  for (const [input, expected] of cases) {
    test(JSON.stringify(input), () => {
      assert.deepEqual(parseWwwAuthenticate(input), expected);
    });
  }

  test('__proto__ as a parameter name does not pollute', () => {
    const [c] = parseWwwAuthenticate('Bearer __proto__="x",realm="r"');
    assert.ok(c);
    assert.equal(c.params.realm, 'r');
    assert.equal(Object.getPrototypeOf(c.params), Object.prototype);
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });

  test('challengeScopes splits on spaces', () => {
    const [c] = parseWwwAuthenticate('Bearer realm="r",scope="repository:a:pull  repository:b:pull,push"');
    assert.ok(c);
    assert.deepEqual(challengeScopes(c), ['repository:a:pull', 'repository:b:pull,push']);
  });
});

describe('parseWwwAuthenticate: properties', () => {
  const tokenArb = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_.-]{0,11}$/);
  const valueArb = fc.string({
    maxLength: 30,
    unit: fc.constantFrom(...'abcXYZ019 :/.,="\\-_~+;!?'.split('')),
  });
  const challengeArb = fc.record({
    scheme: tokenArb,
    params: fc.uniqueArray(fc.tuple(tokenArb, valueArb), {
      maxLength: 4,
      selector: ([k]) => k.toLowerCase(),
    }),
  });
  const ws = fc.constantFrom('', ' ', '  ', '\t');

  test('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 200 }), fc.array(fc.string({ maxLength: 60 }), { maxLength: 4 })),
        (s) => {
          const out = parseWwwAuthenticate(s);
          assert.ok(Array.isArray(out));
          for (const c of out) {
            assert.equal(typeof c.scheme, 'string');
            assert.ok(c.scheme.length > 0);
          }
        },
      ),
      fuzzParams(),
    );
  });

  test('serialized challenges parse back (quoted values, any spacing, several challenges)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(challengeArb, ws, ws, ws), { minLength: 1, maxLength: 3 }), (list) => {
        const header = list
          .map(([c, a, b, d]) => {
            const params = c.params
              .map(([k, v]) => `${k}${a}=${b}"${v.replace(/[\\"]/g, (m) => '\\' + m)}"`)
              .join(`${d},${a}`);
            return params ? `${c.scheme} ${params}` : c.scheme;
          })
          .join(', ');
        const parsed = parseWwwAuthenticate(header);
        assert.equal(parsed.length, list.length, header);
        parsed.forEach((p, i) => {
          const [c] = list[i]!;
          assert.equal(p.scheme, c.scheme.toLowerCase());
          assert.deepEqual(
            p.params,
            Object.fromEntries(c.params.map(([k, v]) => [k.toLowerCase(), v])),
            header,
          );
        });
      }),
      fuzzParams(),
    );
  });
});
