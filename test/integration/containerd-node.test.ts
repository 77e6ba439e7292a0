/**
 * The node agent and the node commands over containerd: kimg fetches, containerd stores. Two private
 * containerds (1.6, CRI plugin) beside one real registry: `theirs` pulls every image with its own CRI
 * PullImage first (the reference), `ours` only ever receives kimg's pulls. For each path —
 *
 * - `startNodeAgent({containerd})`: a static pod's image and a pre-pull list;
 * - `kimg node --containerd ADDRESS --once`, `kimg prepull --containerd`, `kimg ensure --containerd`;
 * - `kimg pull`, `kimg prepull` and `kimg images` with containerd chosen only by `--config`'s
 *   `kimg.containerd`;
 *
 * containerd's CRI ImageStatus on `ours` equals the reference (id, repo tags, repo digests, size), the
 * blobs carry the labels and the image records the names and labels containerd's own pull gives them,
 * every blob was fetched with kimg's user agent, and containerd's puller was not used (no registry
 * request from containerd after the reference pulls, no PullImage in `ours`'s log).
 *
 * Progress over containerd: while the agent pulls a static pod's image into containerd through a slow
 * link, `/api/pulls/progress` streams its per-layer lines (progress never past total nor going back,
 * the final line with the image's blob bytes), the snapshot lists the pull in flight, and `/metrics`
 * shows it (`kimg_image_pulls_in_progress`, the progress gauges); the same on `kimg serve --containerd
 * --http` while a CRI client's PullImage runs. A pull of a missing tag ends with an error line. Needs containerd, ctr, skopeo and
 * docker-registry (fails, never skips).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseNodeConfig } from '../../src/config/index.js';
import { ContainerdClient } from '../../src/containerd/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { FilePullRecords, type ImageInfo } from '../../src/manager/index.js';
import { podStatus, startNodeAgent, type AgentLogEntry, type NodeAgent } from '../../src/node/index.js';
import type { PullProgressLine } from '../../src/pull/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { criEventually, observeImage } from '../helpers/cri-views.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, spawnTracked, waitFor } from '../helpers/proc.js';
import { startRegistry, type AccessLogEntry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { slowLink, type SlowLink } from '../helpers/slow-link.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { assertStreamedToTheEnd, followProgress } from '../helpers/progress-stream.js';
import { kimgInProcess as kimg } from '../helpers/cli.js';

const MiB = 1024 * 1024;
const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

/** The images of this file, by role → repository:tag in the registry. */
const REPOS = {
  app: 'node/app:1',
  pre: 'node/pre:1',
  once: 'node/once:1',
  prepull: 'cli/prepull:1',
  ensure: 'cli/ensure:1',
  config: 'cli/config:1',
  configPrepull: 'cli/config-prepull:1',
} as const;
type Role = keyof typeof REPOS;

function podYaml(name: string, image: string): string {
  return ['apiVersion: v1', 'kind: Pod', 'metadata:', `  name: ${name}`, 'spec:', '  containers:']
    .concat(['  - name: main', `    image: ${image}`, ''])
    .join('\n');
}

/** A metric's value in a Prometheus text exposition (the first sample of that name). */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  assert.ok(m, `metric ${name} in:\n${text}`);
  return Number(m[1]);
}

describe('the node agent and node commands over containerd: kimg fetches, containerd stores', () => {
  let work = '';
  let reg: StartedRegistry;
  let slow: SlowLink;
  let theirs: StartedContainerd;
  let ours: StartedContainerd;
  let theirsCri: CriImageService;
  let oursCri: CriImageService;
  let theirsClient: ContainerdClient;
  let oursClient: ContainerdClient;
  /** Pulled through the slow link: by the agent, and by kimg serve. */
  let big: GeneratedImage;
  let serveBig: GeneratedImage;
  let agent: NodeAgent | undefined;
  const agentLogs: AgentLogEntry[] = [];
  const images = {} as Record<Role, GeneratedImage>;
  /** containerd's own view of each image after its PullImage on `theirs`. */
  const reference = new Map<string, unknown>();
  /** Registry access log entries of the reference pulls: everything after them is kimg's. */
  let mark = 0;

  const ref = (role: Role): string => `${reg.host}/${REPOS[role]}`;
  const configId = (role: Role): string => images[role].manifests[0]!.config.digest;

  /**
   * `role`'s image is in `ours` as containerd's own pull would have left it, and kimg fetched it:
   * CRI ImageStatus equal to the reference; blob labels and image records equal to `theirs`'s; every
   * blob fetched with kimg's user agent; containerd fetched nothing and ran no PullImage.
   */
  async function assertPulledByKimgIntoContainerd(role: Role): Promise<void> {
    const image = ref(role);
    const expected = reference.get(image);
    assert.notEqual(expected, undefined, `a reference for ${image}`);
    assert.deepEqual(await criEventually(oursCri, image, expected), expected, image);
    assert.deepEqual(await criEventually(oursCri, configId(role), expected), expected, `${image} by id`);

    const img = images[role];
    const m = img.manifests[0]!;
    for (const d of [img.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
      const [mine, their] = await Promise.all([oursClient.contentInfo(d), theirsClient.contentInfo(d)]);
      assert.deepEqual(mine?.labels, their?.labels, `labels of ${d}`);
    }
    const records = async (c: ContainerdClient) =>
      (await c.imageList())
        .filter((r) => r.target.digest === img.digest)
        .map((r) => ({ name: r.name, labels: r.labels, target: r.target }))
        .sort((a, b) => a.name.localeCompare(b.name));
    const mine = await records(oursClient);
    assert.equal(mine.length, 3, JSON.stringify(mine));
    assert.deepEqual(mine, await records(theirsClient));

    const repo = REPOS[role].slice(0, REPOS[role].lastIndexOf(':'));
    const log = (await reg.accessLog()).slice(mark);
    for (const b of [m.config, ...m.layers]) {
      assert.ok(
        log.some(
          (e) =>
            e.method === 'GET' &&
            e.path === `/v2/${repo}/blobs/${b.digest}` &&
            /^kimg\b/.test(e.userAgent ?? ''),
        ),
        `kimg fetched ${b.digest}: ${JSON.stringify(log.filter((e) => e.path.includes(repo)))}`,
      );
    }
    assert.deepEqual(
      log.filter((e) => /containerd/i.test(e.userAgent ?? '')),
      [],
    );
    assert.doesNotMatch(await ours.log(), /PullImage/);
  }

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    work = await makeTempDir('ctrd-node-');
    reg = await startRegistry({ mode: 'plain' });
    const started = Promise.all([
      startContainerd({ namespace: 'k8s.io', plainHttpRegistries: [reg.host] }),
      startContainerd({ namespace: 'k8s.io', plainHttpRegistries: [reg.host] }),
    ]);
    const roles = Object.keys(REPOS) as Role[];
    const generated = await Promise.all(
      roles.map((role) =>
        generateImage(join(work, 'layouts', role), {
          name: `ctrd-node-${role}`,
          layers: [{ size: 4096 }, { size: 3000, kind: 'text' }],
        }),
      ),
    );
    roles.forEach((role, i) => (images[role] = generated[i]!));
    [big, serveBig] = (await Promise.all(
      ['big', 'serve-big'].map((name) =>
        generateImage(join(work, 'layouts', name), {
          name: `ctrd-node-${name}`,
          layers: [{ size: 3 * MiB }, { size: 64 * 1024 }, { size: 2048, kind: 'text' }],
        }),
      ),
    )) as [GeneratedImage, GeneratedImage];
    await Promise.all([
      ...roles.map((role) => skopeoPush(images[role], reg, REPOS[role])),
      skopeoPush(big, reg, 'node/big:1'),
      skopeoPush(serveBig, reg, 'serve/big:1'),
    ]);
    [theirs, ours] = await started;
    slow = await slowLink(Number(reg.host.split(':')[1]), MiB);
    theirsCri = new CriImageService({ endpoint: theirs.address });
    oursCri = new CriImageService({ endpoint: ours.address });
    theirsClient = new ContainerdClient({ address: theirs.socket });
    oursClient = new ContainerdClient({ address: ours.socket });

    // The reference: containerd's own CRI PullImage of every image, on the other containerd.
    for (const role of roles) {
      const image = ref(role);
      assert.equal(await theirsCri.pullImage({ image }, undefined), configId(role));
      reference.set(image, observeImage(await theirsCri.imageStatus({ image })));
    }
    assert.match(await theirs.log(), /PullImage/, "containerd's log names its PullImage calls");
    // The access log has every request of the reference pulls before kimg's first one.
    const last = images[roles[roles.length - 1]!].manifests[0]!;
    const byContainerd = (log: AccessLogEntry[], digest: string) =>
      log.some((e) => e.path.endsWith(`/blobs/${digest}`) && /containerd/i.test(e.userAgent ?? ''));
    mark = await waitFor('the reference pulls in the access log', async () => {
      const log = await reg.accessLog();
      return [last.config, ...last.layers].every((b) => byContainerd(log, b.digest)) ? log.length : undefined;
    });
  });

  after(async () => {
    await agent?.close();
    theirsCri?.close();
    oursCri?.close();
    theirsClient?.close();
    oursClient?.close();
    await slow?.close();
    await Promise.all([theirs?.stop(), ours?.stop()]);
    await reg?.stop();
    if (work) await removeTempDir(work);
  });

  test('startNodeAgent({containerd}): a static pod image and a pre-pull go through kimg into containerd', async () => {
    const manifests = join(work, 'manifests');
    await mkdir(manifests);
    await writeFile(join(manifests, 'app.yaml'), podYaml('app', ref('app')));
    const root = join(work, 'agent-root');
    agent = await startNodeAgent({
      config: parseNodeConfig(
        [
          'apiVersion: kubelet.config.k8s.io/v1beta1',
          'kind: KubeletConfiguration',
          `staticPodPath: ${manifests}`,
          'kimg:',
          `  rootDir: ${root}`,
        ].join('\n'),
      ),
      containerd: ours.socket,
      prepull: [{ image: ref('pre') }],
      metricsAddr: '127.0.0.1:0',
      criListen: null,
      registry: { plainHttp: [reg.host, slow.host] },
      platform: 'linux/amd64',
      nodeName: 'node1',
      resyncMs: 300,
      rescanMs: 60_000,
      gcPeriodMs: 3_600_000,
      nodeDockerConfig: false,
      log: (e) => void agentLogs.push(e),
    });
    const a = agent;
    await a.prepullDone;
    const pod = await waitFor(
      'pod app ready',
      () => {
        const p = a.state.get('default/app-node1');
        return p !== undefined && podStatus(p) === 'ImagesReady' ? p : undefined;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 20,
        describe: async () => JSON.stringify([a.state.list(), agentLogs]),
      },
    );
    assert.equal(pod.containers[0]?.imageRef, configId('app'));
    assert.deepEqual(
      a.prepullState().map((s) => [s.image, s.state, s.imageRef]),
      [[ref('pre'), 'Present', configId('pre')]],
    );
    await assertPulledByKimgIntoContainerd('app');
    await assertPulledByKimgIntoContainerd('pre');

    // kimg's own store holds nothing: the images live in containerd only.
    assert.deepEqual(await a.store.images.list(), []);
    // The agent's pull records and metrics saw both pulls.
    const records = new FilePullRecords(root);
    for (const role of ['app', 'pre'] as const)
      assert.ok(await records.getImagePulledRecord(configId(role)), `pull record of ${role}`);
    const m = await (await fetch(`${a.url}/metrics`)).text();
    assert.match(m, /^kubelet_image_pull_duration_seconds_count\{image_size_in_bytes="0-10MB"\} 2$/m);
    assert.equal(metric(m, 'kimg_image_pulls_in_progress'), 0);
    assert.match(m, /^kimg_pods\{status="ImagesReady"\} 1$/m);
    // The agent's store summary and CRI listing are containerd's.
    const summary = await a.storeSummary();
    assert.equal(summary.root, ours.socket);
    assert.ok(agentLogs.some((l) => l.msg === 'node agent started' && l['store'] === ours.socket));
    for (const role of ['app', 'pre'] as const)
      assert.ok(
        summary.images.some((i) => i.id === configId(role)),
        JSON.stringify(summary.images),
      );
  });

  /**
   * Waits until `stream` shows the first (big) layer of `img`'s pull of `image` part-way — the pull is
   * in flight, part of the layer in containerd, the rest still on the slow link — and checks the
   * snapshot (`?watch=false`) and the progress gauges at `base` then.
   */
  async function assertInFlight(
    stream: { lines: PullProgressLine[] },
    base: string,
    image: string,
    img: GeneratedImage,
  ): Promise<string> {
    const layer = img.manifests[0]!.layers[0]!;
    await waitFor(
      'a partial line of the big layer',
      () => stream.lines.find((l) => l.layer === layer.digest && l.progress > 0 && l.progress < layer.size),
      { timeoutMs: 30_000, intervalMs: 10, describe: async () => JSON.stringify(stream.lines) },
    );
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const progress = metric(metrics, 'kimg_image_pull_progress_bytes');
    const total = metric(metrics, 'kimg_image_pull_progress_total_bytes');
    assert.ok(progress > 0 && progress < total, `progress ${progress} of ${total}`);
    assert.ok(total >= layer.size, `total ${total} counts the big layer`);
    assert.ok(!metrics.includes(image.slice(image.indexOf('/'))), 'no image name in metrics');
    const snapshot = (await (await fetch(`${base}/api/pulls/progress?watch=false`)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as PullProgressLine);
    const line = snapshot.find((l) => l.layer === layer.digest);
    assert.ok(line && line.image === image && line.total === layer.size, JSON.stringify(snapshot));
    return metrics;
  }

  test('progress over containerd: the agent’s stream and metrics show the in-flight pull, layer by layer', async () => {
    const a = agent!;
    const image = `${slow.host}/node/big:1`;
    const stream = await followProgress(`${a.url}/api/pulls/progress`);
    try {
      await writeFile(join(work, 'manifests', 'big.yaml'), podYaml('big', image));
      await a.rescan();
      const metrics = await assertInFlight(stream, a.url!, image, big);
      assert.equal(metric(metrics, 'kimg_image_pulls_in_progress'), 1);
      await assertStreamedToTheEnd(stream, image, big, { minSteps: 3 });
    } finally {
      stream.close();
    }
    await waitFor('pod big ready', () => {
      const p = a.state.get('default/big-node1');
      return p !== undefined && podStatus(p) === 'ImagesReady' ? true : undefined;
    });
    const after = await (await fetch(`${a.url}/metrics`)).text();
    assert.equal(metric(after, 'kimg_image_pulls_in_progress'), 0);
    assert.equal(metric(after, 'kimg_image_pull_progress_total_bytes'), 0);
    // containerd's CRI lists the image kimg pulled through the slow link.
    const status = await waitFor('containerd CRI to list the big image', () =>
      oursCri.imageStatus({ image }),
    );
    assert.equal(status.id, big.manifests[0]!.config.digest);
    assert.deepEqual(status.repoTags, [image]);
  });

  test('progress over containerd: a pull of a missing tag ends with an error line and counts as a pull error', async () => {
    const a = agent!;
    const image = `${reg.host}/node/app:missing`;
    const stream = await followProgress(`${a.url}/api/pulls/progress`);
    try {
      await writeFile(join(work, 'manifests', 'missing.yaml'), podYaml('missing', image));
      await a.rescan();
      const final = await waitFor(
        'the error line',
        () => stream.lines.find((l) => l.name === image && (l.error !== undefined || l.done === true)),
        { timeoutMs: 30_000, intervalMs: 20, describe: async () => JSON.stringify(stream.lines) },
      );
      assert.match(final.error ?? '', /^NOT_FOUND: /);
      assert.equal(final.done, undefined);
    } finally {
      stream.close();
    }
    // The pod's sync counts the failure once the image service's pull (whose end the line is) returned.
    await waitFor('the NOT_FOUND pull error in the metrics', async () =>
      /^kimg_image_pull_errors_total\{reason="NOT_FOUND"\} [1-9]/m.test(
        await (await fetch(`${a.url}/metrics`)).text(),
      )
        ? true
        : undefined,
    );
    assert.equal(await oursCri.imageStatus({ image }), undefined);
  });

  test('kimg serve --containerd --http: the stream and metrics show a CRI PullImage into containerd in flight', async () => {
    const sock = join(work, 'serve', 'kimg.sock');
    const errFile = join(work, 'serve.err');
    const args = [CLI, 'serve', '--containerd', ours.socket, '--listen', `unix://${sock}`];
    args.push('--root', join(work, 'serve-root'), '--plain-http', slow.host, '--http', '127.0.0.1:0');
    const proc = spawnTracked('kimg serve', process.execPath, args, { stderrFile: errFile });
    const cri = new CriImageService({ endpoint: `unix://${sock}`, timeoutMs: 60_000 });
    try {
      const base = await waitFor(
        'kimg serve listening',
        async () => {
          const text = await readFile(errFile, 'utf8').catch(() => '');
          return text.includes('kimg serve: listening on')
            ? /http on (http:\/\/\S+)/.exec(text)?.[1]
            : undefined;
        },
        { watch: proc, timeoutMs: 20_000, describe: () => readFile(errFile, 'utf8').catch(() => '') },
      );
      const image = `${slow.host}/serve/big:1`;
      const stream = await followProgress(`${base}/api/pulls/progress`);
      try {
        const pulling = cri.pullImage({ image }, undefined);
        pulling.catch(() => undefined); // awaited below; a failed check before must not leave it unhandled
        await assertInFlight(stream, base, image, serveBig);
        assert.equal(await pulling, serveBig.manifests[0]!.config.digest);
        await assertStreamedToTheEnd(stream, image, serveBig, { minSteps: 3 });
      } finally {
        stream.close();
      }
      const after = await (await fetch(`${base}/metrics`)).text();
      assert.equal(metric(after, 'kimg_image_pull_progress_total_bytes'), 0);
      const status = await waitFor('containerd CRI to list the image', () => oursCri.imageStatus({ image }));
      assert.equal(status.id, serveBig.manifests[0]!.config.digest);
    } finally {
      cri.close();
      await killProcess(proc);
    }
  });

  test('kimg node --containerd ADDRESS --once: the static pod image is pulled by kimg into containerd', async () => {
    const dir = join(work, 'once');
    await mkdir(join(dir, 'manifests'), { recursive: true });
    await writeFile(join(dir, 'manifests', 'one.yaml'), podYaml('one', ref('once')));
    const cfg = join(dir, 'kubelet.yaml');
    await writeFile(
      cfg,
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: manifests\nkimg:\n  rootDir: root\n',
    );
    const r = await kimg(
      'node',
      '--config',
      cfg,
      '--containerd',
      `unix://${ours.socket}`,
      '--metrics-addr',
      '127.0.0.1:0',
      '--plain-http',
      reg.host,
      '--node-name',
      'n2',
      '--once',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^default\s+one-n2\s+1\/1\s+ImagesReady$/m);
    await assertPulledByKimgIntoContainerd('once');
  });

  test('kimg prepull --containerd ADDRESS: the list is pulled by kimg into containerd', async () => {
    const list = join(work, 'prepull.yaml');
    await writeFile(list, `images:\n- ${ref('prepull')}\n`);
    const r = await kimg(
      'prepull',
      '-f',
      list,
      '--containerd',
      ours.socket,
      '--root',
      join(work, 'prepull-root'),
      '--plain-http',
      reg.host,
      '-o',
      'json',
    );
    assert.equal(r.status, 0, r.stderr);
    const states = JSON.parse(r.stdout) as { image: string; state: string; imageRef: string }[];
    assert.deepEqual(
      states.map((s) => [s.image, s.state, s.imageRef]),
      [[ref('prepull'), 'Present', configId('prepull')]],
    );
    await assertPulledByKimgIntoContainerd('prepull');
  });

  test('kimg ensure --containerd ADDRESS: the pod’s image is pulled by kimg into containerd', async () => {
    const pod = join(work, 'ensure-pod.yaml');
    await writeFile(pod, podYaml('ensure', ref('ensure')));
    const r = await kimg(
      'ensure',
      '-f',
      pod,
      '--containerd',
      ours.socket,
      '--root',
      join(work, 'ensure-root'),
      '--plain-http',
      reg.host,
      '-o',
      'json',
    );
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      ready: boolean;
      containers: { imageRef: string }[];
      events: { reason: string }[];
    };
    assert.equal(out.ready, true);
    assert.equal(out.containers[0]?.imageRef, configId('ensure'));
    assert.deepEqual(
      out.events.map((e) => e.reason),
      ['Pulling', 'Pulled'],
    );
    await assertPulledByKimgIntoContainerd('ensure');
  });

  test('kimg.containerd in --config alone selects containerd for kimg pull, prepull and images; its address is required', async () => {
    const cfg = join(work, 'containerd-config.yaml');
    await writeFile(
      cfg,
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        'kimg:',
        '  containerd:',
        `    address: ${ours.socket}`,
        '    namespace: k8s.io',
        `    snapshotter: ${ours.snapshotter}`,
        '',
      ].join('\n'),
    );
    const emptyRoot = join(work, 'config-root');
    const p = await kimg(
      'pull',
      '--config',
      cfg,
      '--root',
      emptyRoot,
      '--plain-http',
      reg.host,
      '--progress',
      'none',
      '-o',
      'json',
      ref('config'),
    );
    assert.equal(p.status, 0, p.stderr);
    assert.equal((JSON.parse(p.stdout) as { id: string }).id, configId('config'));
    await assertPulledByKimgIntoContainerd('config');

    // The node commands read it too (through the agent's composition): kimg prepull.
    const list = join(work, 'config-prepull.yaml');
    await writeFile(list, `images:\n- ${ref('configPrepull')}\n`);
    const pre = await kimg('prepull', '--config', cfg, '-f', list, '--root', emptyRoot);
    assert.equal(pre.status, 0, pre.stderr);
    await assertPulledByKimgIntoContainerd('configPrepull');

    const listed = await kimg('images', '--config', cfg, '--root', emptyRoot, '-o', 'json');
    assert.equal(listed.status, 0, listed.stderr);
    const mine = (JSON.parse(listed.stdout) as { images: ImageInfo[] }).images.map(observeImage);
    for (const role of Object.keys(REPOS) as Role[])
      assert.ok(
        mine.some((o) => JSON.stringify(o) === JSON.stringify(reference.get(ref(role)))),
        `${role} listed as containerd lists it: ${JSON.stringify(mine)}`,
      );
    // Without the config, the same root is kimg's own store: empty.
    const own = await kimg('images', '--root', emptyRoot, '-o', 'json');
    assert.equal(own.status, 0, own.stderr);
    assert.deepEqual((JSON.parse(own.stdout) as { images: unknown[] }).images, []);

    const noAddress = join(work, 'no-address.yaml');
    await writeFile(
      noAddress,
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nkimg:\n  containerd:\n    namespace: k8s.io\n',
    );
    const bad = await kimg('images', '--config', noAddress, '--root', emptyRoot);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /containerd\.address: required/);
    assert.match(bad.stderr, /CONFIG_INVALID/);
  });
});
