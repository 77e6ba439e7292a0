/**
 * Path resolution inside a root, the way umoci's `securejoin.SecureJoinVFS` and containerd's
 * `fs.RootPath` do it: a name from a layer is walked one component at a time with `lstat`; `..` at the
 * root stays at the root; a symlink met on the way is expanded with its target interpreted inside the
 * root (an absolute target restarts at the root, a `..` target cannot climb above it). The result is a
 * host path whose every existing component is a real directory inside the root, so operating on it
 * never touches anything outside. A race with a concurrent writer inside the root is out of scope: the
 * bundle directory is created 0700 by the unpacker and nothing else writes there while it runs (see
 * docs/design/unpack.md).
 */
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { KimgError, quote } from '../../errors/index.js';

/** Linux's own limit on symlinks followed in one lookup (MAXSYMLINKS). */
const MAX_LINKS = 40;

export interface Resolved {
  /** Host path (root + resolved components). */
  host: string;
  /** The resolved path relative to the root, `''` for the root itself, no leading slash. */
  rel: string;
  /** Whether a `..` (in the name or in a symlink target) tried to climb above the root. */
  clamped: boolean;
  /** The first component that does not exist (the rest was appended lexically), or undefined. */
  missingFrom?: string;
  /** Set when a non-directory sits where a directory is needed; names its relative path. */
  notDir?: string;
}

export function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** Lexically cleans a layer name as if rooted: no `.`/`..`/empty components, no trailing slash. */
export function cleanName(name: string): string {
  const n = posix.normalize('/' + name);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** Whether a relative (to the root) name climbs above the root lexically, e.g. `a/../../etc`. */
export function climbsAboveRoot(name: string): boolean {
  let depth = 0;
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (depth === 0) return true;
      depth--;
    } else depth++;
  }
  return false;
}

/**
 * Resolves `name` inside `root`. Every symlink is expanded, the last component's too (callers resolve
 * an entry's parent directory with this and append the base name themselves, so the entry itself is
 * never followed).
 */
export function resolveInRoot(root: string, name: string): Resolved {
  const parts: string[] = [];
  // Components still to walk, last one first (so pop() takes the next).
  const todo = name.split('/').reverse();
  let links = 0;
  let clamped = false;
  let missingFrom: string | undefined;
  let notDir: string | undefined;
  while (todo.length > 0) {
    const c = todo.pop() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (parts.length === 0) clamped = true;
      else parts.pop();
      // Once a component is missing, `..` just walks back lexically; re-check existence below.
      if (missingFrom !== undefined && parts.join('/').length < missingFrom.length) missingFrom = undefined;
      continue;
    }
    parts.push(c);
    if (missingFrom !== undefined) continue;
    const rel = parts.join('/');
    const st = lstatOrUndefined(posix.join(root, rel));
    if (st === undefined) {
      missingFrom = rel;
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) {
        throw new KimgError(
          'UNPACK_UNSAFE',
          `too many levels of symbolic links resolving ${quote(name)} inside the root`,
          {
            input: name,
          },
        );
      }
      parts.pop();
      const target = readlinkSync(posix.join(root, rel));
      if (target.startsWith('/')) parts.length = 0;
      todo.push(...target.split('/').reverse());
      continue;
    }
    if (!st.isDirectory() && todo.some((x) => x !== '' && x !== '.')) {
      // A non-directory with more to walk (Linux: ENOTDIR): stop here, the caller refuses the name.
      notDir = rel;
      break;
    }
  }
  const rel = parts.join('/');
  return {
    host: rel === '' ? root : posix.join(root, rel),
    rel,
    clamped,
    ...(missingFrom !== undefined ? { missingFrom } : {}),
    ...(notDir !== undefined ? { notDir } : {}),
  };
}
