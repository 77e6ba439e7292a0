/**
 * Small concurrency helpers of the pull pipeline: the per-pull download limit, waiting for every
 * download before failing, a cancellable sleep and the pipeline's `ABORTED` error.
 */
import { setMaxListeners } from 'node:events';
import { systemClock } from '../../clock/index.js';
import { KimgError } from '../../errors/index.js';

/** A counting semaphore for the per-pull download limit. */
export type Limiter = <T>(fn: () => Promise<T>) => Promise<T>;

/** A {@link Limiter} that runs at most `n` functions at once, in call order. */
export function limiter(n: number): Limiter {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/** Waits for every promise; rejects with the first failure once all have settled (no dangling writers). */
export async function settleAll(promises: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Resolves after `ms` of the system clock, or rejects with `ABORTED` as soon as `signal` aborts. */
export async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await systemClock.sleep(ms, signal);
  } catch (e) {
    throw signal?.aborted ? abortError(signal) : e;
  }
}

/** The error of a pull cancelled through its signal. */
export function abortError(signal: AbortSignal): KimgError {
  return new KimgError('ABORTED', 'the pull was cancelled', { cause: signal.reason });
}

/**
 * A controller that aborts (with the same reason) when `outer` does, until `unlink`; its signal takes
 * any number of listeners.
 */
export function followSignal(outer: AbortSignal | undefined): {
  controller: AbortController;
  unlink: () => void;
} {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  const forward = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) forward();
  else outer?.addEventListener('abort', forward, { once: true });
  return { controller, unlink: () => outer?.removeEventListener('abort', forward) };
}
