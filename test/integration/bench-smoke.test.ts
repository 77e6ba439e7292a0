/**
 * The benchmarks nobody runs in CI cannot break unseen: the start-up bench with one round and the pull
 * bench in its smallest mode (the `small` image, one run, kimg and skopeo, the quick concurrency images)
 * run to the end and write the rows the README's tables come from. Nothing about their figures is
 * asserted (performance is for `npm run bench`, not the tests).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await removeTempDir(d);
});

function bench(file: string, args: string[]) {
  return spawnSync(process.execPath, [join(ROOT, 'dist/bench', file), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
}

test('bench/startup.js --runs 1 prints and writes every start-up row', async () => {
  const dir = await makeTempDir('bench-smoke-');
  dirs.push(dir);
  const out = join(dir, 'startup.json');
  const r = bench('startup.js', ['--runs', '1', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const { rows } = JSON.parse(readFileSync(out, 'utf8')) as { rows: { name: string; ratio: number }[] };
  assert.deepEqual(
    rows.map((x) => x.name),
    [
      'node -e 0',
      'kimg --version',
      'kimg --help',
      'kimg ref parse busybox',
      'kimg images (empty store)',
      "import('kimg/reference')",
      "import('kimg')",
    ],
  );
  for (const x of rows) assert.ok(Number.isFinite(x.ratio) && x.ratio > 0, x.name);
  assert.match(r.stdout, /\| `kimg images \(empty store\)` \|/);
});

test('bench/pull.js in its smallest mode runs every section for kimg and skopeo', async () => {
  const dir = await makeTempDir('bench-smoke-');
  dirs.push(dir);
  const out = join(dir, 'pull.json');
  const r = bench('pull.js', [
    '--quick',
    '--images',
    'small',
    '--runs',
    '1',
    '--tools',
    'kimg,skopeo',
    '--out',
    out,
    '--keep-images',
    join(dir, 'images'),
  ]);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(readFileSync(out, 'utf8')) as {
    exitCode: number;
    measurements: { section: string; tool: string; image: string }[];
    targets: { name: string }[];
  };
  assert.equal(result.exitCode, 0);
  assert.deepEqual(
    result.measurements.map((m) => `${m.section} ${m.tool}`),
    [
      'pull kimg',
      'pull skopeo',
      'concurrent-different kimg',
      'concurrent-different skopeo',
      'concurrent-same kimg',
      'concurrent-same skopeo',
    ],
  );
  assert.ok(result.targets.some((t) => t.name.startsWith('small (2 × 4 KiB): kimg/skopeo')));
  assert.ok(result.targets.some((t) => t.name.startsWith('8 different images by 8 processes')));
  assert.match(r.stdout, /### Single pulls/);
});
