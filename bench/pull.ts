/**
 * `npm run bench`: kimg's pull against its peers on the same machine, registry and images, in one run
 * (method and peer baselines: docs/design/performance.md).
 *
 * 1. Generates the images (bench/lib/images.ts; cached with --keep-images), starts a private plain
 *    distribution registry and, when containerd is installed, a private containerd
 *    (test/helpers/containerd.ts), and pushes the images with skopeo.
 * 2. Single pulls, per image and tool: one warm-up run, then --runs timed runs, serially and
 *    interleaved across tools (run i of each tool, then run i + 1), each from scratch (kimg: a
 *    fresh empty --root; skopeo: the previous oci: dir deleted; containerd: the namespace's images
 *    and all content removed). Wall time around the child, its peak RSS and CPU
 *    from rusage (bench/lib/measure.ts), containerd's own CPU and peak RSS from /proc.
 * 3. Concurrency: 8 different images at once (8 kimg processes into one root / 8 skopeo copies / 8 ctr
 *    fetches), and 8 concurrent pulls of the same image (one kimg process, whose single-flight must
 *    fetch each blob once: bytes fetched, summed from the registry's access log, must equal one
 *    image's blob bytes).
 * 4. Prints the machine, tool versions and Markdown tables (min / median / max s, MB/s at the median,
 *    peak RSS, CPU, ratios vs skopeo and vs containerd) to stdout, progress to stderr, and writes the
 *    JSON result file.
 *
 * No figure here is asserted anywhere: the bench reports; the exit status is non-zero only when a
 * tool failed, kimg pull is missing, or the single-flight byte check failed.
 *
 * Options: --runs N (5) · --images small,many,big,big-text (all) · --quick (small + many, 3 runs,
 * small concurrency images) · --out FILE (bench-results/pull-<date>.json) · --keep-images DIR ·
 * --tools kimg,skopeo,containerd (all) · --no-concurrency.
 */
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { requireBinary } from '../test/helpers/components.js';
import { startContainerd, type StartedContainerd } from '../test/helpers/containerd.js';
import type { GeneratedImage } from '../test/helpers/images.js';
import { runCommand } from '../test/helpers/proc.js';
import { startRegistry, type AccessLogEntry, type StartedRegistry } from '../test/helpers/registry.js';
import { skopeoPush } from '../test/helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../test/helpers/tmp.js';
import {
  blobBytesOnly,
  concurrentImageSpecs,
  ensureImage,
  MAIN_IMAGES,
  mainImageSpec,
  type ImageSpec,
  type MainImage,
} from './lib/images.js';
import {
  findRusageWrapper,
  initClockTicks,
  peakRssKiB,
  processCpuS,
  resetPeakRss,
  timedRun,
  type RunSample,
  type RusageWrapper,
} from './lib/measure.js';
import { markdownTable, summarize, type Summary, type TableRow } from './lib/stats.js';
import {
  childEnv,
  ctrBlobFiles,
  ctrClean,
  ctrFetchArgs,
  kimgPullArgs,
  prepareSkopeo,
  probeKimg,
  selfReportedRss,
  skopeoCopyArgs,
  skopeoEnv,
  TOOL_NAMES,
  versionOf,
  type KimgCli,
  type SkopeoCli,
  type ToolName,
} from './lib/tools.js';

// ---- options -------------------------------------------------------------------------------------------

interface Options {
  runs: number;
  images: MainImage[];
  quick: boolean;
  out: string;
  keepImages?: string;
  tools: ToolName[];
  concurrency: boolean;
}

const USAGE = `usage: npm run bench -- [--runs N] [--images small,many,big,big-text] [--quick]
                       [--out FILE] [--keep-images DIR] [--tools kimg,skopeo,containerd] [--no-concurrency]`;

/** A bad command line: reported without a stack trace. */
class UsageError extends Error {}

function listOption<T extends string>(raw: string, allowed: readonly T[], what: string): T[] {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const i of items) {
    if (!(allowed as readonly string[]).includes(i)) {
      throw new UsageError(`unknown ${what} "${i}"; choose from ${allowed.join(', ')}`);
    }
  }
  if (items.length === 0) throw new UsageError(`--${what}s needs at least one of ${allowed.join(', ')}`);
  return items as T[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      images: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'keep-images': { type: 'string' },
      tools: { type: 'string' },
      'no-concurrency': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = values.quick === true;
  const runs = values.runs !== undefined ? Number(values.runs) : quick ? 3 : 5;
  if (!Number.isInteger(runs) || runs < 1)
    throw new UsageError(`--runs must be a positive integer, got "${values.runs}"`);
  const images =
    values.images !== undefined
      ? listOption(values.images, MAIN_IMAGES, 'image')
      : quick
        ? (['small', 'many'] as MainImage[])
        : [...MAIN_IMAGES];
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
  return {
    runs,
    images,
    quick,
    out: resolve(values.out ?? join('bench-results', `pull-${stamp}.json`)),
    ...(values['keep-images'] !== undefined ? { keepImages: resolve(values['keep-images']) } : {}),
    // Always in table order (kimg, skopeo, containerd), whatever order they were given in.
    tools:
      values.tools !== undefined
        ? TOOL_NAMES.filter((t) => listOption(values.tools ?? '', TOOL_NAMES, 'tool').includes(t))
        : [...TOOL_NAMES],
    concurrency: values['no-concurrency'] !== true,
  };
}

// ---- measurement model ---------------------------------------------------------------------------------

type Section = 'pull' | 'concurrent-different' | 'concurrent-same';

const SECTION_TITLES: Record<Section, string> = {
  pull: 'Single pulls (one image, one process, fresh destination each run)',
  'concurrent-different': '8 different images pulled concurrently (8 processes; kimg: one root)',
  'concurrent-same': '8 concurrent pulls of the same image (kimg: one process; bytes must equal one image)',
};

interface ProcessRecord {
  wallS: number;
  maxRssKiB: number;
  userS: number;
  sysS: number;
  code: number | null;
  selfReportedRss?: number;
}

interface RunRecord {
  wallS: number;
  /** Peak RSS of the largest process of the run. */
  maxRssKiB: number;
  /** CPU of all measured processes of the run. */
  cpuS: number;
  processes: ProcessRecord[];
  daemonMaxRssKiB?: number;
  daemonCpuS?: number;
  /** Sum of the sizes of blob GET responses in the registry's access log during the run. */
  fetchedBlobBytes: number;
  blobGets: number;
  manifestGets: number;
  ok: boolean;
  error?: string;
}

interface Measurement {
  section: Section;
  image: string;
  tool: ToolName;
  /** Compressed bytes the job delivers (for MB/s): blob bytes of every image pulled in one run. */
  bytes: number;
  /** concurrent-same: what the registry must serve at most (one image's config + layers). */
  expectedFetchBytes?: number;
  warmup?: RunRecord;
  runs: RunRecord[];
  summary?: Summary;
  note?: string;
  /** kimg: the `-o json` output of the first timed run. */
  output?: unknown;
}

/** One measurable job: what to run and how to reset between runs. */
interface Job {
  /** Reset to "nothing pulled yet" (not timed). */
  prepare(): Promise<void>;
  /** The processes of one run, started together. */
  commands(): Array<{ cmd: string; args: string[]; env: NodeJS.ProcessEnv }>;
  /** A daemon doing part of the work (containerd). */
  daemonPid?: number;
  /** After the last run. */
  cleanup(): Promise<void>;
}

// ---- helpers -------------------------------------------------------------------------------------------

const t0 = Date.now();
function progress(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
}

function blobStats(entries: readonly AccessLogEntry[]): {
  bytes: number;
  blobGets: number;
  manifestGets: number;
} {
  let bytes = 0;
  let blobGets = 0;
  let manifestGets = 0;
  for (const e of entries) {
    if (e.method !== 'GET' || (e.status !== 200 && e.status !== 206)) continue;
    if (/^\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}$/.test(e.path)) {
      blobGets++;
      bytes += e.bytes ?? 0;
    } else if (/^\/v2\/.+\/manifests\//.test(e.path)) {
      manifestGets++;
    }
  }
  return { bytes, blobGets, manifestGets };
}

function fmtBytes(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`;
}

function tail(text: string, n = 1500): string {
  const t = text.trim();
  return t.length > n ? `…${t.slice(-n)}` : t;
}

interface Context {
  opts: Options;
  wrapper: RusageWrapper;
  work: string;
  reg: StartedRegistry;
  ctrd?: StartedContainerd;
  kimg: KimgCli;
  skopeo?: SkopeoCli;
  ctrBin?: string;
  warnings: string[];
}

/** Run `i` (0 = warm-up) of one tool's job; false when it failed (no more runs of that tool). */
async function measureOnce(ctx: Context, job: Job, m: Measurement, i: number): Promise<boolean> {
  {
    await job.prepare();
    await runCommand('sync', [], { allowFailure: true });
    const before = (await ctx.reg.accessLog()).length;
    const daemon = job.daemonPid;
    let cpu0 = 0;
    if (daemon !== undefined) {
      if (!resetPeakRss(daemon))
        ctx.warnings.push('could not reset containerd VmHWM (clear_refs): its peak RSS is since start');
      cpu0 = processCpuS(daemon);
    }
    const cmds = job.commands();
    const start = process.hrtime.bigint();
    const samples: RunSample[] = await Promise.all(
      cmds.map((c) => timedRun(ctx.wrapper, ctx.work, c.cmd, c.args, { env: c.env })),
    );
    const wallS = Number(process.hrtime.bigint() - start) / 1e9;
    const daemonFigures =
      daemon !== undefined
        ? { daemonMaxRssKiB: peakRssKiB(daemon), daemonCpuS: processCpuS(daemon) - cpu0 }
        : {};
    const log = (await ctx.reg.accessLog()).slice(before);
    const fetched = blobStats(log);
    const failed = samples.find((s) => s.code !== 0);
    const rec: RunRecord = {
      wallS,
      maxRssKiB: Math.max(...samples.map((s) => s.maxRssKiB)),
      cpuS: samples.reduce((a, s) => a + s.userS + s.sysS, 0),
      processes: samples.map((s) => {
        const self = m.tool === 'kimg' ? selfReportedRss(s.stdout) : undefined;
        return {
          wallS: s.wallS,
          maxRssKiB: s.maxRssKiB,
          userS: s.userS,
          sysS: s.sysS,
          code: s.code,
          ...(self !== undefined ? { selfReportedRss: self } : {}),
        };
      }),
      ...daemonFigures,
      fetchedBlobBytes: fetched.bytes,
      blobGets: fetched.blobGets,
      manifestGets: fetched.manifestGets,
      ok: failed === undefined,
      ...(failed !== undefined
        ? { error: `exit ${failed.code}: ${tail(failed.stderr) || tail(failed.stdout)}` }
        : {}),
    };
    if (i === 0) m.warmup = rec;
    else m.runs.push(rec);
    if (i === 1 && m.tool === 'kimg') {
      try {
        m.output = JSON.parse(samples[0]?.stdout ?? '');
      } catch {
        m.output = samples[0]?.stdout;
      }
    }
    progress(
      `${m.section} ${m.image} ${m.tool} ${i === 0 ? 'warm-up' : `run ${i}/${ctx.opts.runs}`}: ` +
        `${wallS.toFixed(3)} s, peak RSS ${(rec.maxRssKiB / 1024).toFixed(1)} MiB` +
        (rec.daemonMaxRssKiB !== undefined
          ? ` (containerd ${(rec.daemonMaxRssKiB / 1024).toFixed(1)} MiB)`
          : '') +
        `, fetched ${fmtBytes(fetched.bytes)} in ${fetched.blobGets} blob GETs` +
        (rec.ok ? '' : ` — FAILED ${rec.error ?? ''}`),
    );
    if (!rec.ok) {
      m.note = `failed: ${(rec.error ?? '').split('\n')[0]?.slice(0, 200) ?? ''}`;
      return false;
    }
  }
  return true;
}

/** Cleans up after a tool's runs and summarizes them. */
async function finishMeasurement(job: Job, m: Measurement): Promise<void> {
  await job.cleanup();
  if (m.note === undefined && m.runs.length > 0) {
    m.summary = summarize(
      m.runs.map((r) => ({
        wallS: r.wallS,
        maxRssKiB: r.maxRssKiB,
        cpuS: r.cpuS,
        ...(r.daemonMaxRssKiB !== undefined ? { daemonMaxRssKiB: r.daemonMaxRssKiB } : {}),
        ...(r.daemonCpuS !== undefined ? { daemonCpuS: r.daemonCpuS } : {}),
      })),
      m.bytes,
    );
  }
}

// ---- jobs ----------------------------------------------------------------------------------------------

function kimgJob(ctx: Context, refSets: string[][], oneRoot: boolean): Job {
  const base = join(ctx.work, 'kimg');
  const roots = refSets.map((_, i) => (oneRoot ? join(base, 'root') : join(base, `root-${i}`)));
  return {
    prepare: async () => {
      await rm(base, { recursive: true, force: true });
      for (const r of new Set(roots)) await mkdir(r, { recursive: true });
    },
    commands: () =>
      refSets.map((refs, i) => ({
        cmd: process.execPath,
        args: kimgPullArgs(ctx.kimg, refs, roots[i] as string, ctx.reg.host),
        env: childEnv(),
      })),
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}

function skopeoJob(ctx: Context, s: SkopeoCli, repoTags: string[]): Job {
  const base = join(ctx.work, 'skopeo');
  return {
    prepare: async () => {
      await rm(base, { recursive: true, force: true });
      await mkdir(base, { recursive: true });
    },
    commands: () =>
      repoTags.map((rt, i) => ({
        cmd: s.bin,
        args: skopeoCopyArgs(s, ctx.reg.host, rt, join(base, `out-${i}`)),
        env: skopeoEnv(s),
      })),
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}

function ctrJob(ctx: Context, ctrd: StartedContainerd, ctrBin: string, repoTags: string[]): Job {
  let checked = false;
  return {
    prepare: async () => {
      await ctrClean(ctrd);
      const left = await ctrBlobFiles(ctrd);
      if (left > 0 && !checked) {
        checked = true;
        ctx.warnings.push(
          `containerd content store still held ${left} blob files after cleaning: its runs may not download everything`,
        );
      }
    },
    commands: () =>
      repoTags.map((rt) => ({
        cmd: ctrBin,
        args: ctrFetchArgs(ctrd, `${ctx.reg.host}/${rt}`),
        env: childEnv(),
      })),
    daemonPid: ctrd.pid,
    cleanup: () => ctrClean(ctrd),
  };
}

function notAvailable(ctx: Context, tool: ToolName): string | undefined {
  if (tool === 'kimg' && !ctx.kimg.available) return 'not available: `kimg pull` is missing';
  if (tool === 'skopeo' && ctx.skopeo === undefined) return 'not available: skopeo is not installed';
  if (tool === 'containerd' && (ctx.ctrd === undefined || ctx.ctrBin === undefined)) {
    return 'not available: containerd/ctr is not installed or did not start';
  }
  return undefined;
}

async function runSection(
  ctx: Context,
  section: Section,
  image: string,
  bytes: number,
  plan: Partial<Record<ToolName, () => Job | string>>,
  expectedFetchBytes?: number,
): Promise<Measurement[]> {
  const out: Measurement[] = [];
  const jobs: { job: Job; m: Measurement }[] = [];
  for (const tool of ctx.opts.tools) {
    const m: Measurement = {
      section,
      image,
      tool,
      bytes,
      runs: [],
      ...(expectedFetchBytes !== undefined ? { expectedFetchBytes } : {}),
    };
    out.push(m);
    const missing = notAvailable(ctx, tool);
    const make = plan[tool];
    if (missing !== undefined) {
      m.note = missing;
      continue;
    }
    if (make === undefined) {
      m.note = 'not measured';
      continue;
    }
    const job = make();
    if (typeof job === 'string') {
      m.note = job;
      continue;
    }
    jobs.push({ job, m });
  }
  // Interleaved: run i of every tool, then run i + 1, so that a slow patch of the shared machine (disk
  // writeback, another tenant) lands on all tools instead of on one tool's five runs.
  const live = new Set(jobs);
  for (let i = 0; i <= ctx.opts.runs; i++) {
    for (const j of jobs) {
      if (live.has(j) && !(await measureOnce(ctx, j.job, j.m, i))) live.delete(j);
    }
  }
  for (const j of jobs) await finishMeasurement(j.job, j.m);
  return out;
}

// ---- report --------------------------------------------------------------------------------------------

function rowsOf(ms: readonly Measurement[]): TableRow[] {
  return ms.map((m) => {
    const peer = (tool: ToolName): number | undefined =>
      ms.find((x) => x.section === m.section && x.image === m.image && x.tool === tool)?.summary?.medianS;
    const own = m.summary?.medianS;
    const sk = peer('skopeo');
    const ct = peer('containerd');
    const medFetched =
      m.expectedFetchBytes !== undefined && m.runs.length > 0
        ? [...m.runs.map((r) => r.fetchedBlobBytes)].sort((a, b) => a - b)[m.runs.length >> 1]
        : undefined;
    return {
      section: m.section,
      image: m.image,
      tool: m.tool,
      ...(m.summary ? { summary: m.summary } : {}),
      ...(m.note !== undefined ? { note: m.note } : {}),
      ...(own !== undefined && sk !== undefined ? { ratioVsSkopeo: own / sk } : {}),
      ...(own !== undefined && ct !== undefined ? { ratioVsContainerd: own / ct } : {}),
      ...(medFetched !== undefined && m.expectedFetchBytes !== undefined
        ? { fetched: { bytes: medFetched, expected: m.expectedFetchBytes } }
        : {}),
    };
  });
}

interface Verdict {
  name: string;
  value: string;
  ok: boolean | null;
}

function evaluateTargets(ms: readonly Measurement[]): Verdict[] {
  const get = (section: Section, image: string, tool: ToolName): Measurement | undefined =>
    ms.find((m) => m.section === section && m.image === image && m.tool === tool);
  const out: Verdict[] = [];
  const kBig = get('pull', 'big', 'kimg')?.summary;
  const sBig = get('pull', 'big', 'skopeo')?.summary;
  if (kBig && sBig) {
    const r = kBig.medianS / sBig.medianS;
    out.push({
      name: 'big (1 GiB incompressible): kimg/skopeo wall ratio ≤ 1.0',
      value: r.toFixed(2),
      ok: r <= 1.0,
    });
  }
  if (kBig) {
    out.push({
      name: 'big: kimg peak RSS ≤ 96 MiB',
      value: `${kBig.peakRssMiB.toFixed(1)} MiB`,
      ok: kBig.peakRssMiB <= 96,
    });
  }
  const kMany = get('pull', 'many', 'kimg')?.summary;
  if (kBig && kMany) {
    // "Not growing": 1 GiB may cost at most 10 % (or 8 MiB, whichever is larger) more than 8 MiB.
    const allowed = Math.max(kMany.peakRssMiB * 0.1, 8);
    const growth = kBig.peakRssMiB - kMany.peakRssMiB;
    out.push({
      name: 'kimg peak RSS does not grow with image size (big vs many, ≤ max(10 %, 8 MiB))',
      value: `${kMany.peakRssMiB.toFixed(1)} → ${kBig.peakRssMiB.toFixed(1)} MiB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)})`,
      ok: growth <= allowed,
    });
  }
  for (const m of ms) {
    if (m.section !== 'concurrent-same' || m.tool !== 'kimg' || m.expectedFetchBytes === undefined) continue;
    if (m.runs.length === 0) continue;
    const all = [...(m.warmup ? [m.warmup] : []), ...m.runs];
    const bad = all.filter((r) => r.fetchedBlobBytes !== m.expectedFetchBytes);
    out.push({
      name: `concurrent pulls of the same image (${m.image}) in one kimg process fetch one image's blob bytes (${m.expectedFetchBytes} B per run)`,
      value: all.map((r) => r.fetchedBlobBytes).join(', '),
      ok: bad.length === 0,
    });
  }
  return out;
}

// ---- main ----------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const wrapper = findRusageWrapper();
  await initClockTicks();
  const work = await makeTempDir('bench-');
  const imageDir = opts.keepImages ?? join(work, 'images');
  await mkdir(imageDir, { recursive: true });
  let reg: StartedRegistry | undefined;
  let ctrd: StartedContainerd | undefined;
  const warnings: string[] = [];
  try {
    // Tools first: a missing peer is reported before minutes of image generation.
    const kimg = await probeKimg();
    let skopeoBin: string | undefined;
    let ctrBin: string | undefined;
    let containerdBin: string | undefined;
    try {
      skopeoBin = requireBinary('skopeo');
    } catch (e) {
      warnings.push((e as Error).message);
    }
    if (skopeoBin === undefined)
      throw new Error('skopeo is required: it pushes the images (apt-get install -y skopeo)');
    try {
      containerdBin = requireBinary('containerd');
      ctrBin = requireBinary('ctr');
    } catch (e) {
      warnings.push(`containerd rows skipped: ${(e as Error).message}`);
    }
    const skopeo = await prepareSkopeo(skopeoBin, work);

    const cpu = cpus()[0]?.model ?? 'unknown';
    const machine = {
      nproc: availableParallelism(),
      cpu,
      memGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
      loadavgAtStart: loadavg().map((x) => Number(x.toFixed(2))),
    };
    const versions = {
      kimg: kimg.version ?? 'unavailable',
      skopeo: await versionOf(skopeoBin, ['--version']),
      containerd: containerdBin !== undefined ? await versionOf(containerdBin, ['--version']) : 'unavailable',
      ctr: ctrBin !== undefined ? await versionOf(ctrBin, ['--version']) : 'unavailable',
      registry: await versionOf(requireBinary('docker-registry'), ['--version']),
      rusage: await versionOf(wrapper.path, ['--version']),
    };
    const header = [
      `# kimg pull bench (${new Date().toISOString()})`,
      '',
      `machine: ${machine.nproc} CPUs (${cpu}), ${machine.memGiB} GiB, Linux ${machine.kernel}, node ${machine.node}, load ${machine.loadavgAtStart.join(' ')}`,
      `versions: kimg ${versions.kimg} · skopeo: ${versions.skopeo} · containerd: ${versions.containerd} · registry: ${versions.registry}`,
      `method: ${opts.runs} timed runs after 1 warm-up, serial and interleaved across tools (run i of each tool, then run i+1), each from scratch; peak RSS/CPU via ${wrapper.kind === 'gnu-time' ? '/usr/bin/time' : 'python3 getrusage(RUSAGE_CHILDREN)'}; MB/s = compressed registry bytes / median`,
    ];
    process.stdout.write(`${header.join('\n')}\n\n`);
    if (!kimg.available) {
      process.stdout.write(
        `**kimg pull is missing** — only the peers are measured. ${kimg.reason ?? ''}\n\n`,
      );
    }

    // Images, registry, containerd.
    const specs: ImageSpec[] = opts.images.map((n) => mainImageSpec(n));
    const concSpecs = opts.concurrency ? concurrentImageSpecs(opts.quick) : [];
    const images = new Map<string, GeneratedImage>();
    for (const spec of [...specs, ...concSpecs]) {
      const r = await ensureImage(imageDir, spec, (s) =>
        progress(
          `generating ${s.name} (${s.layers.length} layers, ${s.layers.reduce((a, l) => a + l.size, 0)} bytes)…`,
        ),
      );
      images.set(spec.name, r.image);
      progress(
        `${spec.name}: ${r.cached ? 'cached' : `generated in ${r.seconds.toFixed(1)} s`}, ${r.image.blobBytes} bytes`,
      );
    }
    const [startedReg, startedCtrd] = await Promise.all([
      startRegistry({ mode: 'plain' }),
      containerdBin !== undefined && opts.tools.includes('containerd')
        ? startContainerd({ cri: false, namespace: 'kimgbench' }).catch((e: unknown) => {
            warnings.push(`containerd did not start: ${(e as Error).message.split('\n')[0] ?? ''}`);
            return undefined;
          })
        : Promise.resolve(undefined),
    ]);
    reg = startedReg;
    ctrd = startedCtrd;
    if (ctrd !== undefined) await ctrd.addPlainHttpRegistry(reg.host);
    progress(
      `registry ${reg.host} (pid ${reg.pid})${ctrd ? `, containerd pid ${ctrd.pid} (${ctrd.socket})` : ''}`,
    );
    for (const [name, img] of images) {
      const p0 = Date.now();
      await skopeoPush(img, reg, `${name}:1`);
      progress(`pushed ${name}:1 in ${((Date.now() - p0) / 1000).toFixed(1)} s`);
    }

    const ctx: Context = {
      opts,
      wrapper,
      work,
      reg,
      ...(ctrd ? { ctrd } : {}),
      kimg,
      skopeo,
      ...(ctrBin !== undefined && ctrd !== undefined ? { ctrBin } : {}),
      warnings,
    };
    const measurements: Measurement[] = [];

    for (const name of opts.images) {
      const img = images.get(name) as GeneratedImage;
      const rt = `${name}:1`;
      measurements.push(
        ...(await runSection(ctx, 'pull', name, img.blobBytes, {
          kimg: () => kimgJob(ctx, [[`${reg?.host ?? ''}/${rt}`]], false),
          skopeo: () => skopeoJob(ctx, skopeo, [rt]),
          containerd: () => ctrJob(ctx, ctrd as StartedContainerd, ctrBin as string, [rt]),
        })),
      );
    }

    if (opts.concurrency) {
      const names = concSpecs.map((s) => s.name);
      const label = `8 × ${names[0] ?? ''}…${names[names.length - 1] ?? ''}`;
      const total = names.reduce((a, n) => a + (images.get(n)?.blobBytes ?? 0), 0);
      const rts = names.map((n) => `${n}:1`);
      measurements.push(
        ...(await runSection(ctx, 'concurrent-different', label, total, {
          kimg: () =>
            kimgJob(
              ctx,
              rts.map((rt) => [`${reg?.host ?? ''}/${rt}`]),
              true,
            ),
          skopeo: () => skopeoJob(ctx, skopeo, rts),
          containerd: () => ctrJob(ctx, ctrd as StartedContainerd, ctrBin as string, rts),
        })),
      );
      const same = names[0] as string;
      const sameImg = images.get(same) as GeneratedImage;
      const sameRts = Array.from({ length: 8 }, () => `${same}:1`);
      measurements.push(
        ...(await runSection(
          ctx,
          'concurrent-same',
          `8 × ${same}`,
          sameImg.blobBytes * 8,
          {
            kimg: () =>
              ctx.kimg.multiImage
                ? kimgJob(ctx, [sameRts.map((rt) => `${reg?.host ?? ''}/${rt}`)], true)
                : 'not measured: `kimg pull` takes one image per invocation, and no library pull() to call yet',
            skopeo: () => skopeoJob(ctx, skopeo, sameRts),
            // 8 ctr processes fetching the same blobs wait on containerd's ingest locks with back-off:
            // 9-25 s per run even for 2 MB, too long for a one-minute check.
            containerd: () =>
              opts.quick
                ? 'not measured with --quick (containerd ingest-lock back-off: 9-25 s per run)'
                : ctrJob(ctx, ctrd as StartedContainerd, ctrBin as string, sameRts),
          },
          blobBytesOnly(sameImg),
        )),
      );
    }

    // Report.
    const sections: Section[] = ['pull', 'concurrent-different', 'concurrent-same'];
    for (const s of sections) {
      const ms = measurements.filter((m) => m.section === s);
      if (ms.length === 0) continue;
      process.stdout.write(`\n### ${SECTION_TITLES[s]}\n\n${markdownTable(rowsOf(ms))}\n`);
    }
    const rows = rowsOf(measurements);
    const ratioLines = rows
      .filter((r) => r.tool === 'kimg' && r.summary !== undefined)
      .map(
        (r) =>
          `- ${r.section} ${r.image}: kimg/skopeo ${r.ratioVsSkopeo?.toFixed(2) ?? '—'}, kimg/containerd ${r.ratioVsContainerd?.toFixed(2) ?? '—'}`,
      );
    if (ratioLines.length > 0)
      process.stdout.write(`\nRatios (median wall, < 1 = kimg faster):\n${ratioLines.join('\n')}\n`);
    const verdicts = evaluateTargets(measurements);
    if (verdicts.length > 0) {
      process.stdout.write(
        `\nTargets:\n${verdicts.map((v) => `- ${v.ok === true ? 'met' : v.ok === false ? 'NOT met' : '?'}: ${v.name}: ${v.value}`).join('\n')}\n`,
      );
    }
    for (const w of new Set(warnings)) process.stdout.write(`\nwarning: ${w}\n`);

    const failed = measurements.filter((m) => m.note?.startsWith('failed') === true);
    const singleFlightBroken = verdicts.some(
      (v) => v.name.startsWith('concurrent pulls of the same image') && v.ok === false,
    );
    let exitCode = 0;
    const reasons: string[] = [];
    if (!kimg.available) reasons.push('kimg pull is missing');
    if (failed.length > 0)
      reasons.push(
        `${failed.length} measurement(s) failed: ${failed.map((m) => `${m.section} ${m.image} ${m.tool}`).join(', ')}`,
      );
    if (singleFlightBroken)
      reasons.push('concurrent pulls of the same image fetched more than one image from the registry');
    if (reasons.length > 0) exitCode = 1;

    const result = {
      schema: 'kimg-bench-pull/1',
      startedAt: new Date(t0).toISOString(),
      finishedAt: new Date().toISOString(),
      machine,
      versions,
      options: { ...opts },
      registry: { host: reg.host },
      containerd: ctrd ? { snapshotter: ctrd.snapshotter } : null,
      kimg: {
        available: kimg.available,
        multiImage: kimg.multiImage,
        ...(kimg.reason ? { reason: kimg.reason } : {}),
      },
      images: Object.fromEntries(
        [...images].map(([n, img]) => [
          n,
          {
            digest: img.digest,
            blobBytes: img.blobBytes,
            configAndLayerBytes: blobBytesOnly(img),
            uncompressedBytes: img.uncompressedBytes,
            layers: img.manifests[0]?.layers.length ?? 0,
          },
        ]),
      ),
      measurements,
      ratios: rows
        .filter((r) => r.summary !== undefined)
        .map((r) => ({
          section: r.section,
          image: r.image,
          tool: r.tool,
          vsSkopeo: r.ratioVsSkopeo ?? null,
          vsContainerd: r.ratioVsContainerd ?? null,
        })),
      targets: verdicts,
      warnings: [...new Set(warnings)],
      exitCode,
      exitReasons: reasons,
    };
    await mkdir(dirname(opts.out), { recursive: true });
    await writeFile(opts.out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`\nJSON result: ${opts.out}\n`);
    if (reasons.length > 0) process.stdout.write(`\nexit status 1: ${reasons.join('; ')}\n`);
    return exitCode;
  } finally {
    await Promise.all([reg?.stop(), ctrd?.stop()]);
    await removeTempDir(work);
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    const usage = e instanceof Error && (e as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION';
    const text =
      e instanceof UsageError || usage
        ? `${(e as Error).message}\n${USAGE}`
        : e instanceof Error
          ? (e.stack ?? e.message)
          : String(e);
    process.stderr.write(`bench failed: ${text}\n`);
    process.exit(2);
  },
);
