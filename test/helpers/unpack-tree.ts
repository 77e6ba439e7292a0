/**
 * A comparable description of a directory tree for the unpack tests: for every path (relative, sorted)
 * its type, permission bits, owner, link count, symlink target, device numbers and the sha256 of a
 * regular file's content; with `mtime`, every entry's modification time in whole seconds too. Never
 * follows symlinks.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './proc.js';

export interface TreeNode {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  nlink?: number;
  target?: string;
  rdev?: number;
  sha256?: string;
  /** Seconds (with `{ mtime: true }`). */
  mtime?: number;
}

function typeOf(st: Stats): TreeNode['type'] {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** Describes `root` (the root itself is `.`). */
export function describeTree(root: string, options: { mtime?: boolean } = {}): Record<string, TreeNode> {
  const out: Record<string, TreeNode> = {};
  const walk = (rel: string): void => {
    const p = rel === '.' ? root : join(root, rel);
    const st = lstatSync(p);
    const node: TreeNode = { type: typeOf(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    if (node.type === 'symlink') {
      node.target = readlinkSync(p);
      delete (node as { mode?: number }).mode;
    }
    if (node.type === 'file') {
      node.sha256 = createHash('sha256').update(readFileSync(p)).digest('hex');
      node.nlink = st.nlink;
    }
    if (node.type === 'char' || node.type === 'block') node.rdev = st.rdev;
    if (options.mtime === true) node.mtime = Math.floor(st.mtimeMs / 1000);
    out[rel] = node;
    if (node.type === 'dir') {
      for (const name of readdirSync(p).sort()) walk(rel === '.' ? name : `${rel}/${name}`);
    }
  };
  walk('.');
  return out;
}

/** lgetxattr(2) of `name` on `path`, through perl's syscall (no getfattr on the machine); "" if unset. */
export async function getXattr(path: string, name: string): Promise<string> {
  const nr = process.arch === 'arm64' ? 8 : 192;
  const r = await runCommand('perl', [
    '-e',
    `my $v = "\\0" x 256; my $n = syscall(${nr}, $ARGV[0], $ARGV[1], $v, 256); print $n < 0 ? "" : substr($v, 0, $n);`,
    path,
    name,
  ]);
  return r.stdout;
}
