/**
 * Go text helpers: the text forms Go programs around the kubelet read and write, reproduced byte for
 * byte so kimg's configuration parsing and messages match upstream — `%q` quoting (`strconv.Quote`),
 * the `time` package's quoting, and `time.Duration` in both directions (`time.ParseDuration`,
 * `Duration.String()`). Configuration, credentials, the registry client and the manager all use these
 * one implementations; this module depends on nothing else in kimg.
 */
export {
  goQuote,
  goTimeQuote,
  goParseDuration,
  goDurationString,
  durationToMs,
  type DurationParse,
} from './go-text.js';
