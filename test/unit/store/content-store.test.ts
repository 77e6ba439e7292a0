import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { isKimgError } from '../../../src/errors/index.js';
import {
  AUTO_INLINE_MIN_MBPS,
  createHasherFactory,
  inlineSha256MBps,
  LocalContentStore,
  resolveHashingMode,
  type HashingMode,
} from '../../../src/store/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { contentStoreSuite } from './content-store-suite.js';
import { sha256 } from './fixtures.js';

for (const hashing of ['worker', 'inline'] as HashingMode[]) {
  contentStoreSuite(`LocalContentStore (${hashing} hashing)`, async () => {
    const dir = await makeTempDir('cs-');
    const make = () =>
      new LocalContentStore({ blobsDir: join(dir, 'blobs'), ingestDir: join(dir, 'ingest'), hashing });
    const store = make();
    return {
      store,
      reopen: async () => make(),
      cleanup: async () => {
        await store.close();
        await removeTempDir(dir);
      },
    };
  });
}

describe('LocalContentStore on disk', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await removeTempDir(d);
  });
  async function fresh(hashing: HashingMode = 'worker') {
    const dir = await makeTempDir('cs-');
    dirs.push(dir);
    return {
      dir,
      store: new LocalContentStore({ blobsDir: join(dir, 'blobs'), ingestDir: join(dir, 'ingest'), hashing }),
    };
  }

  test('a committed blob is read-only, lives at blobs/<alg>/<hex>, and its ingest is gone', async () => {
    const { dir, store } = await fresh();
    const data = randomBytes(4096);
    const d = sha256(data);
    await store.writeBlob(data);
    const p = join(dir, 'blobs', 'sha256', d.slice(7));
    assert.equal(store.blobPath(d), p);
    const st = await fsp.stat(p);
    assert.equal(st.mode & 0o222, 0, 'no write bits');
    assert.deepEqual(await fsp.readdir(join(dir, 'ingest')), []);
    await store.close();
  });

  test('an in-progress ingest lives outside blobs/ with data, meta (ref, expected, total, startedAt) and lock files', async () => {
    const { dir, store } = await fresh();
    const data = randomBytes(5000);
    const w = await store.writer({
      ref: 'my-ref',
      expected: { digest: sha256(data), size: data.length },
      holder: 'unit test',
    });
    await w.write(data.subarray(0, 10));
    const [ingest] = await fsp.readdir(join(dir, 'ingest'));
    assert.ok(ingest);
    const files = (await fsp.readdir(join(dir, 'ingest', ingest))).sort();
    assert.deepEqual(files, ['data', 'lock', 'meta']);
    const meta = JSON.parse(await fsp.readFile(join(dir, 'ingest', ingest, 'meta'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.deepEqual(Object.keys(meta).sort(), ['expected', 'ref', 'startedAt', 'total']);
    assert.equal(meta['ref'], 'my-ref');
    assert.equal(meta['expected'], sha256(data));
    assert.equal(meta['total'], 5000);
    const lock = JSON.parse(await fsp.readFile(join(dir, 'ingest', ingest, 'lock'), 'utf8')) as {
      holder: string;
      pid: number;
    };
    assert.equal(lock.holder, 'unit test');
    assert.equal(lock.pid, process.pid);
    assert.deepEqual(await fsp.readdir(join(dir, 'blobs')).catch(() => []), []);
    await w.abort();
    assert.deepEqual(await fsp.readdir(join(dir, 'ingest')), []);
    await store.close();
  });

  test('an ingest an earlier kimg left in the five-file form is listed, resumed and removed on commit', async () => {
    const { dir, store } = await fresh();
    const data = randomBytes(9000);
    const w = await store.writer({ ref: 'old-form', expected: { digest: sha256(data), size: data.length } });
    await w.write(data.subarray(0, 4000));
    await w.close();
    const [ingest] = await fsp.readdir(join(dir, 'ingest'));
    const idir = join(dir, 'ingest', ingest!);
    await fsp.unlink(join(idir, 'meta'));
    const legacy: Record<string, string> = {
      ref: 'old-form',
      expected: sha256(data),
      total: String(data.length),
      startedat: '2020-01-02T03:04:05.000Z',
      updatedat: '2020-01-02T03:04:06.000Z',
    };
    for (const [name, v] of Object.entries(legacy)) await fsp.writeFile(join(idir, name), v);
    const [listed] = await store.listIngests();
    assert.equal(listed?.ref, 'old-form');
    assert.equal(listed?.offset, 4000);
    assert.equal(listed?.total, data.length);
    assert.equal(listed?.startedAt.toISOString(), '2020-01-02T03:04:05.000Z');
    const again = await store.writer({
      ref: 'old-form',
      expected: { digest: sha256(data), size: data.length },
    });
    assert.equal(again.resumedFrom, 4000);
    await again.write(data.subarray(4000));
    await again.commit();
    assert.deepEqual(await fsp.readdir(join(dir, 'ingest')), []);
    await store.close();
  });

  test('a lock file held by another live process is STORE_LOCKED; one left by a dead process is taken over', async () => {
    const { dir, store } = await fresh();
    const data = randomBytes(3000);
    const d = sha256(data);
    const w = await store.writer({ ref: 'x', expected: { digest: d, size: data.length } });
    await w.write(data.subarray(0, 1000));
    await w.close();
    const [ingest] = await fsp.readdir(join(dir, 'ingest'));
    const lockFile = join(dir, 'ingest', ingest as string, 'lock');
    // A live holder: a child process that sleeps.
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const since = new Date(Date.now() - 125_000).toISOString();
      await fsp.writeFile(
        lockFile,
        JSON.stringify({
          holder: 'other kimg',
          pid: child.pid,
          host: (await import('node:os')).hostname(),
          since,
        }),
      );
      await assert.rejects(
        store.writer({ ref: 'x', expected: { digest: d, size: data.length } }),
        (e: unknown) => {
          assert.ok(isKimgError(e, 'STORE_LOCKED'));
          assert.match(e.message, /other kimg/);
          assert.match(e.message, new RegExp(`pid ${child.pid}`));
          assert.match(e.message, /for 2m\ds/);
          return true;
        },
      );
      const st = await store.ingestStatus('x');
      assert.equal(st?.lock?.holder, 'other kimg');
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    // Now the holder is dead: the lock is stale and the writer resumes.
    const w2 = await store.writer({ ref: 'x', expected: { digest: d, size: data.length } });
    assert.equal(w2.resumedFrom, 1000);
    await w2.write(data.subarray(1000));
    await w2.commit();
    await store.close();
  });

  test('a damaged blob of the wrong size is replaced by a verified commit', async () => {
    const { store } = await fresh();
    const data = randomBytes(2000);
    const d = sha256(data);
    await store.writeBlob(data);
    const p = store.blobPath(d);
    await fsp.chmod(p, 0o644);
    await fsp.truncate(p, 10);
    const w = await store.writer({ expected: { digest: d, size: data.length } });
    assert.equal(w.existing, false, 'a size mismatch is not treated as present');
    await w.write(data);
    await w.commit();
    assert.deepEqual(await store.readBlob(d), data);
    await store.close();
  });

  test('readBlob verifies content: a corrupted blob is STORE_CORRUPT naming the file', async () => {
    const { store } = await fresh();
    const data = randomBytes(2000);
    const d = sha256(data);
    await store.writeBlob(data);
    const p = store.blobPath(d);
    await fsp.chmod(p, 0o644);
    const fh = await fsp.open(p, 'r+');
    await fh.write(Buffer.from([1, 2, 3]), 0, 3, 0);
    await fh.close();
    await assert.rejects(
      store.readBlob(d),
      (e: unknown) => isKimgError(e, 'STORE_CORRUPT') && e.details.file === p,
    );
    await store.close();
  });
});

describe('hashers', () => {
  test('auto resolves by the measured single-thread speed; explicit modes pass through', () => {
    const fast = inlineSha256MBps() >= AUTO_INLINE_MIN_MBPS;
    assert.equal(resolveHashingMode('auto'), fast ? 'inline' : 'worker');
    assert.equal(resolveHashingMode('worker'), 'worker');
    assert.equal(resolveHashingMode('inline'), 'inline');
    const f = createHasherFactory('auto');
    assert.equal(f.kind, fast ? 'inline' : 'worker');
    return f.close();
  });

  test('worker and inline hashers give identical digests for the same chunk stream, with update and take', async () => {
    const worker = createHasherFactory('worker', {
      workers: 2,
      chunkBytes: 64 * 1024,
      maxInFlightBytes: 256 * 1024,
    });
    const inline = createHasherFactory('inline');
    try {
      for (let round = 0; round < 20; round++) {
        const data = randomBytes(Math.floor(Math.random() * 3_000_000));
        const hw = worker.create('sha256');
        const hi = inline.create('sha256');
        let o = 0;
        while (o < data.length) {
          const n = 1 + Math.floor(Math.random() * 300_000);
          const part = data.subarray(o, o + n);
          if (Math.random() < 0.5) hw.update(part);
          else {
            const own = Buffer.allocUnsafeSlow(part.length);
            part.copy(own);
            hw.take(own);
          }
          hi.update(part);
          await hw.capacity();
          o += n;
        }
        const [a, b] = await Promise.all([hw.digest(), hi.digest()]);
        assert.equal(a, b);
        assert.equal(a, sha256(data));
      }
      // Many concurrent streams share two workers and stay independent.
      const datas = Array.from({ length: 8 }, () => randomBytes(500_000));
      const digests = await Promise.all(
        datas.map(async (d) => {
          const h = worker.create('sha256');
          for (let o = 0; o < d.length; o += 10_000) {
            h.update(d.subarray(o, o + 10_000));
            await h.capacity();
          }
          return h.digest();
        }),
      );
      assert.deepEqual(
        digests,
        datas.map((d) => sha256(d)),
      );
    } finally {
      await worker.close();
      await inline.close();
    }
  });

  test('a closed worker pool rejects pending digests with a coded error', async () => {
    const worker = createHasherFactory('worker');
    const h = worker.create('sha256');
    h.update(randomBytes(100));
    const outcome = h.digest().then(
      (d) => d,
      (e: unknown) => e,
    );
    await worker.close();
    const r = await outcome;
    assert.ok(typeof r === 'string' || isKimgError(r, 'INTERNAL'), String(r));
    assert.throws(
      () => worker.create('sha256'),
      (e: unknown) => isKimgError(e, 'INTERNAL'),
    );
  });
});
