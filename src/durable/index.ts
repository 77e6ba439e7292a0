/**
 * Durable file writes, in one place for every module that keeps state on disk (the store's records,
 * index and metadata; image pull back-off; image GC state; pull records; files `kimg pin --in-place`
 * rewrites).
 *
 * `writeFileAtomic` replaces a file atomically and durably: write a temp file in the same directory,
 * fsync it, rename it over the target, fsync the directory. A rename is atomic but not durable until
 * the directory entry is flushed, and the new file's bytes are not durable until the file itself is
 * fsynced before the rename (ext4 `auto_da_alloc` helps only for some patterns). containerd
 * `plugins/content/local/writer.go` syncs the file before the rename; kimg also syncs the directory
 * after it, like containers/image's `oci` layout writes do. Do not copy ggcr `layout.WriteBlob`
 * (writes the final path directly, no fsync). A crash leaves either the old or the new content, never
 * a mix — plus possibly a temp file, which its owner's readers skip and its recovery removes.
 *
 * Modes: state that may hold records or credentials' traces is owner-only (`FILE_MODE` 0600 in
 * `DIR_MODE` 0700 directories); callers pass another mode for files meant to be shared (an OCI
 * layout's `index.json` is 0644).
 *
 * Failures are `STORE_IO` naming the operation and the file, with a hint for the usual errnos, unless
 * the caller maps them to its own error (`ioError` option).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KimgError, quote } from '../errors/index.js';

/** Mode for files that may hold records or metadata (owner only). */
export const FILE_MODE = 0o600;
/** Mode for directories that may hold records (owner only). */
export const DIR_MODE = 0o700;

/** Turns a filesystem failure of `op` on `file` into the error the caller throws. */
export type IoErrorMapper = (op: string, file: string, cause: unknown) => Error;

/** Options of {@link ensureDir}. */
export interface EnsureDirOptions {
  /** Mode of directories created. Default {@link DIR_MODE}. */
  mode?: number;
  /** Maps a failure; default {@link ioError} (`STORE_IO`). */
  ioError?: IoErrorMapper;
}

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Mode of the new file. Default {@link FILE_MODE}. */
  mode?: number;
  /** Maps a failure; default {@link ioError} (`STORE_IO`). */
  ioError?: IoErrorMapper;
  /**
   * The temp file to write first; it must be in the same directory as `file` (so the rename is
   * atomic). Default {@link tempPathFor}.
   */
  tempPath?: (file: string) => string;
}

/** The errno code of a Node fs error, if any. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}

/** True for ENOENT. */
export function isNotFound(e: unknown): boolean {
  return errnoCode(e) === 'ENOENT';
}

/** The default mapping: `STORE_IO` naming the operation and the file, with a hint for common errnos. */
export function ioError(op: string, file: string, e: unknown): KimgError {
  const code = errnoCode(e);
  const hint =
    code === 'ENOSPC'
      ? 'the disk is full: free space or run `kimg store gc`'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied: run as the store owner or choose another --root'
        : code === 'EROFS'
          ? 'the filesystem is read-only'
          : 'check the store directory';
  return new KimgError('STORE_IO', `cannot ${op} ${quote(file)}: ${code ?? String(e)} (${hint})`, {
    file,
    cause: e,
  });
}

/** `mkdir -p` with a mode (default owner-only). */
export async function ensureDir(dir: string, options: number | EnsureDirOptions = {}): Promise<void> {
  const o = typeof options === 'number' ? { mode: options } : options;
  try {
    await fsp.mkdir(dir, { recursive: true, mode: o.mode ?? DIR_MODE });
  } catch (e) {
    throw (o.ioError ?? ioError)('create directory', dir, e);
  }
}

/**
 * fsync a directory so that renames and unlinks inside it survive a power loss. Filesystems that do not
 * support fsync on directories (EINVAL/EISDIR on some platforms) are tolerated.
 */
export async function fsyncDir(dir: string, mapError: IoErrorMapper = ioError): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, fsc.O_RDONLY | (fsc.O_DIRECTORY ?? 0));
    await fh.sync();
  } catch (e) {
    const code = errnoCode(e);
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF')
      throw mapError('fsync directory', dir, e);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/**
 * A unique temp name next to `file` (same directory, so the rename is atomic):
 * `.<name>.tmp-<pid>-<random hex>`; the PID lets recovery remove temps of dead writers only.
 */
export function tempPathFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** True for a temp file named by {@link tempPathFor}. */
export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.includes('.tmp-');
}

/**
 * Replaces `file` with `data` atomically and durably (temp file, fsync, rename, directory fsync; see
 * the module comment). `options` as a number is the file mode.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  options: number | AtomicWriteOptions = {},
): Promise<void> {
  const o: AtomicWriteOptions = typeof options === 'number' ? { mode: options } : options;
  const mapError = o.ioError ?? ioError;
  const tmp = (o.tempPath ?? tempPathFor)(file);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, o.mode ?? FILE_MODE);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, file);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw mapError('write', file, e);
  }
  await fsyncDir(dirname(file), mapError);
}
