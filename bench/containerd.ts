/**
 * kimg → containerd vs containerd's own CRI PullImage, on the same machine, registry, images and
 * containerd (CRI plugin on, overlayfs or native snapshotter).
 *
 * 1. **PullImage from scratch** of `big` (8 x 128 MiB random, 1 GiB) and `many` (32 x 256 KiB), per
 *    run and interleaved:
 *    - `kimg serve --containerd SOCK` (a fresh process per run), PullImage through kimg's CRI client:
 *      kimg fetches and commits into containerd's content store and unpacks into the snapshotter while
 *      later layers download (on containerd's host as root: extracted by kimg's helper process, local
 *      apply); its peak RSS is the process's `VmHWM`, its extraction helper's reported apart;
 *    - containerd's CRI PullImage (fetch + unpack) through the same client;
 *    - in the bench process, `pullIntoContainerd` without unpack, then `ctr snapshots unpack` (containerd's
 *      client-side layer applier, the work CRI's CreateContainer falls back to when the snapshots are
 *      missing; includes ctr's start, ~0.1 s): the figures that decide whether kimg unpacks during
 *      the pull (docs/design/containerd-backend.md).
 *    Between runs every image, blob and snapshot of the namespace is removed (`ctr ... rm --sync`).
 * 2. **Already-present PullImage**: `--warm-runs` PullImage calls of a present image over a warm
 *    channel, kimg serve --containerd vs containerd, after as many uncounted calls (a serving process
 *    is long-running: its code is compiled by then, as containerd's is from the start); min / median /
 *    max ms.
 *
 * Options: --runs N (3) · --warm-runs N (50) · --images big,many · --keep-images DIR · --out FILE ·
 * --local-apply (kimg serve with `kimg.containerd.localApply: true`).
 * Nothing is asserted; exit 1 when a tool failed, 2 when the bench could not run.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ContainerdClient, pullIntoContainerd } from '../src/containerd/index.js';
import { CriImageService } from '../src/cri/index.js';
import { RegistryClient } from '../src/registry/index.js';
import { requireBinary } from '../test/helpers/components.js';
import { startContainerd, type StartedContainerd } from '../test/helpers/containerd.js';
import type { GeneratedImage } from '../test/helpers/images.js';
import { killProcess, type TrackedProcess } from '../test/helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../test/helpers/registry.js';
import { skopeoPush } from '../test/helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../test/helpers/tmp.js';
import { blobBytesOnly, ensureImage, mainImageSpec, type MainImage } from './lib/images.js';
import { initClockTicks, peakRssKiB, processCpuS } from './lib/measure.js';
import { containerdClean, startKimgServe, timed } from './lib/serve.js';
import { median, minMedianMax } from './lib/stats.js';

const K8S_NS = 'k8s.io';

type Tool = 'kimg-serve' | 'containerd' | 'kimg-fetch-only' | 'then-unpack' | 'fetch+sequential-unpack';

/**
 * Peak RSS (VmHWM, KiB) summed over `pid`'s child processes: local apply's extraction helper
 * (src/containerd `local-apply.ts`), alive until it has been idle for 10 s.
 */
function childrenPeakRssKiB(pid: number): number {
  let sum = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ');
    for (const c of children.filter((x) => x !== '')) sum += peakRssKiB(Number(c));
  }
  return sum;
}

function progress(msg: string): void {
  process.stderr.write(`[bench:containerd] ${msg}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      'warm-runs': { type: 'string', default: '50' },
      images: { type: 'string', default: 'big,many' },
      'keep-images': { type: 'string' },
      out: { type: 'string' },
      'local-apply': { type: 'boolean', default: false },
    },
  });
  const runs = Number(values.runs);
  const warmRuns = Number(values['warm-runs']);
  const names = values.images.split(',').filter((x) => x !== '') as MainImage[];
  if (!(runs >= 1 && warmRuns >= 1)) {
    process.stderr.write('--runs and --warm-runs must be positive integers\n');
    return 2;
  }
  for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
  await initClockTicks();
  const work = await makeTempDir('bench-ctrd-');
  const cacheDir = values['keep-images'] ?? join(work, 'images');
  await mkdir(cacheDir, { recursive: true });
  let reg: StartedRegistry | undefined;
  let ctrd: StartedContainerd | undefined;
  let client: ContainerdClient | undefined;
  let registry: RegistryClient | undefined;
  const procs: TrackedProcess[] = [];
  const clients: CriImageService[] = [];
  let failed = false;
  const result: Record<string, unknown> = { date: new Date().toISOString() };
  try {
    progress('generating images (cached with --keep-images)');
    const images: [MainImage, GeneratedImage][] = [];
    for (const n of ['small' as MainImage, ...names])
      images.push([
        n,
        (await ensureImage(cacheDir, mainImageSpec(n), () => progress(`generating ${n}`))).image,
      ]);
    [reg, ctrd] = await Promise.all([startRegistry({ mode: 'plain' }), startContainerd()]);
    await ctrd.addPlainHttpRegistry(reg.host);
    progress(`pushing (snapshotter ${ctrd.snapshotter})`);
    for (const [n, img] of images) await skopeoPush(img, reg, `${n}:1`);
    const host = reg.host;
    const cri = new CriImageService({ endpoint: ctrd.address, timeoutMs: 600_000 });
    clients.push(cri);
    client = new ContainerdClient({ address: ctrd.socket });
    registry = new RegistryClient({ plainHttp: [host] });
    result.snapshotter = ctrd.snapshotter;
    // kimg serve's arguments: local apply is asked for through the configuration, as on a node.
    const serveArgs = ['--containerd', ctrd.socket];
    if (values['local-apply']) {
      const cfg = join(work, 'kimg-local-apply.yaml');
      await writeFile(
        cfg,
        `apiVersion: config.kimg.io/v1alpha1\nkind: KimgConfiguration\ncontainerd:\n  address: ${ctrd.socket}\n  localApply: true\n`,
      );
      serveArgs.push('--config', cfg);
    }
    result.localApply = values['local-apply'];

    // --- 1. from scratch ------------------------------------------------------------------------------
    const perImage: Record<
      string,
      Record<Tool, number[]> & { rssKiB: number[]; helperRssKiB: number[]; bytes: number }
    > = {};
    let n = 0;
    for (const [name, img] of images) {
      if (name === 'small') continue;
      const ref = `${host}/${name}:1`;
      const s = {
        'kimg-serve': [] as number[],
        containerd: [] as number[],
        'kimg-fetch-only': [] as number[],
        'then-unpack': [] as number[],
        'fetch+sequential-unpack': [] as number[],
        rssKiB: [] as number[],
        helperRssKiB: [] as number[],
        bytes: blobBytesOnly(img),
      };
      perImage[name] = s;
      for (let i = 0; i <= runs; i++) {
        const label = i === 0 ? 'warm-up' : `run ${i}/${runs}`;
        await containerdClean(ctrd, client);
        const k = await startKimgServe(work, n++, host, { args: serveArgs });
        procs.push(k.proc);
        const kt = await timed(() => k.client.pullImage({ image: ref }, undefined));
        const rss = peakRssKiB(k.proc.pid);
        const helperRss = childrenPeakRssKiB(k.proc.pid);
        k.client.close();
        await killProcess(k.proc);
        await rm(k.root, { recursive: true, force: true });
        await containerdClean(ctrd, client);
        const ct = await timed(() => cri.pullImage({ image: ref }, undefined));
        await cri.removeImage({ image: ref });
        await containerdClean(ctrd, client);
        // The alternative: fetch only, then the same layers unpacked in sequence.
        const ft = await timed(() =>
          pullIntoContainerd(ref, {
            client: client!,
            registry: registry!,
            unpack: false,
            snapshotter: ctrd!.snapshotter,
          }),
        );
        // What CreateContainer pays when the snapshots are missing: containerd applying the layers
        // one after the other (`ctr snapshots unpack`: Prepare, Diff.Apply, Commit per layer, as
        // `image.Unpack` does), run by `ctr`.
        const ut = await timed(() =>
          ctrd!.ctr(['snapshots', 'unpack', '--snapshotter', ctrd!.snapshotter, ft.value.manifestDigest], {
            namespace: K8S_NS,
          }),
        );
        progress(
          `${name} ${label}: kimg serve ${(kt.ms / 1000).toFixed(2)} s (RSS ${(rss / 1024).toFixed(0)} MiB, helper ${(helperRss / 1024).toFixed(0)} MiB), containerd ${(ct.ms / 1000).toFixed(2)} s, fetch-only ${(ft.ms / 1000).toFixed(2)} s + unpack ${(ut.ms / 1000).toFixed(2)} s`,
        );
        if (i === 0) continue;
        s['kimg-serve'].push(kt.ms);
        s.containerd.push(ct.ms);
        s['kimg-fetch-only'].push(ft.ms);
        s['then-unpack'].push(ut.ms);
        s['fetch+sequential-unpack'].push(ft.ms + ut.ms);
        s.rssKiB.push(rss);
        s.helperRssKiB.push(helperRss);
      }
    }
    await containerdClean(ctrd, client);

    // --- 2. already present ---------------------------------------------------------------------------
    const smallRef = `${host}/small:1`;
    const k = await startKimgServe(work, n++, host, { args: serveArgs });
    procs.push(k.proc);
    clients.push(k.client);
    const warm: Record<string, number[]> = { 'kimg-serve': [], containerd: [] };
    for (const [tool, c] of [
      ['kimg-serve', k.client],
      ['containerd', cri],
    ] as const) {
      for (let i = 0; i <= warmRuns; i++) await c.pullImage({ image: smallRef }, undefined);
      for (let i = 0; i < warmRuns; i++)
        warm[tool]!.push((await timed(() => c.pullImage({ image: smallRef }, undefined))).ms);
      progress(`already present ${tool}: median ${median(warm[tool]!).toFixed(1)} ms`);
    }
    const cpu = processCpuS(k.proc.pid);
    result.present = {
      runs: warmRuns,
      kimg: minMedianMax(warm['kimg-serve']!),
      containerd: minMedianMax(warm.containerd!),
      kimgCpuS: cpu,
    };

    // --- report ---------------------------------------------------------------------------------------
    const out: string[] = [];
    out.push(
      `## kimg → containerd vs containerd's CRI PullImage (snapshotter ${ctrd.snapshotter}${values['local-apply'] ? ', kimg with local apply' : ''}, ${runs} runs)`,
      '',
    );
    out.push(
      '| image | kimg serve --containerd (fetch + commit + unpack) s | containerd PullImage (fetch + unpack) s | ratio | kimg peak RSS MiB | its extraction helper peak RSS MiB | kimg fetch only s | + sequential unpack s | = s |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    const summary: Record<string, unknown> = {};
    for (const [name, s] of Object.entries(perImage)) {
      const m = (xs: number[]) => median(xs) / 1000;
      const ratio = median(s['kimg-serve']) / median(s.containerd);
      summary[name] = {
        bytes: s.bytes,
        kimgServe: minMedianMax(s['kimg-serve']),
        containerd: minMedianMax(s.containerd),
        ratio,
        kimgPeakRssKiB: Math.max(...s.rssKiB),
        helperPeakRssKiB: Math.max(...s.helperRssKiB),
        fetchOnly: minMedianMax(s['kimg-fetch-only']),
        thenUnpack: minMedianMax(s['then-unpack']),
        fetchThenUnpack: minMedianMax(s['fetch+sequential-unpack']),
      };
      out.push(
        `| ${name} (${(s.bytes / 1e6).toFixed(0)} MB) | **${m(s['kimg-serve']).toFixed(2)}** | ${m(s.containerd).toFixed(2)} | **${ratio.toFixed(2)}** | ${(Math.max(...s.rssKiB) / 1024).toFixed(0)} | ${(Math.max(...s.helperRssKiB) / 1024).toFixed(0)} | ${m(s['kimg-fetch-only']).toFixed(2)} | ${m(s['then-unpack']).toFixed(2)} | ${m(s['fetch+sequential-unpack']).toFixed(2)} |`,
      );
    }
    result.fromScratch = summary;
    const pk = minMedianMax(warm['kimg-serve']!);
    const pc = minMedianMax(warm.containerd!);
    out.push(
      '',
      `### Already-present PullImage (small:1), warm channel, ${warmRuns} runs after ${warmRuns + 1} uncounted`,
      '',
    );
    out.push('| runtime | min ms | median ms | max ms |', '|---|---:|---:|---:|');
    out.push(
      `| kimg serve --containerd | ${pk.min.toFixed(1)} | **${pk.median.toFixed(1)}** | ${pk.max.toFixed(1)} |`,
    );
    out.push(`| containerd | ${pc.min.toFixed(1)} | **${pc.median.toFixed(1)}** | ${pc.max.toFixed(1)} |`);
    process.stdout.write(out.join('\n') + '\n');
    if (values.out) {
      await mkdir(dirname(values.out), { recursive: true });
      await writeFile(values.out, JSON.stringify(result, null, 2));
    }
  } catch (e) {
    failed = true;
    process.stderr.write(
      `[bench:containerd] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
  } finally {
    for (const c of clients) c.close();
    for (const p of procs) await killProcess(p);
    client?.close();
    await registry?.close().catch(() => undefined);
    await ctrd?.stop();
    await reg?.stop();
    await removeTempDir(work);
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
