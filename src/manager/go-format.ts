/**
 * Go's text forms that appear in kubelet messages, so kimg's events read byte-for-byte like upstream:
 * `%q` quoting (`strconv.Quote`) and `time.Duration`'s `String()` (`1.234s`, `567ms`, `2m3.456s`).
 * The implementations live in `src/gotext` (configuration uses the same forms); this file adds the
 * kubelet's millisecond truncation of pull durations.
 *
 * Source: Go `strconv/quote.go` (appendQuotedWith, IsPrint) and `time/time.go` (Duration.String);
 * kubernetes `pkg/kubelet/images/image_manager.go` (`Truncate(time.Millisecond)`).
 */
import { goDurationString } from '../gotext/index.js';

export { goQuote, goDurationString } from '../gotext/index.js';

const NS_PER_MS = 1_000_000n;

/**
 * A duration given in milliseconds, truncated to whole milliseconds (Go's `Truncate(time.Millisecond)`,
 * toward zero) and printed as Go does: `1234.9` → `1.234s`, `567` → `567ms`, `123456` → `2m3.456s`,
 * `0.4` → `0s`. This is how the kubelet prints pull durations in its `Pulled` event.
 */
export function formatDuration(milliseconds: number): string {
  const ms = Number.isFinite(milliseconds) ? Math.trunc(milliseconds) : 0;
  return goDurationString(BigInt(ms) * NS_PER_MS);
}
