/**
 * Durable filesystem primitives for the store: atomic file replacement (temp + fsync + rename + fsync of
 * the directory), directory fsync, and the mapping of Node's errno failures to `STORE_IO`.
 *
 * Why every step: a rename is atomic but not durable until the directory entry is flushed, and the new
 * file's bytes are not durable until the file itself is fsynced before the rename (ext4 `auto_da_alloc`
 * helps only for some patterns). containerd `plugins/content/local/writer.go` syncs the file before the
 * rename; kimg also syncs the directory after it, like `skopeo`/containers-image `oci` layout writes do.
 * Do not copy ggcr `layout.WriteBlob` (writes the final path directly, no fsync).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KimgError, quote } from '../../errors/index.js';

/** Mode for files that may hold records or metadata (owner only). */
export const FILE_MODE = 0o600;
/** Mode for directories that may hold records (owner only). */
export const DIR_MODE = 0o700;

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

/** Wraps a filesystem failure into `STORE_IO` naming the file and the operation. */
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

/** mkdir -p with a mode; STORE_IO on failure. */
export async function ensureDir(dir: string, mode = DIR_MODE): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true, mode });
  } catch (e) {
    throw ioError('create directory', dir, e);
  }
}

/**
 * fsync a directory so that renames and unlinks inside it survive a power loss. Filesystems that do not
 * support fsync on directories (EINVAL/EISDIR on some platforms) are tolerated.
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, fsc.O_RDONLY | (fsc.O_DIRECTORY ?? 0));
    await fh.sync();
  } catch (e) {
    const code = errnoCode(e);
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF')
      throw ioError('fsync directory', dir, e);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** A unique temp name next to `file` (same directory, so the rename is atomic). */
export function tempPathFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** True for a temp file left by `writeFileAtomic` (to be cleaned on open). */
export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.includes('.tmp-');
}

/**
 * Replaces `file` with `data` atomically and durably: write a temp file in the same directory, fsync it,
 * rename over the target, fsync the directory. A crash leaves either the old or the new content, never a
 * mix (plus possibly a `.name.tmp-*` file, removed by the store on open).
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  mode = FILE_MODE,
): Promise<void> {
  const tmp = tempPathFor(file);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, file);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError('write', file, e);
  }
  await fsyncDir(dirname(file));
}

/** Reads a file as UTF-8, or undefined when it does not exist; STORE_IO for other failures. */
export async function readFileIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fsp.readFile(file);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw ioError('read', file, e);
  }
}

/** Lists a directory, or [] when it does not exist. */
export async function readDirIfExists(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw ioError('list', dir, e);
  }
}

/** Whether a process with this PID is alive on this host (signal 0). EPERM means alive. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}
