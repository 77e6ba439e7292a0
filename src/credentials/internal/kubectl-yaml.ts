/**
 * YAML the way `kubectl ... -o yaml` prints it (sigs.k8s.io/yaml over go-yaml v2, whose emitter is a
 * port of libyaml), for the few shapes kimg prints as kubectl would: block mappings of scalars.
 *
 * What has to match byte for byte, and why it is not the `yaml` package's output:
 * - map keys are sorted with go-yaml's "natural" order (non-letters before letters, digit runs compared
 *   as numbers: `a9` < `a09` < `a10`);
 * - a plain scalar that would read back as something other than a string under YAML 1.1 (`yes`, `on`,
 *   `012`, `1_000`, `2001-12-14`, `1:20`, `~`) is double-quoted;
 * - libyaml's scalar analysis picks plain, single-quoted, double-quoted or literal style (indicators,
 *   leading/trailing spaces, line breaks, non-printable characters, which include tab and every
 *   character outside the Basic Multilingual Plane);
 * - lines are folded at spaces once past column 80 (plain, single- and double-quoted scalars);
 * - keys longer than 128 characters are written as `? key` / `: value`.
 */

const BEST_WIDTH = 80;
const BEST_INDENT = 2;

/** A YAML node kimg prints: a string scalar, `null`, or a mapping (keys sorted on output). */
export type KYamlNode = string | null | { [key: string]: KYamlNode };

/** Prints a mapping as `kubectl -o yaml` would. */
export function toKubectlYaml(root: { [key: string]: KYamlNode }): string {
  const out = new Writer();
  writeMapping(out, root, 0);
  return out.text;
}

class Writer {
  text = '';
  column = 0;
  write(s: string): void {
    this.text += s;
    const nl = s.lastIndexOf('\n');
    this.column = nl < 0 ? this.column + [...s].length : [...s.slice(nl + 1)].length;
  }
  newline(): void {
    this.text += '\n';
    this.column = 0;
  }
  indentTo(indent: number): void {
    if (this.column !== 0) this.newline();
    this.write(' '.repeat(indent));
  }
}

function writeMapping(out: Writer, map: { [key: string]: KYamlNode }, indent: number): void {
  const keys = Object.keys(map).sort((a, b) => (goYamlKeyLess(a, b) ? -1 : goYamlKeyLess(b, a) ? 1 : 0));
  if (keys.length === 0) {
    out.write('{}');
    out.newline();
    return;
  }
  for (const key of keys) {
    const value = map[key] ?? null;
    out.indentTo(indent);
    const simple = [...key].length <= 128;
    if (!simple) {
      out.write('? ');
      writeScalar(out, key, { simpleKey: false, indent: indent + BEST_INDENT });
      out.indentTo(indent);
      out.write(':');
    } else {
      writeScalar(out, key, { simpleKey: true, indent: indent + BEST_INDENT });
      out.write(':');
    }
    if (value !== null && typeof value === 'object') {
      if (Object.keys(value).length === 0) {
        out.write(' {}');
        out.newline();
      } else {
        out.newline();
        writeMapping(out, value, indent + BEST_INDENT);
      }
      continue;
    }
    out.write(' ');
    if (value === null) out.write('null');
    else writeScalar(out, value, { simpleKey: false, indent: indent + BEST_INDENT });
    out.newline();
  }
}

// --- go-yaml v2 natural key order ---------------------------------------------------------------------

const LETTER = /\p{L}/u;
const DIGIT = /\p{Nd}/u;

/** go-yaml v2 `keyList.Less` for two string keys. */
export function goYamlKeyLess(a: string, b: string): boolean {
  const ar = [...a];
  const br = [...b];
  for (let i = 0; i < ar.length && i < br.length; i++) {
    const x = ar[i] as string;
    const y = br[i] as string;
    if (x === y) continue;
    const al = LETTER.test(x);
    const bl = LETTER.test(y);
    if (al && bl) return (x.codePointAt(0) ?? 0) < (y.codePointAt(0) ?? 0);
    if (al || bl) return bl;
    let an = 0n;
    let bn = 0n;
    if (x === '0' || y === '0') {
      for (let j = i - 1; j >= 0 && DIGIT.test(ar[j] as string); j--) {
        if (ar[j] !== '0') {
          an = 1n;
          bn = 1n;
          break;
        }
      }
    }
    let ai = i;
    for (; ai < ar.length && DIGIT.test(ar[ai] as string); ai++)
      an = an * 10n + BigInt((ar[ai] as string).codePointAt(0)! - 0x30);
    let bi = i;
    for (; bi < br.length && DIGIT.test(br[bi] as string); bi++)
      bn = bn * 10n + BigInt((br[bi] as string).codePointAt(0)! - 0x30);
    if (an !== bn) return an < bn;
    if (ai !== bi) return ai < bi;
    return (x.codePointAt(0) ?? 0) < (y.codePointAt(0) ?? 0);
  }
  return ar.length < br.length;
}

// --- YAML 1.1 resolution (go-yaml v2 resolve.go) ------------------------------------------------------

const RESOLVE_MAP = new Set([
  'y',
  'Y',
  'yes',
  'Yes',
  'YES',
  'true',
  'True',
  'TRUE',
  'on',
  'On',
  'ON',
  'n',
  'N',
  'no',
  'No',
  'NO',
  'false',
  'False',
  'FALSE',
  'off',
  'Off',
  'OFF',
  '',
  '~',
  'null',
  'Null',
  'NULL',
  '.nan',
  '.NaN',
  '.NAN',
  '.inf',
  '.Inf',
  '.INF',
  '+.inf',
  '+.Inf',
  '+.INF',
  '-.inf',
  '-.Inf',
  '-.INF',
]);
const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
const BASE60_FLOAT = /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/;

/** True when go-yaml would read `s`, written plain, as something other than a string. */
export function resolvesToNonString(s: string): boolean {
  if (BASE60_FLOAT.test(s)) return true;
  if (s === '') return true;
  const c = s[0] as string;
  const hint =
    c === '+' || c === '-'
      ? 'S'
      : c >= '0' && c <= '9'
        ? 'D'
        : 'yYnNtTfFoO~'.includes(c)
          ? 'M'
          : c === '.'
            ? '.'
            : '';
  if (hint === '') return false;
  if (RESOLVE_MAP.has(s)) return true;
  if (hint === 'M') return false;
  if (hint === '.') return goParseFloatOk(s);
  if (isYamlTimestamp(s)) return true;
  const plain = s.replace(/_/g, '');
  if (goParseIntOk(plain)) return true;
  if (YAML_STYLE_FLOAT.test(plain) && goParseFloatOk(plain)) return true;
  if (/^-?0b[01]+$/.test(plain)) return goIntRange(plain.replace('0b', ''), 2);
  return false;
}

function goParseFloatOk(s: string): boolean {
  // strconv.ParseFloat accepts decimal and hex floats, inf/nan words, underscores only with a base
  // prefix; it fails on overflow (±Inf from a finite literal).
  if (/^[-+]?(inf|infinity|nan)$/i.test(s)) return true;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return false;
  return Number.isFinite(Number(s));
}

/** `strconv.ParseInt(s, 0, 64)` or `ParseUint(s, 0, 64)` succeeds. */
function goParseIntOk(s: string): boolean {
  const m = /^([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return false;
  const sign = m[1] ?? '';
  const body = m[2] ?? '';
  let v: bigint;
  const p = body.slice(0, 2).toLowerCase();
  if (p === '0x' || p === '0o' || p === '0b')
    v = BigInt(
      body
        .replace(/^0[oO]/, '0o')
        .replace(/^0[bB]/, '0b')
        .replace(/^0[xX]/, '0x'),
    );
  else if (body.length > 1 && body[0] === '0') v = BigInt('0o' + body.slice(1));
  else v = BigInt(body);
  if (sign === '-') return v <= 2n ** 63n;
  // ParseUint takes no sign, so a `+` literal must fit ParseInt.
  if (sign === '+') return v <= 2n ** 63n - 1n;
  return v <= 2n ** 64n - 1n;
}

function goIntRange(digits: string, base: number): boolean {
  const neg = digits.startsWith('-');
  const v = BigInt((base === 2 ? '0b' : '') + digits.replace('-', ''));
  return neg ? v <= 2n ** 63n : v <= 2n ** 63n - 1n;
}

/** go-yaml v2 `parseTimestamp`: `YYYY-M-D`, optionally with `T`/`t`/space time and zone, valid dates. */
function isYamlTimestamp(s: string): boolean {
  const m =
    /^(\d{4})-(\d{1,2})-(\d{1,2})(?:([Tt ])(\d{1,2}):(\d{1,2}):(\d{1,2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(
      s,
    );
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (mo < 1 || mo > 12 || d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return false;
  if (m[4] !== undefined) {
    const [h, mi, se] = [Number(m[5]), Number(m[6]), Number(m[7])];
    if (h > 23 || mi > 59 || se > 59) return false;
    // The space-separated form has no zone in Go's layout list.
    if (m[4] === ' ' && m[9] !== undefined) return false;
    if (m[4] !== ' ' && m[9] === undefined) return false;
  }
  return true;
}

// --- libyaml scalar analysis and writers -----------------------------------------------------------------

function isPrintable(cp: number): boolean {
  return (
    cp === 0x0a ||
    (cp >= 0x20 && cp <= 0x7e) ||
    (cp >= 0xa0 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd && cp !== 0xfeff)
  );
}
const isSpace = (cp: number | undefined): boolean => cp === 0x20;
const isBreak = (cp: number | undefined): boolean =>
  cp === 0x0a || cp === 0x0d || cp === 0x85 || cp === 0x2028 || cp === 0x2029;
const isBlankz = (cp: number | undefined): boolean =>
  cp === undefined || cp === 0x20 || cp === 0x09 || isBreak(cp);

interface Analysis {
  multiline: boolean;
  blockPlainAllowed: boolean;
  singleQuotedAllowed: boolean;
  blockAllowed: boolean;
}

function analyze(cps: number[]): Analysis {
  if (cps.length === 0)
    return { multiline: false, blockPlainAllowed: true, singleQuotedAllowed: true, blockAllowed: false };
  let blockIndicators = false;
  const text = String.fromCodePoint(...cps.slice(0, 3));
  if (text === '---' || text === '...') blockIndicators = true;
  let precededByWs = true;
  let leadingSpace = false;
  let leadingBreak = false;
  let trailingSpace = false;
  let trailingBreak = false;
  let breakSpace = false;
  let spaceBreak = false;
  let previousSpace = false;
  let previousBreak = false;
  let lineBreaks = false;
  let special = false;
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i] as number;
    const followedByWs = isBlankz(cps[i + 1]);
    if (i === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(String.fromCodePoint(c))) blockIndicators = true;
      else if ((c === 0x3f || c === 0x3a) && followedByWs) blockIndicators = true;
      else if (c === 0x2d && followedByWs) blockIndicators = true;
    } else {
      if (c === 0x3a && followedByWs) blockIndicators = true;
      else if (c === 0x23 && precededByWs) blockIndicators = true;
    }
    if (!isPrintable(c)) special = true;
    if (isSpace(c)) {
      if (i === 0) leadingSpace = true;
      if (i === cps.length - 1) trailingSpace = true;
      if (previousBreak) breakSpace = true;
      previousSpace = true;
      previousBreak = false;
    } else if (isBreak(c)) {
      lineBreaks = true;
      if (i === 0) leadingBreak = true;
      if (i === cps.length - 1) trailingBreak = true;
      if (previousSpace) spaceBreak = true;
      previousSpace = false;
      previousBreak = true;
    } else {
      previousSpace = false;
      previousBreak = false;
    }
    precededByWs = isBlankz(c);
  }
  let blockPlainAllowed = true;
  let singleQuotedAllowed = true;
  let blockAllowed = true;
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) blockPlainAllowed = false;
  if (trailingSpace) blockAllowed = false;
  if (breakSpace) {
    blockPlainAllowed = false;
    singleQuotedAllowed = false;
  }
  if (spaceBreak || special) {
    blockPlainAllowed = false;
    singleQuotedAllowed = false;
    blockAllowed = false;
  }
  if (lineBreaks) blockPlainAllowed = false;
  if (blockIndicators) blockPlainAllowed = false;
  return { multiline: lineBreaks, blockPlainAllowed, singleQuotedAllowed, blockAllowed };
}

function writeScalar(out: Writer, value: string, ctx: { simpleKey: boolean; indent: number }): void {
  const cps = Array.from(value, (ch) => ch.codePointAt(0) ?? 0);
  const a = analyze(cps);
  type Style = 'plain' | 'single' | 'double' | 'literal';
  let style: Style;
  if (value.includes('\n')) style = 'literal';
  else if (resolvesToNonString(value)) style = 'double';
  else style = 'plain';
  if (style === 'plain') {
    if (!a.blockPlainAllowed) style = 'single';
    if (cps.length === 0 && ctx.simpleKey) style = 'single';
  }
  if (style === 'single' && !a.singleQuotedAllowed) style = 'double';
  if (style === 'literal' && (!a.blockAllowed || ctx.simpleKey)) style = 'double';
  if (ctx.simpleKey && a.multiline && style !== 'double') style = 'double';
  const allowBreaks = !ctx.simpleKey;
  switch (style) {
    case 'plain':
      return writePlain(out, cps, allowBreaks, ctx.indent);
    case 'single':
      return writeSingle(out, cps, allowBreaks, ctx.indent);
    case 'double':
      return writeDouble(out, cps, allowBreaks, ctx.indent);
    case 'literal':
      return writeLiteral(out, cps, ctx.indent);
  }
}

function writePlain(out: Writer, cps: number[], allowBreaks: boolean, indent: number): void {
  let spaces = false;
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i] as number;
    if (isSpace(c)) {
      if (allowBreaks && !spaces && out.column > BEST_WIDTH && !isSpace(cps[i + 1])) out.indentTo(indent);
      else out.write(' ');
      spaces = true;
    } else {
      out.write(String.fromCodePoint(c));
      spaces = false;
    }
  }
}

function writeSingle(out: Writer, cps: number[], allowBreaks: boolean, indent: number): void {
  out.write("'");
  let spaces = false;
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i] as number;
    if (isSpace(c)) {
      if (
        allowBreaks &&
        !spaces &&
        out.column > BEST_WIDTH &&
        i !== 0 &&
        i !== cps.length - 1 &&
        !isSpace(cps[i + 1])
      ) {
        out.indentTo(indent);
      } else out.write(' ');
      spaces = true;
    } else {
      out.write(String.fromCodePoint(c));
      if (c === 0x27) out.write("'");
      spaces = false;
    }
  }
  out.write("'");
}

const SHORT_ESCAPES: Record<number, string> = {
  0x00: '0',
  0x07: 'a',
  0x08: 'b',
  0x09: 't',
  0x0a: 'n',
  0x0b: 'v',
  0x0c: 'f',
  0x0d: 'r',
  0x1b: 'e',
  0x22: '"',
  0x5c: '\\',
  0x85: 'N',
  0xa0: '_',
  0x2028: 'L',
  0x2029: 'P',
};

function writeDouble(out: Writer, cps: number[], allowBreaks: boolean, indent: number): void {
  out.write('"');
  let spaces = false;
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i] as number;
    if (!isPrintable(c) || c === 0xfeff || isBreak(c) || c === 0x22 || c === 0x5c) {
      const short = SHORT_ESCAPES[c];
      if (short !== undefined) out.write('\\' + short);
      else if (c <= 0xff) out.write('\\x' + c.toString(16).toUpperCase().padStart(2, '0'));
      else if (c <= 0xffff) out.write('\\u' + c.toString(16).toUpperCase().padStart(4, '0'));
      else out.write('\\U' + c.toString(16).toUpperCase().padStart(8, '0'));
      spaces = false;
    } else if (isSpace(c)) {
      if (allowBreaks && !spaces && out.column > BEST_WIDTH && i !== 0 && i !== cps.length - 1) {
        out.indentTo(indent);
        if (isSpace(cps[i + 1])) out.write('\\');
      } else out.write(' ');
      spaces = true;
    } else {
      out.write(String.fromCodePoint(c));
      spaces = false;
    }
  }
  out.write('"');
}

function writeLiteral(out: Writer, cps: number[], indent: number): void {
  let hints = '';
  if (isSpace(cps[0]) || isBreak(cps[0])) hints += String(BEST_INDENT);
  const last = cps[cps.length - 1];
  if (!isBreak(last)) hints += '-';
  else if (cps.length === 1 || isBreak(cps[cps.length - 2])) hints += '+';
  out.write('|' + hints);
  out.newline();
  let breaks = true;
  for (const c of cps) {
    if (isBreak(c)) {
      out.newline();
      breaks = true;
    } else {
      if (breaks) out.write(' '.repeat(indent));
      out.write(String.fromCodePoint(c));
      breaks = false;
    }
  }
  // The mapping writer adds the final line break; a literal that ended with a break already has one.
  if (isBreak(last)) out.text = out.text.replace(/\n$/, '');
}
