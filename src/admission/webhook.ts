/**
 * A mutating admission webhook speaking `admission.k8s.io/v1` `AdmissionReview`: the JSON a
 * kube-apiserver POSTs to a `MutatingWebhookConfiguration`'s endpoint, answered with a base64 JSON
 * Patch. It applies the two admission behaviours of the Images concept page:
 *
 * - **AlwaysPullImages** ("Required image pull"): `imagePullPolicy: Always` on every container, with
 *   the built-in plugin's exact scope (CREATE and UPDATE of core `pods`, no subresource, UPDATEs only
 *   when they add an image; a `pods` object that is not a Pod is a BadRequest). It runs first, on the
 *   object as received, as the built-in plugin runs before webhooks in the API server.
 * - **Digest pinning** ("Image pull operations", third-party admission controllers): every tag of a
 *   Pod or pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, PodTemplate,
 *   ReplicationController) resolved to its digest at the registry and written as `name:tag@digest`.
 *   CREATE and UPDATE without subresource; on UPDATE, images the old object already had are left
 *   alone. When resolution fails the policy decides: `Fail` denies with the per-image reasons,
 *   `Ignore` admits without pinning (AlwaysPullImages still applies: it needs no registry).
 *
 * `dryRun` requests get the same answer, but nothing is remembered: the resolution cache is read,
 * never written (webhooks must have no side effects on dry runs). Namespaces listed in
 * `excludeNamespaces` are admitted unchanged.
 *
 * Sources: kubernetes `staging/src/k8s.io/api/admission/v1/types.go` (AdmissionReview, PatchType
 * `JSONPatch`), `plugin/pkg/admission/alwayspullimages/admission.go`, RFC 6902.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KimgError, isKimgError, quote, toKimgError } from '../errors/index.js';
import { alwaysPullImagesAdmit, type AdmissionRequest } from '../manager/index.js';
import { findImageSlots, pinObjects, type ImageResolver } from './pin.js';
import type { AdmissionPolicy } from './policy.js';

/** The `admission.k8s.io/v1` API version this webhook speaks. */
export const ADMISSION_REVIEW_API_VERSION = 'admission.k8s.io/v1';

/** The request half of an AdmissionReview (the fields kimg reads). */
export interface AdmissionReviewRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  resource: { group?: string; version?: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: string;
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
  [key: string]: unknown;
}

/** One JSON Patch operation of a webhook answer. */
export interface AdmissionPatchOperation {
  op: 'add' | 'replace';
  path: string;
  value: string;
}

/** The response half of an AdmissionReview. */
export interface AdmissionReviewResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason?: string; message: string };
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch document. */
  patch?: string;
  warnings?: string[];
}

/** An AdmissionReview document. */
export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionReviewRequest;
  response?: AdmissionReviewResponse;
}

/** What happened to one request (for logs and tests; never holds a credential). */
export interface AdmissionOutcome {
  uid: string;
  operation: string;
  resource: string;
  namespace: string;
  name: string;
  dryRun: boolean;
  allowed: boolean;
  /** The decoded patch sent. */
  patch: AdmissionPatchOperation[];
  /** Set when denied or when pinning failed under `Ignore`. */
  message?: string;
  /** Why nothing was done, when nothing was. */
  skipped?: 'namespace' | 'operation' | 'subresource' | 'resource';
}

/** Options of {@link handleAdmissionReview}. */
export interface AdmissionHandlerOptions {
  policy: AdmissionPolicy;
  resolve: ImageResolver;
  signal?: AbortSignal;
  /** Called once per handled request. */
  onOutcome?: (outcome: AdmissionOutcome) => void;
}

/** The workload resources whose pod templates are pinned, by `group/resource`. */
export const PINNED_RESOURCES: Readonly<Record<string, string>> = Object.freeze({
  '/pods': 'Pod',
  '/podtemplates': 'PodTemplate',
  '/replicationcontrollers': 'ReplicationController',
  'apps/deployments': 'Deployment',
  'apps/statefulsets': 'StatefulSet',
  'apps/daemonsets': 'DaemonSet',
  'apps/replicasets': 'ReplicaSet',
  'batch/jobs': 'Job',
  'batch/cronjobs': 'CronJob',
});

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const MAX_MESSAGE = 4000;

function invalid(message: string): KimgError {
  return new KimgError('INVALID_ARGUMENT', `invalid AdmissionReview: ${message}`);
}

function validateReview(review: unknown): AdmissionReviewRequest {
  if (!isObj(review)) throw invalid('the body must be a JSON object');
  if (review['apiVersion'] !== ADMISSION_REVIEW_API_VERSION || review['kind'] !== 'AdmissionReview') {
    throw invalid(
      `apiVersion/kind must be ${ADMISSION_REVIEW_API_VERSION}/AdmissionReview, got ${quote(String(review['apiVersion']), 60)}/${quote(String(review['kind']), 60)} (set admissionReviewVersions: ["v1"])`,
    );
  }
  const req = review['request'];
  if (!isObj(req)) throw invalid('request is missing');
  if (typeof req['uid'] !== 'string' || req['uid'] === '') throw invalid('request.uid is missing');
  if (typeof req['operation'] !== 'string') throw invalid('request.operation is missing');
  const res = req['resource'];
  if (!isObj(res) || typeof res['resource'] !== 'string') throw invalid('request.resource is missing');
  return req as AdmissionReviewRequest;
}

function imagesOf(obj: unknown, kind: string): Set<string> {
  const out = new Set<string>();
  for (const s of findImageSlots(obj, 0, kind)) if (typeof s.image === 'string') out.add(s.image);
  return out;
}

/**
 * Answers one AdmissionReview: `{apiVersion, kind, response: {uid, allowed, patchType?, patch?,
 * status?, warnings?}}`. Pure apart from the injected resolver.
 * @throws KimgError `INVALID_ARGUMENT` when `review` is not an `admission.k8s.io/v1` AdmissionReview
 *   with a request (the server answers HTTP 400). Resolution failures never throw: they follow
 *   `policy.failurePolicy`.
 */
export async function handleAdmissionReview(
  review: unknown,
  options: AdmissionHandlerOptions,
): Promise<AdmissionReview> {
  const req = validateReview(review);
  const { policy } = options;
  const group = req.resource.group ?? '';
  const subResource = req.subResource ?? '';
  const dryRun = req.dryRun === true;
  const outcome: AdmissionOutcome = {
    uid: req.uid,
    operation: req.operation,
    resource: `${group === '' ? '' : group + '/'}${req.resource.resource}${subResource === '' ? '' : '/' + subResource}`,
    namespace: typeof req.namespace === 'string' ? req.namespace : '',
    name: typeof req.name === 'string' ? req.name : '',
    dryRun,
    allowed: true,
    patch: [],
  };
  const answer = (response: Omit<AdmissionReviewResponse, 'uid'>): AdmissionReview => {
    outcome.allowed = response.allowed;
    options.onOutcome?.(outcome);
    return {
      apiVersion: ADMISSION_REVIEW_API_VERSION,
      kind: 'AdmissionReview',
      response: { uid: req.uid, ...response },
    };
  };
  if (outcome.namespace !== '' && policy.excludeNamespaces.includes(outcome.namespace)) {
    outcome.skipped = 'namespace';
    return answer({ allowed: true });
  }
  const ops: AdmissionPatchOperation[] = [];
  let object = req.object;
  if (policy.alwaysPullImages) {
    const r = alwaysPullImagesAdmit(req as unknown as AdmissionRequest);
    if (!r.allowed) {
      outcome.message = r.message;
      return answer({ allowed: false, status: { code: r.status, reason: r.reason, message: r.message } });
    }
    if (r.patch !== undefined && r.object !== undefined) {
      ops.push(...r.patch);
      object = r.object;
    }
  }
  const warnings: string[] = [];
  const kind = PINNED_RESOURCES[`${group}/${req.resource.resource}`];
  if (!policy.pinDigests) {
    // nothing more to do
  } else if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') {
    outcome.skipped = 'operation';
  } else if (subResource !== '') {
    outcome.skipped = 'subresource';
  } else if (kind === undefined || !isObj(object)) {
    outcome.skipped = 'resource';
  } else {
    const skipImages = req.operation === 'UPDATE' ? imagesOf(req.oldObject, kind) : new Set<string>();
    const pinned = await pinObjects(
      [object],
      {
        resolve: options.resolve,
        dropTag: policy.dropTag,
        verifyPinned: false,
        skipImages,
        // Any failure decides the answer (refused, or left unpinned): stop there.
        stopOnFirstError: true,
        resolveOptions: { dryRun, signal: options.signal },
      },
      [kind],
    );
    if (pinned.errors.length > 0) {
      const list = pinned.errors.map((e) => `${e.field} ${quote(e.image, 300)}: ${e.message}`).join('; ');
      let message = `kimg: cannot pin images to digests: ${list}`;
      if (message.length > MAX_MESSAGE) message = message.slice(0, MAX_MESSAGE) + '…';
      outcome.message = message;
      if (policy.failurePolicy === 'Fail') {
        outcome.patch = [];
        return answer({ allowed: false, status: { code: 403, reason: 'Forbidden', message } });
      }
      warnings.push(`images were not pinned to digests (failurePolicy Ignore): ${message}`.slice(0, 500));
    } else {
      for (const c of pinned.changes) ops.push({ op: 'replace', path: c.pointer, value: c.to });
    }
  }
  outcome.patch = ops;
  const response: Omit<AdmissionReviewResponse, 'uid'> = { allowed: true };
  if (ops.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(ops)).toString('base64');
  }
  if (warnings.length > 0) response.warnings = warnings;
  return answer(response);
}

/** Options of {@link startAdmissionServer}. */
export interface AdmissionServerOptions extends Omit<AdmissionHandlerOptions, 'signal' | 'onOutcome'> {
  /** `:8443` (all interfaces), `127.0.0.1:0`, `[::1]:8443` or a port. Default `:8443`. */
  listen?: string;
  /** PEM certificate chain and key for TLS. */
  tlsCert: string | Buffer;
  tlsKey: string | Buffer;
  /** One line per request and per failure; never holds a credential. */
  log?: (line: string) => void;
  /** Largest request body accepted. Default 8 MiB (an object and its old copy, each up to ~3 MiB). */
  maxBodyBytes?: number;
}

/** A running webhook server. */
export interface AdmissionServer {
  /** `https://host:port` (the bound port). */
  url: string;
  port: number;
  /** Stops listening and closes connections. Idempotent. */
  close(): Promise<void>;
}

/** Default listen address (the conventional webhook port). */
export const DEFAULT_ADMISSION_LISTEN = ':8443';

/**
 * Parses a listen address.
 * @throws KimgError `USAGE` for a malformed address or port.
 */
export function parseListenAddress(listen: string): { host: string | undefined; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]*):)?(\d+)$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new KimgError(
      'USAGE',
      `listen address ${quote(listen)} is not valid: use :8443, 0.0.0.0:8443, 127.0.0.1:0 or [::1]:8443`,
      { input: listen },
    );
  }
  const raw = m[1];
  const host = raw === undefined || raw === '' ? undefined : raw.replace(/^\[|\]$/g, '');
  return { host, port };
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Past the cap the rest is read and dropped, so the 413 answer can still be sent.
      if (size <= max) chunks.push(c);
    });
    req.on('end', () => resolve(size > max ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function describeOutcome(o: AdmissionOutcome): string {
  const who = `${o.namespace === '' ? '' : o.namespace + '/'}${o.name}`;
  const parts = [
    `admission uid=${o.uid} ${o.operation} ${o.resource} ${who || '-'}:`,
    o.allowed ? 'allowed' : 'denied',
    `patch=${o.patch.length}`,
  ];
  if (o.dryRun) parts.push('dryRun');
  if (o.skipped !== undefined) parts.push(`skipped=${o.skipped}`);
  if (o.message !== undefined) parts.push(`(${o.message})`);
  return parts.join(' ');
}

/**
 * Starts the HTTPS webhook. `POST` (any path; `/mutate` by convention) takes an AdmissionReview and
 * answers one; `GET /healthz` and `/readyz` answer `ok`. A body that is not an `admission.k8s.io/v1`
 * AdmissionReview gets HTTP 400 with the reason.
 * @throws KimgError `USAGE` for a bad listen address, `CONFIG_INVALID` when the certificate or key is
 *   unusable or the address cannot be bound.
 */
export async function startAdmissionServer(options: AdmissionServerOptions): Promise<AdmissionServer> {
  const { host, port } = parseListenAddress(options.listen ?? DEFAULT_ADMISSION_LISTEN);
  const log = options.log ?? (() => undefined);
  const maxBody = options.maxBodyBytes ?? 8 * 1024 * 1024;
  const closing = new AbortController();
  let server: Server;
  try {
    server = createServer({ cert: options.tlsCert, key: options.tlsKey });
  } catch (e) {
    throw new KimgError(
      'CONFIG_INVALID',
      `the webhook TLS certificate or key cannot be used: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const send = (res: ServerResponse, status: number, body: string, type = 'application/json'): void => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && (path === '/healthz' || path === '/readyz')) {
        send(res, 200, 'ok\n', 'text/plain');
        return;
      }
      if (req.method !== 'POST') {
        send(res, 405, JSON.stringify({ error: 'POST an admission.k8s.io/v1 AdmissionReview' }));
        return;
      }
      const body = await readBody(req, maxBody);
      if (body === undefined) {
        send(res, 413, JSON.stringify({ error: `request body larger than ${maxBody} bytes` }));
        return;
      }
      let review: unknown;
      try {
        review = JSON.parse(body.toString('utf8'));
      } catch {
        log('admission: request body is not JSON');
        send(res, 400, JSON.stringify({ error: 'request body is not JSON' }));
        return;
      }
      try {
        const answer = await handleAdmissionReview(review, {
          policy: options.policy,
          resolve: options.resolve,
          signal: closing.signal,
          onOutcome: (o) => log(describeOutcome(o)),
        });
        send(res, 200, JSON.stringify(answer));
      } catch (e) {
        const err = isKimgError(e) ? e : toKimgError(e, 'admission');
        log(`admission: ${err.code}: ${err.message}`);
        send(res, err.code === 'INVALID_ARGUMENT' ? 400 : 500, JSON.stringify({ error: err.message }));
      }
    })().catch((e: unknown) => {
      log(`admission: ${toKimgError(e).message}`);
      if (!res.headersSent) send(res, 500, JSON.stringify({ error: 'internal error' }));
    });
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      reject(
        new KimgError(
          'CONFIG_INVALID',
          `cannot listen on ${quote(options.listen ?? DEFAULT_ADMISSION_LISTEN)}: ${e.code ?? e.message}`,
          { cause: e },
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr !== null ? addr.port : port;
  const shownHost = host === undefined ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  let closed: Promise<void> | undefined;
  return {
    url: `https://${shownHost}:${boundPort}`,
    port: boundPort,
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
