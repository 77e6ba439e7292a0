/**
 * Credentials end to end, against real registries: a pod with imagePullSecrets pulls
 * from the Basic and the token registry (anonymous pulls refused there); the same pod without them
 * fails with UNAUTHORIZED naming the host; an exec credential plugin's credential pulls, is cached
 * (one plugin run for two images of one registry), and is asked again after its cacheDuration.
 * A static pod of `kimg node` whose image matches a provider with `tokenAttributes` is pulled with the
 * credential that provider gave for the projected token it received (`--service-account-token-dir` or
 * the configuration's `kimg.serviceAccountTokenDir`; refused in cluster mode).
 * A canary password placed in the Secret and the plugin response never shows in any output.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PluginManager, lookupPullCredentials } from '../../src/credentials/index.js';
import { FakeClock } from '../helpers/clock.js';
import { RegistryClient } from '../../src/registry/index.js';
import { pullImage } from '../../src/pull/index.js';
import { openStore } from '../../src/store/index.js';
import { generateImage } from '../helpers/images.js';
import { runCommand, type CommandResult } from '../helpers/proc.js';
import { startRegistry, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { writeTokenProviderConfig } from '../helpers/credential-providers.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const CANARY = 'Canary-Pw-7d41e9';
const SA_TOKEN = 'projected-sa-token-Canary-91c2';

describe('credentials against real registries', () => {
  let dir: string;
  let basic: StartedRegistry;
  let token: StartedRegistry;
  let env: NodeJS.ProcessEnv;
  let pluginLog: string;
  let providerConfig: string;
  let binDir: string;

  before(async () => {
    dir = await makeTempDir('creds-');
    [basic, token] = await Promise.all([
      startRegistry({ mode: 'basic', password: CANARY }),
      startRegistry({ mode: 'token', password: CANARY, anonymousPull: false }),
    ]);
    const img = await generateImage(join(dir, 'img'), { name: 'creds', layers: [{ size: 20_000 }] });
    const img2 = await generateImage(join(dir, 'img2'), { name: 'creds2', layers: [{ size: 10_000 }] });
    await Promise.all([
      skopeoPush(img, basic, 'private:v1'),
      skopeoPush(img2, basic, 'private2:v1'),
      skopeoPush(img, token, 'private:v1'),
    ]);
    env = { ...process.env, HOME: dir, XDG_DATA_HOME: dir };
    // An exec credential plugin (a real executable): logs each run, answers the Basic registry's creds.
    binDir = join(dir, 'plugins');
    await mkdir(binDir);
    pluginLog = join(dir, 'plugin.log');
    const response = JSON.stringify({
      kind: 'CredentialProviderResponse',
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      cacheKeyType: 'Registry',
      cacheDuration: '1h',
      auth: { [basic.host]: { username: basic.username, password: CANARY } },
    });
    await writeFile(
      join(binDir, 'test-plugin'),
      `#!/bin/sh\ncat >/dev/null\necho run >> '${pluginLog}'\nprintf '%s' '${response}'\n`,
    );
    await chmod(join(binDir, 'test-plugin'), 0o755);
    providerConfig = join(dir, 'providers.yaml');
    await writeFile(
      providerConfig,
      [
        'apiVersion: kubelet.config.k8s.io/v1',
        'kind: CredentialProviderConfig',
        'providers:',
        '  - name: test-plugin',
        `    matchImages: ["${basic.host}"]`,
        '    defaultCacheDuration: "10m"',
        '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await stopRegistries([basic, token].filter((r) => r !== undefined));
    if (dir) await removeTempDir(dir);
  });

  async function write(name: string, text: string): Promise<string> {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  }

  function pod(name: string, images: string[], secrets: string[] = []): string {
    return [
      'apiVersion: v1',
      'kind: Pod',
      `metadata: {name: ${name}, namespace: default, uid: uid-${name}}`,
      'spec:',
      ...(secrets.length ? ['  imagePullSecrets:', ...secrets.map((s) => `    - name: ${s}`)] : []),
      '  containers:',
      ...images.map((image, i) => `    - {name: c${i}, image: "${image}"}`),
      '',
    ].join('\n');
  }

  async function ensure(
    root: string,
    reg: StartedRegistry,
    files: string[],
    extra: string[] = [],
  ): Promise<CommandResult> {
    return runCommand(
      'node',
      [
        CLI,
        'ensure',
        ...files.flatMap((f) => ['-f', f]),
        '--root',
        root,
        '--plain-http',
        reg.host,
        '--no-node-config',
        '--kubelet-root-dir',
        join(dir, 'kubelet'),
        ...extra,
      ],
      { env, allowFailure: true, secrets: [CANARY] },
    );
  }

  test('a pod with imagePullSecrets pulls from the Basic and token registries; without them UNAUTHORIZED naming the host', async () => {
    const outputs: string[] = [];
    for (const reg of [basic, token]) {
      const secret = await runCommand(
        'node',
        [
          CLI,
          'create',
          'secret',
          'docker-registry',
          'regcred',
          `--docker-server=${reg.host}`,
          `--docker-username=${reg.username ?? ''}`,
          `--docker-password=${CANARY}`,
        ],
        { env, secrets: [CANARY] },
      );
      const secretFile = await write(`secret-${reg.mode}.yaml`, secret.stdout);
      const image = `${reg.host}/private:v1`;
      const root = join(dir, `root-${reg.mode}`);
      const denied = await ensure(root, reg, [
        await write(`nosecret-${reg.mode}.yaml`, pod('nosecret', [image])),
      ]);
      assert.equal(denied.code, 4, denied.stdout + denied.stderr);
      assert.match(denied.stdout + denied.stderr, /ErrImagePull/);
      assert.ok((denied.stdout + denied.stderr).includes(reg.host), 'the error names the host');
      const ok = await ensure(root, reg, [
        await write(`withsecret-${reg.mode}.yaml`, pod('withsecret', [image], ['regcred'])),
        secretFile,
      ]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /Successfully pulled image/);
      outputs.push(
        secret.stdout.replace(/dockerconfigjson: .*/, ''),
        denied.stdout,
        denied.stderr,
        ok.stdout,
        ok.stderr,
      );
    }
    if (token.token) {
      const granted = token.token.requests().filter((r) => r.granted && r.user === token.username);
      assert.ok(granted.length > 0, 'the token server issued tokens for the Secret user');
    }
    assert.ok(!outputs.join('\n').includes(CANARY), 'the canary password never shows');
  });

  test("the concept page's two-entry config.json: the more specific key fails, the host key succeeds", async () => {
    // "my-registry.example/images" and "my-registry.example": both match …/images/…, the longer first.
    const b64 = (u: string, p: string) => Buffer.from(`${u}:${p}`).toString('base64');
    const cfg = await write(
      'two-entries.json',
      JSON.stringify({
        auths: {
          [`${basic.host}/private`]: { auth: b64('kimg', 'wrong-password') },
          [basic.host]: { auth: b64(basic.username ?? 'kimg', CANARY) },
        },
      }),
    );
    const image = `${basic.host}/private:v1`;
    const match = await runCommand(
      'node',
      [CLI, 'creds', 'match', image, '--docker-config', cfg, '--no-node-config', '-o', 'json'],
      {
        env,
        secrets: [CANARY],
      },
    );
    const keys = (JSON.parse(match.stdout) as { key: string }[]).map((m) => m.key);
    assert.deepEqual(keys, [`${basic.host}/private`, basic.host]);
    const pulled = await runCommand(
      'node',
      [
        CLI,
        'pull',
        image,
        '--docker-config',
        cfg,
        '--plain-http',
        basic.host,
        '--root',
        join(dir, 'root-two'),
        '--progress',
        'none',
        '-o',
        'json',
      ],
      { env, allowFailure: true, secrets: [CANARY] },
    );
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match((JSON.parse(pulled.stdout) as { id: string }).id, /^sha256:/);
    // the registry saw the wrong password first (401), then the right one
    const manifestGets = (await basic.accessLog()).filter((e) => e.path === '/v2/private/manifests/v1');
    assert.ok(
      manifestGets.some((e) => e.status === 401) &&
        manifestGets.some((e) => e.status === 200 || e.status === 307),
    );
    assert.ok(!(match.stdout + match.stderr + pulled.stdout + pulled.stderr).includes(CANARY));
  });

  test('an exec plugin credential pulls, and one plugin run serves two images of the registry', async () => {
    const kubeletConfig = await write(
      'kubelet.yaml',
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        'kimg:',
        `  imageCredentialProviderConfig: ${providerConfig}`,
        `  imageCredentialProviderBinDir: ${binDir}`,
        '',
      ].join('\n'),
    );
    await writeFile(pluginLog, '');
    const podFile = await write(
      'plugin-pod.yaml',
      pod('plugin', [`${basic.host}/private:v1`, `${basic.host}/private2:v1`]),
    );
    const r = await ensure(join(dir, 'root-plugin'), basic, [podFile], ['--config', kubeletConfig]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((r.stdout.match(/Successfully pulled image/g) ?? []).length, 2);
    assert.equal(
      (await readFile(pluginLog, 'utf8')).trim().split('\n').length,
      1,
      'one plugin run for two images',
    );
    assert.ok(!(r.stdout + r.stderr).includes(CANARY));
  });

  test('a cached plugin credential is asked for again after its cacheDuration (library, fake clock)', async () => {
    await writeFile(pluginLog, '');
    const clock = new FakeClock(Date.now());
    const plugins = await PluginManager.load({ configPath: providerConfig, binDir, clock });
    const runs = async () => (await readFile(pluginLog, 'utf8')).trim().split('\n').filter(Boolean).length;
    const first = await lookupPullCredentials(`${basic.host}/private:v1`, { plugins });
    assert.equal(first.matches.length, 1);
    assert.equal(first.matches[0]?.source.kind, 'plugin');
    await lookupPullCredentials(`${basic.host}/private2:v1`, { plugins });
    assert.equal(await runs(), 1, 'cached within cacheDuration (cacheKeyType Registry)');
    clock.advance(60 * 60 * 1000 + 1);
    const again = await lookupPullCredentials(`${basic.host}/private:v1`, { plugins });
    assert.equal(await runs(), 2, 're-requested after cacheDuration');
    // and the plugin's credential really opens the registry
    const store = await openStore({ root: join(dir, 'root-lib') });
    const registry = new RegistryClient({ plainHttp: [basic.host] });
    try {
      const pulled = await pullImage(`${basic.host}/private:v1`, {
        store,
        registry,
        auth: again.matches[0]!.auth,
      });
      assert.match(pulled.record.imageId, /^sha256:/);
    } finally {
      await registry.close();
      await store.close();
    }
  });

  describe('kimg node: a static pod pulled through a service-account token provider', () => {
    let work = '';
    let saLog = '';
    let saConfig = '';
    before(async () => {
      work = join(dir, 'sa-node');
      const bin = join(work, 'bin');
      await mkdir(bin, { recursive: true });
      await mkdir(join(work, 'tokens', 'apps', 'builder'), { recursive: true });
      await writeFile(join(work, 'tokens', 'apps', 'builder', 'token'), `${SA_TOKEN}\n`);
      saLog = join(work, 'sa-plugin.log');
      // Answers the Basic registry's credential only for the projected token: any other request
      // (no token) fails, so a pull that works proves the token reached the plugin.
      const response = JSON.stringify({
        kind: 'CredentialProviderResponse',
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        cacheKeyType: 'Registry',
        auth: { [basic.host]: { username: basic.username, password: CANARY } },
      });
      await writeFile(
        join(bin, 'sa-plugin'),
        [
          '#!/bin/sh',
          'req=$(cat)',
          `printf '%s\\n' "$req" >> '${saLog}'`,
          'case "$req" in',
          `  *'"serviceAccountToken":"${SA_TOKEN}"'*) printf '%s' '${response}' ;;`,
          '  *) echo "no token" >&2; exit 1 ;;',
          'esac',
          '',
        ].join('\n'),
      );
      await chmod(join(bin, 'sa-plugin'), 0o755);
      const providers = join(work, 'providers.yaml');
      await writeTokenProviderConfig(providers, {
        name: 'sa-plugin',
        matchImages: [basic.host],
        audience: basic.host,
        cacheType: 'ServiceAccount',
        requiredAnnotations: ['registry.example/role'],
      });
      await mkdir(join(work, 'manifests'));
      await writeFile(
        join(work, 'manifests', 'app.yaml'),
        [
          'apiVersion: v1',
          'kind: Pod',
          'metadata: {name: app, namespace: apps}',
          'spec:',
          '  serviceAccountName: builder',
          `  containers: [{name: c, image: "${basic.host}/private:v1", imagePullPolicy: Always}]`,
          '',
        ].join('\n'),
      );
      await mkdir(join(work, 'secrets'));
      await writeFile(
        join(work, 'secrets', 'sa.yaml'),
        'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\n  namespace: apps\n  uid: sa-uid-1\n  annotations: {registry.example/role: puller}\n',
      );
      const common = [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        `staticPodPath: ${join(work, 'manifests')}`,
        'kimg:',
        `  imageCredentialProviderConfig: ${providers}`,
        `  imageCredentialProviderBinDir: ${bin}`,
      ];
      saConfig = join(work, 'kubelet.yaml');
      await writeFile(saConfig, [...common, ''].join('\n'));
      await writeFile(
        join(work, 'kubelet-tokens.yaml'),
        [...common, `  serviceAccountTokenDir: ${join(work, 'tokens')}`, ''].join('\n'),
      );
    });

    const node = (config: string, root: string, extra: string[] = []): Promise<CommandResult> =>
      runCommand(
        'node',
        [
          CLI,
          'node',
          '--config',
          config,
          '--root',
          join(work, root),
          '--secrets-dir',
          join(work, 'secrets'),
          '--metrics-addr',
          '127.0.0.1:0',
          '--plain-http',
          basic.host,
          '--node-name',
          'n1',
          '--once',
          ...extra,
        ],
        {
          env: { ...env, DOCKER_CONFIG: join(work, 'no-docker') },
          allowFailure: true,
          secrets: [CANARY, SA_TOKEN],
        },
      );
    const requests = async (): Promise<Record<string, unknown>[]> =>
      (await readFile(saLog, 'utf8').catch(() => ''))
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);

    test('--service-account-token-dir: the provider gets the projected token and its credential pulls', async () => {
      await writeFile(saLog, '');
      const r = await node(saConfig, 'root-flag', ['--service-account-token-dir', join(work, 'tokens')]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /app-n1\s+1\/1\s+ImagesReady/);
      const [req, ...more] = await requests();
      assert.equal(more.length, 0, 'one plugin run');
      assert.equal(req?.image, `${basic.host}/private`);
      assert.equal(req?.serviceAccountToken, SA_TOKEN);
      assert.deepEqual(req?.serviceAccountAnnotations, { 'registry.example/role': 'puller' });
      assert.ok(!(r.stdout + r.stderr).includes(CANARY) && !(r.stdout + r.stderr).includes(SA_TOKEN));
    });

    test("the configuration's kimg.serviceAccountTokenDir does the same", async () => {
      await writeFile(saLog, '');
      const r = await node(join(work, 'kubelet-tokens.yaml'), 'root-config');
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal((await requests())[0]?.serviceAccountToken, SA_TOKEN);
    });

    test('without a token directory the provider is skipped and the pull is refused', async () => {
      await writeFile(saLog, '');
      const r = await node(saConfig, 'root-none');
      assert.equal(r.code, 9, r.stdout + r.stderr);
      assert.match(r.stderr, /pod apps\/app-n1 \(container c: ErrImagePull/);
      assert.deepEqual(await requests(), [], 'the plugin never ran');
    });

    test("cluster mode refuses a token directory (its tokens are the API server's)", async () => {
      const r = await runCommand(
        'node',
        [
          CLI,
          'node',
          '--kubeconfig',
          join(work, 'none.kubeconfig'),
          '--node-name',
          'n1',
          '--service-account-token-dir',
          join(work, 'tokens'),
        ],
        { env, allowFailure: true },
      );
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--service-account-token-dir is for standalone mode/);
    });
  });
});
