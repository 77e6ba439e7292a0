/**
 * Reading bounded response bodies: manifests (src/oci `MAX_MANIFEST_BYTES`, 4,393,216 bytes), error
 * bodies (64 KiB, go-containerregistry `transport/error.go`), token responses. Never reads without a
 * bound.
 */
import type { Readable } from 'node:stream';

/** Result of a capped read: the bytes (at most `cap`) and whether more was available. */
export interface CappedBody {
  bytes: Buffer;
  truncated: boolean;
}

/**
 * Reads `body` until end or until more than `cap` bytes arrived (then the stream is destroyed and
 * `truncated` is true). Rejects with the stream's error.
 */
export async function readCapped(
  body: Readable,
  cap: number,
  deadline?: { ms: number; error: () => Error },
): Promise<CappedBody> {
  const chunks: Buffer[] = [];
  let total = 0;
  // A deadline for the whole body: a registry dripping a byte every few seconds never trips the stall
  // window, so small bodies (manifests, tokens) must also arrive within a bounded time.
  const timer =
    deadline === undefined ? undefined : setTimeout(() => body.destroy(deadline.error()), deadline.ms);
  timer?.unref();
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (total + chunk.length > cap) {
        const room = cap - total;
        if (room > 0) chunks.push(chunk.subarray(0, room));
        total = cap;
        destroyQuietly(body);
        return { bytes: Buffer.concat(chunks, total), truncated: true };
      }
      chunks.push(chunk);
      total += chunk.length;
    }
  } catch (e) {
    destroyQuietly(body);
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return {
    bytes: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total),
    truncated: false,
  };
}

/** Bodies up to this size are drained (so the connection is reused); larger ones close it. */
const DRAIN_LIMIT = 64 * 1024;

/** Discards a body we do not need, keeping the connection for reuse when the rest is small. */
export function discard(body: Readable): void {
  body.on('error', () => undefined);
  const msg = body as Readable & { complete?: boolean; headers?: Record<string, unknown> };
  const len = Number(msg.headers?.['content-length']);
  if (msg.complete === true || (Number.isFinite(len) && len <= DRAIN_LIMIT)) {
    body.resume();
  } else {
    body.destroy();
  }
}

/** Reads an error body through the 64 KiB cap, never failing (errors give an empty body). */
export async function readErrorBody(body: Readable): Promise<Buffer> {
  try {
    return (await readCapped(body, 64 * 1024)).bytes;
  } catch {
    return Buffer.alloc(0);
  }
}

/** Destroys a stream without an unhandled 'error' event (a destroyed response may emit one). */
export function destroyQuietly(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}
