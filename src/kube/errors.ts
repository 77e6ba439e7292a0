/**
 * The one translation of Kubernetes API failures into kimg's coded errors. The API server answers
 * every failure with a `kind: Status` object (apimachinery `pkg/apis/meta/v1/types.go` `Status`,
 * `pkg/api/errors/errors.go`): `code` is the HTTP status, `reason` the machine-readable cause
 * (`Forbidden`, `NotFound`, `Expired`, `Gone`, `AlreadyExists`, `Conflict`, `Invalid`), `message` the
 * text. Watches report the same Status inside an `ERROR` event.
 *
 * Messages name the request (verb, resource, namespace, name) so an RBAC denial says which rule is
 * missing; they never hold a token: the client library's exception text (which embeds response
 * headers) is not copied, only the Status message.
 */
import { KimgError, quote, type KimgErrorCode, type KubeRequestDetails } from '../errors/index.js';

/** A request as errors name it. */
export type KubeRequest = KubeRequestDetails;

/** The parts of a `kind: Status` object kimg reads. */
export interface KubeStatus {
  code?: number;
  reason?: string;
  message?: string;
}

/** Reads a Status from a response body (string or object); undefined when it is not one. */
export function parseStatus(body: unknown): KubeStatus | undefined {
  let o: unknown = body;
  if (typeof body === 'string') {
    try {
      o = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const s = o as Record<string, unknown>;
  if (s.kind !== 'Status' && s.code === undefined) return undefined;
  return {
    ...(typeof s.code === 'number' ? { code: s.code } : {}),
    ...(typeof s.reason === 'string' ? { reason: s.reason } : {}),
    ...(typeof s.message === 'string' ? { message: s.message.slice(0, 1024) } : {}),
  };
}

function describe(req: KubeRequest): string {
  const what = req.name !== undefined ? `${req.resource} ${quote(req.name)}` : req.resource;
  const where = req.namespace !== undefined ? ` in namespace ${quote(req.namespace)}` : '';
  return `${req.verb} ${what}${where}`;
}

function codeFor(status: number, reason: string | undefined): KimgErrorCode {
  if (status === 401) return 'KUBE_UNAUTHORIZED';
  if (status === 403) return 'KUBE_FORBIDDEN';
  if (status === 404) return 'KUBE_NOT_FOUND';
  if (status === 410 || reason === 'Expired' || reason === 'Gone') return 'KUBE_GONE';
  if (status === 429 || status >= 500 || status === 0) return 'KUBE_UNAVAILABLE';
  return 'KUBE_API_ERROR';
}

/**
 * A coded error for an HTTP status and Status object answered to `req`.
 * 403 → `KUBE_FORBIDDEN` "RBAC denies get secrets "x" in namespace "y"…", 404 → `KUBE_NOT_FOUND`,
 * 410 → `KUBE_GONE`, 401 → `KUBE_UNAUTHORIZED`, 429/5xx → `KUBE_UNAVAILABLE` (retryable), others
 * `KUBE_API_ERROR`.
 */
export function kubeStatusError(
  status: number,
  body: KubeStatus | undefined,
  req: KubeRequest,
  cause?: unknown,
): KimgError {
  const code = codeFor(status, body?.reason);
  const server = body?.message !== undefined ? ` (API server: ${body.message})` : '';
  const kube: KubeRequestDetails = { ...req, ...(body?.reason !== undefined ? { reason: body.reason } : {}) };
  let message: string;
  switch (code) {
    case 'KUBE_FORBIDDEN':
      message = `RBAC denies ${describe(req)}: grant verb ${quote(req.verb)} on resource ${quote(req.resource)} to this client's identity${server}`;
      break;
    case 'KUBE_NOT_FOUND':
      message = `${req.resource} ${quote(req.name ?? '')} not found${req.namespace !== undefined ? ` in namespace ${quote(req.namespace)}` : ''}${server}`;
      break;
    case 'KUBE_UNAUTHORIZED':
      message = `the API server did not accept the client credentials for ${describe(req)} (401): check the kubeconfig user or the service account token`;
      break;
    case 'KUBE_GONE':
      message = `${describe(req)}: the resource version is too old (410)${server}; relist`;
      break;
    case 'KUBE_UNAVAILABLE':
      message = `${describe(req)}: the API server answered ${status}${server}`;
      break;
    default:
      message = `${describe(req)} failed with ${status}${body?.reason !== undefined ? ` ${body.reason}` : ''}${server}`;
  }
  return new KimgError(code, message, {
    status,
    kube,
    retryable: code === 'KUBE_UNAVAILABLE' || code === 'KUBE_GONE',
    ...(cause !== undefined ? { cause: stripCause(cause) } : {}),
  });
}

/** The client library's ApiException text embeds response headers; keep only code and body as cause. */
function stripCause(e: unknown): unknown {
  if (typeof e === 'object' && e !== null && 'code' in e && 'body' in e) {
    return { code: (e as { code: unknown }).code };
  }
  return e;
}

/**
 * Translates anything the client library throws for `req` (an `ApiException` with `code` and a Status
 * body, a watch error with `statusCode`, a network error) into a coded KimgError. KimgErrors pass
 * through; an abort becomes `ABORTED`.
 */
export function toKubeError(e: unknown, req: KubeRequest, server: string): KimgError {
  if (e instanceof KimgError) return e;
  if (e instanceof Error && e.name === 'AbortError') {
    return new KimgError('ABORTED', `${describe(req)}: cancelled`, { cause: e, kube: req });
  }
  const o = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
  const status =
    typeof o.code === 'number' && o.code >= 100 && o.code < 600
      ? o.code
      : typeof o.statusCode === 'number'
        ? o.statusCode
        : undefined;
  if (status !== undefined) return kubeStatusError(status, parseStatus(o.body), req, e);
  const sys = typeof o.code === 'string' ? o.code : typeof o.errno === 'string' ? o.errno : undefined;
  const text = e instanceof Error ? e.message.split('\n')[0]!.slice(0, 300) : String(e);
  const tls = sys !== undefined && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(sys);
  return new KimgError(
    'KUBE_UNAVAILABLE',
    `${describe(req)}: cannot reach the API server ${server}${tls ? ' (TLS: the server certificate is not trusted by the kubeconfig CA)' : ''}: ${text}`,
    { url: server, kube: req, retryable: true, cause: e },
  );
}
