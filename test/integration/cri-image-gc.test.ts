/**
 * Image GC over a CRI runtime keeps the image of every container the runtime knows, as the kubelet's
 * image GC does: the runtime's RemoveImage does not check containers (containerd's CRI plugin removes
 * the image of a running container), so kimg asks the runtime's RuntimeService (ListContainers on the
 * configuration's `containerRuntimeEndpoint`) on every run. Real components: containerd 1.6 (CRI
 * plugin, overlayfs, runc), a `docker-registry`, the runnable busybox images (image A sleeps, so its
 * container keeps running; image B is never run).
 *
 * containerd pulls A and B itself (CRI PullImage, as for a kubelet), a CRI pod runs a container from
 * A. `kimg gc --image-service-endpoint` (the CLI process) with a KubeletConfiguration naming that
 * containerd as both endpoints, GC forced by a maximum image age of 1 s with the thresholds out of the
 * way: the first run records the images, the second, more than a second later, removes what is not in
 * use. A stays (and its container runs), B is gone from containerd's CRI ImageStatus. When the runtime
 * endpoint does not answer, the run fails and removes nothing.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CriImageService } from '../../src/cri/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { CriRuntimeClient, containerConfig, hostNetworkPodConfig } from '../helpers/cri-runtime.js';
import { runCommand } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { SANDBOX_COMMAND, generateRunnableImage, generateSandboxImage } from '../helpers/runnable-images.js';
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

let work = '';
let reg: StartedRegistry;
let ctrd: StartedContainerd;
let cri: CriImageService;
let rt: CriRuntimeClient;
let a: PushedImage;
let b: PushedImage;
let pause: PushedImage;

before(async () => {
  for (const bin of ['containerd', 'ctr', 'runc', 'containerd-shim-runc-v2', 'skopeo', 'docker-registry'])
    requireBinary(bin);
  work = await makeTempDir('cri-image-gc-');
  reg = await startRegistry({ mode: 'plain' });
  const layout = join(work, 'layout');
  const push = async (img: Awaited<ReturnType<typeof generateRunnableImage>>, repoTag: string) => {
    await skopeoPush(img, reg, repoTag);
    return { ref: `${reg.host}/${repoTag}`, id: img.manifests[0]!.config.digest };
  };
  a = await push(
    await generateRunnableImage(layout, { name: 'gc-a', tag: 'gc-a', command: SANDBOX_COMMAND }),
    'gc-a:1',
  );
  b = await push(
    await generateRunnableImage(layout, { name: 'gc-b', tag: 'gc-b', line: 'image B' }),
    'gc-b:1',
  );
  pause = await push(await generateSandboxImage(layout), 'pause:1');
  ctrd = await startContainerd({ sandboxImage: pause.ref, plainHttpRegistries: [reg.host] });
  cri = new CriImageService({ endpoint: ctrd.address });
  rt = new CriRuntimeClient(ctrd.address);
});

after(async () => {
  cri?.close();
  rt?.close();
  await ctrd?.stop();
  await reg?.stop();
  if (work) await removeTempDir(work);
});

const kimg = (...args: string[]) =>
  runCommand(process.execPath, [CLI, ...args], { timeoutMs: 120_000, allowFailure: true });

describe('kimg gc over a CRI runtime keeps the images of the runtime’s containers', () => {
  test('a CRI pod runs from A, B is unused: a forced GC keeps A and removes B', async () => {
    // containerd pulls both itself, as for a kubelet; the pod runs A by the id PullImage returned.
    assert.equal(await cri.pullImage({ image: a.ref }, undefined), a.id);
    assert.equal(await cri.pullImage({ image: b.ref }, undefined), b.id);
    const sandboxConfig = hostNetworkPodConfig({
      name: 'gc-pod',
      logDirectory: join(work, 'pods', 'gc-pod'),
    });
    const sandbox = await rt.runPodSandbox(sandboxConfig);
    const container = await rt.createContainer(
      sandbox,
      containerConfig({ name: 'a', image: a.id, userSpecifiedImage: a.ref }),
      sandboxConfig,
    );
    await rt.startContainer(container);
    assert.equal((await rt.containerStatus(container)).state, 'CONTAINER_RUNNING');

    const config = join(work, 'kubelet.yaml');
    await writeFile(
      config,
      [
        ...FORCED_GC_CONFIG,
        `containerRuntimeEndpoint: ${ctrd.address}`,
        `imageServiceEndpoint: ${ctrd.address}`,
        '',
      ].join('\n'),
    );
    const root = join(work, 'root');
    // ListContainers lists no sandboxes, and containerd 1.6 does not mark the sandbox image pinned:
    // the node pins it, as the kubelet's configuration pins its pause image.
    const gc = ['gc', '--image-service-endpoint', ctrd.address, '--root', root, '--config', config];
    gc.push('--pinned', pause.ref, '-o', 'json');

    const first = await kimg(...gc);
    assert.equal(first.code, 0, first.stderr);
    const firstActions = gcActions(JSON.parse(first.stdout) as GcDocument);
    assert.equal(firstActions[a.id], 'keep:in-use');
    assert.equal(firstActions[b.id], 'keep:below-threshold');

    await pastMaxAge();
    const second = await kimg(...gc);
    assert.equal(second.code, 0, second.stderr);
    const got = gcActions(JSON.parse(second.stdout) as GcDocument);
    assert.equal(got[a.id], 'keep:in-use');
    assert.equal(got[b.id], 'delete:max-age');
    assert.equal(got[pause.id], 'keep:pinned');
    assert.equal((await cri.imageStatus({ image: a.ref }))?.id, a.id);
    assert.equal(await cri.imageStatus({ image: b.ref }), undefined);
    assert.equal((await rt.containerStatus(container)).state, 'CONTAINER_RUNNING');
  });

  test('the runtime endpoint does not answer: the run fails and removes nothing', async () => {
    assert.equal(await cri.pullImage({ image: b.ref }, undefined), b.id);
    const root = join(work, 'root-down');
    const write = async (name: string, runtimeEndpoint: string): Promise<string> => {
      const file = join(work, name);
      await writeFile(
        file,
        [...FORCED_GC_CONFIG, `containerRuntimeEndpoint: ${runtimeEndpoint}`, ''].join('\n'),
      );
      return file;
    };
    const up = await write('kubelet-up.yaml', ctrd.address);
    const down = await write('kubelet-down.yaml', `unix://${join(work, 'no-runtime.sock')}`);
    const gc = (config: string) =>
      kimg(
        'gc',
        '--image-service-endpoint',
        ctrd.address,
        '--root',
        root,
        '--config',
        config,
        '--pinned',
        pause.ref,
      );
    // The first run records B; past the maximum age, B would go.
    assert.equal((await gc(up)).code, 0);
    await pastMaxAge();
    const failed = await gc(down);
    assert.notEqual(failed.code, 0, failed.stdout);
    assert.match(failed.stderr, /no-runtime\.sock/);
    assert.equal((await cri.imageStatus({ image: a.ref }))?.id, a.id);
    assert.equal((await cri.imageStatus({ image: b.ref }))?.id, b.id);
  });
});
