/**
 * LocalImageService (kimg's CRI image service over the store) without a registry: images come in
 * through `store.load`. Name and id resolution like containerd's LocalResolve, the CRI `Image` fields
 * (repoTags, repoDigests, size, uid/username from the config's User), idempotent removal of every name
 * of an image, runtime-handler keying, lastUsed marking and the image filesystem.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isKimgError } from '../../../src/errors/index.js';
import { LocalImageService, userFromImageConfig } from '../../../src/manager/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { openStore, type Store } from '../../../src/store/index.js';
import { generateImage, type GeneratedImage } from '../../helpers/images.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

describe('userFromImageConfig (containerd getUserFromImage)', () => {
  const cases: [string | undefined, { uid?: number; username?: string }][] = [
    [undefined, {}],
    ['', {}],
    ['1000', { uid: 1000 }],
    ['1000:1000', { uid: 1000 }],
    ['0', { uid: 0 }],
    ['nobody', { username: 'nobody' }],
    ['nobody:nogroup', { username: 'nobody' }],
    ['www-data:33', { username: 'www-data' }],
    ['12a', { username: '12a' }],
  ];
  for (const [input, want] of cases) {
    test(`${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => {
      assert.deepEqual(userFromImageConfig(input), want);
    });
  }
});

describe('LocalImageService', () => {
  let dir: string;
  let store: Store;
  let registry: RegistryClient;
  let svc: LocalImageService;
  let numeric: GeneratedImage;
  let named: GeneratedImage;
  let plain: GeneratedImage;

  before(async () => {
    dir = await makeTempDir('lis-');
    numeric = await generateImage(join(dir, 'numeric'), {
      name: 'numeric',
      layers: [{ size: 300 }],
      user: '1000:1000',
    });
    named = await generateImage(join(dir, 'named'), {
      name: 'named',
      layers: [{ size: 200 }],
      user: 'nobody:nogroup',
    });
    plain = await generateImage(join(dir, 'plain'), { name: 'plain', layers: [{ size: 100 }] });
    store = await openStore({ root: join(dir, 'root') });
    registry = new RegistryClient();
    svc = new LocalImageService({ store, registry });
    await store.load({ layout: `oci:${join(dir, 'numeric')}:1`, name: 'docker.io/library/busybox:latest' });
    await store.load({ layout: `oci:${join(dir, 'numeric')}:1`, name: 'docker.io/library/busybox:1.36' });
    await store.load({ layout: `oci:${join(dir, 'named')}:1`, name: 'registry.example/team/app:v1' });
    await store.load({ layout: `oci:${join(dir, 'plain')}:1`, name: 'registry.example/plain:1' });
  });
  after(async () => {
    await store?.close();
    await registry?.close();
    await removeTempDir(dir);
  });

  const idOf = (img: GeneratedImage): string => img.manifests[0]!.config.digest;

  test('resolves un-normalized names the kubelet sends, full ids and id prefixes', async () => {
    for (const image of [
      'busybox',
      'busybox:latest',
      'docker.io/library/busybox:latest',
      'library/busybox:1.36',
      idOf(numeric),
      idOf(numeric).slice(7, 19),
    ]) {
      const info = await svc.imageStatus({ image });
      assert.ok(info, `${image} should be present`);
      assert.equal(info.id, idOf(numeric), image);
    }
    assert.equal(await svc.imageStatus({ image: 'busybox:1.37' }), undefined);
    assert.equal(await svc.imageStatus({ image: 'sha256:' + '0'.repeat(64) }), undefined);
    assert.equal(await svc.imageStatus({ image: 'Invalid Name' }), undefined);
  });

  test('ImageInfo: repoTags of every name of the image, repoDigests, size, uid', async () => {
    const info = await svc.imageStatus({ image: 'busybox' });
    assert.ok(info);
    assert.deepEqual(info.repoTags, ['docker.io/library/busybox:1.36', 'docker.io/library/busybox:latest']);
    assert.deepEqual(info.repoDigests, [`docker.io/library/busybox@${numeric.digest}`]);
    assert.ok(info.size > 0);
    const rec = await store.images.get({ name: 'docker.io/library/busybox:latest' });
    assert.equal(info.size, rec?.size);
    assert.equal(info.uid, 1000);
    assert.equal(info.username, undefined);
    assert.equal(info.pinned, false);
    assert.deepEqual(info.spec, { image: idOf(numeric) });
  });

  test('ImageInfo: username from a non-numeric User, none without User', async () => {
    const a = await svc.imageStatus({ image: 'registry.example/team/app:v1' });
    assert.equal(a?.username, 'nobody');
    assert.equal(a?.uid, undefined);
    const b = await svc.imageStatus({ image: 'registry.example/plain:1' });
    assert.ok(b);
    assert.equal(b.uid, undefined);
    assert.equal(b.username, undefined);
  });

  test('listImages: one entry per image id and handler', async () => {
    const list = await svc.listImages();
    assert.equal(list.length, 3);
    const ids = list.map((i) => i.id).sort();
    assert.deepEqual(ids, [idOf(numeric), idOf(named), idOf(plain)].sort());
  });

  test('runtime handler keying: the same image for another handler is another image', async () => {
    const rec = await store.images.get({ name: 'registry.example/plain:1' });
    assert.ok(rec);
    await store.images.put({ ...rec, runtimeHandler: 'kata' });
    const def = await svc.imageStatus({ image: 'registry.example/plain:1' });
    const kata = await svc.imageStatus({ image: 'registry.example/plain:1', runtimeHandler: 'kata' });
    assert.equal(def?.spec?.runtimeHandler, undefined);
    assert.deepEqual(kata?.spec, { image: idOf(plain), runtimeHandler: 'kata' });
    assert.equal(
      await svc.imageStatus({ image: 'registry.example/team/app:v1', runtimeHandler: 'kata' }),
      undefined,
    );
    assert.equal((await svc.listImages()).length, 4);
    await svc.removeImage({ image: 'registry.example/plain:1', runtimeHandler: 'kata' });
    assert.equal(
      await svc.imageStatus({ image: 'registry.example/plain:1', runtimeHandler: 'kata' }),
      undefined,
    );
    assert.ok(await svc.imageStatus({ image: 'registry.example/plain:1' }), 'the default handler copy stays');
  });

  test('markUsed sets lastUsed of every name of the image', async () => {
    const when = new Date('2030-01-02T03:04:05.000Z');
    assert.equal(await svc.markUsed({ image: 'busybox' }, when), true);
    for (const name of ['docker.io/library/busybox:latest', 'docker.io/library/busybox:1.36']) {
      assert.equal((await store.images.get({ name }))?.lastUsed, when.toISOString());
    }
    assert.equal(await svc.markUsed({ image: 'absent:1' }), false);
  });

  test('imageFsInfo reports the store root and the bytes of its blobs', async () => {
    const [fs] = await svc.imageFsInfo();
    assert.ok(fs);
    assert.equal(fs.mountpoint, store.root);
    assert.ok(fs.usedBytes >= numeric.blobBytes + named.blobBytes + plain.blobBytes);
    assert.ok(fs.timestamp > Date.parse('2020-01-01') * 1_000_000);
  });

  test('removeImage by name removes the image with all its tags, and is idempotent', async () => {
    await svc.removeImage({ image: 'busybox:1.36' });
    assert.equal(await svc.imageStatus({ image: 'busybox' }), undefined);
    assert.equal(await store.images.get({ name: 'docker.io/library/busybox:latest' }), undefined);
    await svc.removeImage({ image: 'busybox:1.36' });
    await svc.removeImage({ image: idOf(numeric) });
    assert.ok(await svc.imageStatus({ image: 'registry.example/team/app:v1' }), 'other images stay');
  });

  test('removeImage by id', async () => {
    await svc.removeImage({ image: idOf(named) });
    assert.equal(await svc.imageStatus({ image: 'registry.example/team/app:v1' }), undefined);
  });

  test('an empty spec is INVALID_ARGUMENT', async () => {
    await assert.rejects(svc.imageStatus({ image: '' }), (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'));
    await assert.rejects(svc.pullImage({ image: '' }, undefined), (e: unknown) =>
      isKimgError(e, 'INVALID_ARGUMENT'),
    );
  });
});
