/**
 * Per-pod, per-image pull back-off: after a failed pull the kubelet waits before trying again, 10 s
 * after the first failure and doubling up to 5 minutes (10, 20, 40, 80, 160, 300, 300 … s). While the
 * window is open the container shows `ImagePullBackOff`.
 *
 * An entry forgets its history only after it has been idle (no failure recorded) for more than twice
 * the maximum (600 s): the next failure then starts again at 10 s. A successful pull does NOT reset a
 * live entry; the kubelet only garbage-collects expired entries after a success. The key is
 * `<podUID>_<image>` with the image exactly as the pod spells it.
 *
 * Time is injected (`Clock`, milliseconds), so tests step a fake clock and the state can be persisted
 * (`toJSON`/`fromJSON`, wall-clock milliseconds) to survive restarts.
 *
 * Source: client-go `util/flowcontrol/backoff.go` @ 32ce75a7 (no jitter: kubelet uses `NewBackOff`);
 * kubernetes `pkg/kubelet/kubelet.go` (`imageBackOffPeriod` 10 s, `MaxImageBackOff` 300 s),
 * `pkg/kubelet/images/image_manager.go` (key format, `Next` on failure, `GC` after success).
 */
import { systemClock, type Clock } from '../clock/index.js';
import { KimgError } from '../errors/index.js';

export { systemClock, type Clock };

/** The kubelet's initial image pull back-off (`imageBackOffPeriod`): 10 s. */
export const IMAGE_BACKOFF_INITIAL_MS = 10_000;
/** The kubelet's maximum image pull back-off (`MaxImageBackOff`): 300 s, the limit the Images page names. */
export const IMAGE_BACKOFF_MAX_MS = 300_000;

/** Options of `Backoff`; defaults are the kubelet's image back-off. */
export interface BackoffOptions {
  /** First window after a failure. Default `IMAGE_BACKOFF_INITIAL_MS`. */
  initialMs?: number;
  /** Cap of the doubling; entries idle for more than twice this expire. Default `IMAGE_BACKOFF_MAX_MS`. */
  maxMs?: number;
  /** Time source. Default `systemClock`. */
  clock?: Clock;
}

/** The serializable state of a `Backoff` (`toJSON`), with times in the clock's milliseconds. */
export interface BackoffState {
  version: 1;
  initialMs: number;
  maxMs: number;
  entries: Array<{ key: string; backoffMs: number; lastUpdateMs: number }>;
}

interface Entry {
  backoffMs: number;
  lastUpdateMs: number;
}

/** The back-off key the kubelet uses: `<podUID>_<image>`, the image as the pod spells it. */
export function backoffKey(podUID: string, image: string): string {
  return `${podUID}_${image}`;
}

function checkDuration(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `back-off ${name} must be a finite, non-negative number of milliseconds, got ${String(v)}`,
      {
        input: String(v),
      },
    );
  }
  return v;
}

/**
 * Exponential back-off per key (see the module comment). Not safe to share between processes; within
 * one process every method is synchronous, so no locking is needed.
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();

  /** @throws KimgError `INVALID_ARGUMENT` for a negative or non-finite duration. */
  constructor(options: BackoffOptions = {}) {
    this.initialMs = checkDuration('initialMs', options.initialMs ?? IMAGE_BACKOFF_INITIAL_MS);
    this.maxMs = checkDuration('maxMs', options.maxMs ?? IMAGE_BACKOFF_MAX_MS);
    this.clock = options.clock ?? systemClock;
  }

  /** Whether an entry last updated at `lastUpdateMs` has been idle for more than twice the maximum at `eventTimeMs`. */
  private expired(eventTimeMs: number, lastUpdateMs: number): boolean {
    return eventTimeMs - lastUpdateMs > 2 * this.maxMs;
  }

  /** The current window of `key` in milliseconds; 0 when there is no entry. */
  get(key: string): number {
    return this.entries.get(key)?.backoffMs ?? 0;
  }

  /**
   * Records a failure: a new or expired (as of `eventTimeMs`) entry starts at `initialMs`, a live one
   * doubles up to `maxMs`. The entry's update time is the clock's now.
   */
  next(key: string, eventTimeMs: number = this.clock.now()): void {
    const entry = this.entries.get(key);
    const now = this.clock.now();
    if (entry === undefined || this.expired(eventTimeMs, entry.lastUpdateMs)) {
      this.entries.set(key, { backoffMs: this.initialMs, lastUpdateMs: now });
    } else {
      entry.backoffMs = Math.min(entry.backoffMs * 2, this.maxMs);
      entry.lastUpdateMs = now;
    }
  }

  /** Forgets `key` entirely. */
  reset(key: string): void {
    this.entries.delete(key);
  }

  /**
   * Whether less than the current window has passed between `eventTimeMs` and the clock's now, for a
   * live entry (client-go `IsInBackOffSince`).
   */
  isInBackOffSince(key: string, eventTimeMs: number): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined || this.expired(eventTimeMs, entry.lastUpdateMs)) return false;
    return this.clock.now() - eventTimeMs < entry.backoffMs;
  }

  /**
   * Whether less than the current window has passed since the entry's last failure, as of
   * `eventTimeMs` (default: now). This is the kubelet's check before each pull.
   */
  isInBackOffSinceUpdate(key: string, eventTimeMs: number = this.clock.now()): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined || this.expired(eventTimeMs, entry.lastUpdateMs)) return false;
    return eventTimeMs - entry.lastUpdateMs < entry.backoffMs;
  }

  /** Drops only the entries idle for more than twice the maximum; live entries keep their window. */
  gc(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.entries)
      if (this.expired(now, entry.lastUpdateMs)) this.entries.delete(key);
  }

  /** The keys currently held (expired ones included until `gc`). */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** The state as plain data, to persist and later restore with `Backoff.fromJSON`. */
  toJSON(): BackoffState {
    return {
      version: 1,
      initialMs: this.initialMs,
      maxMs: this.maxMs,
      entries: [...this.entries].map(([key, e]) => ({
        key,
        backoffMs: e.backoffMs,
        lastUpdateMs: e.lastUpdateMs,
      })),
    };
  }

  /**
   * Restores a `Backoff` from `toJSON` output (for example read back from a file).
   *
   * @throws KimgError `INVALID_ARGUMENT` naming the first problem when `state` is not a version-1
   *   back-off state.
   */
  static fromJSON(state: unknown, options: { clock?: Clock } = {}): Backoff {
    const bad = (what: string) =>
      new KimgError(
        'INVALID_ARGUMENT',
        `not a kimg back-off state: ${what}; expected the output of Backoff.toJSON() (version 1)`,
      );
    if (typeof state !== 'object' || state === null) throw bad('not an object');
    const s = state as Record<string, unknown>;
    if (s['version'] !== 1) throw bad(`version is ${JSON.stringify(s['version'])}`);
    if (!Array.isArray(s['entries'])) throw bad('entries is not an array');
    const b = new Backoff({
      initialMs: s['initialMs'] as number,
      maxMs: s['maxMs'] as number,
      clock: options.clock ?? systemClock,
    });
    for (const [i, raw] of (s['entries'] as unknown[]).entries()) {
      const e = raw as Record<string, unknown> | null;
      if (
        typeof e !== 'object' ||
        e === null ||
        typeof e['key'] !== 'string' ||
        typeof e['backoffMs'] !== 'number' ||
        !Number.isFinite(e['backoffMs']) ||
        typeof e['lastUpdateMs'] !== 'number' ||
        !Number.isFinite(e['lastUpdateMs'])
      ) {
        throw bad(`entries[${i}] is not {key, backoffMs, lastUpdateMs}`);
      }
      b.entries.set(e['key'], { backoffMs: e['backoffMs'], lastUpdateMs: e['lastUpdateMs'] });
    }
    return b;
  }
}
