/**
 * Shared settings for property tests. `npm test` runs 10,000 cases per property (the floor);
 * `npm run fuzz` sets KIMG_FUZZ_RUNS=100000. The seed is printed so a failure can be replayed with
 * KIMG_FUZZ_SEED.
 */
import { isKimgError } from '../../src/errors/index.js';

export const FUZZ_RUNS = Number(process.env.KIMG_FUZZ_RUNS ?? 10_000);
export const FUZZ_SEED = process.env.KIMG_FUZZ_SEED
  ? Number(process.env.KIMG_FUZZ_SEED)
  : Date.now() % 2 ** 31;

/** fast-check parameters for every property in the suite. */
export function fuzzParams(runs = FUZZ_RUNS): { numRuns: number; seed: number } {
  return { numRuns: runs, seed: FUZZ_SEED };
}

/**
 * Calls `fn`; returns normally or throws only a coded KimgError. Any other throwable is re-thrown as an
 * assertion failure naming the input, so a property fails with the offending case.
 */
export function onlyCodedErrors<T>(input: unknown, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (isKimgError(e)) return undefined;
    throw new Error(`uncoded error for input ${JSON.stringify(input)?.slice(0, 300)}: ${String(e)}`, {
      cause: e,
    });
  }
}

console.error(`[fuzz] runs=${FUZZ_RUNS} seed=${FUZZ_SEED}`);
