/**
 * kimg pulling into a real containerd (1.6, CRI plugin, overlayfs or native snapshotter) from real
 * registries: what containerd's CRI plugin reports for a kimg-pulled image must equal what it reports
 * after its own PullImage of the same image (id, repo tags, repo digests, size), for OCI and Docker
 * images, a multi-arch index, Basic and token auth; the content carries containerd's GC labels so
 * containerd's GC keeps it; leases are gone after the pull; an interrupted pull leaves an ingest the
 * next pull resumes; layers are unpacked once per snapshotter (a second image on a shared base applies
 * only its own layers, a new tag of a present image applies none, through Diff.Apply). A pull of an image containerd already
 * holds completely is read-only (no lease, no write, only the manifest request) and answers what the
 * full pull answered; a removed tag record, a removed top snapshot, a moved tag or a missing pinned
 * label each send the pull down the ordinary path, which repairs containerd's state.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pullImage } from '../../src/pull/index.js';
import {
  ContainerdClient,
  ContainerdPullTarget,
  chainIds,
  pullIntoContainerd,
  type ContainerdPullResult,
} from '../../src/containerd/index.js';
import { Secret } from '../../src/credentials/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { isKimgError } from '../../src/errors/index.js';
import type { ImageInfo } from '../../src/manager/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { startRegistries, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { criEventually as criEventuallyOf, observeImage } from '../helpers/cri-views.js';

/** The names CRI gives a pull of a tagged `image` (id, tag, repo digest). */
function criNames(id: string, image: string, digest: string): string[] {
  return [id, image, `${image.slice(0, image.lastIndexOf(':'))}@${digest}`];
}

/** containerd client calls that only read. */
const READ_CALLS = new Set(['imageGet', 'imageList', 'contentInfo', 'contentRead', 'snapshotStat']);

/** `c`, recording the name of every method called on it (the calls still reach containerd). */
function recording(c: ContainerdClient, calls: string[]): ContainerdClient {
  return new Proxy(c, {
    get(t, p) {
      const v: unknown = Reflect.get(t, p, t);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]): unknown => {
        calls.push(String(p));
        return (v as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}

/** What two pulls of one image must agree on, whichever path they took. */
function pullOutcome(r: ContainerdPullResult): unknown {
  const { pulledAt: _p, lastUsed: _l, ...record } = r.record;
  return {
    image: r.image,
    id: r.id,
    digest: r.digest,
    mediaType: r.mediaType,
    manifestDigest: r.manifestDigest,
    names: r.names,
    size: r.size,
    layers: r.layers,
    unpacked: r.unpacked,
    record,
  };
}

describe('containerd image store: kimg pulls, containerd stores', () => {
  let work = '';
  let regs: Record<'plain' | 'basic' | 'token', StartedRegistry>;
  let ctrd: StartedContainerd;
  let client: ContainerdClient;
  let cri: CriImageService;
  let registry: RegistryClient;
  let small: GeneratedImage;
  let multi: GeneratedImage;
  let big: GeneratedImage;
  let other: GeneratedImage;
  let moved: GeneratedImage;
  let baseA: GeneratedImage;
  let baseB: GeneratedImage;

  const pull = (image: string, extra: Partial<Parameters<typeof pullIntoContainerd>[1]> = {}) =>
    pullIntoContainerd(image, {
      client,
      registry,
      platform: 'linux/amd64',
      snapshotter: ctrd.snapshotter,
      ...extra,
    });

  /** A pull through a client recording its calls: which path did it take? */
  async function recordedPull(image: string, extra: Partial<Parameters<typeof pullIntoContainerd>[1]> = {}) {
    const calls: string[] = [];
    const mark = (await regs.plain.accessLog()).length;
    const result = await pullIntoContainerd(image, {
      client: recording(client, calls),
      registry,
      platform: 'linux/amd64',
      snapshotter: ctrd.snapshotter,
      ...extra,
    });
    const requests = (await regs.plain.accessLog()).slice(mark);
    return { result, calls, writes: calls.filter((c) => !READ_CALLS.has(c)), requests };
  }

  /** CRI's own PullImage, observed, then removed again (containerd's RemoveImage GCs synchronously). */
  async function containerdObservation(image: string, auth?: { username: string; password: Secret }) {
    const ref = await cri.pullImage({ image }, auth);
    const status = observeImage(await cri.imageStatus({ image }));
    await cri.removeImage({ image: ref });
    assert.equal(observeImage(await cri.imageStatus({ image })), 'absent');
    return { ref, status };
  }

  /** CRI's view once its event monitor has caught up with records another client created. */
  const criEventually = (image: string, expected: unknown): Promise<unknown> =>
    criEventuallyOf(cri, image, expected);

  async function criStatus(image: string): Promise<ImageInfo | undefined> {
    for (let i = 0; i < 200; i++) {
      const s = await cri.imageStatus({ image });
      if (s !== undefined) return s;
      await new Promise((r) => setTimeout(r, 50));
    }
    return undefined;
  }
  /** Deletes kimg's records and waits until CRI no longer lists any of them. */
  async function removeRecords(names: readonly string[]): Promise<void> {
    for (const n of names) await client.imageDelete(n, { sync: true });
    for (const n of names) assert.equal(await criEventually(n, 'absent'), 'absent', n);
  }

  async function ctrContent(): Promise<Map<string, string>> {
    const out = (await ctrd.ctr(['content', 'ls'], { namespace: 'k8s.io' })).stdout;
    const m = new Map<string, string>();
    for (const line of out.split('\n').slice(1)) {
      const parts = line.trim().split(/\s+/);
      if (parts[0]?.startsWith('sha256:')) m.set(parts[0], parts.slice(3).join(' '));
    }
    return m;
  }

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    work = await makeTempDir('ctrd-store-');
    const startedRegs = startRegistries(['plain', 'basic', 'token']);
    const startedCtrd = startContainerd({ namespace: 'k8s.io' });
    [small, multi, big, other, moved, baseA, baseB] = await Promise.all([
      generateImage(join(work, 'small'), {
        name: 'small',
        layers: [{ size: 4096 }, { size: 9000, kind: 'text' }],
        user: '1000:1000',
      }),
      generateImage(join(work, 'multi'), {
        name: 'multi',
        layers: [{ size: 3000 }, { size: 2000, kind: 'text' }],
        platforms: [
          { os: 'linux', architecture: 'amd64' },
          { os: 'linux', architecture: 'arm64', variant: 'v8' },
        ],
      }),
      generateImage(join(work, 'big'), {
        name: 'big',
        layers: [{ size: 64 * 1024 }, { size: 24 * 1024 * 1024 }],
      }),
      generateImage(join(work, 'other'), { name: 'other', layers: [{ size: 1000 }] }),
      generateImage(join(work, 'moved'), { name: 'moved', layers: [{ size: 1500 }, { size: 700 }] }),
      // Two images on one base layer (same seed, kind, size and position: the same blob).
      generateImage(join(work, 'base-a'), {
        name: 'base-a',
        layers: [
          { size: 6000, seed: 'shared-base' },
          { size: 2500, kind: 'text' },
        ],
      }),
      generateImage(join(work, 'base-b'), {
        name: 'base-b',
        layers: [{ size: 6000, seed: 'shared-base' }, { size: 3500 }],
      }),
    ]);
    regs = await startedRegs;
    ctrd = await startedCtrd;
    for (const r of Object.values(regs)) await ctrd.addPlainHttpRegistry(r.host);
    await Promise.all([
      skopeoPush(small, regs.plain, 'small:1'),
      skopeoPush(small, regs.plain, 'moving:1'),
      skopeoPush(small, regs.plain, 'small-docker:1', { format: 'v2s2' }),
      skopeoPush(multi, regs.plain, 'multi:1'),
      skopeoPush(multi, regs.plain, 'multi-docker:1', { format: 'v2s2' }),
      skopeoPush(big, regs.plain, 'big:1'),
      skopeoPush(other, regs.plain, 'other:1'),
      skopeoPush(baseA, regs.plain, 'base-a:1'),
      skopeoPush(baseB, regs.plain, 'base-b:1'),
      skopeoPush(small, regs.basic, 'small:1'),
      skopeoPush(small, regs.token, 'small:1'),
    ]);
    registry = new RegistryClient({ plainHttp: Object.values(regs).map((r) => r.host) });
    client = new ContainerdClient({ address: ctrd.socket });
    cri = new CriImageService({ endpoint: ctrd.address });
  });

  after(async () => {
    cri?.close();
    client?.close();
    await registry?.close().catch(() => undefined);
    await ctrd?.stop();
    await stopRegistries(Object.values(regs ?? {}));
    if (work) await removeTempDir(work);
  });

  const cases: { name: string; image: () => string; auth?: 'basic' | 'token' }[] = [
    { name: 'OCI image', image: () => `${regs.plain.host}/small:1` },
    { name: 'Docker schema 2 image', image: () => `${regs.plain.host}/small-docker:1` },
    { name: 'OCI index (multi-arch)', image: () => `${regs.plain.host}/multi:1` },
    { name: 'Docker manifest list', image: () => `${regs.plain.host}/multi-docker:1` },
    { name: 'by digest', image: () => `${regs.plain.host}/small@${small.digest}` },
    { name: 'Basic auth', image: () => `${regs.basic.host}/small:1`, auth: 'basic' },
    { name: 'token auth', image: () => `${regs.token.host}/small:1`, auth: 'token' },
  ];
  for (const c of cases) {
    test(`${c.name}: CRI ImageStatus after kimg's pull equals it after containerd's own PullImage`, async () => {
      const image = c.image();
      const reg = c.auth ? regs[c.auth] : undefined;
      const criAuth = reg ? { username: reg.username!, password: new Secret(reg.password!) } : undefined;
      const theirs = await containerdObservation(image, criAuth);
      const r = await pull(
        image,
        reg ? { auth: { username: reg.username!, password: new Secret(reg.password!) } } : {},
      );
      assert.equal(r.id, theirs.ref);
      const seen = await criEventually(image, theirs.status);
      if (JSON.stringify(seen) !== JSON.stringify(theirs.status) && process.env.KIMG_DEBUG_CTRD)
        console.log(
          (await ctrd.log())
            .split('\n')
            .filter((l) => /Image|event|error/i.test(l))
            .slice(-60)
            .join('\n'),
        );
      assert.deepEqual(seen, theirs.status);
      assert.deepEqual(await criEventually(r.id, theirs.status), theirs.status);
      // The records are the ones CRI makes: id, tag (when tagged), repo digest; all managed.
      const records = await client.imageList();
      for (const n of r.names) {
        const rec = records.find((x) => x.name === n);
        assert.ok(rec, `record ${n}`);
        assert.equal(rec.labels['io.cri-containerd.image'], 'managed');
        assert.equal(rec.target.digest, r.digest);
      }
      // No lease is left behind.
      assert.deepEqual(
        (await client.leaseList()).filter((l) => l.id.startsWith('kimg-')),
        [],
      );
      await removeRecords(r.names);
    });
  }

  test('content carries containerd pull labels; containerd GC keeps every blob of a kimg image', async () => {
    const image = `${regs.plain.host}/multi:1`;
    const r = await pull(image);
    const m = multi.manifests.find((x) => x.platform?.architecture === 'amd64')!;
    const info = async (d: string) => (await client.contentInfo(d))!.labels;
    const idx = await info(multi.digest);
    assert.equal(idx['containerd.io/gc.ref.content.m.0'], multi.manifests[0]!.digest);
    assert.equal(idx['containerd.io/gc.ref.content.m.1'], multi.manifests[1]!.digest);
    // The registry's host without its port, as containerd's own pull names it.
    assert.ok(idx['containerd.io/distribution.source.127.0.0.1']?.split(',').includes('multi'));
    const man = await info(m.digest);
    assert.equal(man['containerd.io/gc.ref.content.config'], m.config.digest);
    m.layers.forEach((l, i) => assert.equal(man[`containerd.io/gc.ref.content.l.${i}`], l.digest));
    const cfg = await info(m.config.digest);
    const chain = chainIds(m.layers.map((l) => l.diffId));
    assert.equal(cfg[`containerd.io/gc.ref.snapshot.${ctrd.snapshotter}`], chain[chain.length - 1]);
    for (const l of m.layers) {
      const li = await info(l.digest);
      assert.equal(li['containerd.io/uncompressed'], l.diffId);
      assert.ok(li['containerd.io/distribution.source.127.0.0.1']?.split(',').includes('multi'));
    }
    // Another image pulled by containerd and removed with a synchronous GC.
    const otherImage = `${regs.plain.host}/other:1`;
    await cri.pullImage({ image: otherImage }, undefined);
    const otherNames = (await client.imageList())
      .filter((x) => x.target.digest === other.digest)
      .map((x) => x.name);
    assert.equal(otherNames.length, 3);
    await ctrd.ctr(['images', 'rm', '--sync', ...otherNames], { namespace: 'k8s.io' });
    const left = await ctrContent();
    for (const d of [multi.digest, m.digest, m.config.digest, ...m.layers.map((l) => l.digest)])
      assert.ok(left.has(d), `${d} survived containerd's GC`);
    assert.ok(!left.has(other.manifests[0]!.layers[0]!.digest), "the other image's layer was collected");
    // Every snapshot of the chain is there.
    for (const c of chain) assert.ok(await client.snapshotStat(ctrd.snapshotter, c), c);
    // `ctr content ls` digests verify: fetch each blob and hash it.
    for (const d of left.keys()) await ctrd.ctr(['content', 'get', d], { namespace: 'k8s.io' });
    assert.equal(r.unpacked, true);
  });

  test('an image already present: read-only (no lease, no write, only the manifest request), the full pull’s answer', async () => {
    for (const image of [`${regs.plain.host}/small:1`, `${regs.plain.host}/multi:1`]) {
      const theirs = await containerdObservation(image);
      const full = await recordedPull(image);
      assert.ok(full.writes.includes('leaseCreate'), 'the first pull takes the ordinary path');
      assert.deepEqual(await criEventually(image, theirs.status), theirs.status);
      const leases = await client.leaseList();
      const ingests = await client.contentListStatuses();
      const again = await recordedPull(image);
      assert.deepEqual(again.writes, [], `only reads: ${again.calls.join(', ')}`);
      assert.ok(
        again.requests.length > 0 && again.requests.every((e) => /\/manifests\//.test(e.path)),
        `only manifest requests: ${JSON.stringify(again.requests)}`,
      );
      assert.deepEqual(pullOutcome(again.result), pullOutcome(full.result));
      const layers = new Set(again.result.layers.map((l) => l.digest));
      assert.deepEqual(again.result.stats, {
        ...again.result.stats,
        blobsDownloaded: 0,
        blobsResumed: 0,
        bytesDownloaded: 0,
        layersUnpacked: 0,
        blobsReused: 1 + layers.size,
      });
      assert.deepEqual(await client.leaseList(), leases);
      assert.deepEqual(await client.contentListStatuses(), ingests);
      assert.deepEqual(observeImage(await cri.imageStatus({ image })), theirs.status);
      await removeRecords(full.result.names);
    }
  });

  test('already present but not as a pull leaves it: a removed tag record, a removed top snapshot, a missing pinned label are repaired', async () => {
    const image = `${regs.plain.host}/small:1`;
    const theirs = await containerdObservation(image);
    const first = await pull(image);
    assert.deepEqual(await criEventually(image, theirs.status), theirs.status);
    const m = small.manifests[0]!;
    const chain = chainIds(m.layers.map((l) => l.diffId));
    const top = chain[chain.length - 1]!;

    // The tag record is gone: CRI no longer knows the tag; the pull creates it again.
    await client.imageDelete(image, { sync: true });
    assert.equal(await criEventually(image, 'absent'), 'absent');
    const retagged = await recordedPull(image);
    assert.ok(retagged.writes.includes('leaseCreate'), `ordinary path: ${retagged.calls.join(', ')}`);
    assert.equal(retagged.result.stats.blobsDownloaded, 0);
    assert.equal(retagged.result.stats.layersUnpacked, 0, 'every layer is unpacked already');
    assert.deepEqual(pullOutcome(retagged.result), pullOutcome(first));
    assert.deepEqual(await criEventually(image, theirs.status), theirs.status);

    // The top snapshot is gone (and with it, at containerd's next collection, its parents nothing else
    // names): the pull unpacks again and labels the config with the top snapshot.
    await client.snapshotRemove(ctrd.snapshotter, top);
    assert.equal(await client.snapshotStat(ctrd.snapshotter, top), undefined);
    const unpacked = await recordedPull(image);
    assert.ok(unpacked.writes.includes('leaseCreate'));
    assert.ok(unpacked.result.stats.layersUnpacked >= 1);
    assert.equal(unpacked.result.stats.blobsDownloaded, 0);
    assert.equal((await client.snapshotStat(ctrd.snapshotter, top))?.kind, 'COMMITTED');
    assert.equal(
      (await client.contentInfo(m.config.digest))!.labels[
        `containerd.io/gc.ref.snapshot.${ctrd.snapshotter}`
      ],
      top,
    );
    assert.deepEqual(await criEventually(image, theirs.status), theirs.status);

    // Asked pinned: the records lack the pinned label, so the ordinary path adds it; then it is present.
    const pinned = await recordedPull(image, { pinned: true });
    assert.ok(pinned.writes.includes('leaseCreate'));
    for (const n of pinned.result.names)
      assert.equal((await client.imageGet(n))?.labels['io.cri-containerd.pinned'], 'pinned', n);
    assert.deepEqual((await recordedPull(image, { pinned: true })).writes, []);
    // (containerd 1.6's CRI plugin does not report pinned; the label is what a newer one reads.)

    // Complete again: the next pull is read-only.
    assert.deepEqual((await recordedPull(image)).writes, []);
    await removeRecords(first.names);
  });

  test('a moved tag: the pull takes the ordinary path to the new image; the old one keeps its repo digest', async () => {
    const image = `${regs.plain.host}/moving:1`;
    const before = await pull(image);
    assert.equal(before.id, small.manifests[0]!.config.digest);
    assert.deepEqual((await recordedPull(image)).writes, []);
    await skopeoPush(moved, regs.plain, 'moving:1');
    const theirs = await containerdObservation(image);
    const after = await recordedPull(image);
    assert.ok(after.writes.includes('leaseCreate'), `ordinary path: ${after.calls.join(', ')}`);
    assert.equal(after.result.id, moved.manifests[0]!.config.digest);
    assert.equal(after.result.digest, moved.digest);
    assert.equal((await client.imageGet(image))?.target.digest, moved.digest);
    assert.deepEqual(await criEventually(image, theirs.status), theirs.status);
    // The old image lost the tag, not its repo digest.
    const repo = image.slice(0, image.lastIndexOf(':'));
    const old = { ...((await cri.imageStatus({ image: before.id })) ?? {}) } as ImageInfo;
    assert.ok(!old.repoTags.includes(image), JSON.stringify(old));
    assert.ok(old.repoDigests.includes(`${repo}@${small.digest}`), JSON.stringify(old));
    assert.deepEqual((await recordedPull(image)).writes, []);
    await removeRecords([...after.result.names, ...before.names.filter((n) => n !== image)]);
  });

  test('layers are unpacked once per snapshotter: a second image on the same base applies only its own layer; a new tag unpacks nothing', async () => {
    const chainA = chainIds(baseA.manifests[0]!.layers.map((l) => l.diffId));
    const chainB = chainIds(baseB.manifests[0]!.layers.map((l) => l.diffId));
    assert.equal(baseA.manifests[0]!.layers[0]!.digest, baseB.manifests[0]!.layers[0]!.digest);
    assert.equal(chainA[0], chainB[0]);
    const mine = new Set([...chainA, ...chainB]);
    /** The committed snapshots of the two images' chains, by name, and any extraction left active. */
    const snapshots = async () => {
      const all = await client.snapshotList(ctrd.snapshotter);
      return {
        committed: all.filter((x) => x.kind === 'COMMITTED' && mine.has(x.name)),
        // kimg's extraction snapshots are keyed `extract-<nanos>-<random> <chainID>`.
        active: all.filter((x) => x.kind === 'ACTIVE' && mine.has(x.name.split(' ').pop() ?? '')),
      };
    };
    const count = (calls: readonly string[], name: string) => calls.filter((c) => c === name).length;

    // The first image: both layers applied, through containerd's Diff.Apply (the default path).
    const a = await recordedPull(`${regs.plain.host}/base-a:1`);
    assert.equal(a.result.stats.layersUnpacked, 2);
    assert.equal(a.result.stats.layersAppliedLocally, 0);
    assert.equal(count(a.calls, 'diffApply'), 2);
    const afterA = await snapshots();
    assert.deepEqual(afterA.committed.map((x) => x.name).sort(), [...chainA].sort());

    // The second image shares the base: only its own layer is downloaded and applied, on top of the
    // base snapshot the first pull committed (still the same snapshot, not a second one).
    const b = await recordedPull(`${regs.plain.host}/base-b:1`);
    assert.ok(b.writes.includes('leaseCreate'), `ordinary path: ${b.calls.join(', ')}`);
    assert.equal(b.result.stats.layersUnpacked, 1);
    assert.equal(b.result.stats.layersAppliedLocally, 0);
    assert.equal(count(b.calls, 'diffApply'), 1);
    assert.equal(count(b.calls, 'snapshotPrepare'), 1);
    const baseLayer = baseB.manifests[0]!.layers[0]!.digest;
    assert.ok(
      !b.requests.some((e) => e.path.endsWith(`/blobs/${baseLayer}`) && e.method === 'GET'),
      `the shared base layer is not downloaded again: ${JSON.stringify(b.requests)}`,
    );
    const afterB = await snapshots();
    // One committed snapshot per chain ID: the two images' three chains, nothing extracted twice.
    assert.deepEqual(afterB.committed.map((x) => x.name).sort(), [...mine].sort());
    assert.equal(afterB.committed.length, mine.size);
    const base = (l: typeof afterB.committed) => l.find((x) => x.name === chainA[0]);
    assert.ok(base(afterA.committed)?.createdAt instanceof Date);
    assert.deepEqual(base(afterB.committed)?.createdAt, base(afterA.committed)?.createdAt);
    assert.equal(afterB.committed.find((x) => x.name === chainB[1])?.parent, chainB[0]);
    assert.deepEqual(afterB.active, [], 'no extraction snapshot is left');

    // The same image under a new tag (retagged in the registry): a new record, so the ordinary path
    // (a lease, the records written), yet nothing downloaded and nothing applied.
    await skopeoPush(baseA, regs.plain, 'base-a-retag:1');
    const retag = await recordedPull(`${regs.plain.host}/base-a-retag:1`);
    assert.ok(retag.writes.includes('leaseCreate'), `ordinary path: ${retag.calls.join(', ')}`);
    assert.equal(retag.result.id, a.result.id);
    assert.equal(retag.result.stats.blobsDownloaded, 0);
    assert.equal(retag.result.stats.layersUnpacked, 0);
    assert.equal(count(retag.calls, 'diffApply'), 0);
    assert.equal(count(retag.calls, 'snapshotPrepare'), 0);
    assert.equal(retag.result.unpacked, true);
    assert.deepEqual(await snapshots(), afterB);
    await removeRecords([...new Set([...a.result.names, ...b.result.names, ...retag.result.names])]);
  });

  test('blobs containerd holds in another namespace are shared, not downloaded', async () => {
    const image = `${regs.plain.host}/other:1`;
    const ns = new ContainerdClient({ address: ctrd.socket, namespace: 'kimg-other' });
    try {
      await pullIntoContainerd(image, {
        client: ns,
        registry,
        platform: 'linux/amd64',
        snapshotter: ctrd.snapshotter,
      });
      const r = await pull(image);
      assert.equal(r.stats.blobsDownloaded, 0);
      assert.ok((await client.contentInfo(other.manifests[0]!.layers[0]!.digest)) !== undefined);
    } finally {
      ns.close();
    }
  });

  test('content Write protocol: a pull cancelled mid-layer leaves containerd an ingest; the next pull resumes it', async () => {
    const image = `${regs.plain.host}/big:1`;
    const layer = big.manifests[0]!.layers[1]!;
    const ac = new AbortController();
    await assert.rejects(
      pull(image, {
        directWrite: false,
        signal: ac.signal,
        progressIntervalMs: 0,
        onProgress: (e) => {
          if (e.type === 'bytes' && e.digest === layer.digest && e.completed > 12 * 1024 * 1024) ac.abort();
        },
      }),
      (e: unknown) => isKimgError(e, 'ABORTED'),
    );
    const ingest = (await client.contentListStatuses()).find((s) => s.ref === `layer-${layer.digest}`);
    assert.ok(ingest && ingest.offset > 0, `an ingest is left: ${JSON.stringify(ingest)}`);
    // The cancelled pull's lease stays (until it expires) so containerd's GC keeps the ingest.
    assert.equal((await client.leaseList()).filter((l) => l.id.startsWith('kimg-')).length, 1);
    // A synchronous garbage collection (deleting any lease with sync runs one) keeps the ingest.
    await client.leaseCreate('gc-now', {});
    await client.leaseDelete('gc-now', { sync: true });
    assert.ok((await client.contentListStatuses()).some((s) => s.ref === `layer-${layer.digest}`));
    const r: ContainerdPullResult = await pull(image, { directWrite: false });
    assert.equal(r.stats.blobsResumed, 1);
    assert.equal(r.stats.blobsWrittenDirect, 0);
    assert.deepEqual(
      (await client.leaseList()).filter((l) => l.id.startsWith('kimg-')),
      [],
    );
    assert.ok(r.stats.bytesDownloaded < big.blobBytes);
    const status = await criStatus(image);
    assert.equal(status?.id, big.manifests[0]!.config.digest);
    for (const d of (await client.contentListStatuses()).map((s) => s.ref))
      assert.ok(!d.includes(layer.digest));
  });

  test('the generic pull pipeline into ContainerdPullTarget: the same CRI image as containerd’s own pull', async () => {
    const image = `${regs.plain.host}/multi-docker:1`;
    const m = multi.manifests.find((x) => x.platform?.architecture === 'amd64')!;
    // Earlier cases left names of this image (same config): start from none.
    await cri.removeImage({ image: m.config.digest });
    assert.equal(await criEventually(m.config.digest, 'absent'), 'absent');
    const theirs = await containerdObservation(image);
    const r = await pullImage(image, {
      store: new ContainerdPullTarget({ client, snapshotter: ctrd.snapshotter }),
      registry,
      platform: 'linux/amd64',
    });
    assert.equal(r.record.imageId, theirs.ref);
    assert.deepEqual(await criEventually(image, theirs.status), theirs.status);
    const cfg = (await client.contentInfo(m.config.digest))!.labels;
    const chain = chainIds(m.layers.map((l) => l.diffId));
    assert.equal(cfg[`containerd.io/gc.ref.snapshot.${ctrd.snapshotter}`], chain[chain.length - 1]);
    const idx = (await client.contentInfo(r.record.digest))!.labels;
    assert.ok(idx['containerd.io/gc.ref.content.m.0']);
    assert.deepEqual(
      (await client.leaseList()).filter((l) => l.id.startsWith('kimg-')),
      [],
    );
    await removeRecords(criNames(r.record.imageId, image, r.record.digest));
  });

  test('a bad address fails with CONTAINERD_UNAVAILABLE naming it and why, in kimg’s words', async () => {
    const address = `unix://${work}/nobody.sock`;
    const c = new ContainerdClient({ address });
    try {
      await assert.rejects(c.imageList(), (e: unknown) => {
        assert.ok(isKimgError(e, 'CONTAINERD_UNAVAILABLE'), String(e));
        assert.equal(
          e.message,
          `containerd at ${address} is unavailable (Images.List): the socket does not exist (ENOENT); check that containerd is running and that the socket path is right`,
        );
        return true;
      });
    } finally {
      c.close();
    }
  });
});
