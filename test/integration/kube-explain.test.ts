/**
 * `kimg explain pod/NAME | deployment/NAME | pods` against the Kubernetes API double and a real
 * registry (Basic auth): a pod whose Secret lives in its namespace resolves with it; a Secret that
 * exists only in another namespace is never read (the request log shows no request there) and the pull
 * would be anonymous; a ServiceAccount's Secret is used when the pod lists none; a missing Secret gives
 * the kubelet's warning text; presence comes from `Node.status.images` and the answer says so; an RBAC
 * denial gives a coded error naming the verb and resource; the ServiceAccount is read only when the pod
 * lists no Secrets; with `--token-request` a credential provider with `tokenAttributes` gets a
 * pod-bound token from the TokenRequest API (a real exec plugin that accepts only such a token); the
 * same command runs as a kubectl plugin. With `--node-name` equal to the pod's node, presence comes
 * from this machine's runtime instead: kimg's store, or a real containerd's with `--containerd`.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateImage } from '../helpers/images.js';
import { ALLOW_ALL, startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd } from '../helpers/containerd.js';
import { writeProviderKubeletConfig, writeTokenProviderConfig } from '../helpers/credential-providers.js';
import { runCommand } from '../helpers/proc.js';
import { startRegistry, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const CANARY = 'Kube-Canary-Pw-5e1c';
const AUDIENCE = 'registry.example/explain';

describe('kimg explain from the API server (against a real registry)', () => {
  let dir: string;
  let reg: StartedRegistry;
  let api: KubeApiServer;
  let kubeconfig: string;
  let digest: string;
  let env: NodeJS.ProcessEnv;

  const secret = (name: string, namespace: string): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'kubernetes.io/dockerconfigjson',
    data: {
      '.dockerconfigjson': Buffer.from(
        JSON.stringify({ auths: { [reg.host]: { username: reg.username, password: CANARY } } }),
      ).toString('base64'),
    },
  });
  const pod = (
    name: string,
    spec: Record<string, unknown>,
    status?: Record<string, unknown>,
  ): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: 'node-a',
      containers: [{ name: 'app', image: `${reg.host}/app:1`, imagePullPolicy: 'IfNotPresent' }],
      ...spec,
    },
    ...(status !== undefined ? { status } : {}),
  });

  before(async () => {
    dir = await makeTempDir('kubeexplain-');
    [reg, api] = await Promise.all([
      startRegistry({ mode: 'basic', password: CANARY }),
      startKubeApiServer({
        users: {
          'admin-token': { name: 'admin', rules: ALLOW_ALL },
          'no-secrets': {
            name: 'jane',
            rules: [
              { verbs: ['get', 'list'], apiGroups: [''], resources: ['pods', 'serviceaccounts', 'nodes'] },
            ],
          },
          'no-serviceaccounts': {
            name: 'joe',
            rules: [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods', 'secrets', 'nodes'] }],
          },
          'no-tokens': {
            name: 'ann',
            rules: [{ verbs: ['get', 'list'], apiGroups: ['*'], resources: ['*'] }],
          },
        },
      }),
    ]);
    const img = await generateImage(join(dir, 'img'), { name: 'kube-explain', layers: [{ size: 10_000 }] });
    await skopeoPush(img, reg, 'app:1');
    digest = img.digest;
    kubeconfig = await api.writeKubeconfig('admin-token', { namespace: 'default' });
    env = { ...process.env, HOME: dir, KUBECONFIG: '' };
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b' } });
    api.create(secret('regcred', 'default'));
    api.create(secret('teamcred', 'team-b'));
    api.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'default', namespace: 'default' },
    });
    api.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'builder', namespace: 'default' },
      imagePullSecrets: [{ name: 'regcred' }],
    });
    api.create({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'node-a' },
      status: { images: [{ names: [`${reg.host}/app@${digest}`, `${reg.host}/app:1`], sizeBytes: 12345 }] },
    });
    const waiting = {
      containerStatuses: [
        {
          name: 'app',
          image: `${reg.host}/app:1`,
          ready: false,
          restartCount: 0,
          imageID: '',
          state: {
            waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${reg.host}/app:1"` },
          },
        },
      ],
    };
    api.create(pod('with-secret', { imagePullSecrets: [{ name: 'regcred' }] }));
    api.create(
      pod(
        'other-ns',
        {
          imagePullSecrets: [{ name: 'teamcred' }],
          containers: [{ name: 'app', image: `${reg.host}/app:1`, imagePullPolicy: 'Always' }],
        },
        waiting,
      ),
    );
    api.create(
      pod('via-sa', {
        serviceAccountName: 'builder',
        containers: [{ name: 'app', image: `${reg.host}/app:1`, imagePullPolicy: 'Always' }],
      }),
    );
    api.create(pod('missing', { imagePullSecrets: [{ name: 'nope' }] }, waiting));
    api.create({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            imagePullSecrets: [{ name: 'regcred' }],
            containers: [{ name: 'web', image: `${reg.host}/app:1`, imagePullPolicy: 'Always' }],
          },
        },
      },
    });
  });
  after(async () => {
    await api?.close();
    if (reg !== undefined) await stopRegistries([reg]);
    if (dir) await removeTempDir(dir);
  });

  async function explain(
    args: string[],
    extraEnv: NodeJS.ProcessEnv = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = await runCommand(
      'node',
      [CLI, 'explain', ...args, '--root', join(dir, 'root'), '--plain-http', reg.host],
      { env: { ...env, ...extraEnv }, allowFailure: true, timeoutMs: 60_000 },
    );
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(CANARY), 'no credential in any output');
    return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  test('a Secret of the pod namespace is used; presence from Node.status.images; each fact names its source', async () => {
    const r = await explain(['pod/with-secret', '--kubeconfig', kubeconfig, '--resolve', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const x = JSON.parse(r.stdout);
    assert.equal(x.pod.node, 'node-a');
    assert.match(x.sources.pod, /API server: pods default\/with-secret/);
    assert.match(x.sources.presence, /Node\.status\.images of node node-a/);
    assert.match(x.sources.registry, /pod's credentials/);
    assert.deepEqual(x.secrets, [{ name: 'regcred', namespace: 'default', via: 'pod', found: true }]);
    const c = x.containers[0];
    assert.equal(c.presence.present, true);
    assert.equal(c.presence.imageId, digest);
    assert.deepEqual(
      c.credentials.matches.map((m: { source: string }) => m.source),
      ['secret default/regcred'],
    );
    assert.equal(c.decision.action, 'use');
    const text = await explain(['pod/with-secret', '--kubeconfig', kubeconfig]);
    assert.match(text.stdout, /Facts from:/);
    assert.match(text.stdout, /default\/regcred \(listed by the pod\): found/);
  });

  test('a Secret of another namespace is refused: never read, the pull would be anonymous and fail', async () => {
    api.clearRequests();
    const r = await explain(['pod/other-ns', '--kubeconfig', kubeconfig, '--resolve', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const x = JSON.parse(r.stdout);
    assert.equal(x.secrets[0].found, false);
    assert.deepEqual(x.warnings, [
      {
        reason: 'FailedToRetrieveImagePullSecret',
        message:
          'Unable to retrieve some image pull secrets (teamcred); attempting to pull the image may not succeed.',
      },
    ]);
    const c = x.containers[0];
    assert.deepEqual(c.credentials.matches, []);
    assert.equal(c.resolved.error.code, 'UNAUTHORIZED');
    assert.deepEqual(x.reported, [
      { container: 'app', reason: 'ImagePullBackOff', message: `Back-off pulling image "${reg.host}/app:1"` },
    ]);
    const log = api.requests();
    assert.ok(
      log.some(
        (q) =>
          q.resource === 'secrets' && q.namespace === 'default' && q.name === 'teamcred' && q.status === 404,
      ),
    );
    assert.ok(
      log.every((q) => q.namespace !== 'team-b'),
      'nothing read in namespace team-b',
    );
  });

  test("the ServiceAccount's Secret when the pod lists none; a missing Secret's warning text", async () => {
    const sa = JSON.parse(
      (await explain(['pod/via-sa', '--kubeconfig', kubeconfig, '--resolve', '-o', 'json'])).stdout,
    );
    assert.deepEqual(sa.secrets, [
      { name: 'regcred', namespace: 'default', via: 'service-account', found: true },
    ]);
    assert.deepEqual(
      sa.containers[0].credentials.matches.map((m: { source: string }) => m.source),
      ['secret default/regcred (via serviceaccount builder)'],
    );
    assert.equal(sa.containers[0].resolved.digest, digest);
    const missing = await explain(['pod/missing', '--kubeconfig', kubeconfig]);
    assert.equal(missing.code, 0, missing.stderr);
    assert.match(
      missing.stdout,
      /Warning {2}FailedToRetrieveImagePullSecret {2}Unable to retrieve some image pull secrets \(nope\); attempting to pull the image may not succeed\./,
    );
    assert.match(missing.stdout, /Kubelet reports:\n {2}app: ImagePullBackOff/);
  });

  test('deployment/NAME explains its pod template; pods -n lists the pods stuck on images and why', async () => {
    const d = JSON.parse(
      (await explain(['deployment/web', '--kubeconfig', kubeconfig, '--resolve', '-o', 'json'])).stdout,
    );
    assert.equal(d.target.kind, 'deployment');
    assert.equal(d.containers[0].container, 'web');
    assert.equal(d.containers[0].resolved.digest, digest);
    const s = await explain(['pods', '--kubeconfig', kubeconfig, '-n', 'default']);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^POD +CONTAINER +IMAGE +REASON +WHY/);
    assert.match(
      s.stdout,
      /other-ns +app +\S+ +ImagePullBackOff +Unable to retrieve some image pull secrets \(teamcred\)/,
    );
    assert.match(s.stdout, /missing +app/);
    assert.doesNotMatch(s.stdout, /with-secret|via-sa/);
    assert.match(s.stdout, /2 of 4 pods' containers wait on their image in namespace default/);
  });

  test("--node-name of the pod's node: presence from this node's runtime (kimg's store), not Node.status", async () => {
    const r = await explain([
      'pod/with-secret',
      '--kubeconfig',
      kubeconfig,
      '--node-name',
      'node-a',
      '-o',
      'json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const x = JSON.parse(r.stdout);
    assert.match(x.sources.presence, /^this node's runtime \(node node-a: kimg store /);
    assert.ok(x.sources.presence.includes(join(dir, 'root')), x.sources.presence);
    // The Node reports the image; kimg's store on this machine does not hold it.
    assert.equal(x.containers[0].presence.present, false);
    assert.equal(x.containers[0].decision.action, 'pull');
    const elsewhere = await explain([
      'pod/with-secret',
      '--kubeconfig',
      kubeconfig,
      '--node-name',
      'node-b',
      '-o',
      'json',
    ]);
    assert.match(JSON.parse(elsewhere.stdout).sources.presence, /Node\.status\.images of node node-a/);
  });

  test("--node-name with --containerd: presence from a real containerd's store", async () => {
    const ctrd = await startContainerd({ cri: false });
    try {
      const pulled = await runCommand(
        'node',
        [
          CLI,
          'pull',
          `${reg.host}/app:1`,
          '--containerd',
          ctrd.socket,
          '--plain-http',
          reg.host,
          '--creds',
          `${reg.username}:${CANARY}`,
          '-o',
          'json',
        ],
        { env, allowFailure: true, timeoutMs: 120_000 },
      );
      assert.equal(pulled.code, 0, pulled.stderr);
      const id = (JSON.parse(pulled.stdout) as { id: string }).id;
      const args = ['pod/with-secret', '--kubeconfig', kubeconfig, '--node-name', 'node-a'];
      const r = await explain([...args, '--containerd', ctrd.socket, '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const x = JSON.parse(r.stdout);
      assert.equal(
        x.sources.presence,
        `this node's runtime (node node-a: containerd ${ctrd.socket}, namespace k8s.io)`,
      );
      const c = x.containers[0];
      assert.equal(c.presence.present, true);
      assert.equal(c.presence.imageId, id);
      assert.ok(c.presence.names.includes(`${reg.host}/app:1`), c.presence.names.join(' '));
      assert.equal(c.decision.action, 'use');
      // Without the flag the same machine's kimg store answers (it does not hold the image).
      const local = JSON.parse((await explain([...args, '-o', 'json'])).stdout);
      assert.equal(local.containers[0].presence.present, false);
    } finally {
      await ctrd.stop();
    }
  });

  test('RBAC denial of a Secret: coded error naming the verb and resource (exit 4)', async () => {
    const denied = await api.writeKubeconfig('no-secrets', { namespace: 'default' });
    const r = await explain(['pod/with-secret', '--kubeconfig', denied]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /RBAC denies get secrets "regcred" in namespace "default"/);
    assert.match(r.stderr, /KUBE_FORBIDDEN/);
    const nf = await explain(['pod/absent', '--kubeconfig', kubeconfig]);
    assert.equal(nf.code, 3);
    assert.match(nf.stderr, /pods "absent" not found/);
    const ns = await explain(['pods', '--kubeconfig', kubeconfig, '-n', 'no-such-ns']);
    assert.equal(ns.code, 3);
    assert.match(ns.stderr, /namespaces "no-such-ns" not found/);
  });

  test('the ServiceAccount is read only when the pod lists no Secrets', async () => {
    const noSa = await api.writeKubeconfig('no-serviceaccounts', { namespace: 'default' });
    api.clearRequests();
    const r = await explain(['pod/with-secret', '--kubeconfig', noSa, '--resolve', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      JSON.parse(r.stdout).containers[0].credentials.matches.map((m: { source: string }) => m.source),
      ['secret default/regcred'],
    );
    assert.deepEqual(
      api.requests().filter((q) => q.resource === 'serviceaccounts'),
      [],
      'no ServiceAccount read for a pod that lists its Secrets',
    );
    const viaSa = await explain(['pod/via-sa', '--kubeconfig', noSa]);
    assert.equal(viaSa.code, 4);
    assert.match(viaSa.stderr, /RBAC denies get serviceaccounts "builder" in namespace "default"/);
  });

  test('--token-request: a provider with tokenAttributes gets a pod-bound TokenRequest token', async () => {
    const bin = join(dir, 'plugins');
    await mkdir(bin, { recursive: true });
    const response = {
      kind: 'CredentialProviderResponse',
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      cacheKeyType: 'Registry',
      auth: { [reg.host]: { username: reg.username, password: CANARY } },
    };
    // Answers only for a token of the double for the audience, ServiceAccount default/tok and a pod.
    await writeFile(
      join(bin, 'sa-plugin'),
      [
        `#!${process.execPath}`,
        'let input = "";',
        "process.stdin.on('data', (c) => (input += c));",
        "process.stdin.on('end', () => {",
        '  const req = JSON.parse(input);',
        '  let claims = {};',
        "  try { claims = JSON.parse(Buffer.from(String(req.serviceAccountToken).split('.')[1], 'base64url').toString()); } catch {}",
        `  const ok = Array.isArray(claims.aud) && claims.aud.includes(${JSON.stringify(AUDIENCE)}) &&`,
        "    claims.sub === 'system:serviceaccount:default:tok' && claims['kubernetes.io']?.pod?.name === 'token-pod';",
        "  if (!ok) { process.stderr.write('no valid token\\n'); process.exit(1); }",
        `  process.stdout.write(${JSON.stringify(JSON.stringify(response))});`,
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
    api.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'tok', namespace: 'default', annotations: { 'registry.example/role': 'puller' } },
    });
    const created = api.create(
      pod('token-pod', {
        serviceAccountName: 'tok',
        containers: [{ name: 'app', image: `${reg.host}/app:1`, imagePullPolicy: 'Always' }],
      }),
    ) as { metadata: { uid: string } };
    const argsWith = (kc: string): string[] => [
      'pod/token-pod',
      '--kubeconfig',
      kc,
      '--config',
      config,
      '--resolve',
      '-o',
      'json',
    ];
    const args = argsWith(kubeconfig);

    // Not asked for: the provider is skipped and says why; no token is minted.
    const without = await explain(args);
    assert.equal(without.code, 0, without.stderr);
    const w = JSON.parse(without.stdout).containers[0];
    assert.deepEqual(w.credentials.matches, [], JSON.stringify(w, null, 1));
    assert.match(
      JSON.stringify(w.credentials.problems),
      /no service-account token source is configured/,
      without.stdout,
    );
    assert.equal(w.resolved.error.code, 'UNAUTHORIZED');
    assert.deepEqual(api.tokenRequests(), []);

    const withTokens = await explain([...args, '--token-request']);
    assert.equal(withTokens.code, 0, withTokens.stderr);
    const c = JSON.parse(withTokens.stdout).containers[0];
    assert.deepEqual(
      c.credentials.matches.map((m: { source: string }) => m.source),
      ['plugin sa-plugin (serviceaccount default/tok)'],
      withTokens.stdout,
    );
    assert.equal(c.resolved.digest, digest);
    assert.deepEqual(api.tokenRequests(), [
      {
        namespace: 'default',
        serviceAccount: 'tok',
        audiences: [AUDIENCE],
        expirationSeconds: 3600,
        boundPod: { name: 'token-pod', uid: created.metadata.uid },
        user: 'admin',
      },
    ]);
    assert.doesNotMatch(withTokens.stdout + withTokens.stderr, /kimg-double/, 'no token in the output');

    // Without create on serviceaccounts/token: skipped, naming the missing grant.
    const denied = await explain([
      ...argsWith(await api.writeKubeconfig('no-tokens', { namespace: 'default' })),
      '--token-request',
    ]);
    assert.equal(denied.code, 0, denied.stderr);
    const d = JSON.parse(denied.stdout).containers[0];
    assert.deepEqual(d.credentials.matches, []);
    assert.match(
      JSON.stringify(d.credentials.problems),
      /RBAC denies create serviceaccounts\/token \\"tok\\" in namespace \\"default\\"/,
    );
    const both = await explain([...args, '--token-request', '--service-account-token-dir', dir]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--token-request or --service-account-token-dir/);
  });

  test('as a kubectl plugin: kubectl kimg explain pod/NAME', async () => {
    const kubectl = requireBinary('kubectl');
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'kubectl-kimg'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
    await chmod(join(bin, 'kubectl-kimg'), 0o755);
    const r = await runCommand(
      kubectl,
      ['kimg', 'explain', 'pod/with-secret', '-o', 'json', '--root', join(dir, 'root')],
      {
        env: { ...env, PATH: `${bin}:${process.env.PATH ?? ''}`, KUBECONFIG: kubeconfig },
        allowFailure: true,
        timeoutMs: 60_000,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).containers[0].credentials.matches[0].source, 'secret default/regcred');
  });
});
