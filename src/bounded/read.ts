/**
 * Bounded, typed reads of untrusted files and process output. A file kimg is handed (an OCI layout's
 * `index.json`, a pod manifest, a secrets directory's entry) may be a symlink to `/dev/zero`, a FIFO
 * no one writes, or simply huge; a plugin may print without end. Every such read goes through here:
 * the file is opened without blocking, must be a regular file (checked on the open descriptor, so a
 * swap after the check changes nothing), and is read to at most `maxBytes`; a stream is collected to
 * at most `maxBytes`. Memory stays bounded by the cap whatever the input does.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { KimgError, quote, type KimgErrorCode } from '../errors/index.js';

/** What a bounded file read needs: the cap, the error code for a refused file, and what it is. */
export interface BoundedFileOptions {
  /** Largest accepted size in bytes. */
  maxBytes: number;
  /** The code of the `KimgError` for a file that is not regular or exceeds the cap. */
  code: KimgErrorCode;
  /** What the file is, for messages (`"OCI layout index.json"`). */
  what: string;
}

/**
 * Reads a regular file of at most `maxBytes` bytes. The file is opened with `O_NONBLOCK` (a FIFO
 * does not hang the open) and its type checked with `fstat` on the descriptor.
 *
 * @throws KimgError `options.code` for a file that is not a regular file (FIFO, device, socket,
 *   directory; a symlink is followed and its target checked) or larger than `maxBytes`; the raw
 *   `ErrnoException` (`ENOENT`, `EACCES`, ...) when it cannot be opened, for the caller's own codes.
 */
export async function readBoundedFile(path: string, options: BoundedFileOptions): Promise<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw new KimgError(
        options.code,
        `${options.what} ${quote(path)} is not a regular file (${fileKind(st)}): refused`,
        { file: path },
      );
    }
    if (st.size > options.maxBytes) throw tooLarge(path, options, st.size);
    // The size can change after fstat: read until end of file, refusing at the first byte past the cap.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, options.maxBytes + 1 - total));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, total);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > options.maxBytes) throw tooLarge(path, options, total);
    }
    return Buffer.concat(chunks, total);
  } finally {
    await fh.close();
  }
}

/** `readBoundedFile` decoded as UTF-8. */
export async function readBoundedText(path: string, options: BoundedFileOptions): Promise<string> {
  return (await readBoundedFile(path, options)).toString('utf8');
}

function tooLarge(path: string, options: BoundedFileOptions, size: number): KimgError {
  return new KimgError(
    options.code,
    `${options.what} ${quote(path)} is larger than the ${options.maxBytes}-byte limit (${size}${size > options.maxBytes ? '+' : ''} bytes): refused`,
    { file: path },
  );
}

function fileKind(st: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** What `collectBounded` kept of a stream. */
export interface BoundedOutput {
  /** The first `maxBytes` bytes. */
  data: Buffer;
  /** Total bytes the stream produced (counted, not kept, past the cap). */
  total: number;
  /** Whether the stream produced more than `maxBytes`. */
  truncated: boolean;
}

/**
 * Collects a stream (a child's stdout or stderr) keeping at most `maxBytes`; the rest is counted and
 * dropped, so a process printing without end costs no memory. With `onOverflow` the caller can stop the
 * producer (kill the process) at the first byte past the cap. Resolves when the stream ends or closes.
 */
export function collectBounded(
  stream: Readable,
  maxBytes: number,
  onOverflow?: () => void,
): Promise<BoundedOutput> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let total = 0;
    let overflowed = false;
    stream.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (kept < maxBytes) {
        const part = chunk.length <= maxBytes - kept ? chunk : chunk.subarray(0, maxBytes - kept);
        chunks.push(part);
        kept += part.length;
      }
      if (total > maxBytes && !overflowed) {
        overflowed = true;
        onOverflow?.();
      }
    });
    const done = (): void =>
      resolve({ data: Buffer.concat(chunks, kept), total, truncated: total > maxBytes });
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
  });
}
