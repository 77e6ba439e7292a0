/**
 * The node agent end to end: `startNodeAgent` with a static pod directory and
 * real registries (plain + Basic auth). Manifests are added (public image, private image with a pull
 * Secret from the secrets dir, a typo, `Never` with an absent image), edited (decoded and defaulted
 * afresh like the kubelet's file source; a fixed typo pulls at once: a changed manifest restarts the back-off) and
 * removed; the pods' states, events, metrics, `/healthz`, the CRI socket served at the same time,
 * `kimg get pods` / `kimg describe pod`, and image GC (forced by a usage source above the high
 * threshold) removing the image of a removed pod but not those in use. Needs docker-registry and
 * skopeo (fails, never skips).
 */
import assert from 'node:assert/strict';
import { rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import type { CliContext } from '../../src/cli/context.js';
import { parseNodeConfig } from '../../src/config/index.js';
import { buildDockerRegistrySecret } from '../../src/credentials/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { FakeUsageSource } from '../../src/testing/index.js';
import {
  startNodeAgent,
  podStatus,
  type AgentLogEntry,
  type NodeAgent,
  type PodView,
} from '../../src/node/index.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { waitFor } from '../helpers/proc.js';
import { startRegistries, startRegistry, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { toYaml } from '../../src/cli/output.js';
import { Sink } from '../helpers/output.js';

async function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const ctx: CliContext = { stdout, stderr, env: { ...process.env }, exitStatus: 0 };
  const status = await runCli(['node', 'kimg', ...args], ctx);
  return { status, stdout: stdout.text, stderr: stderr.text };
}

function podYaml(name: string, image: string, extra: { policy?: string; secret?: string } = {}): string {
  const lines = ['apiVersion: v1', 'kind: Pod', 'metadata:', `  name: ${name}`, 'spec:'];
  if (extra.secret !== undefined) lines.push('  imagePullSecrets:', `  - name: ${extra.secret}`);
  lines.push('  containers:', '  - name: main', `    image: ${image}`);
  if (extra.policy !== undefined) lines.push(`    imagePullPolicy: ${extra.policy}`);
  return lines.join('\n') + '\n';
}

describe('kimg node: the node agent end to end', () => {
  let plain: StartedRegistry;
  let basic: StartedRegistry;
  let work: string;
  let manifests: string;
  let agent: NodeAgent | undefined;
  const logs: AgentLogEntry[] = [];
  const images: Record<string, GeneratedImage> = {};
  const statusHistory = new Map<string, string[]>();

  before(async () => {
    ({ plain, basic } = (await startRegistries(['plain', 'basic'])) as {
      plain: StartedRegistry;
      basic: StartedRegistry;
    });
    work = await makeTempDir('node-agent-');
    manifests = join(work, 'manifests');
    await mkdir(manifests);
    await mkdir(join(work, 'secrets'));
    for (const [name, tag, reg] of [
      ['app', '1', plain],
      ['app', 'latest', plain],
      ['private', '1', basic],
    ] as const) {
      const img = await generateImage(join(work, 'layouts', `${name}-${tag}`), {
        name,
        tag,
        layers: [{ size: 4096 }, { size: 2048, kind: 'text' }],
      });
      await skopeoPush(img, reg, `${name}:${tag}`);
      images[`${name}:${tag}`] = img;
    }
    const secret = await buildDockerRegistrySecret({
      name: 'regcred',
      server: basic.host,
      username: basic.username ?? '',
      password: basic.password ?? '',
    });
    await writeFile(join(work, 'secrets', 'regcred.yaml'), toYaml(secret));
  });

  after(async () => {
    await agent?.close();
    await stopRegistries([plain, basic].filter((r) => r !== undefined));
    if (work !== undefined) await removeTempDir(work);
  });

  const pod = (name: string): PodView | undefined => agent?.state.get(`default/${name}-node1`);
  const status = (name: string): string | undefined => {
    const p = pod(name);
    return p === undefined ? undefined : podStatus(p);
  };
  const waitStatus = (name: string, want: string, timeoutMs = 20_000): Promise<true> =>
    waitFor(`pod ${name} ${want}`, () => (status(name) === want ? true : undefined), {
      timeoutMs,
      intervalMs: 20,
      describe: async () =>
        JSON.stringify(agent?.state.list(), null, 1) + '\n' + JSON.stringify(logs.slice(-10)),
    });

  test('starts on an empty manifest dir, serves /healthz, metrics and the CRI socket', async () => {
    const config = parseNodeConfig(
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        `staticPodPath: ${manifests}`,
        'serializeImagePulls: false',
        'imageGCHighThresholdPercent: 85',
        'imageGCLowThresholdPercent: 80',
        'imageMinimumGCAge: 1ms',
        'kimg:',
        `  rootDir: ${join(work, 'root')}`,
      ].join('\n'),
    );
    agent = await startNodeAgent({
      config,
      secretsDir: join(work, 'secrets'),
      metricsAddr: '127.0.0.1:0',
      criListen: join(work, 'cri.sock'),
      registry: { plainHttp: [plain.host, basic.host] },
      nodeName: 'node1',
      resyncMs: 300,
      rescanMs: 500,
      gcPeriodMs: 3_600_000,
      // 90% used: above the high threshold, so a GC run frees every image not in use.
      usage: new FakeUsageSource(1_000_000_000, 100_000_000),
      nodeDockerConfig: false,
      log: (e) => void logs.push(e),
    });
    agent.state.on('change', () => {
      for (const p of agent?.state.list() ?? []) {
        const h = statusHistory.get(p.name) ?? [];
        const s = podStatus(p);
        if (h[h.length - 1] !== s) h.push(s);
        statusHistory.set(p.name, h);
      }
    });
    assert.ok(agent.url?.startsWith('http://127.0.0.1:'));
    const health = await fetch(`${agent.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');
    const m = await (await fetch(`${agent.url}/metrics`)).text();
    assert.match(m, /# TYPE kubelet_image_pull_duration_seconds histogram/);
    assert.match(m, /# TYPE kimg_image_pulls_in_progress gauge/);
    const pods = (await (await fetch(`${agent.url}/api/pods`)).json()) as { pods: unknown[] };
    assert.deepEqual(pods.pods, []);
    assert.ok(agent.criAddress?.startsWith('unix://'));
  });

  test('added manifests: public and private pods get their images, a typo backs off, Never fails', async () => {
    await writeFile(join(manifests, 'web.yaml'), podYaml('web', `${plain.host}/app:1`));
    await writeFile(
      join(manifests, 'private.yaml'),
      podYaml('private', `${basic.host}/private:1`, { secret: 'regcred' }),
    );
    await writeFile(join(manifests, 'typo.yaml'), podYaml('typo', `${plain.host}/aap:1`));
    await writeFile(
      join(manifests, 'never.yaml'),
      podYaml('never', `${plain.host}/absent:1`, { policy: 'Never' }),
    );
    await waitStatus('web', 'ImagesReady');
    await waitStatus('private', 'ImagesReady');
    await waitStatus('never', 'ErrImageNeverPull');
    await waitStatus('typo', 'ImagePullBackOff');
    assert.deepEqual(
      statusHistory
        .get('typo-node1')
        ?.filter((s) => s === 'ErrImagePull' || s === 'ImagePullBackOff')
        .slice(0, 2),
      ['ErrImagePull', 'ImagePullBackOff'],
    );
    const web = pod('web');
    assert.equal(web?.containers[0]?.imageRef, images['app:1']?.manifests[0]?.config.digest);
    assert.equal(web?.containers[0]?.imagePullPolicy, 'IfNotPresent');
    const typo = pod('typo');
    assert.ok(
      (typo?.containers[0]?.nextRetryAt ?? 0) > Date.now() - 1000,
      'the back-off shows the next retry',
    );
    assert.match(typo?.containers[0]?.lastError ?? '', /ErrImagePull/);

    // Events, kubectl-style, per pod.
    const ev = (await (await fetch(`${agent?.url}/api/pods/default/web-node1`)).json()) as {
      events: { reason: string; message: string }[];
    };
    assert.deepEqual(
      ev.events.map((e) => e.reason),
      ['Pulling', 'Pulled'],
    );
    assert.match(ev.events[1]?.message ?? '', /^Successfully pulled image ".*app:1" in /);
    const typoEvents = agent?.state.events({ name: 'typo-node1' }).map((e) => e.reason) ?? [];
    assert.ok(typoEvents.includes('Failed') && typoEvents.includes('BackOff'), typoEvents.join(','));
    const neverEvents = agent?.state.events({ name: 'never-node1' }).map((e) => e.reason) ?? [];
    assert.ok(neverEvents.includes('ErrImageNeverPull'));

    // Metrics: two successful pulls in the 0-10MB bucket, a NOT_FOUND pull error; no secrets, no URLs.
    const m = await (await fetch(`${agent?.url}/metrics`)).text();
    assert.match(m, /kubelet_image_pull_duration_seconds_count\{image_size_in_bytes="0-10MB"\} 2/);
    assert.match(m, /kimg_image_pull_errors_total\{reason="NOT_FOUND"\} [1-9]/);
    assert.match(m, /kimg_image_pulls_in_progress 0/);
    assert.match(m, /kimg_pods\{status="ImagesReady"\} 2/);
    assert.doesNotMatch(m, new RegExp(`${basic.password ?? 'kimgpass'}|127\\.0\\.0\\.1|\\?`));

    // The CRI ImageService is served at the same time, over the same store.
    const criClient = new CriImageService({ endpoint: agent?.criAddress ?? '' });
    try {
      const listed = await criClient.listImages();
      const ids = listed.map((i) => i.id);
      assert.ok(ids.includes(web?.containers[0]?.imageRef ?? ''), ids.join(','));
    } finally {
      criClient.close();
    }
  });

  test('kimg get pods and kimg describe pod against the running agent', async () => {
    const g = await cli(['get', 'pods', '--server', agent?.url ?? '']);
    assert.equal(g.status, 0, g.stderr);
    const lines = g.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
    const row = (n: string): string[] => (lines.find((l) => l.startsWith(`${n}-node1 `)) ?? '').split(/\s+/);
    assert.deepEqual(row('web').slice(0, 4), ['web-node1', '1/1', 'ImagesReady', '0']);
    assert.deepEqual(row('never').slice(0, 3), ['never-node1', '0/1', 'ErrImageNeverPull']);
    assert.match(row('typo')[2] ?? '', /^(ErrImagePull|ImagePullBackOff)$/);
    const j = await cli(['get', 'pods', '--server', agent?.url ?? '', '-o', 'json']);
    assert.equal((JSON.parse(j.stdout) as { items: unknown[] }).items.length, 4);
    const d = await cli(['describe', 'pod', 'typo', '--server', agent?.url ?? '']);
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /^Name:\s+typo-node1$/m);
    assert.match(d.stdout, /Reason:\s+(ErrImagePull|ImagePullBackOff)/);
    assert.match(d.stdout, /Events:\n\s+Type\s+Reason\s+Age\s+From\s+Message/);
    assert.match(d.stdout, /Warning\s+Failed\s+.*kubelet\s+Failed to pull image/);
    const missing = await cli(['describe', 'pod', 'nope', '--server', agent?.url ?? '']);
    assert.equal(missing.status, 3);
    assert.match(missing.stderr, /POD_NOT_FOUND/);
    const down = await cli(['get', 'pods', '--server', 'http://127.0.0.1:1']);
    assert.notEqual(down.status, 0);
    assert.match(down.stderr, /AGENT_UNAVAILABLE/);
  });

  test('edited manifests: defaulted afresh (app:1 → app:latest is Always); a fixed typo pulls at once', async () => {
    const oldWebUid = pod('web')?.uid;
    // app:1 → app:latest: the kubelet's file source decodes and defaults the manifest again: Always.
    await writeFile(join(manifests, 'web.yaml'), podYaml('web', `${plain.host}/app:latest`));
    await waitFor(
      'web pod replaced',
      () => {
        const p = pod('web');
        return p !== undefined && p.uid !== oldWebUid && p.containers[0]?.state === 'Ready' ? p : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    assert.equal(pod('web')?.containers[0]?.imagePullPolicy, 'Always');
    assert.equal(pod('web')?.containers[0]?.imageRef, images['app:latest']?.manifests[0]?.config.digest);
    // The typo pod is in back-off (10 s); fixing the manifest makes a new pod that pulls right away.
    assert.equal(status('typo'), 'ImagePullBackOff');
    await writeFile(join(manifests, 'typo.yaml'), podYaml('typo', `${plain.host}/app:1`));
    await waitStatus('typo', 'ImagesReady', 5000);
    assert.ok(logs.some((l) => l.msg === 'pod changed'));
  });

  test('removed manifests drop the pod and its in-use marks; GC removes the unused image', async () => {
    await rm(join(manifests, 'never.yaml'));
    await rm(join(manifests, 'web.yaml'));
    await waitFor(
      'pods removed',
      () => (pod('never') === undefined && pod('web') === undefined ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 20,
      },
    );
    const api = (await (await fetch(`${agent?.url}/api/pods`)).json()) as { pods: PodView[] };
    assert.deepEqual(
      api.pods.map((p) => p.name),
      ['private-node1', 'typo-node1'],
    );
    const latestId = images['app:latest']?.manifests[0]?.config.digest ?? '';
    const app1Id = images['app:1']?.manifests[0]?.config.digest ?? '';
    const inUse = (await agent?.inUse()) ?? [];
    assert.ok(!inUse.includes(latestId));
    assert.ok(inUse.includes(app1Id));
    const before = await agent?.storeSummary();
    assert.ok(before?.images.some((i) => i.id === latestId));
    const r = await agent?.garbageCollect();
    assert.deepEqual(
      r?.removed.map((x) => x.image.id),
      [latestId],
      JSON.stringify({
        decisions: r?.decisions.map((d) => [d.image.names[0], d.action, d.reason]),
        error: r?.error,
        toFree: r?.toFree,
      }),
    );
    const afterGc = await agent?.storeSummary();
    const ids = afterGc?.images.map((i) => i.id) ?? [];
    assert.ok(!ids.includes(latestId));
    assert.ok(ids.includes(app1Id), 'an image in use is kept');
    assert.equal(afterGc?.gc.lastRun?.removed, 1);
    const m = await (await fetch(`${agent?.url}/metrics`)).text();
    assert.match(m, /kimg_image_garbage_collected_total\{reason="space"\} 1/);
    // The fake usage stays above the threshold: the kubelet's FreeDiskSpaceFailed node event.
    assert.ok(
      agent?.state.events().some((e) => e.object.kind === 'Node' && e.reason === 'FreeDiskSpaceFailed'),
    );
  });

  test('kimg prepull: a list pulled with the same credentials and records, failures reported', async () => {
    const list = join(work, 'prepull.yaml');
    await writeFile(
      list,
      [
        'images:',
        `- ${plain.host}/app:1`,
        `- image: ${basic.host}/private:1`,
        '  secret: regcred',
        `- image: ${plain.host}/nope:1`,
        '',
      ].join('\n'),
    );
    const root = join(work, 'prepull-root');
    const args = ['prepull', '-f', list, '--secrets-dir', join(work, 'secrets'), '--root', root];
    const r = await cli([...args, '--plain-http', plain.host, '--plain-http', basic.host, '-o', 'json']);
    assert.equal(r.status, 3, r.stderr);
    const states = JSON.parse(r.stdout) as {
      image: string;
      state: string;
      imageRef: string;
      code?: string;
    }[];
    assert.deepEqual(
      states.map((x) => x.state),
      ['Present', 'Present', 'Failed'],
    );
    assert.equal(states[1]?.imageRef, images['private:1']?.manifests[0]?.config.digest);
    assert.equal(states[2]?.code, 'NOT_FOUND');
    assert.ok(
      !r.stdout.includes(basic.password ?? 'kimgpass') && !r.stderr.includes(basic.password ?? 'kimgpass'),
    );
    // Invalid lists: every problem at once.
    await writeFile(list, `- image: ''\n- image: ${plain.host}/x:1\n  platform: nope/\n  color: red\n`);
    const bad = await cli(['prepull', '-f', list, '--root', root]);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /images\[0\]: image must be a non-empty string/);
    assert.match(bad.stderr, /images\[1\]: unknown field "color"/);
    assert.match(bad.stderr, /images\[1\]: platform "nope\/"/);
  });

  test('kimg node --once: syncs every pod once, prints them, exits by readiness', async () => {
    const dir = join(work, 'once');
    await mkdir(join(dir, 'manifests'), { recursive: true });
    await writeFile(join(dir, 'manifests', 'one.yaml'), podYaml('one', `${plain.host}/app:1`));
    const cfg = join(dir, 'kubelet.yaml');
    await writeFile(
      cfg,
      `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: manifests\nkimg:\n  rootDir: root\n`,
    );
    const base = ['node', '--config', cfg, '--metrics-addr', '127.0.0.1:0', '--plain-http', plain.host];
    const ok = await cli([...base, '--node-name', 'n2', '--once']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^default\s+one-n2\s+1\/1\s+ImagesReady$/m);
    for (const line of ok.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{')))
      JSON.parse(line);
    await writeFile(join(dir, 'manifests', 'two.yaml'), podYaml('two', `${plain.host}/nope:1`));
    const bad = await cli([...base, '--node-name', 'n2', '--once']);
    // Pods that did not become ready: the documented status 9 and an error line saying why.
    assert.equal(bad.status, 9, bad.stderr);
    assert.match(bad.stdout, /^default\s+two-n2\s+0\/1\s+ErrImagePull$/m);
    assert.match(
      bad.stderr,
      /^error: some pods did not become ready: pod default\/two-n2 \(container \S+: ErrImagePull: .+\) \(PODS_NOT_READY\)$/m,
    );
    assert.doesNotMatch(bad.stderr, /^error: .*one-n2/m);
    assert.doesNotMatch(bad.stderr, /ErrImagePull: ErrImagePull/);
    // --exit-after-settle: a failing pod settles once retried (the back-off shows).
    const settled = await cli([...base, '--node-name', 'n4', '--exit-after-settle', '--resync', '0.2']);
    assert.equal(settled.status, 9, settled.stderr);
    assert.match(
      settled.stderr,
      /^error: .*pod default\/two-n4 \(container \S+: ImagePullBackOff.*\(PODS_NOT_READY\)$/m,
    );
    assert.match(settled.stdout, /^default\s+one-n4\s+1\/1\s+ImagesReady$/m);
    assert.match(settled.stdout, /^default\s+two-n4\s+0\/1\s+ImagePullBackOff$/m);
    const noPath = join(dir, 'empty.yaml');
    await writeFile(noPath, 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n');
    const none = await cli(['node', '--config', noPath, '--once']);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /no staticPodPath/);
  });

  test('no credential in logs, events, API or metrics', async () => {
    const password = basic.password ?? 'kimgpass';
    const everything = [
      JSON.stringify(logs),
      JSON.stringify(agent?.state.events()),
      await (await fetch(`${agent?.url}/api/pods`)).text(),
      await (await fetch(`${agent?.url}/api/store`)).text(),
      await (await fetch(`${agent?.url}/metrics`)).text(),
    ].join('\n');
    assert.ok(!everything.includes(password));
    assert.ok(!everything.includes(Buffer.from(`${basic.username}:${password}`).toString('base64')));
  });
});

describe('kimg node with a CRI backend (containerd)', () => {
  let reg: StartedRegistry | undefined;
  let ctrd: StartedContainerd | undefined;
  let work: string | undefined;
  let agent: NodeAgent | undefined;

  after(async () => {
    await agent?.close();
    await ctrd?.stop();
    await reg?.stop();
    if (work !== undefined) await removeTempDir(work);
  });

  test('pulls a static pod image into containerd through CRI and reports it ready', async () => {
    [ctrd, reg] = await Promise.all([startContainerd(), startRegistry({ mode: 'plain' })]);
    await ctrd.addPlainHttpRegistry(reg.host);
    work = await makeTempDir('node-agent-cri-');
    const img = await generateImage(join(work, 'layout'), { name: 'crictl', layers: [{ size: 4096 }] });
    await skopeoPush(img, reg, 'cri/app:1');
    await mkdir(join(work, 'manifests'));
    await writeFile(join(work, 'manifests', 'c.yaml'), podYaml('c', `${reg.host}/cri/app:1`));
    const config = parseNodeConfig(
      `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerRuntimeEndpoint: ${ctrd.address}\nstaticPodPath: ${join(work, 'manifests')}\nkimg:\n  rootDir: ${join(work, 'root')}\n`,
    );
    agent = await startNodeAgent({
      config,
      imageServiceEndpoint: ctrd.address,
      metricsAddr: null,
      nodeName: 'n3',
      resyncMs: 300,
      nodeDockerConfig: false,
      log: () => undefined,
    });
    const a = agent;
    const ready = await waitFor(
      'pod c ready',
      () => {
        const p = a.state.get('default/c-n3');
        return p !== undefined && podStatus(p) === 'ImagesReady' ? p : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50, describe: async () => JSON.stringify(a.state.list()) },
    );
    assert.equal(ready.containers[0]?.imageRef, img.manifests[0]?.config.digest);
    const listed = await ctrd.ctr(['images', 'ls', '-q'], { namespace: 'k8s.io' });
    assert.match(listed.stdout, new RegExp(`${reg.host.replace(/\./g, '\\.')}/cri/app:1`));
    const summary = await a.storeSummary();
    assert.ok(summary.images.some((i) => i.id === img.manifests[0]?.config.digest));
  });
});
