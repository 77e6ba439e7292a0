/**
 * Keeps a long download's memory flat.
 *
 * Every socket read gives Node a fresh 64 KiB ArrayBuffer outside the JS heap. A puller allocates
 * almost nothing on the JS heap per byte, so V8 collects those buffers late: only when the young
 * generation fills up or when external memory grows by its soft limit (~64 MiB) since the last full
 * GC. Measured on the 2-core reference VM (docs/design/performance.md), that garbage is what made a pull's peak RSS grow
 * with image size (30-64 MiB of dead buffers at the peaks of a 1 GiB pull, ~10-20 MiB for 8 MiB).
 *
 * So the store looks at V8's external memory every `RECLAIM_CHECK_BYTES` written and, when it is over
 * `RECLAIM_ABOVE_BYTES`, asks for a young-generation collection (~0.5 ms here: little in a puller's
 * young generation survives). Buffers still queued in a stream at two young collections are promoted
 * to the old generation, where only a full collection frees them: when the memory is still over the
 * mark at the next look, it asks for a full, incremental one (at most one per
 * `RECLAIM_MAJOR_MIN_BYTES`). Measured, 1 GiB pull, peak RSS / main-thread CPU: 139 MiB without any of
 * this; 106-108 MiB with a young collection every 8 MiB; 81-84 MiB / +0.3 s CPU with this policy at
 * 8 MiB of ArrayBuffers (12 MiB: 84-86 MiB, 16 MiB: 89-91 MiB / +0.1 s); the 8 MiB pulls stay at 72-78 MiB.
 *
 * The collector is reached through V8's `--expose-gc` flag, set for this process on first use and
 * picked up by a fresh `vm` context (the flag does not add `gc` to contexts that already exist); where
 * that is not possible (another embedder, a hardened runtime) nothing happens and only the flatness of
 * memory is lost.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { heldWriteBufferBytes } from './buffers.js';

/** How often (bytes through the store) the amount of ArrayBuffer memory is looked at. */
export const RECLAIM_CHECK_BYTES = 2 * 1024 * 1024;
/**
 * External (ArrayBuffer and other off-heap) memory above which a collection is asked for. What a pull
 * really holds is a 1 MiB write buffer per blob in flight plus stream queues (~5 MiB at the default 3
 * downloads) and ~2 MiB of other external memory; the rest is dead. (A mark relative to the lowest
 * figure seen recently was tried: it let 10 MiB more garbage pile up.)
 */
export const RECLAIM_ABOVE_BYTES = 10 * 1024 * 1024;
/** At least this many bytes between two full collections. */
export const RECLAIM_MAJOR_MIN_BYTES = 32 * 1024 * 1024;

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async' }) => void;

let collector: GcFunction | null | undefined;
let sinceCheck = 0;
let sinceMajor = 0;
let lastWasMinor = false;

function getCollector(): GcFunction | null {
  if (collector !== undefined) return collector;
  collector = null;
  try {
    const existing = (globalThis as { gc?: unknown }).gc;
    if (typeof existing === 'function') {
      collector = existing as GcFunction;
    } else {
      setFlagsFromString('--expose-gc');
      const fn: unknown = runInNewContext('gc');
      if (typeof fn === 'function') collector = fn as GcFunction;
    }
  } catch {
    collector = null;
  }
  return collector;
}

/**
 * Records `n` bytes through the store. Every `RECLAIM_CHECK_BYTES` it looks at the external memory
 * and, when it is over `RECLAIM_ABOVE_BYTES`, collects the young generation; when it is still over at
 * the next look (the dead buffers were promoted), a full incremental collection.
 */
export function noteBytesThrough(n: number): void {
  sinceCheck += n;
  if (sinceCheck < RECLAIM_CHECK_BYTES) return;
  sinceMajor += sinceCheck;
  sinceCheck = 0;
  // V8's own counter (~1 µs), not process.memoryUsage() (which also reads /proc for the RSS).
  // The store's own write buffers are held on purpose (src/store/internal/buffers.ts): not garbage.
  if (getHeapStatistics().external_memory - heldWriteBufferBytes() <= RECLAIM_ABOVE_BYTES) {
    lastWasMinor = false;
    return;
  }
  const gc = getCollector();
  if (!gc) return;
  try {
    if (lastWasMinor && sinceMajor >= RECLAIM_MAJOR_MIN_BYTES) {
      sinceMajor = 0;
      lastWasMinor = false;
      // Incremental: marking proceeds in steps and finishes later, instead of one pause.
      gc({ type: 'major', execution: 'async' });
    } else {
      lastWasMinor = true;
      gc({ type: 'minor' });
    }
  } catch {
    collector = null;
  }
}
