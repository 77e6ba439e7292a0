/**
 * The slice of Go's `net/url.Parse`, `net.SplitHostPort` and `path/filepath.Match` that kubelet's
 * keyring runs on docker config keys and image names (`pkg/credentialprovider/keyring.go`:
 * `ParseSchemelessURL`, `SplitURL`, `URLsMatch`). Keyring matching is defined by what these Go
 * functions do, including their corner cases, so kimg reproduces them instead of using WHATWG `URL`
 * (which lower-cases hosts, rejects `*`, and percent-decodes differently).
 *
 * Only absolute `scheme://authority/path` inputs are handled, which is all the keyring produces (it
 * prefixes `https://` before parsing).
 */
import { goQuote } from '../../gotext/index.js';

/** Result of `url.Parse` on an absolute URL: the unescaped host (with port) and path. */
export interface GoUrl {
  host: string;
  path: string;
}

/** `url.Parse` failed; `message` is Go's text (`parse "…": invalid URL escape "%zz"`). */
export interface GoUrlError {
  error: string;
}

/**
 * `url.Parse(raw)` for `raw` that starts with `scheme://`. Returns the host and the unescaped path, or
 * Go's error text. The fragment and query are split off (and the fragment's escapes validated) as Go
 * does.
 */
export function goParseUrl(raw: string): GoUrl | GoUrlError {
  const fail = (why: string): GoUrlError => ({ error: `parse ${goQuote(raw)}: ${why}` });
  const hash = raw.indexOf('#');
  const beforeFrag = hash < 0 ? raw : raw.slice(0, hash);
  const frag = hash < 0 ? '' : raw.slice(hash + 1);
  for (let i = 0; i < beforeFrag.length; i++) {
    const c = beforeFrag.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return fail('net/url: invalid control character in URL');
  }
  const schemeEnd = beforeFrag.indexOf('://');
  if (schemeEnd <= 0) return fail('missing protocol scheme');
  let rest = beforeFrag.slice(schemeEnd + 1); // starts with "//"
  const q = rest.indexOf('?');
  if (q >= 0) rest = rest.slice(0, q);
  rest = rest.slice(2);
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const rawPath = slash < 0 ? '' : rest.slice(slash);

  let hostPart = authority;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    if (!validUserinfo(userinfo)) return fail('net/url: invalid userinfo');
    const u = goUnescape(userinfo.split(':')[0] ?? '', 'user');
    if (typeof u !== 'string') return fail(u.error);
    const colon = userinfo.indexOf(':');
    if (colon >= 0) {
      const pw = goUnescape(userinfo.slice(colon + 1), 'user');
      if (typeof pw !== 'string') return fail(pw.error);
    }
    hostPart = authority.slice(at + 1);
  }
  const host = parseHost(hostPart);
  if (typeof host !== 'string') return fail(host.error);
  const path = goUnescape(rawPath, 'path');
  if (typeof path !== 'string') return fail(path.error);
  if (hash >= 0) {
    const f = goUnescape(frag, 'fragment');
    if (typeof f !== 'string') return fail(f.error);
  }
  return { host, path };
}

function parseHost(host: string): string | GoUrlError {
  if (host.startsWith('[')) {
    const close = host.lastIndexOf(']');
    if (close < 0) return { error: "missing ']' in host" };
    const colonPort = host.slice(close + 1);
    if (!validOptionalPort(colonPort)) return { error: `invalid port ${goQuote(colonPort)} after host` };
    // IPv6 zones (`%25`) are unescaped with the zone rules; the host rules below are stricter, so a
    // literal that passes them also passes Go's.
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) {
      const colonPort = host.slice(colon);
      if (!validOptionalPort(colonPort)) return { error: `invalid port ${goQuote(colonPort)} after host` };
    }
  }
  return goUnescape(host, 'host');
}

function validOptionalPort(port: string): boolean {
  if (port === '') return true;
  if (port[0] !== ':') return false;
  for (let i = 1; i < port.length; i++) {
    const c = port.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function validUserinfo(s: string): boolean {
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (c >= 0x80) continue;
    if (isAlnum(c)) continue;
    if ("-._:~!$&'()*+,;=%@".includes(ch)) continue;
    return false;
  }
  return true;
}

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** ASCII characters `url.Parse` accepts unescaped in a host (`shouldEscape(c, encodeHost)` is false). */
function hostCharAllowed(c: number): boolean {
  if (isAlnum(c)) return true;
  return '!$&\'()*+,;=:[]<>"-_.~'.includes(String.fromCharCode(c));
}

/** `url.unescape` for the host, path, userinfo and fragment modes. */
function goUnescape(s: string, mode: 'host' | 'path' | 'user' | 'fragment'): string | GoUrlError {
  const bytes: number[] = [];
  for (let i = 0; i < s.length;) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      if (i + 2 >= s.length || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) {
        return { error: `invalid URL escape ${goQuote(s.slice(i, i + 3))}` };
      }
      const v = parseInt(s.slice(i + 1, i + 3), 16);
      // Hosts may only percent-encode non-ASCII bytes (or `%25`).
      if (mode === 'host' && v < 0x80 && s.slice(i, i + 3) !== '%25') {
        return { error: `invalid URL escape ${goQuote(s.slice(i, i + 3))}` };
      }
      bytes.push(v);
      i += 3;
      continue;
    }
    if (mode === 'host' && c < 0x80 && !hostCharAllowed(c)) {
      return { error: `invalid character ${goQuote(s[i] ?? '')} in host name` };
    }
    const cp = s.codePointAt(i) ?? c;
    const width = cp > 0xffff ? 2 : 1;
    for (const b of Buffer.from(s.slice(i, i + width), 'utf8')) bytes.push(b);
    i += width;
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * `net.SplitHostPort(host)`; on any error kubelet keeps the whole host and an empty port
 * (`SplitURL`), so this returns exactly that.
 */
export function goSplitHostPort(hostport: string): { host: string; port: string } {
  const whole = { host: hostport, port: '' };
  const i = hostport.lastIndexOf(':');
  if (i < 0) return whole;
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport[0] === '[') {
    const end = hostport.indexOf(']');
    if (end < 0) return whole;
    if (end + 1 !== i) return whole;
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(':')) return whole;
  }
  if (hostport.slice(j).includes('[')) return whole;
  if (hostport.slice(k).includes(']')) return whole;
  return { host, port: hostport.slice(i + 1) };
}

// --- path/filepath.Match on one host label ------------------------------------------------------------

type GlobToken =
  | { t: 'star' }
  | { t: 'any' }
  | { t: 'lit'; cp: number }
  | { t: 'class'; negated: boolean; ranges: Array<[number, number]> };

/**
 * Compiles a `filepath.Match` pattern: `*` (any run), `?` (one character), `[...]` classes with `^`
 * negation and `lo-hi` ranges, `\` escapes. Returns `undefined` for a malformed pattern (Go returns
 * `ErrBadPattern`, which the keyring treats as no match).
 */
export function compileGlob(pattern: string): GlobToken[] | undefined {
  const cps = Array.from(pattern, (ch) => ch.codePointAt(0) ?? 0);
  const out: GlobToken[] = [];
  let i = 0;
  const escAt = (): number | undefined => {
    // One class character: not '-' or ']' unescaped; '\' escapes the next one.
    const c = cps[i];
    if (c === undefined || c === 0x2d || c === 0x5d) return undefined;
    if (c === 0x5c) {
      i++;
      const e = cps[i];
      if (e === undefined) return undefined;
      i++;
      return e;
    }
    i++;
    return c;
  };
  while (i < cps.length) {
    const c = cps[i] as number;
    if (c === 0x2a) {
      out.push({ t: 'star' });
      i++;
    } else if (c === 0x3f) {
      out.push({ t: 'any' });
      i++;
    } else if (c === 0x5c) {
      const e = cps[i + 1];
      if (e === undefined) return undefined;
      out.push({ t: 'lit', cp: e });
      i += 2;
    } else if (c === 0x5b) {
      i++;
      let negated = false;
      if (cps[i] === 0x5e) {
        negated = true;
        i++;
      }
      const ranges: Array<[number, number]> = [];
      for (;;) {
        if (cps[i] === 0x5d && ranges.length > 0) {
          i++;
          break;
        }
        const lo = escAt();
        if (lo === undefined) return undefined;
        let hi = lo;
        if (cps[i] === 0x2d) {
          i++;
          const h = escAt();
          if (h === undefined) return undefined;
          hi = h;
        }
        ranges.push([lo, hi]);
      }
      out.push({ t: 'class', negated, ranges });
    } else {
      out.push({ t: 'lit', cp: c });
      i++;
    }
  }
  return out;
}

/** Matches one label against a compiled glob (linear-space dynamic programming, no backtracking). */
export function globMatch(tokens: GlobToken[], name: string): boolean {
  const cps = Array.from(name, (ch) => ch.codePointAt(0) ?? 0);
  // reach[j]: the tokens so far can consume exactly cps[0..j).
  let reach = new Array<boolean>(cps.length + 1).fill(false);
  reach[0] = true;
  for (const tok of tokens) {
    const next = new Array<boolean>(cps.length + 1).fill(false);
    if (tok.t === 'star') {
      let any = false;
      for (let j = 0; j <= cps.length; j++) {
        any = any || (reach[j] ?? false);
        next[j] = any;
      }
    } else {
      for (let j = 0; j < cps.length; j++) {
        if (!reach[j]) continue;
        const c = cps[j] as number;
        let ok: boolean;
        if (tok.t === 'any') ok = c !== 0x2f;
        else if (tok.t === 'lit') ok = c === tok.cp;
        else ok = tok.ranges.some(([lo, hi]) => lo <= c && c <= hi) !== tok.negated;
        if (ok) next[j + 1] = true;
      }
    }
    reach = next;
  }
  return reach[cps.length] ?? false;
}
