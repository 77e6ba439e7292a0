/**
 * Crash safety of the pull pipeline: `kimg pull` of a 64 MiB image (4 × 16 MiB random
 * layers) from a real registry, in a child process SIGKILLed at ≥ 20 seeded moments spread over the
 * pull: half at random times within the duration of a measured un-killed pull, half right after the
 * Nth `bytes` line of its JSON progress. After each kill, before anything reopens the store:
 * - every visible blob is re-hashed and matches its file name (an ingest is never visible);
 * - `index.json` and every image record parse;
 * - every image the child reported `committed` (and every one committed earlier) is present, with the
 *   same digest and all its blobs;
 * then the next pull completes (resuming the interrupted ingests with `Range`) and commits one more
 * small image, `kimg store verify` reports no problems, and the big image is removed again (record
 * delete + store GC) for the next round. At least one completing pull must report `blobsResumed > 0`.
 * Replay a failure with KIMG_CRASH_SEED=<seed>; KIMG_CRASH_KILLS sets the number of kills (default 22).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openStore, storePaths } from '../../src/store/index.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, runCommand, spawnTracked, waitFor, type TrackedProcess } from '../helpers/proc.js';
import { registryFetch, startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const SEED = process.env.KIMG_CRASH_SEED ? Number(process.env.KIMG_CRASH_SEED) : Date.now() % 2 ** 31;
const KILLS = Number(process.env.KIMG_CRASH_KILLS ?? 22);
/** Rounds at most: a round whose pull finished before its kill moment does not count as a kill. */
const ROUNDS = KILLS * 2;
const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const MiB = 1024 * 1024;

let work = '';
let reg: StartedRegistry | undefined;
let big: GeneratedImage;
let small: GeneratedImage;

before(async () => {
  work = await makeTempDir('pull-crash-');
  const started = startRegistry({ mode: 'plain' });
  [big, small] = await Promise.all([
    generateImage(join(work, 'big'), {
      name: 'big',
      layers: [{ size: 16 * MiB }, { size: 16 * MiB }, { size: 16 * MiB }, { size: 16 * MiB }],
    }),
    generateImage(join(work, 'small'), { name: 'small', layers: [{ size: 2048 }] }),
  ]);
  reg = await started;
  await Promise.all([skopeoPush(big, reg, 'big:1'), skopeoPush(small, reg, 'small:1')]);
  // Two tags per round for the small image (same manifest), so each round adds records: `k<N>` pulled
  // by the killed process (committed or not), `r<N>` by the completing pull (always committed).
  const manifest = await fsp.readFile(join(small.layoutDir, 'blobs', 'sha256', small.digest.slice(7)));
  for (let k = 0; k < ROUNDS; k++) {
    for (const tag of [`k${k}`, `r${k}`]) {
      const res = await registryFetch(reg, `/v2/small/manifests/${tag}`, {
        method: 'PUT',
        headers: { 'content-type': small.mediaType },
        body: manifest,
      });
      assert.equal(res.status, 201, `tagging small:${tag}: ${res.status}`);
    }
  }
});
after(async () => {
  await reg?.stop();
  if (work) await removeTempDir(work);
});

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

interface ProgressLine {
  type: string;
  name?: string;
  digest?: string;
}

function parseLines(text: string): ProgressLine[] {
  const out: ProgressLine[] = [];
  for (const line of text.split('\n')) {
    try {
      out.push(JSON.parse(line) as ProgressLine);
    } catch {
      // a line cut by the kill, or an empty one
    }
  }
  return out;
}

interface PullOutput {
  name: string;
  digest: string;
  stats: { blobsDownloaded: number; blobsReused: number; blobsResumed: number; bytesDownloaded: number };
}

test(`SIGKILL during a 64 MiB pull never leaves a bad blob or loses an image; the next pull resumes (seed ${SEED}, ${KILLS} kills)`, async () => {
  console.error(`[pull-crash] seed=${SEED} kills=${KILLS} (replay with KIMG_CRASH_SEED=${SEED})`);
  const r = reg!;
  let x = SEED | 0 || 1;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  const bigName = `${r.host}/big:1`;
  const cli = (args: string[]) => [CLI, ...args];
  const pullArgs = (root: string, ...images: string[]) =>
    cli(['pull', '--plain-http', r.host, '--root', root, '--progress', 'json', '-o', 'json', ...images]);

  // 1. One un-killed pull: its duration and its number of `bytes` lines bound the kill moments.
  const measureRoot = join(work, 'measure');
  const t0 = Date.now();
  const measured = await runCommand(process.execPath, pullArgs(measureRoot, bigName), { timeoutMs: 60_000 });
  const durationMs = Date.now() - t0;
  const bytesLines = parseLines(measured.stderr).filter((l) => l.type === 'bytes').length;
  const m = JSON.parse(measured.stdout) as PullOutput;
  assert.equal(m.digest, big.digest);
  assert.equal(m.stats.bytesDownloaded, big.blobBytes - big.size);
  console.error(`[pull-crash] un-killed pull: ${durationMs} ms, ${bytesLines} bytes lines`);
  await fsp.rm(measureRoot, { recursive: true, force: true });

  const root = join(work, 'root');
  const paths = storePaths(root);
  const blobDir = join(paths.blobs, 'sha256');
  /** name → digest of every image committed and not removed by the test since. */
  const committed = new Map<string, string>();
  let resumedPulls = 0;
  let kills = 0;
  const killMoments: string[] = [];

  for (let k = 0; k < ROUNDS && kills < KILLS; k++) {
    // 2. A pull of the big image and a new small tag, killed at a seeded moment.
    const out = join(work, `child-${k}.out`);
    const errFile = join(work, `child-${k}.err`);
    const child: TrackedProcess = spawnTracked(
      `pull-${k}`,
      process.execPath,
      pullArgs(root, bigName, `${r.host}/small:k${k}`),
      {
        stdoutFile: out,
        stderrFile: errFile,
      },
    );
    const stderr = () => fsp.readFile(errFile, 'utf8').catch(() => '');
    if (k % 2 === 0) {
      const delay = Math.floor(rnd() * durationMs);
      killMoments.push(`${delay}ms`);
      await Promise.race([new Promise((res) => setTimeout(res, delay)), child.exited]);
    } else {
      const n = 1 + Math.floor(rnd() * Math.max(1, bytesLines));
      killMoments.push(`bytes#${n}`);
      await waitFor(
        `bytes line ${n} of pull ${k}`,
        async () => {
          if (child.exitInfo()) return true;
          return parseLines(await stderr()).filter((l) => l.type === 'bytes').length >= n ? true : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 2 },
      );
    }
    const exit = await killProcess(child);
    if (exit.signal === 'SIGKILL') kills++;
    else assert.equal(exit.code, 0, `pull ${k} failed on its own: ${await stderr()}`);

    // 3. What the killed process left, before anything reopens (and recovers) the store.
    for (const l of parseLines(await stderr())) {
      if (l.type === 'committed' && l.name && l.digest) committed.set(l.name, l.digest);
    }
    // A kill can land before the store has laid out its directories (the first round starts on an
    // empty root): then nothing is visible yet, which is consistent too.
    const listOrEmpty = (dir: string) =>
      fsp.readdir(dir).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' && committed.size === 0) return [] as string[];
        throw e;
      });
    for (const name of await listOrEmpty(blobDir)) {
      assert.match(name, /^[0-9a-f]{64}$/, `only committed blobs in ${blobDir}`);
      assert.equal(
        await sha256File(join(blobDir, name)),
        `sha256:${name}`,
        `round ${k}: blob ${name} matches its name`,
      );
    }
    const indexText = await fsp.readFile(paths.indexFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' && committed.size === 0) return '{"manifests":[]}';
      throw e;
    });
    const index = JSON.parse(indexText) as { manifests: unknown[] };
    assert.ok(Array.isArray(index.manifests), 'index.json parses');
    for (const f of await listOrEmpty(paths.images)) {
      if (f.endsWith('.json')) JSON.parse(await fsp.readFile(join(paths.images, f), 'utf8'));
    }
    const view = await openStore({ root, reconcile: false });
    try {
      for (const [name, digest] of committed) {
        const rec = await view.images.get({ name, runtimeHandler: '' });
        assert.equal(rec?.digest, digest, `round ${k}: committed image ${name} is still there`);
        for (const d of [rec!.manifestDigest, rec!.imageId, ...rec!.layers.map((l) => l.digest)]) {
          assert.ok(await view.content.hasBlob(d), `round ${k}: ${name} still has blob ${d}`);
        }
      }
    } finally {
      await view.close();
    }

    // 4. The next pull completes, resuming what the kill interrupted; verify is clean.
    const done = await runCommand(process.execPath, pullArgs(root, bigName, `${r.host}/small:r${k}`), {
      timeoutMs: 60_000,
    });
    const [res, smallRes] = JSON.parse(done.stdout) as PullOutput[];
    assert.equal(res?.digest, big.digest);
    assert.equal(smallRes?.digest, small.digest);
    committed.set(smallRes.name, smallRes.digest);
    if (res.stats.blobsResumed > 0) {
      resumedPulls++;
      assert.ok(
        res.stats.bytesDownloaded < big.blobBytes - big.size,
        'a resumed pull fetches less than the whole image',
      );
    }
    committed.set(bigName, big.digest);
    const verify = await runCommand(process.execPath, cli(['store', 'verify', '--root', root]), {
      allowFailure: true,
    });
    assert.equal(verify.code, 0, `round ${k}: kimg store verify: ${verify.stdout}${verify.stderr}`);
    assert.match(verify.stdout, /no problems/);

    // 5. Remove the big image again so the next round downloads it.
    const s = await openStore({ root });
    try {
      assert.ok(await s.images.delete({ name: bigName, runtimeHandler: '' }));
      committed.delete(bigName);
      await s.gc();
      assert.ok(
        !(await s.content.hasBlob(big.manifests[0]!.layers[0]!.digest)),
        'store GC removed the big layers',
      );
    } finally {
      await s.close();
    }
  }
  console.error(
    `[pull-crash] kill moments: ${killMoments.join(' ')}; ${kills} kills, ${resumedPulls} resumed pulls`,
  );
  assert.ok(kills >= Math.min(20, KILLS), `${kills} pulls were killed (the others finished first)`);
  assert.ok(resumedPulls > 0, 'at least one pull resumed an interrupted download (blobsResumed > 0)');
  assert.ok(
    committed.size >= kills,
    `every round committed a small image, checked after every later kill (${committed.size})`,
  );
});
