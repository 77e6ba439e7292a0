/**
 * Differential test against umoci (Debian's umoci 0.4.7): generated images whose layers exercise
 * whiteouts (including a same-layer one), opaque directories, hardlinks, relative and absolute
 * symlinks, a file replaced by a directory and back, a directory replaced by a file and back, modes
 * with setuid/setgid/sticky bits, owners, FIFOs and devices, long (pax) names, and gzip / zstd /
 * uncompressed layers. umoci 0.4.7 reads no zstd, so it gets the same tars gzip-compressed (same diff
 * IDs, so the same image). kimg's `unpackImage` and `umoci unpack` (as root) must produce the same tree:
 * paths, types, modes, owners, link counts, link targets, device numbers, file digests and mtimes (of
 * every entry, directories included); an xattr a layer sets reads back the same from both trees. The
 * same images with Docker schema 2 media types unpack to the same trees as the OCI ones.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore, type Store } from '../../src/store/index.js';
import { unpackImage } from '../../src/unpack/index.js';
import { requireBinary } from '../helpers/components.js';
import { runCommand } from '../helpers/proc.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { buildImage, type ImageDef } from '../helpers/unpack-images.js';
import { describeTree, getXattr } from '../helpers/unpack-tree.js';

const LONG = 'long/' + 'n'.repeat(120) + '/' + 'f'.repeat(90);

const IMAGES: Record<string, ImageDef> = {
  changes: {
    layers: [
      {
        compression: 'gzip',
        entries: [
          { type: 'dir', name: 'a/' },
          { type: 'dir', name: 'a/b/', mode: 0o750, uid: 7, gid: 8 },
          {
            type: 'file',
            name: 'a/f1',
            data: 'one',
            mode: 0o640,
            uid: 1000,
            gid: 1000,
            mtime: 1_234_567_890,
          },
          { type: 'file', name: 'a/b/f2', data: 'two' },
          { type: 'hardlink', name: 'a/hl', target: 'a/f1' },
          { type: 'symlink', name: 'a/rel', target: 'b/f2' },
          { type: 'symlink', name: 'a/abs', target: '/a/f1', uid: 3, gid: 4 },
          { type: 'dir', name: 'bin/' },
          { type: 'file', name: 'bin/su', data: 'su', mode: 0o4755 },
          { type: 'file', name: 'bin/sg', data: 'sg', mode: 0o2711 },
          { type: 'dir', name: 'tmp/', mode: 0o1777, mtime: 1_111_111_111 },
          { type: 'dir', name: 'd1/' },
          { type: 'file', name: 'd1/x', data: 'x' },
          { type: 'file', name: 'd1/y', data: 'y' },
          { type: 'file', name: 'f2dir', data: 'I am a file' },
          { type: 'dir', name: 'dir2file/' },
          { type: 'file', name: 'dir2file/child', data: 'child' },
          { type: 'dir', name: 'o/' },
          { type: 'file', name: 'o/lower1', data: 'l1' },
          { type: 'dir', name: 'o/sub/' },
          { type: 'file', name: 'o/sub/lower2', data: 'l2' },
          { type: 'fifo', name: 'pipe', mode: 0o600 },
          { type: 'dir', name: 'dev/' },
          { type: 'char', name: 'dev/null', major: 1, minor: 3, mode: 0o666 },
          { type: 'dir', name: 'gone/' },
          { type: 'file', name: 'gone/deep', data: 'deep' },
          { type: 'file', name: LONG, data: 'long name' },
        ],
      },
      {
        compression: 'zstd',
        entries: [
          { type: 'file', name: 'a/.wh.f1' },
          { type: 'file', name: 'o/.wh..wh..opq' },
          { type: 'file', name: 'o/new', data: 'new' },
          { type: 'dir', name: 'o/sub/' },
          { type: 'file', name: 'o/sub/upper', data: 'up' },
          { type: 'file', name: 'd1/.wh.x' },
          { type: 'dir', name: 'f2dir/', mode: 0o711 },
          { type: 'file', name: 'f2dir/c', data: 'now a dir' },
          { type: 'file', name: 'dir2file', data: 'now a file', mode: 0o600 },
          { type: 'file', name: '.wh.gone' },
          { type: 'file', name: 's/kept', data: 'same layer' },
          { type: 'file', name: 's/.wh.kept' },
          { type: 'file', name: 'a/rel', data: 'symlink replaced by file' },
        ],
      },
      {
        compression: 'none',
        entries: [
          { type: 'file', name: 'f2dir', data: 'a file again', mode: 0o644, uid: 2, gid: 2 },
          { type: 'dir', name: 'dir2file/', mode: 0o700, uid: 9, gid: 9 },
          { type: 'file', name: 'dir2file/back', data: 'dir again' },
          { type: 'dir', name: 'a/b/', mode: 0o700, uid: 5, gid: 6 },
          { type: 'file', name: 'a/b/f2', data: 'two, changed', mode: 0o755, uid: 11, gid: 12 },
          { type: 'hardlink', name: 'a/hl2', target: 'a/hl' },
          { type: 'file', name: 'a/xattr', data: 'x', xattrs: { 'user.kimg': 'value' } },
          { type: 'file', name: 'a/old', data: 'old', mtime: 1_000_000_000 },
        ],
      },
    ],
  },
  zstdOnly: {
    layers: [
      {
        compression: 'zstd',
        entries: [
          { type: 'dir', name: 'usr/', mode: 0o755 },
          { type: 'file', name: 'usr/big', data: Buffer.alloc(3 * 1024 * 1024, 'abcdefgh') },
        ],
      },
      {
        compression: 'zstd',
        entries: [
          { type: 'file', name: 'usr/.wh..wh..opq' },
          { type: 'file', name: 'usr/small', data: 's' },
        ],
      },
    ],
  },
};

describe('unpack: same tree as umoci unpack', () => {
  let dir: string;
  let store: Store;
  const layout = () => join(dir, 'layout');
  const umociLayout = () => join(dir, 'layout-umoci');

  before(async () => {
    requireBinary('umoci');
    dir = await makeTempDir('unpack-umoci-');
    store = await openStore({ root: join(dir, 'store') });
    for (const [tag, def] of Object.entries(IMAGES)) {
      buildImage(layout(), { ...def, tag });
      const gz = def.layers.map((l) => ({
        ...l,
        compression: l.compression === 'zstd' ? ('gzip' as const) : l.compression,
      }));
      buildImage(umociLayout(), { ...def, layers: gz, tag });
      await store.load({ layout: `oci:${layout()}:${tag}`, name: `example.com/diff:${tag}` });
      // The same image with Docker schema 2 media types (`…rootfs.diff.tar.gzip`, `.zstd`, plain tar).
      buildImage(layout(), { ...def, tag: `${tag}-docker`, mediaTypes: 'docker' });
      await store.load({ layout: `oci:${layout()}:${tag}-docker`, name: `example.com/diff:${tag}-docker` });
    }
  });
  after(async () => {
    await store?.close();
    await removeTempDir(dir);
  });

  for (const tag of Object.keys(IMAGES)) {
    it(`image "${tag}"`, async () => {
      const started = Math.floor(Date.now() / 1000) - 1;
      const umociBundle = join(dir, `umoci-${tag}`);
      await runCommand(requireBinary('umoci'), ['unpack', '--image', `${umociLayout()}:${tag}`, umociBundle]);
      const kimgBundle = join(dir, `kimg-${tag}`);
      await unpackImage(store, `example.com/diff:${tag}`, kimgBundle);
      const want = describeTree(join(umociBundle, 'rootfs'), { mtime: true });
      const got = describeTree(join(kimgBundle, 'rootfs'), { mtime: true });
      // The root's time is not the image's (no layer here has a `./` entry): umoci leaves it at the
      // unpack's time, kimg at the epoch. Parents no entry names (`long/`, `s/`) get the time they were
      // made in both: "now", a second apart at most.
      delete want['.']?.mtime;
      delete got['.']?.mtime;
      for (const [p, n] of Object.entries(got)) {
        const w = want[p];
        if (w?.mtime !== undefined && n.mtime !== undefined && w.mtime >= started && n.mtime >= started) {
          delete w.mtime;
          delete n.mtime;
        }
      }
      assert.deepEqual(got, want);
      if (tag === 'changes') {
        // The comparison is only as good as what both produce: pin the layer semantics too.
        assert.equal(got['a/f1'], undefined, 'whiteout removed a/f1');
        assert.equal(got['a/hl']?.nlink, 2, 'the hardlinks outlive the whited-out name');
        assert.deepEqual(
          Object.keys(got)
            .filter((p) => p.startsWith('o/'))
            .sort(),
          ['o/new', 'o/sub', 'o/sub/upper'],
        );
        assert.equal(got['d1/x'], undefined);
        assert.equal(got['gone'], undefined);
        assert.equal(got['s/kept']?.type, 'file', 'a whiteout does not hide its own layer');
        assert.equal(got['f2dir']?.type, 'file');
        assert.equal(got['dir2file']?.type, 'dir');
        assert.equal(got['dir2file/child'], undefined);
        assert.equal(got['bin/su']?.mode, 0o4755);
        assert.equal(got['tmp']?.mode, 0o1777);
        assert.equal(got['a/abs']?.target, '/a/f1');
        assert.equal(got['pipe']?.type, 'fifo');
        assert.equal(got['dev/null']?.type, 'char');
        assert.equal(got[LONG]?.type, 'file');
        assert.equal(got['a/old']?.mtime, 1_000_000_000);
        assert.equal(got['a/hl']?.mtime, 1_234_567_890, 'a hardlink shares its inode times');
        assert.equal(got['tmp']?.mtime, 1_111_111_111, "a directory's time is set after its children");
        const xattr = await getXattr(join(kimgBundle, 'rootfs', 'a', 'xattr'), 'user.kimg');
        assert.equal(xattr, 'value');
        assert.equal(await getXattr(join(umociBundle, 'rootfs', 'a', 'xattr'), 'user.kimg'), xattr);
      }
    });
  }

  for (const tag of Object.keys(IMAGES)) {
    it(`image "${tag}" with Docker media types unpacks to the same tree`, async () => {
      const oci = await unpackImage(store, `example.com/diff:${tag}`, join(dir, `oci-${tag}`));
      const docker = await unpackImage(store, `example.com/diff:${tag}-docker`, join(dir, `docker-${tag}`));
      assert.ok(
        IMAGES[tag]?.layers.every((l, i) =>
          docker.layers[i]?.mediaType.startsWith('application/vnd.docker.'),
        ),
      );
      assert.deepEqual(
        docker.layers.map((l) => l.diffId),
        oci.layers.map((l) => l.diffId),
      );
      assert.deepEqual(describeTree(docker.rootfs), describeTree(oci.rootfs));
    });
  }
});
