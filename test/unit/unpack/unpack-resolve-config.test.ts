/**
 * In-root path resolution (property: whatever the name and however hostile the symlinks, the result
 * is inside the root and no existing component of it is a symlink), image user resolution, and the
 * image config → runtime config conversion.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import { chainIds } from '../../../src/unpack/index.js';
import { resolveInRoot } from '../../../src/unpack/internal/resolve.js';
import { sanitizeCwd, toRuntimeSpec } from '../../../src/unpack/internal/runtime-config.js';
import { parseGroup, parsePasswd, resolveUser } from '../../../src/unpack/internal/user.js';
import { fuzzParams } from '../../helpers/fuzz.js';

describe('resolveInRoot', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'kimg-resolve-'));
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    writeFileSync(join(root, 'a', 'f'), 'x');
    symlinkSync('/', join(root, 'slash'));
    symlinkSync('..', join(root, 'a', 'up'));
    symlinkSync('../../../../..', join(root, 'a', 'b', 'way'));
    symlinkSync('/etc', join(root, 'etc'));
    symlinkSync('a/b', join(root, 'ab'));
    symlinkSync('loop2', join(root, 'loop1'));
    symlinkSync('loop1', join(root, 'loop2'));
    symlinkSync('f', join(root, 'a', 'tofile'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('keeps every result inside the root, with no symlink among its existing components (property)', () => {
    const comp = fc.constantFrom(
      'a',
      'b',
      'f',
      '..',
      '.',
      '',
      'slash',
      'up',
      'way',
      'etc',
      'ab',
      'loop1',
      'tofile',
      'new',
    );
    fc.assert(
      fc.property(fc.array(comp, { maxLength: 12 }), fc.boolean(), (parts, abs) => {
        const name = (abs ? '/' : '') + parts.join('/');
        let r;
        try {
          r = resolveInRoot(root, name);
        } catch (e) {
          assert.ok(isKimgError(e, 'UNPACK_UNSAFE'), String(e));
          return;
        }
        const rel = relative(root, r.host);
        assert.ok(!rel.startsWith('..') && !rel.startsWith('/'), `${name} → ${r.host}`);
        let cur = root;
        for (const c of rel === '' ? [] : rel.split('/')) {
          cur = join(cur, c);
          let st;
          try {
            st = lstatSync(cur);
          } catch {
            break;
          }
          assert.ok(!st.isSymbolicLink(), `${name}: ${cur} is a symlink`);
        }
      }),
      fuzzParams(),
    );
  });

  it('clamps and reports climbing', () => {
    assert.equal(resolveInRoot(root, 'a/b/way/a/f').host, join(root, 'a', 'f'));
    assert.throws(
      () => resolveInRoot(root, 'etc/passwd'),
      (e) => isKimgError(e, 'UNPACK_UNSAFE'),
    );
    assert.equal(resolveInRoot(root, 'slash/a/f').host, join(root, 'a', 'f'));
    assert.equal(resolveInRoot(root, '../../a').clamped, true);
    assert.equal(resolveInRoot(root, 'a/up/a/b').host, join(root, 'a', 'b'));
    assert.equal(resolveInRoot(root, 'ab/new/x').missingFrom, 'a/b/new');
    assert.equal(resolveInRoot(root, 'a/f/x').notDir, 'a/f');
    assert.throws(
      () => resolveInRoot(root, 'loop1/x'),
      (e) => isKimgError(e, 'UNPACK_UNSAFE'),
    );
  });
});

describe('image user resolution', () => {
  const files: Record<string, string> = {
    '/etc/passwd':
      'root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001:App:/home/app:/bin/sh\nbroken line\n',
    '/etc/group': 'root:x:0:\napp:x:1001:\nwheel:x:10:app,other\ndocker:x:999:app\n',
  };
  const read = (p: string) => files[p];

  it('resolves names, numbers and groups as conversion.md says', () => {
    assert.deepEqual(resolveUser(read, ''), { uid: 0, gid: 0 });
    assert.deepEqual(resolveUser(read, 'app'), {
      uid: 1000,
      gid: 1001,
      home: '/home/app',
      additionalGids: [1001, 10, 999],
    });
    assert.deepEqual(resolveUser(read, 'app:wheel'), { uid: 1000, gid: 10, home: '/home/app' });
    assert.deepEqual(resolveUser(read, '1000'), { uid: 1000, gid: 1001, home: '/home/app' });
    assert.deepEqual(resolveUser(read, '4242:77'), { uid: 4242, gid: 77 });
    assert.deepEqual(resolveUser(read, 'root:docker'), { uid: 0, gid: 999, home: '/root' });
  });

  it('refuses unknown names and ids above 2^31-1', () => {
    assert.throws(
      () => resolveUser(read, 'nobody'),
      (e) => isKimgError(e, 'USER_NOT_FOUND'),
    );
    assert.throws(
      () => resolveUser(read, 'app:nogroup'),
      (e) => isKimgError(e, 'USER_NOT_FOUND'),
    );
    assert.throws(
      () => resolveUser(() => undefined, 'app'),
      (e) => isKimgError(e, 'USER_NOT_FOUND'),
    );
    assert.throws(
      () => resolveUser(read, '2147483648'),
      (e) => isKimgError(e, 'UNPACK_UNSAFE'),
    );
    assert.throws(
      () => resolveUser(read, '0:2147483648'),
      (e) => isKimgError(e, 'UNPACK_UNSAFE'),
    );
  });

  it('parses passwd and group files of any shape without throwing (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        parsePasswd(s);
        parseGroup(s);
      }),
      fuzzParams(),
    );
  });
});

describe('runtime config conversion', () => {
  const user = { uid: 0, gid: 0 };

  it('maps Entrypoint, Cmd, Env, WorkingDir, labels and annotations', () => {
    const spec = toRuntimeSpec(
      {
        os: 'linux',
        architecture: 'amd64',
        author: 'me',
        created: '2024-01-01T00:00:00Z',
        config: {
          Entrypoint: ['/bin/app'],
          Cmd: ['--flag'],
          Env: ['PATH=/app/bin', 'A=1'],
          WorkingDir: 'srv/../data/',
          Labels: { 'org.opencontainers.image.author': 'label wins', x: 'y' },
          StopSignal: 'SIGINT',
          ExposedPorts: { '80/tcp': {}, '53/udp': {} },
          Volumes: { '/data/../var/cache': {}, '/': {} },
        },
      },
      { user, rootless: false, hostUid: 0, hostGid: 0 },
    );
    assert.deepEqual(spec.process.args, ['/bin/app', '--flag']);
    assert.deepEqual(spec.process.env, ['PATH=/app/bin', 'TERM=xterm', 'A=1']);
    assert.equal(spec.process.cwd, '/data');
    assert.equal(spec.annotations?.['org.opencontainers.image.author'], 'label wins');
    assert.equal(spec.annotations?.['org.opencontainers.image.stopSignal'], 'SIGINT');
    assert.equal(spec.annotations?.['org.opencontainers.image.exposedPorts'], '80/tcp,53/udp');
    assert.equal(spec.annotations?.x, 'y');
    assert.deepEqual(
      spec.mounts
        .filter((m) => m.type === 'tmpfs' && m.source === 'tmpfs' && m.destination !== '/dev')
        .map((m) => m.destination),
      ['/var/cache'],
    );
    assert.ok(spec.linux.namespaces.some((n) => n.type === 'network'));
  });

  it('keeps sh when there is no Entrypoint or Cmd, and makes rootless configs', () => {
    const spec = toRuntimeSpec(
      { config: {} },
      { user: { uid: 0, gid: 0, additionalGids: [0, 5] }, rootless: true, hostUid: 1234, hostGid: 99 },
    );
    assert.deepEqual(spec.process.args, ['sh']);
    assert.equal(spec.process.user.additionalGids, undefined);
    assert.deepEqual(spec.linux.uidMappings, [{ containerID: 0, hostID: 1234, size: 1 }]);
    assert.deepEqual(spec.linux.gidMappings, [{ containerID: 0, hostID: 99, size: 1 }]);
    assert.ok(!spec.linux.namespaces.some((n) => n.type === 'network'));
    assert.equal(spec.linux.resources, undefined);
    assert.ok(spec.mounts.every((m) => !(m.options ?? []).some((o) => o.startsWith('gid='))));
    assert.deepEqual(spec.mounts.find((m) => m.destination === '/sys')?.options, [
      'rbind',
      'nosuid',
      'noexec',
      'nodev',
      'ro',
    ]);
  });

  it('refuses a /proc working directory (property: any cleaned cwd is absolute and outside /proc)', () => {
    assert.throws(
      () => sanitizeCwd('/proc/self/fd/3'),
      (e) => isKimgError(e, 'UNPACK_UNSAFE'),
    );
    assert.throws(
      () => sanitizeCwd('x/../../proc'),
      (e) => isKimgError(e, 'UNPACK_UNSAFE'),
    );
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('/', '.', 'p', 'r', 'o', 'c', 'a'), maxLength: 30 }),
        (s) => {
          try {
            const cwd = sanitizeCwd(s);
            assert.ok(cwd.startsWith('/'));
            assert.ok(cwd !== '/proc' && !cwd.startsWith('/proc/'));
            assert.ok(!cwd.split('/').includes('..'));
          } catch (e) {
            assert.ok(isKimgError(e, 'UNPACK_UNSAFE'));
          }
        },
      ),
      fuzzParams(),
    );
  });

  it('computes chain IDs as image-spec config.md says', () => {
    const a = `sha256:${'a'.repeat(64)}`;
    const b = `sha256:${'b'.repeat(64)}`;
    const [c0, c1] = chainIds([a, b]);
    assert.equal(c0, a);
    assert.equal(c1, 'sha256:' + createHashHex(`${a} ${b}`));
  });
});

function createHashHex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
