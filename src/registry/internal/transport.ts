/**
 * The HTTP transport of the registry client, on Node's own `node:http` / `node:https`.
 *
 * Why not undici: on a 2-core node a pull through undici's `Pool` cost 45-57 MiB more peak RSS than
 * the same pull through `node:http`, importing it alone adds ~20 MiB, and `node:http` streamed faster
 * (1.25-1.34 vs 0.83-0.96 GB/s); the measurements are in docs/design/registry-transport.md. The shape:
 *
 * - One keep-alive `Agent` per origin and TLS setting (HTTP/1.1, bounded connections), reused for the
 *   life of the client; idle sockets are unref'd so they never keep the process alive.
 * - TLS: Node's default roots unless an endpoint configures CA files, in which case the roots are the
 *   bundled Mozilla set, the system bundle (`/etc/ssl/certs/ca-certificates.crt` or equivalent),
 *   `NODE_EXTRA_CA_CERTS` and the configured files. Client certificates from hosts.toml `client`.
 *   Verification is skipped only when an endpoint says `skip_verify = true`.
 * - Stalls, not durations (containerd `pullProgressReporter`): no response headers for the stall window,
 *   or no body bytes for the stall window while the consumer is waiting for them (time under the
 *   consumer's backpressure does not count), fails the request. The errors carry the codes
 *   `KIMG_HEADERS_STALLED` / `KIMG_BODY_STALLED` (from `h1.ts`), which callers map to `STALLED`.
 * - Transport failures become coded errors: `TLS_ERROR`, `REGISTRY_UNAVAILABLE`, `ABORTED`, `STALLED`.
 * - Every request start / end / error is published on the diagnostics channels with a redacted URL.
 *
 * - Blob bodies (`direct: true`, GET only) go through `h1.ts` instead: keep-alive sockets that read into
 *   one reused buffer and hand body bytes to a sink without copies (the pull's data path; see there for
 *   the measurements). Diagnostics, TLS settings and error mapping are the same for both paths.
 *
 * Redirects are not followed here; the client follows them so that it can drop `Authorization`
 * when the origin changes.
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type ClientRequest,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { KimgError, isKimgError } from '../../errors/index.js';
import type { EndpointTls } from '../hosts.js';
import { endChannel, errorChannel, startChannel, type DebugLog } from '../diagnostics.js';
import { redactUrl } from './redact.js';
import { isRetryableNetworkError } from '../retry.js';
import {
  BODY_STALLED_CODE,
  CONNECT_TIMEOUT_CODE,
  codedError,
  H1Pool,
  HEADERS_STALLED_CODE,
  readerWaiting,
  stallTickMs,
  type ResponseHeaders,
} from './h1.js';

export type { ResponseHeaders } from './h1.js';

/** One HTTP request. */
export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers: Record<string, string | string[]>;
  body?: Buffer | Readable | null;
  /** The caller's cancellation signal. */
  signal?: AbortSignal | undefined;
  /** Stall window in ms (no response headers, or no body bytes, for this long fails the request). */
  stallMs: number;
  /** TLS settings for this origin; undefined = defaults. */
  tls?: EndpointTls | undefined;
  /** Connect timeout in ms. */
  connectTimeoutMs?: number | undefined;
  /**
   * A GET whose body is bulk data (a blob): sent on the lean HTTP/1.1 path of `h1.ts`, whose body
   * (`DirectBody`) can hand bytes to a sink without copies. Ignored for other methods or with a body.
   */
  direct?: boolean | undefined;
}

/** A response whose body must be consumed or destroyed by the caller. */
export interface HttpResponse {
  status: number;
  headers: ResponseHeaders;
  body: Readable;
  url: URL;
  method: string;
}

/** First value of a header. */
export function header(h: ResponseHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_HANDSHAKE_TIMEOUT',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

function findCode(e: unknown): string | undefined {
  for (let cur: unknown = e, d = 0; cur && d < 5; cur = (cur as { cause?: unknown }).cause, d++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string' && (TLS_CODES.has(c) || c.startsWith('ERR_SSL_') || c.startsWith('ERR_TLS_')))
      return c;
  }
  for (let cur: unknown = e, d = 0; cur && d < 5; cur = (cur as { cause?: unknown }).cause, d++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
}

/** The most specific one-line message of an error chain (OpenSSL's `reason` when there is one). */
function innermostMessage(e: unknown): string {
  let msg = e instanceof Error ? e.message : String(e);
  let reason: string | undefined;
  for (let cur: unknown = e, d = 0; cur && d < 5; cur = (cur as { cause?: unknown }).cause, d++) {
    if (cur !== e && cur instanceof Error && cur.message) msg = cur.message;
    const r = (cur as { reason?: unknown }).reason;
    if (typeof r === 'string' && r.length > 0) reason = r;
  }
  return (reason ?? msg).split('\n')[0]!.trim();
}

/** Whether a transport error code is a TLS failure. */
export function isTlsErrorCode(code: string | undefined): boolean {
  return (
    code !== undefined && (TLS_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))
  );
}

/**
 * Maps a transport failure to a coded error naming method, redacted URL and host.
 * `signal` tells a caller's cancellation apart from everything else.
 */
export function transportError(
  e: unknown,
  req: { method: string; url: URL; stallMs: number },
  signal?: AbortSignal,
): KimgError {
  if (isKimgError(e)) return e as KimgError;
  const url = redactUrl(req.url);
  const host = req.url.host;
  const base = { method: req.method, url, host, cause: e };
  if (signal?.aborted) {
    return new KimgError('ABORTED', `${req.method} ${url} was cancelled`, { ...base, retryable: false });
  }
  const code = findCode(e);
  if (code === HEADERS_STALLED_CODE) {
    return new KimgError(
      'STALLED',
      `${host} sent no response to ${req.method} ${url} for ${seconds(req.stallMs)}: the registry is stalled or overloaded; retry later or raise the stall timeout`,
      {
        ...base,
        bytesRead: 0,
        retryable: true,
      },
    );
  }
  if (code === BODY_STALLED_CODE) {
    return new KimgError(
      'STALLED',
      `no bytes from ${host} for ${seconds(req.stallMs)} during ${req.method} ${url}: the registry stalled; retry later or raise the stall timeout`,
      {
        ...base,
        retryable: true,
      },
    );
  }
  if (isTlsErrorCode(code)) {
    const wrongVersion = code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'EPROTO';
    const hint = wrongVersion
      ? `the host may speak plain HTTP: if so, list it with --plain-http ${host} (or set server = "http://${host}" in hosts.toml)`
      : `give kimg the registry's CA certificate (--ca-file, or "ca" in hosts.toml for ${host})`;
    return new KimgError(
      'TLS_ERROR',
      `TLS handshake with ${host} failed (${code}: ${innermostMessage(e)}) for ${req.method} ${url}: ${hint}`,
      {
        ...base,
        retryable: false,
      },
    );
  }
  const retryable = isRetryableNetworkError(e) || code === 'ENOTFOUND';
  return new KimgError(
    'REGISTRY_UNAVAILABLE',
    `cannot reach registry host ${host} (${req.method} ${url}: ${code ? code + ': ' : ''}${innermostMessage(e)}): check that the registry is running and that host and port are right`,
    { ...base, retryable },
  );
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(3)}s`;
}

let nextRequestId = 1;

/** Options of the {@link Transport}. */
export interface TransportOptions {
  /** Max connections per origin. Default 16. */
  connectionsPerOrigin?: number;
  /** Keep-alive of idle connections. Default 30 s. */
  keepAliveTimeoutMs?: number;
  /** Default connect timeout. Default 30 s (containerd `dial_timeout` default). */
  connectTimeoutMs?: number;
  userAgent?: string;
  debug?: DebugLog;
}

type AnyAgent = HttpAgent | HttpsAgent;

/** Pools per origin + TLS setting; sends requests; maps failures; publishes diagnostics. */
export class Transport {
  private readonly agents = new Map<string, AnyAgent>();
  private readonly tlsCache = new Map<string, Promise<Record<string, unknown>>>();
  private closed = false;
  private readonly h1: H1Pool;

  constructor(private readonly options: TransportOptions = {}) {
    this.h1 = new H1Pool(
      {
        headersTimeout: HEADERS_STALLED_CODE,
        bodyTimeout: BODY_STALLED_CODE,
        connectTimeout: CONNECT_TIMEOUT_CODE,
      },
      {
        keepAliveMs: options.keepAliveTimeoutMs ?? 30_000,
        maxIdlePerKey: options.connectionsPerOrigin ?? 16,
        maxPerKey: options.connectionsPerOrigin ?? 16,
      },
    );
  }

  /** Closes every connection (idle connections end, in-flight requests are destroyed). */
  close(): Promise<void> {
    this.closed = true;
    const agents = [...this.agents.values()];
    this.agents.clear();
    for (const a of agents) a.destroy();
    this.h1.close();
    return Promise.resolve();
  }

  private tlsKey(tls: EndpointTls | undefined, connectTimeoutMs: number | undefined): string {
    if (!tls) return `default|${connectTimeoutMs ?? ''}`;
    return JSON.stringify([tls.caFiles, tls.clientPairs, tls.skipVerify ?? null, connectTimeoutMs ?? null]);
  }

  private async connectOptions(
    tls: EndpointTls | undefined,
    connectTimeoutMs: number | undefined,
  ): Promise<Record<string, unknown>> {
    const key = this.tlsKey(tls, connectTimeoutMs);
    let p = this.tlsCache.get(key);
    if (!p) {
      p = buildConnectOptions(tls, connectTimeoutMs ?? this.options.connectTimeoutMs ?? 30_000);
      this.tlsCache.set(key, p);
      p.catch(() => this.tlsCache.delete(key));
    }
    return p;
  }

  /**
   * What a request to `url` connects with, for both paths: the TLS setting in use (https only), its
   * pool-key part, the connect timeout, and the TLS connect options (read once per setting).
   */
  private connection(
    url: URL,
    tls: EndpointTls | undefined,
    connectTimeoutMs: number | undefined,
  ): {
    https: boolean;
    tlsKey: string;
    connectTimeout: number;
    tlsOptions: () => Promise<Record<string, unknown>>;
  } {
    if (this.closed) throw new KimgError('ABORTED', 'the registry client was closed');
    const https = url.protocol === 'https:';
    const useTls = https ? tls : undefined;
    return {
      https,
      tlsKey: this.tlsKey(useTls, connectTimeoutMs),
      connectTimeout: connectTimeoutMs ?? this.options.connectTimeoutMs ?? 30_000,
      tlsOptions: async () => {
        if (!https) return {};
        const { timeout: _timeout, ...tlsOptions } = await this.connectOptions(useTls, connectTimeoutMs);
        return tlsOptions;
      },
    };
  }

  private async agent(
    url: URL,
    tls: EndpointTls | undefined,
    connectTimeoutMs: number | undefined,
  ): Promise<{ agent: AnyAgent; connectTimeout: number }> {
    const conn = this.connection(url, tls, connectTimeoutMs);
    const key = `${url.origin}|${conn.tlsKey}`;
    let agent = this.agents.get(key);
    if (!agent) {
      const tlsOptions = await conn.tlsOptions();
      agent = this.agents.get(key);
      if (!agent) {
        const common = {
          keepAlive: true,
          maxSockets: this.options.connectionsPerOrigin ?? 16,
          maxFreeSockets: this.options.connectionsPerOrigin ?? 16,
          scheduling: 'lifo' as const,
          // idle keep-alive sockets are closed after this (active requests are not affected)
          timeout: this.options.keepAliveTimeoutMs ?? 30_000,
        };
        agent = conn.https ? new HttpsAgent({ ...common, ...tlsOptions }) : new HttpAgent(common);
        this.agents.set(key, agent);
      }
    }
    return { agent, connectTimeout: conn.connectTimeout };
  }

  /**
   * Sends one request (no redirects followed). Resolves with the response once headers arrive.
   * @throws KimgError `REGISTRY_UNAVAILABLE`, `TLS_ERROR`, `STALLED`, `ABORTED`.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const id = nextRequestId++;
    const url = redactUrl(req.url);
    const start = performance.now();
    const msg = { id, method: req.method, url, host: req.url.host };
    if (startChannel.hasSubscribers) startChannel.publish(msg);
    this.options.debug?.(`#${id} ${req.method} ${url}`);
    try {
      if (req.signal?.aborted) throw req.signal.reason ?? new Error('aborted');
      const res =
        req.direct && req.method === 'GET' && (req.body ?? null) === null
          ? await this.sendDirect(req)
          : await this.sendOnAgent(req);
      const durationMs = performance.now() - start;
      if (endChannel.hasSubscribers) endChannel.publish({ ...msg, status: res.status, durationMs });
      this.options.debug?.(`#${id} ${res.status} ${req.method} ${url} (${durationMs.toFixed(1)} ms)`);
      return res;
    } catch (e) {
      const err = transportError(e, req, req.signal);
      const durationMs = performance.now() - start;
      if (errorChannel.hasSubscribers)
        errorChannel.publish({ ...msg, code: err.code, message: err.message, durationMs });
      this.options.debug?.(`#${id} failed ${req.method} ${url}: ${err.code}: ${err.message}`);
      throw err;
    }
  }

  /** A blob GET on the lean HTTP/1.1 path (`h1.ts`). */
  private async sendDirect(req: HttpRequest): Promise<HttpResponse> {
    const conn = this.connection(req.url, req.tls, req.connectTimeoutMs);
    const res = await this.h1.get({
      url: req.url,
      headers: { 'user-agent': this.options.userAgent ?? 'kimg', ...lowerCaseKeys(req.headers) },
      signal: req.signal,
      stallMs: req.stallMs,
      connectTimeoutMs: conn.connectTimeout,
      tls: conn.https ? await conn.tlsOptions() : undefined,
      tlsKey: conn.tlsKey,
    });
    return { status: res.statusCode, headers: res.headers, body: res.body, url: req.url, method: req.method };
  }

  /** Any request on the `node:http` agent of its origin. */
  private async sendOnAgent(req: HttpRequest): Promise<HttpResponse> {
    const { agent, connectTimeout } = await this.agent(req.url, req.tls, req.connectTimeoutMs);
    const headers: Record<string, string | string[]> = {
      'user-agent': this.options.userAgent ?? 'kimg',
      ...req.headers,
    };
    const body = req.body ?? null;
    if (Buffer.isBuffer(body) && !hasHeader(headers, 'content-length'))
      headers['content-length'] = String(body.length);
    const res = await exchange(req, agent, headers, body, connectTimeout);
    watchBodyStall(res, req.stallMs);
    return {
      status: res.statusCode ?? 0,
      headers: responseHeaders(res),
      body: res,
      url: req.url,
      method: req.method,
    };
  }
}

function lowerCaseKeys(h: Record<string, string | string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  return out;
}

function hasHeader(h: Record<string, unknown>, name: string): boolean {
  return Object.keys(h).some((k) => k.toLowerCase() === name);
}

/** Headers as one string per name, an array for a header that came more than once. */
function responseHeaders(res: IncomingMessage): ResponseHeaders {
  const out: ResponseHeaders = {};
  for (const [k, v] of Object.entries(res.headersDistinct)) {
    if (v) out[k] = v.length === 1 ? v[0] : v;
  }
  return out;
}

/**
 * Sends the request and resolves with the response once its headers arrived. Fails when the
 * connection is not up within `connectTimeout` or the headers take longer than the stall window.
 */
function exchange(
  req: HttpRequest,
  agent: AnyAgent,
  headers: Record<string, string | string[]>,
  body: Buffer | Readable | null,
  connectTimeout: number,
): Promise<IncomingMessage> {
  return new Promise<IncomingMessage>((resolve, reject) => {
    const send = req.url.protocol === 'https:' ? httpsRequest : httpRequest;
    let settled = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const headersTimer = setTimeout(() => {
      cr.destroy(codedError(HEADERS_STALLED_CODE, `no response headers within ${req.stallMs} ms`));
    }, req.stallMs);
    const done = (): void => {
      settled = true;
      clearTimeout(headersTimer);
      if (connectTimer) clearTimeout(connectTimer);
    };
    const cr: ClientRequest = send(
      req.url,
      {
        method: req.method,
        headers,
        agent,
        ...(req.signal ? { signal: req.signal } : {}),
      },
      (res) => {
        done();
        resolve(res);
      },
    );
    cr.on('error', (e) => {
      if (settled) return;
      done();
      reject(e);
    });
    cr.on('socket', (socket) => {
      if (!(socket as { connecting?: boolean }).connecting) return;
      connectTimer = setTimeout(
        () => socket.destroy(codedError(CONNECT_TIMEOUT_CODE, `connect timeout after ${connectTimeout} ms`)),
        connectTimeout,
      );
      socket.once('connect', () => clearTimeout(connectTimer));
    });
    if (body === null) cr.end();
    else if (Buffer.isBuffer(body)) cr.end(body);
    else {
      body.once('error', (e) => cr.destroy(e));
      body.pipe(cr);
    }
  });
}

/**
 * Fails a response body with `KIMG_BODY_STALLED` when no bytes arrive for `stallMs` while its
 * consumer waits for them (it has started reading and nothing is buffered): time the consumer spends
 * applying backpressure, or before it starts reading, does not count. Checked a few times per window by
 * one unref'd timer per response.
 */
function watchBodyStall(res: IncomingMessage, stallMs: number): void {
  if (res.complete) return;
  const socket = res.socket;
  let lastBytes = socket?.bytesRead ?? 0;
  let lastProgress = performance.now();
  const timer = setInterval(() => {
    if (res.complete || res.destroyed) return stop();
    const now = performance.now();
    const bytes = socket?.bytesRead ?? 0;
    // Nobody reads the body yet (readableFlowing null), or bytes wait in its queue: not a stall.
    if (bytes !== lastBytes || !readerWaiting(res)) {
      lastBytes = bytes;
      lastProgress = now;
      return;
    }
    if (now - lastProgress >= stallMs) {
      stop();
      res.destroy(codedError(BODY_STALLED_CODE, `no body bytes for ${stallMs} ms`));
    }
  }, stallTickMs(stallMs));
  timer.unref();
  const stop = (): void => clearInterval(timer);
  res.once('end', stop);
  res.once('close', stop);
}

async function buildConnectOptions(
  tls: EndpointTls | undefined,
  timeout: number,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { timeout };
  if (!tls) return out;
  if (tls.caFiles.length > 0) {
    const ca: string[] = [...rootCertificates];
    for (const f of SYSTEM_BUNDLES) {
      const text = await readFile(f, 'utf8').catch(() => undefined);
      if (text) {
        ca.push(text);
        break;
      }
    }
    const extra = process.env.NODE_EXTRA_CA_CERTS;
    if (extra) {
      const text = await readFile(extra, 'utf8').catch(() => undefined);
      if (text) ca.push(text);
    }
    for (const f of tls.caFiles) {
      let text: string;
      try {
        text = await readFile(f, 'utf8');
      } catch (e) {
        throw new KimgError(
          'FILE_NOT_FOUND',
          `cannot read CA certificate file ${f}: ${(e as Error).message}`,
          { file: f, cause: e },
        );
      }
      if (!text.includes('-----BEGIN CERTIFICATE-----')) {
        throw new KimgError(
          'TLS_ERROR',
          `CA file ${f} contains no PEM certificate ("-----BEGIN CERTIFICATE-----")`,
          { file: f },
        );
      }
      ca.push(text);
    }
    out.ca = ca;
  }
  if (tls.clientPairs.length > 0) {
    const [certFile, keyFile] = tls.clientPairs[0] as [string, string];
    try {
      const cert = await readFile(certFile, 'utf8');
      out.cert = cert;
      out.key = keyFile ? await readFile(keyFile, 'utf8') : cert;
    } catch (e) {
      throw new KimgError(
        'FILE_NOT_FOUND',
        `cannot read client certificate ${certFile}${keyFile ? ` / key ${keyFile}` : ''}: ${(e as Error).message}`,
        { file: certFile, cause: e },
      );
    }
  }
  if (tls.skipVerify === true) out.rejectUnauthorized = false;
  return out;
}
