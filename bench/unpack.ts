/**
 * `npm run bench` (second part) / `node dist/bench/unpack.js`: unpacking one image into a filesystem,
 * kimg against its peers on the same machine in one run:
 *
 * - kimg: `kimg unpack IMAGE DIR` from a kimg store (the image loaded once, untimed);
 * - umoci: `umoci unpack --image LAYOUT:1 DIR` from the same OCI layout;
 * - containerd: `ctr images pull` with the content already fetched (`ctr content fetch`, untimed),
 *   which is a pull minus its fetch: resolve, then unpack every layer into the overlayfs snapshotter.
 *   Its CPU and peak RSS are the daemon's (from /proc), plus ctr's own.
 *
 * Runs are serial and interleaved (run i of each tool, then run i + 1), each from scratch (target
 * removed; containerd's image and snapshots removed, content kept). Figures are min / median / max wall
 * seconds, peak RSS and CPU (bench/lib/measure.ts). kimg's unpack targets (docs/design/unpack.md) —
 * kimg ≤ 0.5 × umoci, peak RSS ≤ 96 MiB — are printed next to the figures, never asserted.
 *
 * Options: --runs N (3) · --image big-text|big|many|small (big-text: 8 × 128 MiB text-like layers,
 * 1 GiB uncompressed) · --keep-images DIR (reuse generated images) · --out FILE · --tools
 * kimg,umoci,containerd.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { requireBinary } from '../test/helpers/components.js';
import { startContainerd, type StartedContainerd } from '../test/helpers/containerd.js';
import { runCommand } from '../test/helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../test/helpers/registry.js';
import { skopeoPush } from '../test/helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../test/helpers/tmp.js';
import { ensureImage, MAIN_IMAGES, mainImageSpec, type MainImage } from './lib/images.js';
import {
  findRusageWrapper,
  initClockTicks,
  peakRssKiB,
  processCpuS,
  resetPeakRss,
  timedRun,
  type RunSample,
} from './lib/measure.js';
import { median } from './lib/stats.js';
import { childEnv, ctrClean, ctrFetchArgs, CTR_NAMESPACE, probeKimg, versionOf } from './lib/tools.js';

const TOOLS = ['kimg', 'umoci', 'containerd'] as const;
type Tool = (typeof TOOLS)[number];

interface Sample {
  wallS: number;
  rssKiB: number;
  cpuS: number;
  daemonRssKiB?: number;
  daemonCpuS?: number;
}

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '3' },
      image: { type: 'string', default: 'big-text' },
      'keep-images': { type: 'string' },
      out: { type: 'string' },
      tools: { type: 'string', default: TOOLS.join(',') },
    },
    strict: true,
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer`);
  if (!(MAIN_IMAGES as readonly string[]).includes(values.image))
    throw new Error(`--image: one of ${MAIN_IMAGES.join(', ')}`);
  const tools = values.tools.split(',').filter((t) => t !== '') as Tool[];
  for (const t of tools) if (!TOOLS.includes(t)) throw new Error(`--tools: unknown ${t}`);
  return { runs, image: values.image as MainImage, keep: values['keep-images'], out: values.out, tools };
}

const log = (s: string) => process.stderr.write(`[bench:unpack] ${s}\n`);

async function main(): Promise<void> {
  const opt = options(process.argv.slice(2));
  await initClockTicks();
  const wrapper = findRusageWrapper();
  const work = await makeTempDir('bench-unpack-');
  const imagesDir = opt.keep !== undefined ? resolve(opt.keep) : join(work, 'images');
  await mkdir(imagesDir, { recursive: true });
  let reg: StartedRegistry | undefined;
  let ctrd: StartedContainerd | undefined;
  try {
    const spec = mainImageSpec(opt.image);
    log(`image ${opt.image}: preparing (cached in ${imagesDir})`);
    const { image } = await ensureImage(imagesDir, spec, () =>
      log('generating (about 45 s per GiB of text)'),
    );
    const layout = image.layoutDir;
    const m = image.manifests[0];
    if (!m) throw new Error('generated image has no manifest');
    const uncompressed = m.layers.reduce((n, l) => n + l.uncompressedSize, 0);
    const compressed = m.layers.reduce((n, l) => n + l.size, 0);

    const kimg = await probeKimg();
    const node = process.execPath;
    const store = join(work, 'store');
    const name = `bench.example/${opt.image}:1`;
    if (opt.tools.includes('kimg')) {
      if (!kimg.available) throw new Error(`kimg CLI: ${kimg.reason}`);
      await runCommand(node, [kimg.mainJs, 'load', `oci:${layout}:1`, '--name', name, '--root', store], {
        env: childEnv(),
      });
    }
    const ref = () => `${reg?.host}/bench-${opt.image}:1`;
    if (opt.tools.includes('containerd')) {
      [reg, ctrd] = await Promise.all([
        startRegistry({ mode: 'plain' }),
        startContainerd({ cri: false, namespace: CTR_NAMESPACE }),
      ]);
      await ctrd.addPlainHttpRegistry(reg.host);
      await skopeoPush(image, reg, `bench-${opt.image}:1`);
    }

    const target = join(work, 'target');
    const results: Record<Tool, Sample[]> = { kimg: [], umoci: [], containerd: [] };
    const runOnce = async (tool: Tool): Promise<Sample> => {
      await rm(target, { recursive: true, force: true });
      if (tool === 'kimg') {
        const s = await timedRun(
          wrapper,
          work,
          node,
          [kimg.mainJs, 'unpack', name, target, '--root', store, '--progress', 'none', '-o', 'json'],
          {
            env: childEnv(),
          },
        );
        check(s, tool);
        return { wallS: s.wallS, rssKiB: s.maxRssKiB, cpuS: s.userS + s.sysS };
      }
      if (tool === 'umoci') {
        const s = await timedRun(wrapper, work, requireBinary('umoci'), [
          'unpack',
          '--image',
          `${layout}:1`,
          target,
        ]);
        check(s, tool);
        return { wallS: s.wallS, rssKiB: s.maxRssKiB, cpuS: s.userS + s.sysS };
      }
      const c = ctrd as StartedContainerd;
      await ctrClean(c);
      await runCommand(requireBinary('ctr'), ctrFetchArgs(c, ref()));
      resetPeakRss(c.pid);
      const cpu0 = processCpuS(c.pid);
      const s = await timedRun(wrapper, work, requireBinary('ctr'), [
        '-a',
        c.socket,
        '-n',
        CTR_NAMESPACE,
        'images',
        'pull',
        '--plain-http',
        ref(),
      ]);
      check(s, tool);
      return {
        wallS: s.wallS,
        rssKiB: s.maxRssKiB,
        cpuS: s.userS + s.sysS,
        daemonRssKiB: peakRssKiB(c.pid),
        daemonCpuS: processCpuS(c.pid) - cpu0,
      };
    };
    for (let i = 0; i <= opt.runs; i++) {
      for (const tool of opt.tools) {
        const s = await runOnce(tool);
        log(
          `${i === 0 ? 'warm-up' : `run ${i}`} ${tool}: ${s.wallS.toFixed(3)} s, ${(s.rssKiB / 1024).toFixed(1)} MiB`,
        );
        if (i > 0) results[tool].push(s);
      }
    }
    await rm(target, { recursive: true, force: true });

    const versions = {
      node: process.version,
      umoci: await versionOf('umoci', ['--version']),
      containerd: await versionOf('containerd', ['--version']),
    };
    const rows = opt.tools.map((tool) => {
      const xs = results[tool];
      const walls = xs.map((x) => x.wallS);
      const daemon = xs.some((x) => x.daemonRssKiB !== undefined);
      return {
        tool,
        runs: xs.length,
        minS: Math.min(...walls),
        medianS: median(walls),
        maxS: Math.max(...walls),
        mbPerS: uncompressed / 1e6 / median(walls),
        peakRssMiB: Math.max(...xs.map((x) => x.rssKiB)) / 1024,
        cpuS: median(xs.map((x) => x.cpuS)),
        ...(daemon
          ? {
              daemonPeakRssMiB: Math.max(...xs.map((x) => x.daemonRssKiB ?? 0)) / 1024,
              daemonCpuS: median(xs.map((x) => x.daemonCpuS ?? 0)),
            }
          : {}),
      };
    });
    const med = (t: Tool) => rows.find((r) => r.tool === t)?.medianS;
    const umociMed = med('umoci');
    const lines = [
      `### unpack ${opt.image} (${m.layers.length} layers, ${(compressed / 1e6).toFixed(0)} MB compressed, ${(uncompressed / 1e6).toFixed(0)} MB uncompressed)`,
      '',
      '| tool | runs | min s | median s | max s | MB/s (uncompressed) | peak RSS MiB | CPU s | vs umoci |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => {
        const rss =
          'daemonPeakRssMiB' in r
            ? `${r.peakRssMiB.toFixed(1)} + daemon ${r.daemonPeakRssMiB?.toFixed(1)}`
            : r.peakRssMiB.toFixed(1);
        const cpu =
          'daemonCpuS' in r ? `${r.cpuS.toFixed(2)} + daemon ${r.daemonCpuS?.toFixed(2)}` : r.cpuS.toFixed(2);
        const vs = umociMed !== undefined ? (r.medianS / umociMed).toFixed(2) : '—';
        return `| ${r.tool} | ${r.runs} | ${r.minS.toFixed(3)} | ${r.medianS.toFixed(3)} | ${r.maxS.toFixed(3)} | ${r.mbPerS.toFixed(0)} | ${rss} | ${cpu} | ${vs} |`;
      }),
      '',
    ];
    const k = rows.find((r) => r.tool === 'kimg');
    if (k !== undefined) {
      const ratio = umociMed !== undefined ? k.medianS / umociMed : undefined;
      lines.push(
        `Targets: kimg ≤ 0.5 × umoci — ${ratio !== undefined ? `${ratio.toFixed(2)} × (${ratio <= 0.5 ? 'met' : 'not met'})` : 'umoci not run'}; ` +
          `peak RSS ≤ 96 MiB — ${k.peakRssMiB.toFixed(1)} MiB (${k.peakRssMiB <= 96 ? 'met' : 'not met'}).`,
        '',
      );
    }
    process.stdout.write(lines.join('\n') + '\n');
    const out =
      opt.out ?? join('bench-results', `unpack-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(
      out,
      JSON.stringify(
        { image: opt.image, uncompressed, compressed, versions, rows, samples: results },
        null,
        2,
      ),
    );
    log(`results written to ${out}`);
  } finally {
    await ctrd?.stop();
    await reg?.stop();
    await removeTempDir(work);
  }
}

function check(s: RunSample, tool: string): void {
  if (s.code !== 0) throw new Error(`${tool} failed (exit ${s.code}): ${s.stderr.slice(-2000)}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench:unpack] ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
