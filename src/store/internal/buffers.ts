/**
 * The store's write buffers: one process-wide free list of `WRITE_BUFFER_BYTES` buffers, so that a
 * pull of many layers reuses the same few megabytes instead of leaving each finished writer's buffers
 * behind as garbage (3 per writer; 8 layers left ~24 MiB for the collector, which is what made peak RSS
 * of a 1 GiB pull 98-101 MiB without forced collections). The bytes the store holds this way are known
 * (`heldWriteBufferBytes`), so `reclaim.ts` can tell held memory from dead memory.
 */

/**
 * Chunks are copied into buffers of this size and each full buffer is written with one positional
 * write (fewer syscalls and thread-pool round trips than one write per network chunk).
 */
export const WRITE_BUFFER_BYTES = 1024 * 1024;
/** Free buffers kept for reuse; more are dropped (and counted out of `heldWriteBufferBytes`). */
const MAX_FREE = 16;

const free: Buffer[] = [];
let held = 0;

/** A write buffer (contents undefined): a reused one when available. */
export function takeWriteBuffer(): Buffer {
  const b = free.pop();
  if (b) return b;
  held += WRITE_BUFFER_BYTES;
  return Buffer.allocUnsafeSlow(WRITE_BUFFER_BYTES);
}

/**
 * Returns a buffer for reuse. Buffers of another size, or beyond the free list's bound, are left to the
 * collector. Only buffers that came from `takeWriteBuffer` (or are of its size and no longer used
 * anywhere) may be given back.
 */
export function giveWriteBuffer(b: Buffer): void {
  if (b.byteLength !== WRITE_BUFFER_BYTES) return;
  if (free.length < MAX_FREE) free.push(b);
  else held = Math.max(0, held - WRITE_BUFFER_BYTES);
}

/** Bytes of write buffers alive (lent out or free): memory the store holds on purpose. */
export function heldWriteBufferBytes(): number {
  return held;
}
