/**
 * The node agent's HTTP endpoint (one server, `127.0.0.1` by default):
 * - `GET /metrics`: Prometheus text (prom-client);
 * - `GET /healthz`: `ok`;
 * - `GET /`: the status page (static HTML + inline JS, no external assets);
 * - `GET /api/pods`, `GET /api/pods/<namespace>/<name>` (with its events), `GET /api/events`,
 *   `GET /api/store`: JSON;
 * - `GET /events`: server-sent events — `pods`, `events`, `store` messages with the same JSON, sent
 *   on change (coalesced to at most one per kind every 100 ms) and once on connect.
 * Nothing served holds a credential: pod states, event texts and store records never contain one.
 *
 * Source: the kubelet's `/metrics` and `/healthz` handlers (`pkg/kubelet/server/server.go`).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KimgError, toKimgError } from '../errors/index.js';
import type { AgentLogEntry, NodeAgent } from './agent.js';
import { STATUS_PAGE_HTML } from './status-page.js';

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

/** Starts the endpoint for `agent`. @throws KimgError `INVALID_ARGUMENT` (address), `INTERNAL` (listen). */
export async function startAgentHttpServer(options: {
  address: string;
  agent: NodeAgent;
  log: (entry: AgentLogEntry) => void;
}): Promise<AgentHttpServer> {
  const { agent, log } = options;
  const { host, port } = parseHostPort(options.address);
  const clients = new Set<ServerResponse>();
  const sockets = new Set<Socket>();

  const snapshot = async (kind: string): Promise<unknown> => {
    if (kind === 'pods') return agent.state.list();
    if (kind === 'events') return agent.state.events();
    return agent.storeSummary();
  };
  const pending = new Set<string>();
  let flushTimer: NodeJS.Timeout | undefined;
  const flush = async (): Promise<void> => {
    flushTimer = undefined;
    const kinds = [...pending];
    pending.clear();
    for (const kind of kinds) {
      let data: unknown;
      try {
        data = await snapshot(kind);
      } catch {
        continue;
      }
      const frame = `event: ${kind}\ndata: ${JSON.stringify(data)}\n\n`;
      for (const c of clients) c.write(frame);
    }
  };
  const onChange = (c: { kind: string }): void => {
    if (clients.size === 0) return;
    pending.add(c.kind);
    if (flushTimer === undefined) {
      flushTimer = setTimeout(() => void flush(), 100);
      flushTimer.unref();
    }
  };
  agent.state.on('change', onChange);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const path = url.pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (path === '/metrics') {
      const text = await agent.metrics.text();
      res.writeHead(200, { 'content-type': agent.metrics.registry.contentType }).end(text);
      return;
    }
    if (path === '/' || path === '/index.html') {
      res
        .writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'content-security-policy':
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        })
        .end(STATUS_PAGE_HTML);
      return;
    }
    if (path === '/api/pods') {
      sendJson(res, 200, { node: agent.nodeName, pods: agent.state.list() });
      return;
    }
    const one = /^\/api\/pods\/([^/]+)\/([^/]+)$/.exec(path);
    if (one !== null) {
      const namespace = decodeURIComponent(one[1] ?? '');
      const name = decodeURIComponent(one[2] ?? '');
      const pod = agent.state.get(`${namespace}/${name}`);
      if (pod === undefined) {
        sendJson(res, 404, { code: 'POD_NOT_FOUND', message: `pods "${name}" not found` });
        return;
      }
      sendJson(res, 200, { pod, events: agent.state.events({ namespace, name }) });
      return;
    }
    if (path === '/api/events') {
      sendJson(res, 200, { events: agent.state.events() });
      return;
    }
    if (path === '/api/store') {
      sendJson(res, 200, await agent.storeSummary());
      return;
    }
    if (path === '/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write('retry: 1000\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
      for (const kind of ['pods', 'events', 'store']) {
        const data = await snapshot(kind).catch(() => undefined);
        if (data !== undefined) res.write(`event: ${kind}\ndata: ${JSON.stringify(data)}\n\n`);
      }
      return;
    }
    sendJson(res, 404, { code: 'NOT_FOUND', message: `no such path ${path}` });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(
        new KimgError('INTERNAL', `cannot listen on ${options.address}: ${e.message}`, {
          input: options.address,
          cause: e,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}`,
    close: async () => {
      agent.state.off('change', onChange);
      if (flushTimer !== undefined) clearTimeout(flushTimer);
      for (const c of clients) c.end();
      clients.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
