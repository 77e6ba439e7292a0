/**
 * Image pull back-off that survives the process: the kubelet keeps its per-pod, per-image back-off and
 * the last pull error in memory for as long as it runs; kimg's `kimg ensure` is one process per call,
 * so the same state lives in a file under the root and every call sees it exactly as a long-running
 * agent would.
 *
 * `PullBackoff` is the manager's back-off: the client-go `Backoff` (10 s doubling to 300 s, expiry after
 * 600 s idle; see backoff.ts) plus the last error per key (`<reason>: <message>`, which the kubelet
 * appends to the `Back-off pulling image …` status message). Every operation reads the store, applies
 * one change and writes it back, so concurrent `kimg ensure` processes lose at most a race on the same
 * key (last writer wins) and never corrupt the file.
 *
 * Stores: `MemoryBackoffStore` (tests, one process) and `FileBackoffStore` —
 * `<root>/manager/backoff.json`, written to a temporary file (0600), fsynced, renamed over the old one,
 * directory fsynced (containerd-style durable replace).
 *
 * Source: kubernetes `pkg/kubelet/images/image_manager.go` (backOff, prevPullErrMsg), client-go
 * `util/flowcontrol/backoff.go`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KimgError, quote } from '../errors/index.js';
import { ensureDir, writeFileAtomic } from '../durable/index.js';
import { systemClock, type Clock } from '../clock/index.js';
import { Backoff, IMAGE_BACKOFF_INITIAL_MS, IMAGE_BACKOFF_MAX_MS, type BackoffState } from './backoff.js';

/** What a back-off store holds: the back-off entries and the last error per key. */
export interface BackoffSnapshot {
  version: 1;
  backoff: BackoffState;
  /** `<podUID>_<image>` → `<reason>: <message>` of the last failed pull. */
  lastErrors: Record<string, string>;
}

/** Persistence for `PullBackoff`. */
export interface BackoffStore {
  /** The stored snapshot; `undefined` when nothing was stored yet. @throws KimgError `STORE_CORRUPT`, `STORE_IO`. */
  load(): Promise<BackoffSnapshot | undefined>;
  /** Replaces the stored snapshot atomically. @throws KimgError `STORE_IO`. */
  save(snapshot: BackoffSnapshot): Promise<void>;
  /** Where the state lives, for messages (`memory` or a file path). */
  readonly location: string;
}

/** A store in memory: the state lives as long as the object. */
export class MemoryBackoffStore implements BackoffStore {
  readonly location = 'memory';
  private snapshot: BackoffSnapshot | undefined;

  async load(): Promise<BackoffSnapshot | undefined> {
    return this.snapshot === undefined ? undefined : structuredClone(this.snapshot);
  }

  async save(snapshot: BackoffSnapshot): Promise<void> {
    this.snapshot = structuredClone(snapshot);
  }
}

/** The back-off file under a kimg root: `<root>/manager/backoff.json`. */
export function backoffFilePath(root: string): string {
  return join(root, 'manager', 'backoff.json');
}

function checkSnapshot(raw: unknown, file: string): BackoffSnapshot {
  const bad = (what: string) =>
    new KimgError(
      'STORE_CORRUPT',
      `back-off state ${quote(file)} is not valid (${what}); remove the file to reset all image pull back-offs`,
      { file },
    );
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a JSON object');
  const s = raw as Record<string, unknown>;
  if (s['version'] !== 1) throw bad(`version is ${JSON.stringify(s['version'])}, expected 1`);
  try {
    Backoff.fromJSON(s['backoff']);
  } catch (e) {
    throw bad(e instanceof Error ? e.message : String(e));
  }
  const errors = s['lastErrors'];
  if (typeof errors !== 'object' || errors === null || Array.isArray(errors))
    throw bad('lastErrors is not an object');
  for (const [k, v] of Object.entries(errors))
    if (typeof v !== 'string') throw bad(`lastErrors[${JSON.stringify(k)}] is not a string`);
  return raw as BackoffSnapshot;
}

/** The back-off state in `<root>/manager/backoff.json` (see the module comment). */
export class FileBackoffStore implements BackoffStore {
  readonly location: string;

  /** `root` is the kimg root; the file is `backoffFilePath(root)`. */
  constructor(root: string) {
    this.location = backoffFilePath(root);
  }

  async load(): Promise<BackoffSnapshot | undefined> {
    let text: string;
    try {
      text = await readFile(this.location, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new KimgError(
        'STORE_IO',
        `cannot read back-off state ${quote(this.location)}: ${(e as Error).message}`,
        {
          file: this.location,
          cause: e,
        },
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new KimgError(
        'STORE_CORRUPT',
        `back-off state ${quote(this.location)} is not JSON; remove the file to reset all image pull back-offs`,
        { file: this.location, cause: e },
      );
    }
    return checkSnapshot(raw, this.location);
  }

  async save(snapshot: BackoffSnapshot): Promise<void> {
    await ensureDir(dirname(this.location));
    await writeFileAtomic(this.location, JSON.stringify(snapshot, null, 1) + '\n');
  }
}

/** One back-off entry as `listBackoff` shows it. */
export interface BackoffEntry {
  /** `<podUID>_<image>`. */
  key: string;
  podUID: string;
  /** The image as the pod spells it. */
  image: string;
  /** The current window. */
  backoffMs: number;
  /** When the last failure was recorded (clock milliseconds). */
  lastUpdateMs: number;
  /** When the window ends: `lastUpdateMs + backoffMs`. */
  retryAtMs: number;
  /** Whether a pull now would be refused with `ImagePullBackOff`. */
  inBackOff: boolean;
  /** Idle for more than twice the maximum: the next failure starts again at the initial window. */
  expired: boolean;
  /** `<reason>: <message>` of the last failed pull, until the next attempt clears it. */
  lastError?: string;
}

/** Which entries `clear` removes: all of them, one key, or those of a pod and/or an image. */
export interface BackoffFilter {
  key?: string;
  podUID?: string;
  image?: string;
}

/** Options of `PullBackoff`; defaults are the kubelet's. */
export interface PullBackoffOptions {
  store?: BackoffStore;
  clock?: Clock;
  initialMs?: number;
  maxMs?: number;
}

/** Splits `<podUID>_<image>` (pod UIDs never contain `_`). */
export function splitBackoffKey(key: string): { podUID: string; image: string } {
  const i = key.indexOf('_');
  return i < 0 ? { podUID: key, image: '' } : { podUID: key.slice(0, i), image: key.slice(i + 1) };
}

function matches(key: string, filter: BackoffFilter): boolean {
  if (filter.key !== undefined && key !== filter.key) return false;
  const { podUID, image } = splitBackoffKey(key);
  if (filter.podUID !== undefined && podUID !== filter.podUID) return false;
  if (filter.image !== undefined && image !== filter.image) return false;
  return true;
}

/** The outcome of `PullBackoff.begin`. */
export type BackoffGate =
  { inBackOff: true; backoffMs: number; retryAtMs: number; lastError?: string } | { inBackOff: false };

/** The image manager's persisted back-off (see the module comment). */
export class PullBackoff {
  readonly store: BackoffStore;
  readonly clock: Clock;
  readonly initialMs: number;
  readonly maxMs: number;
  private chain: Promise<unknown> = Promise.resolve();

  /** @throws KimgError `INVALID_ARGUMENT` for a negative or non-finite duration. */
  constructor(options: PullBackoffOptions = {}) {
    this.store = options.store ?? new MemoryBackoffStore();
    this.clock = options.clock ?? systemClock;
    const probe = new Backoff({
      initialMs: options.initialMs ?? IMAGE_BACKOFF_INITIAL_MS,
      maxMs: options.maxMs ?? IMAGE_BACKOFF_MAX_MS,
      clock: this.clock,
    });
    this.initialMs = probe.initialMs;
    this.maxMs = probe.maxMs;
  }

  /** Runs `fn` after every earlier operation of this object (one writer at a time in a process). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async read(): Promise<{ backoff: Backoff; lastErrors: Record<string, string> }> {
    const snap = await this.store.load();
    const state: BackoffState = snap?.backoff ?? {
      version: 1,
      initialMs: this.initialMs,
      maxMs: this.maxMs,
      entries: [],
    };
    // The configured windows win over the stored ones; the entries carry over.
    const backoff = Backoff.fromJSON(
      { ...state, initialMs: this.initialMs, maxMs: this.maxMs },
      { clock: this.clock },
    );
    return { backoff, lastErrors: { ...(snap?.lastErrors ?? {}) } };
  }

  private async write(backoff: Backoff, lastErrors: Record<string, string>): Promise<void> {
    const live = new Set(backoff.keys());
    for (const k of Object.keys(lastErrors)) if (!live.has(k)) delete lastErrors[k];
    await this.store.save({ version: 1, backoff: backoff.toJSON(), lastErrors });
  }

  /**
   * The kubelet's check before a pull: in back-off → the window and the last error; otherwise the
   * stored error is cleared (a new attempt starts) and the caller may pull.
   */
  begin(key: string): Promise<BackoffGate> {
    return this.serial(async () => {
      const { backoff, lastErrors } = await this.read();
      if (backoff.isInBackOffSinceUpdate(key, this.clock.now())) {
        const entry = backoff.toJSON().entries.find((e) => e.key === key);
        const backoffMs = backoff.get(key);
        const gate: BackoffGate = {
          inBackOff: true,
          backoffMs,
          retryAtMs: (entry?.lastUpdateMs ?? 0) + backoffMs,
        };
        const last = lastErrors[key];
        if (last !== undefined) gate.lastError = last;
        return gate;
      }
      if (key in lastErrors) {
        delete lastErrors[key];
        await this.write(backoff, lastErrors);
      }
      return { inBackOff: false };
    });
  }

  /** Records a failed pull: the window grows (`Backoff.next`) and `lastError` is kept for the status message. */
  recordFailure(key: string, lastError: string): Promise<void> {
    return this.serial(async () => {
      const { backoff, lastErrors } = await this.read();
      backoff.next(key, this.clock.now());
      lastErrors[key] = lastError;
      await this.write(backoff, lastErrors);
    });
  }

  /** After a successful pull: drops expired entries only (a success does not reset a live window). */
  recordSuccess(): Promise<void> {
    return this.serial(async () => {
      const { backoff, lastErrors } = await this.read();
      const before = backoff.keys().length;
      backoff.gc();
      if (backoff.keys().length !== before) await this.write(backoff, lastErrors);
    });
  }

  /** Every entry, sorted by key, as of the clock's now. */
  list(): Promise<BackoffEntry[]> {
    return this.serial(async () => {
      const { backoff, lastErrors } = await this.read();
      const now = this.clock.now();
      const state = backoff.toJSON();
      return state.entries
        .map((e): BackoffEntry => {
          const entry: BackoffEntry = {
            key: e.key,
            ...splitBackoffKey(e.key),
            backoffMs: e.backoffMs,
            lastUpdateMs: e.lastUpdateMs,
            retryAtMs: e.lastUpdateMs + e.backoffMs,
            inBackOff: backoff.isInBackOffSinceUpdate(e.key, now),
            expired: now - e.lastUpdateMs > 2 * this.maxMs,
          };
          const last = lastErrors[e.key];
          if (last !== undefined) entry.lastError = last;
          return entry;
        })
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    });
  }

  /** Removes the matching entries (all without a filter) and their last errors; returns the keys removed. */
  clear(filter: BackoffFilter = {}): Promise<string[]> {
    return this.serial(async () => {
      const { backoff, lastErrors } = await this.read();
      const removed = backoff.keys().filter((k) => matches(k, filter));
      for (const k of removed) {
        backoff.reset(k);
        delete lastErrors[k];
      }
      if (removed.length > 0) await this.write(backoff, lastErrors);
      return removed.sort();
    });
  }
}
