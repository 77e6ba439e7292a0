/**
 * Keyring matching and ordering: upstream's tables (kubernetes `pkg/credentialprovider/keyring_test.go`:
 * TestUrlsMatch, TestDockerKeyringForGlob, TestKeyringMiss, the Docker Hub cases,
 * TestIsDefaultRegistryMatch, TestDockerKeyringLookup, TestIssue3797) and every example of the seed
 * page (kubernetes-images-concept.md "Interpretation of config.json").
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  isDefaultRegistryMatch,
  Keyring,
  matchKey,
  normalizeKeyringKey,
  parseDockerConfig,
  Secret,
  type CredentialSource,
  type DockerConfigEntry,
} from '../../../src/credentials/index.js';
import { authField, configJson } from './helpers.js';

const FLAG: CredentialSource = { kind: 'flag', file: 'test' };

function keyringOf(json: string, source: CredentialSource = FLAG): Keyring {
  return new Keyring().add(parseDockerConfig(json).entries, source);
}

function entry(key: string, username: string, password: string, email?: string): DockerConfigEntry {
  return {
    key,
    auth: { username, password: new Secret(password), ...(email !== undefined ? { email } : {}) },
  };
}

describe('URLsMatch (upstream TestUrlsMatch)', () => {
  const cases: Array<[string, string, boolean]> = [
    ['*.kubernetes.io', 'prefix.kubernetes.io', true],
    ['prefix.*.io', 'prefix.kubernetes.io', true],
    ['prefix.kubernetes.*', 'prefix.kubernetes.io', true],
    ['*-good.kubernetes.io', 'prefix-good.kubernetes.io', true],
    ['*.kubernetes.io/blah', 'prefix.kubernetes.io/blah', true],
    ['prefix.*.io/foo', 'prefix.kubernetes.io/foo/bar', true],
    ['*.kubernetes.io:1111/blah', 'prefix.kubernetes.io:1111/blah', true],
    ['prefix.*.io:1111/foo', 'prefix.kubernetes.io:1111/foo/bar', true],
    ['*.kubernetes.io', 'kubernetes.io', false],
    ['*.*.kubernetes.io', 'prefix.kubernetes.io', false],
    ['*.*.kubernetes.io', 'kubernetes.io', false],
    ['kubernetes.io', 'kubernetes.com', false],
    ['k*.io', 'quay.io', false],
    ['*.kubernetes.io:1234/blah', 'prefix.kubernetes.io:1111/blah', false],
    ['prefix.*.io/foo', 'prefix.kubernetes.io:1111/foo/bar', false],
  ];
  for (const [glob, target, expected] of cases) {
    test(`${glob} vs ${target} → ${expected}`, () => {
      assert.equal(matchKey(glob, target) === undefined, expected);
    });
  }
  test('glob features of filepath.Match: ?, classes, ranges; malformed globs never match', () => {
    // `?` starts the query of a URL, so it can never be a host glob: `reg?.io` is the host `reg`.
    assert.notEqual(matchKey('reg?.io', 'reg1.io'), undefined);
    assert.equal(matchKey('reg[0-9].io', 'reg7.io'), undefined);
    assert.notEqual(matchKey('reg[0-9].io', 'rega.io'), undefined);
    assert.equal(matchKey('reg[ab].io', 'regb.io'), undefined);
    assert.deepEqual(matchKey('reg[.io', 'reg.io')?.kind, 'bad-glob');
    assert.deepEqual(matchKey('reg[a-].io', 'rega.io')?.kind, 'bad-glob');
    assert.deepEqual(matchKey('r[]g.io', 'rag.io')?.kind, 'bad-glob');
    assert.equal(matchKey('*', 'localhost'), undefined);
    assert.equal(matchKey('*:5000', 'localhost:5000/x'), undefined);
  });
  test('hosts are case-sensitive, as in kubelet', () => {
    const r = matchKey('Registry.example.com', 'registry.example.com/app');
    assert.equal(r?.kind, 'label');
    assert.equal(r?.kind === 'label' && r.caseOnly, true);
  });
});

describe('keyring glob hits and misses (upstream TestDockerKeyringForGlob, TestKeyringMiss)', () => {
  const hits: Array<[string, string]> = [
    ['https://hello.kubernetes.io', 'hello.kubernetes.io'],
    ['https://*.docker.io', 'prefix.docker.io'],
    ['https://prefix.*.io', 'prefix.docker.io'],
    ['https://prefix.docker.*', 'prefix.docker.io'],
    ['https://*.docker.io/path', 'prefix.docker.io/path'],
    ['https://prefix.*.io/path', 'prefix.docker.io/path/subpath'],
    ['https://prefix.docker.*/path', 'prefix.docker.io/path'],
    ['https://*.docker.io:8888', 'prefix.docker.io:8888'],
    ['https://prefix.*.io:8888', 'prefix.docker.io:8888'],
    ['https://prefix.docker.*:8888', 'prefix.docker.io:8888'],
    ['https://*.docker.io/path:1111', 'prefix.docker.io/path:1111'],
    ['https://*.docker.io/v1/', 'prefix.docker.io/path:1111'],
    ['https://*.docker.io/v2/', 'prefix.docker.io/path:1111'],
    ['https://prefix.docker.*/path:1111', 'prefix.docker.io/path:1111'],
    ['prefix.docker.io:1111', 'prefix.docker.io:1111/path'],
    ['*.docker.io:1111', 'prefix.docker.io:1111/path'],
  ];
  for (const [glob, target] of hits) {
    test(`hit: ${glob} for ${target}/foo/bar`, () => {
      const json = JSON.stringify({ [glob]: { email: 'foo@bar.baz', auth: authField('foo', 'bar') } });
      const creds = keyringOf(json).lookupRepository(`${target}/foo/bar`);
      assert.equal(creds.length, 1);
      assert.equal(creds[0]?.auth.username, 'foo');
      assert.equal(creds[0]?.auth.password?.reveal(), 'bar');
      assert.equal(creds[0]?.auth.email, 'foo@bar.baz');
    });
  }
  const misses: Array<[string, string]> = [
    ['https://hello.kubernetes.io', 'world.mesos.org/foo/bar'],
    ['https://*.docker.com', 'prefix.docker.io'],
    ['https://suffix.*.io', 'prefix.docker.io'],
    ['https://prefix.docker.c*', 'prefix.docker.io'],
    ['https://prefix.*.io/path:1111', 'prefix.docker.io/path/subpath:1111'],
    ['suffix.*.io', 'prefix.docker.io'],
  ];
  for (const [glob, lookup] of misses) {
    test(`miss: ${glob} for ${lookup}/foo/bar`, () => {
      const json = JSON.stringify({ [glob]: { email: 'foo@bar.baz', auth: authField('foo', 'bar') } });
      assert.deepEqual(keyringOf(json).lookupRepository(`${lookup}/foo/bar`), []);
    });
  }
});

describe('Docker Hub fallback (upstream TestKeyringMissWithDockerHubCredentials and the Hit cases)', () => {
  const hub = JSON.stringify({
    'https://index.docker.io/v1/': { email: 'foo@bar.baz', auth: authField('foo', 'bar') },
  });
  test('not used for other registries', () => {
    assert.deepEqual(keyringOf(hub).lookupRepository('world.mesos.org/foo/bar'), []);
  });
  for (const image of [
    'google/docker-registry',
    'jenkins',
    'index.docker.io/google/docker-registry',
    'docker.io/library/nginx',
  ]) {
    test(`used for ${image}`, () => {
      const creds = keyringOf(hub).lookupRepository(image);
      assert.equal(creds.length, 1);
      assert.equal(creds[0]?.auth.username, 'foo');
      assert.equal(creds[0]?.key, 'index.docker.io');
    });
  }
  test('isDefaultRegistryMatch (upstream TestIsDefaultRegistryMatch)', () => {
    const samples: Array<[string, boolean]> = [
      ['foo/bar', true],
      ['docker.io/foo/bar', true],
      ['index.docker.io/foo/bar', true],
      ['foo', true],
      ['', false],
      ['registry.tld/foo/bar', false],
      ['registry:5000/foo/bar', false],
      ['myhostdocker.io/foo/bar', false],
    ];
    for (const [image, expected] of samples) assert.equal(isDefaultRegistryMatch(image), expected, image);
  });
  test('the fallback applies only when no other key of the same group matched', () => {
    const k = keyringOf(
      JSON.stringify({
        'https://index.docker.io/v1/': { auth: authField('hub', 'h') },
        'docker.io': { auth: authField('dio', 'd') },
      }),
    );
    assert.deepEqual(
      k.lookup('nginx').map((m) => m.auth.username),
      ['dio'],
    );
    const ex = k.explain('nginx');
    assert.deepEqual(
      ex.nearMisses.map((n) => [n.key, n.reason.kind]),
      [['index.docker.io', 'fallback-shadowed']],
    );
  });
  test('lookup(image) normalizes the image with kubelet ParseImageName', () => {
    const k = keyringOf(hub);
    const m = k.lookup('nginx:1.25');
    assert.equal(m[0]?.fallback, true);
    assert.throws(
      () => k.lookup('not a valid image'),
      (e: unknown) => (e as { code?: string }).code === 'INVALID_REFERENCE_FORMAT',
    );
  });
});

describe('ordering (upstream TestDockerKeyringLookup, TestIssue3797)', () => {
  const k = new Keyring().add(
    [
      entry('bar.example.com/pong', 'grace', 'squash', 'grace@example.com'),
      entry('bar.example.com', 'ada', 'smash', 'ada@example.com'),
    ],
    FLAG,
  );
  const cases: Array<[string, string[]]> = [
    ['bar.example.com', ['ada']],
    ['bar.example.com/pong', ['grace', 'ada']],
    ['bar.example.com/ping', ['ada']],
    ['bar.example.com/pongz', ['grace', 'ada']],
    ['bar.example.com/pong/pang', ['grace', 'ada']],
    ['example.com', []],
    ['foo.example.com', []],
  ];
  for (const [image, users] of cases) {
    test(`${image} → ${users.join(', ') || 'none'}`, () => {
      assert.deepEqual(
        k.lookupRepository(image).map((m) => m.auth.username),
        users,
      );
    });
  }
  test('https://quay.io/v1/ applies to quay.io and everything below', () => {
    const q = new Keyring().add([entry('https://quay.io/v1/', 'rex', 'tiny arms', 'rex@example.com')], FLAG);
    for (const image of ['quay.io', 'quay.io/foo', 'quay.io/foo/bar']) {
      const m = q.lookupRepository(image);
      assert.equal(m.length, 1, image);
      assert.equal(m[0]?.auth.password?.reveal(), 'tiny arms');
    }
  });
  test('reverse byte order of normalized keys: more specific paths and literal labels first', () => {
    const r = new Keyring().add(
      [
        entry('*.example.com', 'star', 'x'),
        entry('a.example.com', 'literal', 'x'),
        entry('a.example.com/team', 'team', 'x'),
        entry('a.example.com/team/app', 'app', 'x'),
      ],
      FLAG,
    );
    assert.deepEqual(
      r.lookupRepository('a.example.com/team/app').map((m) => m.auth.username),
      ['app', 'team', 'literal', 'star'],
    );
  });
  test('credentials under one normalized key keep insertion order', () => {
    const r = new Keyring().add(
      [
        entry('https://reg.io/v2/', 'first', 'x'),
        entry('reg.io', 'second', 'x'),
        entry('http://reg.io/', 'third', 'x'),
      ],
      FLAG,
    );
    const m = r.lookupRepository('reg.io/app');
    assert.deepEqual(
      m.map((x) => x.auth.username),
      ['first', 'second', 'third'],
    );
    assert.deepEqual(
      m.map((x) => x.entryKey),
      ['https://reg.io/v2/', 'reg.io', 'http://reg.io/'],
    );
  });
  test('groups: pod Secrets, then node config and --docker-config, then plugins; each sorts and falls back on its own', () => {
    const r = new Keyring();
    r.add([entry('reg.io', 'plugin', 'x')], { kind: 'plugin', plugin: 'p' });
    r.add([entry('reg.io/team/app', 'node-specific', 'x')], { kind: 'node', file: '/n' });
    r.add([entry('reg.io', 'secret', 'x')], { kind: 'secret', namespace: 'ns', name: 's' });
    r.add([entry('reg.io/team', 'flag', 'x')], { kind: 'flag', file: '/f' });
    r.add([entry('reg.io', 'sa', 'x')], {
      kind: 'service-account',
      namespace: 'ns',
      name: 's2',
      serviceAccount: 'default',
    });
    assert.deepEqual(
      r.lookupRepository('reg.io/team/app').map((m) => m.auth.username),
      ['secret', 'sa', 'node-specific', 'flag', 'plugin'],
    );
  });
});

describe('key normalization (BasicDockerKeyring.Add)', () => {
  const cases: Array<[string, string]> = [
    ['https://index.docker.io/v1/', 'index.docker.io'],
    ['index.docker.io', 'index.docker.io'],
    ['registry.io/v2/team', 'registry.io/team'],
    ['http://reg:5000', 'reg:5000'],
    ['http://reg:5000/', 'reg:5000'],
    ['reg.io/team/', 'reg.io/team/'],
    ['reg.io/v1', 'reg.io/v1'],
    ['https://reg.io/v1/team/app', 'reg.io/team/app'],
    ['reg.io?query#frag', 'reg.io'],
    ['user:pw@reg.io/x', 'reg.io/x'],
    ['reg.io/a%20b', 'reg.io/a b'],
    ['[::1]:5000/x', '[::1]:5000/x'],
  ];
  for (const [input, key] of cases) {
    test(`${input} → ${key}`, () => assert.deepEqual(normalizeKeyringKey(input), { key }));
  }
  const invalid: Array<[string, string]> = [
    ['%invalid%', 'parse "https://%invalid%": invalid URL escape "%in"'],
    ['reg.io:port', 'parse "https://reg.io:port": invalid port ":port" after host'],
    ['reg io', 'parse "https://reg io": invalid character " " in host name'],
    // Go's url.Error quotes with %q: a control character is written \x01 (JSON would write \u0001).
    ['reg.io/\u0001', 'parse "https://reg.io/\\x01": net/url: invalid control character in URL'],
  ];
  for (const [input, error] of invalid) {
    test(`invalid: ${JSON.stringify(input)}`, () => assert.deepEqual(normalizeKeyringKey(input), { error }));
  }
  test('invalid keys are ignored by lookup and reported by explain', () => {
    const k = new Keyring().add([entry('reg io', 'bad', 'x'), entry('reg.io', 'good', 'x')], FLAG);
    assert.deepEqual(
      k.lookupRepository('reg.io/app').map((m) => m.auth.username),
      ['good'],
    );
    assert.deepEqual(
      k.explainRepository('reg.io/app').nearMisses.map((n) => n.reason.kind),
      ['invalid-key'],
    );
  });
});

describe('seed page: Interpretation of config.json', () => {
  const glob = keyringOf(
    configJson({ 'my-registry.example/images': ['u1', 'p1'], '*.my-registry.example/images': ['u2', 'p2'] }),
  );
  for (const image of [
    'my-registry.example/images',
    'my-registry.example/images/my-image',
    'my-registry.example/images/another-image',
    'sub.my-registry.example/images/my-image',
  ]) {
    test(`matches ${image}`, () => assert.equal(glob.lookupRepository(image).length, 1));
  }
  for (const image of [
    'a.sub.my-registry.example/images/my-image',
    'a.b.sub.my-registry.example/images/my-image',
  ]) {
    test(`does not match ${image}`, () => {
      assert.deepEqual(glob.lookupRepository(image), []);
      const ex = glob.explainRepository(image);
      assert.ok(ex.nearMisses.some((n) => n.reason.kind === 'label-count'));
    });
  }
  test('the glob rules of the page', () => {
    assert.notEqual(matchKey('*.kubernetes.io', 'kubernetes.io'), undefined);
    assert.equal(matchKey('*.kubernetes.io', 'abc.kubernetes.io'), undefined);
    assert.notEqual(matchKey('*.*.kubernetes.io', 'abc.kubernetes.io'), undefined);
    assert.equal(matchKey('*.*.kubernetes.io', 'abc.def.kubernetes.io'), undefined);
    assert.equal(matchKey('prefix.*.io', 'prefix.kubernetes.io'), undefined);
    assert.equal(matchKey('*-good.kubernetes.io', 'prefix-good.kubernetes.io'), undefined);
  });
  test('two entries for different paths: both tried, the more specific first', () => {
    const k = keyringOf(
      configJson({
        'my-registry.example/images': ['outer', 'p1'],
        'my-registry.example/images/subpath': ['inner', 'p2'],
      }),
    );
    assert.deepEqual(
      k.lookup('my-registry.example/images/subpath/my-image').map((m) => [m.key, m.auth.username]),
      [
        ['my-registry.example/images/subpath', 'inner'],
        ['my-registry.example/images', 'outer'],
      ],
    );
  });
});

describe('explain: near misses and reasons', () => {
  const k = keyringOf(
    JSON.stringify({
      'reg.example.com:5000': { auth: authField('port', 'x') },
      'reg.example.com/team/': { auth: authField('slash', 'x') },
      'reg.example.com/other': { auth: authField('path', 'x') },
      '*.*.example.com': { auth: authField('glob', 'x') },
      'oci://reg.example.com': { auth: authField('scheme', 'x') },
      'REG.example.com': { auth: authField('case', 'x') },
      'quay.io': { auth: authField('unrelated', 'x') },
    }),
  );
  const ex = k.explainRepository('reg.example.com/team');
  const reasons = Object.fromEntries(ex.nearMisses.map((n) => [n.entryKey, n.reason]));
  test('port', () =>
    assert.deepEqual(reasons['reg.example.com:5000'], { kind: 'port', keyPort: '5000', imagePort: '' }));
  test('trailing slash', () => {
    const r = reasons['reg.example.com/team/'];
    assert.equal(r?.kind, 'path-prefix');
    assert.equal(r?.kind === 'path-prefix' && r.trailingSlash, true);
  });
  test('path prefix', () => assert.equal(reasons['reg.example.com/other']?.kind, 'path-prefix'));
  test('glob label count', () =>
    assert.deepEqual(reasons['*.*.example.com'], { kind: 'label-count', keyLabels: 4, imageLabels: 3 }));
  test('scheme', () =>
    assert.deepEqual(reasons['oci://reg.example.com'], { kind: 'scheme', scheme: 'oci://' }));
  test('case', () =>
    assert.equal(reasons['REG.example.com']?.kind === 'label' && reasons['REG.example.com'].caseOnly, true));
  test('unrelated keys are left out unless all is asked', () => {
    assert.equal(reasons['quay.io'], undefined);
    assert.ok(
      k
        .explainRepository('reg.example.com/team', { all: true })
        .nearMisses.some((n) => n.entryKey === 'quay.io'),
    );
  });
  test('every near miss has a message', () => {
    for (const n of ex.nearMisses) assert.ok(n.message.length > 10, n.entryKey);
  });
});
