/**
 * Go's text forms that kubelet configuration, containerd's `hosts.toml`, credential-provider files and
 * kubelet messages use, so kimg reads and writes them
 * byte for byte: `%q` quoting (`strconv.Quote`), the `time` package's own quoting, and
 * `time.Duration` both ways — `time.ParseDuration` (how the kubelet reads `imageMinimumGCAge: 2m`
 * through `metav1.Duration`) and `Duration.String()` (`2m0s`, `1h30m0s`, `300ms`). Durations are
 * signed 64-bit nanosecond counts, held as `bigint` so nothing is rounded.
 *
 * ParseDuration grammar: an optional sign, then one or more `<number><unit>` pairs where the number is
 * decimal with an optional fraction (`1.5h`, `.5s`, `1.s`) and the unit one of `ns`, `us`, `µs`
 * (U+00B5), `μs` (U+03BC), `ms`, `s`, `m`, `h`. `0` alone needs no unit; anything else without a unit
 * fails. Values beyond ±2⁶³−1 ns fail. Error texts are Go's.
 *
 * Source: Go `src/strconv/quote.go` (appendQuotedWith, IsPrint), `src/time/format.go`
 * (ParseDuration, leadingInt, leadingFraction, quote), `src/time/time.go` (Duration.String);
 * apimachinery `pkg/apis/meta/v1/duration.go` (durations are JSON strings).
 */

const UNICODE_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

function isGoPrintable(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7f;
  return UNICODE_PRINTABLE.test(String.fromCodePoint(cp));
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/**
 * Quotes a string as Go's `%q` / `strconv.Quote` does: double quotes; `"` and `\` escaped; printable
 * Unicode kept; `\a \b \f \n \r \t \v`; other control characters as `\xNN`, other unprintable runes as
 * `\uNNNN` / `\UNNNNNNNN` (lowercase hex). A lone UTF-16 surrogate becomes U+FFFD, as it would after
 * Go decoded the string.
 */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    let cp = ch.codePointAt(0) ?? 0;
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    if (cp === 0x22) out += '\\"';
    else if (cp === 0x5c) out += '\\\\';
    else if (isGoPrintable(cp)) out += String.fromCodePoint(cp);
    else if (cp === 0x07) out += '\\a';
    else if (cp === 0x08) out += '\\b';
    else if (cp === 0x0c) out += '\\f';
    else if (cp === 0x0a) out += '\\n';
    else if (cp === 0x0d) out += '\\r';
    else if (cp === 0x09) out += '\\t';
    else if (cp === 0x0b) out += '\\v';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + hex(cp, 2);
    else if (cp < 0x10000) out += '\\u' + hex(cp, 4);
    else out += '\\U' + hex(cp, 8);
  }
  return out + '"';
}

const MAX_INT64 = (1n << 63n) - 1n;
const LIMIT = 1n << 63n;

/** Nanoseconds per unit, as Go's `unitMap`. */
const UNITS: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n],
  ['\u03bcs', 1_000n],
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

/** Go's `time.quote`: `"` + the text with `"`/`\` escaped and bytes outside ' '..'~'+DEL as `\xNN` + `"`. */
export function goTimeQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp >= 0x80 || cp < 0x20) {
      // Lone surrogates encode as U+FFFD, which is what Go would have seen after decoding.
      const bytes = Buffer.from(cp >= 0xd800 && cp <= 0xdfff ? '\ufffd' : ch, 'utf8');
      for (const b of bytes) out += '\\x' + b.toString(16).padStart(2, '0');
    } else {
      if (ch === '"' || ch === '\\') out += '\\';
      out += ch;
    }
  }
  return out + '"';
}

/** Result of `goParseDuration`: nanoseconds, or Go's error text. */
export type DurationParse = { ok: true; ns: bigint } | { ok: false; error: string };

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/**
 * Go's `time.ParseDuration`. Returns `{ok: true, ns}` or `{ok: false, error}` with Go's exact text:
 * `time: invalid duration "<s>"`, `time: missing unit in duration "<s>"`,
 * `time: unknown unit "<u>" in duration "<s>"`. Never throws (non-strings are invalid durations).
 */
export function goParseDuration(input: unknown): DurationParse {
  if (typeof input !== 'string')
    return { ok: false, error: `time: invalid duration ${goTimeQuote(String(input))}` };
  const orig = input;
  const invalid = (): DurationParse => ({ ok: false, error: `time: invalid duration ${goTimeQuote(orig)}` });
  // Work on code points so `µs` is one unit; digits and '.' are ASCII either way.
  const s = [...input];
  let i = 0;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    i = 1;
  }
  if (s.length - i === 1 && s[i] === '0') return { ok: true, ns: 0n };
  if (i === s.length) return invalid();
  let d = 0n;
  while (i < s.length) {
    if (!(s[i] === '.' || isDigit(s[i]))) return invalid();
    // leadingInt
    const intStart = i;
    let v = 0n;
    while (isDigit(s[i])) {
      if (v > LIMIT / 10n) return invalid();
      v = v * 10n + BigInt((s[i] as string).charCodeAt(0) - 48);
      if (v > LIMIT) return invalid();
      i++;
    }
    const pre = i !== intStart;
    // leadingFraction
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[i] === '.') {
      i++;
      const fracStart = i;
      let overflow = false;
      while (isDigit(s[i])) {
        if (!overflow) {
          if (f > MAX_INT64 / 10n) overflow = true;
          else {
            const y = f * 10n + BigInt((s[i] as string).charCodeAt(0) - 48);
            if (y > LIMIT) overflow = true;
            else {
              f = y;
              scale *= 10;
            }
          }
        }
        i++;
      }
      post = i !== fracStart;
    }
    if (!pre && !post) return invalid();
    const unitStart = i;
    while (i < s.length && s[i] !== '.' && !isDigit(s[i])) i++;
    if (unitStart === i) return { ok: false, error: `time: missing unit in duration ${goTimeQuote(orig)}` };
    const u = s.slice(unitStart, i).join('');
    const unit = UNITS.get(u);
    if (unit === undefined) {
      return { ok: false, error: `time: unknown unit ${goTimeQuote(u)} in duration ${goTimeQuote(orig)}` };
    }
    if (v > LIMIT / unit) return invalid();
    v *= unit;
    if (f > 0n) {
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > LIMIT) return invalid();
    }
    d += v;
    if (d > LIMIT) return invalid();
  }
  if (neg) return { ok: true, ns: -d };
  if (d > MAX_INT64) return invalid();
  return { ok: true, ns: d };
}

const NS_PER_US = 1_000n;
const NS_PER_MS = 1_000_000n;
const NS_PER_S = 1_000_000_000n;

/** `v / 10^prec` with its fraction, trailing zeros (and a bare '.') removed: (1234, 3) → "1.234". */
function withFraction(v: bigint, prec: number): string {
  const scale = 10n ** BigInt(prec);
  const frac = (v % scale).toString().padStart(prec, '0').replace(/0+$/, '');
  return (v / scale).toString() + (frac === '' ? '' : '.' + frac);
}

/**
 * Go's `time.Duration.String()` for a duration in nanoseconds: `0s`, `999ns`, `1.5µs`, `567ms`,
 * `1.234s`, `2m3.456s`, `1h0m0s`; negative durations get a leading `-`. Non-integer input is truncated
 * toward zero.
 */
export function goDurationString(nanoseconds: number | bigint): string {
  let ns =
    typeof nanoseconds === 'bigint'
      ? nanoseconds
      : BigInt(Math.trunc(Number.isFinite(nanoseconds) ? nanoseconds : 0));
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  if (neg) ns = -ns;
  let out: string;
  if (ns < NS_PER_S) {
    if (ns < NS_PER_US) out = `${ns}ns`;
    else if (ns < NS_PER_MS) out = withFraction(ns, 3) + 'µs';
    else out = withFraction(ns, 6) + 'ms';
  } else {
    const totalSeconds = ns / NS_PER_S;
    const frac = (ns % NS_PER_S).toString().padStart(9, '0').replace(/0+$/, '');
    out = `${totalSeconds % 60n}${frac === '' ? '' : '.' + frac}s`;
    const minutes = totalSeconds / 60n;
    if (minutes > 0n) {
      out = `${minutes % 60n}m` + out;
      const hours = minutes / 60n;
      if (hours > 0n) out = `${hours}h` + out;
    }
  }
  return neg ? '-' + out : out;
}

/** Nanoseconds to milliseconds as a number (fractions kept), for timers and `Clock` arithmetic. */
export function durationToMs(ns: bigint): number {
  return Number(ns) / 1e6;
}
