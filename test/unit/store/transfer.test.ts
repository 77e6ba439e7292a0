import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { isKimgError } from '../../../src/errors/index.js';
import { ANNOTATION_REF_NAME, MediaType, type ImageIndex } from '../../../src/oci/index.js';
import { generateImage, type GeneratedImage } from '../../helpers/images.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { tempStore } from './fixtures.js';

describe('load and save OCI layouts', () => {
  let dir: string;
  let small: GeneratedImage;
  let multi: GeneratedImage;
  before(async () => {
    dir = await makeTempDir('layouts-');
    small = await generateImage(join(dir, 'small'), {
      name: 'small',
      layers: [{ size: 4096 }, { size: 4096 }],
    });
    await generateImage(join(dir, 'small'), { name: 'small', tag: '2', layers: [{ size: 100 }] });
    multi = await generateImage(join(dir, 'multi'), {
      name: 'multi',
      layers: [{ size: 2048 }],
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
        { os: 'linux', architecture: 'arm', variant: 'v7' },
      ],
    });
  });
  after(async () => removeTempDir(dir));

  test('load oci:DIR:REF --name stores the image with source load, the layout digest and full size', async () => {
    const { store, cleanup } = await tempStore();
    try {
      const r = await store.load({ layout: `oci:${join(dir, 'small')}:1`, name: '127.0.0.1:5000/small:1' });
      assert.equal(r.images.length, 1);
      assert.equal(r.images[0]?.name, '127.0.0.1:5000/small:1');
      assert.equal(r.blobs.copied, 4);
      const m = small.manifests[0];
      const rec = await store.images.require({ name: '127.0.0.1:5000/small:1' });
      assert.equal(rec.source, 'load');
      assert.equal(rec.digest, small.digest);
      assert.equal(rec.manifestDigest, small.digest);
      assert.equal(rec.imageId, m?.config.digest);
      assert.equal(rec.size, small.blobBytes);
      assert.deepEqual(
        rec.layers.map((l) => l.digest),
        m?.layers.map((l) => l.digest),
      );
      assert.deepEqual(rec.platform, { os: 'linux', architecture: 'amd64' });
      assert.equal(rec.indexDigest, undefined);
      // Loading again copies nothing.
      const again = await store.load({
        layout: `oci:${join(dir, 'small')}:1`,
        name: '127.0.0.1:5000/small:1',
      });
      assert.equal(again.blobs.copied, 0);
      assert.equal((await store.verify()).ok, true);
    } finally {
      await cleanup();
    }
  });

  test('an index is resolved to the requested platform (default: this host); the index blob is kept', async () => {
    const { store, cleanup } = await tempStore();
    try {
      await store.load({
        layout: `oci:${join(dir, 'multi')}:1`,
        name: 'example.com/multi:1',
        platform: 'linux/arm64',
      });
      const rec = await store.images.require({ name: 'example.com/multi:1' });
      const arm = multi.manifests.find((m) => m.platform?.architecture === 'arm64');
      assert.equal(rec.digest, multi.digest);
      assert.equal(rec.indexDigest, multi.digest);
      assert.equal(rec.mediaType, MediaType.OciIndex);
      assert.equal(rec.manifestDigest, arm?.digest);
      assert.deepEqual(rec.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
      assert.ok(await store.content.hasBlob(multi.digest));
      assert.equal(
        await store.content.hasBlob(multi.manifests[0]?.digest as string),
        false,
        'other platforms are not copied',
      );
      assert.equal(
        rec.size,
        multi.size +
          (arm?.size ?? 0) +
          (arm?.config.size ?? 0) +
          (arm?.layers.reduce((a, l) => a + l.size, 0) ?? 0),
      );
      await assert.rejects(
        store.load({
          layout: `oci:${join(dir, 'multi')}:1`,
          name: 'example.com/multi:1',
          platform: 'windows/amd64',
        }),
        (e: unknown) => isKimgError(e, 'PLATFORM_NOT_FOUND'),
      );
    } finally {
      await cleanup();
    }
  });

  test('save then load round-trips digests; the saved layout names the image and can be merged into', async () => {
    const { store, cleanup } = await tempStore();
    const out = await makeTempDir('saved-');
    try {
      await store.load({
        layout: `oci:${join(dir, 'multi')}:1`,
        name: 'example.com/multi:1',
        platform: 'linux/arm/v7',
      });
      await store.load({ layout: `oci:${join(dir, 'small')}:1`, name: 'example.com/small:1' });
      const s1 = await store.save({ image: 'example.com/multi:1', layout: `oci:${out}` });
      assert.equal(s1.ref, 'example.com/multi:1');
      const s2 = await store.save({ image: 'example.com/small:1', layout: `oci:${out}:short` });
      assert.equal(s2.ref, 'short');
      const idx = JSON.parse(await fsp.readFile(join(out, 'index.json'), 'utf8')) as ImageIndex;
      assert.deepEqual(
        idx.manifests.map((m) => m.annotations?.[ANNOTATION_REF_NAME]),
        ['example.com/multi:1', 'short'],
      );
      assert.equal((await fsp.readdir(out)).includes('.kimg-ingest'), false);
      const rec = await store.images.require({ name: 'example.com/multi:1' });
      const { store: other, cleanup: c2 } = await tempStore();
      try {
        // The full name comes back from the save annotation, even for the short REF.
        const r = await other.load({ layout: `oci:${out}` });
        assert.deepEqual(r.images.map((i) => i.name).sort(), ['example.com/multi:1', 'example.com/small:1']);
        const back = await other.images.require({ name: 'example.com/multi:1' });
        assert.equal(back.manifestDigest, rec.manifestDigest);
        assert.equal(back.imageId, rec.imageId);
        assert.deepEqual(back.layers, rec.layers);
        assert.deepEqual(back.platform, rec.platform);
      } finally {
        await c2();
      }
    } finally {
      await removeTempDir(out);
      await cleanup();
    }
  });

  test('layout errors are coded: missing files, unknown REF, bare tag without --name, damaged blob naming the file', async () => {
    const { store, cleanup } = await tempStore();
    const bad = await makeTempDir('bad-');
    try {
      await assert.rejects(
        store.load({ layout: `oci:${bad}` }),
        (e: unknown) => isKimgError(e, 'LAYOUT_INVALID') && /oci-layout/.test(e.message),
      );
      await assert.rejects(
        store.load({ layout: `oci:${join(dir, 'small')}:nope`, name: 'x:1' }),
        (e: unknown) => isKimgError(e, 'IMAGE_NOT_PRESENT') && /"1", "2"/.test(e.message),
      );
      await assert.rejects(
        store.load({ layout: `oci:${join(dir, 'small')}:1` }),
        (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT') && /--name/.test(e.message),
      );
      await assert.rejects(store.load({ layout: `oci:${join(dir, 'small')}`, name: 'x:1' }), (e: unknown) =>
        isKimgError(e, 'USAGE'),
      );
      // A damaged layer in a copy of the layout.
      const copy = join(bad, 'copy');
      await fsp.cp(join(dir, 'small'), copy, { recursive: true });
      const layer = small.manifests[0]?.layers[1]?.digest.slice(7) as string;
      const lp = join(copy, 'blobs', 'sha256', layer);
      const content = await fsp.readFile(lp);
      content[10] = (content[10] as number) ^ 0xff;
      await fsp.writeFile(lp, content);
      await assert.rejects(
        store.load({ layout: `oci:${copy}:1`, name: 'x:1' }),
        (e: unknown) => isKimgError(e, 'DIGEST_MISMATCH') && e.details.file === lp,
      );
      assert.deepEqual(await store.images.list(), [], 'nothing recorded');
      await fsp.rm(lp);
      await assert.rejects(
        store.load({ layout: `oci:${copy}:1`, name: 'x:1' }),
        (e: unknown) => isKimgError(e, 'LAYOUT_INVALID') && e.details.file === lp,
      );
      await fsp.writeFile(join(copy, 'index.json'), '[');
      await assert.rejects(
        store.load({ layout: `oci:${copy}:1`, name: 'x:1' }),
        (e: unknown) => isKimgError(e, 'LAYOUT_INVALID') && e.details.file === join(copy, 'index.json'),
      );
      await assert.rejects(store.save({ image: 'nope:1', layout: `oci:${join(bad, 'out')}` }), (e: unknown) =>
        isKimgError(e, 'IMAGE_NOT_PRESENT'),
      );
      await store.load({ layout: `oci:${join(dir, 'small')}:2`, name: 'x:2' });
      await assert.rejects(
        store.save({ image: 'x:2', layout: `oci:${bad}` }),
        (e: unknown) => isKimgError(e, 'LAYOUT_INVALID'),
        'a non-empty non-layout directory',
      );
    } finally {
      await removeTempDir(bad);
      await cleanup();
    }
  });
});
