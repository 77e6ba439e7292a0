/**
 * The bounded reader: regular files within a cap only. FIFOs, devices, symlinks to `/dev/zero` and
 * oversized files are refused without hanging or growing memory; process output is kept to its cap.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { collectBounded, readBoundedFile, readBoundedText } from '../../../src/bounded/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

let dir: string;
before(async () => {
  dir = await makeTempDir('bounded-');
});
after(async () => {
  await removeTempDir(dir);
});

const opts = { maxBytes: 1024, code: 'LAYOUT_INVALID', what: 'test file' } as const;

/** Peak RSS growth (bytes) while `fn` runs. */
async function peakRssGrowth(fn: () => Promise<unknown>): Promise<number> {
  const before = process.resourceUsage().maxRSS * 1024;
  await fn();
  return process.resourceUsage().maxRSS * 1024 - before;
}

test('a regular file within the cap is read whole', async () => {
  await writeFile(join(dir, 'ok.json'), '{"a":1}');
  assert.equal(await readBoundedText(join(dir, 'ok.json'), opts), '{"a":1}');
});

test('a symlink to /dev/zero is refused at once, memory flat', async () => {
  await symlink('/dev/zero', join(dir, 'zero'));
  const growth = await peakRssGrowth(() =>
    assert.rejects(readBoundedFile(join(dir, 'zero'), opts), (e) => {
      assert.ok(isKimgError(e, 'LAYOUT_INVALID'));
      assert.match(e.message, /not a regular file \(a character device\)/);
      return true;
    }),
  );
  assert.ok(growth < 32 * 1024 * 1024, `peak RSS grew by ${growth} bytes`);
});

test('a FIFO nobody writes is refused, not waited on', async () => {
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  await assert.rejects(readBoundedFile(join(dir, 'fifo'), opts), (e) => {
    assert.ok(isKimgError(e, 'LAYOUT_INVALID'));
    assert.match(e.message, /a FIFO/);
    return true;
  });
});

test('a directory and an oversized file are refused; a missing file keeps its errno', async () => {
  await assert.rejects(readBoundedFile(dir, opts), /a directory/);
  await writeFile(join(dir, 'big'), Buffer.alloc(4096));
  await assert.rejects(readBoundedFile(join(dir, 'big'), opts), /larger than the 1024-byte limit/);
  await assert.rejects(readBoundedFile(join(dir, 'missing'), opts), { code: 'ENOENT' });
});

test('process output past the cap is counted, not kept (1 GiB producer, memory flat)', async () => {
  const child = spawn('head', ['-c', String(1024 * 1024 * 1024), '/dev/zero'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let stopped = false;
  const growth = await peakRssGrowth(async () => {
    const r = await collectBounded(child.stdout, 64 * 1024, () => {
      stopped = true;
      child.kill('SIGKILL');
    });
    assert.equal(r.data.length, 64 * 1024);
    assert.ok(r.truncated);
  });
  assert.ok(stopped, 'the producer was stopped at the cap');
  assert.ok(growth < 64 * 1024 * 1024, `peak RSS grew by ${growth} bytes`);
});
