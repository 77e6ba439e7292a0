/**
 * Streaming digests for the store, on the event loop or off it.
 *
 * sha256 is the first wall for a Node puller on this hardware class (~380 MB/s per core, no SHA-NI;
 * docs/design/performance.md): hashing on the main thread competes with HTTP
 * parsing and the write path. `WorkerHasherPool` hashes in `worker_threads` instead: each stream is
 * pinned to one worker (so its chunks stay in order), chunks are copied into 256 KiB staging buffers
 * that are transferred (not cloned) to the worker and transferred back with its acknowledgement for
 * reuse, and the bytes in flight per stream are bounded so memory stays flat. `InlineHasher` is
 * `crypto.createHash` on the calling thread. Both produce the same
 * `algorithm:hex` digests; the store picks one with `hashing: 'worker' | 'inline' | 'auto'` (default
 * `auto`: measured, see `AUTO_INLINE_MIN_MBPS`).
 */
import { createHash, type Hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { KimgError } from '../errors/index.js';
import type { DigestAlgorithm } from './internal/digest.js';

/** A running digest over a stream of chunks written in order. */
export interface StreamHasher {
  /** Adds a chunk. The caller may reuse its buffer as soon as this returns. */
  update(chunk: Uint8Array): void;
  /**
   * Adds a chunk and takes ownership of its memory (a worker hasher transfers the ArrayBuffer instead
   * of copying it). The caller must not touch `chunk` afterwards. Use for buffers from
   * `Buffer.allocUnsafeSlow` / `new Uint8Array(n)` that back nothing else.
   */
  take(chunk: Uint8Array): void;
  /** Resolves when the bytes queued but not yet hashed fall under the per-stream bound. */
  capacity(): Promise<void>;
  /** Finishes the digest (`algorithm:hex`). The hasher cannot be used afterwards. */
  digest(): Promise<string>;
  /** Drops the running state (after an abort). Idempotent. */
  dispose(): void;
}

/** Creates stream hashers; one per store. */
export interface HasherFactory {
  /** The mode actually used (`worker` or `inline`, never `auto`). */
  readonly kind: HashingMode;
  create(algorithm: DigestAlgorithm): StreamHasher;
  /**
   * A buffer of `size` bytes for chunks that will be handed over with `take` (a worker pool reuses the
   * buffers its workers hand back; otherwise a new one). Its contents are undefined.
   */
  buffer?(size: number): Buffer;
  /** Stops worker threads, if any. Pending digests reject. */
  close(): Promise<void>;
}

/**
 * Where sha256 runs: `worker` = worker_threads pool, `inline` = the calling thread, `auto` = inline
 * when this CPU hashes at least `AUTO_INLINE_MIN_MBPS` on one thread (SHA extensions), else worker.
 */
export type HashingMode = 'worker' | 'inline' | 'auto';

/**
 * `auto` picks inline hashing at or above this single-thread sha256 speed. Measured on the 2-core VM
 * (256 MiB through the writer with fsync, 64 KiB writes, medians of 5 runs, machine shared and noisy):
 * - with SHA-NI (~1.7 GB/s per core): 1 stream inline 702 / worker 857 MB/s, 4 parallel streams inline
 *   879 / worker 611 MB/s; 3 parallel loopback HTTP downloads: inline 256-411 / worker 199-385 MB/s.
 *   Hashing costs < 1 ms per MiB, so the copy and messaging of the pool do not pay off with parallel
 *   layers (what a pull does).
 * - without SHA-NI (`OPENSSL_ia32cap=:~0x20000000`, ~310-490 MB/s per core, like the reference machine
 *   of docs/design/performance.md): 1 stream inline 311 / worker 363, 4 streams inline 368 / worker 417 MB/s, and the
 *   main thread's event-loop utilization drops from 0.74-0.92 (inline) to 0.18-0.62 (worker), leaving
 *   it free for HTTP parsing.
 * - whole `kimg pull` of the 1 GiB image (SHA-NI, node:http transport, machine shared):
 *   inline 3.1-4.6 s, peak RSS 81-96 MiB; worker (one thread, buffers handed over and back) 4.0-6.0 s,
 *   104-110 MiB (each worker isolate costs ~10 MiB, and the second core is the registry's).
 */
export const AUTO_INLINE_MIN_MBPS = 1000;

let measuredMBps: number | undefined;

/**
 * Single-thread sha256 speed of this CPU in MB/s: the best of 4 hashes of 512 KiB (~1-6 ms in all;
 * cached). The best, not the mean, so that a busy machine (other processes taking the core for a
 * moment) does not pass for a slow CPU.
 */
export function inlineSha256MBps(): number {
  if (measuredMBps === undefined) {
    const buf = Buffer.alloc(512 * 1024, 0x5a);
    createHash('sha256')
      .update(buf.subarray(0, 64 * 1024))
      .digest(); // warm up
    let best = Infinity;
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      createHash('sha256').update(buf).digest();
      best = Math.min(best, performance.now() - t0);
    }
    measuredMBps = buf.length / 1e6 / (Math.max(best, 0.001) / 1000);
  }
  return measuredMBps;
}

/** Resolves `auto` to `inline` or `worker` (see `AUTO_INLINE_MIN_MBPS`). */
export function resolveHashingMode(mode: HashingMode): 'worker' | 'inline' {
  if (mode !== 'auto') return mode;
  return inlineSha256MBps() >= AUTO_INLINE_MIN_MBPS ? 'inline' : 'worker';
}

/** Hashes on the calling thread with `crypto.createHash`. */
export class InlineHasherFactory implements HasherFactory {
  readonly kind: HashingMode = 'inline';
  create(algorithm: DigestAlgorithm): StreamHasher {
    let h: Hash | undefined = createHash(algorithm);
    const update = (chunk: Uint8Array) => {
      if (!h) throw new KimgError('INTERNAL', 'hasher used after digest() or dispose()');
      h.update(chunk);
    };
    return {
      update,
      take: update,
      capacity: () => Promise.resolve(),
      digest: () => {
        if (!h) return Promise.reject(new KimgError('INTERNAL', 'hasher used after digest() or dispose()'));
        const d = `${algorithm}:${h.digest('hex')}`;
        h = undefined;
        return Promise.resolve(d);
      },
      dispose() {
        h = undefined;
      },
    };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Options of the worker pool. */
export interface WorkerHasherOptions {
  /**
   * Worker threads; default = half the available cores (the main thread parses HTTP and writes), at
   * least 1, at most 4. Each costs ~10 MiB of resident memory.
   */
  workers?: number;
  /** Staging buffer per stream (bytes copied before one transfer); default 256 KiB. */
  chunkBytes?: number;
  /** Bytes in flight per stream before `capacity()` waits; default 2 MiB. */
  maxInFlightBytes?: number;
}

interface WorkerSlot {
  worker: Worker;
  streams: number;
  dead?: Error;
}

interface StreamState {
  id: number;
  inFlight: number;
  waiters: (() => void)[];
  onDigest?: { resolve: (hex: string) => void; reject: (e: Error) => void };
  error?: Error;
}

const WORKER_URL = new URL('./internal/hash-worker.js', import.meta.url);

/** Bytes of returned buffers kept for reuse per size and pool (beyond that they are left to the GC). */
const MAX_FREE_BYTES = 4 * 1024 * 1024;

/**
 * A pool of hashing worker threads. Streams are assigned to the least-loaded worker; workers are
 * started lazily and `unref`'d, so an idle pool never keeps the process alive.
 */
export class WorkerHasherPool implements HasherFactory {
  readonly kind: HashingMode = 'worker';
  private readonly size: number;
  private readonly chunkBytes: number;
  private readonly maxInFlight: number;
  private readonly slots: WorkerSlot[] = [];
  private readonly streams = new Map<number, StreamState>();
  /** Buffers returned by the workers, by size, ready for reuse. */
  private readonly free = new Map<number, Buffer[]>();
  private nextId = 1;
  private closed = false;

  constructor(options: WorkerHasherOptions = {}) {
    this.size = Math.max(1, Math.min(4, options.workers ?? Math.ceil(availableParallelism() / 2)));
    this.chunkBytes = options.chunkBytes ?? 256 * 1024;
    this.maxInFlight = options.maxInFlightBytes ?? 2 * 1024 * 1024;
  }

  private slot(): WorkerSlot {
    for (let i = this.slots.length - 1; i >= 0; i--) if (this.slots[i]?.dead) this.slots.splice(i, 1);
    if (this.slots.length < this.size) {
      // A hashing thread allocates next to nothing on its heap: small limits keep its isolate small.
      const worker = new Worker(WORKER_URL, {
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
      });
      worker.unref();
      const slot: WorkerSlot = { worker, streams: 0 };
      worker.on(
        'message',
        (m: { op: string; id: number; n?: number; hex?: string; message?: string; buf?: ArrayBuffer }) =>
          this.onMessage(m),
      );
      const fail = (err: Error) => {
        slot.dead = err;
        for (const s of this.streams.values())
          if ((s as StreamState & { slot?: WorkerSlot }).slot === slot) this.fail(s, err);
      };
      worker.on('error', (e) => fail(e));
      worker.on('exit', (code) => {
        if (!slot.dead) fail(new Error(`hash worker exited with code ${code}`));
      });
      this.slots.push(slot);
      return slot;
    }
    let best = this.slots[0] as WorkerSlot;
    for (const s of this.slots) if (s.streams < best.streams) best = s;
    return best;
  }

  private fail(s: StreamState, err: Error): void {
    s.error = new KimgError('INTERNAL', `hashing failed: ${err.message}`, { cause: err });
    s.onDigest?.reject(s.error);
    s.onDigest = undefined;
    for (const w of s.waiters.splice(0)) w();
  }

  private onMessage(m: {
    op: string;
    id: number;
    n?: number;
    hex?: string;
    message?: string;
    buf?: ArrayBuffer;
  }): void {
    if (m.buf) {
      let list = this.free.get(m.buf.byteLength);
      if (!list) this.free.set(m.buf.byteLength, (list = []));
      if (list.length * m.buf.byteLength < MAX_FREE_BYTES) list.push(Buffer.from(m.buf));
    }
    const s = this.streams.get(m.id);
    if (!s) return;
    if (m.op === 'a') {
      s.inFlight -= m.n ?? 0;
      if (s.inFlight < this.maxInFlight) for (const w of s.waiters.splice(0)) w();
    } else if (m.op === 'd') {
      this.streams.delete(m.id);
      s.onDigest?.resolve(m.hex ?? '');
    } else if (m.op === 'e') {
      this.streams.delete(m.id);
      this.fail(s, new Error(m.message ?? 'unknown hash worker error'));
    }
  }

  buffer(size: number): Buffer {
    // Not from Node's shared pool, so that its ArrayBuffer can be transferred.
    return this.free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
  }

  create(algorithm: DigestAlgorithm): StreamHasher {
    if (this.closed) throw new KimgError('INTERNAL', 'hasher pool is closed');
    const slot = this.slot();
    slot.streams++;
    const id = this.nextId++;
    const state: StreamState & { slot: WorkerSlot } = { id, inFlight: 0, waiters: [], slot };
    this.streams.set(id, state);
    const worker = slot.worker;
    const chunkBytes = this.chunkBytes;
    let staging: Uint8Array | undefined;
    let used = 0;
    let done = false;
    const release = () => {
      if (!done) {
        done = true;
        slot.streams--;
      }
    };
    const flush = () => {
      if (!staging || used === 0) return;
      const buf = used === staging.byteLength ? staging : staging.subarray(0, used);
      state.inFlight += used;
      worker.postMessage({ op: 'u', id, alg: algorithm, buf }, [buf.buffer as ArrayBuffer]);
      staging = undefined;
      used = 0;
    };
    const update = (chunk: Uint8Array) => {
      if (done) throw new KimgError('INTERNAL', 'hasher used after digest() or dispose()');
      if (state.error) throw state.error;
      let off = 0;
      while (off < chunk.byteLength) {
        if (!staging) {
          // A returned buffer, or a new one that is not from Node's shared pool (so that its
          // ArrayBuffer can be transferred).
          staging = this.buffer(chunkBytes);
          used = 0;
        }
        const n = Math.min(chunk.byteLength - off, staging.byteLength - used);
        staging.set(chunk.subarray(off, off + n), used);
        used += n;
        off += n;
        if (used === staging.byteLength) flush();
      }
    };
    return {
      update,
      take: (chunk) => {
        const ab = chunk.buffer;
        // Only a buffer that owns its whole ArrayBuffer can be transferred; anything else is copied.
        if (
          !(ab instanceof ArrayBuffer) ||
          chunk.byteOffset !== 0 ||
          ab.byteLength > chunk.byteLength * 2 ||
          chunk.byteLength < 4096
        ) {
          update(chunk);
          return;
        }
        if (done) throw new KimgError('INTERNAL', 'hasher used after digest() or dispose()');
        if (state.error) throw state.error;
        flush();
        state.inFlight += chunk.byteLength;
        worker.postMessage({ op: 'u', id, alg: algorithm, buf: chunk }, [ab]);
      },
      capacity: () => {
        if (state.error) return Promise.reject(state.error);
        if (state.inFlight < this.maxInFlight) return Promise.resolve();
        return new Promise<void>((resolve, reject) =>
          state.waiters.push(() => (state.error ? reject(state.error) : resolve())),
        );
      },
      digest: () => {
        if (done) return Promise.reject(new KimgError('INTERNAL', 'hasher used after digest() or dispose()'));
        if (state.error) return Promise.reject(state.error);
        flush();
        release();
        return new Promise<string>((resolve, reject) => {
          state.onDigest = { resolve: (hex) => resolve(`${algorithm}:${hex}`), reject };
          worker.postMessage({ op: 'd', id, alg: algorithm });
        });
      },
      dispose: () => {
        if (done) return;
        release();
        staging = undefined;
        this.streams.delete(id);
        if (!slot.dead) worker.postMessage({ op: 'x', id });
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const err = new Error('hasher pool closed');
    for (const s of this.streams.values()) this.fail(s, err);
    this.streams.clear();
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate().catch(() => 0)));
  }
}

/** Creates the hasher factory for a mode (`auto` is resolved here, once). */
export function createHasherFactory(mode: HashingMode, options?: WorkerHasherOptions): HasherFactory {
  return resolveHashingMode(mode) === 'worker' ? new WorkerHasherPool(options) : new InlineHasherFactory();
}
