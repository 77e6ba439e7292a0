/**
 * The admission webhook and `kimg pin` against the real distribution registry with Basic auth:
 * AdmissionReviews POSTed over HTTPS (throw-away CA) to the running webhook, the returned JSON Patch
 * applied with fast-json-patch; a multi-arch image pins to its index digest; a tag moved between two
 * requests is seen only after the cache TTL (injected clock); `kimg admission serve` as a process
 * (SIGTERM); `kimg pin` round-trips a commented multi-document file. The canary password must never
 * appear in a response, a log line or CLI output.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { Agent, request } from 'undici';
import {
  DEFAULT_ADMISSION_POLICY,
  ResolutionCache,
  registryResolver,
  startAdmissionServer,
  type AdmissionPolicy,
  type AdmissionServer,
} from '../../src/admission/index.js';
import { runCli } from '../../src/cli/program.js';
import type { CliContext } from '../../src/cli/context.js';
import { buildKeyring, parseKubernetesObjects, pullSecretsFromObjects } from '../../src/credentials/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { makeTlsFiles, type TlsFiles } from '../helpers/certs.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, spawnTracked, waitFor, type TrackedProcess } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { Sink } from '../helpers/output.js';

const CANARY = 'Admission-Canary-Pw-7f3e';
const CANARY_B64 = Buffer.from(`kimg:${CANARY}`).toString('base64');

function assertNoCanary(text: string, where: string): void {
  assert.ok(!text.includes(CANARY), `the password leaked into ${where}`);
  assert.ok(!text.includes(CANARY_B64), `the encoded credentials leaked into ${where}`);
}

function secretYaml(host: string, password: string): string {
  const cfg = JSON.stringify({ auths: { [host]: { username: 'kimg', password } } });
  return [
    '# pull secret given to the webhook',
    'apiVersion: v1',
    'kind: Secret',
    'metadata: {name: regcred, namespace: webhook}',
    'type: kubernetes.io/dockerconfigjson',
    'stringData:',
    `  .dockerconfigjson: '${cfg}'`,
    '',
  ].join('\n');
}

describe('admission webhook and kimg pin against a Basic-auth registry', () => {
  let work = '';
  let reg: StartedRegistry | undefined;
  let tls: TlsFiles;
  let multi: GeneratedImage;
  let one: GeneratedImage;
  let two: GeneratedImage;
  let agent: Agent;
  let client: RegistryClient;
  let server: AdmissionServer | undefined;
  let now = 0;
  const logs: string[] = [];
  const procs: TrackedProcess[] = [];
  const POLICY: AdmissionPolicy = { ...DEFAULT_ADMISSION_POLICY, alwaysPullImages: true, cacheTTLMs: 60_000 };

  before(async () => {
    work = await makeTempDir('admission-');
    [reg, tls] = await Promise.all([
      startRegistry({ mode: 'basic', password: CANARY }),
      makeTlsFiles(join(work, 'tls')),
    ]);
    const platforms = [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ];
    [multi, one, two] = await Promise.all([
      generateImage(join(work, 'multi'), { name: 'multi', layers: [{ size: 2000 }], platforms }),
      generateImage(join(work, 'one'), { name: 'one', layers: [{ size: 1000 }] }),
      generateImage(join(work, 'two'), { name: 'two', layers: [{ size: 1000 }] }),
    ]);
    await skopeoPush(multi, reg, 'multi:1');
    await skopeoPush(one, reg, 'app:1');
    await skopeoPush(one, reg, 'app:moving');
    agent = new Agent({ connect: { ca: await readFile(tls.caFile, 'utf8') } });
    // Credentials come from a Secret given to the webhook (credentials module → keyring).
    const objects = parseKubernetesObjects(secretYaml(reg.host, CANARY), 'secret.yaml');
    const podSecrets = pullSecretsFromObjects(objects, { namespace: 'webhook' });
    assert.equal(podSecrets.secrets.length, 1);
    client = new RegistryClient({ plainHttp: [reg.host] });
    const cache = new ResolutionCache(registryResolver({ client, keyring: buildKeyring({ podSecrets }) }), {
      ttlMs: POLICY.cacheTTLMs,
      now: () => now,
    });
    server = await startAdmissionServer({
      listen: '127.0.0.1:0',
      tlsCert: await readFile(tls.certFile),
      tlsKey: await readFile(tls.keyFile),
      policy: POLICY,
      resolve: cache.resolver,
      log: (l) => logs.push(l),
    });
  });

  after(async () => {
    for (const p of procs) await killProcess(p);
    await server?.close();
    await client?.close();
    await agent?.close();
    await reg?.stop();
    if (work) await removeTempDir(work);
    assertNoCanary(logs.join('\n'), 'the webhook log');
  });

  async function post(
    body: unknown,
    url = server?.url ?? '',
  ): Promise<{ status: number; json: any; text: string }> {
    const res = await request(`${url}/mutate`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    assertNoCanary(text, 'a webhook response');
    return { status: res.statusCode, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
  }

  let uid = 0;
  /** POSTs an AdmissionReview, checks the envelope, applies the patch to the request's object. */
  async function review(req: Record<string, unknown>, url?: string) {
    const id = `uid-${++uid}`;
    const { status, json } = await post(
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: id,
          operation: 'CREATE',
          namespace: 'default',
          userInfo: { username: 'alice' },
          ...req,
        },
      },
      url,
    );
    assert.equal(status, 200);
    assert.equal(json.apiVersion, 'admission.k8s.io/v1');
    assert.equal(json.kind, 'AdmissionReview');
    const res = json.response;
    assert.equal(res.uid, id);
    const ops = res.patch ? JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8')) : [];
    if (res.patch) assert.equal(res.patchType, 'JSONPatch');
    const patched = req['object']
      ? jsonpatch.applyPatch(structuredClone(req['object']), ops, true, false).newDocument
      : undefined;
    return { res, ops, patched: patched as any };
  }

  const PODS = { group: '', version: 'v1', resource: 'pods' };
  const pod = (spec: Record<string, unknown>) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p' },
    spec,
  });

  test('Pod CREATE: multi-arch image pinned to the index digest, Always on every container', async () => {
    const h = reg!.host;
    const object = pod({
      initContainers: [{ name: 'init', image: `${h}/app:1` }],
      containers: [{ name: 'web', image: `${h}/multi:1`, imagePullPolicy: 'IfNotPresent' }],
      ephemeralContainers: [{ name: 'dbg', image: `${h}/app:1` }],
    });
    const { res, patched } = await review({
      resource: PODS,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      object,
    });
    assert.equal(res.allowed, true);
    assert.match(multi.mediaType, /index/);
    assert.ok(!multi.manifests.some((m) => m.digest === multi.digest));
    assert.deepEqual(patched.spec.containers, [
      { name: 'web', image: `${h}/multi:1@${multi.digest}`, imagePullPolicy: 'Always' },
    ]);
    assert.deepEqual(patched.spec.initContainers, [
      { name: 'init', image: `${h}/app:1@${one.digest}`, imagePullPolicy: 'Always' },
    ]);
    assert.deepEqual(patched.spec.ephemeralContainers, [
      { name: 'dbg', image: `${h}/app:1@${one.digest}`, imagePullPolicy: 'Always' },
    ]);
  });

  test('Deployment CREATE: the pod template is pinned', async () => {
    const object = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: {
        replicas: 2,
        template: { spec: { containers: [{ name: 'web', image: `${reg!.host}/multi:1` }] } },
      },
    };
    const { res, patched } = await review({
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      object,
    });
    assert.equal(res.allowed, true);
    assert.deepEqual(patched.spec.template.spec.containers, [
      { name: 'web', image: `${reg!.host}/multi:1@${multi.digest}` },
    ]);
  });

  test('CronJob with init and ephemeral containers', async () => {
    const h = reg!.host;
    const object = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'nightly' },
      spec: {
        schedule: '0 3 * * *',
        jobTemplate: {
          spec: {
            template: {
              spec: {
                initContainers: [{ name: 'i', image: `${h}/app:1` }],
                containers: [{ name: 'c', image: `${h}/multi:1` }],
                ephemeralContainers: [{ name: 'e', image: `${h}/multi:1@${multi.digest}` }],
              },
            },
          },
        },
      },
    };
    const { patched } = await review({
      resource: { group: 'batch', version: 'v1', resource: 'cronjobs' },
      object,
    });
    const spec = patched.spec.jobTemplate.spec.template.spec;
    assert.equal(spec.initContainers[0].image, `${h}/app:1@${one.digest}`);
    assert.equal(spec.containers[0].image, `${h}/multi:1@${multi.digest}`);
    assert.equal(spec.ephemeralContainers[0].image, `${h}/multi:1@${multi.digest}`);
  });

  test('UPDATE: an unchanged pod is left alone; a new image is pinned and makes every container Always', async () => {
    const h = reg!.host;
    const old = pod({ containers: [{ name: 'a', image: `${h}/app:1`, imagePullPolicy: 'IfNotPresent' }] });
    const same = await review({
      operation: 'UPDATE',
      resource: PODS,
      object: structuredClone(old),
      oldObject: old,
    });
    assert.equal(same.res.allowed, true);
    assert.equal(same.res.patch, undefined);
    const object = pod({
      containers: [
        { name: 'a', image: `${h}/app:1`, imagePullPolicy: 'IfNotPresent' },
        { name: 'b', image: `${h}/multi:1` },
      ],
    });
    const { patched } = await review({ operation: 'UPDATE', resource: PODS, object, oldObject: old });
    assert.deepEqual(patched.spec.containers, [
      { name: 'a', image: `${h}/app:1`, imagePullPolicy: 'Always' },
      { name: 'b', image: `${h}/multi:1@${multi.digest}`, imagePullPolicy: 'Always' },
    ]);
  });

  test('a subresource request (pods/ephemeralcontainers) is allowed unchanged', async () => {
    const h = reg!.host;
    const old = pod({ containers: [{ name: 'a', image: `${h}/app:1` }] });
    const object = pod({
      containers: [{ name: 'a', image: `${h}/app:1` }],
      ephemeralContainers: [{ name: 'dbg', image: `${h}/multi:1` }],
    });
    const { res, ops } = await review({
      operation: 'UPDATE',
      resource: PODS,
      subResource: 'ephemeralcontainers',
      object,
      oldObject: old,
    });
    assert.equal(res.allowed, true);
    assert.deepEqual(ops, []);
  });

  test('a tag moved between two requests: the old digest within the TTL, the new one after it', async () => {
    const image = `${reg!.host}/app:moving`;
    const object = pod({ containers: [{ name: 'a', image }] });
    const first = await review({ resource: PODS, object });
    assert.equal(first.patched.spec.containers[0].image, `${image}@${one.digest}`);
    await skopeoPush(two, reg!, 'app:moving');
    assert.notEqual(two.digest, one.digest);
    now += 59_000;
    const cached = await review({ resource: PODS, object });
    assert.equal(cached.patched.spec.containers[0].image, `${image}@${one.digest}`, 'within the TTL');
    now += 2_000;
    const fresh = await review({ resource: PODS, object });
    assert.equal(fresh.patched.spec.containers[0].image, `${image}@${two.digest}`, 'after the TTL');
  });

  test('dryRun requests get the same patch', async () => {
    const object = pod({ containers: [{ name: 'a', image: `${reg!.host}/multi:1` }] });
    const dry = await review({ resource: PODS, object, dryRun: true });
    const real = await review({ resource: PODS, object });
    assert.equal(dry.patched.spec.containers[0].image, `${reg!.host}/multi:1@${multi.digest}`);
    assert.deepEqual(dry.ops, real.ops);
    assert.ok(logs.some((l) => / dryRun/.test(l)));
  });

  test('an image the registry does not have: denied (failurePolicy Fail) with the reason', async () => {
    const { res } = await review({
      resource: PODS,
      object: pod({
        containers: [
          { name: 'a', image: `${reg!.host}/ghost:1` },
          { name: 'b', image: `${reg!.host}/app:1` },
        ],
      }),
    });
    assert.equal(res.allowed, false);
    assert.equal(res.status.code, 403);
    assert.match(res.status.message, /spec\.containers\[0\]\.image ".*\/ghost:1"/);
    assert.equal(res.patch, undefined);
  });

  test('a body that is not an AdmissionReview is a 400; health checks answer', async () => {
    const bad = await post({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /admissionReviewVersions/);
    assert.equal((await post('not json')).status, 400);
    const health = await request(`${server!.url}/healthz`, { dispatcher: agent });
    assert.equal(health.statusCode, 200);
    assert.equal(await health.body.text(), 'ok\n');
  });

  test('`kimg admission serve` as a process: Secrets for credentials, policy file, SIGTERM', async () => {
    const h = reg!.host;
    const secrets = join(work, 'secret.yaml');
    const policy = join(work, 'policy.yaml');
    await writeFile(secrets, secretYaml(h, CANARY));
    await writeFile(
      policy,
      'pinDigests: true\nalwaysPullImages: false\nfailurePolicy: fail\ndropTag: true\ncacheTTL: 1m\n',
    );
    const stderrFile = join(work, 'serve.stderr');
    const p = spawnTracked(
      'kimg-admission',
      process.execPath,
      [
        join(process.cwd(), 'dist/src/cli/main.js'),
        'admission',
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--tls-cert',
        tls.certFile,
        '--tls-key',
        tls.keyFile,
        '--policy',
        policy,
        '--pull-secrets',
        secrets,
        '--plain-http',
        h,
      ],
      { stderrFile, env: { ...process.env, KIMG_DEBUG: '' } },
    );
    procs.push(p);
    const url = await waitFor(
      'kimg admission serve to listen',
      async () =>
        /listening on (https:\/\/\S+)/.exec(await readFile(stderrFile, 'utf8').catch(() => ''))?.[1],
      { watch: p, timeoutMs: 20_000 },
    );
    const { res, patched } = await review(
      {
        resource: PODS,
        object: pod({ containers: [{ name: 'a', image: `${h}/multi:1`, imagePullPolicy: 'Never' }] }),
      },
      url,
    );
    assert.equal(res.allowed, true);
    assert.deepEqual(patched.spec.containers, [
      { name: 'a', image: `${h}/multi@${multi.digest}`, imagePullPolicy: 'Never' },
    ]);
    const denied = await review(
      { resource: PODS, object: pod({ containers: [{ name: 'a', image: `${h}/ghost:1` }] }) },
      url,
    );
    assert.equal(denied.res.allowed, false);
    process.kill(p.pid, 'SIGTERM');
    const exit = await p.exited;
    assert.equal(exit.code, 0);
    const log = await readFile(stderrFile, 'utf8');
    assert.match(log, /admission uid=uid-\d+ CREATE pods default\/: allowed patch=1/);
    assert.match(log, /denied/);
    assert.match(log, /kimg admission: stopped/);
    assertNoCanary(log, 'the kimg admission serve log');
  });

  describe('kimg pin', () => {
    const MANIFEST = (h: string) => `# Team manifests. Reviewed by: ops
apiVersion: v1
kind: Pod
metadata:
  name: web # front
spec:
  initContainers:
  - name: init
    image: ${h}/app:1   # migrations
  containers:
  - name: web
    image: "${h}/multi:1"
    imagePullPolicy: IfNotPresent
---
# the worker
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  template:
    spec:
      containers: [{name: w, image: '${h}/multi:1@${multi.digest}'}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  image: ${h}/app:1
`;

    async function kimg(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
      return kimgWithInput(undefined, ...args);
    }

    async function kimgWithInput(
      input: string | undefined,
      ...args: string[]
    ): Promise<{ status: number; stdout: string; stderr: string }> {
      const stdout = new Sink();
      const stderr = new Sink();
      const ctx: CliContext = { stdout, stderr, env: {}, exitStatus: 0 };
      if (input !== undefined) ctx.stdin = Readable.from([Buffer.from(input)]);
      const status = await runCli(['node', 'kimg', ...args], ctx);
      assertNoCanary(stdout.text + stderr.text, `the output of kimg ${args.join(' ')}`);
      return { status, stdout: stdout.text, stderr: stderr.text };
    }

    async function dockerConfig(): Promise<string> {
      const cfg = join(work, 'config.json');
      await writeFile(cfg, JSON.stringify({ auths: { [reg!.host]: { auth: CANARY_B64 } } }));
      return cfg;
    }

    test('round-trips a commented multi-document file, changing only the image lines', async () => {
      const h = reg!.host;
      const file = join(work, 'pin.yaml');
      const input = MANIFEST(h);
      await writeFile(file, input);
      const r = await kimg('pin', '-f', file, '--plain-http', h, '--docker-config', await dockerConfig());
      assert.equal(r.status, 0, r.stderr);
      const before = input.split('\n');
      const out = r.stdout.split('\n');
      assert.equal(out.length, before.length);
      const changed = before.flatMap((l, i) => (l === out[i] ? [] : [[l, out[i]]]));
      assert.deepEqual(changed, [
        [`    image: ${h}/app:1   # migrations`, `    image: ${h}/app:1@${one.digest}   # migrations`],
        [`    image: "${h}/multi:1"`, `    image: "${h}/multi:1@${multi.digest}"`],
      ]);
      assert.equal(await readFile(file, 'utf8'), input, 'without --in-place the file is not touched');
      assert.match(r.stderr, /spec\.containers\[0\]\.image/);
    });

    test('-f - reads standard input; JSON keeps its layout', async () => {
      const h = reg!.host;
      const json = JSON.stringify(
        { apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'a', image: `${h}/app:1` }] } },
        null,
        2,
      );
      const r = await kimgWithInput(
        json,
        'pin',
        '-f',
        '-',
        '--drop-tag',
        '--plain-http',
        h,
        '--docker-config',
        await dockerConfig(),
      );
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${json.replace(`"${h}/app:1"`, `"${h}/app@${one.digest}"`)}\n`);
      const inPlace = await kimgWithInput(json, 'pin', '-f', '-', '--in-place');
      assert.equal(inPlace.status, 2);
    });

    test('--in-place writes the file; a second run changes nothing', async () => {
      const h = reg!.host;
      const file = join(work, 'inplace.yaml');
      await writeFile(file, MANIFEST(h));
      const cfg = await dockerConfig();
      const r = await kimg('pin', '-f', file, '--in-place', '--plain-http', h, '--docker-config', cfg);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '');
      const pinned = await readFile(file, 'utf8');
      assert.ok(pinned.includes(`${h}/app:1@${one.digest}   # migrations`));
      assert.ok(pinned.includes(`# Team manifests. Reviewed by: ops`));
      const again = await kimg('pin', '-f', file, '--in-place', '--plain-http', h, '--docker-config', cfg);
      assert.equal(again.status, 0, again.stderr);
      assert.equal(await readFile(file, 'utf8'), pinned);
    });

    test('an unresolvable image: per-image errors, non-zero exit, nothing written', async () => {
      const h = reg!.host;
      const file = join(work, 'broken.yaml');
      const input = `${MANIFEST(h)}---\nkind: Pod\napiVersion: v1\nmetadata: {name: bad}\nspec:\n  containers:\n  - {name: x, image: ${h}/ghost:1}\n  - {name: y, image: "${h}/app@sha256:${'0'.repeat(64)}"}\n`;
      await writeFile(file, input);
      const r = await kimg(
        'pin',
        '-f',
        file,
        '--in-place',
        '--plain-http',
        h,
        '--docker-config',
        await dockerConfig(),
      );
      assert.equal(r.status, 3, r.stderr); // NOT_FOUND
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /spec\.containers\[0\]\.image ".*\/ghost:1"/);
      assert.match(r.stderr, /spec\.containers\[1\]\.image ".*\/app@sha256:0{64}"/);
      assert.match(r.stderr, /2 image\(s\) could not be pinned; nothing was written/);
      assert.equal(await readFile(file, 'utf8'), input);
    });

    test('without credentials the registry refuses: exit status of UNAUTHORIZED, nothing printed on stdout', async () => {
      const h = reg!.host;
      const file = join(work, 'noauth.yaml');
      await writeFile(file, MANIFEST(h));
      const r = await kimg('pin', '-f', file, '--plain-http', h);
      assert.equal(r.status, 4, r.stderr);
      assert.equal(r.stdout, '');
    });
  });
});
