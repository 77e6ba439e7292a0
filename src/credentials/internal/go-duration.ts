/**
 * Go `time.Duration` text, as `metav1.Duration` reads and writes it in `CredentialProviderConfig`
 * (`defaultCacheDuration: 10m`) and `CredentialProviderResponse` (`cacheDuration: "6h0m0s"`):
 * `time.ParseDuration` and `Duration.String`, in nanoseconds held as bigint.
 */

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5 micro sign
  μs: 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX_NS = 2n ** 63n - 1n;

/**
 * `time.ParseDuration`: `[-+]?(\d*(\.\d*)?unit)+` or `0`; returns nanoseconds, or `undefined` where Go
 * returns an error (syntax, unknown unit, overflow of int64).
 */
export function parseGoDuration(text: string): bigint | undefined {
  let s = text;
  let neg = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') return undefined;
  let total = 0n;
  while (s !== '') {
    const m = /^(\d*)(?:\.(\d*))?/.exec(s);
    const intPart = m?.[1] ?? '';
    const fracPart = m?.[2];
    if (intPart === '' && (fracPart === undefined || fracPart === '')) return undefined;
    s = s.slice(m?.[0].length ?? 0);
    const u = /^[^0-9.]+/.exec(s)?.[0];
    if (u === undefined) return undefined; // missing unit
    const unit = UNIT_NS[u];
    if (unit === undefined) return undefined;
    s = s.slice(u.length);
    let v = BigInt(intPart === '' ? '0' : intPart) * unit;
    if (fracPart !== undefined && fracPart !== '') {
      // Go scales the fraction with float64 arithmetic and truncates; exact decimal arithmetic gives
      // the same result for every fraction that can matter (sub-nanosecond digits are dropped).
      const scale = 10n ** BigInt(fracPart.length);
      v += (BigInt(fracPart) * unit) / scale;
    }
    total += v;
    if (total > MAX_NS + (neg ? 1n : 0n)) return undefined;
  }
  return neg ? -total : total;
}

/** `Duration.String()`: `1h0m0s`, `6m0s`, `1.5s`, `100ms`, `0s`, `-1m0s`. */
export function formatGoDuration(ns: bigint): string {
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    // Sub-second: the largest unit that keeps a leading non-zero digit.
    let unit: string;
    let div: bigint;
    if (u < 1_000n) {
      unit = 'ns';
      div = 1n;
    } else if (u < 1_000_000n) {
      unit = 'µs';
      div = 1_000n;
    } else {
      unit = 'ms';
      div = 1_000_000n;
    }
    out = fraction(u, div) + unit;
  } else {
    const h = u / 3_600_000_000_000n;
    u -= h * 3_600_000_000_000n;
    const m = u / 60_000_000_000n;
    u -= m * 60_000_000_000n;
    const sec = fraction(u, 1_000_000_000n) + 's';
    out = h > 0n ? `${h}h${m}m${sec}` : m > 0n ? `${m}m${sec}` : sec;
  }
  return neg ? '-' + out : out;
}

function fraction(v: bigint, div: bigint): string {
  const whole = v / div;
  const rest = v % div;
  if (rest === 0n) return whole.toString();
  const digits = div.toString().length - 1;
  return `${whole}.${rest.toString().padStart(digits, '0').replace(/0+$/, '')}`;
}

/** Nanoseconds to milliseconds (floor), for timers and clocks. */
export function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}
