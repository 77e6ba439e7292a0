/**
 * Image GC end to end: a 64 MiB tmpfs created by the test (`mount -t tmpfs`, unmounted in
 * after()), a store on it filled with real images pulled from a plain docker-registry until the
 * filesystem's usage (statfs) reaches the high threshold (60 %), then image GC: usage ends under the low
 * threshold (40 %), the in-use and pinned images stay, the least recently used images go first, and
 * `store.verify()` is clean. Then the same through `kimg gc` (dry run first, then for real).
 *
 * Without the right to mount (not root) the library test falls back to a simulated usage source
 * (64 MiB minus the store's bytes); under CI=true a failed mount fails the test instead.
 * Needs docker-registry and skopeo (the test fails, never skips, when they are missing).
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import type { CliContext } from '../../src/cli/context.js';
import {
  FileImageGCStateStore,
  ImageGCManager,
  LocalImageService,
  MemoryImageGCEventRecorder,
  StatfsUsageSource,
  imageFsUsage,
  storeUsageHints,
  type FsUsageSource,
  type ImageFsStats,
} from '../../src/manager/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { systemClock } from '../../src/clock/index.js';
import { pullImage } from '../../src/pull/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { requireBinary } from '../helpers/components.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { runCommand } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { Sink } from '../helpers/output.js';

const MIB = 1024 * 1024;
const FS_BYTES = 64 * MIB;
const HIGH = 60;
const LOW = 40;
const FILLERS = 14;
const MIN = 60_000;

function usagePercent(s: ImageFsStats): number {
  return imageFsUsage(s.capacityBytes, s.availableBytes, LOW).usagePercent;
}

describe('image GC on a small filesystem', () => {
  let work = '';
  let fsDir = '';
  let mounted = false;
  let reg: StartedRegistry | undefined;
  let client: RegistryClient | undefined;
  let store: Store | undefined;
  let usage: FsUsageSource;
  const images = new Map<string, GeneratedImage>();
  const name = (repo: string): string => `${reg!.host}/${repo}:1`;

  /** Pulls fillers (in order, skipping present ones) until usage reaches the high threshold. */
  async function fillPastHigh(s: Store): Promise<string[]> {
    const pulled: string[] = [];
    for (let i = 0; i < FILLERS; i++) {
      if (usagePercent(await usage.imageFsStats()) >= HIGH) return pulled;
      const n = name(`filler-${i}`);
      if (await s.images.get({ name: n })) continue;
      await pullImage(n, { store: s, registry: client! });
      pulled.push(n);
    }
    const final = usagePercent(await usage.imageFsStats());
    assert.ok(final >= HIGH, `only reached ${final}% with ${FILLERS} fillers`);
    return pulled;
  }

  before(async () => {
    requireBinary('skopeo');
    work = await makeTempDir('imagegc-');
    fsDir = join(work, 'fs');
    await mkdir(fsDir);
    const m = await runCommand('mount', ['-t', 'tmpfs', '-o', `size=${FS_BYTES / MIB}m`, 'tmpfs', fsDir], {
      allowFailure: true,
    });
    mounted = m.code === 0;
    if (!mounted && process.env.CI === 'true') {
      throw new Error(`cannot mount a tmpfs at ${fsDir} (CI runs as root and must): ${m.stderr.trim()}`);
    }
    const started = startRegistry({ mode: 'plain' });
    const specs: [string, number][] = [
      ['pause', 100_000],
      ['app', 3 * MIB],
      ...Array.from({ length: FILLERS }, (_, i): [string, number] => [`filler-${i}`, 4 * MIB]),
    ];
    for (const [repo, size] of specs) {
      images.set(
        repo,
        await generateImage(join(work, `gen-${repo}`), {
          name: repo,
          layers: [{ size }, { size: 2000, kind: 'text' }],
        }),
      );
    }
    reg = await started;
    for (const [repo] of specs) await skopeoPush(images.get(repo)!, reg, `${repo}:1`);
    client = new RegistryClient({ plainHttp: [reg.host] });
    const root = join(fsDir, 'root');
    store = await openStore({ root });
    usage = mounted
      ? new StatfsUsageSource(root)
      : {
          // Simulated: the store's bytes on a 64 MiB filesystem.
          imageFsStats: async () => {
            const df = await store!.df();
            return { capacityBytes: FS_BYTES, availableBytes: FS_BYTES - df.blobs.bytes - df.ingests.bytes };
          },
        };
  });

  after(async () => {
    await store?.close().catch(() => undefined);
    await client?.close().catch(() => undefined);
    await reg?.stop();
    if (mounted) await runCommand('umount', [fsDir], { allowFailure: true });
    if (work) await removeTempDir(work);
  });

  test('library: usage over the high threshold ends under the low one; in-use and pinned images stay', async () => {
    const s = store!;
    if (!mounted) process.stderr.write('# image-gc: no tmpfs (not root?): using simulated usage\n');
    await pullImage(name('pause'), { store: s, registry: client! });
    await pullImage(name('app'), { store: s, registry: client! });
    const fillers = await fillPastHigh(s);
    const before = await usage.imageFsStats();
    assert.ok(usagePercent(before) >= HIGH);

    const recorder = new MemoryImageGCEventRecorder();
    let swept = 0;
    const manager = new ImageGCManager({
      service: new LocalImageService({ store: s, registry: client! }),
      usage,
      policy: { highThresholdPercent: HIGH, lowThresholdPercent: LOW, minAgeMs: 2 * MIN, maxAgeMs: 0 },
      // Ten minutes on: every image is past the 2 min minimum age (first detection = its pull).
      clock: { ...systemClock, now: () => Date.now() + 10 * MIN },
      hints: storeUsageHints(s),
      state: new FileImageGCStateStore(s.root),
      sweep: async () => {
        const r = await s.gc();
        swept += r.bytesFreed;
        return r.bytesFreed;
      },
      pinnedImages: [name('pause')],
      recorder,
    });

    const dry = await manager.plan({ inUse: [name('app')] });
    assert.ok(
      dry.decisions.some((d) => d.action === 'delete'),
      'the dry run removes something',
    );
    assert.equal((await s.images.list()).length, fillers.length + 2, 'the dry run removed nothing');

    const r = await manager.garbageCollect({ inUse: [name('app')] });
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(recorder.events, []);
    assert.equal(r.failed.length, 0);
    const after = await usage.imageFsStats();
    assert.ok(usagePercent(after) < LOW, `usage after GC is ${usagePercent(after)}%, not under ${LOW}%`);
    assert.ok(swept > 0 && r.bytesReclaimed === swept, 'blobs were swept');
    // Least recently used first: the removed images are the first fillers pulled, in order.
    const removed = r.removed.map((x) => x.image.names.find((n) => n.endsWith(':1')));
    assert.deepEqual(removed, fillers.slice(0, removed.length));
    assert.ok(await s.images.get({ name: name('app') }), 'the in-use image stays');
    assert.ok(await s.images.get({ name: name('pause') }), 'the pinned image stays');
    const decisions = new Map(r.decisions.map((d) => [d.image.names.find((n) => n.endsWith(':1')), d]));
    assert.equal(decisions.get(name('app'))?.reason, 'in-use');
    assert.equal(decisions.get(name('pause'))?.reason, 'pinned');
    const v = await s.verify();
    assert.equal(v.ok, true, JSON.stringify(v.problems));
    // The removed images' blobs are gone, the kept ones' are there.
    for (const n of removed) {
      const g = images.get(n!.split('/')[1]!.split(':')[0]!)!;
      assert.equal(await s.content.hasBlob(g.manifests[0]!.layers[0]!.digest), false);
    }
    assert.equal(await s.content.hasBlob(images.get('app')!.manifests[0]!.layers[0]!.digest), true);
  });

  test('kimg gc: dry run, then the real run frees space; per-image reasons in the output', async () => {
    const s = store!;
    await fillPastHigh(s);
    const config = join(work, 'kubelet.yaml');
    await writeFile(
      config,
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        `imageGCHighThresholdPercent: ${HIGH}`,
        `imageGCLowThresholdPercent: ${LOW}`,
        'imageMinimumGCAge: 1s',
        '',
      ].join('\n'),
    );
    await new Promise((r) => setTimeout(r, 1100)); // past the 1 s minimum age
    const kimg = async (...args: string[]) => {
      const stdout = new Sink();
      const stderr = new Sink();
      const ctx: CliContext = { stdout, stderr, env: {}, exitStatus: 0 };
      const status = await runCli(['node', 'kimg', ...args], ctx);
      return { status, stdout: stdout.text, stderr: stderr.text };
    };
    const common = ['--root', s.root, '--config', config, '--in-use', name('app'), '--pinned', name('pause')];
    const countBefore = (await s.images.list()).length;

    const dry = await kimg('gc', '--dry-run', '-o', 'json', ...common);
    assert.equal(dry.status, 0, dry.stderr);
    const doc = JSON.parse(dry.stdout) as {
      dryRun: boolean;
      wouldFree: number;
      images: { names: string[]; action: string; reason: string; rank: number | null }[];
    };
    assert.equal(doc.dryRun, true);
    assert.equal((await s.images.list()).length, countBefore, 'a dry run removes nothing');
    const byName = (n: string) => doc.images.find((i) => i.names.includes(n));
    assert.equal(byName(name('app'))?.reason, 'in-use');
    assert.equal(byName(name('pause'))?.reason, 'pinned');
    if (mounted) {
      assert.ok(doc.wouldFree > 0);
      assert.ok(doc.images.some((i) => i.action === 'delete' && i.reason === 'space' && i.rank === 1));
    }

    const real = await kimg('gc', ...common);
    assert.match(real.stdout, /^IMAGE\s+HANDLER\s+IMAGE ID\s+SIZE\s+LAST USED\s+ACTION\s+REASON\s+RANK$/m);
    assert.match(
      real.stdout,
      new RegExp(`^${name('app').replace(/[.:]/g, '\\$&')}\\s.*\\sKEEP\\s+in-use\\s+-$`, 'm'),
    );
    assert.match(real.stdout, /^removed \d+ image\(s\), \d+ bytes/m);
    if (mounted) {
      assert.equal(real.status, 0, real.stderr);
      assert.match(real.stdout, /\sDELETE\s+space\s+1$/m);
      const now = await usage.imageFsStats();
      assert.ok(usagePercent(now) < LOW, `usage after kimg gc is ${usagePercent(now)}%`);
      assert.ok((await s.images.list()).length < countBefore);
    }
    assert.ok(await s.images.get({ name: name('app') }));
    assert.ok(await s.images.get({ name: name('pause') }));
    const verify = await kimg('store', 'verify', '--root', s.root);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  });
});
