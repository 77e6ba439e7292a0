import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import {
  hostDirectories,
  isPlainHttpHost,
  parseGoDuration,
  parseHostsToml,
  resolveRegistryEndpoints,
} from '../../../src/registry/index.js';
import { parseToml, type TomlValue } from '../../../src/registry/internal/toml.js';
import { fuzzParams, onlyCodedErrors } from '../../helpers/fuzz.js';

describe('TOML subset', () => {
  test('tables, quoted keys, strings, arrays, inline tables, comments', () => {
    const doc = parseToml(
      [
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
      ].join('\n'),
    );
    assert.deepEqual(doc.root, {
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
    assert.deepEqual(doc.tableHeaders, [
      ['host', 'https://mirror.example:5000'],
      ['host', 'https://mirror.example:5000', 'more'],
    ]);
  });

  const bad: [string, RegExp][] = [
    ['a = 1\na = 2', /defined twice/],
    ['[a]\n[a]', /defined twice/],
    ['a = { b = 1 }\n[a]', /inline table/],
    ['[[x]]', /arrays of tables/],
    ['a = 1.5', /unsupported value/],
    ['a = "unterminated', /unterminated string/],
    ['a = "bad \\q escape"', /invalid escape/],
    ['a = [1, 2', /expected/],
    ['= 1', /expected a key/],
    ['a = 1 b = 2', /end of line/],
    ['a', /expected "="/],
    ['a = 99999999999999999999', /out of range|unsupported/],
  ];
  for (const [text, re] of bad) {
    test(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(
        () => parseToml(text, 'x/hosts.toml'),
        (e: unknown) =>
          isKimgError(e, 'HOSTS_CONFIG_INVALID') &&
          re.test(e.message) &&
          e.message.startsWith('x/hosts.toml:'),
      );
    });
  }

  test('property: any input gives a document or HOSTS_CONFIG_INVALID', () => {
    const unit = fc.constantFrom(...'ab=[]{}."\'#,\n \t\\u0-_tf'.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 120 }), fc.string({ maxLength: 120, unit })), (s) => {
        onlyCodedErrors(s, () => parseToml(s));
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
      return `{ ${Object.entries(v)
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
        const parsed = parseToml(text).root;
        const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x));
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

  test('defaults: https everywhere, docker.io → registry-1.docker.io', async () => {
    const [ep] = await resolveRegistryEndpoints('docker.io');
    assert.equal(ep!.scheme, 'https');
    assert.equal(ep!.host, 'registry-1.docker.io');
    const [lo] = await resolveRegistryEndpoints('localhost:5000');
    assert.equal(lo!.scheme, 'https', 'localhost is not plain HTTP unless asked');
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
