/**
 * The node agent's HTTP endpoint (one server, `127.0.0.1` by default):
 * - `GET /metrics`: Prometheus text (prom-client);
 * - `GET /healthz`: `ok`;
 * - `GET /`: the status page (static HTML, its script at `GET /status.js`, no external assets; the
 *   CSP allows scripts from the agent only, never inline);
 * - `GET /api/pods`, `GET /api/pods/<namespace>/<name>` (with its events), `GET /api/events`,
 *   `GET /api/store`: JSON;
 * - `GET /api/pulls/progress`: per-layer progress of every in-flight pull, newline-delimited JSON
 *   (`progress-stream.ts`);
 * - `GET /events`: server-sent events — `pods`, `events`, `store` messages with the same JSON, sent
 *   on change (coalesced to at most one per kind every 100 ms) and once on connect. At most
 *   `STREAM_LIMITS.maxClients` streams are open at once (the next gets 503 with `Retry-After`), and
 *   each is ended after `STREAM_LIMITS.lifetimeMs` (the page's EventSource reconnects): idle clients
 *   cannot pile up and hold the agent's memory.
 * Nothing served holds a credential: pod states, event texts and store records never contain one.
 *
 * Source: the kubelet's `/metrics` and `/healthz` handlers (`pkg/kubelet/server/server.go`).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KimgError, toKimgError } from '../errors/index.js';
import type { NodeMetrics } from './metrics.js';
import type { PodStateStore } from './pod-state.js';
import { PULL_PROGRESS_PATH, PullProgressStreams } from './progress-stream.js';
import { PullProgressHub } from '../pull/index.js';
import { STATUS_PAGE_HTML, STATUS_PAGE_SCRIPT } from './status-page.js';
import type { AgentLog, StoreSummary } from './types.js';

/** What the endpoint serves: the running agent's state, metrics and store summary. */
export interface AgentHttpSource {
  readonly state: PodStateStore;
  readonly metrics: NodeMetrics;
  readonly nodeName: string;
  /** In-flight pulls (`/api/pulls/progress`); without it the stream has no lines. */
  readonly progress?: PullProgressHub;
  storeSummary(): Promise<StoreSummary>;
}

/** A running HTTP endpoint. */
export interface AgentHttpServer {
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Splits `host:port` (`[::1]:10259` for IPv6). @throws KimgError `INVALID_ARGUMENT`. */
export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:]*):(\d{1,5})$/.exec(address);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `${JSON.stringify(address)} is not host:port: write e.g. 127.0.0.1:10259 (port 0 = any free port)`,
      { input: address },
    );
  }
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
  return { host: host === '' ? '127.0.0.1' : host, port };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * Bounds of the `/events` stream. A status page needs one stream per open browser tab: 64 is far above
 * a node's operators, and each stream costs a socket and its write buffers. Streams end after 10 min so
 * a forgotten or hostile client holds nothing for long (EventSource reconnects after `retry: 1000`).
 */
export const STREAM_LIMITS = { maxClients: 64, lifetimeMs: 10 * 60_000 } as const;

/** The kinds of server-sent events, each with the JSON of its API path. */
const STREAM_KINDS = ['pods', 'events', 'store'] as const;

/** What a stream kind's message holds now. */
async function snapshot(agent: AgentHttpSource, kind: string): Promise<unknown> {
  if (kind === 'pods') return agent.state.list();
  if (kind === 'events') return agent.state.events();
  return agent.storeSummary();
}

/**
 * The `/events` clients: every state change is sent to all of them, coalesced to at most one message
 * per kind every 100 ms; nothing is computed while no client listens.
 */
class EventStream {
  private readonly clients = new Set<ServerResponse>();
  private readonly pending = new Set<string>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly agent: AgentHttpSource,
    private readonly limits: { maxClients: number; lifetimeMs: number } = STREAM_LIMITS,
  ) {
    agent.state.on('change', this.onChange);
  }

  /**
   * Starts a client's stream: the retry hint, then every kind's current message; 503 when
   * `maxClients` streams are open. The stream ends after `lifetimeMs`.
   */
  async add(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.clients.size >= this.limits.maxClients) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '10' }).end('too many streams\n');
      return;
    }
    const lifetime = setTimeout(() => res.end(), this.limits.lifetimeMs);
    lifetime.unref();
    res.on('close', () => {
      clearTimeout(lifetime);
      this.clients.delete(res);
    });
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write('retry: 1000\n\n');
    this.clients.add(res);
    req.on('close', () => this.clients.delete(res));
    for (const kind of STREAM_KINDS) {
      const data = await snapshot(this.agent, kind).catch(() => undefined);
      if (data !== undefined) res.write(frame(kind, data));
    }
  }

  /** Ends every client's stream and stops listening to changes. */
  close(): void {
    this.agent.state.off('change', this.onChange);
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private readonly onChange = (c: { kind: string }): void => {
    if (this.clients.size === 0) return;
    this.pending.add(c.kind);
    if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => void this.flush(), 100);
      this.flushTimer.unref();
    }
  };

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const kinds = [...this.pending];
    this.pending.clear();
    for (const kind of kinds) {
      let data: unknown;
      try {
        data = await snapshot(this.agent, kind);
      } catch {
        continue;
      }
      const text = frame(kind, data);
      for (const c of this.clients) c.write(text);
    }
  }
}

function frame(kind: string, data: unknown): string {
  return `event: ${kind}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Serves one request (GET and HEAD only). */
async function handle(
  agent: AgentHttpSource,
  stream: EventStream,
  pulls: PullProgressStreams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://agent').pathname;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET' }).end();
    return;
  }
  if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  } else if (path === '/metrics') {
    const text = await agent.metrics.text();
    res.writeHead(200, { 'content-type': agent.metrics.registry.contentType }).end(text);
  } else if (path === '/' || path === '/index.html') {
    res
      .writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'unsafe-inline'",
      })
      .end(STATUS_PAGE_HTML);
  } else if (path === '/status.js') {
    res
      .writeHead(200, {
        'content-type': 'text/javascript; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      })
      .end(STATUS_PAGE_SCRIPT);
  } else if (path === '/api/pods') {
    sendJson(res, 200, { node: agent.nodeName, pods: agent.state.list() });
  } else if (/^\/api\/pods\/([^/]+)\/([^/]+)$/.test(path)) {
    sendPod(agent, res, path);
  } else if (path === '/api/events') {
    sendJson(res, 200, { events: agent.state.events() });
  } else if (path === '/api/store') {
    sendJson(res, 200, await agent.storeSummary());
  } else if (path === '/events') {
    await stream.add(req, res);
  } else if (path === PULL_PROGRESS_PATH) {
    pulls.handle(req, res);
  } else {
    sendJson(res, 404, { code: 'NOT_FOUND', message: `no such path ${path}` });
  }
}

/** `/api/pods/<namespace>/<name>`: the pod with its events, or `POD_NOT_FOUND`. */
function sendPod(agent: AgentHttpSource, res: ServerResponse, path: string): void {
  const one = /^\/api\/pods\/([^/]+)\/([^/]+)$/.exec(path);
  const namespace = decodeURIComponent(one?.[1] ?? '');
  const name = decodeURIComponent(one?.[2] ?? '');
  const pod = agent.state.get(`${namespace}/${name}`);
  if (pod === undefined) {
    sendJson(res, 404, { code: 'POD_NOT_FOUND', message: `pods "${name}" not found` });
    return;
  }
  sendJson(res, 200, { pod, events: agent.state.events({ namespace, name }) });
}

/** Listens on `host:port`. @throws KimgError `INTERNAL` naming the address. */
function listen(server: Server, address: string): Promise<void> {
  const { host, port } = parseHostPort(address);
  return new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(
        new KimgError('INTERNAL', `cannot listen on ${address}: ${e.message}`, {
          input: address,
          cause: e,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
}

/** Starts the endpoint for `agent`. @throws KimgError `INVALID_ARGUMENT` (address), `INTERNAL` (listen). */
export async function startAgentHttpServer(options: {
  address: string;
  agent: AgentHttpSource;
  log: AgentLog;
  /** Bounds of the `/events` stream (default `STREAM_LIMITS`). */
  streamLimits?: { maxClients: number; lifetimeMs: number };
}): Promise<AgentHttpServer> {
  const { agent, log } = options;
  parseHostPort(options.address);
  const stream = new EventStream(agent, options.streamLimits ?? STREAM_LIMITS);
  const pulls = new PullProgressStreams(agent.progress ?? new PullProgressHub());
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    handle(agent, stream, pulls, req, res).catch((e: unknown) => {
      const err = toKimgError(e);
      log({ level: 'error', msg: `http ${req.url ?? ''}: ${err.message}` });
      if (!res.headersSent) sendJson(res, 500, { code: err.code, message: err.message });
      else res.end();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  try {
    await listen(server, options.address);
  } catch (e) {
    stream.close();
    pulls.close();
    throw e;
  }
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}`,
    close: async () => {
      stream.close();
      pulls.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
