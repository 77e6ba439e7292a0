/**
 * Retries as a policy object, and per-host back-off.
 *
 * What is retryable (go-containerregistry `pkg/v1/remote/options.go` defaults and
 * `transport/error.go`): transport failures that may be transient (connection reset or refused,
 * unexpected EOF, timeouts) and the statuses 408, 429, 500, 502, 503, 504 (plus registry error codes
 * `UNAVAILABLE` / `TOOMANYREQUESTS`). Delays grow exponentially with jitter; a server's `Retry-After`
 * (seconds or HTTP date) replaces the computed delay when it is within `maxRetryAfterMs`.
 *
 * Per-host back-off (regclient `internal/reghttp`): a host that failed is avoided by every request
 * until its back-off passes, not just by the request that saw the failure; successes decay it.
 *
 * Difference from containerd (deliberate): containerd retries 429 immediately and ignores
 * `Retry-After`; kimg waits as the server asks, as the distribution spec recommends.
 */
import { systemClock, type Clock } from '../clock/index.js';
import { KimgError } from '../errors/index.js';
import { BODY_STALLED_CODE, CONNECT_TIMEOUT_CODE, HEADERS_STALLED_CODE } from './internal/h1.js';

/** Tunables of a {@link RetryPolicy}. */
export interface RetryPolicyOptions {
  /** Total attempts per request, first included. Default 5 (containerd's per-host limit). */
  maxAttempts: number;
  /** First back-off delay. Default 200 ms. */
  baseDelayMs: number;
  /** Cap on a computed delay. Default 10 s. */
  maxDelayMs: number;
  /** Fraction of each delay that is randomised, 0..1. Default 0.5 (delay ∈ [d/2, d]). */
  jitter: number;
  /** Longest `Retry-After` kimg will wait; longer asks fail at once as `TOO_MANY_REQUESTS`. Default 60 s. */
  maxRetryAfterMs: number;
  /** HTTP statuses that may succeed on retry. */
  retryStatuses: readonly number[];
}

/** Defaults of {@link RetryPolicy}; each documented on {@link RetryPolicyOptions}. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicyOptions> = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  jitter: 0.5,
  maxRetryAfterMs: 60_000,
  retryStatuses: Object.freeze([408, 429, 500, 502, 503, 504]),
});

/**
 * Error codes of Node sockets and of kimg's own transport (stalls, connect timeout) that mean "the
 * network failed, it may work next time".
 */
const RETRYABLE_NET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  CONNECT_TIMEOUT_CODE,
  HEADERS_STALLED_CODE,
  BODY_STALLED_CODE,
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** True when a thrown transport error (not a KimgError) is worth retrying. */
export function isRetryableNetworkError(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_NET_CODES.has(code)) return true;
    const msg = (cur as { message?: unknown }).message;
    if (
      typeof msg === 'string' &&
      /other side closed|socket hang up|unexpected end|premature close/i.test(msg)
    )
      return true;
  }
  return false;
}

/**
 * Parses a `Retry-After` header (delta-seconds or HTTP-date) into milliseconds from `now`.
 * Returns undefined when absent or unparsable; never negative.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now: number = Date.now(),
): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const t = v.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    return Number.isSafeInteger(n) ? n * 1000 : undefined;
  }
  const d = Date.parse(t);
  if (Number.isNaN(d)) return undefined;
  return Math.max(0, d - now);
}

/** A retry policy: which failures to retry, how long to wait. Pure apart from `random`. */
export class RetryPolicy {
  readonly options: Readonly<RetryPolicyOptions>;
  private readonly random: () => number;

  constructor(options: Partial<RetryPolicyOptions> = {}, random: () => number = Math.random) {
    const o = { ...DEFAULT_RETRY_POLICY, ...options };
    if (!Number.isInteger(o.maxAttempts) || o.maxAttempts < 1)
      throw new KimgError(
        'INVALID_ARGUMENT',
        `retry maxAttempts must be an integer ≥ 1, got ${String(o.maxAttempts)}`,
      );
    if (!(o.baseDelayMs >= 0) || !(o.maxDelayMs >= 0))
      throw new KimgError('INVALID_ARGUMENT', 'retry delays must be ≥ 0');
    if (!(o.jitter >= 0 && o.jitter <= 1))
      throw new KimgError('INVALID_ARGUMENT', `retry jitter must be within 0..1, got ${String(o.jitter)}`);
    this.options = Object.freeze(o);
    this.random = random;
  }

  /** Whether an HTTP status may succeed on retry. */
  isRetryableStatus(status: number): boolean {
    return this.options.retryStatuses.includes(status);
  }

  /**
   * The delay before attempt `attempt + 1`, after `attempt` (1-based) failed; `undefined` when no
   * attempts are left. `retryAfterMs` (from the server) wins over the computed back-off when present.
   */
  delayBeforeRetry(attempt: number, retryAfterMs?: number): number | undefined {
    if (attempt >= this.options.maxAttempts) return undefined;
    if (retryAfterMs !== undefined) return retryAfterMs;
    return this.backoff(attempt);
  }

  /** Exponential back-off for the n-th consecutive failure (1-based), with jitter, capped. */
  backoff(failures: number): number {
    const exp = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** Math.max(0, failures - 1));
    const j = this.options.jitter;
    return Math.round(exp * (1 - j) + exp * j * this.random());
  }
}

export type { Clock } from '../clock/index.js';

/** The real clock (the one `systemClock` of src/clock). */
export const SYSTEM_CLOCK: Clock = systemClock;

/**
 * Per-host back-off state. `failure(host, delay)` pushes the host's "not before" time out;
 * `success(host)` decays the failure count; `waitFor(host)` is how long a new request must wait.
 */
export class HostBackoff {
  private readonly state = new Map<string, { failures: number; notBefore: number }>();

  constructor(private readonly clock: Clock) {}

  /** Records a failure of `host` and that it should not be asked again for `delayMs`. */
  failure(host: string, delayMs: number): number {
    const s = this.state.get(host) ?? { failures: 0, notBefore: 0 };
    s.failures++;
    s.notBefore = Math.max(s.notBefore, this.clock.now() + delayMs);
    this.state.set(host, s);
    return s.failures;
  }

  /** Records a success: halves the failure count and clears the wait once it reaches zero. */
  success(host: string): void {
    const s = this.state.get(host);
    if (!s) return;
    s.failures = Math.floor(s.failures / 2);
    if (s.failures === 0) this.state.delete(host);
  }

  /** Consecutive failures currently recorded for `host`. */
  failures(host: string): number {
    return this.state.get(host)?.failures ?? 0;
  }

  /** Milliseconds a request to `host` should wait now (0 = go). */
  waitFor(host: string): number {
    const s = this.state.get(host);
    if (!s) return 0;
    return Math.max(0, s.notBefore - this.clock.now());
  }
}
