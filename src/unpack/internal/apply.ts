/**
 * Applies one layer's tar entries to a directory, following image-spec `layer.md`:
 *
 * - additions and changes are whole entries; an entry over an existing path replaces it (unlink or
 *   remove the tree, then create), except a directory over a directory, which only gets its attributes
 *   replaced;
 * - `.wh.NAME` removes NAME from lower layers, `.wh..wh..opq` removes every lower child of its directory;
 *   paths this same layer created (and their ancestors) are kept, as umoci's `upperPaths` does, so the
 *   result does not depend on where in the tar the whiteout sits;
 * - hardlinks, symlinks (targets written verbatim), devices, FIFOs; mode (with setuid/setgid/sticky),
 *   owner (`lchown`/`fchown`, as root), mtime/atime (`lutimes`/`futimes`; directories' times are set
 *   after the last layer, since later entries change them), and `SCHILY.xattr.*` where the filesystem
 *   accepts them.
 *
 * In `overlay` mode (snapshot directories) whiteouts are kept the way overlayfs reads them: a 0/0
 * character device for `.wh.NAME` and `trusted.overlay.opaque=y` on the directory for `.wh..wh..opq`.
 *
 * Safety (docs/design/unpack.md): every name is cleaned as if rooted and its parent resolved inside the
 * root with `resolveInRoot`, so `..`, absolute names and symlinks (from this or an earlier layer) cannot
 * lead outside; the entry itself is never followed (files are opened `O_NOFOLLOW|O_EXCL`, metadata is
 * set through the new file's descriptor or with `l*` calls); the root cannot change type; a hardlink
 * whose target leaves the root and a whiteout naming `.`/`..` are `UNPACK_UNSAFE`.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { posix } from 'node:path';
import { KimgError, quote } from '../../errors/index.js';
import { cleanName, climbsAboveRoot, lstatOrUndefined, resolveInRoot } from './resolve.js';
import { mkfifo, mknod, mknodWhiteouts, setXattrs, type XattrOp } from './special.js';
import type { TarEntry, TarHeader } from './tar.js';

export type ApplyMode = 'rootfs' | 'overlay';

export interface ApplyOptions {
  /** `rootfs`: merge into one tree; `overlay`: one layer's diff with overlayfs whiteouts. */
  mode: ApplyMode;
  /**
   * Unpacking as a non-root user: owners are not changed (everything belongs to the caller, which the
   * runtime config maps to root), device nodes become empty mode-0 files, as umoci `--rootless` does.
   */
  rootless: boolean;
  /** Stand-in for a zero mtime (umoci uses "now"), seconds. */
  now: number;
  /** Warnings (xattrs the filesystem refused). */
  onWarning?: (message: string) => void;
  /**
   * Apply as containerd's `archive.Apply` does where it reads a layer differently (containerd
   * `archive/tar.go`, `archive/tar_opts_linux.go`), so that a snapshot kimg extracts for containerd's
   * overlayfs snapshotter is the tree containerd's own `Diff.Apply` would leave: an entry naming the
   * root is ignored; atime is the later of the entry's atime and mtime, and a time before the epoch
   * or after 2262 is the epoch (a zero mtime stays zero, not "now"); an overlay whiteout device is mode 0, owned by the
   * whiteout entry's uid/gid; a hardlink entry's owner and times are set on the linked inode; an
   * opaque marker in the layer's top directory marks that directory too.
   */
  containerd?: boolean;
  /**
   * Filled with the directories (relative to the root) the layer needed but never named: created
   * 0755 for an entry `a/b/c` without `a/` or `a/b/` entries. containerd gives such a directory the
   * owner, mode and atime of the same directory in a lower layer (`mkparent`); see
   * `inheritImplicitDirs`.
   */
  implicitDirs?: Set<string>;
}

/** Times of directories, applied after the last layer (later entries would change them). */
export type DirTimes = Map<string, { atime: number; mtime: number }>;

/** Counts of one applied layer. */
export interface LayerApplyStats {
  entries: number;
  files: number;
  bytes: number;
  whiteouts: number;
  /**
   * `overlay` mode: the layer holds `.wh..wh..opq` at its top. overlayfs ignores an opaque flag on a
   * layer's root, so the caller must hide the lower layers' top-level names itself (src/unpack
   * `ensureSnapshot` writes a whiteout for each and marks the layer's own top directories opaque).
   */
  topOpaque?: boolean;
}

const OPAQUE = '.wh..wh..opq';
const WH = '.wh.';
/** xattrs never applied: host-specific labels, and overlayfs's own (a layer must not forge whiteouts). */
const SKIP_XATTR = /^(security\.selinux$|system\.nfs4_acl$|trusted\.overlay\.|user\.overlay\.)/;
const FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** containerd's `boundTime` (64-bit timespec): a time before the epoch or after 2262 is the epoch. */
function boundTime(t: number): number {
  return t < 0 || t > 9_223_372_036 ? 0 : t;
}

function unsafe(message: string, name: string): KimgError {
  return new KimgError('UNPACK_UNSAFE', message, { input: name });
}

/** Applies one layer. Create one per layer; `dirTimes` is shared across the layers of an unpack. */
export class LayerApplier {
  /** Relative paths this layer created, plus their ancestors (kept by whiteouts of the same layer). */
  private readonly upper = new Set<string>();
  private readonly xattrs: XattrOp[] = [];
  /**
   * `overlay` mode: whiteouts to create when the layer ends (one process for all of them), by
   * relative path → its parent's relative path. A later entry of the same layer at that path drops it.
   */
  private readonly pendingWhiteouts = new Map<string, string>();
  /** `containerd`: the owner of each queued whiteout (its entry's uid/gid, as containerd gives it). */
  private readonly whiteoutOwners = new Map<string, { uid: number; gid: number }>();
  private readonly isRoot = process.geteuid?.() === 0;
  readonly stats: LayerApplyStats = { entries: 0, files: 0, bytes: 0, whiteouts: 0 };

  constructor(
    private readonly root: string,
    private readonly opts: ApplyOptions,
    private readonly dirTimes: DirTimes,
  ) {}

  /** Applies every entry of the layer, then its xattrs. */
  async apply(entries: AsyncIterable<TarEntry>): Promise<void> {
    for await (const e of entries) {
      this.stats.entries++;
      await this.entry(e);
    }
    this.flushWhiteouts();
    this.flushXattrs();
  }

  private async entry({ header, body }: TarEntry): Promise<void> {
    const name = cleanName(header.name);
    if (name === '/') {
      if (this.opts.containerd === true) return;
      if (header.type !== 'dir') {
        throw unsafe(
          `layer entry ${quote(header.name)} (${header.type}) would replace the root directory`,
          header.name,
        );
      }
      this.setDirMeta(this.root, '', header);
      return;
    }
    const base = posix.basename(name);
    const dirName = posix.dirname(name);
    if (base.startsWith(WH)) {
      this.stats.whiteouts++;
      if (base === OPAQUE) return this.opaque(dirName, header.name);
      // Other `.wh..wh.*` names are aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): nothing to apply.
      if (base.startsWith(WH + WH)) return;
      const target = base.slice(WH.length);
      if (target === '' || target === '.' || target === '..') {
        throw unsafe(`whiteout ${quote(header.name)} names a path outside its directory`, header.name);
      }
      return this.whiteout(dirName, target, header);
    }
    const parent = this.parentDir(dirName, header.name);
    const host = posix.join(parent.host, base);
    const rel = parent.rel === '' ? base : `${parent.rel}/${base}`;
    const existing = lstatOrUndefined(host);
    if (existing !== undefined && !(header.type === 'dir' && existing.isDirectory())) {
      if (existing.isDirectory()) rmSync(host, { recursive: true, force: true });
      else unlinkSync(host);
    }
    switch (header.type) {
      case 'dir':
        if (existing === undefined || !existing.isDirectory()) mkdirSync(host, 0o700);
        this.setDirMeta(host, rel, header);
        this.opts.implicitDirs?.delete(rel);
        break;
      case 'file':
        await this.file(host, header, body);
        break;
      case 'symlink':
        symlinkSync(header.linkname, host);
        this.setLinkMeta(host, header);
        break;
      case 'hardlink':
        this.hardlink(host, header);
        break;
      case 'char':
      case 'block':
        if (this.opts.rootless || !this.isRoot) {
          // umoci --rootless: an empty file with mode 0 stands in for the device.
          closeSync(openSync(host, FILE_FLAGS, 0));
          this.setTimes(host, header);
        } else {
          mknod(host, header.type, header.devmajor, header.devminor);
          this.setNodeMeta(host, header);
        }
        break;
      case 'fifo':
        mkfifo(host);
        this.setNodeMeta(host, header);
        break;
    }
    this.queueXattrs(host, header);
    this.markUpper(rel);
  }

  /** Resolves an entry's parent inside the root, creating missing directories (0755, root-owned). */
  private parentDir(dirName: string, entryName: string): { host: string; rel: string } {
    const r = resolveInRoot(this.root, dirName);
    if (r.notDir !== undefined) {
      throw new KimgError(
        'LAYER_INVALID',
        `layer entry ${quote(entryName)}: ${quote('/' + r.notDir)} is not a directory`,
        { input: entryName },
      );
    }
    if (r.missingFrom !== undefined) {
      // Everything from missingFrom on is absent, so it holds no symlink: create it lexically.
      const known = r.missingFrom.split('/').slice(0, -1);
      const rest = r.rel.split('/').slice(known.length);
      let cur = known.join('/');
      for (const c of rest) {
        cur = cur === '' ? c : `${cur}/${c}`;
        mkdirSync(posix.join(this.root, cur), 0o755);
        this.opts.implicitDirs?.add(cur);
        this.markUpper(cur);
      }
    }
    return { host: r.host, rel: r.rel };
  }

  private async file(host: string, h: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    const fd = openSync(host, FILE_FLAGS, 0o600);
    try {
      for await (const chunk of body) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        this.stats.bytes += chunk.length;
      }
      if (this.ownerChanges()) fchownSync(fd, h.uid, h.gid);
      fchmodSync(fd, h.mode);
      const { atime, mtime } = this.times(h);
      futimesSync(fd, atime, mtime);
    } finally {
      closeSync(fd);
    }
    this.stats.files++;
  }

  private hardlink(host: string, h: TarHeader): void {
    const target = h.linkname;
    // A target that climbs out lexically is refused rather than clamped: linking to a file of the
    // caller's choosing is how a layer would expose host files (CVE-2014-6407 class).
    if (climbsAboveRoot(target.replace(/^\/+/, ''))) {
      throw unsafe(`hardlink ${quote(h.name)} points outside the root (${quote(target)})`, h.name);
    }
    const clean = cleanName(target);
    if (clean === '/') throw unsafe(`hardlink ${quote(h.name)} points at the root directory`, h.name);
    const parent = resolveInRoot(this.root, posix.dirname(clean));
    if (parent.clamped) {
      throw unsafe(
        `hardlink ${quote(h.name)} target ${quote(target)} leaves the root through a symlink`,
        h.name,
      );
    }
    if (parent.notDir !== undefined || parent.missingFrom !== undefined) {
      throw new KimgError(
        'LAYER_INVALID',
        `hardlink ${quote(h.name)} target ${quote(target)} does not exist`,
        {
          input: h.name,
        },
      );
    }
    const src = posix.join(parent.host, posix.basename(clean));
    const st = lstatOrUndefined(src);
    if (st === undefined) {
      throw new KimgError(
        'LAYER_INVALID',
        `hardlink ${quote(h.name)} target ${quote(target)} does not exist`,
        {
          input: h.name,
        },
      );
    }
    if (st.isDirectory()) throw unsafe(`hardlink ${quote(h.name)} points at a directory`, h.name);
    // link(2) does not follow a symlink source: the new name is another link to the symlink itself.
    linkSync(src, host);
    if (this.opts.containerd === true) this.setLinkMeta(host, h);
  }

  private whiteout(dirName: string, target: string, h: TarHeader): void {
    if (this.opts.mode === 'overlay') {
      const parent = this.parentDir(dirName, h.name);
      const host = posix.join(parent.host, target);
      const rel = parent.rel === '' ? target : `${parent.rel}/${target}`;
      if (this.upper.has(rel) || lstatOrUndefined(host) !== undefined) return;
      if (this.opts.containerd === true) this.whiteoutOwners.set(rel, { uid: h.uid, gid: h.gid });
      this.markUpper(rel);
      this.pendingWhiteouts.set(rel, parent.rel);
      return;
    }
    const r = resolveInRoot(this.root, dirName);
    if (r.missingFrom !== undefined || r.notDir !== undefined) return; // nothing below to hide
    const rel = r.rel === '' ? target : `${r.rel}/${target}`;
    if (this.upper.has(rel)) return;
    rmSync(posix.join(r.host, target), { recursive: true, force: true });
  }

  private opaque(dirName: string, entryName: string): void {
    if (this.opts.mode === 'overlay') {
      // overlayfs ignores the flag on a layer's top directory (anywhere else it hides the lower dirs):
      // reported, for the caller that knows the lower layers to turn into whiteouts. containerd marks
      // the top directory all the same.
      if (dirName === '/' && this.opts.containerd !== true) {
        this.stats.topOpaque = true;
        return;
      }
      const d = this.parentDir(dirName, entryName);
      this.xattrs.push({ path: d.host, name: 'trusted.overlay.opaque', value: Buffer.from('y') });
      return;
    }
    const r = resolveInRoot(this.root, dirName);
    if (r.missingFrom !== undefined || r.notDir !== undefined) return;
    const st = lstatOrUndefined(r.host);
    if (st === undefined || !st.isDirectory()) return;
    this.clearLower(r.host, r.rel);
  }

  /** Removes every child of `host` not created by this layer, recursing into those that were. */
  private clearLower(host: string, rel: string): void {
    for (const d of readdirSync(host, { withFileTypes: true })) {
      const childRel = rel === '' ? d.name : `${rel}/${d.name}`;
      const childHost = posix.join(host, d.name);
      if (this.upper.has(childRel)) {
        if (d.isDirectory()) this.clearLower(childHost, childRel);
      } else {
        rmSync(childHost, { recursive: true, force: true });
      }
    }
  }

  private markUpper(rel: string): void {
    // Something of this layer now stands at rel: a whiteout queued for the name would hide it.
    this.pendingWhiteouts.delete(rel);
    let p = rel;
    while (p !== '' && p !== '.' && !this.upper.has(p)) {
      this.upper.add(p);
      p = posix.dirname(p);
    }
  }

  private ownerChanges(): boolean {
    return this.isRoot && !this.opts.rootless;
  }

  private times(h: TarHeader): { atime: number; mtime: number } {
    if (this.opts.containerd === true) {
      // containerd `boundTime(latestTime(atime, mtime))`, `boundTime(mtime)`.
      const mtime = boundTime(h.mtime);
      return { atime: boundTime(Math.max(h.atime ?? h.mtime, h.mtime)), mtime };
    }
    const mtime = h.mtime === 0 ? this.opts.now : h.mtime;
    return { atime: h.atime ?? mtime, mtime };
  }

  private setDirMeta(host: string, rel: string, h: TarHeader): void {
    const fd = openSync(host, DIR_FLAGS);
    try {
      if (this.ownerChanges()) fchownSync(fd, h.uid, h.gid);
      fchmodSync(fd, h.mode);
    } finally {
      closeSync(fd);
    }
    this.dirTimes.set(rel, this.times(h));
  }

  private setLinkMeta(host: string, h: TarHeader): void {
    if (this.ownerChanges()) lchownSync(host, h.uid, h.gid);
    this.setTimes(host, h);
  }

  private setTimes(host: string, h: TarHeader): void {
    const { atime, mtime } = this.times(h);
    lutimesSync(host, atime, mtime);
  }

  /** Devices and FIFOs: no descriptor can be opened without side effects, so `l*` calls on the path. */
  private setNodeMeta(host: string, h: TarHeader): void {
    if (this.ownerChanges()) lchownSync(host, h.uid, h.gid);
    // No lchmod on Linux and no descriptor can be opened on a device without side effects; the node
    // was created here a moment ago and is checked not to be a symlink, so chmod cannot be redirected.
    if (lstatOrUndefined(host)?.isSymbolicLink() === false) chmodSync(host, h.mode);
    this.setTimes(host, h);
  }

  private queueXattrs(host: string, h: TarHeader): void {
    for (const [name, value] of h.xattrs) {
      if (SKIP_XATTR.test(name)) continue;
      this.xattrs.push({ path: host, name, value });
    }
  }

  /**
   * Creates the queued whiteouts. Each parent is resolved again inside the root: one a later entry
   * replaced (by a file, or by a symlink leading elsewhere) gets no whiteout, since the upper entry
   * already hides what was below; an existing name is left alone.
   */
  private flushWhiteouts(): void {
    const paths: string[] = [];
    const owners: { host: string; uid: number; gid: number }[] = [];
    for (const [rel, parentRel] of this.pendingWhiteouts) {
      const r = resolveInRoot(this.root, parentRel);
      if (r.rel !== parentRel || r.notDir !== undefined || r.missingFrom !== undefined) continue;
      if (lstatOrUndefined(r.host)?.isDirectory() !== true) continue;
      const host = posix.join(r.host, posix.basename(rel));
      if (lstatOrUndefined(host) !== undefined) continue;
      paths.push(host);
      const owner = this.whiteoutOwners.get(rel);
      if (owner !== undefined) owners.push({ host, ...owner });
    }
    this.pendingWhiteouts.clear();
    this.whiteoutOwners.clear();
    mknodWhiteouts(paths);
    // containerd: mode 0 (`mknod(S_IFCHR, 0)`), owned by the whiteout entry's uid/gid.
    for (const o of owners) {
      if (this.ownerChanges()) lchownSync(o.host, o.uid, o.gid);
      if (lstatOrUndefined(o.host)?.isCharacterDevice() === true) chmodSync(o.host, 0);
    }
  }

  private flushXattrs(): void {
    if (this.xattrs.length === 0) return;
    const { refused } = setXattrs(this.xattrs);
    const overlayRefused = refused.find((r) => r.op.name === 'trusted.overlay.opaque');
    if (overlayRefused !== undefined) {
      throw new KimgError(
        'STORE_IO',
        `cannot mark ${quote(overlayRefused.op.path)} opaque for overlayfs (errno ${overlayRefused.errno}): trusted.* xattrs need root`,
        { file: overlayRefused.op.path },
      );
    }
    if (refused.length > 0) {
      this.opts.onWarning?.(
        `${refused.length} xattr(s) not applied (the filesystem or the user may not set them), e.g. ${refused[0]?.op.name} (errno ${refused[0]?.errno})`,
      );
    }
    this.xattrs.length = 0;
  }
}

/** Applies the recorded directory times inside `root` (after the last layer). */
export function applyDirTimes(root: string, dirTimes: DirTimes): void {
  for (const [rel, t] of dirTimes) {
    const r = resolveInRoot(root, rel);
    if (r.rel !== rel) continue; // replaced by a symlink or removed since: nothing to stamp
    const st = lstatOrUndefined(r.host);
    if (st === undefined || !st.isDirectory()) continue;
    lutimesSync(r.host, t.atime, t.mtime);
  }
}
