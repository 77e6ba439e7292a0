/**
 * The body of one hashing worker thread (see `../hasher.ts`). It keeps one running hash per stream id
 * and answers in order: `u` (update) messages carry a transferred chunk and are acknowledged with the
 * byte count so the sender can bound the bytes in flight, the chunk's memory transferred back with the
 * acknowledgement (the sender reuses it; memory left in this isolate would only be freed by a GC that a
 * thread allocating next to nothing on its own heap hardly ever runs, which made a worker-hashed
 * pull's memory grow with the image size); `d` (digest) answers with the hex digest and
 * forgets the stream; `x` discards it. Messages on one port are delivered in order, so a stream's chunks
 * are hashed in the order they were written.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

type In =
  | { op: 'u'; id: number; alg: string; buf: Uint8Array }
  | { op: 'd'; id: number; alg: string }
  | { op: 'x'; id: number };

const hashes = new Map<number, Hash>();
const port = parentPort;
if (port) {
  port.on('message', (m: In) => {
    try {
      if (m.op === 'x') {
        hashes.delete(m.id);
        return;
      }
      let h = hashes.get(m.id);
      if (!h) {
        h = createHash(m.alg);
        hashes.set(m.id, h);
      }
      if (m.op === 'u') {
        h.update(m.buf);
        const ab = m.buf.buffer;
        if (ab instanceof ArrayBuffer)
          port.postMessage({ op: 'a', id: m.id, n: m.buf.byteLength, buf: ab }, [ab]);
        else port.postMessage({ op: 'a', id: m.id, n: m.buf.byteLength });
      } else {
        hashes.delete(m.id);
        port.postMessage({ op: 'd', id: m.id, hex: h.digest('hex') });
      }
    } catch (e) {
      hashes.delete(m.id);
      port.postMessage({ op: 'e', id: m.id, message: e instanceof Error ? e.message : String(e) });
    }
  });
}
