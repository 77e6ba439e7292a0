import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import {
  hostDirectories,
  isLoopbackPlainHttp,
  isPlainHttpHost,
  parseGoDuration,
  parseHostsToml,
  resolveRegistryEndpoints,
} from '../../../src/registry/index.js';
import {
  parseTomlFile,
  tableKeysInFileOrder,
  type TomlValue,
} from '../../../src/registry/internal/toml-file.js';
import { fuzzParams, onlyCodedErrors } from '../../helpers/fuzz.js';

/** Parsed tables have no prototype; compare them as JSON. */
const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x));

describe('TOML files', () => {
  test('tables, quoted keys, strings, arrays, inline tables, comments', () => {
    const text = [
      '# comment',
      'server = "https://registry-1.docker.io"  # trailing',
      "lit = 'C:\\path\\no escapes'",
      'multi = """',
      'line1',
      'line2"""',
      'n = -1_000',
      'yes = true',
      '',
      '[host."https://mirror.example:5000"]',
      '  capabilities = ["pull", "resolve",',
      '    # comment inside array',
      '  ]',
      '  client = [["a.cert", "a.key"], "b.pem"]',
      '  header = { x-a = "1", "x b" = ["2", "3"] }',
      '[host."https://mirror.example:5000".more]',
      'a.b.c = "\\u00e9\\t"',
    ].join('\n');
    const root = parseTomlFile(text, 'x/hosts.toml');
    assert.deepEqual(plain(root), {
      server: 'https://registry-1.docker.io',
      lit: 'C:\\path\\no escapes',
      multi: 'line1\nline2',
      n: -1000,
      yes: true,
      host: {
        'https://mirror.example:5000': {
          capabilities: ['pull', 'resolve'],
          client: [['a.cert', 'a.key'], 'b.pem'],
          header: { 'x-a': '1', 'x b': ['2', '3'] },
          more: { a: { b: { c: 'é\t' } } },
        },
      },
    });
    const host = root.host as Parameters<typeof tableKeysInFileOrder>[2];
    assert.deepEqual(tableKeysInFileOrder(text, 'host', host), ['https://mirror.example:5000']);
  });

  // Invalid TOML: the reason, and where (line:column), as HOSTS_CONFIG_INVALID.
  const bad: [string, RegExp][] = [
    ['a = 1\na = 2', /:2:1: .*redefine/],
    ['[a]\n[a]', /:2:\d+: .*redefine/],
    ['a = { b = 1 }\n[a]', /:2:\d+: .*redefine/],
    ['a = "unterminated', /:1:\d+: .*unfinished string/],
    ['a = "bad \\q escape"', /:1:\d+: .*escape/],
    ['a = [1, 2', /:1:\d+: .*expected/],
    ['= 1', /:1:1: .*key/],
    ['a = 1 b = 2', /:1:\d+: .*end-of-line/],
    ['a', /:1:1: .*key/],
    ['a = 99999999999999999999', /:1:\d+: .*losslessly/],
  ];
  for (const [text, re] of bad) {
    test(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(
        () => parseTomlFile(text, 'x/hosts.toml'),
        (e: unknown) =>
          isKimgError(e, 'HOSTS_CONFIG_INVALID') &&
          re.test(e.message) &&
          e.message.startsWith('x/hosts.toml:'),
      );
    });
  }

  test('errors never quote the file (header values may hold tokens)', () => {
    const text = '[host."https://m"]\nheader = { Authorization = "Bearer s3cr3t-canary" }\nx = [';
    assert.throws(
      () => parseTomlFile(text, 'x/hosts.toml'),
      (e: unknown) =>
        isKimgError(e, 'HOSTS_CONFIG_INVALID') &&
        /^x\/hosts\.toml:3:\d+: /.test(e.message) &&
        !e.message.includes('s3cr3t') &&
        !e.message.includes('\n'),
    );
  });

  test('property: any input gives a table or HOSTS_CONFIG_INVALID', () => {
    const unit = fc.constantFrom(...'ab=[]{}."\'#,\n \t\\u0-_tf'.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 120 }), fc.string({ maxLength: 120, unit })), (s) => {
        onlyCodedErrors(s, () => parseTomlFile(s, '<input>'));
      }),
      fuzzParams(),
    );
  });

  test('property: generated documents round-trip', () => {
    const key = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/), fc.string({ maxLength: 8 }));
    const str = fc.string({ maxLength: 20 });
    const scalar: fc.Arbitrary<TomlValue> = fc.oneof(str, fc.boolean(), fc.integer({ min: -1e9, max: 1e9 }));
    const value: fc.Arbitrary<TomlValue> = fc.oneof(
      { weight: 4, arbitrary: scalar },
      { weight: 1, arbitrary: fc.array(scalar, { maxLength: 4 }) },
      { weight: 1, arbitrary: fc.array(fc.array(str, { maxLength: 2 }), { maxLength: 2 }) },
      { weight: 1, arbitrary: fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), scalar, { maxKeys: 3 }) },
    );
    const table = fc.dictionary(key, value, { maxKeys: 5 });
    const docArb = fc.record({ top: table, tables: fc.dictionary(key, table, { maxKeys: 3 }) });
    const fmtKey = (k: string): string => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k));
    const fmtVal = (v: TomlValue): string => {
      if (typeof v === 'string') return JSON.stringify(v).replace(/\u007f/g, '\\u007f');
      if (typeof v === 'boolean' || typeof v === 'number') return String(v);
      if (Array.isArray(v)) return `[${v.map(fmtVal).join(', ')}]`;
      return `{ ${Object.entries(v as Record<string, TomlValue>)
        .map(([k, x]) => `${fmtKey(k)} = ${fmtVal(x)}`)
        .join(', ')} }`;
    };
    fc.assert(
      fc.property(docArb, ({ top, tables }) => {
        // keys of [tables] must not collide with top-level keys
        const t2 = Object.fromEntries(
          Object.entries(tables).filter(([k]) => !Object.prototype.hasOwnProperty.call(top, k)),
        );
        const lines: string[] = [];
        for (const [k, v] of Object.entries(top)) lines.push(`${fmtKey(k)} = ${fmtVal(v)}`);
        for (const [name, t] of Object.entries(t2)) {
          lines.push(`[${fmtKey(name)}]`);
          for (const [k, v] of Object.entries(t)) lines.push(`${fmtKey(k)} = ${fmtVal(v)}`);
        }
        const text = lines.join('\n');
        const parsed = parseTomlFile(text, '<input>');
        assert.deepEqual(plain(parsed), plain({ ...top, ...t2 }), text);
      }),
      fuzzParams(),
    );
  });
});

describe('hosts.toml', () => {
  test('mirrors in file order, server last, /v2 appended, defaults', () => {
    const entries = parseHostsToml(
      [
        'server = "https://registry.example.com"',
        '[host."https://mirror-b.example/path"]',
        '  capabilities = ["pull", "resolve"]',
        '  ca = "b-ca.pem"',
        '  skip_verify = true',
        '  dial_timeout = "1.5s"',
        '[host."http://mirror-a.example:5000"]',
        '  capabilities = ["pull"]',
        '  override_path = true',
        '  header.x-token = "t"',
        '[host."mirror-c.example/v2"]',
        '  client = [["/abs/c.cert", "c.key"]]',
      ].join('\n'),
      '/etc/certs.d/registry.example.com',
    );
    assert.deepEqual(
      entries.map((e) => [e.scheme, e.host, e.path, e.capabilities.join(','), e.mirror]),
      [
        ['https', 'mirror-b.example', '/path/v2', 'pull,resolve', true],
        ['http', 'mirror-a.example:5000', '', 'pull', true],
        ['https', 'mirror-c.example', '/v2', 'pull,resolve,push', true],
        ['https', 'registry.example.com', '/v2', 'pull,resolve,push', false],
      ],
    );
    assert.deepEqual(entries[0]!.caFiles, ['/etc/certs.d/registry.example.com/b-ca.pem']);
    assert.equal(entries[0]!.skipVerify, true);
    assert.equal(entries[0]!.dialTimeoutMs, 1500);
    assert.deepEqual(entries[1]!.headers, { 'x-token': ['t'] });
    assert.deepEqual(entries[2]!.clientPairs, [['/abs/c.cert', '/etc/certs.d/registry.example.com/c.key']]);
  });

  test('TOML containerd reads: dotted keys, inline tables, literal strings, multi-line arrays', () => {
    const dir = '/etc/certs.d/registry.example.com';
    const viaHeaders = parseHostsToml(
      [
        '[host."https://a.example"]',
        'capabilities = ["pull", "resolve"]',
        'ca = "/ca/a.pem"',
        '[host."https://b.example"]',
        'capabilities = ["pull"]',
        'header = { x-a = "1" }',
      ].join('\n'),
      dir,
    );
    const viaDotted = parseHostsToml(
      [
        'host."https://a.example".capabilities = [',
        '  "pull",   # multi-line array with a comment',
        '  "resolve",',
        ']',
        "host.'https://a.example'.ca = '/ca/a.pem'",
        'host."https://b.example" = { capabilities = ["pull"], header.x-a = "1" }',
      ].join('\n'),
      dir,
    );
    const viaInline = parseHostsToml(
      [
        'host = { "https://a.example" = { capabilities = ["pull", "resolve"], ca = \'/ca/a.pem\' }, ' +
          '"https://b.example" = { capabilities = ["pull"], header = { x-a = "1" } } }',
      ].join('\n'),
      dir,
    );
    assert.deepEqual(viaDotted, viaHeaders);
    assert.deepEqual(viaInline, viaHeaders);
    assert.deepEqual(
      viaHeaders.map((e) => e.host),
      ['a.example', 'b.example', ''],
    );
  });

  test('TOML 1.0 values hosts.toml does not use are accepted and ignored, as containerd does', () => {
    const entries = parseHostsToml(
      [
        "server = 'https://registry.example.com'",
        'weight = 1.5',
        'since = 1979-05-27T07:32:00Z',
        'mask = 0xff',
        'ratio = inf',
        '[[notes]]',
        'text = """multi',
        'line"""',
        '[host."https://m.example"]',
        'capabilities = ["pull"]',
        'retries = 3',
      ].join('\n'),
      '/d',
    );
    assert.deepEqual(
      entries.map((e) => [e.host, e.capabilities.join(','), e.mirror]),
      [
        ['m.example', 'pull', true],
        ['registry.example.com', 'pull,resolve,push', false],
      ],
    );
  });

  test('a date where a table belongs is not a table', () => {
    assert.throws(
      () => parseHostsToml('[host."https://m"]\nheader = 1979-05-27', '/d'),
      (e: unknown) => isKimgError(e, 'HOSTS_CONFIG_INVALID') && /"header" must be a table/.test(e.message),
    );
    assert.throws(
      () => parseHostsToml('[[host]]\nx = 1', '/d'),
      (e: unknown) => isKimgError(e, 'HOSTS_CONFIG_INVALID') && /"host" must be a table/.test(e.message),
    );
  });

  test('mirror keys that look like integers keep their file order', () => {
    const entries = parseHostsToml(
      ['[host."https://z.example"]', '[host."7"]', 'host_dummy = 1', '[host."12"]', '[host."3"]'].join('\n'),
      '/d',
    );
    assert.deepEqual(
      entries.map((e) => e.host),
      ['z.example', new URL('https://7').host, new URL('https://12').host, new URL('https://3').host, ''],
    );
  });

  test('property: mirrors come back in file order however they are written', () => {
    const name = fc.oneof(
      fc.nat({ max: 5000 }).map(String),
      fc.stringMatching(/^[a-z]{1,6}$/).map((n) => `https://${n}.example`),
    );
    const arb = fc.record({
      names: fc.uniqueArray(name, { minLength: 1, maxLength: 6 }),
      dotted: fc.nat({ max: 6 }),
      caps: fc.array(fc.constantFrom('pull', 'resolve', 'push'), { minLength: 1, maxLength: 3 }),
    });
    fc.assert(
      fc.property(arb, ({ names, dotted, caps }) => {
        // The first `dotted` mirrors as top-level dotted keys (they must precede every header), the rest
        // as [host."…"] headers.
        const capText = `[${caps.map((c) => JSON.stringify(c)).join(', ')}]`;
        const lines = names.map((n, i) =>
          i < dotted
            ? `host.${JSON.stringify(n)}.capabilities = ${capText}`
            : `[host.${JSON.stringify(n)}]\ncapabilities = ${capText}`,
        );
        const text = lines.join('\n');
        const entries = parseHostsToml(text, '/d');
        const expected = names.map((n) => new URL(n.includes('://') ? n : `https://${n}`).host);
        assert.deepEqual(
          entries.filter((e) => e.mirror).map((e) => e.host),
          expected,
          text,
        );
      }),
      fuzzParams(),
    );
  });

  test('invalid values name the file and the problem', () => {
    const cases: [string, RegExp][] = [
      ['capabilities = ["pull", "fly"]', /unknown capability fly/],
      ['[host."https://m"]\nca = 5', /"ca" must be/],
      ['[host."https://m"]\nskip_verify = "yes"', /skip_verify must be/],
      ['[host."https://m"]\ndial_timeout = "soon"', /invalid dial_timeout/],
      ['[host."https://m"]\nheader = { "bad header" = "x" }', /invalid header name/],
      ['server = "ftp://x"', /unsupported URL scheme/],
      ['server = 1', /"server" must be a string/],
    ];
    for (const [text, re] of cases) {
      assert.throws(
        () => parseHostsToml(text, '/d'),
        (e: unknown) =>
          isKimgError(e, 'HOSTS_CONFIG_INVALID') && re.test(e.message) && e.message.includes('/d/hosts.toml'),
        text,
      );
    }
  });

  test('property: parseHostsToml never throws uncoded errors', () => {
    const unit = fc.constantFrom(...'[]."=hostserverca_skipverifycapabilities pull,\n#{}\'htps:/'.split(''));
    fc.assert(
      fc.property(fc.string({ maxLength: 150, unit }), (s) => {
        onlyCodedErrors(s, () => parseHostsToml(s, '/d'));
      }),
      fuzzParams(),
    );
  });

  test('Go durations', () => {
    assert.equal(parseGoDuration('30s'), 30_000);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('500ms'), 500);
    assert.equal(parseGoDuration('1.5h'), 5_400_000);
    assert.equal(parseGoDuration('0'), 0);
    assert.equal(parseGoDuration(''), undefined);
    assert.equal(parseGoDuration('5'), undefined);
    assert.equal(parseGoDuration('-1s'), undefined);
  });

  test('directory search order', () => {
    assert.deepEqual(hostDirectories('/c', 'reg:5000'), ['/c/reg_5000_', '/c/reg:5000', '/c/_default']);
    assert.deepEqual(hostDirectories('/c', 'docker.io'), ['/c/docker.io', '/c/_default']);
  });

  test('plain HTTP only for listed hosts', () => {
    assert.equal(isPlainHttpHost('127.0.0.1:5000', ['127.0.0.1:5000']), true);
    assert.equal(isPlainHttpHost('127.0.0.1:5000', ['127.0.0.1']), true);
    assert.equal(isPlainHttpHost('127.0.0.1:5000', ['127.0.0.1:5001']), false);
    assert.equal(isPlainHttpHost('localhost:5000', []), false);
    assert.equal(isPlainHttpHost('localhost:5000', ['localhost']), true);
    assert.equal(isPlainHttpHost('[::1]:5000', ['[::1]']), true);
    assert.equal(isPlainHttpHost('registry.example', ['http://registry.example/']), true);
  });
});

describe('resolveRegistryEndpoints', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'kimg-hosts-'));
    await mkdir(join(root, 'reg.example_5000_'), { recursive: true });
    await writeFile(
      join(root, 'reg.example_5000_', 'hosts.toml'),
      'server = "https://reg.example:5000"\n[host."http://127.0.0.1:6000"]\ncapabilities = ["pull", "resolve"]\n',
    );
    await mkdir(join(root, 'certs.example'), { recursive: true });
    await writeFile(join(root, 'certs.example', 'ca.crt'), 'x');
    await writeFile(join(root, 'certs.example', 'client.cert'), 'x');
    await writeFile(join(root, 'certs.example', 'client.key'), 'x');
    await mkdir(join(root, 'broken.example'), { recursive: true });
    await writeFile(join(root, 'broken.example', 'hosts.toml'), 'server = [');
    await writeFile(join(root, 'broken.example', 'ca.crt'), 'x');
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('defaults: https, docker.io → registry-1.docker.io; loopback registries on a port plain HTTP like containerd', async () => {
    const [ep] = await resolveRegistryEndpoints('docker.io');
    assert.equal(ep!.scheme, 'https');
    assert.equal(ep!.host, 'registry-1.docker.io');
    const scheme = async (host: string, caFiles?: string[]) =>
      (await resolveRegistryEndpoints(host, caFiles ? { caFiles } : {}))[0]!.scheme;
    for (const host of ['localhost:5000', '127.0.0.1:5000', '127.1.2.3:80', '[::1]:5000', 'LOCALHOST:8080'])
      assert.equal(await scheme(host), 'http', host);
    for (const host of [
      'localhost',
      'localhost:443',
      '127.0.0.1',
      '[::1]:443',
      '10.0.0.1:5000',
      'reg.example:5000',
    ])
      assert.equal(await scheme(host), 'https', host);
    // TLS configured for it: HTTPS (kimg does not fall back to HTTP, see docs/deliberate-differences.md)
    assert.equal(await scheme('127.0.0.1:5000', ['/ca.pem']), 'https');
    assert.equal(isLoopbackPlainHttp('127.256.0.1:5000'), false);
    const [pl] = await resolveRegistryEndpoints('localhost:5000', {
      plainHttp: ['localhost'],
      caFiles: ['/ca.pem'],
    });
    assert.equal(pl!.scheme, 'http');
    assert.deepEqual(pl!.tls.caFiles, ['/ca.pem']);
    assert.equal(pl!.tls.skipVerify, undefined);
  });

  test('hosts dir: host_port_ directory, mirror first, ns only for mirrors', async () => {
    const eps = await resolveRegistryEndpoints('reg.example:5000', { hostsDir: root });
    assert.deepEqual(
      eps.map((e) => `${e.scheme}://${e.host}${e.path} ${e.capabilities.join(',')} mirror=${e.mirror}`),
      [
        'http://127.0.0.1:6000/v2 pull,resolve mirror=true',
        'https://reg.example:5000/v2 pull,resolve,push mirror=false',
      ],
    );
  });

  test('docker certs layout without hosts.toml', async () => {
    const [ep] = await resolveRegistryEndpoints('certs.example', { hostsDir: root });
    assert.deepEqual(ep!.tls.caFiles, [join(root, 'certs.example', 'ca.crt')]);
    assert.deepEqual(ep!.tls.clientPairs, [
      [join(root, 'certs.example', 'client.cert'), join(root, 'certs.example', 'client.key')],
    ]);
  });

  test('a broken hosts.toml falls back to cert files with a warning (containerd)', async () => {
    const warnings: string[] = [];
    const [ep] = await resolveRegistryEndpoints('broken.example', {
      hostsDir: root,
      warn: (m) => warnings.push(m),
    });
    assert.equal(ep!.host, 'broken.example');
    assert.deepEqual(ep!.tls.caFiles, [join(root, 'broken.example', 'ca.crt')]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /broken\.example\/hosts\.toml:1:\d+: .*certificate files/);
  });

  test('_default applies to unknown registries', async () => {
    await mkdir(join(root, '_default'), { recursive: true });
    await writeFile(join(root, '_default', 'hosts.toml'), '[host."https://catch-all.example"]\n');
    const eps = await resolveRegistryEndpoints('other.example', { hostsDir: root });
    assert.deepEqual(
      eps.map((e) => e.host),
      ['catch-all.example', 'other.example'],
    );
    await rm(join(root, '_default'), { recursive: true });
  });
});
