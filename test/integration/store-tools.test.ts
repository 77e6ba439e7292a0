/**
 * kimg's store is a real OCI image layout: the real `skopeo` (containers/image `oci:` transport) and
 * `umoci` read the images kimg loaded, and kimg reads what they wrote. Needs skopeo and umoci
 * installed (the test fails, never skips, when they are missing).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.js';
import { requireBinary } from '../helpers/components.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { runCommand } from '../helpers/proc.js';
import { skopeo } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

describe('store interoperability with skopeo and umoci', () => {
  let dir: string;
  let root: string;
  let store: Store;
  let small: GeneratedImage;
  let multi: GeneratedImage;
  let umoci: string;

  before(async () => {
    umoci = requireBinary('umoci');
    requireBinary('skopeo');
    dir = await makeTempDir('tools-');
    root = join(dir, 'root');
    small = await generateImage(join(dir, 'gen'), {
      name: 'small',
      layers: [{ size: 4096 }, { size: 4096, kind: 'text' }],
    });
    multi = await generateImage(join(dir, 'gen-multi'), {
      name: 'multi',
      layers: [{ size: 65536 }],
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
      ],
    });
    store = await openStore({ root });
    await store.load({ layout: `oci:${join(dir, 'gen')}:1`, name: '127.0.0.1:5000/small:1' });
    await store.load({
      layout: `oci:${join(dir, 'gen-multi')}:1`,
      name: '127.0.0.1:5000/multi:1',
      platform: 'linux/arm64/v8',
    });
  });
  after(async () => {
    await store?.close();
    if (dir) await removeTempDir(dir);
  });

  test('skopeo inspect oci:<root>/oci:<full name> shows the stored digest and the same manifest bytes', async () => {
    const r = await skopeo(['inspect', `oci:${root}/oci:127.0.0.1:5000/small:1`]);
    const info = JSON.parse(r.stdout) as {
      Digest: string;
      Layers: string[];
      Os: string;
      Architecture: string;
    };
    assert.equal(info.Digest, small.digest);
    assert.deepEqual(
      info.Layers,
      small.manifests[0]?.layers.map((l) => l.digest),
    );
    const raw = await skopeo(['inspect', '--raw', `oci:${root}/oci:127.0.0.1:5000/small:1`]);
    assert.deepEqual(Buffer.from(raw.stdout), await store.content.readBlob(small.digest), 'byte-for-byte');

    const m = await skopeo(['inspect', `oci:${root}/oci:127.0.0.1:5000/multi:1`]);
    const arm = multi.manifests.find((x) => x.platform?.architecture === 'arm64');
    const mi = JSON.parse(m.stdout) as { Digest: string; Architecture: string };
    assert.equal(mi.Digest, arm?.digest, 'the index entry is the platform-selected manifest');
    assert.equal(mi.Architecture, 'arm64');
  });

  test('umoci stat accepts the images and umoci unpack verifies and extracts the layers', async () => {
    const st = await runCommand(umoci, ['stat', '--image', `${root}/oci:127.0.0.1:5000/small:1`]);
    for (const l of small.manifests[0]?.layers ?? [])
      assert.ok(st.stdout.includes(l.digest), `umoci stat lists ${l.digest}`);
    await runCommand(umoci, ['stat', '--image', `${root}/oci:127.0.0.1:5000/multi:1`]);
    const bundle = join(dir, 'bundle');
    await runCommand(umoci, [
      'unpack',
      '--rootless',
      '--image',
      `${root}/oci:127.0.0.1:5000/small:1`,
      bundle,
    ]);
    const info = await fsp.readFile(join(bundle, 'rootfs', 'layer1', 'info.txt'), 'utf8');
    assert.match(info, /layer/);
  });

  test('an image skopeo copies into the store layout is kept as a foreign entry: GC keeps it, verify is clean', async () => {
    await skopeo(['copy', `oci:${join(dir, 'gen')}:1`, `oci:${root}/oci:copied-by-skopeo`]);
    const reopened = await openStore({ root });
    try {
      const gc = await reopened.gc();
      assert.deepEqual(gc.removed, []);
      const v = await reopened.verify();
      assert.deepEqual(v.problems, []);
      const again = await skopeo(['inspect', `oci:${root}/oci:copied-by-skopeo`]);
      assert.equal((JSON.parse(again.stdout) as { Digest: string }).Digest, small.digest);
      // kimg's own images are still there for skopeo too.
      await skopeo(['inspect', `oci:${root}/oci:127.0.0.1:5000/small:1`]);
    } finally {
      await reopened.close();
    }
  });

  test('kimg save writes a layout skopeo and umoci read; skopeo copies it on; kimg load reads that back (CLI, real processes)', async () => {
    const env = { ...process.env, KIMG_ROOT: root };
    const saved = join(dir, 'saved');
    await runCommand(process.execPath, [CLI, 'save', '127.0.0.1:5000/multi:1', `oci:${saved}:m1`], { env });
    const arm = multi.manifests.find((x) => x.platform?.architecture === 'arm64');
    const s = await skopeo(['inspect', `oci:${saved}:m1`]);
    assert.equal((JSON.parse(s.stdout) as { Digest: string }).Digest, arm?.digest);
    await runCommand(umoci, ['stat', '--image', `${saved}:m1`]);
    const hop = join(dir, 'hop');
    await skopeo(['copy', `oci:${saved}:m1`, `oci:${hop}:x`]);
    const other = join(dir, 'root-other');
    const r = await runCommand(
      process.execPath,
      [CLI, 'load', `oci:${hop}:x`, '--name', 'example.com/again:1', '--root', other, '-o', 'json'],
      { env },
    );
    const res = JSON.parse(r.stdout) as { images: { manifestDigest: string; imageId: string }[] };
    assert.equal(res.images[0]?.manifestDigest, arm?.digest, 'the digest survives kimg → skopeo → kimg');
    assert.equal(res.images[0]?.imageId, arm?.config.digest);
    const v = await runCommand(process.execPath, [CLI, 'store', 'verify', '--root', other], { env });
    assert.match(v.stdout, /no problems/);
  });
});
