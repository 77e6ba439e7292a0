/**
 * Image volumes (`materializeImageVolume`): an image's layers into a directory, and an OCI artifact's
 * titled blobs as files (digest-checked, untitled blobs skipped, a title leaving the directory refused).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isKimgError } from '../../src/errors/index.js';
import { openStore, type Store } from '../../src/store/index.js';
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
    for (const t of ['img', 'art', 'evil'])
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
});
