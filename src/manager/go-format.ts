/**
 * Go's text forms that appear in kubelet messages, so kimg's events read byte-for-byte like upstream:
 * `%q` quoting (`strconv.Quote`) and `time.Duration`'s `String()` (`1.234s`, `567ms`, `2m3.456s`).
 *
 * Source: Go `strconv/quote.go` (appendQuotedWith, IsPrint) and `time/time.go` (Duration.String).
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

/**
 * A duration given in milliseconds, truncated to whole milliseconds (Go's `Truncate(time.Millisecond)`,
 * toward zero) and printed as Go does: `1234.9` → `1.234s`, `567` → `567ms`, `123456` → `2m3.456s`,
 * `0.4` → `0s`. This is how the kubelet prints pull durations in its `Pulled` event.
 */
export function formatDuration(milliseconds: number): string {
  const ms = Number.isFinite(milliseconds) ? Math.trunc(milliseconds) : 0;
  return goDurationString(BigInt(ms) * NS_PER_MS);
}
