/**
 * A pod runs with `kimg serve --containerd` as the kubelet's image service and containerd as its
 * runtime service, driven by the harness's CRI clients in the order a kubelet uses them:
 * Version on both endpoints and runtime Status; RunPodSandbox (containerd); for the container,
 * ImageStatus → PullImage on kimg (with the sandbox config, as the kubelet sends it); CreateContainer
 * on containerd with the image_ref kimg returned and the user's reference; StartContainer;
 * ContainerStatus until exited; then StopPodSandbox + RemovePodSandbox; later the kubelet's image GC:
 * ListImages and RemoveImage on kimg. Real components: containerd 1.6 (CRI plugin, overlayfs, runc),
 * a `docker-registry`, the `kimg serve` CLI process, the runnable busybox images.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CriImageService } from '../../src/cri/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import {
  CriRuntimeClient,
  containerConfig,
  hostNetworkPodConfig,
  parseCriLog,
  waitForContainerExit,
} from '../helpers/cri-runtime.js';
import { killProcess, spawnTracked, waitFor, type TrackedProcess } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { pushRunnableImages, type RunnableImageSet } from '../helpers/runnable-images.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

describe('a pod with kimg serve --containerd as image service and containerd as runtime service', () => {
  let work = '';
  let reg: StartedRegistry;
  let ctrd: StartedContainerd;
  let images: RunnableImageSet;
  let serve: TrackedProcess;
  let kimgImages: CriImageService;
  let ctrdImages: CriImageService;
  let rt: CriRuntimeClient;
  let kimgSocket = '';

  before(async () => {
    for (const b of ['containerd', 'runc', 'containerd-shim-runc-v2', 'skopeo', 'docker-registry'])
      requireBinary(b);
    work = await makeTempDir('ctrd-pod-');
    reg = await startRegistry({ mode: 'plain' });
    images = await pushRunnableImages(reg, work);
    ctrd = await startContainerd({ sandboxImage: images.sandbox.ref, plainHttpRegistries: [reg.host] });
    kimgSocket = join(work, 'kimg.sock');
    const stderrFile = join(work, 'kimg-serve.err');
    serve = spawnTracked(
      'kimg serve',
      process.execPath,
      [
        CLI,
        'serve',
        '--containerd',
        ctrd.socket,
        '--listen',
        `unix://${kimgSocket}`,
        '--root',
        join(work, 'kimg-root'),
        '--plain-http',
        reg.host,
      ],
      { stderrFile },
    );
    await waitFor(
      'kimg serve to listen',
      async () =>
        (await readFile(stderrFile, 'utf8').catch(() => '')).includes('listening on') ? true : undefined,
      {
        watch: serve,
        timeoutMs: 20_000,
        intervalMs: 20,
        describe: async () => readFile(stderrFile, 'utf8').catch(() => ''),
      },
    );
    kimgImages = new CriImageService({ endpoint: `unix://${kimgSocket}` });
    ctrdImages = new CriImageService({ endpoint: ctrd.address });
    rt = new CriRuntimeClient(ctrd.address);
  });

  after(async () => {
    kimgImages?.close();
    ctrdImages?.close();
    rt?.close();
    if (serve) await killProcess(serve);
    await ctrd?.stop();
    await reg?.stop();
    if (work) await removeTempDir(work);
  });

  test('the kubelet sequence: images through kimg, pod and container through containerd', async () => {
    // Start-up: the kubelet asks both endpoints who they are, and the runtime whether it is ready.
    assert.equal((await kimgImages.version()).runtimeName, 'kimg');
    assert.equal((await rt.version()).runtime_name, 'containerd');
    const conditions = await rt.status();
    assert.equal(conditions.find((c) => c.type === 'RuntimeReady')?.status, true, JSON.stringify(conditions));

    // The node's operator pre-pulls the sandbox image with kimg, so containerd needs no registry.
    await kimgImages.pullImage({ image: images.sandbox.ref }, undefined);

    // syncPod: the sandbox first.
    const sandboxConfig = hostNetworkPodConfig({
      name: 'kimg-pod',
      namespace: 'default',
      uid: '6f1c0c5e-kimg-pod',
      logDirectory: join(work, 'pods', 'default_kimg-pod_6f1c0c5e-kimg-pod'),
    });
    const podId = await rt.runPodSandbox(sandboxConfig);
    try {
      // EnsureImageExists: ImageStatus (absent), then PullImage with the pod's sandbox config.
      const ref = images.oci.ref;
      assert.equal(await kimgImages.imageStatus({ image: ref }), undefined);
      const imageRef = await kimgImages.pullImage({ image: ref }, undefined, {
        name: 'kimg-pod',
        namespace: 'default',
        uid: '6f1c0c5e-kimg-pod',
      });
      assert.equal(imageRef, images.oci.configDigest);

      // Right away, as the kubelet does: CreateContainer with the image_ref, StartContainer.
      const config = containerConfig({ name: 'app', image: imageRef, userSpecifiedImage: ref });
      const containerId = await rt.createContainer(podId, config, sandboxConfig);
      await rt.startContainer(containerId);
      const status = await waitForContainerExit(rt, containerId);
      assert.equal(status.exit_code, 0, JSON.stringify(status));
      assert.equal(status.image_ref, `${ref.replace(/:1$/, '')}@${images.oci.digest}`);
      const log = parseCriLog(await readFile(join(sandboxConfig.log_directory ?? '', 'app/0.log'), 'utf8'));
      assert.deepEqual(
        log.map((l) => [l.stream, l.text]),
        [['stdout', images.line]],
      );

      // Both image services describe the image the same way.
      const fromKimg = await kimgImages.imageStatus({ image: ref });
      const fromContainerd = await ctrdImages.imageStatus({ image: ref });
      assert.ok(fromKimg && fromContainerd);
      assert.equal(fromKimg.id, fromContainerd.id);
      assert.deepEqual([...fromKimg.repoTags].sort(), [...fromContainerd.repoTags].sort());
      assert.deepEqual([...fromKimg.repoDigests].sort(), [...fromContainerd.repoDigests].sort());
      assert.equal(fromKimg.size, fromContainerd.size);

      // The runtime reports the container on the image kimg pulled: ListContainers carries the image
      // id (what the kubelet's image GC matches against ListImages), ContainerStatus the repo digest.
      const listed = await rt.listContainers({ pod_sandbox_id: podId });
      assert.deepEqual(
        listed.map((c) => [c.id, c.state, c.image_ref]),
        [[containerId, 'CONTAINER_EXITED', imageRef]],
      );
    } finally {
      await rt.stopPodSandbox(podId);
      await rt.removePodSandbox(podId);
    }

    // containerd fetched nothing: every registry request came from kimg.
    const byContainerd = (await reg.accessLog()).filter((e) => /containerd/i.test(e.userAgent ?? ''));
    assert.deepEqual(byContainerd, []);

    // Image GC, kubelet style: list through kimg, remove the unused image through kimg; containerd's
    // CRI no longer has it.
    const listedImages = await kimgImages.listImages();
    assert.ok(listedImages.some((i) => i.id === images.oci.configDigest));
    await kimgImages.removeImage({ image: images.oci.ref });
    assert.equal(await kimgImages.imageStatus({ image: images.oci.ref }), undefined);
    await waitFor(
      "containerd's CRI to drop the removed image",
      async () =>
        (await ctrdImages.imageStatus({ image: images.oci.ref })) === undefined ? true : undefined,
      { timeoutMs: 10_000, intervalMs: 20 },
    );
  });
});
