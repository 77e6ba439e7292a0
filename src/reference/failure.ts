/**
 * Parse failures as values. The scanners return a `Failure` instead of throwing so that batch callers
 * (`kimg ref parse` over a file of references, the manager's admission checks) pay no exception cost,
 * and so that the kubelet wrapper (`couldn't parse image name "<image>": <upstream error>`) can reuse
 * the exact upstream text. Public functions turn a Failure into a `KimgError` with `toKimgError`.
 *
 * Each code mirrors one upstream sentinel (distribution/reference `reference.go`, go-digest `digest.go`):
 *
 * | code                    | upstream text                                                     |
 * |-------------------------|-------------------------------------------------------------------|
 * | INVALID_REFERENCE_FORMAT| `invalid reference format` (also the 64-hex `invalid repository name (…), cannot specify 64-byte hexadecimal strings`) |
 * | TAG_INVALID_FORMAT      | `invalid tag format`                                              |
 * | DIGEST_INVALID_FORMAT   | `invalid digest format` (reference) / `invalid checksum digest format` (go-digest) |
 * | DIGEST_INVALID_LENGTH   | `invalid checksum digest length`                                  |
 * | DIGEST_UNSUPPORTED      | `unsupported digest algorithm`                                    |
 * | NAME_CONTAINS_UPPERCASE | `repository name must be lowercase` / `invalid reference format: repository name (…) must be lowercase` |
 * | NAME_EMPTY              | `repository name must have at least one component`                |
 * | NAME_TOO_LONG           | `repository name must not be more than 255 characters`            |
 * | NAME_NOT_CANONICAL      | `repository name must be canonical`                               |
 */
import { KimgError, quote } from '../errors/index.js';

/** The error codes the reference module raises. */
export type ReferenceErrorCode =
  | 'INVALID_REFERENCE_FORMAT'
  | 'TAG_INVALID_FORMAT'
  | 'DIGEST_INVALID_FORMAT'
  | 'DIGEST_INVALID_LENGTH'
  | 'DIGEST_UNSUPPORTED'
  | 'NAME_CONTAINS_UPPERCASE'
  | 'NAME_EMPTY'
  | 'NAME_TOO_LONG'
  | 'NAME_NOT_CANONICAL';

/** A parse failure: the code, upstream's exact error text, and a hint saying what to do. */
export interface Failure {
  readonly failed: true;
  readonly code: ReferenceErrorCode;
  /** Upstream's error string, byte for byte (`err.Error()` in Go). */
  readonly text: string;
  /** What is wrong and what to do, for humans. */
  readonly hint: string;
}

export function failure(code: ReferenceErrorCode, text: string, hint: string): Failure {
  return { failed: true, code, text, hint };
}

export function isFailure(x: unknown): x is Failure {
  return typeof x === 'object' && x !== null && (x as { failed?: unknown }).failed === true;
}

/**
 * The KimgError for a failure on `input`: the message is upstream's text, the quoted input, and the hint
 * (`invalid reference format: "foo bar"; a reference is …`). `details.input` holds the input as given.
 */
export function failureError(f: Failure, input: string): KimgError<ReferenceErrorCode> {
  return new KimgError(f.code, `${f.text}: ${quote(input)}; ${f.hint}`, { input });
}

/**
 * Renders a value for an upstream `%s` slot inside a message: printable text stays as it is (so normal
 * inputs give upstream's exact string); control characters and lone surrogates are escaped and very long
 * values are cut at 200 characters, so a message never carries raw NULs or megabytes.
 */
export function printable(s: string, max = 200): string {
  const cut = s.length > max ? s.slice(0, max) + '…' : s;
  // Single character classes: linear. U+D800-U+DFFF: only lone surrogates reach here unpaired; pairs are
  // matched by the first alternative and kept.
  // eslint-disable-next-line no-control-regex -- escaping control characters is the point
  return cut.replace(/[\ud800-\udbff][\udc00-\udfff]|[\x00-\x1f\x7f-\x9f\ud800-\udfff]/g, (c) =>
    c.length === 2 ? c : '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'),
  );
}
