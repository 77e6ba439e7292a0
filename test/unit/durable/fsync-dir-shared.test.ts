/**
 * fsyncDirShared: concurrent directory fsyncs of one directory share the next fsync (group commit), and
 * every caller still waits for an fsync that started after it asked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { fsyncDirShared } from '../../../src/durable/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

/** Counts the opens of `dir` (one per directory fsync) while `fn` runs. */
async function countingOpens(dir: string, fn: (opens: () => number) => Promise<void>): Promise<void> {
  const original = fsp.open;
  let n = 0;
  fsp.open = ((path: Parameters<typeof fsp.open>[0], ...rest: [never?, never?]) => {
    if (path === dir) n++;
    return original.call(fsp, path, ...rest);
  }) as typeof fsp.open;
  try {
    await fn(() => n);
  } finally {
    fsp.open = original;
  }
}

test('ten concurrent callers share two fsyncs: the one they found idle and the next one', async () => {
  const dir = await makeTempDir('kimg-fsync-');
  try {
    await countingOpens(dir, async (opens) => {
      await Promise.all(Array.from({ length: 10 }, () => fsyncDirShared(dir)));
      assert.equal(opens(), 2);
      await fsyncDirShared(dir);
      assert.equal(opens(), 3, 'a later caller gets an fsync of its own');
    });
  } finally {
    await removeTempDir(dir);
  }
});

test('a caller arriving while an fsync runs waits for the next one, which starts after it asked', async () => {
  const dir = await makeTempDir('kimg-fsync-');
  try {
    await countingOpens(dir, async (opens) => {
      const first = fsyncDirShared(dir);
      const second = fsyncDirShared(dir);
      assert.notEqual(first, second);
      await first;
      await second;
      assert.equal(opens(), 2);
    });
  } finally {
    await removeTempDir(dir);
  }
});

test('a failed fsync rejects every caller that waited for it, with the directory named', async () => {
  const dir = await makeTempDir('kimg-fsync-');
  try {
    const missing = join(dir, 'missing');
    const results = await Promise.allSettled([fsyncDirShared(missing), fsyncDirShared(missing)]);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.match(String((r as PromiseRejectedResult).reason), /missing/);
    }
    await fsyncDirShared(dir); // the failure left nothing behind
  } finally {
    await removeTempDir(dir);
  }
});
