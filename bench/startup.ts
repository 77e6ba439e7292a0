/**
 * Start-up: what every `kimg` call and every `import` of the library costs before any work, measured
 * against Node's own start-up in the same run (ratios, so a loaded machine slows both sides alike).
 *
 * 1. CLI rows: `node -e 0`, then the package's bin (dist/bin/kimg.js) running `--version`, `--help`,
 *    `ref parse busybox` and `images` on an empty store. Target: each within 1.5 × `node -e 0` (median
 *    wall time).
 * 2. Library rows: `import('kimg/reference')` against `import('kimg')` from an application that
 *    depends on the package by name, and whether gRPC or prom-client got loaded.
 *
 * Runs are interleaved (round i runs every command once, then round i + 1; 2 warm-up rounds): on a
 * shared machine the load drifts over a minute, and back-to-back batches per command (hyperfine's
 * way) turned that drift into ratios of 0.5-2 between identical runs. Each run goes through the pull
 * bench's rusage wrapper (GNU time): wall time around the process, its CPU time and peak RSS.
 *
 * Options: --runs N (20) · --out FILE (bench-results/startup-<date>.json). Why the figures are what
 * they are, with a profile: docs/design/startup.md.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeTempDir, removeTempDir } from '../test/helpers/tmp.js';
import { findRusageWrapper, timedRun, type RunSample } from './lib/measure.js';
import { median } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'dist/bin/kimg.js');
/** The CLI target: within this factor of `node -e 0`. */
const CLI_TARGET = 1.5;

interface Row {
  name: string;
  command: string[];
  medianMs: number;
  meanMs: number;
  cpuMs: number;
  ratio: number;
  target?: number;
  rssMiB?: number;
  loads?: string;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { runs: { type: 'string', default: '20' }, out: { type: 'string' } },
  });
  const runs = Number(values.runs);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = resolve(values.out ?? join('bench-results', `startup-${stamp}.json`));
  const work = await makeTempDir('kimg-bench-startup-');
  try {
    const app = join(work, 'app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    symlinkSync(ROOT, join(app, 'node_modules', 'kimg'));
    writeFileSync(join(app, 'package.json'), '{"name":"app","private":true,"type":"module"}');
    const importer = (spec: string) => {
      const file = join(app, `import-${spec.replace(/\W/g, '-')}.mjs`);
      writeFileSync(
        file,
        `import { createRequire } from 'node:module';
await import(${JSON.stringify(spec)});
if (process.env.KIMG_BENCH_REPORT) {
  const loaded = Object.keys(createRequire(import.meta.url).cache);
  console.log(JSON.stringify({ grpc: loaded.some((k) => k.includes('/@grpc/')), prom: loaded.some((k) => k.includes('/prom-client/')) }));
}\n`,
      );
      return file;
    };
    const node = process.execPath;
    // kimg as installed: the executable itself (its first line execs node with kimg's flags).
    const rows: Omit<Row, 'medianMs' | 'meanMs' | 'cpuMs' | 'ratio'>[] = [
      { name: 'node -e 0', command: [node, '-e', '0'] },
      { name: 'kimg --version', command: [BIN, '--version'], target: CLI_TARGET },
      { name: 'kimg --help', command: [BIN, '--help'], target: CLI_TARGET },
      { name: 'kimg ref parse busybox', command: [BIN, 'ref', 'parse', 'busybox'], target: CLI_TARGET },
      { name: 'kimg images (empty store)', command: [BIN, 'images'], target: CLI_TARGET },
      { name: "import('kimg/reference')", command: [node, importer('kimg/reference')] },
      { name: "import('kimg')", command: [node, importer('kimg')] },
    ];
    const env = { ...process.env, KIMG_ROOT: join(work, 'store'), HOME: work };
    const wrapper = findRusageWrapper();
    const samples: RunSample[][] = rows.map(() => []);
    const rounds = runs + 2;
    process.stderr.write(
      `[bench:startup] ${rounds} interleaved rounds (2 warm-up) of ${rows.length} commands ...\n`,
    );
    for (let round = 0; round < rounds; round++) {
      for (const [i, r] of rows.entries()) {
        const sample = await timedRun(wrapper, work, r.command[0]!, r.command.slice(1), { env });
        if (sample.code !== 0) throw new Error(`${r.name} failed (${sample.code}): ${sample.stderr}`);
        if (round >= 2) samples[i]!.push(sample);
      }
    }
    const base = median(samples[0]!.map((x) => x.wallS));
    const measured: Row[] = rows.map((r, i) => {
      const xs = samples[i]!;
      const wall = median(xs.map((x) => x.wallS));
      return {
        ...r,
        medianMs: wall * 1000,
        meanMs: (xs.reduce((a, x) => a + x.wallS, 0) / xs.length) * 1000,
        cpuMs: median(xs.map((x) => x.userS + x.sysS)) * 1000,
        ratio: wall / base,
        rssMiB: median(xs.map((x) => x.maxRssKiB)) / 1024,
      };
    });
    for (const r of measured.filter((m) => m.name.startsWith('import('))) {
      const p = spawnSync(r.command[0]!, r.command.slice(1), {
        cwd: app,
        env: { ...env, KIMG_BENCH_REPORT: '1' },
        encoding: 'utf8',
      });
      const last = JSON.parse(p.stdout) as { grpc: boolean; prom: boolean };
      r.loads =
        [last.grpc ? 'gRPC' : '', last.prom ? 'prom-client' : ''].filter(Boolean).join(', ') || 'neither';
    }
    const table = [
      '| command | median ms | mean ms | CPU ms (user+sys, median) | × `node -e 0` (median wall) | target | peak RSS MiB | loads gRPC / prom-client |',
      '| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |',
      ...measured.map(
        (r) =>
          `| \`${r.name}\` | ${r.medianMs.toFixed(1)} | ${r.meanMs.toFixed(1)} | ${r.cpuMs.toFixed(1)} | ${r.ratio.toFixed(2)} | ${
            r.target === undefined ? '' : `≤ ${r.target} ${r.ratio <= r.target ? 'met' : '**NOT met**'}`
          } | ${r.rssMiB?.toFixed(1) ?? ''} | ${r.loads ?? ''} |`,
      ),
    ].join('\n');
    process.stdout.write(
      `\n## Start-up (${new Date().toISOString()}, ${runs} interleaved runs each)\n\n${table}\n`,
    );
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(
      out,
      JSON.stringify({ date: new Date().toISOString(), runs, rows: measured }, null, 2) + '\n',
    );
    process.stderr.write(`[bench:startup] wrote ${out}\n`);
    return 0;
  } finally {
    await removeTempDir(work);
  }
}

process.exitCode = await main();
