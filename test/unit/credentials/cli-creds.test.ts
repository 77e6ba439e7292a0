/**
 * `kimg creds match` / `kimg creds explain`, and the canary rule: a password placed in every credential
 * source never appears in any output, error or warning, whatever the format.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  loadDockerConfigFile,
  loadNodeDockerConfig,
  lookupPullCredentials,
  PluginManager,
  readKubernetesObjects,
  resolvePodPullSecrets,
  tryEachCredential,
} from '../../../src/credentials/index.js';
import { isKimgError, KimgError } from '../../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { authField, configJson, kimg, writeScript } from './helpers.js';

const CANARY = 'kimgCANARY-pw-7f3a9c1e5b2d4f60';
const V1 = 'credentialprovider.kubelet.k8s.io/v1';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Every form the canary could leak in. */
const leakForms = (user: string): string[] => [
  CANARY,
  b64(CANARY),
  authField(user, CANARY),
  b64(`"${CANARY}"`).slice(4, 20),
];

describe('kimg creds', () => {
  let dir: string;
  let home: string;
  let root: string;
  let bin: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    dir = await makeTempDir('creds-cli-');
    home = join(dir, 'home');
    root = join(dir, 'root');
    bin = join(dir, 'bin');
    await mkdir(join(home, '.docker'), { recursive: true });
    await mkdir(root, { recursive: true });
    await mkdir(bin, { recursive: true });
    env = { HOME: home, PATH: process.env.PATH ?? '/usr/bin:/bin' };
    // (c) node-wide config in $HOME/.docker/config.json
    await writeFile(
      join(home, '.docker', 'config.json'),
      configJson({
        'reg.example.com': ['node-user', CANARY],
        'https://index.docker.io/v1/': ['hub-user', CANARY],
      }),
    );
    // --docker-config
    await writeFile(
      join(dir, 'flag.json'),
      JSON.stringify({
        auths: {
          'reg.example.com/team': { username: 'flag-user', password: CANARY, email: 'x@y' },
          'reg.example.com:5000': { auth: authField('port-user', CANARY) },
        },
      }),
    );
    await writeFile(
      join(dir, 'broken.json'),
      `{"auths": {"reg.example.com": {"password": "${CANARY}", "auth": "${CANARY}"}}}`,
    );
    // (a)+(b) Secrets, a ServiceAccount and Pods
    const sec = (name: string, ns: string, type: string, key: string, payload: string): string =>
      `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: ${ns}, uid: uid-${name}}\ntype: ${type}\ndata:\n  ${key}: ${b64(payload)}\n`;
    await writeFile(
      join(dir, 'objects.yaml'),
      [
        'apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: app}\nspec:\n  containers: [{name: c, image: reg.example.com/team/app}]\n  imagePullSecrets: [{name: regcred}, {name: legacy}, {name: opaque}, {name: gone}]\n',
        'apiVersion: v1\nkind: Pod\nmetadata: {name: batch, namespace: app}\nspec:\n  serviceAccountName: builder\n  containers: [{name: c, image: reg.example.com/team/app}]\n',
        sec(
          'regcred',
          'app',
          'kubernetes.io/dockerconfigjson',
          '.dockerconfigjson',
          configJson({ 'reg.example.com/team/app': ['secret-user', CANARY] }),
        ),
        sec(
          'legacy',
          'app',
          'kubernetes.io/dockercfg',
          '.dockercfg',
          JSON.stringify({ '*.example.com': { username: 'legacy-user', password: CANARY } }),
        ),
        sec('opaque', 'app', 'Opaque', 'password', CANARY),
        sec(
          'sa-secret',
          'app',
          'kubernetes.io/dockerconfigjson',
          '.dockerconfigjson',
          configJson({ 'reg.example.com': ['sa-user', CANARY] }),
        ),
        'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: app}\nimagePullSecrets: [{name: sa-secret}]\n',
      ].join('---\n'),
    );
    await writeFile(
      join(dir, 'badsecret.yaml'),
      sec(
        'bad',
        'default',
        'kubernetes.io/dockerconfigjson',
        '.dockerconfigjson',
        `{"auths": {"r": {"password": "${CANARY}", "email": 1}}}`,
      ),
    );
    // (d) plugins: one answering with the canary, one failing and printing it on stderr
    await writeScript(
      bin,
      'good',
      `cat > /dev/null\necho '${JSON.stringify({ kind: 'CredentialProviderResponse', apiVersion: V1, cacheKeyType: 'Registry', cacheDuration: '1m0s', auth: { 'reg.example.com': { username: 'plugin-user', password: CANARY } } })}'`,
    );
    await writeScript(
      bin,
      'bad',
      `cat > /dev/null\necho "failed, password was ${CANARY}" >&2\necho '{"password": "${CANARY}"}'\nexit 1`,
    );
    await writeFile(
      join(dir, 'plugins.yaml'),
      `kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n` +
        ['good', 'bad']
          .map(
            (n) =>
              `  - name: ${n}\n    matchImages: ["*.example.com"]\n    defaultCacheDuration: 1m\n    apiVersion: ${V1}\n    env: [{name: SECRET_ENV, value: "${CANARY}"}]\n`,
          )
          .join(''),
    );
    await writeFile(
      join(dir, 'badplugins.yaml'),
      `kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n  - name: a/b\n    matchImages: ["%zz"]\n    apiVersion: ${V1}\n    env: [{name: SECRET_ENV, value: "${CANARY}"}]\n`,
    );
  });
  after(async () => {
    await removeTempDir(dir);
  });

  const base = (): string[] => ['--root-dir', root, '--docker-config', join(dir, 'flag.json')];

  test('match: pod Secrets, then node config and --docker-config, then plugins (table)', async () => {
    const r = await kimg(
      [
        'creds',
        'match',
        'reg.example.com/team/app:1.0',
        ...base(),
        '-f',
        join(dir, 'objects.yaml'),
        '--pod',
        'web',
        '--image-credential-provider-config',
        join(dir, 'plugins.yaml'),
        '--image-credential-provider-bin-dir',
        bin,
      ],
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^#\s+KEY\s+USERNAME\s+SOURCE$/);
    assert.deepEqual(
      lines.slice(1).map((l) => l.split(/\s{3,}/).slice(1, 3)),
      [
        ['reg.example.com/team/app', 'secret-user'],
        ['*.example.com', 'legacy-user'],
        ['reg.example.com/team', 'flag-user'],
        ['reg.example.com', 'node-user'],
        ['reg.example.com', 'plugin-user'],
      ],
    );
    assert.match(r.stderr, /warning: .*"app\/opaque".*type "Opaque"/);
    assert.match(r.stderr, /warning: Secret "app\/gone" referenced by the pod was not found/);
    assert.match(
      r.stderr,
      /warning: error execing credential provider plugin bad for image reg.example.com\/team\/app: exit status 1: failed, password was <redacted>/,
    );
  });

  test('match -o json: [{key, username, source}]', async () => {
    const r = await kimg(
      [
        'creds',
        'match',
        'reg.example.com/team/app',
        ...base(),
        '-f',
        join(dir, 'objects.yaml'),
        '--pod',
        'batch',
        '-o',
        'json',
      ],
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [
      {
        key: 'reg.example.com',
        username: 'sa-user',
        source: {
          kind: 'service-account',
          namespace: 'app',
          name: 'sa-secret',
          uid: 'uid-sa-secret',
          file: join(dir, 'objects.yaml'),
          serviceAccount: 'builder',
        },
      },
      {
        key: 'reg.example.com/team',
        username: 'flag-user',
        source: { kind: 'flag', file: join(dir, 'flag.json') },
      },
      {
        key: 'reg.example.com',
        username: 'node-user',
        source: { kind: 'node', file: join(home, '.docker', 'config.json') },
      },
    ]);
  });

  test('Docker Hub images use the index.docker.io key as fallback; no match means an anonymous pull', async () => {
    const hub = await kimg(['creds', 'match', 'nginx', '--root-dir', root, '-o', 'json'], env);
    assert.deepEqual(
      JSON.parse(hub.stdout).map((m: { key: string }) => m.key),
      ['index.docker.io'],
    );
    const none = await kimg(['creds', 'match', 'quay.io/x/y', '--root-dir', root], env);
    assert.equal(
      none.stdout,
      'No credentials match quay.io/x/y: the pull would be attempted without credentials.\n',
    );
    const noNode = await kimg(['creds', 'match', 'nginx', '--no-node-config', '-o', 'json'], env);
    assert.deepEqual(JSON.parse(noNode.stdout), []);
  });

  test('explain lists matches, near misses with reasons, and sources that gave nothing', async () => {
    const r = await kimg(
      [
        'creds',
        'explain',
        'reg.example.com/team',
        ...base(),
        '-f',
        join(dir, 'objects.yaml'),
        '--pod',
        'web',
        '-o',
        'json',
      ],
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    const data = JSON.parse(r.stdout);
    assert.equal(data.repository, 'reg.example.com/team');
    assert.deepEqual(
      data.matches.map((m: { key: string }) => m.key),
      ['*.example.com', 'reg.example.com/team', 'reg.example.com'],
    );
    const reasons = Object.fromEntries(
      data.nearMisses.map((n: { entryKey: string; reason: string }) => [n.entryKey, n.reason]),
    );
    assert.equal(reasons['reg.example.com/team/app'], 'path-prefix');
    assert.equal(reasons['reg.example.com:5000'], 'port');
    assert.deepEqual(
      data.problems.map((p: { code: string }) => p.code),
      ['SECRET_INVALID', 'SECRET_NOT_FOUND'],
    );
    assert.equal(
      data.nodeConfigSearch.find((s: { outcome: string }) => s.outcome === 'used').path,
      join(home, '.docker', 'config.json'),
    );
    const table = await kimg(
      [
        'creds',
        'explain',
        'reg.example.com/team',
        ...base(),
        '-f',
        join(dir, 'objects.yaml'),
        '--pod',
        'web',
      ],
      env,
    );
    assert.match(table.stdout, /Credentials tried, in order:/);
    assert.match(table.stdout, /Near misses:\n/);
    assert.match(table.stdout, /reg\.example\.com:5000 .* port: the key names port 5000, the image has none/);
  });

  test('usage errors: several pods without --pod, unknown pod, half the plugin flags', async () => {
    const many = await kimg(
      ['creds', 'match', 'reg.example.com/x', '-f', join(dir, 'objects.yaml'), '--no-node-config'],
      env,
    );
    assert.equal(many.status, 2);
    assert.match(many.stderr, /choose one with --pod/);
    const unknown = await kimg(
      [
        'creds',
        'match',
        'reg.example.com/x',
        '-f',
        join(dir, 'objects.yaml'),
        '--pod',
        'nope',
        '--no-node-config',
      ],
      env,
    );
    assert.equal(unknown.status, 3);
    const half = await kimg(
      [
        'creds',
        'match',
        'reg.example.com/x',
        '--image-credential-provider-config',
        join(dir, 'plugins.yaml'),
        '--no-node-config',
      ],
      env,
    );
    assert.equal(half.status, 2);
    const badImage = await kimg(['creds', 'match', 'Bad/Image', '--no-node-config'], env);
    assert.equal(badImage.status, 2);
  });

  test('canary: the password in every source never appears in any output or error', async () => {
    const runs: string[][] = [];
    const sources = [
      ...base(),
      '-f',
      join(dir, 'objects.yaml'),
      '--image-credential-provider-config',
      join(dir, 'plugins.yaml'),
      '--image-credential-provider-bin-dir',
      bin,
    ];
    for (const verb of ['match', 'explain']) {
      for (const format of ['table', 'json', 'yaml']) {
        for (const pod of ['web', 'batch']) {
          for (const image of ['reg.example.com/team/app', 'reg.example.com:5000/x', 'nginx', 'other.io/x']) {
            runs.push(['creds', verb, image, ...sources, '--pod', pod, '-o', format]);
          }
        }
      }
      runs.push(
        ['creds', verb, 'reg.example.com/x', '--all', ...sources, '--pod', 'web'].filter(
          (a) => verb === 'explain' || a !== '--all',
        ),
      );
      // Failing inputs: invalid docker config, invalid Secret payload, invalid plugin config.
      runs.push(['creds', verb, 'reg.example.com/x', '--docker-config', join(dir, 'broken.json')]);
      runs.push(['creds', verb, 'reg.example.com/x', '-f', join(dir, 'badsecret.yaml')]);
      runs.push([
        'creds',
        verb,
        'reg.example.com/x',
        '--image-credential-provider-config',
        join(dir, 'badplugins.yaml'),
        '--image-credential-provider-bin-dir',
        bin,
      ]);
    }
    let failures = 0;
    for (const args of runs) {
      const r = await kimg(args, env);
      if (r.status !== 0) failures++;
      for (const form of leakForms('x')) {
        assert.ok(!r.stdout.includes(form), `stdout of ${args.join(' ')} leaks the canary`);
        assert.ok(!r.stderr.includes(form), `stderr of ${args.join(' ')} leaks the canary`);
      }
    }
    assert.equal(failures, 6, 'the six failing inputs fail');
  });

  test('canary: library values, errors and inspection never show the password', async () => {
    const objects = await readKubernetesObjects([join(dir, 'objects.yaml')]);
    const web = objects.find((o) => o.kind === 'Pod' && o.name === 'web')!;
    const podSecrets = resolvePodPullSecrets(web, objects);
    const plugins = await PluginManager.load({
      configPath: join(dir, 'plugins.yaml'),
      binDir: bin,
      environ: env,
    });
    const lookup = await lookupPullCredentials(
      'reg.example.com/team/app',
      {
        podSecrets,
        node: await loadNodeDockerConfig({ env, rootDir: root }),
        dockerConfigs: [await loadDockerConfigFile(join(dir, 'flag.json'))],
        plugins,
      },
      { explain: true, all: true },
    );
    assert.ok(lookup.matches.length >= 5);
    assert.ok(lookup.matches.every((m) => m.auth.password?.reveal() === CANARY));
    for (const text of [
      JSON.stringify(lookup),
      inspect(lookup, { depth: 20 }),
      String(lookup.matches[0]?.auth.password),
    ]) {
      for (const form of leakForms('x')) assert.ok(!text.includes(form));
    }
    const errors: unknown[] = [];
    for (const f of [
      () => loadDockerConfigFile(join(dir, 'broken.json')),
      () =>
        readKubernetesObjects([join(dir, 'badsecret.yaml')]).then((o) =>
          resolvePodPullSecrets({ kind: 'Pod', spec: { imagePullSecrets: [{ name: 'bad' }] } }, o, {
            strict: true,
          }),
        ),
    ]) {
      await f().then(
        () => assert.fail('expected an error'),
        (e: unknown) => errors.push(e),
      );
    }
    // Not strict: the keyring error is kept for the pod's pulls, just as redacted.
    const kept = resolvePodPullSecrets(
      { kind: 'Pod', spec: { imagePullSecrets: [{ name: 'bad' }] } },
      await readKubernetesObjects([join(dir, 'badsecret.yaml')]),
    ).keyringError;
    errors.push(kept);
    for (const e of errors) {
      assert.ok(isKimgError(e));
      for (const text of [(e as Error).message, JSON.stringify(e), inspect(e, { depth: 20 })]) {
        for (const form of leakForms('x')) assert.ok(!text.includes(form), text);
      }
    }
  });
});

describe('tryEachCredential (kubelet credential loop)', () => {
  const m = (key: string) => ({
    key,
    entryKey: key,
    auth: { username: key },
    source: { kind: 'flag' as const, file: 'f' },
  });
  test('no match: one attempt without credentials', async () => {
    const seen: Array<string | undefined> = [];
    const r = await tryEachCredential([], async (c) => {
      seen.push(c?.key);
      return 'ok';
    });
    assert.deepEqual(seen, [undefined]);
    assert.equal(r.result, 'ok');
  });
  test('each credential in order until one succeeds; no anonymous attempt', async () => {
    const seen: string[] = [];
    const r = await tryEachCredential([m('a'), m('b'), m('c')], async (c) => {
      seen.push(c!.key);
      if (c!.key !== 'b') throw new KimgError('UNAUTHORIZED', `401 for ${c!.key}`);
      return 'pulled';
    });
    assert.deepEqual(seen, ['a', 'b']);
    assert.equal(r.credential?.key, 'b');
  });
  test('all refused: NO_CREDENTIALS_ACCEPTED naming every key tried', async () => {
    await assert.rejects(
      tryEachCredential([m('a'), m('b')], async (c) => {
        throw new KimgError('UNAUTHORIZED', `401 for ${c!.key}`);
      }),
      (e: unknown) =>
        isKimgError(e, 'NO_CREDENTIALS_ACCEPTED') &&
        e.message.includes('"a (docker-config f)"') &&
        e.message.includes('"b (docker-config f)"') &&
        e.message.endsWith('[401 for a, 401 for b]'),
    );
    await assert.rejects(
      tryEachCredential([m('a')], async () => {
        throw new KimgError('DENIED', 'denied');
      }),
      (e: unknown) => isKimgError(e, 'DENIED'),
    );
    await assert.rejects(
      tryEachCredential([m('a'), m('b')], async (c) => {
        throw c!.key === 'a'
          ? new KimgError('UNAUTHORIZED', 'x')
          : new KimgError('REGISTRY_UNAVAILABLE', 'down');
      }),
      (e: unknown) => isKimgError(e, 'REGISTRY_UNAVAILABLE'),
    );
  });
});
