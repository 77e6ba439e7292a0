/**
 * A tiny scripted HTTP server, in process, for the registry faults a real registry cannot produce
 * (reliability is tested against them, not hoped for): truncated bodies, ignored `Range`, wrong bytes, 429 with `Retry-After`, 5xx bursts,
 * stalls, cross-origin redirects. Each test scripts its routes; every request is recorded (method,
 * path, headers) so tests can assert what the client sent. Listens on port 0.
 *
 * Not a registry: only `GET /v2/` answers by default (200); everything else is scripted.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHash } from 'node:crypto';
import type { RegistryClock } from '../../src/registry/index.js';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** Request body (uploads), as received. */
  body: Buffer;
}

/** A route handler: answer `res` however the fault needs. `n` counts calls of this route (1-based). */
export type FaultHandler = (req: IncomingMessage, res: ServerResponse, n: number, body: Buffer) => unknown;

export interface FaultServer {
  /** `127.0.0.1:PORT` (or the host given). */
  host: string;
  url: string;
  requests: RecordedRequest[];
  /** Scripts `METHOD path` (exact path without query, or a RegExp on the path); the latest route wins. */
  route(method: string, path: string | RegExp, handler: FaultHandler): void;
  close(): Promise<void>;
}

export async function startFaultServer(bindHost = '127.0.0.1'): Promise<FaultServer> {
  const routes: { method: string; path: string | RegExp; handler: FaultHandler; n: number }[] = [];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      requests.push({ method: req.method ?? '', path: req.url ?? '/', headers: req.headers, body });
      const r = routes.find(
        (x) => x.method === req.method && (typeof x.path === 'string' ? x.path === path : x.path.test(path)),
      );
      if (!r) {
        if (path === '/v2/' && req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
          return;
        }
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'not scripted' }] }));
        return;
      }
      r.n++;
      Promise.resolve(r.handler(req, res, r.n, body)).catch((e: unknown) => {
        res.destroy(e as Error);
      });
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, bindHost, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `${bindHost}:${port}`,
    url: `http://${bindHost}:${port}`,
    requests,
    route(method, path, handler) {
      routes.unshift({ method, path, handler, n: 0 });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `sha256:<hex>` of `data`. */
export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Serves `data` honouring `Range: bytes=N-` with a 206 (or the whole thing with 200). */
export function serveRange(req: IncomingMessage, res: ServerResponse, data: Buffer): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m) {
    const start = Number(m[1]);
    if (start >= data.length) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
      return;
    }
    res.writeHead(206, {
      'content-length': String(data.length - start),
      'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
      'content-type': 'application/octet-stream',
    });
    res.end(data.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-length': String(data.length), 'content-type': 'application/octet-stream' });
  res.end(data);
}

/** Sends headers claiming the full length, then only `upTo` bytes, then kills the connection. */
export function serveTruncated(res: ServerResponse, data: Buffer, upTo: number): void {
  res.writeHead(200, { 'content-length': String(data.length), 'content-type': 'application/octet-stream' });
  res.write(data.subarray(0, upTo), () => {
    setTimeout(() => res.socket?.destroy(), 20);
  });
}

/**
 * A registry clock whose sleeps return at once and advance its time: retry back-off becomes a list of
 * the delays asked for (`sleeps`), with no real waiting.
 */
export function fakeClock(): RegistryClock & { sleeps: number[] } {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      sleeps.push(ms);
      t += ms;
    },
  };
}
