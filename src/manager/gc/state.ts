/**
 * What image GC remembers between runs (first detection and last use per image key), in memory or in
 * a state file, and the usage hints kimg's own store provides from its records.
 */
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { KimgError, quote } from '../../errors/index.js';
import { ensureDir, writeFileAtomic } from '../../durable/index.js';
import type { ImageRecord } from '../../store/index.js';
import { imageRecordKey } from '../image-service.js';

/** What image GC remembers between runs. Times are clock milliseconds; `lastUsed` 0 = never. */
export interface ImageGCState {
  /** When tracking began (the kubelet's `beganGC`). */
  since: number;
  /** Consecutive failed runs (the kubelet's `prevImageGCFailed`, as a count). */
  consecutiveFailures: number;
  images: Record<string, { firstDetected: number; lastUsed: number }>;
}

/** Where the tracking state lives. */
export interface ImageGCStateStore {
  /** The state, or undefined when there is none yet. @throws KimgError `STORE_CORRUPT`, `STORE_IO`. */
  load(): Promise<ImageGCState | undefined>;
  /** @throws KimgError `STORE_IO`. */
  save(state: ImageGCState): Promise<void>;
}

/** In-memory state: the kubelet's behaviour (a new process sees every image as new). */
export class MemoryImageGCStateStore implements ImageGCStateStore {
  private state: ImageGCState | undefined;
  async load(): Promise<ImageGCState | undefined> {
    return this.state === undefined ? undefined : structuredClone(this.state);
  }
  async save(state: ImageGCState): Promise<void> {
    this.state = structuredClone(state);
  }
}

/** The state file under a kimg root: `<root>/manager/image-gc.json`. */
export function imageGCStateFile(root: string): string {
  return join(root, 'manager', 'image-gc.json');
}

const STATE_VERSION = 1;

function toIso(ms: number): string | null {
  return ms > 0 ? new Date(ms).toISOString() : null;
}

/**
 * The state as a JSON file (`imageGCStateFile(root)`), written atomically (temp, fsync, rename), mode
 * 0600. Times are ISO 8601; `lastUsed: null` = never seen in use.
 */
export class FileImageGCStateStore implements ImageGCStateStore {
  readonly file: string;
  constructor(root: string) {
    this.file = imageGCStateFile(root);
  }

  private corrupt(what: string, cause?: unknown): KimgError {
    return new KimgError(
      'STORE_CORRUPT',
      `image GC state ${quote(this.file)} is not valid (${what}); remove the file to start tracking afresh (every image counts as newly detected)`,
      { file: this.file, ...(cause === undefined ? {} : { cause }) },
    );
  }

  async load(): Promise<ImageGCState | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new KimgError('STORE_IO', `cannot read image GC state ${quote(this.file)}: ${String(e)}`, {
        file: this.file,
        cause: e,
      });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw this.corrupt('not JSON', e);
    }
    const o = raw as { version?: unknown; since?: unknown; consecutiveFailures?: unknown; images?: unknown };
    if (typeof o !== 'object' || o === null || o.version !== STATE_VERSION)
      throw this.corrupt('no version 1');
    const time = (v: unknown, what: string): number => {
      if (v === null) return 0;
      const t = typeof v === 'string' ? Date.parse(v) : NaN;
      if (Number.isNaN(t)) throw this.corrupt(`${what} is not an ISO 8601 time`);
      return t;
    };
    const since = time(o.since, 'since');
    const failures = o.consecutiveFailures;
    if (typeof failures !== 'number' || !Number.isInteger(failures) || failures < 0)
      throw this.corrupt('consecutiveFailures is not a count');
    if (typeof o.images !== 'object' || o.images === null || Array.isArray(o.images))
      throw this.corrupt('images is not an object');
    const images: ImageGCState['images'] = {};
    for (const [k, v] of Object.entries(o.images as Record<string, unknown>)) {
      const e = v as { firstDetected?: unknown; lastUsed?: unknown } | null;
      if (typeof e !== 'object' || e === null)
        throw this.corrupt(`images[${JSON.stringify(k)}] is not an object`);
      images[k] = {
        firstDetected: time(e.firstDetected, `images[${JSON.stringify(k)}].firstDetected`),
        lastUsed: time(e.lastUsed ?? null, `images[${JSON.stringify(k)}].lastUsed`),
      };
    }
    return { since, consecutiveFailures: failures, images };
  }

  async save(state: ImageGCState): Promise<void> {
    const images: Record<string, { firstDetected: string | null; lastUsed: string | null }> = {};
    for (const k of Object.keys(state.images).sort()) {
      const e = state.images[k] as { firstDetected: number; lastUsed: number };
      images[k] = { firstDetected: toIso(e.firstDetected), lastUsed: toIso(e.lastUsed) };
    }
    const text =
      JSON.stringify(
        {
          version: STATE_VERSION,
          since: toIso(state.since),
          consecutiveFailures: state.consecutiveFailures,
          images,
        },
        null,
        1,
      ) + '\n';
    // Durable replace: temp file, fsync, rename, directory fsync (0600 in a 0700 directory).
    await ensureDir(dirname(this.file));
    await writeFileAtomic(this.file, text);
  }
}

/** Per image key, what the image service knows about first detection and last use (clock ms). */
export type ImageUsageHints = () => Promise<Map<string, { firstDetected?: number; lastUsed?: number }>>;

/**
 * Hints from kimg's image records: per (image id, handler), first detection = the earliest
 * `pulledAt` of its records (kimg saw the image when it wrote it) and last use = the latest `lastUsed`.
 */
export function storeUsageHints(store: { images: { list(): Promise<ImageRecord[]> } }): ImageUsageHints {
  return async () => {
    const out = new Map<string, { firstDetected?: number; lastUsed?: number }>();
    for (const r of await store.images.list()) {
      const key = imageRecordKey(r.imageId, r.runtimeHandler);
      const pulled = Date.parse(r.pulledAt);
      const used = Date.parse(r.lastUsed);
      const e = out.get(key) ?? {};
      if (!Number.isNaN(pulled)) e.firstDetected = Math.min(e.firstDetected ?? Infinity, pulled);
      if (!Number.isNaN(used)) e.lastUsed = Math.max(e.lastUsed ?? 0, used);
      out.set(key, e);
    }
    return out;
  };
}
