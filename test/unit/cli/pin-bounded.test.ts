/**
 * `kimg pin` reads untrusted manifests like every other manifest reader: a regular file within the
 * manifest cap (a FIFO or a link to /dev/zero is refused, not read), standard input under the same cap,
 * and at most the document cap per invocation — counted before parsing. And the commands that resolve
 * images named by someone else never send unbound `--creds` to whatever host a pod names.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { MANIFEST_LIMITS } from '../../../src/credentials/index.js';
import type { CliContext } from '../../../src/cli/context.js';
import { runCli } from '../../../src/cli/program.js';
import { Sink } from '../../helpers/output.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { kimg } from '../credentials/helpers.js';

let dir: string;
before(async () => {
  dir = await makeTempDir('pin-bounded-');
});
after(async () => {
  await removeTempDir(dir);
});

/** Peak RSS growth (bytes) while `fn` runs. */
async function peakRssGrowth(fn: () => Promise<unknown>): Promise<number> {
  const before = process.resourceUsage().maxRSS * 1024;
  await fn();
  return process.resourceUsage().maxRSS * 1024 - before;
}

const POD =
  'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: reg.invalid/a:1}]\n';

test('pin -f FIFO is refused at once, not waited on', async () => {
  execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
  const r = await kimg(['pin', '-f', join(dir, 'fifo.yaml')]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /is not a regular file \(a FIFO\)/);
});

test('pin -f a symlink to /dev/zero is refused, memory flat', async () => {
  await symlink('/dev/zero', join(dir, 'zero.yaml'));
  let r: Awaited<ReturnType<typeof kimg>> | undefined;
  const growth = await peakRssGrowth(async () => {
    r = await kimg(['pin', '-f', join(dir, 'zero.yaml')]);
  });
  assert.equal(r?.status, 2, r?.stderr);
  assert.match(r?.stderr ?? '', /a character device/);
  assert.ok(growth < 32 * 1024 * 1024, `peak RSS grew by ${growth} bytes`);
});

test('pin -f with 100,000 documents is refused before parsing', async () => {
  await writeFile(join(dir, 'flood.yaml'), `${POD}---\n`.repeat(100_000));
  const r = await kimg(['pin', '-f', join(dir, 'flood.yaml')]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /holds 100001 documents, more than the 10000/);
});

test('the document cap holds across the files of one pin invocation', async () => {
  const half = `${POD}---\n`.repeat(MANIFEST_LIMITS.maxDocuments / 2);
  await writeFile(join(dir, 'a.yaml'), half);
  await writeFile(join(dir, 'b.yaml'), half);
  const r = await kimg(['pin', '-f', join(dir, 'a.yaml'), '-f', join(dir, 'b.yaml')]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /b\.yaml.*documents, more than the \d+ this invocation still reads/);
});

test('pin -f - refuses standard input past the manifest cap, memory flat', async () => {
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  let sent = 0;
  const stdin = new Readable({
    read() {
      // An endless producer: only the cap stops it.
      sent += chunk.length;
      this.push(chunk);
    },
  });
  const stdout = new Sink();
  const stderr = new Sink();
  const ctx: CliContext = { stdout, stderr, stdin, env: {}, exitStatus: 0 };
  let status = 0;
  const growth = await peakRssGrowth(async () => {
    status = await runCli(['node', 'kimg', 'pin', '-f', '-'], ctx);
  });
  assert.equal(status, 2, stderr.text);
  assert.match(stderr.text, /standard input holds more than the 33554432-byte manifest limit/);
  assert.ok(sent < 2 * MANIFEST_LIMITS.maxFileBytes, `read ${sent} bytes`);
  assert.ok(growth < 96 * 1024 * 1024, `peak RSS grew by ${growth} bytes`);
});

test('kimg admission serve --creds without --creds-host is a usage error; the password never prints', async () => {
  const r = await kimg([
    'admission',
    'serve',
    '--tls-cert',
    join(dir, 'cert.pem'),
    '--tls-key',
    join(dir, 'key.pem'),
    '--creds',
    'alice:canary-pw-7f3a',
  ]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--creds needs --creds-host/);
  assert.match(r.stderr, /\(USAGE\)/);
  assert.doesNotMatch(r.stdout + r.stderr, /canary-pw-7f3a/);
});

test('kimg node and kimg serve take no --creds at all (pods name the hosts); the password never prints', async () => {
  for (const cmd of [['node'], ['serve']]) {
    const r = await kimg([...cmd, '--creds', 'alice:canary-pw-7f3a']);
    assert.equal(r.status, 2, `${cmd.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /unknown option '--creds'/);
    assert.doesNotMatch(r.stdout + r.stderr, /canary-pw-7f3a/);
  }
});

test('ensure and explain hide --creds from their help and refuse it with where credentials go', async () => {
  for (const cmd of ['ensure', 'explain']) {
    const help = await kimg([cmd, '--help']);
    assert.doesNotMatch(help.stdout, /--creds/, cmd);
    assert.match(help.stdout, /--docker-config/, cmd);
  }
  const r = await kimg(['ensure', '-f', join(dir, 'none.yaml'), '--creds', 'alice:canary-pw-7f3a']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /not --creds/);
  assert.doesNotMatch(r.stdout + r.stderr, /canary-pw-7f3a/);
});
