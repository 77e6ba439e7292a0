/**
 * CRI PullImage: `kimg serve` against containerd's CRI plugin, on the same machine, registry and images,
 * through the same client (kimg's `CriImageService`, what the kubelet's cri-client does).
 *
 * 1. **Warm PullImage of a present image** over a warm channel (the kubelet's `Always` policy on an
 *    image already on the node: one manifest round trip, nothing downloaded). Per runtime: one pull to
 *    make the image present, then `--warm-runs` timed PullImage calls, in-process, hrtime around the
 *    RPC. Prints min / median / max ms and the kimg / containerd median ratio.
 * 2. **PullImage of the 1 GiB image** (`big`: 8 x 128 MiB random, bench/lib/images.ts), `--runs` timed
 *    runs per runtime after one warm-up, each from scratch: kimg — a fresh `kimg serve` on an empty
 *    root; containerd — RemoveImage, then the k8s.io namespace's images and content removed with
 *    `ctr ... rm --sync` until no blob file is left. The RPC is timed from the client; both daemons'
 *    CPU comes from /proc. containerd also unpacks into its snapshotter inside PullImage (kimg does
 *    not unpack: kimg is an image store, not a container runtime); the table says so.
 *
 * Options: --runs N (3) · --warm-runs N (20) · --no-big · --keep-images DIR (cache the generated
 * layouts, shared with `npm run bench`) · --out FILE (JSON). Nothing is asserted; exit 1 when a
 * runtime failed, 2 when the bench could not run. Everything started is killed by PID at the end.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ContainerdClient } from '../src/containerd/index.js';
import { CriImageService } from '../src/cri/index.js';
import { requireBinary } from '../test/helpers/components.js';
import { startContainerd, type StartedContainerd } from '../test/helpers/containerd.js';
import { killProcess, type TrackedProcess } from '../test/helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../test/helpers/registry.js';
import { skopeoPush } from '../test/helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../test/helpers/tmp.js';
import { blobBytesOnly, ensureImage, mainImageSpec } from './lib/images.js';
import { initClockTicks, processCpuS } from './lib/measure.js';
import { containerdClean, startKimgServe, timed } from './lib/serve.js';
import { median, minMedianMax } from './lib/stats.js';

function progress(msg: string): void {
  process.stderr.write(`[bench:cri] ${msg}\n`);
}

interface Series {
  runtime: 'kimg' | 'containerd';
  samplesMs: number[];
  daemonCpuS: number[];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      'warm-runs': { type: 'string', default: '20' },
      'no-big': { type: 'boolean', default: false },
      'keep-images': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const runs = Number(values.runs);
  const warmRuns = Number(values['warm-runs']);
  if (!(runs >= 1 && warmRuns >= 1)) {
    process.stderr.write('--runs and --warm-runs must be positive integers\n');
    return 2;
  }
  for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
  await initClockTicks();
  const work = await makeTempDir('bench-cri-');
  const cacheDir = values['keep-images'] ?? join(work, 'images');
  await mkdir(cacheDir, { recursive: true });
  let reg: StartedRegistry | undefined;
  let ctrd: StartedContainerd | undefined;
  let ctrdContent: ContainerdClient | undefined;
  const procs: TrackedProcess[] = [];
  const clients: CriImageService[] = [];
  let failed = false;
  const result: Record<string, unknown> = { date: new Date().toISOString() };
  try {
    progress('generating images (cached with --keep-images)');
    const small = (await ensureImage(cacheDir, mainImageSpec('small'))).image;
    const big = values['no-big']
      ? undefined
      : (await ensureImage(cacheDir, mainImageSpec('big'), () => progress('generating big (1 GiB)'))).image;
    [reg, ctrd] = await Promise.all([startRegistry({ mode: 'plain' }), startContainerd()]);
    await ctrd.addPlainHttpRegistry(reg.host);
    progress('pushing');
    await skopeoPush(small, reg, 'small:1');
    if (big) await skopeoPush(big, reg, 'big:1');
    const host = reg.host;
    const ctrdClient = new CriImageService({ endpoint: ctrd.address, timeoutMs: 60_000 });
    clients.push(ctrdClient);
    ctrdContent = new ContainerdClient({ address: ctrd.socket });

    // --- 1. warm PullImage of a present image -------------------------------------------------------
    const smallRef = `${host}/small:1`;
    const kimg1 = await startKimgServe(work, 0, host, { timeoutMs: 5000 });
    procs.push(kimg1.proc);
    clients.push(kimg1.client);
    const warm: Series[] = [];
    for (const [runtime, client, pid] of [
      ['kimg', kimg1.client, kimg1.proc.pid],
      ['containerd', ctrdClient, ctrd.pid],
    ] as const) {
      await client.pullImage({ image: smallRef }, undefined); // present from now on
      const s: Series = { runtime, samplesMs: [], daemonCpuS: [] };
      for (let i = 0; i < warmRuns; i++) {
        const cpu0 = processCpuS(pid);
        s.samplesMs.push((await timed(() => client.pullImage({ image: smallRef }, undefined))).ms);
        s.daemonCpuS.push(processCpuS(pid) - cpu0);
      }
      warm.push(s);
      progress(`warm ${runtime}: median ${median(s.samplesMs).toFixed(1)} ms`);
    }
    const [wk, wc] = warm as [Series, Series];
    const warmRatio = median(wk.samplesMs) / median(wc.samplesMs);
    result.warm = {
      runs: warmRuns,
      kimg: minMedianMax(wk.samplesMs),
      containerd: minMedianMax(wc.samplesMs),
      ratio: warmRatio,
    };
    await killProcess(kimg1.proc);

    // --- 2. PullImage of the 1 GiB image -------------------------------------------------------------
    let bigSeries: Series[] | undefined;
    if (big) {
      const bigRef = `${host}/big:1`;
      const bytes = blobBytesOnly(big);
      bigSeries = [
        { runtime: 'kimg', samplesMs: [], daemonCpuS: [] },
        { runtime: 'containerd', samplesMs: [], daemonCpuS: [] },
      ];
      for (let i = 0; i <= runs; i++) {
        const label = i === 0 ? 'warm-up' : `run ${i}/${runs}`;
        // kimg: a fresh server on an empty root
        const k = await startKimgServe(work, i + 1, host, { timeoutMs: 5000 });
        procs.push(k.proc);
        const cpu0 = processCpuS(k.proc.pid);
        const ms = (await timed(() => k.client.pullImage({ image: bigRef }, undefined))).ms;
        const cpu = processCpuS(k.proc.pid) - cpu0;
        k.client.close();
        await killProcess(k.proc);
        await rm(k.root, { recursive: true, force: true });
        // containerd: nothing of the image left
        await containerdClean(ctrd, ctrdContent!);
        const ccpu0 = processCpuS(ctrd.pid);
        const cms = (await timed(() => ctrdClient.pullImage({ image: bigRef }, undefined))).ms;
        const ccpu = processCpuS(ctrd.pid) - ccpu0;
        await ctrdClient.removeImage({ image: bigRef });
        await containerdClean(ctrd, ctrdContent!);
        progress(`big ${label}: kimg ${(ms / 1000).toFixed(2)} s, containerd ${(cms / 1000).toFixed(2)} s`);
        if (i === 0) continue;
        bigSeries[0]!.samplesMs.push(ms);
        bigSeries[0]!.daemonCpuS.push(cpu);
        bigSeries[1]!.samplesMs.push(cms);
        bigSeries[1]!.daemonCpuS.push(ccpu);
      }
      const [bk, bc] = bigSeries as [Series, Series];
      result.big = {
        runs,
        bytes,
        kimg: { ...minMedianMax(bk.samplesMs), cpuS: median(bk.daemonCpuS) },
        containerd: { ...minMedianMax(bc.samplesMs), cpuS: median(bc.daemonCpuS) },
        ratio: median(bk.samplesMs) / median(bc.samplesMs),
      };
    }

    // --- report --------------------------------------------------------------------------------------
    const out: string[] = [];
    out.push('## CRI PullImage: kimg serve vs containerd (same client, registry and images)', '');
    out.push(`### Already-present image (small:1), warm channel, ${warmRuns} runs`, '');
    out.push(
      '| runtime | min ms | median ms | max ms | daemon CPU ms (median) |',
      '|---|---:|---:|---:|---:|',
    );
    for (const s of warm) {
      const t = minMedianMax(s.samplesMs);
      out.push(
        `| ${s.runtime} | ${t.min.toFixed(1)} | **${t.median.toFixed(1)}** | ${t.max.toFixed(1)} | ${(median(s.daemonCpuS) * 1000).toFixed(0)} |`,
      );
    }
    out.push('', `kimg / containerd (median): **${warmRatio.toFixed(2)}**`, '');
    if (big && bigSeries) {
      const bytes = blobBytesOnly(big);
      out.push(
        `### 1 GiB image (big:1, ${(bytes / 1e6).toFixed(0)} MB compressed), from scratch, ${runs} runs`,
        '',
      );
      out.push(
        '| runtime | min s | median s | max s | MB/s | daemon CPU s (median) |',
        '|---|---:|---:|---:|---:|---:|',
      );
      for (const s of bigSeries) {
        const t = minMedianMax(s.samplesMs);
        const label =
          s.runtime === 'containerd' ? 'containerd (fetch + unpack)' : 'kimg serve (fetch + verify + store)';
        out.push(
          `| ${label} | ${(t.min / 1000).toFixed(2)} | **${(t.median / 1000).toFixed(2)}** | ${(t.max / 1000).toFixed(2)} | ${(bytes / 1e6 / (t.median / 1000)).toFixed(0)} | ${median(s.daemonCpuS).toFixed(1)} |`,
        );
      }
      out.push(
        '',
        `kimg / containerd (median): **${(median(bigSeries[0]!.samplesMs) / median(bigSeries[1]!.samplesMs)).toFixed(2)}**`,
        '',
      );
    }
    process.stdout.write(out.join('\n') + '\n');
    if (values.out) {
      await mkdir(dirname(values.out), { recursive: true });
      await writeFile(values.out, JSON.stringify(result, null, 2));
    }
  } catch (e) {
    failed = true;
    process.stderr.write(`[bench:cri] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  } finally {
    for (const c of clients) c.close();
    for (const p of procs) await killProcess(p);
    ctrdContent?.close();
    await ctrd?.stop();
    await reg?.stop();
    await removeTempDir(work);
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
