/**
 * Filesystem helpers of the store: the durable-write primitives of src/durable (re-exported so the
 * store's files import one place), reads that treat a missing file as "absent", and the liveness check
 * of a writer's PID.
 */
import { promises as fsp } from 'node:fs';
import { errnoCode, ioError, isNotFound } from '../../durable/index.js';

export {
  DIR_MODE,
  FILE_MODE,
  ensureDir,
  errnoCode,
  fsyncDir,
  ioError,
  isNotFound,
  isTempName,
  tempPathFor,
  writeFileAtomic,
} from '../../durable/index.js';

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
