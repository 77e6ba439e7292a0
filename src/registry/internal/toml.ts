/**
 * A small TOML (v1.0.0) subset parser, scoped to what containerd `hosts.toml` files use
 * (containerd `docs/hosts.md`): comments, bare / quoted / dotted keys, `[table]` headers with quoted
 * parts (`[host."https://mirror:5000"]`), basic and literal strings (single- and multi-line), booleans,
 * integers, arrays (nested, multi-line, trailing comma) and inline tables.
 *
 * Not supported, and rejected with a clear message rather than misread: arrays of tables
 * (`[[x]]`), floats, dates and times. Redefining a key or a table is an error, as in TOML.
 *
 * Besides the value tree the parser reports the order in which `[table]` headers appear, because
 * containerd tries `[host."…"]` entries in file order (containerd `config/hosts.go` getSortedHosts).
 *
 * Every failure is a `HOSTS_CONFIG_INVALID` KimgError naming file, line and column.
 */
import { KimgError } from '../../errors/index.js';

/** A TOML value as this parser produces it. */
export type TomlValue = string | boolean | number | TomlValue[] | TomlTable;
/** A TOML table: a plain object with own enumerable keys only. */
export interface TomlTable {
  [key: string]: TomlValue;
}

/** Result of parsing: the root table and the `[table]` headers in file order (as key paths). */
export interface TomlDocument {
  root: TomlTable;
  tableHeaders: string[][];
}

const BARE_KEY = /[A-Za-z0-9_-]/;

/** Tables created implicitly (by a dotted header or dotted key) may still be defined explicitly once. */
interface TableMeta {
  explicit: boolean;
  /** Defined by an inline table or as a value: closed for further additions. */
  sealed: boolean;
}

function setOwn(t: TomlTable, k: string, v: TomlValue): void {
  Object.defineProperty(t, k, { value: v, enumerable: true, writable: true, configurable: true });
}
function hasOwn(t: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(t, k);
}
function isTable(v: TomlValue | undefined): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses `text` as TOML (the subset above). `file` is used in error messages only.
 * @throws KimgError `HOSTS_CONFIG_INVALID` with file, line and column on any syntax or semantic error.
 */
export function parseToml(text: string, file = '<input>'): TomlDocument {
  return new Parser(text, file).parse();
}

class Parser {
  private i = 0;
  private readonly meta = new WeakMap<TomlTable, TableMeta>();
  private readonly root: TomlTable = {};
  private readonly headers: string[][] = [];

  constructor(
    private readonly s: string,
    private readonly file: string,
  ) {
    this.meta.set(this.root, { explicit: true, sealed: false });
  }

  private fail(msg: string, at = this.i): never {
    let line = 1;
    let col = 1;
    for (let k = 0; k < at && k < this.s.length; k++) {
      if (this.s[k] === '\n') {
        line++;
        col = 1;
      } else col++;
    }
    throw new KimgError('HOSTS_CONFIG_INVALID', `${this.file}:${line}:${col}: ${msg}`, { file: this.file });
  }

  private peek(off = 0): string | undefined {
    return this.s[this.i + off];
  }

  /** Spaces and tabs only. */
  private skipWs(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.i++;
  }

  private skipComment(): void {
    if (this.peek() === '#') {
      while (this.i < this.s.length && this.peek() !== '\n') {
        const c = this.s.charCodeAt(this.i);
        if ((c < 0x20 && c !== 0x09) || c === 0x7f) this.fail('control character in comment');
        this.i++;
      }
    }
  }

  /** Whitespace, newlines and comments (inside arrays and between statements). */
  private skipWsNlComments(): void {
    for (;;) {
      this.skipWs();
      this.skipComment();
      if (this.peek() === '\n') this.i++;
      else if (this.peek() === '\r' && this.peek(1) === '\n') this.i += 2;
      else return;
    }
  }

  /** After a statement: optional whitespace and comment, then newline or end of input. */
  private expectEol(): void {
    this.skipWs();
    this.skipComment();
    if (this.i >= this.s.length) return;
    if (this.peek() === '\n') {
      this.i++;
      return;
    }
    if (this.peek() === '\r' && this.peek(1) === '\n') {
      this.i += 2;
      return;
    }
    this.fail(`expected end of line, found ${JSON.stringify(this.peek())}`);
  }

  parse(): TomlDocument {
    let current = this.root;
    this.skipWsNlComments();
    while (this.i < this.s.length) {
      if (this.peek() === '[') {
        if (this.peek(1) === '[') this.fail('arrays of tables ([[...]]) are not supported in hosts.toml');
        this.i++;
        this.skipWs();
        const path = this.parseKey();
        this.skipWs();
        if (this.peek() !== ']') this.fail('expected "]" to close the table header');
        this.i++;
        current = this.defineTable(path);
        this.headers.push(path);
        this.expectEol();
      } else {
        this.parseKeyValue(current);
        this.expectEol();
      }
      this.skipWsNlComments();
    }
    return { root: this.root, tableHeaders: this.headers };
  }

  private defineTable(path: string[]): TomlTable {
    let t = this.root;
    for (let k = 0; k < path.length; k++) {
      const key = path[k] as string;
      const last = k === path.length - 1;
      if (!hasOwn(t, key)) {
        const nt: TomlTable = {};
        setOwn(t, key, nt);
        this.meta.set(nt, { explicit: last, sealed: false });
        t = nt;
        continue;
      }
      const v = t[key];
      if (!isTable(v))
        this.fail(`key ${JSON.stringify(path.slice(0, k + 1).join('.'))} is already defined as a value`);
      const m = this.meta.get(v);
      if (m?.sealed)
        this.fail(
          `table ${JSON.stringify(path.slice(0, k + 1).join('.'))} is an inline table and cannot be extended`,
        );
      if (last) {
        if (m?.explicit) this.fail(`table ${JSON.stringify(path.join('.'))} is defined twice`);
        if (m) m.explicit = true;
      }
      t = v;
    }
    return t;
  }

  private parseKeyValue(table: TomlTable): void {
    const start = this.i;
    const path = this.parseKey();
    this.skipWs();
    if (this.peek() !== '=') this.fail('expected "=" after the key');
    this.i++;
    this.skipWs();
    const value = this.parseValue();
    let t = table;
    for (let k = 0; k < path.length - 1; k++) {
      const key = path[k] as string;
      if (!hasOwn(t, key)) {
        const nt: TomlTable = {};
        setOwn(t, key, nt);
        this.meta.set(nt, { explicit: true, sealed: false });
        t = nt;
        continue;
      }
      const v = t[key];
      if (!isTable(v) || this.meta.get(v)?.sealed)
        this.fail(`key ${JSON.stringify(path.slice(0, k + 1).join('.'))} is already defined`, start);
      t = v;
    }
    const lastKey = path[path.length - 1] as string;
    if (hasOwn(t, lastKey)) this.fail(`key ${JSON.stringify(path.join('.'))} is defined twice`, start);
    setOwn(t, lastKey, value);
  }

  /** A possibly dotted key: bare, "basic" or 'literal' parts joined by dots. */
  private parseKey(): string[] {
    const parts: string[] = [];
    for (;;) {
      this.skipWs();
      const c = this.peek();
      if (c === '"') parts.push(this.parseBasicString());
      else if (c === "'") parts.push(this.parseLiteralString());
      else {
        const start = this.i;
        while (this.i < this.s.length && BARE_KEY.test(this.s[this.i] as string)) this.i++;
        if (this.i === start)
          this.fail(
            c === undefined
              ? 'expected a key, found end of input'
              : `expected a key, found ${JSON.stringify(c)}`,
          );
        parts.push(this.s.slice(start, this.i));
      }
      this.skipWs();
      if (this.peek() === '.') {
        this.i++;
        continue;
      }
      return parts;
    }
  }

  private parseValue(): TomlValue {
    const c = this.peek();
    if (c === '"') {
      if (this.s.startsWith('"""', this.i)) return this.parseMultilineBasic();
      return this.parseBasicString();
    }
    if (c === "'") {
      if (this.s.startsWith("'''", this.i)) return this.parseMultilineLiteral();
      return this.parseLiteralString();
    }
    if (c === '[') return this.parseArray();
    if (c === '{') return this.parseInlineTable();
    if (this.s.startsWith('true', this.i) && !BARE_KEY.test(this.s[this.i + 4] ?? ' ')) {
      this.i += 4;
      return true;
    }
    if (this.s.startsWith('false', this.i) && !BARE_KEY.test(this.s[this.i + 5] ?? ' ')) {
      this.i += 5;
      return false;
    }
    const m = /^[+-]?(0|[1-9](_?[0-9])*)(?=[\s,\]}#]|$)/.exec(this.s.slice(this.i, this.i + 64));
    if (m) {
      this.i += m[0].length;
      const v = Number(m[0].replace(/_/g, ''));
      if (!Number.isSafeInteger(v)) this.fail('integer out of range');
      return v;
    }
    if (c === undefined || c === '\n' || c === '\r') this.fail('expected a value, found end of line');
    this.fail(
      `unsupported value starting with ${JSON.stringify(c)} (hosts.toml values are strings, booleans, integers, arrays and tables)`,
    );
  }

  private parseBasicString(): string {
    const start = this.i;
    this.i++; // "
    let out = '';
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '\n' || c === '\r') this.fail('unterminated string', start);
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c === '\\') {
        out += this.parseEscape();
        continue;
      }
      this.checkStringChar(c);
      out += c;
      this.i++;
    }
  }

  private checkStringChar(c: string): void {
    const code = c.charCodeAt(0);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) this.fail('control character in string');
  }

  private parseEscape(): string {
    const e = this.peek(1);
    this.i += 2;
    switch (e) {
      case 'b':
        return '\b';
      case 't':
        return '\t';
      case 'n':
        return '\n';
      case 'f':
        return '\f';
      case 'r':
        return '\r';
      case '"':
        return '"';
      case '\\':
        return '\\';
      case 'u':
      case 'U': {
        const len = e === 'u' ? 4 : 8;
        const hex = this.s.slice(this.i, this.i + len);
        if (!new RegExp(`^[0-9A-Fa-f]{${len}}$`).test(hex)) this.fail('invalid unicode escape', this.i - 2);
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
          this.fail('invalid unicode scalar value in escape', this.i - 2);
        this.i += len;
        return String.fromCodePoint(cp);
      }
      default:
        this.fail(`invalid escape sequence \\${e ?? ''}`, this.i - 2);
    }
  }

  private parseLiteralString(): string {
    const start = this.i;
    this.i++;
    const end = this.s.indexOf("'", this.i);
    const nl = this.s.indexOf('\n', this.i);
    if (end < 0 || (nl >= 0 && nl < end)) this.fail('unterminated string', start);
    const v = this.s.slice(this.i, end);
    for (const c of v) this.checkStringChar(c);
    this.i = end + 1;
    return v;
  }

  private parseMultilineBasic(): string {
    const start = this.i;
    this.i += 3;
    if (this.peek() === '\n') this.i++;
    else if (this.peek() === '\r' && this.peek(1) === '\n') this.i += 2;
    let out = '';
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail('unterminated multi-line string', start);
      if (this.s.startsWith('"""', this.i)) {
        // up to two extra quotes may belong to the content
        let q = 3;
        while (q < 5 && this.s[this.i + q] === '"') q++;
        out += '"'.repeat(q - 3);
        this.i += q;
        return out;
      }
      if (c === '\\') {
        // line-ending backslash trims whitespace up to the next non-whitespace
        let j = this.i + 1;
        while (this.s[j] === ' ' || this.s[j] === '\t') j++;
        if (this.s[j] === '\n' || (this.s[j] === '\r' && this.s[j + 1] === '\n')) {
          this.i = j;
          while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === '\n' || this.peek() === '\r')
            this.i++;
          continue;
        }
        out += this.parseEscape();
        continue;
      }
      if (c === '\r' && this.peek(1) === '\n') {
        out += '\r\n';
        this.i += 2;
        continue;
      }
      if (c !== '\n') this.checkStringChar(c);
      out += c;
      this.i++;
    }
  }

  private parseMultilineLiteral(): string {
    const start = this.i;
    this.i += 3;
    if (this.peek() === '\n') this.i++;
    else if (this.peek() === '\r' && this.peek(1) === '\n') this.i += 2;
    const end = this.s.indexOf("'''", this.i);
    if (end < 0) this.fail('unterminated multi-line string', start);
    let q = 3;
    while (q < 5 && this.s[end + q] === "'") q++;
    const v = this.s.slice(this.i, end + q - 3);
    for (const c of v) if (c !== '\n' && c !== '\r') this.checkStringChar(c);
    this.i = end + q;
    return v;
  }

  private parseArray(): TomlValue[] {
    this.i++; // [
    const out: TomlValue[] = [];
    for (;;) {
      this.skipWsNlComments();
      if (this.peek() === ']') {
        this.i++;
        return out;
      }
      out.push(this.parseValue());
      this.skipWsNlComments();
      if (this.peek() === ',') {
        this.i++;
        continue;
      }
      if (this.peek() === ']') {
        this.i++;
        return out;
      }
      this.fail('expected "," or "]" in array');
    }
  }

  private parseInlineTable(): TomlTable {
    this.i++; // {
    const t: TomlTable = {};
    this.meta.set(t, { explicit: true, sealed: false });
    this.skipWs();
    if (this.peek() === '}') {
      this.i++;
      this.meta.set(t, { explicit: true, sealed: true });
      return t;
    }
    for (;;) {
      this.skipWs();
      this.parseKeyValue(t);
      this.skipWs();
      if (this.peek() === ',') {
        this.i++;
        continue;
      }
      if (this.peek() === '}') {
        this.i++;
        this.sealAll(t);
        return t;
      }
      this.fail('expected "," or "}" in inline table');
    }
  }

  private sealAll(t: TomlTable): void {
    this.meta.set(t, { explicit: true, sealed: true });
    for (const k of Object.keys(t)) {
      const v = t[k];
      if (isTable(v)) this.sealAll(v);
    }
  }
}
