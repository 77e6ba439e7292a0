/**
 * Image GC over containerd keeps the image of every container containerd knows, whoever started it,
 * as the kubelet's image GC keeps the images of the runtime's containers. Real components: containerd
 * 1.6 (CRI plugin, overlayfs, runc), a `docker-registry`, the runnable busybox images (image A sleeps,
 * so its container keeps running; image B is never run).
 *
 * - `kimg gc --containerd` (the CLI process, as a user runs it): A runs through `ctr run -d` (no CRI
 *   metadata: the container's image name is all containerd has), B is unused. GC is forced by a
 *   maximum image age of 1 s with the thresholds out of the way: the first run records the images,
 *   the second, more than a second later, removes what is not in use. A stays, B's records go.
 *   Then a tag that moved after a CRI container started from it: the container's record still names
 *   the tag, which now names another image; the CRI plugin's metadata names the image the container
 *   runs, and that one stays.
 * - `kimg node --containerd` (the agent): A runs in a CRI pod (the CRI plugin's metadata names the
 *   image id), B is unused; the pod's sandbox runs from the sandbox image. The agent's GC pass, once
 *   the agent is older than the maximum age, keeps A and removes B, and the agent's in-use set and
 *   store summary show A in use.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseNodeConfig } from '../../src/config/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { startNodeAgent, type NodeAgent } from '../../src/node/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { CriRuntimeClient, containerConfig, hostNetworkPodConfig } from '../helpers/cri-runtime.js';
import { runCommand } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import {
  SANDBOX_COMMAND,
  generateRunnableImage,
  generateSandboxImage,
  type RunnableImage,
} from '../helpers/runnable-images.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import {
  FORCED_GC_CONFIG,
  pastMaxAge,
  type PushedImage,
  type GcDocument,
  gcActions,
} from '../helpers/forced-gc.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

/** A (sleeps), B (prints a line) and the sandbox image, pushed as `gc-a:1`, `gc-b:1`, `pause:1`. */
async function pushImages(
  reg: StartedRegistry,
  work: string,
): Promise<{ a: PushedImage; b: PushedImage; pause: PushedImage; m1: PushedImage; m2: RunnableImage }> {
  const layout = join(work, 'layout');
  const a = await generateRunnableImage(layout, { name: 'gc-a', tag: 'gc-a', command: SANDBOX_COMMAND });
  const b = await generateRunnableImage(layout, { name: 'gc-b', tag: 'gc-b', line: 'image B' });
  const pause = await generateSandboxImage(layout);
  // The tag `gc-m:1` names M1 first; the moved-tag case pushes M2 under it later.
  const m1 = await generateRunnableImage(layout, { name: 'gc-m1', tag: 'gc-m1', command: SANDBOX_COMMAND });
  const m2 = await generateRunnableImage(layout, { name: 'gc-m2', tag: 'gc-m2', line: 'image M2' });
  const push = async (img: RunnableImage, repoTag: string): Promise<PushedImage> => {
    await skopeoPush(img, reg, repoTag);
    return { ref: `${reg.host}/${repoTag}`, id: img.manifests[0]!.config.digest };
  };
  return {
    a: await push(a, 'gc-a:1'),
    b: await push(b, 'gc-b:1'),
    pause: await push(pause, 'pause:1'),
    m1: await push(m1, 'gc-m:1'),
    m2,
  };
}

/** containerd's image record names in `k8s.io`. */
async function recordNames(ctrd: StartedContainerd): Promise<string[]> {
  const r = await ctrd.ctr(['images', 'ls', '-q'], { namespace: 'k8s.io' });
  return r.stdout.split('\n').filter((l) => l !== '');
}

/** The names containerd's CRI plugin gives an image: tag, `repo@digest`, and the id. */
function namesOf(names: readonly string[], p: PushedImage): string[] {
  const repo = p.ref.replace(/:[^:/]+$/, '');
  return names.filter((n) => n === p.ref || n === p.id || n.startsWith(`${repo}@`));
}

let work = '';
let reg: StartedRegistry;
let images: Awaited<ReturnType<typeof pushImages>>;

before(async () => {
  for (const b of ['containerd', 'ctr', 'runc', 'containerd-shim-runc-v2', 'skopeo', 'docker-registry'])
    requireBinary(b);
  work = await makeTempDir('ctrd-image-gc-');
  reg = await startRegistry({ mode: 'plain' });
  images = await pushImages(reg, work);
});

after(async () => {
  await reg?.stop();
  if (work) await removeTempDir(work);
});

describe('kimg gc --containerd keeps the image of a container kimg did not start', () => {
  let ctrd: StartedContainerd;
  let cri: CriImageService;
  let rt: CriRuntimeClient;

  before(async () => {
    ctrd = await startContainerd({ sandboxImage: images.pause.ref, plainHttpRegistries: [reg.host] });
    cri = new CriImageService({ endpoint: ctrd.address });
    rt = new CriRuntimeClient(ctrd.address);
  });

  after(async () => {
    cri?.close();
    rt?.close();
    await ctrd?.stop();
  });

  const kimg = (...args: string[]) =>
    runCommand(process.execPath, [CLI, ...args], { timeoutMs: 120_000, allowFailure: true });

  test('a container runs from A (ctr run -d), B is unused: a forced GC keeps A and removes B', async () => {
    const root = join(work, 'cli-root');
    for (const p of [images.a, images.b]) {
      const pull = await kimg(
        'pull',
        '--containerd',
        ctrd.socket,
        '--plain-http',
        reg.host,
        '--root',
        root,
        p.ref,
      );
      assert.equal(pull.code, 0, pull.stderr);
    }
    await ctrd.ctr(
      [
        'run',
        '-d',
        '--runc-root',
        ctrd.runcRoot,
        '--cgroup',
        `${ctrd.cgroupParent}/gc-a`,
        images.a.ref,
        'gc-a',
      ],
      { namespace: 'k8s.io' },
    );
    const tasks = await ctrd.ctr(['tasks', 'ls'], { namespace: 'k8s.io' });
    assert.match(tasks.stdout, /^gc-a\s+\d+\s+RUNNING$/m);
    const config = join(work, 'kubelet-cli.yaml');
    await writeFile(config, [...FORCED_GC_CONFIG, ''].join('\n'));
    const gc = ['gc', '--containerd', ctrd.socket, '--root', root, '--config', config, '-o', 'json'];

    const first = await kimg(...gc);
    assert.equal(first.code, 0, first.stderr);
    const firstDoc = JSON.parse(first.stdout) as GcDocument;
    assert.deepEqual(gcActions(firstDoc), {
      [images.a.id]: 'keep:in-use',
      [images.b.id]: 'keep:below-threshold',
    });
    assert.deepEqual(firstDoc.unmatched.inUse, []);

    await pastMaxAge();
    const second = await kimg(...gc);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(gcActions(JSON.parse(second.stdout) as GcDocument), {
      [images.a.id]: 'keep:in-use',
      [images.b.id]: 'delete:max-age',
    });
    const names = await recordNames(ctrd);
    assert.deepEqual(namesOf(names, images.b), [], `B's records are gone: ${names.join(' ')}`);
    assert.equal(namesOf(names, images.a).length, 3, names.join(' '));
    assert.equal((await cri.imageStatus({ image: images.a.ref }))?.id, images.a.id);
    assert.equal(await cri.imageStatus({ image: images.b.ref }), undefined);
    const still = await ctrd.ctr(['tasks', 'ls'], { namespace: 'k8s.io' });
    assert.match(still.stdout, /^gc-a\s+\d+\s+RUNNING$/m);
  });

  test("a tag moved after a CRI container started from it: the container's image stays, by its id", async () => {
    const root = join(work, 'cli-root-moved');
    // containerd pulls M1 as gc-m:1 and a pod runs it, as a kubelet would.
    assert.equal(await cri.pullImage({ image: images.m1.ref }, undefined), images.m1.id);
    const sandboxConfig = hostNetworkPodConfig({ name: 'gc-m', logDirectory: join(work, 'pods', 'gc-m') });
    const sandbox = await rt.runPodSandbox(sandboxConfig);
    const container = await rt.createContainer(
      sandbox,
      containerConfig({ name: 'm', image: images.m1.id, userSpecifiedImage: images.m1.ref }),
      sandboxConfig,
    );
    await rt.startContainer(container);
    // The tag moves to M2 and kimg pulls it: the container's record still names gc-m:1.
    await skopeoPush(images.m2, reg, 'gc-m:1');
    const pull = await kimg(
      'pull',
      '--containerd',
      ctrd.socket,
      '--plain-http',
      reg.host,
      '--root',
      root,
      images.m1.ref,
    );
    assert.equal(pull.code, 0, pull.stderr);
    const m2Id = images.m2.manifests[0]!.config.digest;
    assert.equal((await cri.imageStatus({ image: images.m1.ref }))?.id, m2Id);
    const info = await ctrd.ctr(['containers', 'info', container], { namespace: 'k8s.io' });
    assert.equal((JSON.parse(info.stdout) as { Image: string }).Image, images.m1.ref);

    const config = join(work, 'kubelet-cli-moved.yaml');
    await writeFile(config, [...FORCED_GC_CONFIG, ''].join('\n'));
    const gc = ['gc', '--containerd', ctrd.socket, '--root', root, '--config', config, '-o', 'json'];
    assert.equal((await kimg(...gc)).code, 0);
    await pastMaxAge();
    const second = await kimg(...gc);
    assert.equal(second.code, 0, second.stderr);
    const got = gcActions(JSON.parse(second.stdout) as GcDocument);
    assert.deepEqual([got[images.m1.id], got[m2Id]], ['keep:in-use', 'delete:max-age']);
    assert.equal((await cri.imageStatus({ image: images.m1.id }))?.id, images.m1.id);
    assert.equal((await rt.containerStatus(container)).state, 'CONTAINER_RUNNING');
  });
});

describe('kimg node --containerd keeps the image of a CRI pod it did not start', () => {
  let ctrd: StartedContainerd;
  let cri: CriImageService;
  let rt: CriRuntimeClient;
  let agent: NodeAgent | undefined;

  before(async () => {
    ctrd = await startContainerd({ sandboxImage: images.pause.ref, plainHttpRegistries: [reg.host] });
    cri = new CriImageService({ endpoint: ctrd.address });
    rt = new CriRuntimeClient(ctrd.address);
  });

  after(async () => {
    await agent?.close();
    cri?.close();
    rt?.close();
    await ctrd?.stop();
  });

  test("a pod's container runs from A, B is unused: the agent's GC pass keeps A and removes B", async () => {
    const root = join(work, 'agent-root');
    await mkdir(root);
    const config = parseNodeConfig([...FORCED_GC_CONFIG, 'kimg:', `  rootDir: ${root}`, ''].join('\n'));
    agent = await startNodeAgent({
      config,
      containerd: ctrd.socket,
      registry: { plainHttp: [reg.host] },
      staticPods: false,
      metricsAddr: null,
      nodeName: 'gc-node',
      nodeDockerConfig: false,
      log: () => undefined,
    });
    // B comes through kimg's pipeline; A through containerd's own CRI PullImage, as a kubelet beside
    // kimg would have it; the pod runs A with the image id PullImage returned.
    await agent.manager.service.pullImage({ image: images.b.ref }, undefined);
    assert.equal(await cri.pullImage({ image: images.a.ref }, undefined), images.a.id);
    const sandboxConfig = hostNetworkPodConfig({
      name: 'gc-pod',
      logDirectory: join(work, 'pods', 'gc-pod'),
    });
    const sandbox = await rt.runPodSandbox(sandboxConfig);
    const container = await rt.createContainer(
      sandbox,
      containerConfig({ name: 'a', image: images.a.id, userSpecifiedImage: images.a.ref }),
      sandboxConfig,
    );
    await rt.startContainer(container);
    assert.equal((await rt.containerStatus(container)).state, 'CONTAINER_RUNNING');

    assert.ok((await agent.inUse()).includes(images.a.id), 'A is in use for the agent');
    // GC has run for longer than the maximum age once the agent is older than it.
    await pastMaxAge();
    const gc = await agent.garbageCollect();
    const reasons = (r: typeof gc) =>
      Object.fromEntries(r.decisions.map((d) => [d.image.id, `${d.action}:${d.reason}`]));
    assert.equal(gc.error, undefined, gc.error);
    assert.deepEqual(
      gc.removed.map((x) => x.image.id),
      [images.b.id],
    );
    assert.deepEqual(reasons(gc), {
      [images.a.id]: 'keep:in-use',
      [images.b.id]: 'delete:max-age',
      // The sandbox container runs from it too (and the CRI plugin pins it).
      [images.pause.id]: 'keep:in-use',
    });
    const names = await recordNames(ctrd);
    assert.deepEqual(namesOf(names, images.b), [], `B's records are gone: ${names.join(' ')}`);
    assert.equal((await cri.imageStatus({ image: images.a.ref }))?.id, images.a.id);
    assert.equal((await rt.containerStatus(container)).state, 'CONTAINER_RUNNING');
    const summary = await agent.storeSummary();
    assert.deepEqual(
      summary.images.map((i) => [i.id, i.inUse]).sort(),
      [
        [images.a.id, true],
        [images.pause.id, true],
      ].sort(),
    );
  });
});
