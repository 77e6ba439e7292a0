/**
 * Image identity like containerd's CRI: a repo digest (`<repository>@<top digest>`) and the image id
 * (`sha256:<config digest>`) name an image however it was pulled — in the store (`lookupImage`, the
 * records `rmi` removes), the image service (`imageStatus`), the image manager's presence check
 * (`IfNotPresent` uses it, `Never` accepts it) and `explain`. A tag that moves to another image keeps the
 * old image present, untagged, addressable by repo digest and id, and image GC counts it as unused.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ImageGCManager,
  ImageManager,
  LocalImageService,
  MemoryImageGCStateStore,
  DEFAULT_IMAGE_GC_POLICY,
  storeUsageHints,
} from '../../../src/manager/index.js';
import { FakeUsageSource } from '../../../src/testing/index.js';
import { FakeClock } from '../../helpers/clock.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { lookupImage, lookupImages, openStore, type Store } from '../../../src/store/index.js';
import { generateImage, type GeneratedImage } from '../../helpers/images.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const REPO = 'registry.example/team/app';

describe('image identity: repo digests and moved tags', () => {
  let dir: string;
  let store: Store;
  let registry: RegistryClient;
  let svc: LocalImageService;
  let one: GeneratedImage;
  let two: GeneratedImage;

  const digestOf = (img: GeneratedImage): string => img.manifests[0]!.digest;
  const idOf = (img: GeneratedImage): string => img.manifests[0]!.config.digest;

  before(async () => {
    dir = await makeTempDir('identity-');
    one = await generateImage(join(dir, 'one'), { name: 'one', layers: [{ size: 300 }] });
    two = await generateImage(join(dir, 'two'), { name: 'two', layers: [{ size: 400 }] });
    store = await openStore({ root: join(dir, 'root') });
    registry = new RegistryClient();
    svc = new LocalImageService({ store, registry });
    await store.load({ layout: `oci:${join(dir, 'one')}:1`, name: `${REPO}:stable` });
  });
  after(async () => {
    await store?.close();
    await registry?.close();
    await removeTempDir(dir);
  });

  test('the store finds an image pulled by tag by its repo digest and its id', async () => {
    const byDigest = await lookupImage(store.images, `${REPO}@${digestOf(one)}`);
    assert.equal(byDigest.name, `${REPO}:stable`);
    assert.equal((await lookupImage(store.images, idOf(one))).name, `${REPO}:stable`);
    // Another repository with the same digest is another name: not found.
    assert.deepEqual(await lookupImages(store.images, `registry.example/other@${digestOf(one)}`), []);
  });

  test('imageStatus answers for the repo digest ListImages prints', async () => {
    const listed = await svc.listImages();
    assert.equal(listed.length, 1);
    const repoDigest = listed[0]!.repoDigests[0]!;
    assert.equal(repoDigest, `${REPO}@${digestOf(one)}`);
    const info = await svc.imageStatus({ image: repoDigest });
    assert.equal(info?.id, idOf(one));
    assert.deepEqual(info?.repoTags, [`${REPO}:stable`]);
  });

  test('a Never pod pinned by digest uses the present image; IfNotPresent does not pull', async () => {
    let pulls = 0;
    const counting = Object.assign(Object.create(svc) as LocalImageService, {
      pullImage: () => {
        pulls++;
        return Promise.reject(new Error('must not pull'));
      },
    });
    const manager = new ImageManager({ imageService: counting, clock: new FakeClock(Date.now()) });
    const pod = { name: 'p', namespace: 'default', uid: 'uid-1' };
    for (const policy of ['Never', 'IfNotPresent'] as const) {
      const r = await manager.ensureImageExists({
        pod,
        container: { name: 'c', image: `${REPO}@${digestOf(one)}`, imagePullPolicy: policy },
      });
      assert.equal(r.ok, true, `${policy}: ${r.message}`);
      assert.equal(r.imageRef, idOf(one));
    }
    assert.equal(pulls, 0);
  });

  test('a moved tag keeps the old image untagged, by repo digest and id', async () => {
    await store.load({ layout: `oci:${join(dir, 'two')}:1`, name: `${REPO}:stable` });
    const names = (await store.images.list()).map((r) => r.name).sort();
    assert.deepEqual(names, [`${REPO}:stable`, `${REPO}@${digestOf(one)}`].sort());
    const listed = await svc.listImages();
    const old = listed.find((i) => i.id === idOf(one));
    assert.ok(old, 'the old image is still listed');
    assert.deepEqual(old.repoTags, []);
    assert.deepEqual(old.repoDigests, [`${REPO}@${digestOf(one)}`]);
    assert.equal((await svc.imageStatus({ image: idOf(one) }))?.id, idOf(one));
    assert.equal((await svc.imageStatus({ image: `${REPO}@${digestOf(one)}` }))?.id, idOf(one));
    assert.equal((await svc.imageStatus({ image: `${REPO}:stable` }))?.id, idOf(two));
    // Its blobs are not reclaimable while it is present.
    const gc = await store.gc({ dryRun: true });
    assert.equal(
      gc.removed.some((b) => b.digest === idOf(one)),
      false,
    );
    // Pulling the tag again at the same image does not add another name.
    await store.load({ layout: `oci:${join(dir, 'two')}:1`, name: `${REPO}:stable` });
    assert.equal((await store.images.list()).length, 2);
  });

  test('image GC counts the old image as unused and removes it first', async () => {
    const clock = new FakeClock(Date.now() + 10 * 60_000);
    const manager = new ImageGCManager({
      service: svc,
      usage: new FakeUsageSource(1000, 0),
      policy: { ...DEFAULT_IMAGE_GC_POLICY, minAgeMs: 0 },
      clock,
      hints: storeUsageHints(store),
      sweep: async () => (await store.gc()).bytesFreed,
      state: new MemoryImageGCStateStore(),
    });
    const inUse = [idOf(two)];
    const r = await manager.garbageCollect({ inUse });
    assert.deepEqual(
      r.removed.map((x) => x.image.id),
      [idOf(one)],
    );
    assert.deepEqual(
      (await store.images.list()).map((x) => x.name),
      [`${REPO}:stable`],
    );
  });
});
