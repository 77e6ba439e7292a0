/**
 * Turning a registry's non-success response into one coded KimgError.
 *
 * The distribution spec ("Error Codes") has registries answer `{"errors":[{code,message,detail}]}`;
 * the body is read through a 64 KiB cap. Codes are mapped once here:
 * `NAME_UNKNOWN` / `MANIFEST_UNKNOWN` / `BLOB_UNKNOWN` / `BLOB_UPLOAD_UNKNOWN` / 404 → `NOT_FOUND`,
 * 401 / `UNAUTHORIZED` → `UNAUTHORIZED`, 403 / `DENIED` → `DENIED`, 429 / `TOOMANYREQUESTS` →
 * `TOO_MANY_REQUESTS` (with `Retry-After` and rate-limit headers), 5xx / `UNAVAILABLE` →
 * `REGISTRY_UNAVAILABLE`, anything else → `REGISTRY_ERROR`. Every error carries method, redacted URL,
 * host, status, the registry's `errors[]` and `retryable`, and a message that says what to do.
 */
import { KimgError, type KimgErrorCode, type RegistryErrorEntry } from '../../errors/index.js';
import { parseRetryAfter } from '../retry.js';
import { discard, readErrorBody } from './body.js';
import { redactUrl } from './redact.js';
import { header, type HttpResponse, type ResponseHeaders } from './transport.js';

/** What the request was about, for messages. */
export interface ErrorContext {
  /** The registry as named in the reference (`docker.io`, `127.0.0.1:5000`). */
  registry: string;
  repository?: string | undefined;
  kind: 'ping' | 'token' | 'manifest' | 'blob' | 'tags' | 'catalog' | 'upload' | 'mount';
  /** Tag or digest the request was about. */
  target?: string | undefined;
  /** Whether credentials were offered. */
  hadCredentials: boolean;
  /** pull or push, for DENIED messages. */
  action?: 'pull' | 'push';
  /** Attempts made, when more than one. */
  attempts?: number;
}

/** Parses a distribution error body into entries; tolerant of junk. */
export function parseRegistryErrors(body: Buffer): RegistryErrorEntry[] {
  if (body.length === 0) return [];
  try {
    const j = JSON.parse(body.toString('utf8')) as unknown;
    const list = (j as { errors?: unknown })?.errors;
    if (!Array.isArray(list)) return [];
    const out: RegistryErrorEntry[] = [];
    for (const e of list.slice(0, 20)) {
      if (typeof e !== 'object' || e === null) continue;
      const code = (e as { code?: unknown }).code;
      const message = (e as { message?: unknown }).message;
      const entry: RegistryErrorEntry = { code: typeof code === 'string' ? code : 'UNKNOWN' };
      if (typeof message === 'string') entry.message = message.slice(0, 1000);
      const detail = (e as { detail?: unknown }).detail;
      if (detail !== undefined) entry.detail = detail;
      out.push(entry);
    }
    return out;
  } catch {
    return [];
  }
}

const RATE_LIMIT_HEADERS = [
  'retry-after',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'ratelimit-policy',
  'docker-ratelimit-source',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
];

/** `name: value` pairs of the rate-limit headers present. */
export function rateLimitHeaders(h: ResponseHeaders): string[] {
  const out: string[] = [];
  for (const n of RATE_LIMIT_HEADERS) {
    const v = header(h, n);
    if (v !== undefined) out.push(`${n}: ${v.slice(0, 200)}`);
  }
  return out;
}

function describeTarget(ctx: ErrorContext): string {
  const repo = ctx.repository !== undefined ? ` in repository ${JSON.stringify(ctx.repository)}` : '';
  switch (ctx.kind) {
    case 'manifest':
      return ctx.target?.includes(':')
        ? `manifest ${ctx.target}${repo}`
        : `tag ${JSON.stringify(ctx.target ?? '')}${repo}`;
    case 'blob':
    case 'mount':
      return `blob ${ctx.target ?? ''}${repo}`;
    case 'upload':
      return `upload session${repo}`;
    case 'tags':
      return `repository ${JSON.stringify(ctx.repository ?? '')}`;
    case 'catalog':
      return 'catalog';
    case 'ping':
      return 'API endpoint /v2/';
    case 'token':
      return 'token endpoint';
  }
}

function registryCodes(errors: RegistryErrorEntry[]): string {
  if (errors.length === 0) return '';
  return errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ');
}

/**
 * Builds the coded error for a non-success response, reading (and consuming) its body.
 */
export async function errorFromResponse(res: HttpResponse, ctx: ErrorContext): Promise<KimgError> {
  const body = res.method === 'HEAD' ? Buffer.alloc(0) : await readErrorBody(res.body);
  if (res.method === 'HEAD') discard(res.body);
  return errorFromStatus(
    res.status,
    res.headers,
    parseRegistryErrors(body),
    { method: res.method, url: res.url },
    ctx,
  );
}

/** As {@link errorFromResponse}, from already-read parts (pure; used by tests). */
export function errorFromStatus(
  status: number,
  headers: ResponseHeaders,
  registryErrors: RegistryErrorEntry[],
  req: { method: string; url: URL },
  ctx: ErrorContext,
): KimgError {
  const url = redactUrl(req.url);
  const host = req.url.host;
  const codes = new Set(registryErrors.map((e) => e.code));
  const regText = registryCodes(registryErrors);
  const said = regText ? ` (${status} ${regText})` : ` (${status})`;
  const details = { method: req.method, url, host, status, registryErrors, retryable: false };
  const what = describeTarget(ctx);
  const reg = ctx.registry;
  let code: KimgErrorCode;
  let message: string;

  if (status === 429 || codes.has('TOOMANYREQUESTS')) {
    const retryAfterMs = parseRetryAfter(header(headers, 'retry-after'));
    const items = rateLimitHeaders(headers);
    code = 'TOO_MANY_REQUESTS';
    message = `registry ${reg} is rate-limiting requests${said}${retryAfterMs !== undefined ? `; it asks to retry after ${Math.ceil(retryAfterMs / 1000)}s` : ''}${ctx.attempts && ctx.attempts > 1 ? ` (gave up after ${ctx.attempts} attempts)` : ''}: wait and retry later, or authenticate for a higher limit`;
    return new KimgError(code, message, {
      ...details,
      retryable: true,
      ...(retryAfterMs !== undefined ? { retryAfterSeconds: Math.ceil(retryAfterMs / 1000) } : {}),
      ...(items.length > 0 ? { items } : {}),
    });
  }
  if (
    status === 404 ||
    codes.has('NAME_UNKNOWN') ||
    codes.has('MANIFEST_UNKNOWN') ||
    codes.has('BLOB_UNKNOWN') ||
    codes.has('BLOB_UPLOAD_UNKNOWN')
  ) {
    code = 'NOT_FOUND';
    if (codes.has('NAME_UNKNOWN')) {
      message = `registry ${reg} says the repository ${JSON.stringify(ctx.repository ?? '')} does not exist${said}: check the image name`;
    } else if (ctx.kind === 'manifest' && !ctx.target?.includes(':')) {
      message = `registry ${reg} says the ${what} does not exist${said}: check the tag`;
    } else {
      message = `registry ${reg} says the ${what} does not exist${said}: check the image name and ${ctx.kind === 'manifest' ? 'digest' : 'reference'}`;
    }
    return new KimgError(code, message, details);
  }
  if (status === 401 || codes.has('UNAUTHORIZED')) {
    code = 'UNAUTHORIZED';
    message = ctx.hadCredentials
      ? `registry ${reg} rejected the credentials offered for the ${what}${said}: check the pull secret (or --creds / docker config) for host ${reg}`
      : `registry ${reg} requires authentication for the ${what}${said} and no credentials were found for host ${reg}: provide them (a pull secret, --creds or --docker-config)`;
    return new KimgError(code, message, details);
  }
  if (status === 403 || codes.has('DENIED')) {
    code = 'DENIED';
    message = `registry ${reg} denied ${ctx.action ?? 'access'}${ctx.action ? ' access' : ''} to the ${what}${said}: ${ctx.hadCredentials ? `the credentials for host ${reg} are valid but lack permission for this repository; check the pull secret grants it` : `anonymous access is not allowed; provide credentials for host ${reg}`}`;
    return new KimgError(code, message, details);
  }
  if (status >= 500 || codes.has('UNAVAILABLE')) {
    code = 'REGISTRY_UNAVAILABLE';
    message = `registry ${reg} failed ${req.method} ${url}${said}${ctx.attempts && ctx.attempts > 1 ? ` after ${ctx.attempts} attempts` : ''}: the registry is having problems; retry later`;
    return new KimgError(code, message, { ...details, retryable: true });
  }
  code = 'REGISTRY_ERROR';
  message = `registry ${reg} answered ${req.method} ${url} for the ${what} with an unexpected status${said}`;
  return new KimgError(code, message, { ...details, retryable: status === 408 });
}
