/**
 * Credential providers with `tokenAttributes` on a cluster node: `kimg node --kubeconfig …
 * --node-name node-t` (a real process) against the Kubernetes API double and a real registry (Basic
 * auth), with a real exec plugin. The plugin answers the registry's credential only for a token the
 * API server issued through TokenRequest for the pod's ServiceAccount, the provider's audience and
 * that very pod, so a pull that works proves the token came from there. Two images of one pod cost one
 * TokenRequest (the token is cached); once RBAC no longer grants `create` on `serviceaccounts/token`,
 * a new pod's pull fails and the agent says the provider was skipped and why. The agent runs with the
 * rules of `deploy/node-agent/clusterrole.yaml`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { generateImage } from '../helpers/images.js';
import { startKubeApiServer, type KubeApiServer, type KubeRule } from '../helpers/kube-apiserver.js';
import { killProcess, spawnTracked, waitFor, type TrackedProcess } from '../helpers/proc.js';
import { startRegistry, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { writeProviderKubeletConfig, writeTokenProviderConfig } from '../helpers/credential-providers.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const ROLE = new URL('../../../deploy/node-agent/clusterrole.yaml', import.meta.url).pathname;
const CANARY = 'Token-Node-Canary-Pw-5e17';
const AGENT = 'system:serviceaccount:kimg-system:kimg-node-agent';
const AUDIENCE = 'registry.example/pull';

type Ev = Record<string, unknown> & { regarding: Record<string, unknown> };

describe('kimg node in cluster mode: service-account tokens from TokenRequest', () => {
  let dir: string;
  let reg: StartedRegistry;
  let api: KubeApiServer;
  let agent: TrackedProcess | undefined;
  let rules: KubeRule[];
  let pluginLog: string;

  const events = (podName: string): Ev[] =>
    (api.objects('events.k8s.io/v1', 'Event', 'apps') as Ev[]).filter((e) => e.regarding.name === podName);
  const reasons = (podName: string): string[] => events(podName).map((e) => String(e.reason));
  const stderr = async (): Promise<string> => readFile(join(dir, 'agent.err'), 'utf8').catch(() => '');
  const pluginRuns = async (): Promise<Record<string, unknown>[]> =>
    (await readFile(pluginLog, 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const pod = (name: string, uid: string, images: string[]): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'apps', uid },
    spec: {
      nodeName: 'node-t',
      serviceAccountName: 'builder',
      containers: images.map((image, i) => ({ name: `c${i}`, image, imagePullPolicy: 'IfNotPresent' })),
    },
  });

  before(async () => {
    dir = await makeTempDir('kubetok-');
    rules = (parse(readFileSync(ROLE, 'utf8')) as { rules: KubeRule[] }).rules;
    [reg, api] = await Promise.all([
      startRegistry({ mode: 'basic', password: CANARY }),
      startKubeApiServer({ users: { 'agent-token': { name: AGENT, rules } } }),
    ]);
    const [a, b] = await Promise.all([
      generateImage(join(dir, 'img-a'), { name: 'tok-a', layers: [{ size: 20_000 }] }),
      generateImage(join(dir, 'img-b'), { name: 'tok-b', layers: [{ size: 10_000 }] }),
    ]);
    await skopeoPush(a, reg, 'private:v1');
    await skopeoPush(b, reg, 'other:v1');
    await skopeoPush(a, reg, 'private:v2');
    api.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'builder', namespace: 'apps', annotations: { 'registry.example/role': 'puller' } },
    });

    // The plugin: a credential only for a token of the double naming the provider's audience, the
    // pod's ServiceAccount and the pod of the request; it logs what it checked, never the token.
    const bin = join(dir, 'bin');
    await mkdir(bin);
    pluginLog = join(dir, 'plugin.log');
    const response = {
      kind: 'CredentialProviderResponse',
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      cacheKeyType: 'Registry',
      auth: { [reg.host]: { username: reg.username, password: CANARY } },
    };
    await writeFile(
      join(bin, 'sa-plugin'),
      [
        `#!${process.execPath}`,
        // Works whether the file is loaded as CommonJS or as an ES module.
        "void import('node:fs').then(({ appendFileSync }) => {",
        'let input = "";',
        "process.stdin.on('data', (c) => (input += c));",
        "process.stdin.on('end', () => {",
        '  const req = JSON.parse(input);',
        '  let claims = {};',
        "  try { claims = JSON.parse(Buffer.from(String(req.serviceAccountToken).split('.')[1], 'base64url').toString()); } catch {}",
        "  const k = claims['kubernetes.io'] ?? {};",
        '  const run = { image: req.image, aud: claims.aud, sub: claims.sub, pod: k.pod, annotations: req.serviceAccountAnnotations };',
        `  appendFileSync(${JSON.stringify(pluginLog)}, JSON.stringify(run) + '\\n');`,
        `  const ok = Array.isArray(claims.aud) && claims.aud.includes(${JSON.stringify(AUDIENCE)}) &&`,
        "    claims.sub === 'system:serviceaccount:apps:builder' && k.pod !== undefined;",
        "  if (!ok) { process.stderr.write('no valid token\\n'); process.exit(1); }",
        `  process.stdout.write(${JSON.stringify(JSON.stringify(response))});`,
        '});',
        '});',
        '',
      ].join('\n'),
    );
    await chmod(join(bin, 'sa-plugin'), 0o755);
    const providers = join(dir, 'providers.yaml');
    await writeTokenProviderConfig(providers, {
      name: 'sa-plugin',
      matchImages: [reg.host],
      audience: AUDIENCE,
      cacheType: 'Token',
      requiredAnnotations: ['registry.example/role'],
    });
    const config = join(dir, 'kubelet.yaml');
    await writeProviderKubeletConfig(config, providers, bin);
    agent = spawnTracked(
      'kimg-node',
      process.execPath,
      [
        CLI,
        'node',
        '--kubeconfig',
        await api.writeKubeconfig('agent-token'),
        '--config',
        config,
        '--node-name',
        'node-t',
        '--root',
        join(dir, 'root'),
        '--plain-http',
        reg.host,
        '--metrics-addr',
        '127.0.0.1:0',
        '--resync',
        '0.3',
      ],
      {
        env: { ...process.env, HOME: dir, KUBECONFIG: '', DOCKER_CONFIG: join(dir, 'no-docker') },
        stderrFile: join(dir, 'agent.err'),
      },
    );
    await waitFor(
      'the agent to watch its pods',
      () => (api.requests().some((r) => r.verb === 'watch' && r.resource === 'pods') ? true : undefined),
      { timeoutMs: 60_000, watch: agent, describe: stderr },
    );
  });
  after(async () => {
    if (agent !== undefined) await killProcess(agent);
    await api?.close();
    if (reg !== undefined) await stopRegistries([reg]);
    if (dir) await removeTempDir(dir);
  });

  test('the provider gets a pod-bound TokenRequest token for its audience; two pulls, one TokenRequest', async () => {
    api.create(pod('app', 'uid-app-1', [`${reg.host}/private:v1`, `${reg.host}/other:v1`]));
    await waitFor(
      'both images of app pulled',
      () => (events('app').filter((e) => e.reason === 'Pulled').length >= 2 ? true : undefined),
      {
        timeoutMs: 60_000,
        watch: agent,
        describe: async () => `${JSON.stringify(events('app').map((e) => e.reason))}\n${await stderr()}`,
      },
    );
    const issued = api.tokenRequests();
    assert.deepEqual(issued, [
      {
        namespace: 'apps',
        serviceAccount: 'builder',
        audiences: [AUDIENCE],
        expirationSeconds: 3600,
        boundPod: { name: 'app', uid: 'uid-app-1' },
        user: AGENT,
      },
    ]);
    const runs = await pluginRuns();
    assert.ok(runs.length >= 1, 'the plugin ran');
    for (const r of runs) {
      assert.deepEqual(r.aud, [AUDIENCE]);
      assert.deepEqual(r.pod, { name: 'app', uid: 'uid-app-1' });
      assert.deepEqual(r.annotations, { 'registry.example/role': 'puller' });
    }
    const access = await reg.accessLog();
    assert.ok(access.some((a) => a.path === '/v2/private/manifests/v1' && a.status === 200));
    assert.ok(access.some((a) => a.path === '/v2/other/manifests/v1' && a.status === 200));
    const out = (await stderr()) + JSON.stringify(api.requests()) + JSON.stringify(events('app'));
    assert.doesNotMatch(out, new RegExp(CANARY));
    assert.doesNotMatch(out, /kimg-double/, 'no token in logs, events or the request log');
  });

  test('the agent uses the ClusterRole and nothing is denied', () => {
    const log = api.requests().filter((r) => r.user === AGENT);
    assert.deepEqual(
      log.filter((r) => r.status === 403),
      [],
    );
    assert.ok(log.some((r) => r.verb === 'create' && r.resource === 'serviceaccounts/token'));
    assert.ok(
      log
        .filter((r) => r.resource === 'serviceaccounts')
        .every((r) => r.verb === 'list' || r.verb === 'watch'),
      'the ServiceAccount comes from the watch by name, never a get',
    );
  });

  test('without create on serviceaccounts/token the provider is skipped, saying why, and the pull fails', async () => {
    api.setUser('agent-token', {
      name: AGENT,
      rules: rules.map((r) => ({
        ...r,
        resources: r.resources.filter((x) => x !== 'serviceaccounts/token'),
      })),
    });
    const before = (await pluginRuns()).length;
    api.create(pod('denied', 'uid-denied-1', [`${reg.host}/private:v2`]));
    await waitFor(
      'a Failed pull for denied',
      () => (reasons('denied').includes('Failed') ? true : undefined),
      {
        timeoutMs: 60_000,
        watch: agent,
        describe: async () => `${JSON.stringify(reasons('denied'))}\n${await stderr()}`,
      },
    );
    const denied = api
      .requests()
      .filter((r) => r.resource === 'serviceaccounts/token' && r.status === 403 && r.name === 'builder');
    assert.ok(denied.length >= 1, 'the TokenRequest was denied');
    const log = await stderr();
    const entries = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: unknown; code?: unknown; pod?: unknown });
    assert.ok(
      entries.some(
        (e) =>
          e.code === 'CREDENTIAL_PROVIDER_FAILED' &&
          e.pod === 'apps/denied' &&
          /^credential provider plugin "sa-plugin" skipped: the service account token for ServiceAccount "apps\/builder" could not be obtained: RBAC denies create serviceaccounts\/token "builder" in namespace "apps": grant verb "create" on resource "serviceaccounts\/token"/.test(
            String(e.msg),
          ),
      ),
      log,
    );
    const failed = events('denied').find((e) => e.reason === 'Failed')!;
    assert.match(String(failed.note), new RegExp(`^Failed to pull image "${reg.host}/private:v2"`));
    assert.equal((await pluginRuns()).length, before, 'the plugin never ran without a token');
    assert.doesNotMatch(log, new RegExp(CANARY));
  });
});
