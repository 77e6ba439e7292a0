/**
 * Docker config parsing (upstream `pkg/credentialprovider/config_test.go`: TestDockerConfigJsonJSONDecode,
 * TestDockerConfigJSONDecode, TestDockerConfigEntryJSONDecode, TestDecodeDockerConfigFieldAuth,
 * TestReadDockerConfigFile) plus Go `encoding/json` semantics, errors and kubelet's node search.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CachedNodeDockerConfig,
  credentialHash,
  loadDockerConfigFile,
  loadNodeDockerConfig,
  nodeDockerConfigSearchPaths,
  parseDockerConfig,
  Secret,
  type DockerConfig,
} from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { FakeClock } from './helpers.js';

function plain(c: DockerConfig): Array<Record<string, string | undefined>> {
  return c.entries.map((e) => ({
    key: e.key,
    username: e.auth.username,
    password: e.auth.password?.reveal(),
    email: e.auth.email,
  }));
}

describe('config.json and .dockercfg decoding (upstream tables)', () => {
  test('config.json with two entries', () => {
    const c = parseDockerConfig(
      '{"auths": {"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}, "http://bar.example.com":{"username": "bar", "password": "baz", "email": "bar@example.com"}}}',
    );
    assert.equal(c.format, 'config.json');
    assert.deepEqual(plain(c), [
      { key: 'http://foo.example.com', username: 'foo', password: 'bar', email: 'foo@example.com' },
      { key: 'http://bar.example.com', username: 'bar', password: 'baz', email: 'bar@example.com' },
    ]);
  });
  test('legacy flat map', () => {
    const c = parseDockerConfig(
      '{"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}}',
    );
    assert.equal(c.format, 'dockercfg');
    assert.deepEqual(plain(c), [
      { key: 'http://foo.example.com', username: 'foo', password: 'bar', email: 'foo@example.com' },
    ]);
  });
  const entries: Array<[string, Record<string, string | undefined> | 'fail']> = [
    [
      '{"username": "foo", "password": "bar", "email": "foo@example.com"}',
      { username: 'foo', password: 'bar', email: 'foo@example.com' },
    ],
    [
      '{"auth": "Zm9vOmJhcg==", "email": "foo@example.com"}',
      { username: 'foo', password: 'bar', email: 'foo@example.com' },
    ],
    [
      '{"username": "foo", "password": "bar", "auth": "cGluZzpwb25n", "email": "foo@example.com"}',
      { username: 'ping', password: 'pong', email: 'foo@example.com' },
    ],
    ['{"auth": "pants", "email": "foo@example.com"}', 'fail'],
    ['{"email": false}', 'fail'],
    ['{"auth": "cGFudHM="}', 'fail'], // base64 fine, no colon
    ['{"auth": "Zm9vOmJhcgo="}', { username: 'foo', password: 'bar\n', email: undefined }],
    ['{"auth": "Zm9vOmJhcg"}', { username: 'foo', password: 'bar', email: undefined }], // unpadded → raw encoding
    ['{"auth": "Zm9vOmJhcg="}', 'fail'], // ends in = → padded decoding, wrong length
    ['{"auth": "Zm9vOmJh\\ncg=="}', { username: 'foo', password: 'bar', email: undefined }], // Go ignores newlines
    ['{"auth": "Zm9v OmJhcg=="}', 'fail'],
    ['{"auth": "Zm9vOmJhcjpiYXo="}', { username: 'foo', password: 'bar:baz', email: undefined }], // split at the first colon
    ['{"auth": "OnA="}', { username: undefined, password: 'p', email: undefined }],
    ['{"auth": ""}', { username: undefined, password: undefined, email: undefined }],
    ['null', { username: undefined, password: undefined, email: undefined }],
    ['"x"', 'fail'],
    ['{"username": null, "password": "p"}', { username: undefined, password: 'p', email: undefined }],
  ];
  for (const [json, want] of entries) {
    test(`entry ${json}`, () => {
      const text = `{"auths": {"reg.io": ${json}}}`;
      if (want === 'fail') {
        assert.throws(
          () => parseDockerConfig(text, { file: 'f.json' }),
          (e: unknown) =>
            isKimgError(e, 'DOCKER_CONFIG_INVALID') &&
            e.details.file === 'f.json' &&
            e.details.key === 'reg.io',
        );
        return;
      }
      const [e] = plain(parseDockerConfig(text));
      assert.deepEqual(e, { key: 'reg.io', ...want });
    });
  }
});

describe('Go encoding/json semantics', () => {
  test('field and member names match case-insensitively, later duplicates win', () => {
    const c = parseDockerConfig('{"AUTHS": {"r": {"USERNAME": "a", "Password": "b", "username": "c"}}}');
    assert.deepEqual(plain(c), [{ key: 'r', username: 'c', password: 'b', email: undefined }]);
    // U+017F (ſ) folds to s, as in Go.
    assert.equal(parseDockerConfig('{"auths": {"r": {"uſername": "x"}}}').entries[0]?.auth.username, 'x');
  });
  test('an empty "Auth" after "auth" disables the auth field', () => {
    const c = parseDockerConfig(
      `{"auths": {"r": {"auth": "${Buffer.from('a:b').toString('base64')}", "Auth": "", "username": "u"}}}`,
    );
    assert.equal(c.entries[0]?.auth.username, 'u');
  });
  test('a repeated key keeps its first position and its last value', () => {
    const c = parseDockerConfig(
      '{"auths": {"a": {"username": "1"}, "b": {"username": "2"}, "a": {"username": "3"}}}',
    );
    assert.deepEqual(
      c.entries.map((e) => [e.key, e.auth.username]),
      [
        ['a', '3'],
        ['b', '2'],
      ],
    );
  });
  test('repeated "auths" objects merge; "auths": null clears', () => {
    assert.equal(parseDockerConfig('{"auths": {"a": {}}, "auths": {"b": {}}}').entries.length, 2);
    assert.equal(parseDockerConfig('{"auths": {"a": {}}, "auths": null}').entries.length, 0);
  });
  test('null and empty documents are empty configs; unknown members are ignored', () => {
    assert.equal(parseDockerConfig('null').entries.length, 0);
    assert.equal(parseDockerConfig('{}').entries.length, 0);
    assert.equal(
      parseDockerConfig('{"auths": {}, "credsStore": "desktop", "credHelpers": {"x": "y"}, "psFormat": "t"}')
        .entries.length,
      0,
    );
  });
  test('HttpHeaders must be a map of strings', () => {
    assert.equal(
      parseDockerConfig('{"auths": {}, "HttpHeaders": {"User-Agent": "x", "N": null}}').entries.length,
      0,
    );
    assert.throws(
      () => parseDockerConfig('{"auths": {}, "HttpHeaders": {"N": 1}}'),
      (e: unknown) => isKimgError(e, 'DOCKER_CONFIG_INVALID'),
    );
  });
  test('identitytoken and registrytoken are kept as Secrets', () => {
    const e = parseDockerConfig(
      '{"auths": {"r": {"username": "<token>", "identitytoken": "idt", "registrytoken": "rt"}}}',
    ).entries[0];
    assert.equal(e?.auth.identityToken?.reveal(), 'idt');
    assert.equal(e?.auth.registryToken?.reveal(), 'rt');
    assert.equal(String(e?.auth.identityToken), '<redacted>');
  });
  test('format detection', () => {
    assert.equal(parseDockerConfig('{"r": {"auth": "YTpi"}}').format, 'dockercfg');
    assert.equal(parseDockerConfig('{"auths": {}}').format, 'config.json');
    assert.equal(parseDockerConfig('{"credsStore": "desktop"}').format, 'config.json');
    assert.equal(parseDockerConfig('{"auths": {"r": {}}}', { file: '/x/.dockercfg' }).format, 'dockercfg');
    // A config.json read as .dockercfg (kubelet does this by file name) gives one empty entry "auths".
    assert.deepEqual(
      parseDockerConfig('{"auths": {"r": {}}}', { format: 'dockercfg' }).entries.map((e) => e.key),
      ['auths'],
    );
  });
  test('errors name the file and key and never the secret', () => {
    const secret = 'S3cr3t-Pa55word-zzz';
    const texts = [
      `{"auths": {"reg.io": {"password": "${secret}", "email": 5}}}`,
      `{"auths": {"reg.io": {"auth": "${secret}"}}}`,
      `{"auths": {"reg.io": {"password": "${secret}"}}`,
      `{"auths": {"reg.io": {"password": "${secret}" "x": 1}}}`,
      `{"auths": "${secret}"}`,
      `["${secret}"]`,
    ];
    for (const t of texts) {
      assert.throws(
        () => parseDockerConfig(t, { file: '/etc/cfg.json' }),
        (e: unknown) =>
          isKimgError(e, 'DOCKER_CONFIG_INVALID') &&
          e.message.includes('/etc/cfg.json') &&
          !e.message.includes(secret) &&
          !JSON.stringify(e).includes(secret),
        t,
      );
    }
  });
});

describe('files and the node-wide search', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('creds-');
  });
  after(async () => {
    await removeTempDir(dir);
  });

  test('loadDockerConfigFile: missing file is FILE_NOT_FOUND, .dockercfg detected by name', async () => {
    await assert.rejects(loadDockerConfigFile(join(dir, 'nope.json')), (e: unknown) =>
      isKimgError(e, 'FILE_NOT_FOUND'),
    );
    const p = join(dir, '.dockercfg');
    await writeFile(p, '{"reg.io": {"auth": "YTpi"}}');
    const c = await loadDockerConfigFile(p);
    assert.equal(c.format, 'dockercfg');
    assert.equal(c.file, p);
    assert.equal(c.entries[0]?.auth.username, 'a');
  });

  test('search order: root dir, cwd, $HOME/.docker, /.docker for config.json; then .dockercfg in root, cwd, $HOME, /', () => {
    const paths = nodeDockerConfigSearchPaths(
      { HOME: '/home/me' },
      { rootDir: '/var/lib/kubelet', cwd: '/work' },
    );
    assert.deepEqual(paths, [
      { path: '/var/lib/kubelet/config.json', format: 'config.json' },
      { path: '/work/config.json', format: 'config.json' },
      { path: '/home/me/.docker/config.json', format: 'config.json' },
      { path: '/.docker/config.json', format: 'config.json' },
      { path: '/var/lib/kubelet/.dockercfg', format: 'dockercfg' },
      { path: '/work/.dockercfg', format: 'dockercfg' },
      { path: '/home/me/.dockercfg', format: 'dockercfg' },
      { path: '/.dockercfg', format: 'dockercfg' },
    ]);
    // No HOME: Go's empty home directory makes the paths relative to the working directory.
    assert.equal(nodeDockerConfigSearchPaths({}, { cwd: '/work' })[2]?.path, '/work/.docker/config.json');
  });

  test('the first file that exists and parses wins; invalid ones are skipped (TestReadDockerConfigFile)', async () => {
    const root = join(dir, 'root');
    const cwd = join(dir, 'cwd');
    const home = join(dir, 'home');
    await mkdir(root, { recursive: true });
    await mkdir(join(home, '.docker'), { recursive: true });
    await mkdir(cwd, { recursive: true });
    await writeFile(join(root, 'config.json'), '{"auths": {"r": {"auth": "pants"}}}'); // invalid: skipped
    await writeFile(
      join(home, '.docker', 'config.json'),
      '{ "auths": { "http://foo.example.com":{"auth":"Zm9vOmJhcgo=","email":"foo@example.com"}}}',
    );
    await writeFile(join(root, '.dockercfg'), '{"legacy.io": {"auth": "YTpi"}}');
    const r = await loadNodeDockerConfig({ env: { HOME: home }, rootDir: root, cwd });
    assert.equal(r.config?.file, join(home, '.docker', 'config.json'));
    assert.deepEqual(
      r.searched.map((s) => s.outcome),
      [
        'invalid',
        'missing',
        'used',
        'not-reached',
        'not-reached',
        'not-reached',
        'not-reached',
        'not-reached',
      ],
    );
    assert.ok(!(r.searched[0]?.reason ?? '').includes('pants'));
    // Without any config.json the legacy file is used.
    const r2 = await loadNodeDockerConfig({
      env: { HOME: join(dir, 'nohome') },
      rootDir: root,
      cwd,
      searchPaths: nodeDockerConfigSearchPaths({ HOME: join(dir, 'nohome') }, { rootDir: root, cwd }).slice(
        1,
      ),
    });
    assert.equal(r2.config?.format, 'dockercfg');
    assert.equal(r2.config?.entries[0]?.key, 'legacy.io');
  });

  test('node config is cached for 5 minutes (CachingDockerConfigProvider)', async () => {
    const root = join(dir, 'cache-root');
    await mkdir(root, { recursive: true });
    const clock = new FakeClock();
    const opts = { env: { HOME: join(dir, 'none') }, rootDir: root, cwd: join(dir, 'none'), clock };
    const cache = new CachedNodeDockerConfig(opts);
    assert.equal((await cache.get()).config, undefined);
    await writeFile(join(root, 'config.json'), '{"auths": {"r": {"auth": "YTpi"}}}');
    clock.advance(4 * 60 * 1000);
    assert.equal((await cache.get()).config, undefined);
    clock.advance(61 * 1000);
    assert.equal((await cache.get()).config?.entries.length, 1);
  });
});

describe('credentialHash', () => {
  test("sha256 of Go's json.Marshal(AuthConfig): username, password, email; empty fields omitted", async () => {
    const { createHash } = await import('node:crypto');
    const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
    assert.equal(
      credentialHash({ username: 'u', password: new Secret('p'), email: 'e' }),
      sha('{"username":"u","password":"p","email":"e"}'),
    );
    assert.equal(
      credentialHash({ username: 'u', password: new Secret('p') }),
      sha('{"username":"u","password":"p"}'),
    );
    assert.equal(credentialHash({}), sha('{}'));
    // Go escapes <, >, & in JSON strings.
    assert.equal(
      credentialHash({ username: 'a<b', password: new Secret('&') }),
      sha('{"username":"a\\u003cb","password":"\\u0026"}'),
    );
    assert.equal(credentialHash({ username: 'u', serverAddress: 'x' }), sha('{"username":"u"}'));
  });
});
