/**
 * `runc run` executes a bundle kimg unpacked: an image built from Debian's static busybox
 * (`busybox-static`, /bin/busybox), loaded into a kimg store, unpacked with the CLI (`kimg unpack`),
 * then run by the real runc — as root (image user resolved through the image's /etc/passwd and
 * /etc/group, supplementary groups included), and rootless: kimg and runc both run as an unprivileged
 * user (`setpriv` to nobody) with `runc --root <tmp>` and the user namespace kimg wrote into config.json.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireBinary } from '../helpers/components.js';
import { runCommand } from '../helpers/proc.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { buildImage, type EntrySpec } from '../helpers/unpack-images.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const NOBODY = 65534;

function busyboxEntries(): EntrySpec[] {
  const bb = readFileSync(requireBinary('/bin/busybox'));
  return [
    { type: 'dir', name: 'bin/' },
    { type: 'dir', name: 'etc/' },
    { type: 'dir', name: 'tmp/', mode: 0o1777 },
    { type: 'file', name: 'bin/busybox', data: bb, mode: 0o755 },
    { type: 'symlink', name: 'bin/sh', target: 'busybox' },
    { type: 'hardlink', name: 'bin/id', target: 'bin/busybox' },
    {
      type: 'file',
      name: 'etc/passwd',
      data: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n',
    },
    { type: 'file', name: 'etc/group', data: 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n' },
  ];
}

describe('kimg unpack → runc run', () => {
  let dir: string;
  let layout: string;

  before(async () => {
    requireBinary('runc');
    requireBinary('setpriv');
    dir = await makeTempDir('unpack-runc-');
    chmodSync(dir, 0o755);
    layout = join(dir, 'layout');
    const base = busyboxEntries();
    buildImage(layout, {
      tag: 'app',
      layers: [
        { entries: base, compression: 'zstd' },
        { entries: [{ type: 'file', name: 'etc/motd', data: 'hello from kimg\n' }], compression: 'gzip' },
      ],
      config: {
        Entrypoint: ['/bin/sh', '-c'],
        Cmd: ['cat /etc/motd; id; pwd'],
        User: 'app',
        WorkingDir: 'tmp',
      },
    });
    buildImage(layout, {
      tag: 'root',
      layers: [{ entries: base, compression: 'none' }],
      config: { Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo hello rootless; id -u'] },
    });
  });
  after(() => removeTempDir(dir));

  async function kimg(args: string[], opts: { as?: number } = {}) {
    const cmd = opts.as !== undefined ? requireBinary('setpriv') : process.execPath;
    const pre =
      opts.as !== undefined
        ? ['--reuid', String(opts.as), '--regid', String(opts.as), '--clear-groups', process.execPath]
        : [];
    return runCommand(cmd, [...pre, CLI, ...args], { env: { ...process.env, HOME: dir } });
  }

  it('runs the bundle as root, with the image user resolved from /etc/passwd', async () => {
    const store = join(dir, 'store');
    await kimg(['load', `oci:${layout}:app`, '--name', 'example.com/app:1', '--root', store]);
    const bundle = join(dir, 'bundle');
    const r = await kimg([
      'unpack',
      'example.com/app:1',
      bundle,
      '--root',
      store,
      '-o',
      'json',
      '--progress',
      'json',
    ]);
    const out = JSON.parse(r.stdout) as { rootfs: string; layers: unknown[] };
    assert.equal(out.layers.length, 2);
    assert.equal(statSync(bundle).mode & 0o777, 0o700, 'bundle is 0700');
    const events = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    assert.equal(events.filter((e) => e.type === 'layer-done').length, 2, 'one layer-done event per layer');
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as {
      process: { user: { uid: number; gid: number; additionalGids: number[] }; cwd: string };
    };
    assert.deepEqual(config.process.user, { uid: 1000, gid: 1000, additionalGids: [1000, 2000] });
    assert.equal(config.process.cwd, '/tmp');
    const run = await runCommand(requireBinary('runc'), [
      '--root',
      join(dir, 'runc'),
      'run',
      '-b',
      bundle,
      `kimg-test-${process.pid}`,
    ]);
    assert.equal(
      run.stdout,
      'hello from kimg\nuid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n/tmp\n',
      run.stderr,
    );
  });

  it('runs the bundle rootless: kimg unpack --rootless and runc as an unprivileged user', async () => {
    const home = join(dir, 'nobody');
    await runCommand('mkdir', ['-p', home]);
    chownSync(home, NOBODY, NOBODY);
    const store = join(home, 'store');
    await runCommand('cp', ['-r', layout, join(home, 'layout')]);
    await runCommand('chown', ['-R', `${NOBODY}:${NOBODY}`, join(home, 'layout')]);
    await kimg(
      ['load', `oci:${join(home, 'layout')}:root`, '--name', 'example.com/root:1', '--root', store],
      { as: NOBODY },
    );
    const bundle = join(home, 'bundle');
    await kimg(
      ['unpack', 'example.com/root:1', bundle, '--rootless', '--root', store, '--progress', 'none'],
      { as: NOBODY },
    );
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as {
      linux: { namespaces: { type: string }[]; uidMappings: unknown[] };
    };
    assert.ok(
      config.linux.namespaces.some((n) => n.type === 'user'),
      'a user namespace',
    );
    assert.ok(!config.linux.namespaces.some((n) => n.type === 'network'), 'no network namespace');
    assert.deepEqual(config.linux.uidMappings, [{ containerID: 0, hostID: NOBODY, size: 1 }]);
    assert.equal(
      statSync(join(bundle, 'rootfs', 'bin', 'busybox')).uid,
      NOBODY,
      'files belong to the unpacking user',
    );
    const run = await runCommand(
      requireBinary('setpriv'),
      [
        '--reuid',
        String(NOBODY),
        '--regid',
        String(NOBODY),
        '--clear-groups',
        requireBinary('runc'),
        '--root',
        join(home, 'runc'),
        'run',
        '-b',
        bundle,
        `kimg-rl-${process.pid}`,
      ],
      { env: { ...process.env, HOME: home, XDG_RUNTIME_DIR: home } },
    );
    assert.equal(run.stdout, 'hello rootless\n0\n', run.stderr);
  });
});
