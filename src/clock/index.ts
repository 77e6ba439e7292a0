/**
 * The one clock of kimg: the current time and a cancellable sleep, injected wherever time decides
 * something (registry retries and token lifetimes, credential caches, image pull back-off, image GC,
 * pull-record verification), so that tests drive time with a fake clock instead of waiting.
 *
 * `now()` is milliseconds since the Unix epoch (what `Date.now()` returns): values are stored in
 * records and state files, compared with file timestamps and printed as dates, so a clock is an
 * epoch clock, not a monotonic one.
 */

/** A source of the current time and of delays; injectable for tests. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Resolves after `ms`, or rejects with the signal's reason as soon as `signal` aborts (at once
   * when it already has).
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: `Date.now()` and `setTimeout`. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  sleep: (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(t);
        reject(signal?.reason);
      };
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
});
