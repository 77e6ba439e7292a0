/**
 * Pull progress through the node agent: a client reads `GET /api/pulls/progress` (newline-delimited
 * JSON) while the agent pulls a static pod's image from a real registry; every layer and the config
 * show with their size as `total` and end with `progress == total`, the image's final line says done
 * with the image's blob bytes, and the pull leaves the snapshot. A pull of a missing tag ends with an
 * error line. `/metrics` carries the progress gauges; the status page has its pulls table. The same
 * stream on `kimg serve --http` while a CRI client pulls through its socket. Needs
 * docker-registry and skopeo (fails, never skips).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseNodeConfig } from '../../src/config/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { FakeUsageSource } from '../../src/testing/index.js';
import { startNodeAgent, type NodeAgent } from '../../src/node/index.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, spawnTracked, waitFor } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { assertStreamedToTheEnd, followProgress } from '../helpers/progress-stream.js';

let reg: StartedRegistry;
let work: string;
let manifests: string;
let img: GeneratedImage;
let agent: NodeAgent | undefined;

before(async () => {
  reg = await startRegistry({ mode: 'plain' });
  work = await makeTempDir('pull-progress-');
  manifests = join(work, 'manifests');
  await mkdir(manifests);
  img = await generateImage(join(work, 'layout'), {
    name: 'big',
    tag: '1',
    layers: [{ size: 3 * 1024 * 1024 }, { size: 64 * 1024 }, { size: 2048, kind: 'text' }],
  });
  await skopeoPush(img, reg, 'big:1');
  agent = await startNodeAgent({
    config: parseNodeConfig(
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        `staticPodPath: ${manifests}`,
        'kimg:',
        `  rootDir: ${join(work, 'root')}`,
      ].join('\n'),
    ),
    metricsAddr: '127.0.0.1:0',
    registry: { plainHttp: [reg.host] },
    nodeName: 'node1',
    resyncMs: 300,
    rescanMs: 60_000,
    gcPeriodMs: 3_600_000,
    usage: new FakeUsageSource(1_000_000_000, 900_000_000),
    nodeDockerConfig: false,
    log: () => {},
  });
});

after(async () => {
  await agent?.close();
  await reg?.stop();
  if (work !== undefined) await removeTempDir(work);
});

async function addPod(name: string, image: string): Promise<void> {
  const yaml = ['apiVersion: v1', 'kind: Pod', 'metadata:', `  name: ${name}`, 'spec:', '  containers:'];
  yaml.push('  - name: main', `    image: ${image}`, '');
  await writeFile(join(manifests, `${name}.yaml`), yaml.join('\n'));
  await agent!.rescan();
}

test('the stream shows every layer of an agent pull, then the final line; the pull leaves', async () => {
  const base = agent!.url!;
  const image = `${reg.host}/big:1`;
  const stream = await followProgress(`${base}/api/pulls/progress`);
  try {
    await addPod('big', image);
    // Every layer, then the final line; each layer's progress never goes back.
    await assertStreamedToTheEnd(stream, image, img, { timeoutMs: 30_000 });
    const snapshot = await (await fetch(`${base}/api/pulls/progress?watch=false`)).text();
    assert.ok(!snapshot.includes(image), 'a completed pull leaves the snapshot');
  } finally {
    stream.close();
  }
});

test('a pull of a missing tag ends with an error line', async () => {
  const base = agent!.url!;
  const image = `${reg.host}/big:missing`;
  const stream = await followProgress(`${base}/api/pulls/progress`);
  try {
    await addPod('missing', image);
    const final = await waitFor(
      'the error line',
      () => stream.lines.find((l) => l.name === image && l.error !== undefined),
      { timeoutMs: 30_000, intervalMs: 20, describe: async () => JSON.stringify(stream.lines) },
    );
    assert.match(final.error!, /^NOT_FOUND: /);
    assert.equal(final.done, undefined);
  } finally {
    stream.close();
  }
});

test('metrics carry the progress gauges; the status page has the pulls table', async () => {
  const base = agent!.url!;
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^kimg_image_pull_progress_bytes 0$/m);
  assert.match(metrics, /^kimg_image_pull_progress_total_bytes 0$/m);
  assert.ok(!metrics.includes('big:1'), 'no image name in metrics');
  const page = await (await fetch(`${base}/`)).text();
  assert.match(page, /<h2>Pulls in progress<\/h2>/);
  assert.match(page, /<table id="pulls">/);
  assert.match(page, /<script src="\/status.js"><\/script>/);
  const script = await (await fetch(`${base}/status.js`)).text();
  assert.ok(
    script.includes("fetch('/api/pulls/progress?watch=false')"),
    'the page script polls the pulls snapshot',
  );
});

test('kimg serve --http streams the progress of a CRI PullImage', async () => {
  const main = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
  const sock = join(work, 'serve', 'kimg.sock');
  const errFile = join(work, 'serve.err');
  const args = [main, 'serve', '--listen', `unix://${sock}`, '--root', join(work, 'root-serve')];
  args.push('--plain-http', reg.host, '--http', '127.0.0.1:0');
  const proc = spawnTracked('kimg-serve', process.execPath, args, { stderrFile: errFile });
  const cri = new CriImageService({ endpoint: sock, timeoutMs: 30_000 });
  try {
    const base = await waitFor(
      'kimg serve listening',
      async () => {
        const text = await readFile(errFile, 'utf8').catch(() => '');
        const url = /http on (http:\/\/\S+)/.exec(text)?.[1];
        return text.includes('kimg serve: listening on') ? url : undefined;
      },
      { watch: proc, timeoutMs: 20_000 },
    );
    const image = `${reg.host}/big:1`;
    const stream = await followProgress(`${base}/api/pulls/progress`);
    try {
      await cri.pullImage({ image }, undefined);
      const final = await waitFor('the final line', () =>
        stream.lines.find((l) => l.name === image && l.done === true),
      );
      const m = img.manifests[0]!;
      assert.equal(
        final.total,
        [m.config, ...m.layers].reduce((n, b) => n + b.size, 0),
      );
      for (const b of m.layers) {
        assert.equal(stream.lines.filter((l) => l.layer === b.digest).at(-1)?.progress, b.size);
      }
    } finally {
      stream.close();
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^kimg_image_pull_progress_total_bytes 0$/m);
  } finally {
    cri.close();
    await killProcess(proc);
  }
});
