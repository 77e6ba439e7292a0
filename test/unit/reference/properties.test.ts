/**
 * Property tests for src/reference (fast-check, `fuzzParams()`: 10,000 runs each by default).
 * (a) generated valid references round-trip through format/parse and their canonical form is a fixed point;
 * (b) arbitrary strings never throw anything but a coded KimgError, and the scanners agree with an
 *     independent regex transcription of the documented grammar (safe here: inputs are short);
 * (c) familiar and canonical forms are consistent.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fuzzParams, onlyCodedErrors } from '../../helpers/fuzz.js';
import {
  applyDefaultTag,
  familiarName,
  formatReference,
  parseAnyReference,
  parseDigest,
  parseDockerRef,
  parseNamed,
  parseReference,
  parseStrict,
  tryParseReference,
  type ParseOptions,
  type Reference,
  type ReferenceParts,
} from '../../../src/reference/index.js';
import { matchName, matchReference } from '../../../src/reference/grammar.js';

/** Would normalization take `first` (the first `/` component) as a registry host? */
const looksLikeHost = (first: string): boolean =>
  first === 'localhost' || first.includes('.') || first.includes(':') || first.toLowerCase() !== first;

// --- generators --------------------------------------------------------------------------------------

const chars = (s: string) => fc.constantFrom(...s.split(''));
const LOWER_ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const ALNUM = LOWER_ALNUM + 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const HEX = '0123456789abcdef';

const alnumRun = fc.string({ unit: chars(LOWER_ALNUM), minLength: 1, maxLength: 10 });
const separator = fc.constantFrom('.', '_', '__', '-', '--', '---');
const pathComponent = fc
  .tuple(alnumRun, fc.array(fc.tuple(separator, alnumRun), { maxLength: 3 }))
  .map(([head, rest]) => head + rest.map(([s, a]) => s + a).join(''));
const path = fc
  .array(pathComponent, { minLength: 1, maxLength: 5 })
  .map((cs) => cs.join('/'))
  .filter((p) => p.length <= 200);

const domainLabel = fc
  .tuple(chars(ALNUM), fc.string({ unit: chars(ALNUM + '-'), maxLength: 8 }), chars(ALNUM))
  .map(([a, mid, b]) => (mid === '' ? a : a + mid + b));
const domainName = fc.array(domainLabel, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const ipv4 = fc.ipV4();
const ipv6 = fc
  .ipV6()
  .filter((a) => !a.includes('.'))
  .map((a) => `[${a}]`);
const port = fc.option(
  fc.integer({ min: 0, max: 99999 }).map((p) => `:${p}`),
  { nil: undefined },
);
const domain = fc
  .tuple(fc.oneof(domainName, ipv4, ipv6, fc.constant('localhost'), fc.constant('docker.io')), port)
  .map(([h, p]) => h + (p ?? ''));

const tag = fc
  .tuple(chars(ALNUM + '_'), fc.string({ unit: chars(ALNUM + '_.-'), maxLength: 127 }))
  .map(([a, b]) => a + b);
const digest = fc
  .constantFrom(['sha256', 64] as const, ['sha384', 96] as const, ['sha512', 128] as const)
  .chain(([alg, n]) => fc.string({ unit: chars(HEX), minLength: n, maxLength: n }).map((h) => `${alg}:${h}`));

const parts: fc.Arbitrary<ReferenceParts> = fc.record(
  {
    domain: fc.option(domain, { nil: undefined }),
    path,
    tag: fc.option(tag, { nil: undefined }),
    digest: fc.option(digest, { nil: undefined }),
  },
  { requiredKeys: ['path'] },
);

const registryOpts: fc.Arbitrary<ParseOptions> = fc.oneof(
  fc.constant({}),
  fc.constant({ defaultRegistry: 'docker.io' }),
  domain.filter((d) => d !== 'docker.io' && looksLikeHost(d)).map((d) => ({ defaultRegistry: d })),
);

/** Characters of the grammar plus near misses, for strings that get close to valid. */
const GRAMMAR_ALPHABET = 'abcxyz019ABZ:/@._-[]%+=~ \u0000\u212a\u0130é';
const grammarString = fc.string({ unit: chars(GRAMMAR_ALPHABET), maxLength: 80 });

const validString = parts.map((p) => formatReference(p));
const mutation = fc.record({ op: fc.integer({ min: 0, max: 2 }), at: fc.nat(), ch: chars(GRAMMAR_ALPHABET) });
const mutated = fc.tuple(validString, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([s, ms]) => {
  let out = s;
  for (const m of ms) {
    const i = out.length === 0 ? 0 : m.at % (out.length + 1);
    if (m.op === 0) out = out.slice(0, i) + m.ch + out.slice(i);
    else if (m.op === 1) out = out.slice(0, i) + out.slice(i + 1);
    else out = out.slice(0, i) + m.ch + out.slice(i + 1);
  }
  return out;
});

const loneSurrogates = fc.string({
  unit: fc.oneof(
    chars('ab/:@'),
    fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  ),
  maxLength: 40,
});

const anyString = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  loneSurrogates,
  grammarString,
  mutated,
  validString,
);

// --- helpers -----------------------------------------------------------------------------------------

const suffix = (r: Reference): string =>
  (r.tag === undefined ? '' : `:${r.tag}`) + (r.digest === undefined ? '' : `@${r.digest}`);

/**
 * `domain/path`; upstream leaves the domain empty when the first component looks like a host but is not
 * one (`a_b.c/d`: `.` makes it a host candidate, `_` is not allowed in hosts, so it is all path).
 */
const joinName = (r: Reference): string => (r.domain === '' ? r.path : `${r.domain}/${r.path}`);

/**
 * Upstream's known ambiguity: a familiar name whose first component looks like a host (`docker.io/a.b/c`
 * → `a.b/c`) does not parse back to the same registry.
 */
function familiarIsAmbiguous(r: Reference): boolean {
  const slash = r.familiar.indexOf('/');
  return r.familiar !== r.name && slash >= 0 && looksLikeHost(r.familiar.slice(0, slash));
}

// --- (a) round trips ---------------------------------------------------------------------------------

describe('(a) valid references round-trip', () => {
  test('parseStrict(formatReference(x)) gives back x', () => {
    fc.assert(
      fc.property(parts, (p) => {
        const s = formatReference(p);
        const r = parseStrict(s);
        assert.equal(r.normalized, s);
        assert.equal(r.tag, p.tag);
        assert.equal(r.digest, p.digest);
        assert.equal(r.name, p.domain === undefined ? p.path : `${p.domain}/${p.path}`);
        if (p.domain !== undefined) {
          assert.equal(r.domain, p.domain);
          assert.equal(r.path, p.path);
        }
      }),
      fuzzParams(),
    );
  });

  test('parseReference(formatReference(x)) keeps the host, tag and digest; canonical is a fixed point', () => {
    fc.assert(
      fc.property(parts, registryOpts, (p, opts) => {
        const s = formatReference(p);
        const r = parseReference(s, opts);
        assert.equal(r.tag, p.tag);
        assert.equal(r.digest, p.digest);
        if (p.domain !== undefined && looksLikeHost(p.domain)) {
          assert.equal(r.domain, p.domain);
          assert.ok(r.path === p.path || (p.domain === 'docker.io' && r.path === `library/${p.path}`));
        }
        assert.equal(r.name, joinName(r));
        assert.equal(parseReference(r.canonical, opts).canonical, r.canonical);
        assert.equal(parseReference(r.normalized, opts).normalized, r.normalized);
        assert.equal(parseReference(r.pullRef, opts).pullRef, r.pullRef);
        assert.equal(
          parseNamed(r.normalized, opts).normalized,
          r.normalized,
          'normalized form is canonical for ParseNamed',
        );
        assert.equal(parseStrict(r.canonical).normalized, r.canonical);
        assert.equal(parseDockerRef(s, opts).normalized, r.pullRef);
        assert.equal(formatReference(r), r.normalized);
      }),
      fuzzParams(),
    );
  });

  test('applyDefaultTag only ever appends ":latest" to a name-only image', () => {
    fc.assert(
      fc.property(parts, (p) => {
        const s = formatReference(p);
        const r = tryParseReference(s);
        if (!r.ok) return; // e.g. library/ pushed a docker.io path over 255
        const out = applyDefaultTag(s);
        if (p.tag === undefined && p.digest === undefined) assert.equal(out, `${s}:latest`);
        else assert.equal(out, s);
        assert.equal(applyDefaultTag(out), out, 'idempotent');
      }),
      fuzzParams(),
    );
  });
});

// --- (b) arbitrary strings ---------------------------------------------------------------------------

/** Independent regex transcription of the grammar of distribution/reference `regexp.go` (short inputs only). */
const G = (() => {
  const alnum = '[a-z0-9]+';
  const sep = '(?:[._]|__|-+)';
  const comp = `${alnum}(?:${sep}${alnum})*`;
  const remote = `${comp}(?:/${comp})*`;
  const label = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
  const host = `(?:${label}(?:\\.${label})*|\\[[a-fA-F0-9:]+\\])`;
  const dp = `${host}(?::[0-9]+)?`;
  const tagRe = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
  const dig = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
  return {
    reference: new RegExp(`^((?:${dp}/)?${remote})(?::(${tagRe}))?(?:@(${dig}))?$`),
    name: new RegExp(`^(?:(${dp})/)?(${remote})$`),
  };
})();

describe('(b) arbitrary strings', () => {
  test('every entry point returns or throws a coded KimgError', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        onlyCodedErrors(s, () => parseReference(s));
        onlyCodedErrors(s, () => parseStrict(s));
        onlyCodedErrors(s, () => parseNamed(s));
        onlyCodedErrors(s, () => parseAnyReference(s));
        onlyCodedErrors(s, () => parseDockerRef(s));
        onlyCodedErrors(s, () => parseDigest(s));
        onlyCodedErrors(s, () => applyDefaultTag(s));
        onlyCodedErrors(s, () => familiarName(s));
        onlyCodedErrors(s, () => parseReference(s, { defaultRegistry: 'registry.example:5000' }));
      }),
      fuzzParams(),
    );
  });

  test('tryParseReference agrees with parseReference; every valid result is self-consistent', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        const t = tryParseReference(s);
        const thrown = onlyCodedErrors(s, () => parseReference(s)) === undefined;
        assert.equal(t.ok, !thrown);
        if (!t.ok) {
          assert.ok(t.error.message.length > 0 && t.error.message.length < 2500);
          assert.equal(t.error.details.input, s);
          return;
        }
        const r = t.reference;
        assert.equal(r.name, joinName(r));
        assert.ok(r.path.length <= 255);
        assert.equal(r.normalized, r.name + suffix(r));
        assert.equal(parseReference(r.canonical).canonical, r.canonical);
        assert.equal(parseStrict(r.normalized).normalized, r.normalized);
      }),
      fuzzParams(),
    );
  });

  test('the scanners match the documented grammar exactly (differential against a regex)', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        const m = matchReference(s);
        const g = G.reference.exec(s);
        assert.equal(m !== undefined, g !== null, `match disagreement on ${JSON.stringify(s)}`);
        if (m === undefined || g === null) return;
        const n = G.name.exec(g[1] ?? '');
        assert.ok(n !== null);
        assert.deepEqual([m.domain, m.path, m.tag, m.digest], [n[1] ?? '', n[2], g[2], g[3]]);
        const mn = matchName(g[1] ?? '');
        assert.deepEqual(mn, { domain: n[1] ?? '', path: n[2] });
      }),
      fuzzParams(),
    );
  });
});

// --- (c) familiar ↔ canonical ------------------------------------------------------------------------

describe('(c) familiar and canonical forms agree', () => {
  test("the familiar string parses back to the same reference (except upstream's documented ambiguity)", () => {
    fc.assert(
      fc.property(parts, registryOpts, (p, opts) => {
        const t = tryParseReference(formatReference(p), opts);
        if (!t.ok) return;
        const r = t.reference;
        assert.equal(familiarName(r.name, opts), r.familiar);
        assert.equal(r.familiarString, r.familiar + suffix(r));
        assert.ok(r.name.endsWith(r.familiar) || r.familiar === r.path.slice('library/'.length));
        const back = parseReference(r.familiarString, opts);
        if (familiarIsAmbiguous(r)) {
          // `docker.io/a.b/c` → `a.b/c` → registry `a.b`: upstream behaves the same way.
          assert.notEqual(back.domain, r.domain);
          return;
        }
        assert.equal(back.normalized, r.normalized);
        assert.equal(back.canonical, r.canonical);
        assert.equal(back.familiar, r.familiar);
      }),
      fuzzParams(),
    );
  });

  test('canonical = name + :tag (or :latest without tag and digest) + @digest', () => {
    fc.assert(
      fc.property(parts, (p) => {
        const t = tryParseReference(formatReference(p));
        if (!t.ok) return;
        const r = t.reference;
        const tagPart = r.tag !== undefined ? `:${r.tag}` : r.digest === undefined ? ':latest' : '';
        assert.equal(r.canonical, r.name + tagPart + (r.digest === undefined ? '' : `@${r.digest}`));
        assert.equal(
          r.pullRef,
          r.digest !== undefined ? `${r.name}@${r.digest}` : `${r.name}:${r.tag ?? 'latest'}`,
        );
      }),
      fuzzParams(),
    );
  });
});
