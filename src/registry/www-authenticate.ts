/**
 * `WWW-Authenticate` challenge parsing (RFC 7235 §4.1, RFC 9110 §11.6.1).
 *
 * A registry answers 401 with one or more challenges, e.g.
 * `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"`
 * or `Basic realm="Registry Realm"`. A header may hold several challenges separated by commas, and a
 * response may carry several `WWW-Authenticate` lines; parameter values are tokens or quoted strings
 * (with `\` escapes), parameter names are case-insensitive, and the scheme may be followed by a
 * token68 instead of parameters. The distribution token flow reads `realm`, `service`, `scope` and
 * `error` (distribution `docs/content/spec/auth/token.md`; containerd `core/remotes/docker/auth/parse.go`).
 *
 * The parser is lenient the way registry clients must be: unquoted values may contain `:` and `/`
 * (`realm=https://x/token` is common in the wild), garbage between challenges is skipped, and it
 * never throws.
 */

/** One parsed challenge. */
export interface AuthChallenge {
  /** The auth scheme, lower-cased (`bearer`, `basic`, `digest`, ...). */
  scheme: string;
  /** Parameters with lower-cased names; the first occurrence of a repeated name wins. */
  params: Record<string, string>;
  /** A token68 given instead of parameters (`Negotiate abc==`), if any. */
  token68?: string;
}

// RFC 9110 tchar
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

function isTchar(c: string | undefined): boolean {
  return c !== undefined && TCHAR.test(c);
}
function isWs(c: string | undefined): boolean {
  return c === ' ' || c === '\t';
}

/**
 * Parses one or more `WWW-Authenticate` header values into challenges, in order. Never throws;
 * unparsable fragments are skipped.
 */
export function parseWwwAuthenticate(headers: string | readonly string[] | undefined): AuthChallenge[] {
  if (headers === undefined) return [];
  const list = typeof headers === 'string' ? [headers] : headers;
  const out: AuthChallenge[] = [];
  for (const h of list) parseOne(String(h), out);
  return out;
}

function parseOne(s: string, out: AuthChallenge[]): void {
  let i = 0;
  const n = s.length;

  const skipWs = (): void => {
    while (i < n && isWs(s[i])) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && isTchar(s[i])) i++;
    return s.slice(start, i);
  };
  /** Reads a quoted string starting at `"`; unterminated strings run to the end. */
  const readQuoted = (): string => {
    i++; // opening quote
    let v = '';
    while (i < n) {
      const c = s[i];
      if (c === '\\' && i + 1 < n) {
        v += s[i + 1];
        i += 2;
      } else if (c === '"') {
        i++;
        return v;
      } else {
        v += c;
        i++;
      }
    }
    return v;
  };
  /** Lenient unquoted value: everything up to a comma or whitespace. */
  const readBareValue = (): string => {
    const start = i;
    while (i < n && s[i] !== ',' && !isWs(s[i])) i++;
    return s.slice(start, i);
  };
  /** True when a `name BWS =` parameter (not a token68 ending in `=`) starts at i. */
  const paramAhead = (): boolean => {
    let j = i;
    while (j < n && isTchar(s[j])) j++;
    if (j === i) return false;
    while (j < n && isWs(s[j])) j++;
    if (s[j] !== '=') return false;
    // `abc==` or `abc=` followed by end/comma is a token68, not a parameter
    let k = j;
    while (k < n && s[k] === '=') k++;
    if (k - j > 1) return false;
    while (k < n && isWs(s[k])) k++;
    return !(k >= n || s[k] === ',');
  };

  while (i < n) {
    // skip list separators and junk until a token starts
    while (i < n && !isTchar(s[i])) {
      if (s[i] === '"') readQuoted();
      else i++;
    }
    if (i >= n) break;
    if (paramAhead()) {
      // a parameter without a scheme: skip it
      readToken();
      skipWs();
      i++; // '='
      skipWs();
      if (s[i] === '"') readQuoted();
      else readBareValue();
      continue;
    }
    const scheme = readToken().toLowerCase();
    const ch: AuthChallenge = { scheme, params: {} };
    out.push(ch);
    skipWs();
    if (i >= n || s[i] === ',') {
      if (s[i] === ',') i++;
      continue;
    }
    // token68?
    if (!paramAhead()) {
      const start = i;
      while (i < n && TOKEN68_CHAR.test(s[i] as string)) i++;
      while (i < n && s[i] === '=') i++;
      if (i > start) {
        const t = s.slice(start, i);
        skipWs();
        if (i >= n || s[i] === ',') {
          ch.token68 = t;
          if (s[i] === ',') i++;
          continue;
        }
        // not a clean token68: rewind and treat as a new challenge
        i = start;
      }
      continue;
    }
    // auth-params, comma separated, until something that is not a parameter
    for (;;) {
      const name = readToken().toLowerCase();
      skipWs();
      i++; // '='
      skipWs();
      const value = s[i] === '"' ? readQuoted() : readBareValue();
      if (!Object.prototype.hasOwnProperty.call(ch.params, name)) {
        Object.defineProperty(ch.params, name, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      skipWs();
      // skip empty list elements
      let j = i;
      let sawComma = false;
      while (j < n && (s[j] === ',' || isWs(s[j]))) {
        if (s[j] === ',') sawComma = true;
        j++;
      }
      if (!sawComma && j < n) {
        // junk after a value (e.g. `a=b c=d`): stop this challenge's parameters
        i = j;
        break;
      }
      i = j;
      if (i >= n || !paramAhead()) break;
    }
  }
}

/**
 * The `scope` parameter of a challenge split into its space-separated scopes (distribution token
 * spec: several scopes are joined by spaces in one value).
 */
export function challengeScopes(ch: AuthChallenge): string[] {
  const s = ch.params.scope;
  return s ? s.split(' ').filter((x) => x.length > 0) : [];
}
