/**
 * A clock that moves only when told to, for step tables and anything else that must not wait:
 * `sleep(ms)` moves the clock forward by `ms` and resolves at once (rejecting with the signal's
 * reason when it is aborted).
 */
import type { Clock } from '../../src/clock/index.js';

export class FakeClock implements Clock {
  private t: number;

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    this.t += ms;
    return Promise.resolve();
  }

  /** Moves the clock forward (or back, with a negative value) by `ms`. */
  advance(ms: number): void {
    this.t += ms;
  }

  /** Sets the clock to `ms`. */
  set(ms: number): void {
    this.t = ms;
  }
}
