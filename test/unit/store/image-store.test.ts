import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { isKimgError } from '../../../src/errors/index.js';
import { ANNOTATION_REF_NAME, MediaType, type ImageIndex } from '../../../src/oci/index.js';
import { openStore, ANNOTATION_KIMG_NAME, lookupImage, lookupImages } from '../../../src/store/index.js';
import { addTinyImage, sha256, tempStore } from './fixtures.js';

async function readIndex(root: string): Promise<ImageIndex> {
  return JSON.parse(await fsp.readFile(join(root, 'oci', 'index.json'), 'utf8')) as ImageIndex;
}

describe('store layout and format version', () => {
  test('a new root is a valid OCI layout with a version file; record dirs are 0700 and record files 0600', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      assert.deepEqual(JSON.parse(await fsp.readFile(join(root, 'kimg-store.json'), 'utf8')), { version: 1 });
      assert.deepEqual(JSON.parse(await fsp.readFile(join(root, 'oci', 'oci-layout'), 'utf8')), {
        imageLayoutVersion: '1.0.0',
      });
      assert.deepEqual((await readIndex(root)).manifests, []);
      const { record } = await addTinyImage(store, 'example.com/a:1', { put: true });
      assert.equal((await fsp.stat(root)).mode & 0o777, 0o700);
      assert.equal((await fsp.stat(join(root, 'images'))).mode & 0o777, 0o700);
      const [file] = await fsp.readdir(join(root, 'images'));
      assert.equal((await fsp.stat(join(root, 'images', file as string))).mode & 0o777, 0o600);
      assert.deepEqual(await store.images.get(record), record);
    } finally {
      await cleanup();
    }
  });

  test('a newer on-disk format version is refused with STORE_VERSION_UNSUPPORTED naming the file', async () => {
    const { root, cleanup } = await tempStore();
    try {
      await fsp.writeFile(join(root, 'kimg-store.json'), JSON.stringify({ version: 2 }));
      await assert.rejects(openStore({ root }), (e: unknown) => {
        assert.ok(isKimgError(e, 'STORE_VERSION_UNSUPPORTED'));
        assert.equal(e.details.file, join(root, 'kimg-store.json'));
        assert.match(e.message, /version 2/);
        return true;
      });
      await fsp.writeFile(join(root, 'kimg-store.json'), 'not json');
      await assert.rejects(
        openStore({ root }),
        (e: unknown) => isKimgError(e, 'STORE_CORRUPT') && e.details.file === join(root, 'kimg-store.json'),
      );
    } finally {
      await cleanup();
    }
  });
});

describe('ImageStore', () => {
  test('put, get, list, touch, delete; index.json has one entry per image with the full name', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const a = await addTinyImage(store, '127.0.0.1:5000/small:1', { put: true });
      const b = await addTinyImage(store, 'docker.io/library/busybox@sha256:' + 'a'.repeat(64), {
        put: true,
        docker: true,
      });
      const c = await addTinyImage(store, '127.0.0.1:5000/small:1', { put: true, runtimeHandler: 'kata' });
      const list = await store.images.list();
      assert.deepEqual(
        list.map((r) => [r.name, r.runtimeHandler]),
        [
          ['127.0.0.1:5000/small:1', ''],
          ['127.0.0.1:5000/small:1', 'kata'],
          ['docker.io/library/busybox@sha256:' + 'a'.repeat(64), ''],
        ],
      );
      const index = await readIndex(root);
      assert.equal(index.manifests.length, 3);
      const entryA = index.manifests.find(
        (m) => m.annotations?.[ANNOTATION_REF_NAME] === '127.0.0.1:5000/small:1',
      );
      assert.equal(entryA?.digest, a.record.manifestDigest);
      assert.equal(entryA?.mediaType, MediaType.OciManifest);
      assert.equal(entryA?.size, a.manifest.length);
      const entryB = index.manifests.find((m) => m.digest === b.record.manifestDigest);
      assert.equal(
        entryB?.mediaType,
        MediaType.DockerManifest,
        'Docker schema2 kept with its own media type',
      );
      const entryC = index.manifests.find((m) => m.digest === c.record.manifestDigest);
      assert.equal(
        entryC?.annotations?.[ANNOTATION_REF_NAME],
        undefined,
        'only the default handler carries ref.name',
      );
      assert.equal(entryC?.annotations?.[ANNOTATION_KIMG_NAME], '127.0.0.1:5000/small:1');

      const when = new Date('2030-01-02T03:04:05.000Z');
      await store.images.touch(a.record, when);
      assert.equal((await store.images.get(a.record))?.lastUsed, when.toISOString());
      await assert.rejects(store.images.touch({ name: 'nope:1' }), (e: unknown) =>
        isKimgError(e, 'IMAGE_NOT_PRESENT'),
      );

      assert.equal(await store.images.delete(a.record), true);
      assert.equal(await store.images.delete(a.record), false);
      assert.equal(await store.images.get(a.record), undefined);
      assert.equal((await readIndex(root)).manifests.length, 2);
      assert.ok(await store.content.hasBlob(a.record.manifestDigest), 'blobs stay until GC');
    } finally {
      await cleanup();
    }
  });

  test('put refuses a record whose blobs are not committed (BLOB_NOT_FOUND) and a malformed record (INVALID_ARGUMENT)', async () => {
    const { store, cleanup } = await tempStore();
    try {
      const { record } = await addTinyImage(store, 'example.com/a:1');
      const missing = {
        ...record,
        layers: [...record.layers, { mediaType: MediaType.OciLayerGzip, digest: sha256('nope'), size: 4 }],
      };
      await assert.rejects(
        store.images.put(missing),
        (e: unknown) => isKimgError(e, 'BLOB_NOT_FOUND') && e.details.input === sha256('nope'),
      );
      await assert.rejects(store.images.put({ ...record, imageId: 'sha256:xyz' }), (e: unknown) =>
        isKimgError(e, 'INVALID_ARGUMENT'),
      );
      await assert.rejects(store.images.put({ ...record, name: '' }), (e: unknown) =>
        isKimgError(e, 'INVALID_ARGUMENT'),
      );
      assert.deepEqual(await store.images.list(), []);
    } finally {
      await cleanup();
    }
  });

  test('lookup by reference (normalized), by image id and by id prefix', async () => {
    const { store, cleanup } = await tempStore();
    try {
      const a = await addTinyImage(store, 'docker.io/library/busybox:latest', { put: true });
      const found = await lookupImage(store.images, 'busybox');
      assert.equal(found.name, 'docker.io/library/busybox:latest');
      assert.equal((await lookupImage(store.images, a.record.imageId)).name, a.record.name);
      assert.equal((await lookupImage(store.images, a.record.imageId.slice(7, 20))).name, a.record.name);
      assert.deepEqual(await lookupImages(store.images, 'nginx'), []);
      const d = 'sha256:' + 'b'.repeat(64);
      await addTinyImage(store, `docker.io/library/busybox@${d}`, { put: true });
      assert.equal(
        (await lookupImage(store.images, `busybox:1.36@${d}`)).name,
        `docker.io/library/busybox@${d}`,
        'tag next to a digest is dropped',
      );
      await assert.rejects(lookupImage(store.images, 'nginx'), (e: unknown) =>
        isKimgError(e, 'IMAGE_NOT_PRESENT'),
      );
    } finally {
      await cleanup();
    }
  });

  test('index.json entries kimg did not write are preserved', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const foreign = await addTinyImage(store, 'x');
      const idx = await readIndex(root);
      idx.manifests.push({
        mediaType: MediaType.OciManifest,
        digest: foreign.record.manifestDigest,
        size: foreign.manifest.length,
        annotations: { [ANNOTATION_REF_NAME]: 'skopeo-copied' },
      });
      await fsp.writeFile(join(root, 'oci', 'index.json'), JSON.stringify(idx));
      await addTinyImage(store, 'example.com/a:1', { put: true });
      const after = await readIndex(root);
      assert.deepEqual(
        after.manifests.map((m) => m.annotations?.[ANNOTATION_REF_NAME]),
        ['skopeo-copied', 'example.com/a:1'],
      );
      const gc = await store.gc();
      assert.ok(
        !gc.removed.some((r) => r.digest === foreign.record.manifestDigest),
        'GC keeps what foreign entries name',
      );
    } finally {
      await cleanup();
    }
  });
});

describe('crash between record and index.json', () => {
  test('a record written without its index.json update is repaired on open', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      await addTinyImage(store, 'example.com/a:1', { put: true });
      const before = await fsp.readFile(join(root, 'oci', 'index.json'), 'utf8');
      const b = await addTinyImage(store, 'example.com/b:1', { put: true });
      // Simulate the crash: index.json as it was before the second put.
      await fsp.writeFile(join(root, 'oci', 'index.json'), before);
      const v = await store.verify();
      assert.equal(v.ok, false);
      assert.deepEqual(
        v.problems.map((p) => p.kind),
        ['index-out-of-sync'],
      );
      const reopened = await openStore({ root });
      try {
        const idx = await readIndex(root);
        assert.ok(idx.manifests.some((m) => m.digest === b.record.manifestDigest));
        assert.equal((await reopened.verify()).ok, true);
      } finally {
        await reopened.close();
      }
    } finally {
      await cleanup();
    }
  });

  test('a deleted record whose index.json entry remains is dropped from index.json on open', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const a = await addTinyImage(store, 'example.com/a:1', { put: true });
      const withA = await fsp.readFile(join(root, 'oci', 'index.json'), 'utf8');
      await store.images.delete(a.record);
      await fsp.writeFile(join(root, 'oci', 'index.json'), withA);
      const reopened = await openStore({ root });
      await reopened.close();
      assert.deepEqual((await readIndex(root)).manifests, []);
    } finally {
      await cleanup();
    }
  });
});

describe('corrupt metadata', () => {
  test('a corrupt index.json is STORE_CORRUPT naming it; verify --repair quarantines and rebuilds without losing images', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const a = await addTinyImage(store, 'example.com/a:1', { put: true });
      const b = await addTinyImage(store, 'example.com/b:1', { put: true });
      await fsp.writeFile(join(root, 'oci', 'index.json'), '{"schemaVersion":2,"manifests":[{"digest":');
      await assert.rejects(openStore({ root }), (e: unknown) => {
        assert.ok(isKimgError(e, 'STORE_CORRUPT'));
        assert.equal(e.details.file, join(root, 'oci', 'index.json'));
        assert.match(e.message, /index\.json/);
        assert.match(e.message, /kimg store verify --repair/);
        return true;
      });
      const s2 = await openStore({ root, reconcile: false });
      try {
        const r = await s2.verify({ repair: true });
        assert.equal(r.ok, true);
        assert.deepEqual(
          r.problems.map((p) => p.kind),
          ['index-json'],
        );
        assert.match(r.problems[0]?.repaired ?? '', /quarantined to .*quarantine/);
      } finally {
        await s2.close();
      }
      const s3 = await openStore({ root });
      try {
        assert.deepEqual(
          (await s3.images.list()).map((r) => r.name),
          ['example.com/a:1', 'example.com/b:1'],
        );
        assert.equal((await readIndex(root)).manifests.length, 2);
        assert.ok((await readIndex(root)).manifests.some((m) => m.digest === a.record.manifestDigest));
        assert.ok((await readIndex(root)).manifests.some((m) => m.digest === b.record.manifestDigest));
        assert.equal((await fsp.readdir(join(root, 'quarantine'))).length, 1);
        assert.equal((await s3.verify()).ok, true);
      } finally {
        await s3.close();
      }
    } finally {
      await cleanup();
    }
  });

  test('a corrupt record is STORE_CORRUPT naming the file; repair quarantines only that record', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      await addTinyImage(store, 'example.com/a:1', { put: true });
      const b = await addTinyImage(store, 'example.com/b:1', { put: true });
      const files = await fsp.readdir(join(root, 'images'));
      let bad = '';
      for (const f of files) {
        const text = await fsp.readFile(join(root, 'images', f), 'utf8');
        if (text.includes('example.com/a:1')) bad = join(root, 'images', f);
      }
      await fsp.writeFile(bad, '{"version":1,"record":{"name":"example.com/a:1"}}');
      await assert.rejects(
        store.images.list(),
        (e: unknown) => isKimgError(e, 'STORE_CORRUPT') && e.details.file === bad,
      );
      await assert.rejects(
        store.images.get({ name: 'example.com/a:1' }),
        (e: unknown) => isKimgError(e, 'STORE_CORRUPT') && e.details.file === bad,
      );
      await assert.rejects(
        openStore({ root }),
        (e: unknown) => isKimgError(e, 'STORE_CORRUPT') && e.details.file === bad,
      );
      await assert.rejects(
        store.gc(),
        (e: unknown) => isKimgError(e, 'STORE_CORRUPT'),
        'GC refuses to run on a damaged store',
      );
      const r = await store.verify({ repair: true });
      assert.equal(r.ok, true);
      assert.deepEqual(
        r.problems.map((p) => [p.kind, p.file]),
        [
          ['record', bad],
          ['index-out-of-sync', join(root, 'oci', 'index.json')],
        ],
        'the quarantined record leaves index.json one entry too many, which is rebuilt',
      );
      assert.deepEqual(
        (await store.images.list()).map((x) => x.name),
        [b.record.name],
      );
      assert.deepEqual(
        (await readIndex(root)).manifests.map((m) => m.digest),
        [b.record.manifestDigest],
      );
      assert.equal((await store.verify()).ok, true);
    } finally {
      await cleanup();
    }
  });

  test('a newer record format version is STORE_VERSION_UNSUPPORTED', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const a = await addTinyImage(store, 'example.com/a:1', { put: true });
      const [f] = await fsp.readdir(join(root, 'images'));
      const file = join(root, 'images', f as string);
      await fsp.writeFile(file, JSON.stringify({ version: 9, record: a.record }));
      await assert.rejects(
        store.images.get(a.record),
        (e: unknown) => isKimgError(e, 'STORE_VERSION_UNSUPPORTED') && e.details.file === file,
      );
    } finally {
      await cleanup();
    }
  });
});
