/**
 * The image reference grammar as linear-time scanners.
 *
 * distribution/reference (`regexp.go` @ 0965666a, the logic of v0.6.0 that containerd vendors) defines
 * the grammar with RE2 regular expressions, which run in linear time. JavaScript's backtracking engine
 * does not guarantee that, so kimg checks each production with a hand-written scanner over an index
 * range: no regular expression, no allocation proportional to the input, one pass per production. A
 * 10 MB input costs a few milliseconds and nothing can backtrack.
 *
 *     reference      := name [ ":" tag ] [ "@" digest ]
 *     name           := [ domainAndPort "/" ] remoteName
 *     domainAndPort  := host [ ":" [0-9]+ ]
 *     host           := domainName | "[" [a-fA-F0-9:]+ "]"          (IPv6 needs brackets, no zone id)
 *     domainName     := component ( "." component )*
 *     component      := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
 *     remoteName     := pathComponent ( "/" pathComponent )*
 *     pathComponent  := [a-z0-9]+ ( separator [a-z0-9]+ )*
 *     separator      := "." | "_" | "__" | "-"+
 *     tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *     digest         := algorithm ":" [0-9a-fA-F]{32,}
 *     algorithm      := algComponent ( [-_+.] algComponent )*
 *     algComponent   := [A-Za-z][A-Za-z0-9]*
 *     identifier     := [a-f0-9]{64}
 *
 * How the pieces of a reference are found (and why that is the same as the regex match): the name and
 * the tag contain no `@` and the digest contains none either, so a digest starts after the first `@`.
 * The tag contains no `/` and no `:`, and the last path component contains no `:`, so a tag starts after
 * the first `:` that follows the last `/` of what precedes the `@`. A domain contains no `/`, so it is the
 * first `/`-separated component when that component is a valid domain and the rest a valid remote name
 * (RE2 prefers taking the optional domain group, exactly like this).
 */

const SLASH = 0x2f;
const COLON = 0x3a;
const DOT = 0x2e;
const DASH = 0x2d;
const UNDERSCORE = 0x5f;
const PLUS = 0x2b;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/** Maximum length of the repository path (without the domain): `RepositoryNameTotalLengthMax`. */
export const MAX_PATH_LENGTH = 255;
/** Maximum length of a tag: `[\w][\w.-]{0,127}`. */
export const MAX_TAG_LENGTH = 128;
/** Minimum number of hex characters the reference grammar accepts in a digest (128 bits). */
export const MIN_DIGEST_HEX = 32;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isLower(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}
function isUpper(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}
function isLowerAlnum(c: number): boolean {
  return isLower(c) || isDigit(c);
}
function isAlnum(c: number): boolean {
  return isLower(c) || isUpper(c) || isDigit(c);
}
function isAlpha(c: number): boolean {
  return isLower(c) || isUpper(c);
}
function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}
function isWord(c: number): boolean {
  return isAlnum(c) || c === UNDERSCORE;
}

/** `[0-9]+` over [start, end). */
function isDigits(s: string, start: number, end: number): boolean {
  if (start >= end) return false;
  for (let i = start; i < end; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

/** `domainName` over [start, end): dot-separated components of [a-zA-Z0-9-], no leading/trailing `-`. */
function isDomainName(s: string, start: number, end: number): boolean {
  if (start >= end) return false;
  let componentStart = start;
  for (let i = start; i <= end; i++) {
    const c = i < end ? s.charCodeAt(i) : DOT;
    if (c === DOT) {
      if (i === componentStart) return false; // empty component
      if (s.charCodeAt(componentStart) === DASH || s.charCodeAt(i - 1) === DASH) return false;
      componentStart = i + 1;
    } else if (!isAlnum(c) && c !== DASH) {
      return false;
    }
  }
  return true;
}

/** `domainAndPort` over [start, end): a domain name or bracketed IPv6 address, then an optional port. */
export function isDomainAndPort(s: string, start = 0, end = s.length): boolean {
  if (start >= end) return false;
  let hostEnd: number;
  if (s.charCodeAt(start) === LBRACKET) {
    let i = start + 1;
    while (i < end && s.charCodeAt(i) !== RBRACKET) {
      const c = s.charCodeAt(i);
      if (!isHex(c) && c !== COLON) return false;
      i++;
    }
    if (i >= end || i === start + 1) return false; // no `]`, or `[]`
    hostEnd = i + 1;
  } else {
    hostEnd = start;
    while (hostEnd < end && s.charCodeAt(hostEnd) !== COLON) hostEnd++;
    if (!isDomainName(s, start, hostEnd)) return false;
  }
  if (hostEnd === end) return true;
  return s.charCodeAt(hostEnd) === COLON && isDigits(s, hostEnd + 1, end);
}

/** `remoteName` over [start, end): `/`-separated path components, lowercase only. */
export function isRemoteName(s: string, start = 0, end = s.length): boolean {
  const at = (i: number): number => (i < end ? s.charCodeAt(i) : -1);
  let i = start;
  for (;;) {
    // A path component starts with an alphanumeric.
    if (!isLowerAlnum(at(i))) return false;
    i++;
    for (;;) {
      const c = at(i);
      if (isLowerAlnum(c)) {
        i++;
        continue;
      }
      if (c === -1 || c === SLASH) break;
      if (c === DOT) i++;
      else if (c === UNDERSCORE) i += at(i + 1) === UNDERSCORE ? 2 : 1;
      else if (c === DASH) while (at(i) === DASH) i++;
      else return false;
      // A separator is always followed by an alphanumeric.
      if (!isLowerAlnum(at(i))) return false;
    }
    if (i >= end) return true;
    i++; // the `/`
  }
}

/** `tag` over [start, end). */
export function isTag(s: string, start = 0, end = s.length): boolean {
  const n = end - start;
  if (n < 1 || n > MAX_TAG_LENGTH) return false;
  if (!isWord(s.charCodeAt(start))) return false;
  for (let i = start + 1; i < end; i++) {
    const c = s.charCodeAt(i);
    if (!isWord(c) && c !== DOT && c !== DASH) return false;
  }
  return true;
}

/** The reference grammar's `digest` production over [start, end) (before any go-digest validation). */
export function isDigestSyntax(s: string, start = 0, end = s.length): boolean {
  let i = start;
  // algorithm: components of [A-Za-z][A-Za-z0-9]* joined by one of [-_+.]
  for (;;) {
    if (i >= end || !isAlpha(s.charCodeAt(i))) return false;
    i++;
    while (i < end && isAlnum(s.charCodeAt(i))) i++;
    if (i >= end) return false;
    const c = s.charCodeAt(i);
    if (c === COLON) break;
    if (c !== DASH && c !== UNDERSCORE && c !== PLUS && c !== DOT) return false;
    i++;
  }
  i++; // the `:`
  if (end - i < MIN_DIGEST_HEX) return false;
  for (; i < end; i++) if (!isHex(s.charCodeAt(i))) return false;
  return true;
}

/** `identifier`: exactly 64 lowercase hex characters (an image ID without `sha256:`). */
export function isIdentifier(s: string): boolean {
  if (s.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = s.charCodeAt(i);
    if (!isDigit(c) && !(c >= 0x61 && c <= 0x66)) return false;
  }
  return true;
}

/** The pieces of a reference as the anchored `ReferenceRegexp` captures them. */
export interface ReferenceMatch {
  /** `domainAndPort`, or '' when the name has none. */
  domain: string;
  /** The remote name (path). */
  path: string;
  /** The tag, or undefined. */
  tag: string | undefined;
  /** The digest text (syntax checked only), or undefined. */
  digest: string | undefined;
}

/**
 * Matches `s` against the whole reference grammar. Returns the captured pieces, or undefined when `s`
 * does not match. Linear in `s.length`.
 */
export function matchReference(s: string): ReferenceMatch | undefined {
  const atSign = s.indexOf('@');
  const nameEnd = atSign < 0 ? s.length : atSign;
  let digest: string | undefined;
  if (atSign >= 0) {
    if (!isDigestSyntax(s, atSign + 1, s.length)) return undefined;
    digest = s.slice(atSign + 1);
  }
  const lastSlash = s.lastIndexOf('/', nameEnd - 1);
  let colon = s.indexOf(':', lastSlash + 1);
  if (colon >= nameEnd) colon = -1;
  let tag: string | undefined;
  let repoEnd = nameEnd;
  if (colon >= 0) {
    if (!isTag(s, colon + 1, nameEnd)) return undefined;
    tag = s.slice(colon + 1, nameEnd);
    repoEnd = colon;
  }
  const name = matchName(s, 0, repoEnd);
  if (name === undefined) return undefined;
  return { domain: name.domain, path: name.path, tag, digest };
}

/**
 * Matches [start, end) of `s` against the anchored name grammar `[domainAndPort "/"] remoteName`,
 * preferring a domain like RE2 does. Returns the domain ('' when none) and the path, or undefined.
 */
export function matchName(
  s: string,
  start = 0,
  end = s.length,
): { domain: string; path: string } | undefined {
  const firstSlash = s.indexOf('/', start);
  if (firstSlash >= 0 && firstSlash < end) {
    if (isDomainAndPort(s, start, firstSlash) && isRemoteName(s, firstSlash + 1, end)) {
      return { domain: s.slice(start, firstSlash), path: s.slice(firstSlash + 1, end) };
    }
  }
  if (isRemoteName(s, start, end)) return { domain: '', path: s.slice(start, end) };
  return undefined;
}

/**
 * Go's `strings.ToLower(s)` as far as the reference grammar can tell: the grammar accepts only ASCII, and
 * the only non-ASCII code points whose simple lowercase mapping is ASCII are U+0130 (→ `i`) and U+212A
 * KELVIN SIGN (→ `k`). Returns undefined when the lowercased string would contain non-ASCII (so it cannot
 * match the grammar) — the only thing `Parse` uses the lowercased string for.
 */
export function asciiLowerForMatch(s: string): string | undefined {
  // Single character classes: linear, nothing to backtrack.
  if (/[\u0080-\u012f\u0131-\u2129\u212b-\uffff]/.test(s)) return undefined;
  return s.replace(/[\u0130\u212a]/g, (c) => (c === '\u0130' ? 'i' : 'k')).toLowerCase();
}
