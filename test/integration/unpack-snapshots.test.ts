/**
 * `--snapshots`: one directory per layer diff keyed by chain ID, whiteouts kept as overlayfs reads
 * them. Checked with the real kernel: the overlay mount of an image's snapshot directories shows the
 * same tree as the same image unpacked into a plain rootfs; a second image sharing the base layers
 * unpacks only its own layer; a whiteout is a 0/0 character device and an opaque directory carries
 * `trusted.overlay.opaque=y`.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isKimgError } from '../../src/errors/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { unpackImage, type UnpackEvent } from '../../src/unpack/index.js';
import { runCommand } from '../helpers/proc.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { buildImage, type LayerDef } from '../helpers/unpack-images.js';
import { describeTree, getXattr } from '../helpers/unpack-tree.js';

const BASE: LayerDef[] = [
  {
    compression: 'gzip',
    entries: [
      { type: 'dir', name: 'etc/' },
      { type: 'file', name: 'etc/a', data: 'a' },
      { type: 'file', name: 'etc/b', data: 'b' },
      { type: 'dir', name: 'opq/' },
      { type: 'file', name: 'opq/old', data: 'old' },
      { type: 'symlink', name: 'lnk', target: 'etc/a' },
    ],
  },
  {
    compression: 'zstd',
    entries: [
      { type: 'file', name: 'etc/.wh.b' },
      { type: 'file', name: 'opq/.wh..wh..opq' },
      { type: 'file', name: 'opq/new', data: 'new', mode: 0o600, uid: 3, gid: 4 },
    ],
  },
];

describe('unpack --snapshots: overlay-ready layers keyed by chain ID', () => {
  let dir: string;
  let store: Store;
  const mounts: string[] = [];

  /**
   * Mounts `r`'s snapshots read-only (overlayfs) at its rootfs, unpacks the same image plainly, and
   * returns both trees without their roots.
   */
  async function mountedAndPlain(
    r: Awaited<ReturnType<typeof unpackImage>>,
    tag: string,
  ): Promise<{ got: ReturnType<typeof describeTree>; want: ReturnType<typeof describeTree> }> {
    await runCommand('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `ro,lowerdir=${r.lowerDirs?.join(':')}`,
      r.rootfs,
    ]);
    mounts.push(r.rootfs);
    const plain = await unpackImage(store, `example.com/snap:${tag}`, join(dir, `plain-${tag}`));
    const want = describeTree(plain.rootfs);
    const got = describeTree(r.rootfs);
    delete want['.'];
    delete got['.'];
    return { got, want };
  }

  before(async () => {
    dir = await makeTempDir('unpack-snap-');
    store = await openStore({ root: join(dir, 'store') });
    const layout = join(dir, 'layout');
    buildImage(layout, { tag: 'one', layers: BASE });
    buildImage(layout, {
      tag: 'two',
      layers: [
        ...BASE,
        {
          compression: 'none',
          entries: [
            { type: 'file', name: 'etc/two', data: '2' },
            { type: 'file', name: '.wh.lnk' },
          ],
        },
      ],
    });
    // A layer opaque at its top (`.wh..wh..opq` at the root) hides every lower name.
    buildImage(layout, {
      tag: 'three',
      layers: [
        ...BASE,
        {
          compression: 'gzip',
          entries: [
            { type: 'file', name: '.wh..wh..opq' },
            { type: 'dir', name: 'etc/' },
            { type: 'file', name: 'etc/c', data: 'c' },
            { type: 'file', name: 'top', data: 't' },
          ],
        },
      ],
    });
    buildImage(layout, {
      tag: 'four',
      layers: [
        ...BASE,
        { compression: 'none', entries: [{ type: 'file', name: 'etc/two', data: '2' }] },
        {
          compression: 'zstd',
          entries: [
            { type: 'file', name: 'opq/kept', data: 'k' },
            { type: 'file', name: '.wh..wh..opq' },
          ],
        },
      ],
    });
    // Whiteouts are created when the layer ends, in one batch: later entries of the same layer win.
    const many = Array.from({ length: 300 }, (_, i) => ({
      type: 'file' as const,
      name: `many/f${i}`,
      data: 'x',
    }));
    buildImage(layout, {
      tag: 'five',
      layers: [
        { compression: 'gzip', entries: [...BASE[0]!.entries, { type: 'dir', name: 'many/' }, ...many] },
        {
          compression: 'gzip',
          entries: [
            { type: 'file', name: '.wh.lnk' },
            { type: 'file', name: 'lnk', data: 'a file where the symlink was' },
            { type: 'file', name: 'etc/.wh.a' },
            { type: 'file', name: 'etc/a/inside', data: 'a directory now' },
            { type: 'file', name: 'opq/.wh.old' },
            { type: 'file', name: 'opq', data: 'the directory replaced by a file' },
            ...many
              .slice(0, 299)
              .map((f) => ({ type: 'file' as const, name: f.name.replace('/f', '/.wh.f') })),
          ],
        },
      ],
    });
    for (const t of ['one', 'two', 'three', 'four', 'five'])
      await store.load({ layout: `oci:${layout}:${t}`, name: `example.com/snap:${t}` });
  });
  after(async () => {
    for (const m of mounts) await runCommand('umount', [m], { allowFailure: true });
    await store?.close();
    await removeTempDir(dir);
  });

  it('keeps whiteouts the overlayfs way and mounts to the same tree as a plain unpack', async () => {
    const snaps = join(dir, 'snaps');
    const r = await unpackImage(store, 'example.com/snap:one', join(dir, 'b-one'), { snapshots: snaps });
    assert.equal(r.lowerDirs?.length, 2);
    const top = r.layers[1]?.snapshot as string;
    const wh = lstatSync(join(top, 'etc', 'b'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout is a 0/0 char device');
    assert.equal(await getXattr(join(top, 'opq'), 'trusted.overlay.opaque'), 'y');
    assert.match(r.layers[1]?.snapshot ?? '', new RegExp(`${(r.layers[1]?.chainId ?? '').slice(7)}/fs$`));

    const { got, want } = await mountedAndPlain(r, 'one');
    assert.deepEqual(got, want);
  });

  it('a second image sharing the base unpacks only its own layer', async () => {
    const snaps = join(dir, 'snaps');
    const events: UnpackEvent[] = [];
    const r = await unpackImage(store, 'example.com/snap:two', join(dir, 'b-two'), {
      snapshots: snaps,
      onProgress: (e) => events.push(e),
    });
    assert.deepEqual(
      events.filter((e) => e.type === 'layer-cached').map((e) => (e as { index: number }).index),
      [0, 1],
    );
    assert.deepEqual(
      events.filter((e) => e.type === 'layer-done').map((e) => (e as { index: number }).index),
      [2],
    );
    assert.equal(readdirSync(join(snaps, 'sha256')).length, 3);
    const { got, want } = await mountedAndPlain(r, 'two');
    assert.deepEqual(got, want);
    assert.equal(got['lnk'], undefined);
  });

  for (const tag of ['three', 'four']) {
    it(`a layer opaque at its top hides the lower layers' names when mounted (${tag})`, async () => {
      const snaps = join(dir, 'snaps');
      const r = await unpackImage(store, `example.com/snap:${tag}`, join(dir, `b-${tag}`), {
        snapshots: snaps,
      });
      const topLayer = r.layers[r.layers.length - 1];
      assert.equal(topLayer?.stats?.topOpaque, true);
      const { got, want } = await mountedAndPlain(r, tag);
      assert.deepEqual(got, want);
      assert.equal(got['lnk'], undefined);
      assert.equal(got['etc/a'], undefined);
    });
  }

  it('batched whiteouts: hundreds in one layer, and later entries of the layer at their names win', async () => {
    const r = await unpackImage(store, 'example.com/snap:five', join(dir, 'b-five'), {
      snapshots: join(dir, 'snaps'),
    });
    const top = r.layers[1]?.snapshot as string;
    assert.equal(readdirSync(join(top, 'many')).length, 299);
    assert.ok(lstatSync(join(top, 'many', 'f0')).isCharacterDevice());
    assert.ok(lstatSync(join(top, 'lnk')).isFile(), 'the file of the same layer is kept, no whiteout');
    assert.ok(lstatSync(join(top, 'etc', 'a')).isDirectory());
    assert.ok(lstatSync(join(top, 'opq')).isFile());
    const { got, want } = await mountedAndPlain(r, 'five');
    assert.deepEqual(got, want);
    assert.deepEqual(readdirSync(join(r.rootfs, 'many')), ['f299']);
  });

  it('refuses --rootless and non-root snapshot unpacks up front (INVALID_ARGUMENT), writing nothing', async () => {
    const snaps = join(dir, 'snaps-rootless');
    const bundle = join(dir, 'b-rootless');
    await assert.rejects(
      unpackImage(store, 'example.com/snap:one', bundle, { snapshots: snaps, rootless: true }),
      (e) => isKimgError(e, 'INVALID_ARGUMENT') && /cannot be unpacked rootless/.test(e.message),
    );
    assert.ok(!existsSync(snaps) && !existsSync(bundle), 'nothing was created');
    // A non-root process (uid 65534) is refused before it touches the store or any directory.
    const lib = new URL('../../src/unpack/index.js', import.meta.url).href;
    const script = `
      const { unpackImage } = await import(${JSON.stringify(lib)});
      process.setegid(65534); process.seteuid(65534);
      try { await unpackImage({}, 'x', ${JSON.stringify(bundle)}, { snapshots: ${JSON.stringify(snaps)} }); }
      catch (e) { process.stdout.write(e.code + ' ' + e.message); }`;
    const r = await runCommand(process.execPath, ['--input-type=module', '-e', script]);
    assert.match(r.stdout, /^INVALID_ARGUMENT snapshot directories need root/);
    assert.ok(!existsSync(snaps) && !existsSync(bundle), 'nothing was created');
  });
});
