/**
 * Base64 decoding with the exact acceptance rules of Go's `encoding/base64` (non-strict mode), which
 * kubelet uses for the docker config `auth` field and Kubernetes uses for Secret `data` values.
 * Node's `Buffer.from(s, 'base64')` is far more lenient (it skips invalid characters, accepts URL-safe
 * letters and missing padding), so it only runs here after the input has been validated.
 *
 * Go rules: `\r` and `\n` anywhere are ignored. `StdEncoding` needs the input length to be a multiple
 * of 4 with `=` padding only at the end (`xx==` or `xxx=`); `RawStdEncoding` refuses any `=` and a
 * final group of 1 character. Non-strict mode does not check the unused trailing bits.
 */

const ALPHABET = /^[A-Za-z0-9+/]*$/;

/**
 * Decodes `input` with `base64.StdEncoding` (padded: true) or `base64.RawStdEncoding` (padded: false).
 * Returns `undefined` when Go would return a `CorruptInputError`.
 */
export function goBase64Decode(input: string, padded: boolean): Buffer | undefined {
  const s = input.replace(/[\r\n]/g, '');
  if (padded) {
    if (s.length % 4 !== 0) return undefined;
    let body = s;
    if (body.endsWith('==')) body = body.slice(0, -2);
    else if (body.endsWith('=')) body = body.slice(0, -1);
    if (!ALPHABET.test(body)) return undefined;
  } else {
    if (!ALPHABET.test(s) || s.length % 4 === 1) return undefined;
  }
  return Buffer.from(s, 'base64');
}

/**
 * kubelet's `auth` field rule: padded decoding when the trimmed value ends with `=`, raw otherwise
 * (`decodeDockerConfigFieldAuth` in `pkg/credentialprovider/config.go`).
 */
export function decodeDockerAuthField(field: string): Buffer | undefined {
  return goBase64Decode(field, goTrimSpace(field).endsWith('='));
}

const GO_SPACE = '[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const GO_SPACE_EDGES = new RegExp(`^${GO_SPACE}+|${GO_SPACE}+$`, 'g');

/** `strings.TrimSpace`: ASCII whitespace plus U+0085, U+00A0 and the Unicode White_Space runes. */
export function goTrimSpace(s: string): string {
  return s.replace(GO_SPACE_EDGES, '');
}

/** `base64.StdEncoding.EncodeToString` of UTF-8 text or bytes. */
export function base64Encode(data: string | Uint8Array): string {
  return (typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)).toString('base64');
}
