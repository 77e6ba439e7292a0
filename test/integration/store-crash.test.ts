/**
 * Crash safety of the store: a child process performing random store writes is SIGKILLed at ≥ 20
 * seeded random moments. After each kill the store is reopened and must hold: every visible blob
 * matches its digest (`verify` re-hashes all of them), every image whose put completed (and which was
 * not being deleted) is present with all its blobs, and `verify` reports no problem. Replay a failure
 * with KIMG_CRASH_SEED=<seed printed below>.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import { killProcess, spawnTracked, waitFor } from '../helpers/proc.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const SEED = process.env.KIMG_CRASH_SEED ? Number(process.env.KIMG_CRASH_SEED) : Date.now() % 2 ** 31;
const KILLS = Number(process.env.KIMG_CRASH_KILLS ?? 24);
const CHILD = new URL('../unit/store/crash-child.js', import.meta.url).pathname;

let dir: string;
after(async () => {
  if (dir) await removeTempDir(dir);
});

test(`SIGKILL during store writes never leaves a bad blob or loses a committed image (seed ${SEED}, ${KILLS} kills)`, async () => {
  console.error(`[store-crash] seed=${SEED} kills=${KILLS} (replay with KIMG_CRASH_SEED=${SEED})`);
  dir = await makeTempDir('crash-');
  const root = join(dir, 'root');
  let x = SEED | 0 || 1;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  /** name → manifest digest of images whose put completed and that were not being deleted since. */
  const committed = new Map<string, string>();
  /** name → digests of puts that started after the last completed one (the kill may have let one land). */
  const inFlight = new Map<string, Set<string>>();
  let totalPuts = 0;
  for (let k = 0; k < KILLS; k++) {
    const out = join(dir, `child-${k}.out`);
    const errFile = join(dir, `child-${k}.err`);
    const childSeed = Math.floor(rnd() * 2 ** 30) + 1;
    const child = spawnTracked(`crash-child-${k}`, process.execPath, [CHILD, root, String(childSeed)], {
      stdoutFile: out,
      stderrFile: errFile,
    });
    const read = async () => fsp.readFile(out, 'utf8').catch(() => '');
    await waitFor(
      'crash child ready',
      async () => ((await read()).startsWith('ready\n') ? true : undefined),
      {
        watch: child,
        timeoutMs: 30_000,
        describe: async () => fsp.readFile(errFile, 'utf8').catch(() => ''),
      },
    );
    // Kill at a seeded moment: early (mid first write) to late (after several operations).
    const delay = Math.floor(rnd() * rnd() * 1500);
    await new Promise((r) => setTimeout(r, delay));
    const exit = await killProcess(child);
    assert.equal(
      exit.signal,
      'SIGKILL',
      `child ${k} died on its own: ${await fsp.readFile(errFile, 'utf8').catch(() => '')}`,
    );
    for (const line of (await read()).split('\n')) {
      const [verb, name, digest] = line.split(' ');
      if (verb === 'putting' && name && digest) {
        inFlight.set(name, (inFlight.get(name) ?? new Set()).add(digest));
      } else if (verb === 'put' && name && digest) {
        committed.set(name, digest);
        inFlight.delete(name);
        totalPuts++;
      } else if (verb === 'deleting' && name) {
        committed.delete(name);
        inFlight.delete(name);
      }
    }

    const store = await openStore({ root });
    try {
      const v = await store.verify();
      assert.deepEqual(
        v.problems,
        [],
        `kill ${k} (child seed ${childSeed}, after ${delay} ms): verify found problems`,
      );
      assert.equal(v.ok, true);
      for (const [name, digest] of committed) {
        const rec = await store.images.get({ name });
        assert.ok(rec, `kill ${k}: committed image ${name} was lost`);
        const allowed = new Set([digest, ...(inFlight.get(name) ?? [])]);
        assert.ok(
          allowed.has(rec.manifestDigest),
          `kill ${k}: ${name} points at ${rec.manifestDigest}, none of ${[...allowed].join(', ')}`,
        );
        for (const d of [rec.manifestDigest, rec.imageId, ...rec.layers.map((l) => l.digest)]) {
          assert.ok(await store.content.hasBlob(d), `kill ${k}: blob ${d} of ${name} is missing`);
        }
      }
      const index = JSON.parse(await fsp.readFile(join(root, 'oci', 'index.json'), 'utf8')) as {
        manifests: unknown[];
      };
      assert.equal(
        index.manifests.length,
        (await store.images.list()).length,
        `kill ${k}: index.json not in step after reopen`,
      );
    } finally {
      await store.close();
    }
  }
  console.error(
    `[store-crash] ${KILLS} kills, ${totalPuts} completed puts, ${committed.size} images at the end`,
  );
  assert.ok(totalPuts > 0, 'the children completed at least one put overall');
});
