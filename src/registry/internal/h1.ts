/**
 * A lean HTTP/1.1 GET client for blob bodies: the data path of every pull.
 *
 * Why not `node:http` (or undici) for blob bodies: both read a socket into a fresh 64 KiB buffer per
 * read, so a 1 GiB layer is ~16 000 short-lived ArrayBuffers outside the JS heap, and the streams
 * carrying them cost a queue entry, events and promise turns per chunk. Measured on a 2-core node
 * (1 GiB image in 8 layers, 3 at a time, hashed and fsynced; see docs/design/registry-transport.md):
 * a `node:http` pull spent ~0.6 s of its main thread collecting those buffers and took 1.7-2.3 s
 * even with no stream in between; the same job on sockets that read into one reused buffer
 * (`onread`, below) took 1.2-1.6 s with ~30 MiB less peak RSS (skopeo: 2.2-2.7 s).
 *
 * So a connection here reads into its own 256 KiB buffer, parses the response head and the body
 * framing itself (Content-Length, chunked, or until close), and hands body bytes on synchronously:
 * - to a **sink** (`DirectBody.setSink`), borrowed: the bytes are valid only during the call, the sink
 *   copies what it keeps (the store's ingest writer copies into its write buffer and hashes them).
 *   A sink that returns false pauses the socket until `resumeSink()`.
 * - or, when nobody attaches a sink (error bodies, redirects, anything read as a stream), pushed as
 *   copies through the ordinary `Readable` interface with its backpressure.
 *
 * Connections are kept alive and reused per origin + TLS setting (idle ones are unref'd and closed
 * after the keep-alive time); a reused connection that turns out dead before any response byte is
 * replaced by a fresh one once (a GET is idempotent). Only GET without a request body goes here; the
 * rest of the registry protocol stays on `node:http` (`transport.ts`), which owns diagnostics and
 * error mapping for both.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Readable } from 'node:stream';

/** Response headers: lower-case names; a header sent more than once is an array. */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** Bytes one socket read may deliver (the reused buffer of a connection). */
export const READ_BUFFER_BYTES = 256 * 1024;
/** Response heads (status line + headers) larger than this are refused. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** The end of a response head. */
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
/** A chunk-size line (with extensions) or trailer line longer than this is refused. */
const MAX_LINE_BYTES = 4096;

/**
 * Stall watching, shared with `transport.ts`: how often a watcher looks (a few times per window), and
 * whether a stream's consumer is waiting for bytes (it reads, and nothing is queued for it). Time under
 * the consumer's backpressure, or before it starts reading, is not a stall.
 */
export function stallTickMs(stallMs: number): number {
  return Math.max(5, Math.min(1000, Math.floor(stallMs / 4)));
}

export function readerWaiting(r: Readable): boolean {
  return r.readableFlowing !== null && r.readableLength === 0;
}

/**
 * Codes of the errors kimg's own transport raises when a connection or a response stalls (Node has no
 * codes for these). The transport and the blob reader map them to `STALLED` / `REGISTRY_UNAVAILABLE`;
 * the retry policy treats all three as retryable network failures.
 */
export const HEADERS_STALLED_CODE = 'KIMG_HEADERS_STALLED';
export const BODY_STALLED_CODE = 'KIMG_BODY_STALLED';
export const CONNECT_TIMEOUT_CODE = 'KIMG_CONNECT_TIMEOUT';

/** A plain Error with a `code`, the shape Node's own socket errors have. */
export function codedError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/** One GET. */
export interface H1Request {
  url: URL;
  /** Lower-case names; an array sends the header once per value. */
  headers: Record<string, string | string[]>;
  signal?: AbortSignal | undefined;
  /** No response head for this long, or no body bytes while the consumer waits, fails the request. */
  stallMs: number;
  connectTimeoutMs: number;
  /** TLS options for https: URLs (ca, cert, key, rejectUnauthorized). */
  tls?: Record<string, unknown> | undefined;
  /** Pool key part for the TLS setting (requests with different TLS settings never share sockets). */
  tlsKey: string;
}

/** The response head and its body. */
export interface H1Response {
  statusCode: number;
  headers: ResponseHeaders;
  body: DirectBody;
}

/** Error codes used for stalls and timeouts (the names `transport.ts` and the blob reader map). */
export interface H1Codes {
  headersTimeout: string;
  bodyTimeout: string;
  connectTimeout: string;
}

type Framing =
  | { kind: 'none' }
  | { kind: 'length'; remaining: number }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-crlf' | 'trailer'; remaining: number; line: string }
  | { kind: 'close' };

/** One socket with its read buffer; at most one request at a time. */
class Connection {
  /** Where the bytes of the current read go; returns false to stop reading. */
  onBytes: ((chunk: Buffer) => boolean) | undefined;
  /** Called once when the socket ends or fails (with the error, if any). */
  onGone: ((err: Error | undefined) => void) | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  alive = true;
  uses = 0;

  constructor(
    readonly socket: Socket,
    readonly key: string,
  ) {
    const gone = (err: Error | undefined): void => {
      if (!this.alive) return;
      this.alive = false;
      const cb = this.onGone;
      this.onGone = undefined;
      cb?.(err);
    };
    socket.on('error', (e) => gone(e));
    socket.on('end', () => gone(undefined));
    socket.on('close', () => gone(undefined));
  }

  /** The `onread` callback: hands the borrowed bytes to the current reader. */
  read(n: number, buf: Buffer): boolean {
    const cb = this.onBytes;
    if (!cb) return false; // idle: nothing should arrive; stop reading (the pool closes it)
    return cb(buf.subarray(0, n));
  }

  destroy(err?: Error): void {
    this.alive = false;
    this.onBytes = undefined;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.socket.destroy(err);
  }
}

/**
 * The body of a direct response. Read it as a normal `Readable` (the bytes are copies), or attach a
 * sink for borrowed, synchronous delivery without copies. `complete` is true once the whole body
 * arrived; `headers` are the response headers (for `discard`).
 */
export class DirectBody extends Readable {
  complete = false;
  private sink: ((chunk: Buffer) => boolean) | undefined;
  /** The socket is paused because the consumer (sink or stream) is full. */
  private held = false;
  private lastProgress = performance.now();
  private stallTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly headers: ResponseHeaders,
    private readonly conn: Connection,
    private readonly finishMessage: (reusable: boolean) => void,
  ) {
    super({ highWaterMark: READ_BUFFER_BYTES });
    // A failure can come before the consumer attached its listeners (the response resolved, the
    // socket died on the next turn): it must not crash the process. Late readers still get it:
    // async iteration and pipeline report `errored`, and the blob reader checks it when it attaches.
    this.on('error', () => undefined);
  }

  /**
   * Delivers the body to `sink` from now on: first what was already buffered (as copies), then each
   * read of the socket, borrowed. `sink` returning false pauses the socket until `resumeSink()`.
   */
  setSink(sink: (chunk: Buffer) => boolean): void {
    this.sink = sink;
    let ok = true;
    for (let c = this.read() as Buffer | null; c !== null; c = this.read() as Buffer | null) {
      if (!sink(c)) ok = false;
    }
    if (!ok) {
      this.held = true;
      if (this.conn.alive) this.conn.socket.pause();
    } else this.release();
    // End/error still arrive as stream events: keep the stream flowing (it carries no data now).
    if (this.readableFlowing !== true) this.resume();
  }

  /** Resumes a sink that returned false. */
  resumeSink(): void {
    this.release();
  }

  override _read(): void {
    if (!this.sink) this.release();
  }

  /** Body bytes from the connection (borrowed). */
  deliver(chunk: Buffer): boolean {
    this.lastProgress = performance.now();
    if (this.sink) {
      if (this.sink(chunk)) return true;
      this.held = true;
      return false;
    }
    if (this.push(Buffer.from(chunk))) return true;
    this.held = true;
    return false;
  }

  /** The message ended cleanly. */
  endMessage(reusable: boolean): void {
    this.complete = true;
    this.stopStallWatch();
    this.finishMessage(reusable);
    this.push(null);
  }

  private release(): void {
    if (!this.held) return;
    this.held = false;
    this.lastProgress = performance.now();
    if (this.conn.alive) this.conn.socket.resume();
  }

  /** Fails the body with `code` when no bytes arrive for `stallMs` while the consumer waits for them. */
  watchStall(stallMs: number, code: string): void {
    this.stallTimer = setInterval(() => {
      if (this.complete || this.destroyed) return this.stopStallWatch();
      const now = performance.now();
      const waiting = !this.held && (this.sink !== undefined || readerWaiting(this));
      if (!waiting) {
        this.lastProgress = now;
        return;
      }
      if (now - this.lastProgress >= stallMs) {
        this.stopStallWatch();
        this.destroy(codedError(code, `no body bytes for ${stallMs} ms`));
      }
    }, stallTickMs(stallMs));
    this.stallTimer.unref();
  }

  private stopStallWatch(): void {
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.stallTimer = undefined;
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.stopStallWatch();
    this.sink = undefined;
    if (!this.complete) this.finishMessage(false);
    cb(err);
  }
}

/** Parses a response head (status line and headers, without the final CRLF CRLF). */
export function parseHead(text: string): { statusCode: number; version: 0 | 1; headers: ResponseHeaders } {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/.exec(lines[0] ?? '');
  if (!m)
    throw codedError(
      'HPE_INVALID_STATUS',
      `invalid HTTP status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`,
    );
  // No prototype: a header named `constructor` or `__proto__` is just a header.
  const headers = Object.create(null) as ResponseHeaders;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (
      /[\r\n\0]/.test(line) ||
      colon <= 0 ||
      /[\s]/.test(line[0] as string) ||
      !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(line.slice(0, colon))
    ) {
      throw codedError(
        'HPE_INVALID_HEADER_TOKEN',
        `invalid HTTP header line ${JSON.stringify(line.slice(0, 80))}`,
      );
    }
    const name = line.slice(0, colon).toLowerCase();
    // Optional whitespace is SP / HTAB only (RFC 9110 §5.6.3), not every character trim() strips.
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else headers[name] = [prev, value];
  }
  return { statusCode: Number(m[2]), version: m[1] === '1' ? 1 : 0, headers };
}

/** How the body of a response to a GET is delimited (RFC 9112 §6.3). */
export function framingOf(statusCode: number, headers: ResponseHeaders): Framing {
  if ((statusCode >= 100 && statusCode < 200) || statusCode === 204 || statusCode === 304)
    return { kind: 'none' };
  const te = headers['transfer-encoding'];
  if (te !== undefined) {
    const codings = (Array.isArray(te) ? te.join(',') : te)
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== '');
    if (codings[codings.length - 1] === 'chunked')
      return { kind: 'chunked', state: 'size', remaining: 0, line: '' };
    return { kind: 'close' };
  }
  const cl = headers['content-length'];
  if (cl !== undefined) {
    const values = new Set((Array.isArray(cl) ? cl : [cl]).flatMap((v) => v.split(',').map((s) => s.trim())));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) {
      throw codedError(
        'HPE_UNEXPECTED_CONTENT_LENGTH',
        `invalid Content-Length ${JSON.stringify(String(cl).slice(0, 80))}`,
      );
    }
    return { kind: 'length', remaining: Number(only) };
  }
  return { kind: 'close' };
}

function hostOf(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

function portOf(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

function requestHead(req: H1Request): string {
  let head = `GET ${req.url.pathname || '/'}${req.url.search} HTTP/1.1\r\nhost: ${req.url.host}\r\n`;
  for (const [name, value] of Object.entries(req.headers)) {
    if (name === 'host' || name === 'content-length' || name === 'transfer-encoding' || name === 'connection')
      continue;
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name))
      throw codedError(
        'ERR_INVALID_HTTP_TOKEN',
        `header name ${JSON.stringify(name)} is not a valid HTTP token`,
      );
    for (const v of Array.isArray(value) ? value : [value]) {
      if (/[\r\n\0]/.test(v))
        throw codedError(
          'ERR_INVALID_CHAR',
          `invalid character in the value of header ${JSON.stringify(name)}`,
        );
      head += `${name}: ${v}\r\n`;
    }
  }
  return head + '\r\n';
}

/** Keep-alive connections per origin and TLS setting, and the request/response exchange on them. */
export class H1Pool {
  private readonly idle = new Map<string, Connection[]>();
  /** Exchanges in progress per key (connecting, waiting for a head, or streaming a body). */
  private readonly active = new Map<string, number>();
  /** Requests waiting for a slot per key, first come first served. */
  private readonly waiting = new Map<string, (() => void)[]>();
  private closed = false;

  constructor(
    private readonly codes: H1Codes,
    private readonly options: { keepAliveMs: number; maxIdlePerKey: number; maxPerKey?: number },
  ) {}

  /** Exchanges in progress for `url` + `tlsKey` (for tests and diagnostics). */
  activeFor(url: URL, tlsKey: string): number {
    return this.active.get(`${url.protocol}//${url.host}|${tlsKey}`) ?? 0;
  }

  /**
   * Waits for one of the `maxPerKey` connection slots of `key` (like an http.Agent's maxSockets);
   * resolves with its release function (idempotent). A released slot passes straight to the next
   * waiter, so the bound holds at every moment.
   */
  private async acquire(key: string, signal: AbortSignal | undefined): Promise<() => void> {
    const limit = this.options.maxPerKey ?? Infinity;
    const n = this.active.get(key) ?? 0;
    if (n < limit) this.active.set(key, n + 1);
    else {
      await new Promise<void>((resolve, reject) => {
        let q = this.waiting.get(key);
        if (!q) this.waiting.set(key, (q = []));
        const queue = q;
        const onAbort = (): void => {
          const i = queue.indexOf(go);
          if (i >= 0) queue.splice(i, 1);
          reject(abortError(signal));
        };
        const go = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(go);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.get(key)?.shift();
      if (next) return next(); // the slot passes on: the count stays
      const left = (this.active.get(key) ?? 1) - 1;
      if (left <= 0) this.active.delete(key);
      else this.active.set(key, left);
    };
  }

  /** Closes idle connections; later requests fail. Connections in use close when their body ends. */
  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.destroy();
    this.idle.clear();
  }

  /** Sends a GET; resolves once the response head arrived. */
  async get(req: H1Request): Promise<H1Response> {
    const key = `${req.url.protocol}//${req.url.host}|${req.tlsKey}`;
    const head = requestHead(req);
    const release = await this.acquire(key, req.signal);
    try {
      const reused = this.takeIdle(key);
      if (reused) {
        try {
          return await this.exchange(reused, req, head, true, release);
        } catch (e) {
          // A kept-alive socket the server had closed: try once on a fresh one.
          if (!(e as { staleConnection?: boolean }).staleConnection) throw e;
        }
      }
      const conn = await this.connect(req, key);
      return await this.exchange(conn, req, head, false, release);
    } catch (e) {
      release();
      throw e;
    }
  }

  private takeIdle(key: string): Connection | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const c = list.pop() as Connection;
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = undefined;
      if (c.alive && !c.socket.destroyed) {
        c.socket.ref();
        return c;
      }
    }
    return undefined;
  }

  private putIdle(c: Connection): void {
    if (this.closed || !c.alive) return c.destroy();
    let list = this.idle.get(c.key);
    if (!list) this.idle.set(c.key, (list = []));
    if (list.length >= this.options.maxIdlePerKey) return c.destroy();
    c.onBytes = undefined;
    c.onGone = () => {
      const l = this.idle.get(c.key);
      const i = l?.indexOf(c) ?? -1;
      if (l && i >= 0) l.splice(i, 1);
      c.destroy();
    };
    c.socket.unref();
    c.idleTimer = setTimeout(() => c.onGone?.(undefined), this.options.keepAliveMs);
    c.idleTimer.unref();
    list.push(c);
  }

  private connect(req: H1Request, key: string): Promise<Connection> {
    if (this.closed) return Promise.reject(codedError('ERR_H1_CLOSED', 'the registry client was closed'));
    return new Promise<Connection>((resolve, reject) => {
      const buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
      // The socket exists before its Connection does; reads cannot come before both exist.
      const holder: { conn?: Connection } = {};
      const onread = {
        buffer,
        callback: (n: number, buf: Buffer) => (holder.conn ? holder.conn.read(n, buf) : false),
      };
      const host = hostOf(req.url);
      const port = portOf(req.url);
      const https = req.url.protocol === 'https:';
      let socket: Socket;
      try {
        socket = https
          ? tlsConnect({
              ...(req.tls as ConnectionOptions | undefined),
              host,
              port,
              ...(isIP(host) ? {} : { servername: host }),
              ALPNProtocols: ['http/1.1'],
              onread,
            } as ConnectionOptions)
          : netConnect({ host, port, onread });
      } catch (e) {
        reject(e as Error);
        return;
      }
      const c = new Connection(socket, key);
      holder.conn = c;
      let settled = false;
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
        if (err) {
          c.destroy();
          reject(err);
        } else resolve(c);
      };
      const timer = setTimeout(
        () =>
          finish(codedError(this.codes.connectTimeout, `connect timeout after ${req.connectTimeoutMs} ms`)),
        req.connectTimeoutMs,
      );
      const onAbort = (): void => finish(abortError(req.signal));
      if (req.signal?.aborted) return onAbort();
      req.signal?.addEventListener('abort', onAbort, { once: true });
      c.onGone = (err) =>
        finish(err ?? codedError('ECONNRESET', `connection to ${req.url.host} closed while connecting`));
      socket.once(https ? 'secureConnect' : 'connect', () => {
        c.onGone = undefined;
        finish();
      });
    });
  }

  /** Writes the request on `conn` and parses the response head; the body follows on the returned stream. */
  private exchange(
    conn: Connection,
    req: H1Request,
    head: string,
    reused: boolean,
    release: () => void,
  ): Promise<H1Response> {
    conn.uses++;
    return new Promise<H1Response>((resolve, reject) => {
      let settled = false;
      let got = 0;
      let headText = '';
      let body: DirectBody | undefined;
      let framing: Framing = { kind: 'none' };
      let keepAlive = true;
      let keepSlot = false;
      const headersTimer = setTimeout(
        () => fail(codedError(this.codes.headersTimeout, `no response headers within ${req.stallMs} ms`)),
        req.stallMs,
      );
      const cleanup = (): void => {
        clearTimeout(headersTimer);
        req.signal?.removeEventListener('abort', onAbort);
        // A stale kept-alive socket is retried on a fresh one under the same slot.
        if (!keepSlot) release();
      };
      const fail = (err: Error): void => {
        cleanup();
        conn.destroy();
        if (!settled) {
          settled = true;
          reject(err);
        } else if (body && !body.destroyed && !body.complete) body.destroy(err);
      };
      const onAbort = (): void => fail(abortError(req.signal));
      if (req.signal?.aborted) return onAbort();
      req.signal?.addEventListener('abort', onAbort, { once: true });

      let finished = false;
      const finishMessage = (reusable: boolean): void => {
        if (finished) return;
        finished = true;
        cleanup();
        conn.onBytes = undefined;
        conn.onGone = undefined;
        if (reusable && keepAlive) this.putIdle(conn);
        else conn.destroy();
      };

      /** Feeds body bytes through the framing; returns false to pause the socket. */
      const onBody = (chunk: Buffer): boolean => {
        const b = body as DirectBody;
        switch (framing.kind) {
          case 'close':
            return b.deliver(chunk);
          case 'length': {
            if (chunk.length > framing.remaining) {
              // More than the message: a broken server; deliver the message, never reuse the socket.
              const part = chunk.subarray(0, framing.remaining);
              framing.remaining = 0;
              if (part.length > 0) b.deliver(part);
              b.endMessage(false);
              return false;
            }
            framing.remaining -= chunk.length;
            const ok = chunk.length > 0 ? b.deliver(chunk) : true;
            if (framing.remaining === 0) {
              b.endMessage(true);
              return false;
            }
            return ok;
          }
          case 'chunked':
            return chunkedBody(framing, chunk, b, fail);
          case 'none':
            return false;
        }
      };

      conn.onGone = (err) => {
        if (!settled) {
          // Nothing received on a reused socket: the server had closed it while idle.
          const e =
            err ??
            codedError(
              'ECONNRESET',
              `${req.url.host} closed the connection before responding (socket hang up)`,
            );
          if (reused && got === 0) {
            (e as { staleConnection?: boolean }).staleConnection = true;
            keepSlot = true;
          }
          return fail(e);
        }
        if (body && !body.complete) {
          if (framing.kind === 'close' && !err) {
            cleanup();
            body.endMessage(false);
            return;
          }
          const what =
            framing.kind === 'length'
              ? `${framing.remaining} bytes short`
              : 'before the end of the chunked body';
          fail(
            err ??
              codedError('ECONNRESET', `${req.url.host} closed the connection ${what} (premature close)`),
          );
        }
      };

      conn.onBytes = (chunk: Buffer): boolean => {
        got += chunk.length;
        if (body) return onBody(chunk);
        // Still in the head: collect it as latin1 text (header bytes are octets). Only up to the first
        // CRLF CRLF of this read: the rest is body (a quarter MiB of it in one read of a blob), and
        // decoding it cost more CPU than the rest of the head parsing of a pull of many small blobs.
        // Latin1 is one character per byte, so `end + 4 - prevLen` is the body's offset in `chunk`.
        const prevLen = headText.length;
        const crlf2 = chunk.indexOf(HEAD_END);
        headText += chunk.toString('latin1', 0, crlf2 < 0 ? chunk.length : crlf2 + 4);
        const end = headText.indexOf('\r\n\r\n', Math.max(0, prevLen - 3));
        if (end < 0) {
          if (headText.length > MAX_HEAD_BYTES)
            fail(
              codedError(
                'HPE_HEADER_OVERFLOW',
                `response head from ${req.url.host} is larger than ${MAX_HEAD_BYTES} bytes`,
              ),
            );
          return true;
        }
        if (end + 4 > MAX_HEAD_BYTES) {
          fail(
            codedError(
              'HPE_HEADER_OVERFLOW',
              `response head from ${req.url.host} is larger than ${MAX_HEAD_BYTES} bytes`,
            ),
          );
          return false;
        }
        let parsed: ReturnType<typeof parseHead>;
        try {
          parsed = parseHead(headText.slice(0, end));
          if (parsed.statusCode >= 100 && parsed.statusCode < 200) {
            // Interim response (100 Continue, 103 Early Hints): the real one follows.
            const rest = chunk.subarray(end + 4 - prevLen);
            headText = '';
            got = 0;
            return rest.length > 0 ? (conn.onBytes as (c: Buffer) => boolean)(rest) : true;
          }
          framing = framingOf(parsed.statusCode, parsed.headers);
        } catch (e) {
          fail(e as Error);
          return false;
        }
        const connection = parsed.headers['connection'];
        const tokens = (Array.isArray(connection) ? connection.join(',') : (connection ?? '')).toLowerCase();
        keepAlive = parsed.version === 1 ? !/\bclose\b/.test(tokens) : /\bkeep-alive\b/.test(tokens);
        clearTimeout(headersTimer);
        body = new DirectBody(parsed.headers, conn, finishMessage);
        body.watchStall(req.stallMs, this.codes.bodyTimeout);
        settled = true;
        resolve({ statusCode: parsed.statusCode, headers: parsed.headers, body });
        const rest = chunk.subarray(end + 4 - prevLen);
        headText = '';
        if (framing.kind === 'none' || (framing.kind === 'length' && framing.remaining === 0)) {
          body.endMessage(rest.length === 0);
          return false;
        }
        return rest.length > 0 ? onBody(rest) : true;
      };

      conn.socket.write(head);
      conn.socket.resume();
    });
  }
}

/** Decodes chunked transfer coding (RFC 9112 §7.1) from `chunk` into `body`. */
function chunkedBody(
  f: Extract<Framing, { kind: 'chunked' }>,
  chunk: Buffer,
  body: DirectBody,
  fail: (e: Error) => void,
): boolean {
  let ok = true;
  let i = 0;
  while (i < chunk.length) {
    if (f.state === 'data') {
      const n = Math.min(f.remaining, chunk.length - i);
      if (!body.deliver(chunk.subarray(i, i + n))) ok = false;
      f.remaining -= n;
      i += n;
      if (f.remaining === 0) f.state = 'data-crlf';
      continue;
    }
    // line states: size, data-crlf, trailer
    const nl = chunk.indexOf(10, i);
    const piece = chunk.toString('latin1', i, nl < 0 ? chunk.length : nl + 1);
    i = nl < 0 ? chunk.length : nl + 1;
    f.line += piece;
    if (f.line.length > MAX_LINE_BYTES) {
      fail(codedError('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'chunked body line too long'));
      return false;
    }
    if (nl < 0) break;
    const line = f.line.replace(/\r?\n$/, '');
    f.line = '';
    if (f.state === 'data-crlf') {
      if (line !== '') {
        fail(codedError('HPE_INVALID_CHUNK_SIZE', 'missing CRLF after a chunk of the chunked body'));
        return false;
      }
      f.state = 'size';
    } else if (f.state === 'size') {
      const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
      if (!m) {
        fail(
          codedError(
            'HPE_INVALID_CHUNK_SIZE',
            `invalid chunk size line ${JSON.stringify(line.slice(0, 40))}`,
          ),
        );
        return false;
      }
      const size = parseInt(m[1] as string, 16);
      if (size === 0) f.state = 'trailer';
      else {
        f.state = 'data';
        f.remaining = size;
      }
    } else if (line === '') {
      // end of trailers: the message is complete; bytes after it mean the socket is not reusable
      body.endMessage(i === chunk.length);
      return false;
    }
  }
  return ok;
}

function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}
