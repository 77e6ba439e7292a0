/**
 * URL redaction for errors, logs and diagnostics events.
 *
 * Registry URLs can carry secrets: pre-signed redirect targets (S3/GCS/Azure `X-Amz-Signature`,
 * `sig`, `token`), upload session state (`_state`), userinfo. kimg keeps only the query keys the
 * distribution protocol itself defines and replaces every other value with `REDACTED`, and drops
 * userinfo entirely. Follows go-containerregistry `internal/redact/redact.go` (allow-list of protocol
 * keys), extended with containerd's mirror key `ns`.
 */

/** Query keys defined by the distribution / token protocols; their values are safe to print. */
const PROTOCOL_QUERY_KEYS: ReadonlySet<string> = new Set([
  'scope', // token exchange
  'service',
  'mount', // cross-repository mount
  'from',
  'digest', // upload completion
  'n', // pagination
  'last',
  'ns', // containerd mirror namespace
]);

/**
 * Returns `url` as a printable string: no userinfo, and every query value whose key is not a protocol
 * key replaced by `REDACTED`. Unparsable input is reduced to `<unparsable url>` rather than echoed.
 */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : new URL(url.href);
  } catch {
    return '<unparsable url>';
  }
  u.username = '';
  u.password = '';
  if (u.search.length > 1) {
    const out = new URLSearchParams();
    for (const [k, v] of u.searchParams) out.append(k, PROTOCOL_QUERY_KEYS.has(k) ? v : 'REDACTED');
    u.search = out.toString();
  }
  u.hash = '';
  return u.href;
}
