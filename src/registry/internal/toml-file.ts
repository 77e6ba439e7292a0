/**
 * Reading a `hosts.toml` file with `smol-toml` (TOML 1.0, the same language containerd's go-toml
 * reads), in the two ways kimg needs beyond a plain parse:
 *
 * - Errors become `HOSTS_CONFIG_INVALID` naming file, line and column. Only the parser's reason is
 *   kept, never its excerpt of the file: `header` values in hosts.toml may carry tokens.
 * - The keys of a table in file order. containerd tries `[host."…"]` entries in the order they appear
 *   (containerd/containerd `core/remotes/docker/config/hosts.go` getSortedHosts sorts them by line).
 *   A JavaScript object lists keys in insertion order, which is file order, except keys that look like
 *   array indices (`"1"`, `"42"`): those come first, in numeric order. For such keys the order is
 *   recovered by parsing growing prefixes of the file and noting when each key first appears.
 */
import { parse, TomlError, type TomlTableWithoutBigInt, type TomlValueWithoutBigInt } from 'smol-toml';
import { KimgError } from '../../errors/index.js';

/** A TOML table as parsed (null-prototype object; integers as numbers). */
export type TomlTable = TomlTableWithoutBigInt;
/** A TOML value as parsed: string, number, boolean, date/time (a `Date`), array or table. */
export type TomlValue = TomlValueWithoutBigInt;

/** Inline tables and arrays nest at most this deep; hosts.toml needs three levels. */
const MAX_DEPTH = 64;

/** True for a table (not an array, not a date/time value). */
export function isTomlTable(v: TomlValue | undefined): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * Parses `text` as TOML 1.0. `file` is used in error messages only.
 * @throws KimgError `HOSTS_CONFIG_INVALID` with `<file>:<line>:<column>: <reason>`.
 */
export function parseTomlFile(text: string, file: string): TomlTable {
  try {
    return parse(text, { maxDepth: MAX_DEPTH });
  } catch (e) {
    if (e instanceof TomlError) {
      const reason = e.message.replace(/^Invalid TOML document: /, '').split('\n')[0];
      throw new KimgError('HOSTS_CONFIG_INVALID', `${file}:${e.line}:${e.column}: ${reason}`, {
        file,
        cause: e,
      });
    }
    throw new KimgError('HOSTS_CONFIG_INVALID', `${file}: not a valid TOML document`, { file, cause: e });
  }
}

/** A key JavaScript orders before all others (a canonical array index, 0 … 2³²−2). */
function isArrayIndexKey(k: string): boolean {
  return /^(?:0|[1-9][0-9]{0,9})$/.test(k) && Number(k) < 2 ** 32 - 1;
}

/**
 * The keys of the top-level table `name` of the document `text` (already parsed into `table`) in the
 * order they first appear in the file.
 */
export function tableKeysInFileOrder(text: string, name: string, table: TomlTable): string[] {
  const keys = Object.keys(table);
  if (!keys.some(isArrayIndexKey)) return keys;
  const order: string[] = [];
  const lines = text.split('\n');
  for (let n = 1; n <= lines.length && order.length < keys.length; n++) {
    let prefix: TomlTable;
    try {
      // A prefix that ends inside a multi-line string or array does not parse; the next one may.
      prefix = parse(lines.slice(0, n).join('\n'), { maxDepth: MAX_DEPTH });
    } catch {
      continue;
    }
    const sub = prefix[name];
    if (!isTomlTable(sub)) continue;
    for (const k of Object.keys(sub)) if (keys.includes(k) && !order.includes(k)) order.push(k);
  }
  for (const k of keys) if (!order.includes(k)) order.push(k);
  return order;
}
