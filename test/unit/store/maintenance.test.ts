import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { isKimgError } from '../../../src/errors/index.js';
import { openStore } from '../../../src/store/index.js';
import { addTinyImage, sha256, tempStore } from './fixtures.js';

describe('store gc', () => {
  test('after rmi, gc sweeps exactly the blobs no other image needs; dry-run removes nothing', async () => {
    const { store, cleanup } = await tempStore();
    try {
      const shared = randomBytes(2048);
      const a = await addTinyImage(store, 'example.com/a:1', { put: true, sharedLayer: shared, index: true });
      const b = await addTinyImage(store, 'example.com/b:1', { put: true, sharedLayer: shared });
      assert.deepEqual((await store.gc()).removed, [], 'nothing unreferenced yet');
      await store.images.delete(a.record);
      const onlyA = [
        a.record.manifestDigest,
        a.record.imageId,
        a.record.indexDigest as string,
        ...a.layers.slice(0, 2).map((l) => sha256(l)),
      ].sort();
      const dry = await store.gc({ dryRun: true });
      assert.equal(dry.dryRun, true);
      assert.deepEqual(dry.removed.map((r) => r.digest).sort(), onlyA);
      for (const d of onlyA) assert.ok(await store.content.hasBlob(d), 'dry run keeps blobs');
      const r = await store.gc();
      assert.deepEqual(r.removed.map((x) => x.digest).sort(), onlyA);
      assert.equal(
        r.bytesFreed,
        r.removed.reduce((s, x) => s + x.size, 0),
      );
      for (const d of onlyA) assert.equal(await store.content.hasBlob(d), false);
      assert.ok(await store.content.hasBlob(sha256(shared)), 'the shared layer stays');
      for (const l of b.layers) assert.ok(await store.content.hasBlob(sha256(l)));
      assert.equal((await store.verify()).ok, true);
    } finally {
      await cleanup();
    }
  });

  test('a live lease protects blobs committed since it started; after release they go', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const lease = await store.lease('pull example.com/c:1');
      const orphan = randomBytes(100);
      await store.content.writeBlob(orphan);
      const r1 = await store.gc();
      assert.deepEqual(r1.removed, []);
      assert.equal(r1.protected, 1);
      // Another process sees the lease too (it is a file with holder and PID).
      const other = await openStore({ root });
      try {
        assert.equal((await other.gc({ dryRun: true })).protected, 1);
      } finally {
        await other.close();
      }
      await lease.release();
      const r2 = await store.gc();
      assert.deepEqual(
        r2.removed.map((x) => x.digest),
        [sha256(orphan)],
      );
    } finally {
      await cleanup();
    }
  });

  test('gc removes unlocked ingests older than the max age and keeps fresh or locked ones', async () => {
    const { store, cleanup } = await tempStore();
    try {
      const data = randomBytes(1000);
      const w = await store.content.writer({ ref: 'old', expected: { digest: sha256(data), size: 1000 } });
      await w.write(data.subarray(0, 500));
      await w.close();
      const live = await store.content.writer({
        ref: 'live',
        expected: { digest: sha256(randomBytes(5)), size: 5 },
      });
      const future = new Date(Date.now() + 48 * 3600 * 1000);
      const dry = await store.gc({ now: future, dryRun: true });
      assert.deepEqual(dry.ingestsRemoved, [{ ref: 'old', bytes: 500 }]);
      assert.equal((await store.content.listIngests()).length, 2);
      const fresh = await store.gc();
      assert.deepEqual(fresh.ingestsRemoved, [], 'young ingests are kept');
      const r = await store.gc({ now: future });
      assert.deepEqual(
        r.ingestsRemoved.map((i) => i.ref),
        ['old'],
      );
      assert.deepEqual(
        (await store.content.listIngests()).map((i) => i.ref),
        ['live'],
      );
      await live.abort();
    } finally {
      await cleanup();
    }
  });
});

describe('store verify', () => {
  test('a blob whose content does not match its name is found by re-hashing; repair quarantines it and the record that needs it', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const a = await addTinyImage(store, 'example.com/a:1', { put: true });
      const b = await addTinyImage(store, 'example.com/b:1', { put: true });
      const victim = sha256(a.layers[0] as Buffer);
      const p = store.content.blobPath(victim);
      await fsp.chmod(p, 0o644);
      await fsp.writeFile(p, randomBytes(a.layers[0]?.length ?? 1));
      const r = await store.verify();
      assert.equal(r.ok, false);
      assert.equal(r.blobsChecked, 8);
      assert.deepEqual(
        r.problems.map((x) => [x.kind, x.digest ?? x.image]),
        [
          ['blob-digest', victim],
          ['dangling', victim],
        ],
      );
      assert.equal(r.problems[1]?.image, 'example.com/a:1');
      const fixed = await store.verify({ repair: true });
      assert.equal(fixed.ok, true);
      assert.equal(await store.content.hasBlob(victim), false);
      assert.deepEqual(
        (await store.images.list()).map((x) => x.name),
        [b.record.name],
      );
      const q = await fsp.readdir(join(root, 'quarantine'));
      assert.equal(q.length, 2, 'the blob and the record are kept in quarantine');
      assert.equal((await store.verify()).ok, true);
    } finally {
      await cleanup();
    }
  });

  test('a missing layer is a dangling reference; a stray file in blobs/ is reported and quarantined', async () => {
    const { store, cleanup } = await tempStore();
    try {
      const a = await addTinyImage(store, 'example.com/a:1', { put: true });
      await store.content.delete(sha256(a.layers[1] as Buffer));
      await fsp.writeFile(join(store.paths.blobs, 'sha256', 'not-a-digest'), 'x');
      const r = await store.verify();
      assert.deepEqual(r.problems.map((x) => x.kind).sort(), ['blob-name', 'dangling']);
      const fixed = await store.verify({ repair: true });
      assert.equal(fixed.ok, true);
      assert.deepEqual(await store.images.list(), []);
      assert.equal((await store.verify()).ok, true);
    } finally {
      await cleanup();
    }
  });
});

describe('store df and start-up recovery', () => {
  test('df splits blobs into referenced and reclaimable and counts ingests', async () => {
    const { store, cleanup } = await tempStore();
    try {
      const a = await addTinyImage(store, 'example.com/a:1', { put: true });
      await store.content.writeBlob(randomBytes(333));
      const w = await store.content.writer({ ref: 'i', expected: { digest: sha256('zz'), size: 100 } });
      await w.write(randomBytes(40));
      await w.close();
      const u = await store.df();
      assert.equal(u.images, 1);
      assert.equal(u.blobs.count, 5);
      assert.equal(u.referenced.bytes, a.record.size);
      assert.deepEqual(u.reclaimable, { count: 1, bytes: 333 });
      assert.deepEqual(u.ingests, { count: 1, bytes: 40 });
      assert.ok(u.filesystem.totalBytes > 0);
    } finally {
      await cleanup();
    }
  });

  test('open removes temp files and torn ingests of dead processes, keeps resumable ingests', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const data = randomBytes(3000);
      const w = await store.content.writer({ ref: 'keep', expected: { digest: sha256(data), size: 3000 } });
      await w.write(data.subarray(0, 1200));
      await w.close();
      const deadPid = 2 ** 22 + 12345; // above the default pid_max: never alive
      await fsp.writeFile(join(root, 'images', `.x.json.tmp-${deadPid}-abcdef`), '{}');
      await fsp.writeFile(join(root, 'oci', `.index.json.tmp-${deadPid}-abcdef`), '{}');
      const torn = join(root, 'ingest', 'f'.repeat(64));
      await fsp.mkdir(torn);
      await fsp.writeFile(
        join(torn, 'lock'),
        JSON.stringify({
          holder: 'dead',
          pid: deadPid,
          host: (await import('node:os')).hostname(),
          since: new Date().toISOString(),
        }),
      );
      const s2 = await openStore({ root });
      try {
        assert.deepEqual(await fsp.readdir(join(root, 'images')), []);
        assert.deepEqual((await fsp.readdir(join(root, 'oci'))).sort(), [
          'blobs',
          'index.json',
          'oci-layout',
        ]);
        assert.deepEqual(
          (await s2.content.listIngests()).map((i) => [i.ref, i.offset]),
          [['keep', 1200]],
        );
        const w2 = await s2.content.writer({ ref: 'keep', expected: { digest: sha256(data), size: 3000 } });
        assert.equal(w2.resumedFrom, 1200);
        await w2.write(data.subarray(1200));
        await w2.commit();
      } finally {
        await s2.close();
      }
    } finally {
      await cleanup();
    }
  });

  test('a metadata lock held by another live process is waited for, then STORE_LOCKED explains who holds it', async () => {
    const { store, root, cleanup } = await tempStore();
    try {
      const s2 = await openStore({ root, lockWaitMs: 50 });
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
      try {
        await fsp.writeFile(
          join(root, 'store.lock'),
          JSON.stringify({
            holder: 'kimg store gc',
            pid: child.pid,
            host: (await import('node:os')).hostname(),
            since: new Date().toISOString(),
          }),
        );
        const a = await addTinyImage(s2, 'example.com/a:1');
        await assert.rejects(
          s2.images.put(a.record),
          (e: unknown) =>
            isKimgError(e, 'STORE_LOCKED') &&
            /kimg store gc/.test(e.message) &&
            /store\.lock/.test(e.message),
        );
      } finally {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        await s2.close();
      }
      const a = await addTinyImage(store, 'example.com/a:1', { put: true });
      assert.ok(await store.images.get(a.record), 'the stale lock of the dead process is taken over');
    } finally {
      await cleanup();
    }
  });

  test('a lock file is never seen torn: it appears whole or not at all (a writer killed mid-way leaves none)', async () => {
    const { root, cleanup } = await tempStore();
    const file = join(root, 'probe.lock');
    const locks = new URL('../../../src/store/internal/locks.js', import.meta.url).href;
    const { spawn } = await import('node:child_process');
    // Another process takes and drops the lock as fast as it can while this one reads the file.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { acquireFileLock } = await import(${JSON.stringify(locks)});
         for (let i = 0; i < 3000; i++) await (await acquireFileLock(${JSON.stringify(file)}, 'probe', 'probe', 1000)).release();`,
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise((r) => child.once('exit', r));
    let done = false;
    void exited.then(() => (done = true));
    let seen = 0;
    const torn: string[] = [];
    try {
      while (!done) {
        const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
        if (text === undefined) continue;
        seen++;
        try {
          JSON.parse(text);
        } catch {
          torn.push(JSON.stringify(text));
        }
      }
      assert.ok(seen > 0, 'the lock was never observed');
      assert.deepEqual(torn.slice(0, 3), [], `${torn.length} of ${seen} reads saw a torn lock file`);
    } finally {
      child.kill('SIGKILL');
      await exited;
      await cleanup();
    }
  });
});
