/**
 * Go `time.Duration` text, as `metav1.Duration` reads and writes it in `CredentialProviderConfig`
 * (`defaultCacheDuration: 10m`) and `CredentialProviderResponse` (`cacheDuration: "6h0m0s"`), in
 * nanoseconds held as bigint. The grammar itself lives once in src/gotext (`goParseDuration`,
 * `goDurationString`); these are the credentials module's views of it.
 */
import { goDurationString, goParseDuration } from '../../gotext/index.js';

/**
 * `time.ParseDuration`: nanoseconds, or `undefined` where Go returns an error (syntax, unknown unit,
 * overflow of int64).
 */
export function parseGoDuration(text: string): bigint | undefined {
  const r = goParseDuration(text);
  return r.ok ? r.ns : undefined;
}

/** `Duration.String()`: `6h0m0s`, `1.5s`, `300ms`, `0s`. */
export function formatGoDuration(ns: bigint): string {
  return goDurationString(ns);
}

/** Nanoseconds to milliseconds (floor), for timers and clocks. */
export function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}
