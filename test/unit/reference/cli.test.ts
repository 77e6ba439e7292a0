import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { runCli } from '../../../src/cli/program.js';
import type { CliContext } from '../../../src/cli/context.js';
import { PAUSE_DIGEST } from './tables.js';
import { Sink } from '../../helpers/output.js';

const MAIN = new URL('../../../src/cli/main.js', import.meta.url).pathname;
const STACK = /\bat .*\.[cm]?js:\d+/;

async function kimg(args: string[], stdin?: string) {
  const stdout = new Sink();
  const stderr = new Sink();
  const ctx: CliContext & { stdin?: Readable } = { stdout, stderr, env: {}, exitStatus: 0 };
  if (stdin !== undefined) ctx.stdin = Readable.from([Buffer.from(stdin, 'utf8')]);
  const status = await runCli(['node', 'kimg', ...args], ctx);
  return { status, stdout: stdout.text, stderr: stderr.text };
}

type Row = Record<string, unknown> & { input: string; valid: boolean };

async function parseJson(
  args: string[],
  stdin?: string,
): Promise<{ status: number; rows: Row[]; stderr: string }> {
  const r = await kimg(['ref', 'parse', ...args, '-o', 'json'], stdin);
  return { status: r.status, rows: JSON.parse(r.stdout) as Row[], stderr: r.stderr };
}

describe('kimg ref parse -o json', () => {
  test('one array, one object per input, in order, with the documented fields', async () => {
    const { status, rows, stderr } = await parseJson([
      'busybox',
      `registry.k8s.io/pause:3.5@${PAUSE_DIGEST}`,
      'Uppercase:tag',
      '[::1]:5000/x:1',
    ]);
    assert.equal(status, 2);
    assert.equal(stderr, '');
    assert.deepEqual(rows[0], {
      input: 'busybox',
      valid: true,
      name: 'docker.io/library/busybox',
      domain: 'docker.io',
      path: 'library/busybox',
      tag: null,
      digest: null,
      familiar: 'busybox',
      canonical: 'docker.io/library/busybox:latest',
    });
    assert.deepEqual(rows[1], {
      input: `registry.k8s.io/pause:3.5@${PAUSE_DIGEST}`,
      valid: true,
      name: 'registry.k8s.io/pause',
      domain: 'registry.k8s.io',
      path: 'pause',
      tag: '3.5',
      digest: PAUSE_DIGEST,
      familiar: 'registry.k8s.io/pause',
      canonical: `registry.k8s.io/pause:3.5@${PAUSE_DIGEST}`,
    });
    assert.deepEqual(rows[2], {
      input: 'Uppercase:tag',
      valid: false,
      error: {
        code: 'NAME_CONTAINS_UPPERCASE',
        message:
          'invalid reference format: repository name (library/Uppercase) must be lowercase: "Uppercase:tag"; ' +
          'repository paths are lowercase; only the registry host and the tag may contain uppercase letters',
      },
    });
    assert.equal(rows[3]?.domain, '[::1]:5000');
    assert.equal(rows.length, 4);
  });

  test('exit status 0 when every input is valid', async () => {
    const { status, rows } = await parseJson(['busybox', 'busybox:1.32.0', `pause@${PAUSE_DIGEST}`]);
    assert.equal(status, 0);
    assert.ok(rows.every((r) => r.valid));
    assert.equal(rows[2]?.canonical, `docker.io/library/pause@${PAUSE_DIGEST}`);
  });

  test('exit status follows the FIRST invalid input (all reference codes are 2)', async () => {
    const { status, rows } = await parseJson(['ok', `x@sha256:${'a'.repeat(63)}`, 'B']);
    assert.equal(status, 2);
    assert.deepEqual(
      rows.map((r) => (r.valid ? 'ok' : (r.error as { code: string }).code)),
      ['ok', 'DIGEST_INVALID_LENGTH', 'NAME_CONTAINS_UPPERCASE'],
    );
  });

  test('the empty string is an input like any other', async () => {
    const { status, rows } = await parseJson(['']);
    assert.equal(status, 2);
    assert.equal(rows[0]?.input, '');
    assert.equal((rows[0]?.error as { code: string }).code, 'INVALID_REFERENCE_FORMAT');
  });

  test('NUL bytes and unicode: coded errors, JSON-escaped, no stack trace', async () => {
    const inputs = [
      'busy\u0000box',
      'bü\u0301sybox',
      '🐳',
      '\ud800x',
      'docker.io/foo:\u212a',
      'ＢＵＳＹＢＯＸ',
    ];
    const { status, rows, stderr } = await parseJson(inputs);
    assert.equal(status, 2);
    assert.doesNotMatch(stderr, STACK);
    // JSON output escapes lone surrogates (well-formed JSON.stringify), so the input survives exactly.
    assert.deepEqual(
      rows.map((r) => r.input),
      inputs,
    );
    for (const r of rows) assert.equal(r.valid, false);
    assert.equal((rows[4]?.error as { code: string }).code, 'NAME_CONTAINS_UPPERCASE');
  });

  test('--default-registry sends host-less names to that registry without library/', async () => {
    const { status, rows } = await parseJson([
      'pause:3.10',
      'docker.io/busybox',
      '--default-registry',
      'registry.example:5000',
    ]);
    assert.equal(status, 0);
    assert.equal(rows[0]?.name, 'registry.example:5000/pause');
    assert.equal(rows[0]?.familiar, 'pause');
    assert.equal(rows[1]?.name, 'docker.io/library/busybox');
  });
});

describe('kimg ref parse: inputs from stdin with "-"', () => {
  test('one reference per line, CRLF tolerated, in place of "-"', async () => {
    const { status, rows } = await parseJson(['first', '-', 'last'], 'a\r\nb:1\n\nc\n');
    assert.equal(status, 2);
    assert.deepEqual(
      rows.map((r) => r.input),
      ['first', 'a', 'b:1', '', 'c', 'last'],
    );
  });

  test('a 10 MB reference gives a coded error quickly and a bounded message', async () => {
    const big = 'a'.repeat(10 * 1024 * 1024);
    const { status, rows, stderr } = await parseJson(['-'], `${big}\n${'A'.repeat(10 * 1024 * 1024)}\n`);
    assert.equal(status, 2);
    assert.equal(stderr, '');
    assert.equal(rows.length, 2);
    assert.equal(rows[0]?.input.length, big.length);
    const e0 = rows[0]?.error as { code: string; message: string };
    const e1 = rows[1]?.error as { code: string; message: string };
    assert.equal(e0.code, 'NAME_TOO_LONG');
    assert.equal(e1.code, 'NAME_CONTAINS_UPPERCASE');
    assert.ok(e0.message.length < 1000 && e1.message.length < 1000);
  });

  test('"-" twice is a usage error', async () => {
    const r = await kimg(['ref', 'parse', '-', '-'], 'x\n');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /\(USAGE\)/);
  });
});

describe('kimg ref parse: table and yaml', () => {
  test('table is the default; invalid rows show the code, messages go to stderr', async () => {
    const r = await kimg(['ref', 'parse', 'busybox', 'Bad', '']);
    assert.equal(r.status, 2);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^INPUT\s+CANONICAL\s+FAMILIAR\s+ERROR$/);
    assert.match(lines[1] ?? '', /^busybox\s+docker\.io\/library\/busybox:latest\s+busybox\s+<none>$/);
    assert.match(lines[2] ?? '', /^Bad\s+<none>\s+<none>\s+NAME_CONTAINS_UPPERCASE$/);
    assert.match(lines[3] ?? '', /^""\s+<none>\s+<none>\s+INVALID_REFERENCE_FORMAT$/);
    assert.match(
      r.stderr,
      /^error: invalid reference format: repository name \(library\/Bad\) must be lowercase: "Bad"; .* \(NAME_CONTAINS_UPPERCASE\)$/m,
    );
    assert.doesNotMatch(r.stderr, STACK);
  });

  test('table cells escape control characters and cut long inputs', async () => {
    const r = await kimg(['ref', 'parse', `a\u0000b${'c'.repeat(100)}`]);
    assert.equal(r.status, 2);
    assert.ok(!r.stdout.includes('\u0000'));
    assert.match(r.stdout, /a\\u0000bc+…/);
    assert.ok(!r.stderr.includes('\u0000'));
  });

  test('-o yaml prints the same rows', async () => {
    const r = await kimg(['ref', 'parse', 'busybox', '-o', 'yaml']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^- input: busybox\n {2}valid: true\n {2}name: docker\.io\/library\/busybox\n/);
  });
});

describe('kimg ref parse: bad usage', () => {
  test('no reference is a usage error', async () => {
    const r = await kimg(['ref', 'parse']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /missing required argument/);
  });
  test('an unknown output format is a usage error', async () => {
    const r = await kimg(['ref', 'parse', 'busybox', '-o', 'xml']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown output format "xml".*\(USAGE\)/);
  });
  test('an invalid --default-registry is INVALID_ARGUMENT (status 2)', async () => {
    const r = await kimg(['ref', 'parse', 'busybox', '--default-registry', 'not a host']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^error: invalid default registry "not a host": .*\(INVALID_ARGUMENT\)\n$/);
  });
});

describe('the kimg binary', () => {
  test('a 10 MB reference on stdin: status 2, JSON on stdout, nothing on stderr', () => {
    const big = `${'registry.example/'}${'a'.repeat(10 * 1024 * 1024)}`;
    const r = spawnSync(process.execPath, [MAIN, 'ref', 'parse', '-', '-o', 'json'], {
      input: big,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, '');
    const rows = JSON.parse(r.stdout) as Row[];
    assert.equal((rows[0]?.error as { code: string }).code, 'NAME_TOO_LONG');
  });
  test('unicode arguments and the default table: no stack trace', () => {
    const r = spawnSync(process.execPath, [MAIN, 'ref', 'parse', 'busybox', 'ünïcödé', '🐳/🐳'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 2);
    assert.doesNotMatch(r.stderr, STACK);
    assert.match(r.stdout, /busybox/);
  });
});
