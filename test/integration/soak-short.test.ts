/**
 * The soak, short version for `npm test`: `bench/soak.ts` `runSoak` with 40 PullImage calls of 8
 * images with overlapping layers from 4 concurrent CRI clients through a `kimg serve` process, with
 * seeded random cancellations and removals. Asserts what the soak asserts (no deadlock, each blob
 * fetched once per digest except after cancelled pulls, RSS stable within 20 %, store verify clean,
 * SIGTERM exits 0), plus that the run cancelled and completed pulls. `npm run soak` is the long one
 * (200 pulls, 16 clients, 20 images). Replay with KIMG_SOAK_SEED. Summary:
 * `$KIMG_RELIABILITY_DIR/soak-short.json`.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runSoak } from '../../bench/soak.js';

const SEED = process.env.KIMG_SOAK_SEED ? Number(process.env.KIMG_SOAK_SEED) : Date.now() % 2 ** 31;

test(`soak (short): 40 pulls, 4 clients, 8 images through kimg serve with cancellations (seed ${SEED})`, async () => {
  const r = await runSoak({
    pulls: 40,
    clients: 4,
    images: 8,
    seed: SEED,
    cancelRate: 0.2,
    log: (l) => console.error(`[soak-short] ${l}`),
  });
  const dir = process.env.KIMG_RELIABILITY_DIR;
  if (dir) writeFileSync(join(dir, 'soak-short.json'), JSON.stringify(r, null, 2));
  assert.deepEqual(r.problems, [], `soak problems (replay with KIMG_SOAK_SEED=${SEED})`);
  assert.equal(r.completed + r.cancelled, 40, 'every pull settled');
  assert.ok(r.completed > 0);
  assert.equal(r.verifyClean, true);
  assert.ok(r.registry.blobDigests > 0);
});
