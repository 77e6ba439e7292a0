/**
 * JSON the way Go reads and writes it, for the files kubelet reads with `encoding/json` (docker
 * `config.json`, `.dockercfg`) and with the Kubernetes strict decoder (`CredentialProviderResponse`).
 *
 * `JSON.parse` is not enough: it drops duplicate keys silently and loses their order, while Go's
 * `encoding/json` applies every duplicate in order (the last one wins, and struct fields match keys
 * case-insensitively, so `"Auth"` after `"auth"` overrides it) and Kubernetes' strict decoder rejects
 * duplicates outright. So this module parses into an ordered tree that keeps every member.
 *
 * Error messages from the parser carry an offset only, never the surrounding text: the text may be a
 * password.
 *
 * The writer (`goJsonString`, `goJsonMarshal`) reproduces `json.Marshal` byte for byte for strings,
 * including its HTML escaping of `<`, `>`, `&` and of U+2028/U+2029, which matters for
 * `credentialHash` (kubelet hashes `json.Marshal(AuthConfig)`) and for `kimg create secret` output.
 */

/** A parsed JSON value that keeps object members in order, duplicates included. */
export type GoJsonValue =
  | { kind: 'object'; members: Array<[string, GoJsonValue]> }
  | { kind: 'array'; items: GoJsonValue[] }
  | { kind: 'string'; value: string }
  | { kind: 'number'; raw: string }
  | { kind: 'bool'; value: boolean }
  | { kind: 'null' };

/** A JSON syntax error: where, and what kind of token was expected. Never quotes the input. */
export class GoJsonSyntaxError extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`${reason} at offset ${offset}`);
    this.name = 'GoJsonSyntaxError';
  }
}

/** Nesting deeper than this is refused (Go allows 10000; no credential file comes close). */
const MAX_DEPTH = 1000;

/**
 * Parses `text` as one JSON value (surrounding whitespace allowed, nothing else). Throws
 * `GoJsonSyntaxError` on any syntax error. Lone UTF-16 surrogates from `\u` escapes become U+FFFD, as Go
 * does.
 */
export function parseGoJson(text: string): GoJsonValue {
  const p = new Parser(text);
  p.ws();
  const v = p.value(0);
  p.ws();
  if (p.i < text.length) throw new GoJsonSyntaxError(p.i, 'unexpected data after the top-level value');
  return v;
}

/**
 * Parses a stream of JSON values separated by optional whitespace (what `kubectl apply -f` accepts for
 * JSON manifests). Throws `GoJsonSyntaxError` on any syntax error.
 */
export function parseGoJsonStream(text: string): GoJsonValue[] {
  const p = new Parser(text);
  const out: GoJsonValue[] = [];
  p.ws();
  while (p.i < text.length) {
    out.push(p.value(0));
    p.ws();
  }
  return out;
}

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  value(depth: number): GoJsonValue {
    if (depth > MAX_DEPTH) throw new GoJsonSyntaxError(this.i, 'nesting too deep');
    const s = this.s;
    if (this.i >= s.length) throw new GoJsonSyntaxError(this.i, 'unexpected end of input');
    const c = s[this.i];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return { kind: 'string', value: this.string() };
      case 't':
        this.literal('true');
        return { kind: 'bool', value: true };
      case 'f':
        this.literal('false');
        return { kind: 'bool', value: false };
      case 'n':
        this.literal('null');
        return { kind: 'null' };
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9'))
          return { kind: 'number', raw: this.number() };
        throw new GoJsonSyntaxError(this.i, 'invalid character looking for beginning of value');
    }
  }

  literal(word: string): void {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return;
    }
    throw new GoJsonSyntaxError(this.i, `invalid literal (expected ${word})`);
  }

  object(depth: number): GoJsonValue {
    const members: Array<[string, GoJsonValue]> = [];
    this.i++; // {
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return { kind: 'object', members };
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') throw new GoJsonSyntaxError(this.i, 'expected a string object key');
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ':') throw new GoJsonSyntaxError(this.i, "expected ':' after object key");
      this.i++;
      this.ws();
      members.push([key, this.value(depth + 1)]);
      this.ws();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === '}') {
        this.i++;
        return { kind: 'object', members };
      }
      throw new GoJsonSyntaxError(this.i, "expected ',' or '}' after object value");
    }
  }

  array(depth: number): GoJsonValue {
    const items: GoJsonValue[] = [];
    this.i++; // [
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return { kind: 'array', items };
    }
    for (;;) {
      this.ws();
      items.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === ']') {
        this.i++;
        return { kind: 'array', items };
      }
      throw new GoJsonSyntaxError(this.i, "expected ',' or ']' after array element");
    }
  }

  number(): string {
    const s = this.s;
    const start = this.i;
    if (s[this.i] === '-') this.i++;
    if (s[this.i] === '0') this.i++;
    else if (isDigit(s.charCodeAt(this.i))) while (isDigit(s.charCodeAt(this.i))) this.i++;
    else throw new GoJsonSyntaxError(this.i, 'invalid number');
    if (s[this.i] === '.') {
      this.i++;
      if (!isDigit(s.charCodeAt(this.i))) throw new GoJsonSyntaxError(this.i, 'invalid number');
      while (isDigit(s.charCodeAt(this.i))) this.i++;
    }
    if (s[this.i] === 'e' || s[this.i] === 'E') {
      this.i++;
      if (s[this.i] === '+' || s[this.i] === '-') this.i++;
      if (!isDigit(s.charCodeAt(this.i))) throw new GoJsonSyntaxError(this.i, 'invalid number');
      while (isDigit(s.charCodeAt(this.i))) this.i++;
    }
    return s.slice(start, this.i);
  }

  string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = '';
    let runStart = this.i;
    for (;;) {
      if (this.i >= s.length) throw new GoJsonSyntaxError(this.i, 'unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(runStart, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) throw new GoJsonSyntaxError(this.i, 'invalid control character in string');
      if (c === 0x5c) {
        out += s.slice(runStart, this.i);
        this.i++;
        const e = s[this.i];
        this.i++;
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            const hi = this.hex4();
            if (hi >= 0xd800 && hi < 0xdc00) {
              // A surrogate pair must follow as another \u escape; otherwise Go substitutes U+FFFD.
              if (s[this.i] === '\\' && s[this.i + 1] === 'u') {
                const save = this.i;
                this.i += 2;
                const lo = this.hex4();
                if (lo >= 0xdc00 && lo < 0xe000) {
                  out += String.fromCharCode(hi, lo);
                  break;
                }
                this.i = save;
              }
              out += '\ufffd';
            } else if (hi >= 0xdc00 && hi < 0xe000) {
              out += '\ufffd';
            } else {
              out += String.fromCharCode(hi);
            }
            break;
          }
          default:
            throw new GoJsonSyntaxError(this.i - 1, 'invalid escape in string');
        }
        runStart = this.i;
        continue;
      }
      if (c >= 0xd800 && c < 0xe000) {
        // Lone surrogates in the decoded text cannot come from valid UTF-8; Go reads them as U+FFFD.
        const next = s.charCodeAt(this.i + 1);
        if (c < 0xdc00 && next >= 0xdc00 && next < 0xe000) {
          this.i += 2;
          continue;
        }
        out += s.slice(runStart, this.i) + '\ufffd';
        this.i++;
        runStart = this.i;
        continue;
      }
      this.i++;
    }
  }

  hex4(): number {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) throw new GoJsonSyntaxError(this.i, 'invalid \\u escape in string');
    this.i += 4;
    return parseInt(h, 16);
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** The JSON type name Go's errors use for a value (`string`, `number`, `object`, `array`, `bool`, `null`). */
export function goJsonKind(v: GoJsonValue): string {
  return v.kind;
}

/**
 * Case-folds a JSON key the way `encoding/json` matches struct field names: ASCII case-insensitive, plus
 * the two non-ASCII runes whose simple fold is ASCII (U+017F ſ → s, U+212A K → k).
 */
export function goFoldKey(key: string): string {
  return key
    .replace(/\u017f/g, 's')
    .replace(/\u212a/g, 'k')
    .toLowerCase();
}

/**
 * Go's `json.Marshal` of a string: `"` and `\` escaped, `\b \f \n \r \t` short forms, other controls as
 * `\u00xx`, `<` `>` `&` as `\u003c \u003e \u0026`, U+2028/U+2029 escaped, lone surrogates as `\ufffd`.
 */
export function goJsonString(s: string): string {
  let out = '"';
  let runStart = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (
      c < 0x20 ||
      c === 0x22 ||
      c === 0x5c ||
      c === 0x3c ||
      c === 0x3e ||
      c === 0x26 ||
      c === 0x2028 ||
      c === 0x2029
    ) {
      switch (c) {
        case 0x22:
          esc = '\\"';
          break;
        case 0x5c:
          esc = '\\\\';
          break;
        case 0x08:
          esc = '\\b';
          break;
        case 0x0c:
          esc = '\\f';
          break;
        case 0x0a:
          esc = '\\n';
          break;
        case 0x0d:
          esc = '\\r';
          break;
        case 0x09:
          esc = '\\t';
          break;
        default:
          esc = '\\u' + c.toString(16).padStart(4, '0');
      }
    } else if (c >= 0xd800 && c < 0xe000) {
      const next = s.charCodeAt(i + 1);
      if (c < 0xdc00 && next >= 0xdc00 && next < 0xe000) {
        i++;
        continue;
      }
      esc = '\\ufffd';
    }
    if (esc !== undefined) {
      out += s.slice(runStart, i) + esc;
      runStart = i + 1;
    }
  }
  return out + s.slice(runStart) + '"';
}

/** A value `goJsonMarshal` can write: strings, booleans, null, arrays and ordered objects. */
export type GoJsonWritable =
  string | boolean | null | GoJsonWritable[] | { [key: string]: GoJsonWritable | undefined };

/**
 * `json.Marshal` (compact) or `json.MarshalIndent(v, "", indent)` of plain data. Object keys are written
 * in insertion order (callers order them as the Go struct fields are ordered, or sort map keys); keys
 * whose value is `undefined` are omitted (`omitempty`).
 */
export function goJsonMarshal(v: GoJsonWritable, indent = ''): string {
  return write(v, indent, '');
}

function write(v: GoJsonWritable, indent: string, prefix: string): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return goJsonString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const nl = indent === '' ? '' : '\n';
  const inner = prefix + indent;
  const sep = indent === '' ? ':' : ': ';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return '[' + nl + v.map((x) => inner + write(x, indent, inner)).join(',' + nl) + nl + prefix + ']';
  }
  const entries = Object.entries(v).filter((e): e is [string, GoJsonWritable] => e[1] !== undefined);
  if (entries.length === 0) return '{}';
  return (
    '{' +
    nl +
    entries.map(([k, x]) => inner + goJsonString(k) + sep + write(x, indent, inner)).join(',' + nl) +
    nl +
    prefix +
    '}'
  );
}
