/**
 * Observability of the registry client without cost or leaks.
 *
 * `node:diagnostics_channel` channels carry one message per HTTP request start, end (headers
 * received) and error, plus retries; subscribers pay, others do not (`hasSubscribers` is checked
 * first). Messages hold the method, the redacted URL (see `redactUrl`), the host, status, timing and
 * error code: never headers, never credentials. Modelled on undici `lib/core/diagnostics.js`.
 *
 * A human-readable debug log goes to stderr when `KIMG_DEBUG` is set (`1`, `true`, `*`, or a
 * comma-separated list containing `registry`), or to a `debug` callback given to the client.
 */
import diagnostics_channel from 'node:diagnostics_channel';

/** Channel names, stable API. */
export const REGISTRY_CHANNELS = Object.freeze({
  requestStart: 'kimg:registry:request:start',
  requestEnd: 'kimg:registry:request:end',
  requestError: 'kimg:registry:request:error',
  retry: 'kimg:registry:retry',
} as const);

/** Message of `kimg:registry:request:start`. */
export interface RequestStartMessage {
  id: number;
  method: string;
  /** Redacted URL. */
  url: string;
  host: string;
}
/** Message of `kimg:registry:request:end` (response headers received). */
export interface RequestEndMessage extends RequestStartMessage {
  status: number;
  durationMs: number;
}
/** Message of `kimg:registry:request:error`. */
export interface RequestErrorMessage extends RequestStartMessage {
  /** KimgError code of the failure. */
  code: string;
  message: string;
  durationMs: number;
}
/** Message of `kimg:registry:retry`. */
export interface RetryMessage {
  method: string;
  url: string;
  host: string;
  attempt: number;
  delayMs: number;
  reason: string;
}

export const startChannel = diagnostics_channel.channel(REGISTRY_CHANNELS.requestStart);
export const endChannel = diagnostics_channel.channel(REGISTRY_CHANNELS.requestEnd);
export const errorChannel = diagnostics_channel.channel(REGISTRY_CHANNELS.requestError);
export const retryChannel = diagnostics_channel.channel(REGISTRY_CHANNELS.retry);

/** A debug line sink, or undefined when debugging is off. */
export type DebugLog = ((line: string) => void) | undefined;

/**
 * The debug sink selected by `KIMG_DEBUG` in `env`, writing `kimg:registry <line>` to `write`
 * (default stderr), or undefined when debugging is off.
 */
export function debugFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  write: (text: string) => void = (t) => void process.stderr.write(t),
): DebugLog {
  const v = env.KIMG_DEBUG;
  if (!v) return undefined;
  const parts = v
    .toLowerCase()
    .split(',')
    .map((s) => s.trim());
  if (!parts.some((p) => p === '1' || p === 'true' || p === '*' || p === 'registry')) return undefined;
  return (line) => write(`kimg:registry ${line}\n`);
}
