/**
 * Soak: `kimg serve` (a child process on a unix socket) under 16 concurrent CRI clients
 * (kimg's `CriImageService`, what the kubelet's cri-client does) making 200 PullImage calls of 20
 * images with overlapping layers from a local registry, loopback only. Seeded at random: which image
 * each pull asks for, which pulls the client cancels (AbortSignal after 0-40 ms: the RPC is
 * cancelled, as the kubelet does when a pod goes away), and RemoveImage after some pulls (so later
 * pulls of the image resolve and record it again, reusing its blobs).
 *
 * Asserts (exit 1 when one fails): no deadlock (every call settles within the watchdog); every blob is
 * fetched from the registry once per digest however many clients pull it concurrently — the only
 * extra whole fetches allowed are after cancelled pulls (at most one per cancellation: a cancelled
 * download is dropped with its RPC, as in containerd, and what it had not yet written is fetched
 * again); with `--cancel-rate 0` exactly once; the `kimg
 * serve` RSS at the end is within 20 % of its RSS after warm-up; after SIGTERM (exit 0) `kimg store
 * verify` reports no problems. Prints throughput and p50/p99 PullImage latency; `--out FILE` writes
 * the JSON summary.
 *
 * `npm run soak` (200 pulls, 16 clients, 20 images); `test/integration/soak-short.test.ts` runs
 * `runSoak` with 40 pulls and 4 clients. Options: --pulls N · --clients N · --images N · --seed N ·
 * --cancel-rate F (0.15) · --layer-scale N (4: layers of 1 MiB, 512, 256 and 64 KiB; the short test
 * uses 1) · --out FILE.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CriImageService } from '../src/cri/index.js';
import { generateImage, type GeneratedImage } from '../test/helpers/images.js';
import { killProcess, runCommand, spawnTracked, waitFor, type TrackedProcess } from '../test/helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../test/helpers/registry.js';
import { skopeoPush } from '../test/helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../test/helpers/tmp.js';

const CLI = new URL('../src/cli/main.js', import.meta.url).pathname;
const KiB = 1024;

export interface SoakOptions {
  pulls: number;
  clients: number;
  images: number;
  /** Multiplies the layer sizes (256/128/64/16 KiB at 1). */
  layerScale?: number;
  seed?: number;
  cancelRate?: number;
  /** Per-call watchdog: a PullImage that has not settled by then is a deadlock. */
  watchdogMs?: number;
  log?: (line: string) => void;
}

export interface SoakResult {
  seed: number;
  pulls: number;
  clients: number;
  images: number;
  completed: number;
  cancelled: number;
  failed: { image: string; error: string }[];
  removes: number;
  wallMs: number;
  pullsPerSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
  registry: {
    blobDigests: number;
    fullBlobGets: number;
    rangeBlobGets: number;
    /** Digests answered with 200 more than once (allowed only after cancelled pulls). */
    refetchedDigests: string[];
    /** Whole-blob GETs beyond the first per digest. */
    extraFullGets: number;
    /** Digests whose served bytes exceed size + slack. */
    overDownloaded: string[];
    blobBytesServed: number;
    uniqueBlobBytes: number;
  };
  rssBytes: { afterWarmup: number; end: number; ratio: number };
  verifyClean: boolean;
  serveExit: { code: number | null; signal: string | null };
  problems: string[];
}

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Generates `n` images: 3 layers from a pool of shared layers plus one of their own. */
async function makeImages(dir: string, n: number, scale: number): Promise<GeneratedImage[]> {
  const pool = Math.max(4, Math.ceil(n * 0.6));
  const out: GeneratedImage[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await generateImage(join(dir, `img${i}`), {
        name: `soak-${i}`,
        layers: [
          { size: 256 * KiB * scale, seed: `soak-pool-${i % pool}` },
          { size: 128 * KiB * scale, seed: `soak-pool-${(i * 7 + 3) % pool}-b` },
          { size: 64 * KiB * scale, seed: `soak-pool-${(i * 3 + 1) % pool}-c` },
          { size: 16 * KiB * scale + i },
        ],
      }),
    );
  }
  return out;
}

/** Runs the soak; never throws for a failed check (see `problems`), only when it cannot run. */
export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log ?? ((l: string) => void process.stderr.write(`[soak] ${l}\n`));
  const seed = opts.seed ?? Date.now() % 2 ** 31;
  const cancelRate = opts.cancelRate ?? 0.15;
  const watchdogMs = opts.watchdogMs ?? 60_000;
  let x = seed | 0 || 1;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  log(`seed=${seed} pulls=${opts.pulls} clients=${opts.clients} images=${opts.images}`);
  const work = await makeTempDir('soak-');
  let reg: StartedRegistry | undefined;
  let serve: TrackedProcess | undefined;
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    const regP = startRegistry({ mode: 'plain' });
    const images = await makeImages(join(work, 'images'), opts.images, opts.layerScale ?? 1);
    reg = await regP;
    for (let i = 0; i < images.length; i++) await skopeoPush(images[i]!, reg, `soak${i}:1`);
    const names = images.map((_, i) => `${reg!.host}/soak${i}:1`);
    const sizes = new Map<string, number>();
    for (const img of images) {
      for (const m of img.manifests) {
        sizes.set(m.config.digest, m.config.size);
        for (const l of m.layers) sizes.set(l.digest, l.size);
      }
    }
    const pushedLog = (await reg.accessLog()).length;

    const root = join(work, 'root');
    const sock = join(work, 'run', 'kimg.sock');
    serve = spawnTracked(
      'kimg-serve-soak',
      process.execPath,
      [CLI, 'serve', '--listen', `unix://${sock}`, '--root', root, '--plain-http', reg.host],
      { stderrFile: join(work, 'serve.err'), stdoutFile: join(work, 'serve.out') },
    );
    await waitFor(
      'kimg serve socket',
      async () => ((await fsp.stat(sock).catch(() => undefined))?.isSocket() ? true : undefined),
      { watch: serve, timeoutMs: 20_000 },
    );

    // The job list, seeded: image, whether (and when) the client cancels, whether it removes after.
    const jobs = Array.from({ length: opts.pulls }, () => ({
      image: names[Math.floor(rnd() * names.length)]!,
      cancelAfterMs: rnd() < cancelRate ? Math.floor(rnd() * 40) : undefined,
      removeAfter: rnd() < 0.2,
    }));
    const warmupAt = Math.max(1, Math.floor(opts.pulls * 0.2));
    const latencies: number[] = [];
    const failed: { image: string; error: string }[] = [];
    let done = 0;
    let cancelled = 0;
    let removes = 0;
    let rssWarm = 0;
    let next = 0;
    const problems: string[] = [];
    const t0 = Date.now();
    const client = async (): Promise<void> => {
      const cri = new CriImageService({ endpoint: `unix://${sock}` });
      try {
        while (next < jobs.length) {
          const job = jobs[next++]!;
          const ac = new AbortController();
          const timer =
            job.cancelAfterMs !== undefined ? setTimeout(() => ac.abort(), job.cancelAfterMs) : undefined;
          let watchdog: NodeJS.Timeout | undefined;
          const started = performance.now();
          try {
            await Promise.race([
              cri.pullImage({ image: job.image }, undefined, undefined, { signal: ac.signal }),
              new Promise((_, reject) => {
                watchdog = setTimeout(
                  () =>
                    reject(new Error(`deadlock: PullImage ${job.image} unsettled after ${watchdogMs} ms`)),
                  watchdogMs,
                );
              }),
            ]);
            latencies.push(performance.now() - started);
            if (job.removeAfter) {
              await cri.removeImage({ image: job.image });
              removes++;
            }
          } catch (e) {
            const msg = e instanceof Error ? e.message : String(e);
            if (msg.startsWith('deadlock')) problems.push(msg);
            if (ac.signal.aborted) cancelled++;
            else failed.push({ image: job.image, error: msg });
          } finally {
            clearTimeout(timer);
            clearTimeout(watchdog);
          }
          done++;
          if (done === warmupAt) rssWarm = rss(serve!.pid);
        }
      } finally {
        cri.close();
      }
    };
    await Promise.all(Array.from({ length: opts.clients }, () => client()));
    const wallMs = Date.now() - t0;
    // let cancelled work that serve kept running (shared downloads) settle before measuring
    await new Promise((r) => setTimeout(r, 500));
    const rssEnd = rss(serve.pid);
    process.kill(serve.pid, 'SIGTERM');
    const exit = await serve.exited;
    serve = undefined;
    const verify = await runCommand(process.execPath, [CLI, 'store', 'verify', '--root', root], {
      allowFailure: true,
    });
    const verifyClean = verify.code === 0 && /no problems/.test(verify.stdout);

    // Registry side: blob GETs since the pushes.
    const access = (await reg.accessLog()).slice(pushedLog);
    const perDigest = new Map<string, { full: number; range: number; bytes: number }>();
    for (const a of access) {
      const m = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(a.path);
      if (!m || a.method !== 'GET') continue;
      const e = perDigest.get(m[1]!) ?? { full: 0, range: 0, bytes: 0 };
      if (a.status === 200) e.full++;
      else if (a.status === 206) e.range++;
      e.bytes += a.bytes ?? 0;
      perDigest.set(m[1]!, e);
    }
    const slack = 1024 * KiB + 64 * KiB; // what a cancelled download may have held unwritten
    const refetched = [...perDigest].filter(([, e]) => e.full > 1).map(([d]) => d);
    const over = [...perDigest].filter(([d, e]) => e.bytes > (sizes.get(d) ?? 0) + slack).map(([d]) => d);
    latencies.sort((a, b) => a - b);
    const result: SoakResult = {
      seed,
      pulls: opts.pulls,
      clients: opts.clients,
      images: opts.images,
      completed: latencies.length,
      cancelled,
      failed,
      removes,
      wallMs,
      pullsPerSecond: Number((latencies.length / (wallMs / 1000)).toFixed(2)),
      latencyMs: {
        p50: Math.round(percentile(latencies, 50)),
        p99: Math.round(percentile(latencies, 99)),
        max: Math.round(latencies.at(-1) ?? 0),
      },
      registry: {
        blobDigests: perDigest.size,
        fullBlobGets: [...perDigest.values()].reduce((n, e) => n + e.full, 0),
        rangeBlobGets: [...perDigest.values()].reduce((n, e) => n + e.range, 0),
        refetchedDigests: refetched,
        extraFullGets: [...perDigest.values()].reduce((n, e) => n + Math.max(0, e.full - 1), 0),
        overDownloaded: over,
        blobBytesServed: [...perDigest.values()].reduce((n, e) => n + e.bytes, 0),
        uniqueBlobBytes: [...sizes.values()].reduce((n, s) => n + s, 0),
      },
      rssBytes: {
        afterWarmup: rssWarm,
        end: rssEnd,
        ratio: Number((rssEnd / Math.max(1, rssWarm)).toFixed(3)),
      },
      verifyClean,
      serveExit: { code: exit.code, signal: exit.signal },
      problems,
    };
    if (failed.length)
      problems.push(
        `${failed.length} pulls failed: ${failed
          .slice(0, 3)
          .map((f) => f.error)
          .join('; ')}`,
      );
    // A blob is fetched once per digest, however many clients pull it at once. The one exception is
    // a download a client cancelled: kimg serve drops it with the RPC (as containerd does), keeping the
    // bytes already written for a `Range` resume — but a small blob never left the 1 MiB write buffer,
    // so its next download starts over. So: extra whole fetches ≤ cancelled pulls, and none without.
    const extraFull = [...perDigest.values()].reduce((n, e) => n + Math.max(0, e.full - 1), 0);
    if (extraFull > cancelled)
      problems.push(
        `${extraFull} extra whole blob fetches for ${cancelled} cancelled pulls: ${refetched.join(', ')}`,
      );
    if (over.length) problems.push(`blobs downloaded more than once over: ${over.join(', ')}`);
    if (Math.abs(result.rssBytes.ratio - 1) > 0.2)
      problems.push(
        `kimg serve RSS ${rssWarm} after warm-up → ${rssEnd} at the end (ratio ${result.rssBytes.ratio})`,
      );
    if (!verifyClean) problems.push(`kimg store verify: ${verify.stdout}${verify.stderr}`);
    if (exit.code !== 0) problems.push(`kimg serve exited ${JSON.stringify(exit)} on SIGTERM`);
    if (latencies.length + cancelled + failed.length !== opts.pulls)
      problems.push('some pulls never settled');
    log(
      `${result.registry.uniqueBlobBytes} bytes of unique blobs; ${result.completed} pulls completed, ${cancelled} cancelled, ${failed.length} failed, ${removes} removes in ${wallMs} ms: ` +
        `${result.pullsPerSecond} pulls/s, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms; ` +
        `registry: ${result.registry.fullBlobGets} full + ${result.registry.rangeBlobGets} range blob GETs for ${perDigest.size} digests; ` +
        `RSS ${(rssWarm / 2 ** 20).toFixed(1)} → ${(rssEnd / 2 ** 20).toFixed(1)} MiB; verify ${verifyClean ? 'clean' : 'NOT clean'}`,
    );
    for (const p of problems) log(`PROBLEM: ${p}`);
    return result;
  } finally {
    clearInterval(keepAlive);
    if (serve) await killProcess(serve);
    await reg?.stop();
    await removeTempDir(work);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pulls: { type: 'string', default: '200' },
      clients: { type: 'string', default: '16' },
      images: { type: 'string', default: '20' },
      'layer-scale': { type: 'string', default: '4' },
      seed: { type: 'string' },
      'cancel-rate': { type: 'string', default: '0.15' },
      out: { type: 'string' },
    },
  });
  const r = await runSoak({
    pulls: Number(values.pulls),
    clients: Number(values.clients),
    images: Number(values.images),
    layerScale: Number(values['layer-scale']),
    ...(values.seed !== undefined ? { seed: Number(values.seed) } : {}),
    cancelRate: Number(values['cancel-rate']),
  });
  if (values.out) await fsp.writeFile(values.out, JSON.stringify(r, null, 2) + '\n');
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  process.exitCode = r.problems.length ? 1 : 0;
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  main().catch((e: unknown) => {
    process.stderr.write(`soak could not run: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 2;
  });
}
