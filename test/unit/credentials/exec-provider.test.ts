/**
 * Exec credential provider plugins with real plugin processes: small `sh` scripts written by the tests
 * (upstream `pkg/credentialprovider/plugin/plugin_test.go` covers the same cache, single-flight and
 * response rules with a fake exec).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ExecCredentialProvider,
  parseCredentialProviderResponse,
  PluginManager,
  redactPluginStderr,
  type CredentialProviderSpec,
  type ExecProviderOptions,
  type ServiceAccountInfo,
} from '../../../src/credentials/index.js';
import { KimgError, isKimgError } from '../../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { FakeClock, writeScript } from './helpers.js';

const V1 = 'credentialprovider.kubelet.k8s.io/v1';
const MIN_NS = 60_000_000_000n;

function response(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    kind: 'CredentialProviderResponse',
    apiVersion: V1,
    cacheKeyType: 'Image',
    cacheDuration: '10m0s',
    auth: { 'reg.io': { username: 'plugin-user', password: 'plugin-pass' } },
    ...over,
  });
}

describe('parseCredentialProviderResponse', () => {
  test('a full response', () => {
    const r = parseCredentialProviderResponse(
      response({
        cacheKeyType: 'Registry',
        cacheDuration: '6h0m0s',
        auth: { '*.dkr.ecr.*.amazonaws.com': { username: 'AWS', password: 'pw' }, 'b.io': {} },
      }),
      V1,
    );
    assert.equal(r.cacheKeyType, 'Registry');
    assert.equal(r.cacheDuration, 360n * MIN_NS);
    assert.deepEqual(
      r.auth.map((e) => [e.key, e.auth.username, e.auth.password?.reveal()]),
      [
        ['*.dkr.ecr.*.amazonaws.com', 'AWS', 'pw'],
        ['b.io', undefined, undefined],
      ],
    );
  });
  test('no cacheDuration leaves it to the provider default', () => {
    const r = parseCredentialProviderResponse(
      JSON.stringify({ kind: 'CredentialProviderResponse', apiVersion: V1, cacheKeyType: 'Global' }),
      V1,
    );
    assert.equal(r.cacheDuration, undefined);
    assert.deepEqual(r.auth, []);
  });
  const failures: Array<[string, string, string]> = [
    ['not JSON', 'password: hunter2-SECRET', 'error reading GVK from response'],
    [
      'apiVersion mismatch',
      response({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1beta1' }),
      `apiVersion from credential plugin response did not match expected apiVersion:${V1}, actual apiVersion:credentialprovider.kubelet.k8s.io/v1beta1`,
    ],
    [
      'wrong kind',
      response({ kind: 'CredentialProviderRequest' }),
      'error decoding credential provider plugin response from stdout',
    ],
    [
      'unknown field',
      response({ extra: 1 }),
      'error decoding credential provider plugin response from stdout',
    ],
    [
      'unknown auth field',
      response({ auth: { r: { username: 'u', password: 'hunter2-SECRET', token: 'x' } } }),
      'error decoding credential provider plugin response from stdout',
    ],
    [
      'wrong password type',
      response({ auth: { r: { password: ['hunter2-SECRET'] } } }),
      'error decoding credential provider plugin response from stdout',
    ],
    [
      'bad duration',
      response({ cacheDuration: '10 minutes' }),
      'error decoding credential provider plugin response from stdout',
    ],
    [
      'invalid cacheKeyType',
      response({ cacheKeyType: 'Pod' }),
      'credential provider plugin did not return a valid cacheKeyType: "Pod"',
    ],
    [
      'missing cacheKeyType',
      response({ cacheKeyType: undefined }),
      'credential provider plugin did not return a valid cacheKeyType: ""',
    ],
  ];
  for (const [name, stdout, msg] of failures) {
    test(name, () => {
      assert.throws(
        () => parseCredentialProviderResponse(stdout, V1, 'ecr'),
        (e: unknown) =>
          isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED') &&
          e.message.includes(msg) &&
          e.message.includes('"ecr"') &&
          !e.message.includes('hunter2'),
      );
    });
  }
  test('duplicate keys are rejected (strict decoding)', () => {
    const dup = `{"kind":"CredentialProviderResponse","apiVersion":"${V1}","cacheKeyType":"Image","cacheKeyType":"Image"}`;
    assert.throws(
      () => parseCredentialProviderResponse(dup, V1),
      (e: unknown) => isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED'),
    );
  });
});

describe('redactPluginStderr', () => {
  test('token-like runs and given values are replaced; plain words, hosts and paths survive', () => {
    const s = redactPluginStderr(
      'error: token eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJ4In0 rejected by sts.amazonaws.com for /etc/plugin/config pw=short1',
      ['short1'],
    );
    assert.equal(
      s,
      'error: token <redacted> rejected by sts.amazonaws.com for /etc/plugin/config pw=<redacted>',
    );
  });
});

describe('ExecCredentialProvider with real plugin processes', () => {
  let dir: string;
  let bin: string;
  before(async () => {
    dir = await makeTempDir('creds-plugin-');
    bin = join(dir, 'bin');
    await mkdir(bin);
  });
  after(async () => {
    await removeTempDir(dir);
  });

  /** A plugin that records stdin, args and env, counts runs, and prints RESPONSE. */
  async function recordingPlugin(
    name: string,
    responseJson: string,
    extra = '',
  ): Promise<{ count: () => Promise<number>; log: string }> {
    const log = join(dir, `${name}.log`);
    const respFile = join(dir, `${name}.response`);
    await writeFile(respFile, responseJson);
    await writeScript(
      bin,
      name,
      [
        `cat > '${log}.stdin'`,
        `printf '%s\\n' "$@" > '${log}.args'`,
        `printf '%s|%s' "$PLUGIN_MODE" "$HOME_MARK" > '${log}.env'`,
        `echo run >> '${log}'`,
        extra,
        `cat '${respFile}'`,
      ].join('\n'),
    );
    return {
      log,
      count: async () =>
        (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l === 'run').length,
    };
  }

  function provider(
    name: string,
    over: Partial<CredentialProviderSpec> = {},
    opts: Partial<ExecProviderOptions> = {},
  ): ExecCredentialProvider {
    return new ExecCredentialProvider(
      {
        name,
        matchImages: ['reg.io', '*.reg.io'],
        defaultCacheDuration: 5n * MIN_NS,
        apiVersion: V1,
        args: [],
        env: [],
        ...over,
      },
      {
        binDir: bin,
        clock: new FakeClock(),
        environ: { PATH: process.env.PATH ?? '/usr/bin:/bin', PLUGIN_MODE: 'base', HOME_MARK: 'kept' },
        ...opts,
      },
    );
  }

  test('request on stdin, args, env (configured values win), response parsed', async () => {
    const p = await recordingPlugin('basic', response());
    const prov = provider('basic', {
      args: ['--v=5', 'get'],
      env: [{ name: 'PLUGIN_MODE', value: 'configured' }],
    });
    const r = await prov.provide('reg.io/team/app');
    assert.equal(r.cached, false);
    assert.deepEqual(r.source, { kind: 'plugin', plugin: 'basic' });
    assert.deepEqual(
      r.entries.map((e) => [e.key, e.auth.username, e.auth.password?.reveal()]),
      [['reg.io', 'plugin-user', 'plugin-pass']],
    );
    assert.equal(
      await readFile(`${p.log}.stdin`, 'utf8'),
      `{"kind":"CredentialProviderRequest","apiVersion":"${V1}","image":"reg.io/team/app"}\n`,
    );
    assert.equal(await readFile(`${p.log}.args`, 'utf8'), '--v=5\nget\n');
    assert.equal(await readFile(`${p.log}.env`, 'utf8'), 'configured|kept');
  });

  test('images outside matchImages never run the plugin', async () => {
    const p = await recordingPlugin('nomatch', response());
    const r = await provider('nomatch').provide('other.io/app');
    assert.equal(r.entries.length, 0);
    assert.ok(r.skipped);
    assert.equal(await p.count(), 0);
  });

  test('a cached credential: one plugin run for two lookups, a new run after cacheDuration', async () => {
    const p = await recordingPlugin('cached', response({ cacheDuration: '10m0s' }));
    const clock = new FakeClock();
    const prov = provider('cached', {}, { clock });
    await prov.provide('reg.io/app');
    const second = await prov.provide('reg.io/app');
    assert.equal(second.cached, true);
    assert.equal(second.entries[0]?.auth.password?.reveal(), 'plugin-pass');
    assert.equal(await p.count(), 1);
    clock.advance(10 * 60 * 1000); // exactly at expiry: still valid (expired means after)
    await prov.provide('reg.io/app');
    assert.equal(await p.count(), 1);
    clock.advance(1);
    const third = await prov.provide('reg.io/app');
    assert.equal(third.cached, false);
    assert.equal(await p.count(), 2);
  });

  test('cacheKeyType Registry and Global share the answer across images', async () => {
    const reg = await recordingPlugin('registry', response({ cacheKeyType: 'Registry' }));
    const pr = provider('registry');
    await pr.provide('reg.io/a');
    assert.equal((await pr.provide('reg.io/b/c')).cached, true);
    assert.equal(await reg.count(), 1);
    const other = await pr.provide('x.reg.io/a');
    assert.equal(other.cached, false);
    assert.equal(await reg.count(), 2);

    const glob = await recordingPlugin('global', response({ cacheKeyType: 'Global' }));
    const pg = provider('global');
    await pg.provide('reg.io/a');
    assert.equal((await pg.provide('x.reg.io/other')).cached, true);
    assert.equal(await glob.count(), 1);
  });

  test("cacheDuration 0s is not cached; no cacheDuration uses the provider's default (0 = not cached)", async () => {
    const zero = await recordingPlugin('zero', response({ cacheDuration: '0s' }));
    const pz = provider('zero');
    await pz.provide('reg.io/a');
    await pz.provide('reg.io/a');
    assert.equal(await zero.count(), 2);

    const dflt = await recordingPlugin('default', response({ cacheDuration: undefined }));
    const clock = new FakeClock();
    const pd = provider('default', { defaultCacheDuration: MIN_NS }, { clock });
    await pd.provide('reg.io/a');
    assert.equal((await pd.provide('reg.io/a')).cached, true);
    clock.advance(60_001);
    assert.equal((await pd.provide('reg.io/a')).cached, false);
    assert.equal(await dflt.count(), 2);

    const none = await recordingPlugin('nodefault', response({ cacheDuration: undefined }));
    const pn = provider('nodefault', { defaultCacheDuration: 0n });
    await pn.provide('reg.io/a');
    await pn.provide('reg.io/a');
    assert.equal(await none.count(), 2);
  });

  test('single-flight: concurrent lookups of one image share one run', async () => {
    const gate = join(dir, 'sf.gate');
    const p = await recordingPlugin(
      'singleflight',
      response({ cacheDuration: '0s' }),
      `i=0; while [ ! -f '${gate}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done`,
    );
    const prov = provider('singleflight');
    const a = prov.provide('reg.io/app');
    const b = prov.provide('reg.io/app');
    // Let both calls reach the in-flight map, then release the plugin.
    await new Promise((r) => setTimeout(r, 200));
    await writeFile(gate, '');
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.entries.length, 1);
    assert.equal(rb.entries.length, 1);
    assert.equal(await p.count(), 1);
    assert.equal(prov.runs, 1);
  });

  test('timeout: the plugin is killed and the error names the plugin', async () => {
    const pidFile = join(dir, 'slow.pid');
    await writeScript(bin, 'slow', `echo $$ > '${pidFile}'\nexec sleep 30`);
    const prov = provider('slow', {}, { timeoutMs: 1000 });
    await assert.rejects(
      prov.provide('reg.io/app'),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED') &&
        e.message.startsWith(
          'error execing credential provider plugin slow for image reg.io/app: context deadline exceeded',
        ),
    );
    // On a slow machine the plugin may be killed before it wrote its PID; when it did, it must be gone.
    const pidText = (await readFile(pidFile, 'utf8').catch(() => '')).trim();
    if (pidText !== '') {
      assert.throws(
        () => process.kill(Number(pidText), 0),
        (e: unknown) => (e as NodeJS.ErrnoException).code === 'ESRCH',
      );
    }
  });

  test('timeout with a grandchild holding the pipes: the run still ends', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    await writeScript(bin, 'forking', `sleep 30 &\necho $! > '${pidFile}'\nexec sleep 30`);
    try {
      await assert.rejects(
        provider('forking', {}, { timeoutMs: 1000 }).provide('reg.io/app'),
        (e: unknown) =>
          isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED') && e.message.includes('context deadline exceeded'),
      );
    } finally {
      const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  test('non-zero exit: coded error naming the plugin, stderr redacted', async () => {
    const token = 'ghp_0123456789abcdefABCDEF0123456789';
    await writeScript(bin, 'failing', `echo "auth failed for token ${token}" >&2\nexit 3`);
    await assert.rejects(
      provider('failing').provide('reg.io/app'),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED') &&
        e.message ===
          'error execing credential provider plugin failing for image reg.io/app: exit status 3: auth failed for token <redacted>',
    );
  });

  test('a missing binary and an invalid response are coded errors', async () => {
    await assert.rejects(
      provider('does-not-exist').provide('reg.io/app'),
      (e: unknown) => isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED') && e.message.includes('does-not-exist'),
    );
    await recordingPlugin(
      'badjson',
      '{"kind": "CredentialProviderResponse", "apiVersion": "' +
        V1 +
        '", "auth": {"r": {"password": "hunter2-SECRET-xyz"}}, "oops": 1}',
    );
    await assert.rejects(
      provider('badjson').provide('reg.io/app'),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED') &&
        e.message.includes('error decoding credential provider plugin response from stdout') &&
        !e.message.includes('hunter2'),
    );
  });

  test('service-account token mode: token and annotations in the request, cache keyed by service account', async () => {
    const p = await recordingPlugin('satoken', response({ cacheKeyType: 'Registry' }));
    const tokens: string[] = [];
    const prov = provider(
      'satoken',
      {
        tokenAttributes: {
          serviceAccountTokenAudience: 'my-aud',
          cacheType: 'ServiceAccount',
          requireServiceAccount: true,
          requiredServiceAccountAnnotationKeys: ['example.com/role'],
          optionalServiceAccountAnnotationKeys: ['example.com/opt'],
        },
      },
      {
        getServiceAccount: async (ns, name): Promise<ServiceAccountInfo> => {
          if (name === 'noannotation') return { uid: 'uid-x', annotations: {} };
          return {
            uid: `uid-${ns}-${name}`,
            annotations: { 'example.com/role': 'reader', 'example.com/ignored': 'x' },
          };
        },
        getServiceAccountToken: async (req) => {
          const t = `token-for-${req.name}-${req.audience}-${req.podName}`;
          tokens.push(t);
          return t;
        },
      },
    );
    const pod = { podNamespace: 'app', podName: 'web-0', podUid: 'pod-uid', serviceAccountName: 'builder' };
    const r = await prov.provide('reg.io/app', pod);
    assert.deepEqual(r.source, {
      kind: 'plugin',
      plugin: 'satoken',
      pluginServiceAccount: { namespace: 'app', name: 'builder', uid: 'uid-app-builder' },
    });
    assert.deepEqual(JSON.parse(await readFile(`${p.log}.stdin`, 'utf8')), {
      kind: 'CredentialProviderRequest',
      apiVersion: V1,
      image: 'reg.io/app',
      serviceAccountToken: 'token-for-builder-my-aud-web-0',
      serviceAccountAnnotations: { 'example.com/role': 'reader' },
    });
    assert.equal((await prov.provide('reg.io/other', pod)).cached, true);
    assert.equal(
      (await prov.provide('reg.io/other', { ...pod, serviceAccountName: 'deployer' })).cached,
      false,
    );
    assert.equal(await p.count(), 2);
    const skipped = await prov.provide('reg.io/app', { ...pod, serviceAccountName: '' });
    assert.equal(skipped.skipped, 'the provider requires a ServiceAccount and the pod has none');
    const missing = await prov.provide('reg.io/app', { ...pod, serviceAccountName: 'noannotation' });
    assert.ok(missing.skipped?.includes('required annotation example.com/role not found'));
    assert.equal(await p.count(), 2);
  });

  test('a token that cannot be obtained: the provider is skipped and the manager reports why', async () => {
    const p = await recordingPlugin('notoken', response({ cacheKeyType: 'Registry' }));
    const prov = provider(
      'notoken',
      {
        tokenAttributes: {
          serviceAccountTokenAudience: 'aud',
          cacheType: 'ServiceAccount',
          requireServiceAccount: true,
          requiredServiceAccountAnnotationKeys: [],
          optionalServiceAccountAnnotationKeys: [],
        },
      },
      {
        getServiceAccount: async () => ({ uid: 'u', annotations: {} }),
        getServiceAccountToken: () =>
          Promise.reject(new KimgError('KUBE_FORBIDDEN', 'RBAC denies create serviceaccounts/token "sa"')),
      },
    );
    const pod = { podNamespace: 'ns', podName: 'p', podUid: 'x', serviceAccountName: 'sa' };
    const r = await new PluginManager([prov]).provide('reg.io/app', pod);
    assert.deepEqual(r.matches, []);
    assert.match(
      r.results[0]?.skipped ?? '',
      /could not be obtained: RBAC denies create serviceaccounts\/token/,
    );
    assert.deepEqual(r.problems, [
      {
        plugin: 'notoken',
        code: 'CREDENTIAL_PROVIDER_FAILED',
        message:
          'credential provider plugin "notoken" skipped: the service account token for ServiceAccount "ns/sa" could not be obtained: RBAC denies create serviceaccounts/token "sa"',
      },
    ]);
    // A provider that does not apply is no problem.
    assert.deepEqual((await new PluginManager([prov]).provide('other.io/app', pod)).problems, []);
    assert.equal(await p.count(), 0, 'the plugin never ran');
  });

  test('service-account mode rejects a response that echoes the token as the password', async () => {
    await writeScript(
      bin,
      'echoer',
      `cat > /dev/null\necho '${response({ auth: { 'reg.io': { username: 'u', password: 'THE-TOKEN-1234567890' } } })}'`,
    );
    const prov = provider(
      'echoer',
      {
        tokenAttributes: {
          serviceAccountTokenAudience: 'a',
          cacheType: 'ServiceAccount',
          requireServiceAccount: true,
          requiredServiceAccountAnnotationKeys: [],
          optionalServiceAccountAnnotationKeys: [],
        },
      },
      {
        getServiceAccount: async () => ({ uid: 'u', annotations: {} }),
        getServiceAccountToken: async () => 'THE-TOKEN-1234567890',
      },
    );
    await assert.rejects(
      prov.provide('reg.io/app', { podNamespace: 'ns', podName: 'p', podUid: 'x', serviceAccountName: 'sa' }),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED') &&
        e.message.includes('returned the service account token as the password') &&
        !e.message.includes('THE-TOKEN'),
    );
  });
});

describe('PluginManager', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('creds-pm-');
  });
  after(async () => {
    await removeTempDir(dir);
  });
  const config = (names: string[], match = '*.reg.io'): string =>
    `kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n` +
    names
      .map(
        (n) =>
          `  - name: ${n}\n    matchImages: ["${match}", "reg.io"]\n    defaultCacheDuration: 1m\n    apiVersion: ${V1}\n`,
      )
      .join('');

  test("load checks the bin dir and every binary, as kubelet's RegisterCredentialProviderPlugins", async () => {
    const cfg = join(dir, 'cfg.yaml');
    await writeFile(cfg, config(['one']));
    await assert.rejects(
      PluginManager.load({ configPath: cfg, binDir: join(dir, 'nobin') }),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_CONFIG_INVALID') &&
        e.message === `plugin binary directory ${join(dir, 'nobin')} did not exist`,
    );
    const bin = join(dir, 'bin1');
    await mkdir(bin);
    await assert.rejects(
      PluginManager.load({ configPath: cfg, binDir: bin }),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_CONFIG_INVALID') &&
        e.message === `plugin binary executable ${join(bin, 'one')} did not exist`,
    );
    await writeFile(join(bin, 'one'), '#!/bin/sh\n', { mode: 0o644 });
    await assert.rejects(
      PluginManager.load({ configPath: cfg, binDir: bin }),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_CONFIG_INVALID') && e.message.includes('permission denied'),
    );
  });

  test('plugins form one keyring group in key order; a failing plugin is a problem, not an error', async () => {
    const bin = join(dir, 'bin2');
    await mkdir(bin);
    await writeScript(
      bin,
      'a',
      `cat > /dev/null\necho '${response({ auth: { 'reg.io': { username: 'from-a', password: 'x' } } })}'`,
    );
    await writeScript(
      bin,
      'b',
      `cat > /dev/null\necho '${response({ auth: { 'reg.io/team': { username: 'from-b', password: 'x' }, 'quay.io': { username: 'other', password: 'x' } } })}'`,
    );
    await writeScript(bin, 'c', 'cat > /dev/null\nexit 1');
    const cfg = join(dir, 'cfg2.yaml');
    await writeFile(cfg, config(['a', 'b', 'c']));
    const pm = await PluginManager.load({
      configPath: cfg,
      binDir: bin,
      environ: { PATH: process.env.PATH ?? '' },
    });
    const r = await pm.provide('reg.io/team/app');
    assert.deepEqual(
      r.matches.map((m) => [m.key, m.auth.username, m.source.plugin]),
      [
        ['reg.io/team', 'from-b', 'b'],
        ['reg.io', 'from-a', 'a'],
      ],
    );
    assert.deepEqual(
      r.problems.map((p) => [p.plugin, p.code]),
      [['c', 'CREDENTIAL_PROVIDER_FAILED']],
    );
  });
});
