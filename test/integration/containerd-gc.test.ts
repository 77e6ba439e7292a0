/**
 * containerd's garbage collector against images kimg wrote into containerd (1.6, CRI plugin,
 * overlayfs), and a kimg pull SIGKILLed midway.
 *
 * - GC never removes a blob of an image kimg created: neither a synchronous GC run by
 *   `ctr images rm --sync` of another image (one sharing kimg's layer), nor one after a lease holding
 *   the image's blobs expired; after each, every blob is still there and a pod still runs from it.
 *   (`ctr` 1.6 has no `content gc` command; `images rm --sync` and `leases rm --sync` run the same
 *   collection synchronously, containerd `metadata/gc.go`.)
 * - SIGKILL of a `kimg pull --containerd` process midway leaves the content store consistent (every blob
 *   `ctr content ls` lists hashes to its digest; no record names the half-pulled image), and the next
 *   pull resumes the interrupted write (`blobsResumed > 0`, fewer bytes fetched): containerd's partial
 *   ingest (`ctr content active`) when the bytes go through the content Write protocol
 *   (`directWrite: false`), kimg's partial write in containerd's content directory otherwise.
 * - SIGKILL while local apply extracts a layer into its staging directory: the store stays consistent
 *   and the next pull completes and unpacks the image (what the killed pull committed is reused, the
 *   rest extracted by kimg again); dropping the killed pull's lease leaves no active snapshot.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ContainerdClient,
  leaseExpiryLabels,
  pullIntoContainerd,
  writeContent,
} from '../../src/containerd/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { CriRuntimeClient, runPodToCompletion } from '../helpers/cri-runtime.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, spawnTracked, waitFor } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { pushRunnableImages, type RunnableImageSet } from '../helpers/runnable-images.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { slowLink } from '../helpers/slow-link.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const NS = 'k8s.io';
const MiB = 1024 * 1024;
const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

/** `ctr content ls -q`: every committed blob's digest. */
async function contentDigests(ctrd: StartedContainerd): Promise<string[]> {
  const out = (await ctrd.ctr(['content', 'ls', '-q'], { namespace: NS })).stdout;
  return out.split('\n').filter((l) => l.startsWith('sha256:'));
}

/** sha256 of a committed blob, read from containerd's content store on disk. */
async function hashBlob(ctrd: StartedContainerd, digest: string): Promise<string> {
  const file = join(ctrd.root, 'io.containerd.content.v1.content', 'blobs', 'sha256', digest.slice(7));
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Every listed blob hashes to its digest; returns the digests. */
async function verifyContentStore(ctrd: StartedContainerd): Promise<string[]> {
  const digests = await contentDigests(ctrd);
  for (const d of digests) assert.equal(await hashBlob(ctrd, d), d, `blob ${d} does not hash to its digest`);
  return digests;
}

describe('containerd GC keeps every blob of an image kimg created', () => {
  let work = '';
  let reg: StartedRegistry;
  let ctrd: StartedContainerd;
  let images: RunnableImageSet;
  let client: ContainerdClient;
  let registry: RegistryClient;
  let criImages: CriImageService;
  let rt: CriRuntimeClient;
  /** The blobs of the kimg-pulled app image: manifest, config, layer. */
  let kimgBlobs: string[] = [];
  let imageId = '';

  before(async () => {
    work = await makeTempDir('ctrd-gc-');
    reg = await startRegistry({ mode: 'plain' });
    images = await pushRunnableImages(reg, work);
    ctrd = await startContainerd({ sandboxImage: images.sandbox.ref, plainHttpRegistries: [reg.host] });
    client = new ContainerdClient({ address: ctrd.socket });
    registry = new RegistryClient({ plainHttp: [reg.host] });
    criImages = new CriImageService({ endpoint: ctrd.address });
    rt = new CriRuntimeClient(ctrd.address);
    const pulled = await pullIntoContainerd(images.oci.ref, { client, registry });
    imageId = pulled.id;
    const m = images.oci.image.manifests[0]!;
    kimgBlobs = [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)];
  });

  after(async () => {
    client?.close();
    criImages?.close();
    rt?.close();
    await registry?.close().catch(() => undefined);
    await ctrd?.stop();
    await reg?.stop();
    if (work) await removeTempDir(work);
  });

  async function assertKimgImageIntact(what: string): Promise<void> {
    const present = await verifyContentStore(ctrd);
    for (const d of kimgBlobs) assert.ok(present.includes(d), `${what}: GC removed ${d} of the kimg image`);
    await waitFor(
      'the CRI plugin to list the kimg image',
      async () => (await criImages.imageStatus({ image: images.oci.ref })) ?? undefined,
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    const run = await runPodToCompletion(rt, {
      pod: { name: `after-${what}`, logDirectory: join(work, 'pods', what) },
      container: { name: 'app', image: imageId, userSpecifiedImage: images.oci.ref },
    });
    assert.deepEqual(
      run.log.map((l) => l.text),
      [images.line],
      `${what}: the pod's log`,
    );
  }

  test('kimg leaves no lease behind once its image records exist', async () => {
    const leases = await client.leaseList();
    assert.deepEqual(
      leases.map((l) => l.id).filter((id) => id.startsWith('kimg')),
      [],
    );
  });

  test('ctr images rm --sync of another image sharing its layer: the kimg image keeps every blob', async () => {
    // containerd's own pull of the sandbox image: same busybox layer as the kimg-pulled app image.
    const pauseRef = await criImages.pullImage({ image: images.sandbox.ref }, undefined);
    const pause = images.sandbox.image.manifests[0]!;
    assert.equal(pause.layers[0]!.digest, kimgBlobs[2], 'the two images share their layer');
    const names = (await ctrd.ctr(['images', 'ls', '-q'], { namespace: NS })).stdout
      .split('\n')
      .filter((n) => n.includes('/pause') || n === pauseRef);
    assert.ok(names.length >= 2, names.join(' '));
    await ctrd.ctr(['images', 'rm', '--sync', ...names], { namespace: NS });
    const present = await contentDigests(ctrd);
    // The GC ran: the pause image's own manifest and config are gone...
    assert.ok(!present.includes(pause.digest), 'the removed image manifest was collected');
    assert.ok(!present.includes(pause.config.digest), 'the removed image config was collected');
    // ...while the kimg image, including the shared layer, is untouched.
    await assertKimgImageIntact('images-rm');
  });

  test('an expired lease holding the kimg blobs: GC collects what only the lease held, never the image', async () => {
    const lease = `kimg-test-expiring-${randomBytes(4).toString('hex')}`;
    await client.leaseCreate(lease, leaseExpiryLabels(new Date(), 5000));
    // Opening a writer for content that exists adds it to the lease (containerd metadata/content.go),
    // as kimg's own pull lease holds an image's blobs while it writes them.
    for (const d of kimgBlobs) {
      const info = await client.contentInfo(d);
      assert.ok(info, d);
      const written = await writeContent(client, Buffer.alloc(0), {
        ref: `test-${d}`,
        digest: d,
        size: info.size,
        lease,
      });
      assert.equal(written, false, 'the blob exists: nothing to write');
    }
    const orphan = randomBytes(4096);
    const orphanDigest = `sha256:${createHash('sha256').update(orphan).digest('hex')}`;
    await writeContent(client, orphan, {
      ref: 'test-orphan',
      digest: orphanDigest,
      size: orphan.length,
      lease,
    });
    const held = (await client.leaseResources(lease)).map((r) => r.id);
    for (const d of [...kimgBlobs, orphanDigest]) assert.ok(held.includes(d), `the lease holds ${d}`);
    // Let the lease expire, then run a synchronous collection (deleting another, empty lease).
    // (5 s: under load the writes above can take more than a second, and a collection run by
    // containerd's scheduler in between would drop an already expired lease under the test.)
    await new Promise((r) => setTimeout(r, 5500));
    await ctrd.ctr(['leases', 'create', '--id', 'kimg-test-trigger'], { namespace: NS });
    await ctrd.ctr(['leases', 'rm', '--sync', 'kimg-test-trigger'], { namespace: NS });
    const present = await contentDigests(ctrd);
    assert.ok(!present.includes(orphanDigest), 'the expired lease no longer protects its only blob');
    await assertKimgImageIntact('lease-expiry');
  });
});

describe('SIGKILL of a kimg pull into containerd', () => {
  let work = '';
  let reg: StartedRegistry;
  let ctrd: StartedContainerd;
  let big: GeneratedImage;
  /** `--config` of the protocol-only runs: `kimg.containerd.directWrite: false`. */
  let protocolOnly = '';
  /** kimg.containerd with localApply: true (kimg extracts the layers into overlayfs itself). */
  let localApply = '';

  before(async () => {
    work = await makeTempDir('ctrd-kill-');
    const started = startRegistry({ mode: 'plain' });
    big = await generateImage(join(work, 'big'), {
      name: 'ctrd-kill-big',
      layers: [{ size: 24 * MiB }, { size: 24 * MiB }, { size: 24 * MiB }, { size: 24 * MiB }],
    });
    reg = await started;
    await skopeoPush(big, reg, 'big:1');
  });

  after(async () => {
    await ctrd?.stop();
    await reg?.stop();
    if (work) await removeTempDir(work);
  });

  /** A `--progress json` line. */
  interface PullLine {
    type: string;
    completed?: number;
    total?: number;
  }

  /** `kimg pull --containerd` of big:1 as a child process: progress JSON lines on stderr, result on stdout. */
  function startPull(
    name: string,
    mode: 'protocol' | 'direct' | 'local',
    host: string = reg.host,
  ): {
    out: string;
    progress: string;
    done: () => Promise<unknown>;
    kill: () => Promise<void>;
  } {
    const out = join(work, `${name}.out`);
    const progress = join(work, `${name}.err`);
    const args = [
      CLI,
      ...(mode === 'protocol' ? ['--config', protocolOnly] : []),
      ...(mode === 'local' ? ['--config', localApply] : []),
      'pull',
      '--containerd',
      ctrd.socket,
      '--plain-http',
      host,
      '--root',
      join(work, 'kimg-root'),
      '--progress',
      'json',
      '-o',
      'json',
      `${host}/big:1`,
    ];
    const child = spawnTracked(`kimg pull ${name}`, process.execPath, args, {
      stdoutFile: out,
      stderrFile: progress,
    });
    return {
      out,
      progress,
      // Polled: the child is unref'd, so awaiting only its exit would leave the event loop empty.
      done: () =>
        waitFor(`kimg pull ${name} to exit`, () => child.exitInfo(), { timeoutMs: 120_000, intervalMs: 20 }),
      kill: async () => void (await killProcess(child)),
    };
  }

  const readLines = async (file: string): Promise<PullLine[]> =>
    (await readFile(file, 'utf8').catch(() => '')).split('\n').flatMap((l) => {
      try {
        return [JSON.parse(l) as PullLine];
      } catch {
        return []; // empty, or cut by the kill
      }
    });

  /** Before a test: a fresh containerd, and the protocol-only configuration naming it. */
  async function freshContainerd(): Promise<void> {
    await ctrd?.stop();
    ctrd = await startContainerd({ plainHttpRegistries: [reg.host] });
    localApply = join(work, 'local-apply.yaml');
    await writeFile(
      localApply,
      `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nkimg:\n  containerd:\n    address: ${ctrd.socket}\n    localApply: true\n`,
    );
    protocolOnly = join(work, 'protocol-only.yaml');
    await writeFile(
      protocolOnly,
      `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nkimg:\n  containerd:\n    address: ${ctrd.socket}\n    directWrite: false\n`,
    );
  }

  /**
   * Starts a pull over a slow link to the registry, SIGKILLs it once `reached()` holds, and checks what
   * every kill leaves: the pull had not finished, containerd's content store verifies, no image record.
   */
  async function killOverSlowLink(
    name: string,
    mode: 'direct' | 'local',
    what: string,
    reached: () => Promise<boolean>,
  ): Promise<void> {
    const slow = await slowLink(Number(reg.host.split(':')[1]), 24 * MiB);
    let first: ReturnType<typeof startPull>;
    try {
      first = startPull(name, mode, slow.host);
      await waitFor(what, async () => ((await reached()) ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 2,
      });
      await first.kill();
    } finally {
      await slow.close();
    }
    assert.ok(
      !(await readLines(first.progress)).some((l) => l.type === 'committed'),
      'the pull finished before the kill',
    );
    await verifyContentStore(ctrd);
    assert.doesNotMatch((await ctrd.ctr(['images', 'ls', '-q'], { namespace: NS })).stdout, /big/);
  }

  /** The resumed pull completes the image, and a GC after dropping the killed pull's lease keeps it. */
  async function resumeAndCheck(mode: 'protocol' | 'direct'): Promise<void> {
    const second = startPull(`resumed-${mode}`, mode);
    await second.done();
    const result = JSON.parse(await readFile(second.out, 'utf8')) as {
      digest: string;
      stats: { blobsResumed: number; bytesDownloaded: number; blobsWrittenDirect: number };
    };
    assert.equal(result.digest, big.digest);
    assert.ok(result.stats.blobsResumed > 0, `no blob resumed: ${JSON.stringify(result.stats)}`);
    assert.ok(result.stats.bytesDownloaded < big.blobBytes, JSON.stringify(result.stats));
    if (mode === 'protocol') assert.equal(result.stats.blobsWrittenDirect, 0);
    else assert.ok(result.stats.blobsWrittenDirect > 0, JSON.stringify(result.stats));
    const digests = await verifyContentStore(ctrd);
    const m = big.manifests[0]!;
    for (const d of [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
      assert.ok(digests.includes(d), `${d} missing after the resumed pull`);
    }

    // The killed process's lease (24 h expiry) may still hold partial content; dropping it with a
    // synchronous collection leaves the now complete image whole.
    const leases = (await ctrd.ctr(['leases', 'ls', '-q'], { namespace: NS })).stdout
      .split('\n')
      .filter((l) => l.startsWith('kimg'));
    if (leases.length > 0) await ctrd.ctr(['leases', 'rm', '--sync', ...leases], { namespace: NS });
    const after = await verifyContentStore(ctrd);
    for (const d of [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
      assert.ok(after.includes(d), `GC removed ${d} of the image kimg completed`);
    }
  }

  /** kimg's partial writes in containerd's content directory: [data bytes, total] per ingest. */
  async function directIngests(): Promise<{ bytes: number; total: number }[]> {
    const dir = join(ctrd.root, 'io.containerd.content.v1.content', 'blobs', 'kimg-ingest');
    const out: { bytes: number; total: number }[] = [];
    for (const name of await readdir(dir).catch(() => [])) {
      const bytes = (await stat(join(dir, name, 'data')).catch(() => undefined))?.size;
      // `meta` may be caught half written (it is not written atomically): no total then.
      const meta = await readFile(join(dir, name, 'meta'), 'utf8').catch(() => '');
      let total = NaN;
      try {
        total = Number((JSON.parse(meta) as { total?: number }).total ?? NaN);
      } catch {
        // torn or empty
      }
      if (bytes !== undefined) out.push({ bytes, total });
    }
    return out;
  }

  test('direct writes: the store stays consistent, kimg keeps its partial write, the next pull resumes it', async () => {
    await freshContainerd();
    // Through a slow link: kimg's own writes are fast enough to finish between two polls otherwise.
    const layerSizes = new Set(big.manifests[0]!.layers.map((l) => l.size));
    await killOverSlowLink(
      'killed-direct',
      'direct',
      "kimg's write in containerd's content directory to hold part of a layer",
      async () =>
        (await directIngests()).some((i) => layerSizes.has(i.total) && i.bytes > 0 && i.bytes < i.total),
    );
    const partial = await directIngests();
    assert.ok(
      partial.some((i) => i.bytes > 0 && i.bytes < i.total),
      `no partial write kept after the kill: ${JSON.stringify(partial)}`,
    );
    // containerd never saw those bytes: its own ingest list stays empty.
    assert.doesNotMatch((await ctrd.ctr(['content', 'active'], { namespace: NS })).stdout, /layer-sha256/);
    await resumeAndCheck('direct');
    assert.deepEqual(await directIngests(), [], 'partial writes left after the image completed');
  });

  /** Files local apply has extracted so far into its staging directories (bytes of each). */
  async function stagedFiles(): Promise<number[]> {
    const dir = join(ctrd.root, 'io.containerd.snapshotter.v1.overlayfs', 'kimg-staging');
    const out: number[] = [];
    for (const name of await readdir(dir).catch(() => [])) {
      const fs = join(dir, name, 'fs');
      for (const f of await readdir(fs, { recursive: true }).catch(() => [])) {
        const st = await stat(join(fs, f)).catch(() => undefined);
        if (st?.isFile() === true) out.push(st.size);
      }
    }
    return out;
  }

  test('killed while extracting a layer (local apply): containerd stays consistent, the next pull unpacks the image', async () => {
    await freshContainerd();
    await killOverSlowLink(
      'killed-extract',
      'local',
      'local apply to be extracting a layer',
      async () => (await stagedFiles()).length > 0,
    );

    const second = startPull('after-extract-kill', 'local');
    await second.done();
    const result = JSON.parse(await readFile(second.out, 'utf8')) as {
      digest: string;
      stats: { layersUnpacked: number; layersAppliedLocally: number };
    };
    assert.equal(result.digest, big.digest);
    // Whatever the killed pull committed is reused; the rest is extracted here, by kimg.
    assert.equal(
      result.stats.layersAppliedLocally,
      result.stats.layersUnpacked,
      JSON.stringify(result.stats),
    );
    await verifyContentStore(ctrd);
    const committed = (await ctrd.ctr(['snapshots', 'ls'], { namespace: NS })).stdout;
    const top = big.manifests[0]!.layers.length;
    assert.equal(committed.split('\n').filter((l) => /\bCommitted\b/.test(l)).length, top, committed);
    // The killed pull's lease goes; a synchronous collection leaves the image and its snapshots whole.
    const leases = (await ctrd.ctr(['leases', 'ls', '-q'], { namespace: NS })).stdout
      .split('\n')
      .filter((l) => l.startsWith('kimg'));
    if (leases.length > 0) await ctrd.ctr(['leases', 'rm', '--sync', ...leases], { namespace: NS });
    const snapshots = (await ctrd.ctr(['snapshots', 'ls'], { namespace: NS })).stdout;
    assert.equal(snapshots.split('\n').filter((l) => /\bCommitted\b/.test(l)).length, top, snapshots);
    assert.doesNotMatch(snapshots, /\bActive\b/, snapshots);
  });

  test('protocol writes: the store stays consistent, the ingest stays, and the next pull resumes from it', async () => {
    await freshContainerd();
    const first = startPull('killed', 'protocol');
    // Kill once containerd holds part of a layer: its ingest has some bytes, not all. (kimg's own byte
    // progress runs up to one Write message ahead of what containerd has taken in, so it is not the signal.)
    const layerRefs = new Set(big.manifests[0]!.layers.map((l) => `layer-${l.digest}`));
    const watcher = new ContainerdClient({ address: ctrd.socket });
    try {
      await waitFor(
        'containerd to hold part of a layer',
        async () =>
          (await watcher.contentListStatuses()).some(
            (s) => layerRefs.has(s.ref) && s.offset > 0 && s.offset < s.total,
          )
            ? true
            : undefined,
        { timeoutMs: 60_000, intervalMs: 2 },
      );
    } finally {
      watcher.close();
    }
    await first.kill();
    assert.ok(
      !(await readLines(first.progress)).some((l) => l.type === 'committed'),
      'the pull finished before the kill',
    );

    // Consistent: every committed blob hashes to its digest; no image record names the half-pulled image.
    await verifyContentStore(ctrd);
    const records = (await ctrd.ctr(['images', 'ls', '-q'], { namespace: NS })).stdout;
    assert.doesNotMatch(records, /big/);
    // The interrupted ingest is still there for the next pull to continue (`ctr content active`).
    const client = new ContainerdClient({ address: ctrd.socket });
    let partial: Array<{ ref: string; offset: number }>;
    try {
      partial = (await client.contentListStatuses()).filter((s) => s.offset > 0 && s.offset < s.total);
    } finally {
      client.close();
    }
    const layerDigests = big.manifests[0]!.layers.map((l) => l.digest);
    assert.ok(
      partial.some((s) => layerDigests.some((d) => s.ref === `layer-${d}`)),
      `no partial layer ingest after the kill: ${JSON.stringify(partial)}`,
    );
    const active = (await ctrd.ctr(['content', 'active'], { namespace: NS })).stdout;
    assert.match(active, /layer-sha256:[0-9a-f]{64}/);
    await resumeAndCheck('protocol');
  });
});
