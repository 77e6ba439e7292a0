/**
 * Image volumes (`materializeImageVolume`): an image's layers into a directory, and an OCI artifact's
 * titled blobs as files (digest-checked, untitled blobs skipped, a title leaving the directory refused,
 * colliding titles refused before anything is written, a non-empty directory refused unless forced, a
 * failed copy removing the volume).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isKimgError } from '../../src/errors/index.js';
import { lookupImage, openStore, type Store } from '../../src/store/index.js';
import { materializeImageVolume } from '../../src/unpack/index.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { buildImage } from '../helpers/unpack-images.js';

function blob(layout: string, data: Buffer): { digest: string; size: number } {
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), data);
  return { digest, size: data.length };
}

/** Adds an OCI artifact (empty config, custom layer types) to the layout under `tag`. */
function buildArtifact(layout: string, tag: string, files: { title?: string; data: string }[]): void {
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const config = blob(layout, Buffer.from('{}'));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.bundle',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', ...config },
      layers: files.map((f) => ({
        mediaType: 'application/vnd.example.data',
        ...blob(layout, Buffer.from(f.data)),
        ...(f.title !== undefined ? { annotations: { 'org.opencontainers.image.title': f.title } } : {}),
      })),
    }),
  );
  const m = blob(layout, manifest);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: unknown[] };
  index.manifests.push({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...m,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  });
  writeFileSync(join(layout, 'index.json'), JSON.stringify(index));
}

describe('image volumes', () => {
  let dir: string;
  let store: Store;

  before(async () => {
    dir = await makeTempDir('unpack-volume-');
    store = await openStore({ root: join(dir, 'store') });
    const layout = join(dir, 'layout');
    buildImage(layout, {
      tag: 'img',
      layers: [
        {
          entries: [
            { type: 'dir', name: 'models/' },
            { type: 'file', name: 'models/a.bin', data: 'A' },
          ],
        },
        {
          entries: [
            { type: 'file', name: 'models/.wh.a.bin' },
            { type: 'file', name: 'models/b.bin', data: 'B' },
          ],
        },
      ],
    });
    buildArtifact(layout, 'art', [
      { title: 'config.yaml', data: 'key: value\n' },
      { title: 'sub/data.bin', data: 'data' },
      { data: 'no title' },
    ]);
    buildArtifact(layout, 'evil', [{ title: '../escape', data: 'x' }]);
    buildArtifact(layout, 'dup', [
      { title: 'same', data: 'one' },
      { title: 'same', data: 'two' },
    ]);
    buildArtifact(layout, 'dupclean', [
      { title: 'd/./f', data: 'one' },
      { title: 'd//f', data: 'two' },
    ]);
    buildArtifact(layout, 'overlap', [
      { title: 'x/y', data: 'file below' },
      { title: 'x', data: 'a file where a directory must be' },
    ]);
    buildArtifact(layout, 'corrupt', [
      { title: 'first', data: 'fine' },
      { title: 'second', data: 'bytes the store will lose' },
    ]);
    for (const t of ['img', 'art', 'evil', 'dup', 'dupclean', 'overlap', 'corrupt'])
      await store.load({ layout: `oci:${layout}:${t}`, name: `example.com/vol:${t}` });
  });
  after(async () => {
    await store?.close();
    await removeTempDir(dir);
  });

  it('materialises an image as its applied layers', async () => {
    const r = await materializeImageVolume(store, 'example.com/vol:img', join(dir, 'v-img'));
    assert.equal(r.kind, 'image');
    assert.deepEqual(readdirSync(join(dir, 'v-img', 'models')), ['b.bin']);
    assert.ok(!existsSync(join(dir, 'v-img', 'config.json')));
  });

  it('materialises an artifact as its titled blobs', async () => {
    const r = await materializeImageVolume(store, 'example.com/vol:art', join(dir, 'v-art'));
    assert.equal(r.kind, 'artifact');
    assert.deepEqual(r.files, ['config.yaml', 'sub/data.bin']);
    assert.equal(readFileSync(join(dir, 'v-art', 'config.yaml'), 'utf8'), 'key: value\n');
    assert.equal(readFileSync(join(dir, 'v-art', 'sub', 'data.bin'), 'utf8'), 'data');
    assert.equal(statSync(join(dir, 'v-art', 'config.yaml')).mode & 0o777, 0o444);
  });

  it('refuses a title that leaves the volume', async () => {
    await assert.rejects(materializeImageVolume(store, 'example.com/vol:evil', join(dir, 'v-evil')), (e) =>
      isKimgError(e, 'UNPACK_UNSAFE'),
    );
    assert.ok(!existsSync(join(dir, 'escape')));
  });

  for (const [tag, what] of [
    ['dup', 'two titles naming the same file'],
    ['dupclean', 'two titles that clean to the same file'],
    ['overlap', 'a title that is a directory of another'],
  ] as const) {
    it(`refuses ${what} (MANIFEST_INVALID), writing nothing`, async () => {
      const target = join(dir, `v-${tag}`);
      await assert.rejects(materializeImageVolume(store, `example.com/vol:${tag}`, target), (e) => {
        assert.ok(isKimgError(e, 'MANIFEST_INVALID'), String(e));
        assert.match(e.message, /artifact file title/);
        return true;
      });
      assert.ok(!existsSync(target), 'nothing was written');
    });
  }

  it('refuses a non-empty directory for an artifact unless forced', async () => {
    const target = join(dir, 'v-busy');
    mkdirSync(target);
    writeFileSync(join(target, 'old'), 'old');
    await assert.rejects(materializeImageVolume(store, 'example.com/vol:art', target), (e) =>
      isKimgError(e, 'TARGET_NOT_EMPTY'),
    );
    assert.equal(readFileSync(join(target, 'old'), 'utf8'), 'old');
    const r = await materializeImageVolume(store, 'example.com/vol:art', target, { force: true });
    assert.deepEqual(r.files, ['config.yaml', 'sub/data.bin']);
    assert.ok(!existsSync(join(target, 'old')), 'forced: the old content is replaced');
    // A file where the volume directory should be is refused the same way, for images too.
    writeFileSync(join(dir, 'v-file'), 'x');
    for (const t of ['art', 'img'])
      await assert.rejects(materializeImageVolume(store, `example.com/vol:${t}`, join(dir, 'v-file')), (e) =>
        isKimgError(e, 'TARGET_NOT_EMPTY'),
      );
  });

  it('a blob that fails its digest while copying removes the volume (DIGEST_MISMATCH)', async () => {
    const record = await lookupImage(store.images, 'example.com/vol:corrupt');
    const manifest = JSON.parse(
      (await store.content.readBlob(record?.manifestDigest ?? '')).toString('utf8'),
    ) as { layers: { digest: string }[] };
    const second = manifest.layers[1]?.digest ?? '';
    writeFileSync(store.content.blobPath(second), 'other bytes, same length...');
    const target = join(dir, 'v-corrupt');
    await assert.rejects(materializeImageVolume(store, 'example.com/vol:corrupt', target), (e) =>
      isKimgError(e, 'DIGEST_MISMATCH'),
    );
    assert.ok(!existsSync(target), 'the half-written volume is removed');
  });
});
