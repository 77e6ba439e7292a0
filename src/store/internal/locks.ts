/**
 * Locks that explain themselves (containerd `plugins/content/local/locks.go`: "ref %s locked for %s
 * (since %s)"). Every lock records its holder, its PID and since when, so a lock held for ten minutes
 * reads differently from momentary contention.
 *
 * Two layers:
 * - `LockTable`: in-process locks keyed by string (ingest refs), never waiting: a second writer for the
 *   same ref gets `STORE_LOCKED` at once, like containerd's `tryLock`.
 * - `FileLock`: a lock file holding `{pid, holder, since}`, linked into place whole (never torn), for
 *   exclusion between processes sharing a store root (the CLI next to the node agent). A lock whose PID
 *   is no longer alive is stale (its holder was killed) and is taken over.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import { KimgError, quote } from '../../errors/index.js';
import { errnoCode, FILE_MODE, ioError, isNotFound, pidAlive, tempPathFor } from './fsutil.js';

/** Who holds a lock and since when. */
export interface LockInfo {
  /** Free text naming the holder (e.g. `pull 127.0.0.1:5000/small:1`, `kimg load`). */
  holder: string;
  /** Process id of the holder. */
  pid: number;
  /** Host name of the holder (locks of other hosts are never considered stale). */
  host: string;
  /** When the lock was taken (ISO 8601). */
  since: string;
}

/** Formats a lock age like Go's time.Duration rounded to the second (`1m30s`, `2h0m5s`). */
export function formatAge(ms: number): string {
  let s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** The STORE_LOCKED error for `what`, naming holder, PID and age. */
export function lockedError(what: string, info: LockInfo, file?: string, now = Date.now()): KimgError {
  const age = formatAge(now - Date.parse(info.since));
  const stale = file ? `; if no such process is running, remove ${quote(file)}` : '';
  return new KimgError(
    'STORE_LOCKED',
    `${what} is locked by ${quote(info.holder)} (pid ${info.pid} on ${info.host}) for ${age} (since ${info.since}): wait for it to finish${stale}`,
    { input: what, ...(file ? { file } : {}), retryable: true },
  );
}

/** In-process, non-waiting locks keyed by string. */
export class LockTable {
  private readonly held = new Map<string, LockInfo>();

  /** Takes the lock or throws STORE_LOCKED naming the current holder. */
  acquire(key: string, holder: string, what = `ref ${quote(key)}`): LockInfo {
    const cur = this.held.get(key);
    if (cur) throw lockedError(what, cur);
    const info: LockInfo = { holder, pid: process.pid, host: hostname(), since: new Date().toISOString() };
    this.held.set(key, info);
    return info;
  }

  release(key: string): void {
    this.held.delete(key);
  }

  get(key: string): LockInfo | undefined {
    return this.held.get(key);
  }

  entries(): [string, LockInfo][] {
    return [...this.held.entries()];
  }
}

/** Reads a lock file; undefined when absent or unparsable. */
export async function readLockFile(file: string): Promise<LockInfo | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw ioError('read lock', file, e);
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.holder === 'string' && typeof v.since === 'string') {
      return {
        pid: v.pid,
        holder: v.holder,
        since: v.since,
        host: typeof v.host === 'string' ? v.host : hostname(),
      };
    }
  } catch {
    // fall through: a torn lock file (its writer died between create and write)
  }
  return undefined;
}

/** True when the lock's holder is gone: a dead PID on this host. */
export function isStale(info: LockInfo): boolean {
  return info.host === hostname() && info.pid !== process.pid && !pidAlive(info.pid);
}

/** A held lock file; `release()` removes it (idempotent). */
export interface FileLock {
  readonly file: string;
  readonly info: LockInfo;
  release(): Promise<void>;
}

/**
 * Removes a stale lock so that only one of several processes recovering it at once wins: the lock is
 * renamed aside first (one rename succeeds), and if what was moved turns out to be a live lock (a
 * racing process re-created it in between), it is linked back.
 */
async function takeOver(file: string): Promise<void> {
  const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fsp.rename(file, aside);
  } catch {
    return; // gone already: someone else took it over
  }
  const moved = await readLockFile(aside).catch(() => undefined);
  if (moved && !isStale(moved)) await fsp.link(aside, file).catch(() => undefined);
  await fsp.rm(aside, { force: true });
}

/** How long a torn (unparsable) lock file is respected before it is treated as stale. */
const TORN_LOCK_GRACE_MS = 5_000;

/**
 * Creates `file` exclusively. When it exists: a stale lock (dead PID, or torn and older than 5 s) is
 * removed and the create retried; otherwise it polls until `waitMs` elapses, then throws STORE_LOCKED
 * naming the holder. `waitMs` 0 means try once.
 */
export async function acquireFileLock(
  file: string,
  holder: string,
  what: string,
  waitMs = 0,
): Promise<FileLock> {
  const info: LockInfo = { holder, pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const deadline = Date.now() + waitMs;
  let delay = 5;
  for (;;) {
    // Written whole under a temp name, then linked into place (link is atomic and fails when the lock
    // exists): a writer killed at any point leaves no torn lock, only a temp file with its PID.
    const tmp = tempPathFor(file);
    let linked = false;
    try {
      await fsp.writeFile(tmp, JSON.stringify(info), { mode: FILE_MODE });
      await fsp.link(tmp, file);
      linked = true;
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw ioError('create lock', file, e);
    } finally {
      // unlink, not rm: rm stats the name twice before removing it, on every lock of every blob.
      await fsp.unlink(tmp).catch((e: unknown) => {
        if (!isNotFound(e)) throw ioError('remove lock temp', tmp, e);
      });
    }
    if (linked) {
      let released = false;
      return {
        file,
        info,
        release: async () => {
          if (released) return;
          released = true;
          await fsp.unlink(file).catch((e: unknown) => {
            if (!isNotFound(e)) throw ioError('release lock', file, e);
          });
        },
      };
    }
    const cur = await readLockFile(file);
    if (cur === undefined) {
      const st = await fsp.stat(file).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs > TORN_LOCK_GRACE_MS) {
        await takeOver(file);
        continue;
      }
    } else if (isStale(cur)) {
      await takeOver(file);
      continue;
    }
    if (Date.now() >= deadline) {
      throw lockedError(
        what,
        cur ?? { holder: 'unknown (lock file being written)', pid: 0, host: hostname(), since: info.since },
        file,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}
