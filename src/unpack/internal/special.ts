/**
 * The few filesystem calls Node has no binding for: `mknod` (device nodes and overlayfs whiteouts),
 * `mkfifo`, and `lsetxattr`. Device nodes and FIFOs are rare in layers, so they go through the
 * coreutils commands; overlayfs whiteouts (a layer can hold thousands: one `mknod` process each cost
 * ~40 ms here, 42 s for 1,000) and xattrs are batched per layer into one `perl` process each (perl-base
 * is Essential in Debian and every distribution image has it) that calls `mknodat(2)` and
 * `lsetxattr(2)` by syscall number, so neither follows a symlink at the last component. Paths handed
 * here are already resolved inside the root.
 */
import { execFileSync } from 'node:child_process';
import { KimgError, quote } from '../../errors/index.js';

/** `lsetxattr` syscall numbers of the architectures kimg runs on. */
const LSETXATTR: Readonly<Partial<Record<NodeJS.Architecture, number>>> = { x64: 189, arm64: 6 };
/** `mknodat` syscall numbers (arm64 has no plain `mknod`). */
const MKNODAT: Readonly<Partial<Record<NodeJS.Architecture, number>>> = { x64: 259, arm64: 33 };

function run(cmd: string, args: string[], what: string, path: string): void {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? '').trim();
    throw new KimgError('STORE_IO', `cannot ${what} ${quote(path)}: ${stderr || (e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
}

/** Creates a character or block device node (root only). */
export function mknod(path: string, kind: 'char' | 'block', major: number, minor: number): void {
  run(
    'mknod',
    ['-m', '0600', path, kind === 'char' ? 'c' : 'b', String(major), String(minor)],
    'create device',
    path,
  );
}

/** Creates a FIFO. */
export function mkfifo(path: string): void {
  run('mkfifo', ['-m', '0600', path], 'create fifo', path);
}

/** One xattr to set. */
export interface XattrOp {
  path: string;
  name: string;
  value: Buffer;
}

/** What became of a batch: entries refused by the filesystem (EPERM, ENOTSUP) are reported, not thrown. */
export interface XattrResult {
  refused: { op: XattrOp; errno: number }[];
}

const PERL = `
use strict; binmode STDIN; local $/; my $d = <STDIN>; my $nr = $ARGV[0] + 0;
my @f = split /\\0/, $d, -1; my $n = 0;
for (my $i = 0; $i + 2 < @f; $i += 3) {
  my ($p, $k, $v) = ($f[$i], $f[$i+1], pack('H*', $f[$i+2]));
  my $r = syscall($nr, $p, $k, $v, length($v), 0);
  if ($r != 0) { print $n, " ", ($! + 0), "\\n"; }
  $n++;
}`;

/** Sets the xattrs with `lsetxattr(2)` in one helper process. */
export function setXattrs(ops: readonly XattrOp[]): XattrResult {
  if (ops.length === 0) return { refused: [] };
  const nr = LSETXATTR[process.arch];
  if (nr === undefined) return { refused: ops.map((op) => ({ op, errno: 95 })) };
  for (const op of ops) {
    if (op.path.includes('\0') || op.name.includes('\0') || op.name === '') {
      throw new KimgError(
        'LAYER_INVALID',
        `xattr ${quote(op.name)} on ${quote(op.path)} has an invalid name`,
        {
          file: op.path,
        },
      );
    }
  }
  const input = ops.map((o) => `${o.path}\0${o.name}\0${o.value.toString('hex')}\0`).join('');
  let out: string;
  try {
    out = execFileSync('perl', ['-e', PERL, String(nr)], { input, maxBuffer: 64 * 1024 * 1024 }).toString();
  } catch (e) {
    throw new KimgError('STORE_IO', `cannot set xattrs: ${(e as Error).message}`, { cause: e });
  }
  const refused: XattrResult['refused'] = [];
  for (const line of out.split('\n')) {
    const m = /^(\d+) (\d+)$/.exec(line);
    if (!m) continue;
    refused.push({ op: ops[Number(m[1])] as XattrOp, errno: Number(m[2]) });
  }
  return { refused };
}

/** mknodat(AT_FDCWD, path, S_IFCHR | 0600, makedev(0, 0)) for each path; failures print "index errno". */
const PERL_WHITEOUTS = `
use strict; binmode STDIN; local $/; my $d = <STDIN>; my $nr = $ARGV[0] + 0;
my @p = split /\\0/, $d; my $n = 0;
for my $p (@p) {
  my $r = syscall($nr, -100, $p, 0020600, 0);
  if ($r != 0) { print $n, " ", ($! + 0), "\\n"; }
  $n++;
}`;

/**
 * Creates overlayfs whiteouts — 0/0 character devices, mode 0600 — at `paths` in one helper process
 * (root only). A path that already exists is not replaced (`EEXIST`); a symlink at a path is never
 * followed.
 * @throws KimgError `STORE_IO` naming the first path that could not be created.
 */
export function mknodWhiteouts(paths: readonly string[]): void {
  if (paths.length === 0) return;
  const nr = MKNODAT[process.arch];
  if (nr === undefined) {
    for (const p of paths) mknod(p, 'char', 0, 0);
    return;
  }
  for (const p of paths) {
    if (p.includes('\0')) {
      throw new KimgError('LAYER_INVALID', `whiteout path ${quote(p)} is invalid`, { file: p });
    }
  }
  let out: string;
  try {
    out = execFileSync('perl', ['-e', PERL_WHITEOUTS, String(nr)], {
      input: paths.join('\0') + '\0',
      maxBuffer: 64 * 1024 * 1024,
    }).toString();
  } catch (e) {
    throw new KimgError('STORE_IO', `cannot create whiteouts: ${(e as Error).message}`, { cause: e });
  }
  const m = /^(\d+) (\d+)$/m.exec(out);
  if (m !== null) {
    const path = paths[Number(m[1])] ?? '';
    throw new KimgError(
      'STORE_IO',
      `cannot create the whiteout ${quote(path)} (errno ${m[2]}): overlayfs whiteouts are device nodes and need root`,
      { file: path },
    );
  }
}
