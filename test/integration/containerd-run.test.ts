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
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ContainerdClient, pullIntoContainerd } from '../../src/containerd/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { RegistryClient } from '../../src/registry/index.js';
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
import { runCommand, waitFor } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { pushRunnableImages, type RunnableImageSet } from '../helpers/runnable-images.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

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
      // containerd's own fetches carry its user agent (what the kimg-pulled cases assert is absent).
      const log = await reg.accessLog();
      assert.ok(
        log.some(
          (e) =>
            e.path === `/v2/${variant === 'oci' ? 'runnable' : 'runnable-docker'}/manifests/1` &&
            /^containerd\//.test(e.userAgent ?? ''),
        ),
        JSON.stringify(log.slice(-5)),
      );
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

describe('containers run from images kimg pulled into containerd', () => {
  let work = '';
  let reg: StartedRegistry;
  let ctrd: StartedContainerd;
  let images: RunnableImageSet;
  let criImages: CriImageService;
  let rt: CriRuntimeClient;
  let client: ContainerdClient;
  let registry: RegistryClient;

  before(async () => {
    work = await makeTempDir('ctrd-run-kimg-');
    reg = await startRegistry({ mode: 'plain' });
    images = await pushRunnableImages(reg, work);
    ctrd = await startContainerd({ sandboxImage: images.sandbox.ref, plainHttpRegistries: [reg.host] });
    criImages = new CriImageService({ endpoint: ctrd.address });
    rt = new CriRuntimeClient(ctrd.address);
    client = new ContainerdClient({ address: ctrd.socket });
    registry = new RegistryClient({ plainHttp: [reg.host] });
  });

  after(async () => {
    criImages?.close();
    rt?.close();
    client?.close();
    await registry?.close().catch(() => undefined);
    await ctrd?.stop();
    await reg?.stop();
    if (work) await removeTempDir(work);
  });

  /** Registry requests containerd made itself (its user agent): none when kimg did all the fetching. */
  const fetchedByContainerd = async (): Promise<string[]> =>
    (await reg.accessLog())
      .filter((e) => /containerd/i.test(e.userAgent ?? ''))
      .map((e) => `${e.method} ${e.path}`);

  for (const variant of ['oci', 'docker'] as const) {
    test(`${variant}: kimg pulls (and unpacks) into k8s.io; CRI runs a pod from it with no fetch by containerd`, async () => {
      const pushed = images[variant];
      // The sandbox image too, pinned as CRI pins its sandbox_image: RunPodSandbox then finds it.
      await pullIntoContainerd(images.sandbox.ref, { client, registry, pinned: true });
      const pulled = await pullIntoContainerd(pushed.ref, { client, registry, localApply: true });
      assert.equal(pulled.id, pushed.configDigest);
      assert.equal(pulled.digest, pushed.digest);
      assert.equal(pulled.unpacked, true);
      // Asked to, as root over overlayfs, kimg extracts the layers itself (local apply) instead of
      // Diff.Apply, and containers run from those snapshots.
      if (ctrd.snapshotter === 'overlayfs')
        assert.equal(
          pulled.stats.layersAppliedLocally,
          pulled.stats.layersUnpacked,
          JSON.stringify(pulled.stats),
        );
      // containerd's CRI learns of the records through its image events; the kubelet asks ImageStatus.
      const status = await waitFor(
        `containerd's CRI to list ${pushed.ref}`,
        async () => (await criImages.imageStatus({ image: pushed.ref })) ?? undefined,
        { timeoutMs: 10_000, intervalMs: 20 },
      );
      assert.equal(status.id, pushed.configDigest);
      // Both app images share one config, hence one id: the record names of both pulls are its tags.
      assert.ok(status.repoTags.includes(pushed.ref), JSON.stringify(status.repoTags));
      assert.ok(
        status.repoDigests.includes(`${pushed.ref.replace(/:1$/, '')}@${pushed.digest}`),
        JSON.stringify(status.repoDigests),
      );

      const run = await runPodToCompletion(rt, {
        pod: { name: `kimg-${variant}`, logDirectory: join(work, 'pods', `kimg-${variant}`) },
        container: { name: 'app', image: pulled.id, userSpecifiedImage: pushed.ref },
      });
      assert.equal(run.status.exit_code, 0, JSON.stringify(run.status));
      assert.deepEqual(
        run.log.map((l) => [l.stream, l.text]),
        [['stdout', images.line]],
      );
      assert.deepEqual(await fetchedByContainerd(), []);
    });
  }

  /** Removes images from k8s.io (all but the sandbox image unless `all`), with a synchronous GC. */
  async function removeImages(all = false): Promise<void> {
    const names = (await ctrd.ctr(['images', 'ls', '-q'], { namespace: 'k8s.io' })).stdout.split('\n');
    const doomed = names.filter(
      (n) => n !== '' && (all || (!n.includes('/pause') && n !== images.sandbox.configDigest)),
    );
    if (doomed.length > 0) await ctrd.ctr(['images', 'rm', '--sync', ...doomed], { namespace: 'k8s.io' });
  }

  /** Committed snapshot names (chain ids) of the overlayfs snapshotter in k8s.io. */
  async function snapshotNames(): Promise<string[]> {
    const out = await ctrd.ctr(['snapshots', '--snapshotter', ctrd.snapshotter, 'ls'], {
      namespace: 'k8s.io',
    });
    return out.stdout
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/)[0] ?? '')
      .filter((k) => k !== '');
  }

  test('kimg pull --containerd (the CLI), then ctr run starts the image in k8s.io and prints the line', async () => {
    await removeImages();
    const pull = await runCommand(
      process.execPath,
      [
        CLI,
        'pull',
        '--containerd',
        ctrd.socket,
        '--plain-http',
        reg.host,
        '--root',
        join(work, 'kimg-root'),
        '-o',
        'json',
        images.oci.ref,
      ],
      { timeoutMs: 120_000 },
    );
    const out = JSON.parse(pull.stdout) as { id: string; digest: string };
    assert.equal(out.id, images.oci.configDigest);
    assert.equal(out.digest, images.oci.digest);
    const r = await ctrd.ctrRun(images.oci.ref, 'ctr-run-kimg', { namespace: 'k8s.io' });
    assert.equal(r.stdout, `${images.line}\n`);
    assert.deepEqual(await fetchedByContainerd(), []);
  });

  test('kimg pulls without unpacking: containerd unpacks on demand when the pod starts, and it runs', async () => {
    // Nothing of the busybox layer stays unpacked: both images (they share the layer) go, with GC.
    await removeImages(true);
    const chainId = images.oci.image.manifests[0]!.layers[0]!.diffId; // one layer: chain id = diff id
    assert.ok(!(await snapshotNames()).includes(chainId), 'the layer is still unpacked');
    await pullIntoContainerd(images.sandbox.ref, { client, registry, pinned: true, unpack: false });
    const pulled = await pullIntoContainerd(images.docker.ref, { client, registry, unpack: false });
    assert.equal(pulled.unpacked, false);
    assert.ok(!(await snapshotNames()).includes(chainId), 'kimg unpacked although asked not to');
    await waitFor(
      `containerd's CRI to list ${images.docker.ref}`,
      async () => (await criImages.imageStatus({ image: images.docker.ref })) ?? undefined,
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    const run = await runPodToCompletion(rt, {
      pod: { name: 'kimg-lazy', logDirectory: join(work, 'pods', 'kimg-lazy') },
      container: { name: 'app', image: pulled.id, userSpecifiedImage: images.docker.ref },
    });
    assert.deepEqual(
      run.log.map((l) => l.text),
      [images.line],
    );
    assert.ok((await snapshotNames()).includes(chainId), 'containerd unpacked the layer');
    assert.deepEqual(await fetchedByContainerd(), []);
  });
});

describe('pods in cgroups (disable_cgroup = false), as on a node', () => {
  test('a pod with a cgroup parent runs, its containers get cgroups, and they go with the pod', async () => {
    const work = await makeTempDir('ctrd-run-cg-');
    const reg = await startRegistry({ mode: 'plain' });
    let ctrd: StartedContainerd | undefined;
    let rt: CriRuntimeClient | undefined;
    try {
      const images = await pushRunnableImages(reg, work);
      ctrd = await startContainerd({
        sandboxImage: images.sandbox.ref,
        plainHttpRegistries: [reg.host],
        podCgroups: true,
      });
      const criImages = new CriImageService({ endpoint: ctrd.address });
      const imageRef = await criImages.pullImage({ image: images.oci.ref }, undefined);
      criImages.close();
      rt = new CriRuntimeClient(ctrd.address);
      const cgroupParent = `${ctrd.cgroupParent}/pod-cg`;
      const memory = join('/sys/fs/cgroup/memory', cgroupParent);
      const run = await runPodToCompletion(rt, {
        pod: { name: 'cg', logDirectory: join(work, 'pods'), cgroupParent },
        container: { name: 'app', image: imageRef },
      });
      assert.deepEqual(
        run.log.map((l) => l.text),
        [images.line],
      );
      // The runtime created the pod's cgroup (cgroupfs driver) and removed its containers' cgroups.
      assert.ok(existsSync(memory), `${memory} was not created`);
      assert.deepEqual(
        readdirSync(memory, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name),
        [],
      );
    } finally {
      rt?.close();
      await ctrd?.stop();
      await reg.stop();
      await removeTempDir(work);
    }
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
