/**
 * `GET /api/pulls/progress`: the pull progress hub as newline-delimited JSON (one
 * `{name, image, layer?, progress, total, error?, done?}` object a line, docs/design/pull-progress.md).
 * A client first gets the lines of every in-flight pull (a snapshot), then every update as it
 * happens; `?watch=false` ends after the snapshot. Served by the node agent's endpoint and by
 * `kimg serve --http`, both loopback by default.
 *
 * Bounded: at most `maxClients` streams at once (more get 503), a stream with nothing to send for
 * `idleTimeoutMs` is ended (the client reconnects and gets a fresh snapshot), and a client that does
 * not read is dropped once `maxBufferedBytes` are queued for it, so a stalled reader never grows the
 * agent's memory.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KimgError } from '../errors/index.js';
import type { PullProgressHub, PullProgressLine } from '../pull/index.js';

/** Path of the stream on every endpoint that serves it. */
export const PULL_PROGRESS_PATH = '/api/pulls/progress';

export const DEFAULT_PULL_PROGRESS_STREAM_OPTIONS = Object.freeze({
  maxClients: 16,
  idleTimeoutMs: 5 * 60_000,
  maxBufferedBytes: 1024 * 1024,
});

export interface PullProgressStreamOptions {
  /** Streams open at once; default 16. */
  maxClients?: number;
  /** A stream with no line for this long is ended; default 5 minutes. */
  idleTimeoutMs?: number;
  /** Bytes queued for a client that does not read before it is dropped; default 1 MiB. */
  maxBufferedBytes?: number;
}

/** The open streams of one endpoint. */
export class PullProgressStreams {
  private readonly clients = new Set<() => void>();
  private readonly o: Required<PullProgressStreamOptions>;

  constructor(
    private readonly hub: PullProgressHub,
    options: PullProgressStreamOptions = {},
  ) {
    this.o = { ...DEFAULT_PULL_PROGRESS_STREAM_OPTIONS, ...options };
  }

  /** Streams open now. */
  get size(): number {
    return this.clients.size;
  }

  /** Serves one `GET /api/pulls/progress[?watch=false]`. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const watch = new URL(req.url ?? '/', 'http://kimg').searchParams.get('watch') !== 'false';
    if (watch && this.clients.size >= this.o.maxClients) {
      res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '5' });
      res.end(
        JSON.stringify({
          code: 'UNAVAILABLE',
          message: `too many pull progress streams (at most ${this.o.maxClients}): try again later`,
        }),
      );
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
    });
    const snapshot = this.hub.snapshot();
    if (!watch) {
      res.end(snapshot.map(toText).join(''));
      return;
    }
    // Headers now: a client waits for them before reading, and there may be no line for a while.
    res.flushHeaders();
    for (const line of snapshot) res.write(toText(line));
    let idle: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (!this.clients.delete(stop)) return;
      unsubscribe();
      clearTimeout(idle);
      res.end();
    };
    const arm = (): void => {
      clearTimeout(idle);
      idle = setTimeout(stop, this.o.idleTimeoutMs);
      idle.unref();
    };
    const unsubscribe = this.hub.subscribe((line) => {
      if (res.writableLength > this.o.maxBufferedBytes) {
        res.destroy();
        stop();
        return;
      }
      res.write(toText(line));
      arm();
    });
    this.clients.add(stop);
    arm();
    req.on('close', stop);
    res.on('close', stop);
  }

  /** Ends every stream. */
  close(): void {
    for (const stop of [...this.clients]) stop();
  }
}

function toText(line: PullProgressLine): string {
  return `${JSON.stringify(line)}\n`;
}

/** A running `kimg serve --http` endpoint. */
export interface PullProgressServer {
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts a small endpoint for a face without the node agent's (`kimg serve`): `GET /metrics` (the
 * given exposition), `GET /healthz` and the pull progress stream. `host` must be a loopback address:
 * the stream names the images a node pulls.
 * @throws KimgError `INVALID_ARGUMENT` (not loopback), `INTERNAL` (listen).
 */
export async function startPullProgressServer(options: {
  host: string;
  port: number;
  hub: PullProgressHub;
  metrics: () => Promise<{ contentType: string; text: string }>;
  stream?: PullProgressStreamOptions;
}): Promise<PullProgressServer> {
  const { host, port } = options;
  if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) {
    throw new KimgError('INVALID_ARGUMENT', `${host} is not a loopback address: use 127.0.0.1 or [::1]`, {
      input: host,
    });
  }
  const streams = new PullProgressStreams(options.hub, options.stream);
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://kimg').pathname;
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
    } else if (path === PULL_PROGRESS_PATH) {
      streams.handle(req, res);
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else if (path === '/metrics') {
      options.metrics().then(
        (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.text),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ code: 'NOT_FOUND', message: `no such path ${path}` }));
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new KimgError('INTERNAL', `cannot listen on ${host}:${port}: ${e.message}`, { cause: e })),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}`,
    close: async () => {
      streams.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
