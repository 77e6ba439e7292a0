/**
 * Hostile layers: one image per extraction CVE class (docs/design/unpack.md lists them) — a symlink
 * named `.` or `/` replacing the root (CVE-2021-29136), `..` and absolute names, symlinks that escape
 * (in the same layer and through an earlier layer's symlink; CVE-2014-9356 class), hardlinks to files
 * outside the root (CVE-2014-6407 class), whiteouts that escape their directory (`.wh..`), chmod and
 * whiteouts through symlinks (CVE-2021-32760), symlink loops, an /etc/passwd symlinked to the host,
 * a /proc WorkingDir (CVE-2024-21626), ids above 2^31-1 (CVE-2024-40635), config Volumes climbing out
 * (CVE-2022-23648), plus malformed tars and a wrong diff ID. Each ends with the result inside the
 * bundle's rootfs (the bundle 0700) or a coded error, and a tree of sentinel files next to the bundle
 * (what the attacks aim at) is unchanged after every case. Every case runs again in `--snapshots` mode,
 * and a few through `materializeImageVolume`.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isKimgError, type KimgErrorCode } from '../../src/errors/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { materializeImageVolume, unpackImage, type RuntimeSpec } from '../../src/unpack/index.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { buildImage, type ImageDef } from '../helpers/unpack-images.js';
import { describeTree } from '../helpers/unpack-tree.js';

interface Case {
  name: string;
  image: (outside: string) => ImageDef;
  /** A coded failure, or a check of the (contained) result. */
  expect:
    { code: KimgErrorCode } | { rootfs: (rootfs: string, outside: string, config: RuntimeSpec) => void };
  rootless?: boolean;
}

const UP = '../'.repeat(24);

const CASES: Case[] = [
  {
    name: 'symlink named "." replaces the root (CVE-2021-29136)',
    image: (o) => ({
      layers: [
        { entries: [{ type: 'symlink', name: '.', target: o }] },
        { entries: [{ type: 'file', name: 'victim', data: 'pwned' }] },
      ],
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'symlink named "/" replaces the root',
    image: (o) => ({
      layers: [
        {
          entries: [
            { type: 'symlink', name: '/', target: o },
            { type: 'file', name: 'victim', data: 'pwned' },
          ],
        },
      ],
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'a file named "./" is not a directory for the root either',
    image: () => ({ layers: [{ entries: [{ type: 'file', name: './', data: 'x' }] }] }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: '".." names are clamped to the root',
    image: (o) => ({
      layers: [{ entries: [{ type: 'file', name: `${UP}${o.slice(1)}/victim`, data: 'pwned' }] }],
    }),
    expect: { rootfs: (r, o) => assert.equal(readFileSync(join(r, o, 'victim'), 'utf8'), 'pwned') },
  },
  {
    name: 'absolute names stay inside the root',
    image: (o) => ({ layers: [{ entries: [{ type: 'file', name: `${o}/victim`, data: 'pwned' }] }] }),
    expect: { rootfs: (r, o) => assert.equal(readFileSync(join(r, o, 'victim'), 'utf8'), 'pwned') },
  },
  {
    name: 'relative symlink climbing out, written through in the same layer',
    image: (o) => ({
      layers: [
        {
          entries: [
            { type: 'symlink', name: 'esc', target: `${UP}${o.slice(1)}` },
            { type: 'file', name: 'esc/victim', data: 'pwned' },
            { type: 'dir', name: 'esc/sub/', mode: 0o777 },
          ],
        },
      ],
    }),
    expect: { rootfs: (r, o) => assert.equal(readFileSync(join(r, o, 'victim'), 'utf8'), 'pwned') },
  },
  {
    name: 'absolute symlink from an earlier layer, written through by a later one',
    image: (o) => ({
      layers: [
        { entries: [{ type: 'symlink', name: 'esc', target: o }] },
        {
          entries: [
            { type: 'file', name: 'esc/victim', data: 'pwned' },
            { type: 'file', name: 'esc/sub/new', data: 'x' },
          ],
        },
      ],
    }),
    expect: {
      rootfs: (r, o) => {
        assert.equal(readFileSync(join(r, o, 'victim'), 'utf8'), 'pwned');
        assert.ok(existsSync(join(r, o, 'sub', 'new')));
      },
    },
  },
  {
    name: 'symlink chain through several links out of the root',
    image: (o) => ({
      layers: [
        {
          entries: [
            { type: 'dir', name: 'a/' },
            { type: 'symlink', name: 'a/up', target: '../..' },
            { type: 'symlink', name: 'b', target: `a/up/${UP}${o.slice(1)}` },
          ],
        },
        { entries: [{ type: 'file', name: 'b/victim', data: 'pwned' }] },
      ],
    }),
    expect: { rootfs: (r, o) => assert.equal(readFileSync(join(r, o, 'victim'), 'utf8'), 'pwned') },
  },
  {
    name: 'hardlink to a host file with ".."',
    image: (o) => ({
      layers: [{ entries: [{ type: 'hardlink', name: 'hl', target: `${UP}${o.slice(1)}/victim` }] }],
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'hardlink to a host file through an earlier layer symlink',
    image: (o) => ({
      layers: [
        { entries: [{ type: 'symlink', name: 'ln', target: UP }] },
        { entries: [{ type: 'hardlink', name: 'hl', target: `ln/${o.slice(1)}/victim` }] },
      ],
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'hardlink with an absolute target is read inside the root (missing there)',
    image: (o) => ({ layers: [{ entries: [{ type: 'hardlink', name: 'hl', target: `${o}/victim` }] }] }),
    expect: { code: 'LAYER_INVALID' },
  },
  {
    name: 'hardlink to a directory',
    image: () => ({
      layers: [
        {
          entries: [
            { type: 'dir', name: 'd/' },
            { type: 'hardlink', name: 'hl', target: 'd' },
          ],
        },
      ],
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'whiteout ".wh.." escaping its directory',
    image: () => ({
      layers: [{ entries: [{ type: 'dir', name: 'a/' }] }, { entries: [{ type: 'file', name: 'a/.wh..' }] }],
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'whiteout ".wh..." naming the parent',
    image: () => ({ layers: [{ entries: [{ type: 'file', name: '.wh...' }] }] }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'whiteouts through a symlink to the host',
    image: (o) => ({
      layers: [
        {
          entries: [
            { type: 'symlink', name: 'w', target: o },
            { type: 'symlink', name: 'v', target: `${UP}${o.slice(1)}` },
          ],
        },
        {
          entries: [
            { type: 'file', name: 'w/.wh.victim' },
            { type: 'file', name: 'v/.wh..wh..opq' },
            { type: 'file', name: 'v/.wh.sub' },
          ],
        },
      ],
    }),
    expect: { rootfs: (r) => assert.ok(existsSync(join(r, 'w'))) },
  },
  {
    name: 'a whiteout whose directory the same layer then turns into a symlink to the host',
    image: (o) => ({
      layers: [
        {
          entries: [
            { type: 'file', name: 'd/.wh.victim' },
            { type: 'file', name: 'e/.wh.victim' },
            { type: 'symlink', name: 'd', target: o },
            { type: 'symlink', name: 'e', target: `${UP}${o.slice(1)}` },
          ],
        },
      ],
    }),
    expect: { rootfs: (r) => assert.ok(lstatSync(join(r, 'd')).isSymbolicLink()) },
  },
  {
    name: 'chmod through a symlink (CVE-2021-32760)',
    image: (o) => ({
      layers: [
        {
          entries: [
            { type: 'symlink', name: 'x', target: `${o}/victim` },
            { type: 'symlink', name: 'y', target: o },
          ],
        },
        {
          entries: [
            { type: 'dir', name: 'x/', mode: 0o777 },
            { type: 'file', name: 'y', data: 'z', mode: 0o777 },
          ],
        },
      ],
    }),
    expect: {
      rootfs: (r) => {
        assert.ok(statSync(join(r, 'x')).isDirectory());
        assert.ok(statSync(join(r, 'y')).isFile());
      },
    },
  },
  {
    name: 'symlink loop',
    image: () => ({
      layers: [
        {
          entries: [
            { type: 'symlink', name: 'l1', target: 'l2' },
            { type: 'symlink', name: 'l2', target: 'l1' },
            { type: 'file', name: 'l1/f', data: 'x' },
          ],
        },
      ],
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'device nodes when rootless become empty files',
    rootless: true,
    image: () => ({
      layers: [{ entries: [{ type: 'char', name: 'mem', major: 1, minor: 1, mode: 0o666 }] }],
    }),
    expect: {
      rootfs: (r) => {
        const st = statSync(join(r, 'mem'));
        assert.ok(st.isFile());
        assert.equal(st.size, 0);
        assert.equal(st.mode & 0o7777, 0);
      },
    },
  },
  {
    name: '/etc/passwd symlinked to the host file is not read',
    image: (o) => ({
      layers: [
        {
          entries: [
            { type: 'dir', name: 'etc/' },
            { type: 'symlink', name: 'etc/passwd', target: `${o}/passwd` },
            { type: 'symlink', name: 'etc/group', target: `${UP}${o.slice(1)}/passwd` },
          ],
        },
      ],
      config: { User: 'daemon' },
    }),
    expect: { code: 'USER_NOT_FOUND' },
  },
  {
    name: 'WorkingDir in /proc (CVE-2024-21626)',
    image: () => ({
      layers: [{ entries: [{ type: 'dir', name: 'tmp/' }] }],
      config: { WorkingDir: '/proc/self/fd/7' },
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'uid above 2^31-1 (CVE-2024-40635)',
    image: () => ({
      layers: [{ entries: [{ type: 'dir', name: 'tmp/' }] }],
      config: { User: '4294967296:0' },
    }),
    expect: { code: 'UNPACK_UNSAFE' },
  },
  {
    name: 'config Volumes climbing out become tmpfs mounts at cleaned paths; nothing is copied (CVE-2022-23648)',
    image: (o) => ({
      layers: [{ entries: [{ type: 'dir', name: 'tmp/' }] }],
      config: { Volumes: { [`${UP}${o.slice(1)}`]: {}, '/data/../vol/': {}, '/': {}, '../..': {} } },
    }),
    expect: {
      rootfs: (r, o, config) => {
        const tmpfs = config.mounts.filter((m) => m.type === 'tmpfs' && m.source === 'tmpfs');
        const dests = tmpfs.map((m) => m.destination);
        assert.ok(
          dests.includes(o),
          `the outside path is a mount point inside the container: ${dests.join(' ')}`,
        );
        assert.ok(dests.includes('/vol'));
        assert.ok(!dests.some((d) => d.includes('..') || d === '/'), dests.join(' '));
        assert.ok(!existsSync(join(r, o)), 'no directory is created for a volume');
      },
    },
  },
  {
    name: 'diff ID mismatch',
    image: () => ({
      layers: [{ entries: [{ type: 'file', name: 'f', data: 'x' }] }],
      diffIds: [`sha256:${'0'.repeat(64)}`],
    }),
    expect: { code: 'DIGEST_MISMATCH' },
  },
  {
    name: 'a header with a bad checksum',
    image: () => ({
      layers: [
        {
          entries: [{ type: 'file', name: 'f', data: 'x' }],
          mangle: (t) => {
            const b = Buffer.from(t);
            b[0] = 0x67;
            return b;
          },
        },
      ],
    }),
    expect: { code: 'LAYER_INVALID' },
  },
  {
    name: 'a truncated entry body',
    image: () => ({
      layers: [
        {
          entries: [{ type: 'file', name: 'f', data: Buffer.alloc(5000, 1) }],
          mangle: (t) => t.subarray(0, 2048),
        },
      ],
    }),
    expect: { code: 'LAYER_INVALID' },
  },
  {
    name: 'bytes after the end-of-archive marker count in the diff ID',
    image: () => ({
      layers: [{ entries: [{ type: 'file', name: 'f', data: 'x' }], trailer: Buffer.alloc(4096, 1) }],
    }),
    expect: { rootfs: (r) => assert.equal(readFileSync(join(r, 'f'), 'utf8'), 'x') },
  },
];

describe('unpack: hostile layers stay inside the root or fail with a code', () => {
  let dir: string;
  let store: Store;
  let outside: string;
  let before0: string;

  /** Everything the attacks aim at, with times, as one string. */
  function snapshotOutside(): string {
    const tree = describeTree(outside);
    const times = Object.keys(tree).map((p) => statSync(join(outside, p)).mtimeMs);
    return JSON.stringify({ tree, times, siblings: readdirSync(dir).sort() });
  }

  before(async () => {
    dir = await makeTempDir('unpack-hostile-');
    outside = join(dir, 'outside');
    mkdirSync(join(outside, 'sub'), { recursive: true });
    writeFileSync(join(outside, 'victim'), 'original', { mode: 0o644 });
    writeFileSync(join(outside, 'sub', 'keep'), 'keep', { mode: 0o600 });
    // A passwd file the image would like kimg to read instead of its own.
    writeFileSync(join(outside, 'passwd'), 'daemon:x:1:1:daemon:/:/bin/sh\n', { mode: 0o644 });
    mkdirSync(join(dir, 'bundles'));
    store = await openStore({ root: join(dir, 'store') });
    const layout = join(dir, 'layout');
    for (const [i, c] of CASES.entries()) {
      buildImage(layout, { ...c.image(outside), tag: `c${i}` });
      await store.load({ layout: `oci:${layout}:c${i}`, name: `example.com/hostile:c${i}` });
    }
    before0 = snapshotOutside();
  });
  after(async () => {
    await store?.close();
    await removeTempDir(dir);
  });

  for (const [i, c] of CASES.entries()) {
    it(c.name, async () => {
      const bundle = join(dir, 'bundles', `c${i}`);
      let result: Awaited<ReturnType<typeof unpackImage>> | undefined;
      let error: unknown;
      try {
        result = await unpackImage(store, `example.com/hostile:c${i}`, bundle, {
          rootless: c.rootless === true,
        });
      } catch (e) {
        error = e;
      }
      if ('code' in c.expect) {
        assert.ok(isKimgError(error, c.expect.code), `want ${c.expect.code}, got ${String(error)}`);
        assert.ok(!existsSync(join(bundle, 'rootfs')), 'a failed unpack leaves no rootfs');
        if (c.expect.code === 'DIGEST_MISMATCH')
          assert.match(String((error as Error).message), /layer 0 \(sha256:/);
      } else {
        assert.equal(error, undefined, String(error));
        const r = result as { rootfs: string; bundle: string; config: RuntimeSpec };
        c.expect.rootfs(r.rootfs, outside, r.config);
        // A world-readable bundle would expose setuid files and secrets to every user.
        assert.equal(statSync(r.bundle).mode & 0o777, 0o700, 'bundle directory is 0700');
      }
      assert.equal(snapshotOutside(), before0, 'nothing outside the bundle changed');
      assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'original');
    });
  }

  it('refuses a non-empty target directory unless forced', async () => {
    const bundle = join(dir, 'bundles', 'busy');
    mkdirSync(bundle);
    writeFileSync(join(bundle, 'something'), 'x');
    await assert.rejects(unpackImage(store, 'example.com/hostile:c3', bundle), (e) =>
      isKimgError(e, 'TARGET_NOT_EMPTY'),
    );
    await unpackImage(store, 'example.com/hostile:c3', bundle, { force: true });
    assert.ok(existsSync(join(bundle, 'something')), 'other files are left alone');
    assert.ok(existsSync(join(bundle, 'config.json')));
  });

  // --snapshots: each layer's diff is extracted on its own directory with overlayfs whiteouts; the same
  // attacks must stay inside the snapshot directory (a case may end differently: a symlink of an earlier
  // layer is not there to follow, so a hardlink through it is a missing target).
  for (const [i, c] of CASES.entries()) {
    it(`--snapshots: ${c.name}`, async () => {
      const bundle = join(dir, 'bundles', `s${i}`);
      const snapshots = join(dir, 'bundles', 'snapshots');
      try {
        await unpackImage(store, `example.com/hostile:c${i}`, bundle, {
          snapshots,
          rootless: c.rootless === true,
        });
        if ('code' in c.expect && !['LAYER_INVALID', 'UNPACK_UNSAFE'].includes(c.expect.code))
          assert.fail(`want an error (${c.expect.code}), the unpack succeeded`);
      } catch (e) {
        assert.ok(isKimgError(e), `a coded error, got ${String(e)}`);
        if (
          'code' in c.expect &&
          ['UNPACK_UNSAFE', 'DIGEST_MISMATCH', 'USER_NOT_FOUND'].includes(c.expect.code)
        )
          assert.ok(isKimgError(e, c.expect.code) || isKimgError(e, 'LAYER_INVALID'), String(e));
        assert.ok(!existsSync(join(bundle, 'config.json')), 'a failed unpack leaves no config.json');
        assert.deepEqual(readdirSync(join(snapshots, 'tmp')), [], 'no staging directory is left');
      }
      assert.equal(snapshotOutside(), before0, 'nothing outside the bundle and snapshots changed');
      assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'original');
    });
  }

  // Image volumes apply the layers with the same applier: a few of the attacks through that door.
  for (const name of [
    'symlink named "." replaces the root (CVE-2021-29136)',
    '".." names are clamped to the root',
    'absolute symlink from an earlier layer, written through by a later one',
    'hardlink to a host file through an earlier layer symlink',
    'whiteouts through a symlink to the host',
  ]) {
    const i = CASES.findIndex((c) => c.name === name);
    const c = CASES[i] as Case;
    it(`image volume: ${name}`, async () => {
      const volume = join(dir, 'bundles', 'volumes', `v${i}`);
      try {
        const r = await materializeImageVolume(store, `example.com/hostile:c${i}`, volume);
        assert.equal(r.kind, 'image');
        assert.ok(!('code' in c.expect), `want ${'code' in c.expect ? c.expect.code : ''}, it succeeded`);
        if ('rootfs' in c.expect && c.image(outside).config === undefined)
          c.expect.rootfs(volume, outside, { mounts: [] } as unknown as RuntimeSpec);
      } catch (e) {
        assert.ok(
          'code' in c.expect && isKimgError(e, c.expect.code),
          `want a coded error, got ${String(e)}`,
        );
        assert.ok(!existsSync(volume), 'a failed volume leaves no directory');
      }
      assert.equal(snapshotOutside(), before0, 'nothing outside the volume changed');
      assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'original');
    });
  }
});
