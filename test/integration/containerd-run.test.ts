/**
 * Containers run from real images on a real containerd (1.6, CRI plugin, overlayfs, runc): the
 * runnable busybox images of `test/helpers/runnable-images.ts` in a local registry, the CRI plugin's
 * `sandbox_image` pointed at the local `pause:1` (nothing beyond loopback is reachable), host-network
 * pods (no CNI), driven through the CRI RuntimeService the way a kubelet drives it.
 *
 * Baseline: containerd pulls the image itself (CRI PullImage), then RunPodSandbox + CreateContainer +
 * StartContainer → the container's CRI log holds the image's line; `ctr run` prints it too.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CriImageService } from '../../src/cri/index.js';
import { requireBinary } from '../helpers/components.js';
import {
  hasExited,
  mountsUnder,
  shimProcessTree,
  startContainerd,
  type StartedContainerd,
} from '../helpers/containerd.js';
import {
  CriRuntimeClient,
  containerConfig,
  hostNetworkPodConfig,
  runPodToCompletion,
} from '../helpers/cri-runtime.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { pushRunnableImages, type RunnableImageSet } from '../helpers/runnable-images.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

describe('containerd runs containers from the runnable test images', () => {
  let work = '';
  let reg: StartedRegistry;
  let ctrd: StartedContainerd;
  let images: RunnableImageSet;
  let criImages: CriImageService;
  let rt: CriRuntimeClient;

  before(async () => {
    for (const b of ['containerd', 'ctr', 'runc', 'containerd-shim-runc-v2', 'skopeo', 'docker-registry'])
      requireBinary(b);
    work = await makeTempDir('ctrd-run-');
    reg = await startRegistry({ mode: 'plain' });
    images = await pushRunnableImages(reg, work);
    ctrd = await startContainerd({ sandboxImage: images.sandbox.ref, plainHttpRegistries: [reg.host] });
    criImages = new CriImageService({ endpoint: ctrd.address });
    rt = new CriRuntimeClient(ctrd.address);
  });

  after(async () => {
    criImages?.close();
    rt?.close();
    await ctrd?.stop();
    await reg?.stop();
    if (work) await removeTempDir(work);
  });

  test('the runtime is ready for host-network pods', async () => {
    const conditions = await rt.status();
    const ready = conditions.find((c) => c.type === 'RuntimeReady');
    assert.equal(ready?.status, true, JSON.stringify(conditions));
    // No CNI configuration: containerd reports the pod network not ready; host-network pods run anyway.
    const network = conditions.find((c) => c.type === 'NetworkReady');
    assert.equal(network?.status, false, JSON.stringify(conditions));
  });

  for (const variant of ['oci', 'docker'] as const) {
    test(`CRI PullImage of the ${variant} image by containerd, then a pod writes the image's line to its log`, async () => {
      const pushed = images[variant];
      const imageRef = await criImages.pullImage({ image: pushed.ref }, undefined);
      assert.equal(imageRef, pushed.configDigest);
      const run = await runPodToCompletion(rt, {
        pod: { name: `baseline-${variant}`, logDirectory: join(work, 'pods', `baseline-${variant}`) },
        container: { name: 'app', image: imageRef, userSpecifiedImage: pushed.ref },
      });
      assert.equal(run.status.exit_code, 0, JSON.stringify(run.status));
      assert.equal(run.status.image_ref, `${pushed.ref.replace(/:1$/, '')}@${pushed.digest}`);
      assert.deepEqual(
        run.log.map((l) => [l.stream, l.tag, l.text]),
        [['stdout', 'F', images.line]],
      );
      assert.deepEqual(
        run.listed.map((c) => [c.id, c.state]),
        [[run.containerId, 'CONTAINER_EXITED']],
      );
      assert.deepEqual(await rt.listPodSandbox(), []);
    });
  }

  test('ctr run prints the line too (image pulled by ctr into another namespace)', async () => {
    const ns = 'kimg-ctr-run';
    await ctrd.ctr(['images', 'pull', '--plain-http', images.oci.ref], { namespace: ns });
    const r = await ctrd.ctrRun(images.oci.ref, 'ctr-run-1', { namespace: ns });
    assert.equal(r.stdout, `${images.line}\n`);
  });
});

describe('containerd fixture: stop() with a pod still running', () => {
  test('kills the shims and the containers by PID, unmounts, removes the cgroups and the dir', async () => {
    const work = await makeTempDir('ctrd-run-stop-');
    const reg = await startRegistry({ mode: 'plain' });
    let ctrd: StartedContainerd | undefined;
    const rt: { client?: CriRuntimeClient } = {};
    try {
      const images = await pushRunnableImages(reg, work);
      ctrd = await startContainerd({ sandboxImage: images.sandbox.ref, plainHttpRegistries: [reg.host] });
      const criImages = new CriImageService({ endpoint: ctrd.address });
      const imageRef = await criImages.pullImage({ image: images.oci.ref }, undefined);
      criImages.close();
      rt.client = new CriRuntimeClient(ctrd.address);
      const sandbox = hostNetworkPodConfig({ name: 'left-running', logDirectory: join(work, 'pods') });
      const pod = await rt.client.runPodSandbox(sandbox);
      const id = await rt.client.createContainer(
        pod,
        containerConfig({ name: 'sleeper', image: imageRef, command: ['/bin/sleep', '1000'] }),
        sandbox,
      );
      await rt.client.startContainer(id);
      const tree = shimProcessTree(ctrd.socket);
      assert.ok(tree.shims.length >= 1, 'a shim runs the pod');
      assert.ok(tree.descendants.length >= 2, 'the sandbox and the container run below the shims');
      const { baseDir, cgroupParent } = ctrd;
      await ctrd.stop();
      for (const pid of [...tree.shims, ...tree.descendants]) {
        assert.ok(hasExited(pid), `process ${pid} survived stop()`);
      }
      assert.deepEqual(mountsUnder(baseDir), []);
      assert.equal(existsSync(baseDir), false);
      assert.equal(existsSync(join('/sys/fs/cgroup/memory', cgroupParent)), false);
    } finally {
      rt.client?.close();
      await ctrd?.stop();
      await reg.stop();
      await removeTempDir(work);
    }
  });
});
