/**
 * Crash consistency at ≥ 100 seeded SIGKILL points over `kimg pull` of a multi-layer image
 * (6 × 2 MiB random layers, plus a small image per round), and over `kimg rmi a b c …` and
 * `kimg store gc` on a store holding many images. After every kill, before anything reopens (and
 * recovers) the store:
 * - every blob visible in `oci/blobs/sha256` re-hashes to its name (an ingest is never visible);
 * - `index.json` and every image record parse;
 * - no committed image is lost: every image committed before (and every one the killed child reported
 *   `committed`) is present with its digest and all its blobs; for rmi, every image not named on the
 *   command line, and every named one not yet reported `Deleted:`, is still whole; for gc, every image;
 * then (pull) the next pull completes — every 20th round, and at the end — resuming the interrupted
 * ingests, and `kimg store verify` is clean; (rmi/gc) a completing run and `kimg store verify` are clean.
 * Kill moments are half at random times within a measured un-killed run, half on progress: right
 * after the Nth `bytes` line (pull), the Nth `Deleted:` line (rmi), the first unreferenced blob gone
 * (gc); rounds whose kill left the rmi/gc half done are counted as `midway`. Replay with KIMG_CRASH_SEED=<seed printed>; KIMG_CRASH_POINTS sets the
 * number of pull kills (default 100), KIMG_CRASH_OP_POINTS the rmi and gc kills each (default 15).
 * Summary: `$KIMG_RELIABILITY_DIR/crash-100.json`.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openStore, storePaths } from '../../src/store/index.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, runCommand, spawnTracked, waitFor, type TrackedProcess } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const SEED = process.env.KIMG_CRASH_SEED ? Number(process.env.KIMG_CRASH_SEED) : Date.now() % 2 ** 31;
const PULL_KILLS = Number(process.env.KIMG_CRASH_POINTS ?? 100);
const OP_KILLS = Number(process.env.KIMG_CRASH_OP_POINTS ?? 15);
const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const MiB = 1024 * 1024;
const SMALL_IMAGES = 16;

let work = '';
let reg: StartedRegistry | undefined;
let big: GeneratedImage;
const smalls: GeneratedImage[] = [];
const summary = {
  seed: SEED,
  pull: { kills: 0, rounds: 0, completedInsteadOfKilled: 0, resumedPulls: 0, checks: 0, completingPulls: 0 },
  rmi: { kills: 0, rounds: 0, checks: 0, midway: 0 },
  gc: { kills: 0, rounds: 0, checks: 0, midway: 0 },
  corruptBlobs: 0,
  lostImages: 0,
};

let x = SEED | 0 || 1;
function rnd(): number {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) / 2 ** 32;
}

before(async () => {
  work = await makeTempDir('crash100-');
  const started = startRegistry({ mode: 'plain' });
  big = await generateImage(join(work, 'big'), {
    name: 'crash100-big',
    layers: Array.from({ length: 6 }, () => ({ size: 2 * MiB })),
  });
  // Small images share layers in pairs (seeded), so rmi/gc must keep blobs still referenced.
  for (let i = 0; i < SMALL_IMAGES; i++) {
    smalls.push(
      await generateImage(join(work, `s${i}`), {
        name: `crash100-s${i}`,
        layers: [
          { size: 4096, seed: `shared-${i % 4}` },
          { size: 8192 + i },
          { size: 2048, seed: `shared-b-${i % 3}` },
        ],
      }),
    );
  }
  reg = await started;
  await skopeoPush(big, reg, 'big:1');
  for (let i = 0; i < SMALL_IMAGES; i++) await skopeoPush(smalls[i]!, reg, `s${i}:1`);
});
after(async () => {
  const dir = process.env.KIMG_RELIABILITY_DIR;
  if (dir) writeFileSync(join(dir, 'crash-100.json'), JSON.stringify(summary, null, 2));
  await reg?.stop();
  if (work) await removeTempDir(work);
});

async function sha256File(file: string): Promise<string> {
  return `sha256:${createHash('sha256')
    .update(await fsp.readFile(file))
    .digest('hex')}`;
}

function parseLines(text: string): { type?: string; name?: string; digest?: string }[] {
  const out: { type?: string; name?: string; digest?: string }[] = [];
  for (const line of text.split('\n')) {
    try {
      out.push(JSON.parse(line) as { type?: string });
    } catch {
      // a line cut by the kill, or an empty one
    }
  }
  return out;
}

/**
 * The on-disk checks, before anything reopens the store: blobs match their names, index.json and
 * records parse, and every image in `mustHave` (name → digest) is there with all its blobs.
 */
async function checkStore(
  root: string,
  what: string,
  mustHave: Map<string, string>,
  mayHave: Map<string, string> = new Map(),
): Promise<void> {
  const paths = storePaths(root);
  const blobDir = join(paths.blobs, 'sha256');
  for (const name of await fsp.readdir(blobDir).catch(() => [] as string[])) {
    const ok = /^[0-9a-f]{64}$/.test(name) && (await sha256File(join(blobDir, name))) === `sha256:${name}`;
    if (!ok) summary.corruptBlobs++;
    assert.ok(ok, `${what}: blob ${name} does not match its name`);
  }
  const indexText = await fsp.readFile(paths.indexFile, 'utf8').catch(() => undefined);
  if (indexText !== undefined) {
    const index = JSON.parse(indexText) as { manifests: unknown[] };
    assert.ok(Array.isArray(index.manifests), `${what}: index.json parses`);
  }
  for (const f of await fsp.readdir(paths.images).catch(() => [] as string[])) {
    if (f.endsWith('.json')) JSON.parse(await fsp.readFile(join(paths.images, f), 'utf8'));
  }
  const view = await openStore({ root, reconcile: false });
  try {
    for (const [name, digest] of mayHave) {
      // may have been removed (its `Deleted:` line not yet printed); if it is there, it is whole
      const rec = await view.images.get({ name, runtimeHandler: '' });
      if (!rec) continue;
      assert.equal(rec.digest, digest, `${what}: ${name} has its digest`);
      for (const d of [rec.manifestDigest, rec.imageId, ...rec.layers.map((l) => l.digest)]) {
        const has = await view.content.hasBlob(d);
        if (!has) summary.lostImages++;
        assert.ok(has, `${what}: ${name}, still recorded, still has blob ${d}`);
      }
    }
    for (const [name, digest] of mustHave) {
      const rec = await view.images.get({ name, runtimeHandler: '' });
      if (rec?.digest !== digest) summary.lostImages++;
      assert.equal(rec?.digest, digest, `${what}: committed image ${name} is still there`);
      for (const d of [rec!.manifestDigest, rec!.imageId, ...rec!.layers.map((l) => l.digest)]) {
        const has = await view.content.hasBlob(d);
        if (!has) summary.lostImages++;
        assert.ok(has, `${what}: ${name} still has blob ${d}`);
      }
    }
  } finally {
    await view.close();
  }
}

async function verifyClean(root: string, what: string): Promise<void> {
  const v = await runCommand(process.execPath, [CLI, 'store', 'verify', '--root', root], {
    allowFailure: true,
  });
  assert.equal(v.code, 0, `${what}: kimg store verify: ${v.stdout}${v.stderr}`);
  assert.match(v.stdout, /no problems/);
}

test(`SIGKILL at ≥ ${PULL_KILLS} points of a 6-layer pull never corrupts a blob or loses an image; the next pull resumes (seed ${SEED})`, async () => {
  console.error(`[crash-100] seed=${SEED} pull kills=${PULL_KILLS} (replay with KIMG_CRASH_SEED=${SEED})`);
  const r = reg!;
  const bigName = `${r.host}/big:1`;
  const pullArgs = (root: string, ...images: string[]) => [
    CLI,
    'pull',
    '--plain-http',
    r.host,
    '--root',
    root,
    '--progress',
    'json',
    '-o',
    'json',
    ...images,
  ];
  const measureRoot = join(work, 'measure');
  const t0 = Date.now();
  const measured = await runCommand(process.execPath, pullArgs(measureRoot, bigName), { timeoutMs: 60_000 });
  const durationMs = Date.now() - t0;
  const bytesLines = parseLines(measured.stderr).filter((l) => l.type === 'bytes').length;
  await fsp.rm(measureRoot, { recursive: true, force: true });
  console.error(`[crash-100] un-killed pull: ${durationMs} ms, ${bytesLines} bytes lines`);

  const root = join(work, 'pull-root');
  const committed = new Map<string, string>();
  const moments: string[] = [];
  const completing = async (k: number): Promise<void> => {
    const small = `${r.host}/s${k % SMALL_IMAGES}:1`;
    const done = await runCommand(process.execPath, pullArgs(root, bigName, small), { timeoutMs: 60_000 });
    const res = JSON.parse(done.stdout) as {
      name: string;
      digest: string;
      stats: { blobsResumed: number };
    }[];
    assert.equal(res[0]?.digest, big.digest);
    if (res[0]!.stats.blobsResumed > 0) summary.pull.resumedPulls++;
    committed.set(res[1]!.name, res[1]!.digest);
    committed.set(bigName, big.digest);
    summary.pull.completingPulls++;
    await verifyClean(root, `round ${k}`);
  };
  const dropBig = async (): Promise<void> => {
    const s = await openStore({ root });
    try {
      await s.images.delete({ name: bigName, runtimeHandler: '' });
      committed.delete(bigName);
      await s.gc();
    } finally {
      await s.close();
    }
  };

  const phase = { run: 0, check: 0, other: 0 };
  for (let k = 0; k < PULL_KILLS * 3 && summary.pull.kills < PULL_KILLS; k++) {
    summary.pull.rounds++;
    let tp = Date.now();
    const errFile = join(work, `pull-${k}.err`);
    const child: TrackedProcess = spawnTracked(
      `pull-${k}`,
      process.execPath,
      pullArgs(root, bigName, `${r.host}/s${k % SMALL_IMAGES}:1`),
      { stdoutFile: join(work, `pull-${k}.out`), stderrFile: errFile },
    );
    const stderr = () => fsp.readFile(errFile, 'utf8').catch(() => '');
    if (k % 2 === 0) {
      const delay = Math.floor(rnd() * durationMs);
      moments.push(`${delay}ms`);
      await Promise.race([new Promise((res) => setTimeout(res, delay)), child.exited]);
    } else {
      const n = 1 + Math.floor(rnd() * Math.max(1, bytesLines));
      moments.push(`bytes#${n}`);
      await waitFor(
        `bytes line ${n} of pull ${k}`,
        async () => {
          if (child.exitInfo()) return true;
          return parseLines(await stderr()).filter((l) => l.type === 'bytes').length >= n ? true : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 5 },
      );
    }
    const exit = await killProcess(child);
    const lines = parseLines(await stderr());
    if (exit.signal === 'SIGKILL') summary.pull.kills++;
    else {
      assert.equal(
        exit.code,
        0,
        `pull ${k} failed on its own: ${lines.map((l) => JSON.stringify(l)).join('\n')}`,
      );
      summary.pull.completedInsteadOfKilled++;
    }
    for (const l of lines) if (l.type === 'committed' && l.name && l.digest) committed.set(l.name, l.digest);
    phase.run += Date.now() - tp;
    tp = Date.now();
    await checkStore(root, `pull round ${k} (${moments.at(-1)})`, committed);
    summary.pull.checks++;
    phase.check += Date.now() - tp;
    tp = Date.now();
    if (k % 20 === 19) await completing(k);
    // a round that committed the big image leaves nothing to interrupt: remove it for the next one
    if (committed.has(bigName)) await dropBig();
    await fsp.rm(errFile, { force: true });
    await fsp.rm(join(work, `pull-${k}.out`), { force: true });
    phase.other += Date.now() - tp;
  }
  console.error(
    `[crash-100] time: child runs ${phase.run} ms, checks ${phase.check} ms, other ${phase.other} ms`,
  );
  await completing(PULL_KILLS * 3);
  console.error(
    `[crash-100] pull: ${summary.pull.kills} kills in ${summary.pull.rounds} rounds, ${summary.pull.resumedPulls} resumed pulls; moments ${moments.join(' ')}`,
  );
  assert.ok(summary.pull.kills >= PULL_KILLS, `${summary.pull.kills} pulls were killed`);
  // (resumption itself is asserted by pull-crash.test.ts, whose 16 MiB layers are always mid-way;
  // here layers of 2 MiB may be wholly in the 1 MiB write buffers or done when the kill lands)
  assert.equal(summary.corruptBlobs, 0);
  assert.equal(summary.lostImages, 0);
});

test('writeBlob over an interrupted ingest that already holds some or all of the content (found by this suite)', async () => {
  // A process killed after writing a manifest's bytes to its ingest but before the commit leaves an
  // ingest the next `writeBlob` of the same digest resumes: it must not append the whole content again.
  const root = join(work, 'writeblob');
  const data = Buffer.from(JSON.stringify({ schemaVersion: 2, filler: 'x'.repeat(1200) }));
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  for (const prefix of [data.length, 10]) {
    const s = await openStore({ root });
    try {
      const w = await s.content.writer({ expected: { digest, size: data.length } });
      await w.write(data.subarray(0, prefix));
      await w.close(); // kept for a resume, as a SIGKILL before the commit leaves it
      const r = await s.content.writeBlob(data, { digest, size: data.length });
      assert.equal(r.digest, digest);
      assert.equal(await sha256File(s.content.blobPath(digest)), digest);
      await s.content.delete?.(digest);
    } finally {
      await s.close();
    }
    await fsp.rm(root, { recursive: true, force: true });
  }
});

/** A store with all the small images, pulled once and copied for each round. */
async function template(): Promise<{ root: string; names: Map<string, string> }> {
  const r = reg!;
  const root = join(work, 'template');
  const names = new Map<string, string>();
  const refs = smalls.map((_, i) => `${r.host}/s${i}:1`);
  const out = await runCommand(
    process.execPath,
    [CLI, 'pull', '--plain-http', r.host, '--root', root, '-o', 'json', ...refs],
    { timeoutMs: 60_000 },
  );
  for (const p of JSON.parse(out.stdout) as { name: string; digest: string }[]) names.set(p.name, p.digest);
  assert.equal(names.size, SMALL_IMAGES);
  return { root, names };
}

test(`SIGKILL during \`kimg rmi a b c …\` and \`kimg store gc\` (≥ ${OP_KILLS} points each) loses nothing it should keep (seed ${SEED})`, async () => {
  const t = await template();
  const all = [...t.names.keys()];
  const copy = async (k: string): Promise<string> => {
    const root = join(work, `op-${k}`);
    await fsp.rm(root, { recursive: true, force: true });
    await fsp.cp(t.root, root, { recursive: true });
    return root;
  };
  const measure = async (args: string[]): Promise<number> => {
    const root = await copy('measure');
    const t0 = Date.now();
    await runCommand(process.execPath, [CLI, ...args, '--root', root], { timeoutMs: 60_000 });
    return Date.now() - t0;
  };
  const victims = all.slice(0, SMALL_IMAGES / 2);
  const rmiMs = await measure(['rmi', ...victims]);
  const gcPrep = async (root: string): Promise<void> => {
    const s = await openStore({ root });
    try {
      for (const n of victims) await s.images.delete({ name: n, runtimeHandler: '' });
    } finally {
      await s.close();
    }
  };
  // blobs only the victims use: what gc removes
  const exclusive: string[] = [];
  {
    const view = await openStore({ root: t.root, reconcile: false });
    try {
      const keep = new Set<string>();
      const mine = new Set<string>();
      for (const r of await view.images.list()) {
        const ds = [r.manifestDigest, r.imageId, ...r.layers.map((l) => l.digest)];
        for (const d of ds) (victims.includes(r.name) ? mine : keep).add(d);
      }
      for (const d of mine) if (!keep.has(d)) exclusive.push(d);
    } finally {
      await view.close();
    }
  }
  const gcRootM = await copy('measure-gc');
  await gcPrep(gcRootM);
  const t0 = Date.now();
  await runCommand(process.execPath, [CLI, 'store', 'gc', '--root', gcRootM], { timeoutMs: 60_000 });
  const gcMs = Date.now() - t0;
  console.error(`[crash-100] un-killed rmi: ${rmiMs} ms, gc: ${gcMs} ms`);

  for (const op of ['rmi', 'gc'] as const) {
    const s = summary[op];
    const ms = op === 'rmi' ? rmiMs : gcMs;
    for (let k = 0; k < OP_KILLS * 4 && s.kills < OP_KILLS; k++) {
      s.rounds++;
      const root = await copy(`${op}-${k}`);
      if (op === 'gc') await gcPrep(root);
      // shuffle the victims (seeded) so the kill lands at different images
      const named = [...victims].sort(() => rnd() - 0.5);
      const args = op === 'rmi' ? ['rmi', ...named] : ['store', 'gc'];
      const outFile = join(work, `${op}-${k}.out`);
      const child = spawnTracked(`${op}-${k}`, process.execPath, [CLI, ...args, '--root', root], {
        stdoutFile: outFile,
        stderrFile: join(work, `${op}-${k}.err`),
      });
      // Half the rounds at a random time (the first ~40% of a run is node starting up: aim at the
      // rest), half on progress: after the Nth `Deleted:` line (rmi), or once the first unreferenced
      // blob is gone (gc), plus 0-3 ms.
      let delay = Math.floor(ms * (0.4 + rnd() * 0.7));
      let moment = `${delay} ms`;
      if (k % 2 === 0) {
        await Promise.race([new Promise((res) => setTimeout(res, delay)), child.exited]);
      } else {
        const n = 1 + Math.floor(rnd() * (victims.length - 1));
        const extra = Math.floor(rnd() * 4);
        moment = op === 'rmi' ? `Deleted #${n} + ${extra} ms` : `first blob removed + ${extra} ms`;
        delay = -1;
        const blobDir = join(storePaths(root).blobs, 'sha256');
        await waitFor(
          `${op} ${k} progress`,
          async () => {
            if (child.exitInfo()) return true;
            if (op === 'rmi') {
              const text = await fsp.readFile(outFile, 'utf8').catch(() => '');
              return (text.match(/^Deleted: /gm) ?? []).length >= n ? true : undefined;
            }
            return (await fsp.stat(join(blobDir, exclusive[0]!.slice(7))).catch(() => undefined))
              ? undefined
              : true;
          },
          { timeoutMs: 30_000, intervalMs: 1 },
        );
        if (extra) await new Promise((res) => setTimeout(res, extra));
      }
      const exit = await killProcess(child);
      if (exit.signal === 'SIGKILL') s.kills++;
      else
        assert.equal(
          exit.code,
          0,
          `${op} ${k} failed: ${await fsp.readFile(join(work, `${op}-${k}.err`), 'utf8')}`,
        );
      const deleted = new Set(
        (await fsp.readFile(outFile, 'utf8'))
          .split('\n')
          .filter((l) => l.startsWith('Deleted: '))
          .map((l) => l.slice('Deleted: '.length)),
      );
      // Not named (rmi) / still recorded (gc): must be whole. Named and not yet reported: either.
      const mustHave = new Map<string, string>();
      const mayHave = new Map<string, string>();
      for (const [n, d] of t.names) {
        if (!victims.includes(n)) mustHave.set(n, d);
        else if (op === 'rmi' && !deleted.has(n)) mayHave.set(n, d);
      }
      await checkStore(root, `${op} round ${k} (${moment})`, mustHave, mayHave);
      // Did the kill land mid-way (some of the work done, not all)?
      if (op === 'rmi') {
        const view = await openStore({ root, reconcile: false });
        let gone = 0;
        try {
          for (const n of victims) if (!(await view.images.get({ name: n, runtimeHandler: '' }))) gone++;
        } finally {
          await view.close();
        }
        if (exit.signal === 'SIGKILL' && gone > 0 && gone < victims.length) s.midway++;
      } else {
        let left = 0;
        for (const d of exclusive)
          if (await fsp.stat(join(storePaths(root).blobs, 'sha256', d.slice(7))).catch(() => undefined))
            left++;
        if (exit.signal === 'SIGKILL' && left > 0 && left < exclusive.length) s.midway++;
      }
      if (op === 'rmi') {
        const view = await openStore({ root, reconcile: false });
        try {
          for (const n of deleted)
            assert.equal(
              await view.images.get({ name: n, runtimeHandler: '' }),
              undefined,
              `${n} reported Deleted is gone`,
            );
        } finally {
          await view.close();
        }
      }
      s.checks++;
      // a completing run finishes the job; verify is clean
      const rest = named.filter((n) => !deleted.has(n));
      if (op === 'gc' || rest.length > 0) {
        const again = await runCommand(
          process.execPath,
          [CLI, ...(op === 'rmi' ? ['rmi', ...rest] : ['store', 'gc']), '--root', root],
          { allowFailure: true, timeoutMs: 60_000 },
        );
        // exit 3: a named image the killed run had removed without printing `Deleted:` yet
        assert.ok(again.code === 0 || (op === 'rmi' && again.code === 3), `${op} rerun: ${again.stderr}`);
      }
      await verifyClean(root, `${op} round ${k}`);
      const view = await openStore({ root, reconcile: false });
      try {
        assert.deepEqual(
          (await view.images.list()).map((i) => i.name).sort(),
          all.filter((n) => !victims.includes(n)).sort(),
          `${op} round ${k}: exactly the kept images remain`,
        );
      } finally {
        await view.close();
      }
      await fsp.rm(root, { recursive: true, force: true });
    }
    console.error(`[crash-100] ${op}: ${s.kills} kills in ${s.rounds} rounds, ${s.midway} mid-way`);
    assert.ok(s.kills >= OP_KILLS, `${op}: ${s.kills} runs were killed`);
  }
  assert.equal(summary.corruptBlobs, 0);
  assert.equal(summary.lostImages, 0);
});
