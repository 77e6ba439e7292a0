/**
 * `kimg gc` without a registry: configuration refused with the kubelet's messages, an empty
 * store, and the per-image table/JSON of a store with loaded images (dry run, then for real with a
 * threshold of 0 % so usage is always over it: everything not in use or pinned is removed, LRU first).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openStore } from '../../../src/store/index.js';
import { generateImage } from '../../helpers/images.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { kimgInProcess as kimg } from '../../helpers/cli.js';

const HEADER = 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n';

describe('kimg gc', () => {
  let dir = '';
  before(async () => {
    dir = await makeTempDir('gc-cli-');
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  test('an invalid configuration is refused at start with the kubelet message (exit 2)', async () => {
    const cfg = join(dir, 'bad.yaml');
    await writeFile(cfg, `${HEADER}imageGCHighThresholdPercent: 70\nimageGCLowThresholdPercent: 75\n`);
    const r = await kimg('gc', '--root', join(dir, 'root-bad'), '--config', cfg);
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /invalid configuration: imageGCLowThresholdPercent \(--image-gc-low-threshold\) 75 must be less than imageGCHighThresholdPercent \(--image-gc-high-threshold\) 70/,
    );
  });

  test('an empty store: nothing to do', async () => {
    const r = await kimg('gc', '--root', join(dir, 'root-empty'), '--dry-run');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^would remove 0 image\(s\), 0 bytes \(0B\); usage \d+% \(high 85%, low 80%\)/m);
  });

  test('per-image KEEP/DELETE, reasons and LRU rank; the real run sweeps blobs', async () => {
    const root = join(dir, 'root');
    const store = await openStore({ root });
    try {
      for (const n of ['one', 'two', 'three']) {
        await generateImage(join(dir, n), { name: n, layers: [{ size: 2000 + n.length }] });
        await store.load({ layout: `oci:${join(dir, n)}:1`, name: `example.com/${n}:1` });
      }
      // Ages: one used most recently, three least recently.
      const t = Date.now() - 3_600_000;
      await store.images.touch({ name: 'example.com/three:1' }, new Date(t));
      await store.images.touch({ name: 'example.com/two:1' }, new Date(t + 1000));
      await store.images.touch({ name: 'example.com/one:1' }, new Date(t + 2000));
    } finally {
      await store.close();
    }
    const cfg = join(dir, 'zero.yaml');
    await writeFile(
      cfg,
      `${HEADER}imageGCHighThresholdPercent: 1\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 1ms\n`,
    );
    await new Promise((r) => setTimeout(r, 5));
    const common = ['--root', root, '--config', cfg, '--pinned', 'example.com/one:1'];

    const dry = await kimg(
      'gc',
      '--dry-run',
      '-o',
      'json',
      ...common,
      '--in-use',
      'example.com/two:1',
      '--in-use',
      'nothere:1',
    );
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stderr, /warning: --in-use "nothere:1" names no image in the store/);
    const doc = JSON.parse(dry.stdout) as {
      images: { names: string[]; action: string; reason: string; rank: number | null }[];
    };
    const rows = doc.images.map((i) => [i.names[0], i.action, i.reason, i.rank]);
    assert.deepEqual(rows, [
      ['example.com/three:1', 'delete', 'space', 1],
      ['example.com/one:1', 'keep', 'pinned', null],
      ['example.com/two:1', 'keep', 'in-use', null],
    ]);

    const real = await kimg('gc', ...common);
    // Usage of the real filesystem is far over 1 %: the low threshold (0 %) cannot be reached.
    assert.equal(real.status, 7, real.stderr);
    assert.match(
      real.stderr,
      /^Warning FreeDiskSpaceFailed: Failed to garbage collect required amount of images\. Attempted to free \d+ bytes, but only found \d+ bytes eligible to free\.$/m,
    );
    assert.match(real.stdout, /^example\.com\/three:1\s+<default>\s+\S+\s+\S+\s+\S+\s+DELETE\s+space\s+1$/m);
    assert.match(real.stdout, /^example\.com\/two:1\s.*\sDELETE\s+space\s+2$/m);
    assert.match(real.stdout, /^example\.com\/one:1\s.*\sKEEP\s+pinned\s+-$/m);
    assert.match(real.stdout, /^removed 2 image\(s\), \d+ bytes .*blobs swept: [1-9]\d* bytes/m);
    const images = await kimg('images', '--root', root, '-o', 'json');
    assert.deepEqual(
      (JSON.parse(images.stdout) as { images: { name: string }[] }).images.map((i) => i.name),
      ['example.com/one:1'],
    );
    const verify = await kimg('store', 'verify', '--root', root);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  });
});
