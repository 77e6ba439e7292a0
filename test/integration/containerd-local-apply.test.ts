/**
 * Local apply (src/containerd `local-apply.ts`) against a real containerd 1.6 with its overlayfs
 * snapshotter and a real registry:
 * - differential: one image with whiteouts, opaque directories, implicit parent directories over a lower
 *   directory with another mode and owner, hardlinks, symlinks, a directory replaced by a file and back
 *   (and the reverse), setuid/setgid modes, owners, `user.*` xattrs, a root entry, gzip, zstd and plain
 *   layers — pulled by kimg with `localApply: true` into one namespace and with the default
 *   (containerd's Diff.Apply) into another: every layer's snapshot directory is the same tree (types,
 *   modes, owners, link targets, file digests, mtimes, 0/0 whiteout devices, `trusted.overlay.opaque`,
 *   xattrs); the directories whose mtime is the time of the extraction in both (the snapshot's own
 *   directory, implicit directories) are compared without it. A container runs from the image.
 * - the default (local apply off) and the `native` snapshotter go through Diff.Apply;
 * - a layer whose diff ID is not the config's fails with `DIGEST_MISMATCH` naming it and leaves no
 *   staging directory and no active snapshot.
 *
 * Where containerd's `archive.Apply` and kimg's applier deliberately differ on layers no builder writes
 * (a whiteout after an entry of the same name in one layer: containerd fails the apply, kimg keeps the
 * entry), the image does not contain them (docs/design/containerd-backend.md lists them).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ContainerdClient,
  chainIds,
  pullIntoContainerd,
  type ContainerdPullOptions,
} from '../../src/containerd/index.js';
import { isKimgError } from '../../src/errors/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import type { GeneratedImage } from '../helpers/images.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { buildImage, type BuiltImage, type ImageDef } from '../helpers/unpack-images.js';
import { describeTree, type TreeNode } from '../helpers/unpack-tree.js';

const T = 1_600_000_000;

/** The image: three layers, each compression once. */
const IMAGE: ImageDef = {
  layers: [
    {
      compression: 'gzip',
      entries: [
        // containerd ignores an entry naming the root; so does local apply.
        { type: 'dir', name: './', mode: 0o700, mtime: T },
        { type: 'dir', name: 'etc/', mtime: T + 1 },
        { type: 'file', name: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\n', mtime: T + 2 },
        { type: 'hardlink', name: 'etc/passwd.hl', target: 'etc/passwd' },
        { type: 'file', name: 'etc/x', data: 'x', xattrs: { 'user.kimg': 'one' }, mtime: T + 3 },
        { type: 'dir', name: 'opt/', mode: 0o711, uid: 7, gid: 8, mtime: T + 4 },
        { type: 'dir', name: 'opt/app/', mode: 0o2750, uid: 1000, gid: 1001, mtime: T + 5 },
        { type: 'file', name: 'opt/app/run', data: '#!/bin/sh\n', mode: 0o4755, mtime: T + 6 },
        { type: 'dir', name: 'data/', mtime: T + 7 },
        { type: 'file', name: 'data/old', data: 'old', uid: 1234, gid: 5678, mtime: T + 8 },
        { type: 'dir', name: 'gone/', mtime: T + 9 },
        { type: 'file', name: 'gone/f', data: 'f', mtime: T + 9 },
        { type: 'dir', name: 'dir2file/', mtime: T + 10 },
        { type: 'file', name: 'dir2file/child', data: 'c', mtime: T + 10 },
        { type: 'file', name: 'file2dir', data: 'f2d', mtime: T + 11 },
        { type: 'symlink', name: 'lnk', target: 'etc/passwd' },
        { type: 'symlink', name: 'abs', target: '/etc/x' },
        // An implicit parent in the bottom layer: 0755, nothing below to copy from.
        { type: 'file', name: 'implicit/a/b', data: 'b', mtime: T + 12 },
        { type: 'file', name: 'zero', data: 'z', mtime: 0 },
      ],
    },
    {
      compression: 'zstd',
      entries: [
        { type: 'file', name: '.wh.gone', data: '' },
        { type: 'dir', name: 'data/', mode: 0o750, mtime: T + 20 },
        { type: 'file', name: 'data/.wh..wh..opq', data: '' },
        { type: 'file', name: 'data/new', data: 'new', mtime: T + 21 },
        // opt/ and opt/app/ are implicit: they take the lower directories' owner and mode.
        { type: 'file', name: 'opt/app/sub/f', data: 'sub', uid: 3, gid: 4, mtime: T + 22 },
        { type: 'file', name: 'dir2file', data: 'now a file', mtime: T + 23 },
        { type: 'dir', name: 'file2dir/', mode: 0o1777, mtime: T + 24 },
        { type: 'file', name: 'file2dir/inner', data: 'inner', mtime: T + 24 },
        { type: 'symlink', name: 'lnk', target: 'data/new' },
        { type: 'file', name: 'etc/y', data: 'y', xattrs: { 'user.a': '1', 'user.b': '2' }, mtime: T + 25 },
        { type: 'hardlink', name: 'etc/y.hl', target: 'etc/y' },
      ],
    },
    {
      compression: 'none',
      entries: [
        { type: 'dir', name: 'dir2file/', mode: 0o755, mtime: T + 30 },
        { type: 'file', name: 'dir2file/back', data: 'back', mtime: T + 30 },
        { type: 'file', name: 'file2dir', data: 'a file again', mode: 0o600, mtime: T + 31 },
        { type: 'file', name: '.wh.lnk', data: '' },
        { type: 'file', name: 'etc/.wh.passwd.hl', data: '' },
        { type: 'file', name: 'opt/app/sub/.wh..wh..opq', data: '' },
        { type: 'file', name: 'opt/app/sub/g', data: 'g', mode: 0o2711, mtime: T + 32 },
        { type: 'file', name: 'implicit/a/c', data: 'c', uid: 9, gid: 9, mtime: T + 33 },
      ],
    },
  ],
};

/** Every xattr of every path under `root` (lgetxattr through perl, like src/unpack's setter). */
function xattrsOf(root: string): Record<string, Record<string, string>> {
  const paths: string[] = [];
  const walk = (rel: string): void => {
    paths.push(rel);
    const p = rel === '.' ? root : join(root, rel);
    if (lstatSync(p).isDirectory())
      for (const n of readdirSync(p).sort()) walk(rel === '.' ? n : `${rel}/${n}`);
  };
  walk('.');
  const script = `
    use strict; my ($root) = @ARGV; local $/ = "\\0";
    while (my $rel = <STDIN>) { chomp $rel; my $p = $rel eq '.' ? $root : "$root/$rel";
      my $names = "\\0" x 65536; my $n = syscall(195, $p, $names, 65536);
      next if $n <= 0;
      for my $k (split /\\0/, substr($names, 0, $n)) {
        my $v = "\\0" x 65536; my $m = syscall(192, $p, $k, $v, 65536);
        print "$rel\\0$k\\0", unpack('H*', substr($v, 0, $m < 0 ? 0 : $m)), "\\0";
      }
    }`;
  const out = execFileSync('perl', ['-e', script, root], { input: paths.join('\0') + '\0' }).toString();
  const f = out.split('\0');
  const res: Record<string, Record<string, string>> = {};
  for (let i = 0; i + 2 < f.length; i += 3)
    (res[f[i]!] ??= {})[f[i + 1]!] = Buffer.from(f[i + 2]!, 'hex').toString();
  return res;
}

/** A tree with mtimes (ms) where they are deterministic; `skipMtime` paths get none. */
function treeOf(
  root: string,
  skipMtime: ReadonlySet<string>,
): Record<string, TreeNode & { mtimeMs?: number }> {
  const tree: Record<string, TreeNode & { mtimeMs?: number }> = describeTree(root);
  for (const [rel, node] of Object.entries(tree)) {
    // A whiteout device is made at extraction time, by both.
    if (skipMtime.has(rel) || (node.type === 'char' && node.rdev === 0)) continue;
    node.mtimeMs = lstatSync(rel === '.' ? root : join(root, rel)).mtimeMs;
  }
  return tree;
}

describe('local apply into containerd’s overlayfs snapshotter', () => {
  let work = '';
  let reg: StartedRegistry;
  let ctrd: StartedContainerd;
  let registry: RegistryClient;
  let img: BuiltImage;
  let bad: BuiltImage;
  const clients: ContainerdClient[] = [];

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry', 'zstd']) requireBinary(b);
    work = await makeTempDir('ctrd-local-');
    const r = startRegistry({ mode: 'plain' });
    img = buildImage(join(work, 'layout'), { ...IMAGE, tag: 'diff' });
    // The second layer's diff ID in the config is the first's: its extraction cannot match.
    bad = buildImage(join(work, 'layout'), {
      layers: [
        { entries: [{ type: 'file', name: 'a', data: 'a' }] },
        { entries: [{ type: 'file', name: 'b', data: 'b' }] },
      ],
      diffIds: ['sha256:' + 'a'.repeat(64), 'sha256:' + 'b'.repeat(64)],
      tag: 'bad',
    });
    [reg, ctrd] = await Promise.all([r, startContainerd()]);
    assert.equal(ctrd.snapshotter, 'overlayfs', 'this host must allow overlay mounts');
    await ctrd.addPlainHttpRegistry(reg.host);
    const asGenerated = (b: BuiltImage): GeneratedImage =>
      ({ layoutDir: b.layout, tag: b.tag, manifests: [{}] }) as unknown as GeneratedImage;
    await skopeoPush(asGenerated(img), reg, 'diff:1');
    await skopeoPush(asGenerated(bad), reg, 'bad:1');
    registry = new RegistryClient({ plainHttp: [reg.host] });
  });

  after(async () => {
    for (const c of clients) c.close();
    await registry?.close().catch(() => undefined);
    await ctrd?.stop();
    await reg?.stop();
    if (work) await removeTempDir(work);
  });

  function client(namespace: string): ContainerdClient {
    const c = new ContainerdClient({ address: ctrd.socket, namespace });
    clients.push(c);
    return c;
  }

  const pull = (c: ContainerdClient, ref: string, extra: Partial<ContainerdPullOptions> = {}) =>
    pullIntoContainerd(`${reg.host}/${ref}`, { client: c, registry, ...extra });

  /** The snapshot directories of every layer of `top`'s chain, bottom first (from a probe's mounts). */
  async function layerDirs(c: ContainerdClient, top: string): Promise<string[]> {
    const key = `probe-${Date.now()}`;
    const mounts = await c.snapshotPrepare('overlayfs', key, top, {});
    try {
      const lower = mounts[0]?.options.find((o) => o.startsWith('lowerdir='))?.slice('lowerdir='.length);
      assert.ok(lower !== undefined, JSON.stringify(mounts));
      return lower.split(':').reverse();
    } finally {
      await c.snapshotRemove('overlayfs', key);
    }
  }

  const stagingDir = (): string => join(ctrd.root, 'io.containerd.snapshotter.v1.overlayfs', 'kimg-staging');

  test('every layer’s snapshot is the tree containerd’s Diff.Apply makes', async () => {
    const local = client('la-local');
    const theirs = client('la-diff');
    const a = await pull(local, 'diff:1', { localApply: true });
    const b = await pull(theirs, 'diff:1', { localApply: false });
    assert.equal(a.stats.layersUnpacked, 3);
    assert.equal(a.stats.layersAppliedLocally, 3, JSON.stringify(a.stats));
    assert.equal(b.stats.layersUnpacked, 3);
    assert.equal(b.stats.layersAppliedLocally, 0);
    assert.deepEqual(readdirSync(stagingDir()), [], 'staging left behind');

    const top = chainIds(img.diffIds).at(-1)!;
    const [mine, ref] = [await layerDirs(local, top), await layerDirs(theirs, top)];
    assert.equal(mine.length, 3);
    // The snapshot's own directory and implicit directories take the extraction's time in both.
    const skip = new Set(['.', 'implicit', 'implicit/a', 'opt', 'opt/app', 'opt/app/sub', 'etc']);
    for (const [i, dir] of mine.entries()) {
      assert.notEqual(dir, ref[i]);
      assert.deepEqual(treeOf(dir, skip), treeOf(ref[i]!, skip), `layer ${i}: the trees differ`);
      assert.deepEqual(xattrsOf(dir), xattrsOf(ref[i]!), `layer ${i}: the xattrs differ`);
    }
    // What the comparison covers, on local apply's side.
    const l1 = describeTree(mine[1]!);
    assert.deepEqual([l1['opt']?.mode, l1['opt']?.uid, l1['opt']?.gid], [0o711, 7, 8]);
    assert.deepEqual([l1['opt/app']?.mode, l1['opt/app']?.uid], [0o2750, 1000]);
    assert.deepEqual([l1['gone']?.type, l1['gone']?.rdev], ['char', 0]);
    assert.equal(xattrsOf(mine[1]!)['data']?.['trusted.overlay.opaque'], 'y');
    assert.equal(describeTree(mine[0]!)['.']?.mode, 0o755);
    assert.equal(describeTree(mine[2]!)['file2dir']?.type, 'file');
  });

  test('by default, and on the native snapshotter, layers go through Diff.Apply', async () => {
    const off = await pull(client('la-off'), 'diff:1');
    assert.equal(off.stats.layersUnpacked, 3);
    assert.equal(off.stats.layersAppliedLocally, 0);
    const native = await pull(client('la-native'), 'diff:1', { snapshotter: 'native', localApply: true });
    assert.equal(native.unpacked, true);
    assert.equal(native.stats.layersUnpacked, 3);
    assert.equal(native.stats.layersAppliedLocally, 0);
  });

  test('a layer whose diff ID is not the config’s: DIGEST_MISMATCH, no staging, no active snapshot', async () => {
    const c = client('la-bad');
    await assert.rejects(pull(c, 'bad:1', { localApply: true }), (e: unknown) => {
      assert.ok(isKimgError(e, 'DIGEST_MISMATCH'), String(e));
      assert.match((e as Error).message, new RegExp(bad.layerDigests[0]!.slice(7, 19)));
      return true;
    });
    assert.deepEqual(readdirSync(stagingDir()), []);
    const active = (await c.snapshotList('overlayfs')).filter((s) => s.kind === 'ACTIVE');
    assert.deepEqual(active, []);
  });
});
