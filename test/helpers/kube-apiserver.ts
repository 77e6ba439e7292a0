/**
 * A Kubernetes API server double: the suite's only stand-in for a real component. No kube-apiserver
 * binary is installable on this machine (neither Debian nor npm ships one), so cluster mode is tested
 * against this in-process HTTPS server. It implements exactly the part of the API that kimg's client
 * (`@kubernetes/client-node`) uses, following the API conventions
 * (kubernetes `staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go`, `pkg/api/errors`,
 * the "API Concepts" page: efficient detection of changes, resource versions, watch bookmarks):
 *
 * - HTTPS on `127.0.0.1:0` with a throw-away CA (`makeTlsFiles`), `Authorization: Bearer <token>`;
 *   an unknown or missing token → `401 Unauthorized`;
 * - RBAC per token: rules `{verbs, apiGroups, resources, namespaces?, resourceNames?}`; a denial →
 *   `403` with the authorizer's message (`secrets "x" is forbidden: User "u" cannot get resource
 *   "secrets" in API group "" in the namespace "ns"`);
 * - one global resource version (etcd's revision): every write bumps it, objects carry it in
 *   `metadata.resourceVersion`, lists carry the current one;
 * - list (`GET` collection) with `fieldSelector` (`metadata.name`, `metadata.namespace`, and per kind
 *   `spec.nodeName`, `status.phase`, `type`, `involvedObject.*`; others → `400 BadRequest`
 *   "field label not supported") and `labelSelector` (equality and set-based);
 * - watch (`?watch=true`): newline-delimited `{"type","object"}` events; from `resourceVersion` R it
 *   replays the history after R, from none or `"0"` it starts with synthetic `ADDED` events of the
 *   current state; a compacted R gets a `200` stream with one `ERROR` event holding a `410 Expired`
 *   Status ("too old resource version"), as the real server does; with selectors an object that
 *   stops matching is sent as `DELETED` and one that starts matching as `ADDED` (live and in a
 *   replay, as the API server's watch filter); `allowWatchBookmarks=true` adds `BOOKMARK` events
 *   (object with only `kind`, `apiVersion`, `metadata.resourceVersion`, no annotations);
 *   `sendInitialEvents=true` (with `resourceVersionMatch=NotOlderThan` and bookmarks, else `422`)
 *   sends the current state as `ADDED` events, then the one bookmark annotated
 *   `k8s.io/initial-events-end: "true"`; `timeoutSeconds` ends the stream cleanly;
 * - get, create (`POST`, `409 AlreadyExists`), merge / strategic-merge / JSON patch (`PATCH`), update
 *   (`PUT`), delete; every error is a `kind: Status` object with `reason`, `code` and `details`;
 * - the `token` subresource of ServiceAccounts (TokenRequest, `POST .../serviceaccounts/NAME/token`,
 *   RBAC verb `create` on resource `serviceaccounts/token`; kubernetes
 *   `pkg/registry/core/serviceaccount/storage/token.go`): `404` for a missing ServiceAccount or bound
 *   pod, `409 Conflict` for a bound pod whose uid differs, `400` for a pod of another ServiceAccount,
 *   `422` for `expirationSeconds` under 600; `expirationSeconds` defaults to 3600 and is capped by
 *   the `maxTokenExpirationSeconds` option (the server's `--service-account-max-token-expiration`).
 *   The token is a JWT-shaped string (unsigned) whose payload records the audiences, the
 *   ServiceAccount and the bound pod; `tokenRequests()` lists the requests without their tokens;
 * - a request log (method, verb, resource, namespace, name, query, user, status) read with
 *   `requests()`; tokens are never in it.
 *
 * Not implemented (kimg does not use them): pagination (`limit`/`continue`), `resourceVersionMatch`,
 * server-side apply, subresources other than `serviceaccounts/token`, admission and validation beyond
 * names, protobuf.
 * Test levers the real server does not have: `compact()` (expire old resource versions now),
 * `breakWatches()` (cut every watch stream mid-flight), `bookmark()` (send a bookmark now).
 */
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import fastJsonPatch from 'fast-json-patch';
import { makeTlsFiles } from './certs.js';
import { makeTempDir, removeTempDir } from './tmp.js';

/** One RBAC rule (rbac.authorization.k8s.io/v1 PolicyRule, plus an optional namespace restriction). */
export interface KubeRule {
  verbs: string[];
  /** `''` is the core group; `'*'` any. */
  apiGroups: string[];
  resources: string[];
  /** Only these object names (get/patch/update/delete by name; never list/watch/create). */
  resourceNames?: string[];
  /** Only in these namespaces (a RoleBinding); unset = cluster-wide (a ClusterRoleBinding). */
  namespaces?: string[];
}

/** A user of the double: who a bearer token authenticates as, and what it may do. */
export interface KubeUser {
  name: string;
  rules: KubeRule[];
}

/** Every verb on everything. */
export const ALLOW_ALL: KubeRule[] = [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }];

/** One request as the double saw it. */
export interface KubeRequest {
  method: string;
  path: string;
  /** The RBAC verb (`get`, `list`, `watch`, `create`, `patch`, `update`, `delete`), '' for non-resource URLs. */
  verb: string;
  apiGroup: string;
  resource: string;
  namespace?: string;
  name?: string;
  query: Record<string, string>;
  /** The authenticated user ('' when unauthenticated). */
  user: string;
  status: number;
  at: number;
}

/** One change of the store, as the watch cache keeps it. */
interface HistoryEntry {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  key: string;
  resource: ResourceInfo;
  /** The object after the change (for `DELETED`: its last state, with the deletion's resource version). */
  object: KubeObj;
  /** `MODIFIED`: the object before the change (a selector may have matched it and no longer, or the reverse). */
  prev?: KubeObj;
}

type WatchEventType = HistoryEntry['type'];

/**
 * What a watch with selector `matches` is sent for one change, as the API server's watch filter
 * decides (kubernetes `staging/src/k8s.io/apiserver/pkg/storage/cacher/cache_watcher.go`
 * `convertToWatchEvent`): a change of an object that matches before and after is `MODIFIED`; one that
 * starts matching is `ADDED`; one that stops matching is `DELETED` (its last matching state, with the
 * change's resource version), so a client's cache drops it; a change the watcher never saw match is
 * not sent.
 */
function watchEventFor(
  h: HistoryEntry,
  matches: (o: KubeObj) => boolean,
): { type: WatchEventType; object: KubeObj } | undefined {
  if (h.type === 'ADDED') return matches(h.object) ? { type: 'ADDED', object: h.object } : undefined;
  if (h.type === 'DELETED') return matches(h.object) ? { type: 'DELETED', object: h.object } : undefined;
  const now = matches(h.object);
  const before = h.prev !== undefined && matches(h.prev);
  if (now) return { type: before ? 'MODIFIED' : 'ADDED', object: h.object };
  if (!before) return undefined;
  const prev = h.prev!;
  return {
    type: 'DELETED',
    object: { ...prev, metadata: { ...prev.metadata, resourceVersion: h.object.metadata.resourceVersion } },
  };
}

type KubeObj = Record<string, unknown> & {
  metadata: Record<string, unknown> & { name: string; namespace?: string; resourceVersion?: string };
};

interface ResourceInfo {
  group: string;
  version: string;
  resource: string;
  kind: string;
  namespaced: boolean;
  /** Field selector labels beyond `metadata.name` / `metadata.namespace`. */
  fields: Record<string, (o: KubeObj) => string>;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const get = (o: unknown, ...path: string[]): unknown => {
  let cur = o;
  for (const p of path)
    cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[p] : undefined;
  return cur;
};

/** The resources the double serves. */
const RESOURCES: ResourceInfo[] = [
  {
    group: '',
    version: 'v1',
    resource: 'pods',
    kind: 'Pod',
    namespaced: true,
    fields: {
      'spec.nodeName': (o) => str(get(o, 'spec', 'nodeName')),
      'spec.restartPolicy': (o) => str(get(o, 'spec', 'restartPolicy')),
      'spec.schedulerName': (o) => str(get(o, 'spec', 'schedulerName')),
      'spec.serviceAccountName': (o) => str(get(o, 'spec', 'serviceAccountName')),
      'status.phase': (o) => str(get(o, 'status', 'phase')),
      'status.podIP': (o) => str(get(o, 'status', 'podIP')),
    },
  },
  {
    group: '',
    version: 'v1',
    resource: 'secrets',
    kind: 'Secret',
    namespaced: true,
    fields: { type: (o) => str(o.type) },
  },
  {
    group: '',
    version: 'v1',
    resource: 'serviceaccounts',
    kind: 'ServiceAccount',
    namespaced: true,
    fields: {},
  },
  {
    group: '',
    version: 'v1',
    resource: 'nodes',
    kind: 'Node',
    namespaced: false,
    fields: { 'spec.unschedulable': (o) => String(get(o, 'spec', 'unschedulable') === true) },
  },
  {
    group: '',
    version: 'v1',
    resource: 'namespaces',
    kind: 'Namespace',
    namespaced: false,
    fields: { 'status.phase': (o) => str(get(o, 'status', 'phase')) },
  },
  {
    group: '',
    version: 'v1',
    resource: 'events',
    kind: 'Event',
    namespaced: true,
    fields: {
      'involvedObject.kind': (o) => str(get(o, 'involvedObject', 'kind')),
      'involvedObject.name': (o) => str(get(o, 'involvedObject', 'name')),
      'involvedObject.uid': (o) => str(get(o, 'involvedObject', 'uid')),
      reason: (o) => str(o.reason),
      type: (o) => str(o.type),
    },
  },
  { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true, fields: {} },
  { group: 'apps', version: 'v1', resource: 'replicasets', kind: 'ReplicaSet', namespaced: true, fields: {} },
  {
    group: 'events.k8s.io',
    version: 'v1',
    resource: 'events',
    kind: 'Event',
    namespaced: true,
    fields: {
      'regarding.kind': (o) => str(get(o, 'regarding', 'kind')),
      'regarding.name': (o) => str(get(o, 'regarding', 'name')),
      'regarding.uid': (o) => str(get(o, 'regarding', 'uid')),
      reason: (o) => str(o.reason),
      type: (o) => str(o.type),
      reportingController: (o) => str(o.reportingController),
    },
  },
];

/** How to address an object in `create`/`update`/`remove`. */
export interface KubeObjectRef {
  /** `v1`, `apps/v1`, `events.k8s.io/v1`. Default from the object. */
  apiVersion?: string;
  /** Plural resource (`pods`); default from the object's kind. */
  resource?: string;
}

/** Options of {@link startKubeApiServer}. */
export interface KubeApiServerOptions {
  /** Bearer token → user. Default: one token `admin-token` for user `admin` with {@link ALLOW_ALL}. */
  users?: Record<string, KubeUser>;
  /** Send a BOOKMARK on every watch that asked for them this often (ms); 0 = only on `bookmark()`. Default 0. */
  bookmarkIntervalMs?: number;
  /** Keep this many history entries; older resource versions are expired (`410`). Default 10 000. */
  historyLimit?: number;
  /** TokenRequests get at most this lifetime (the API server may shorten it). Default none. */
  maxTokenExpirationSeconds?: number;
}

/** A TokenRequest the double answered (never its token). */
export interface KubeTokenRequest {
  namespace: string;
  serviceAccount: string;
  audiences: string[];
  /** The granted lifetime. */
  expirationSeconds: number;
  boundPod?: { name: string; uid: string };
  user: string;
}

/** What the double's tokens hold (their JWT payload), for tests that decode one. */
export interface KubeTokenClaims {
  aud: string[];
  sub: string;
  iat: number;
  exp: number;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: { name: string; uid: string };
    pod?: { name: string; uid: string };
  };
}

/** Decodes a token of the double (its payload); undefined for anything else. */
export function decodeKubeToken(token: string): KubeTokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    return JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as KubeTokenClaims;
  } catch {
    return undefined;
  }
}

/** A running double. */
export interface KubeApiServer {
  /** `https://127.0.0.1:PORT`. */
  readonly url: string;
  /** PEM file of the CA that signed the server certificate. */
  readonly caFile: string;
  /** The current (latest) resource version. */
  resourceVersion(): string;
  /** Writes a kubeconfig for `token` (context `kimg-test`, optional namespace) and returns its path. */
  writeKubeconfig(
    token: string,
    options?: { namespace?: string; file?: string; context?: string },
  ): Promise<string>;
  /** Adds or replaces a user (a bearer token). */
  setUser(token: string, user: KubeUser): void;
  /** Creates an object (as a client's POST would, without auth). Returns the stored object. */
  create(object: Record<string, unknown>, ref?: KubeObjectRef): Record<string, unknown>;
  /** Replaces an object (bumps its resourceVersion). */
  update(object: Record<string, unknown>, ref?: KubeObjectRef): Record<string, unknown>;
  /** Deletes an object; false when it did not exist. */
  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean;
  /** The stored object, or undefined. */
  object(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
  ): Record<string, unknown> | undefined;
  /** Every stored object of a kind (optionally in one namespace). */
  objects(apiVersion: string, kind: string, namespace?: string): Record<string, unknown>[];
  /** The request log, oldest first. */
  requests(): KubeRequest[];
  /** The TokenRequests answered, oldest first (without tokens). */
  tokenRequests(): KubeTokenRequest[];
  /** Clears the request log. */
  clearRequests(): void;
  /** Expires every resource version before the current one: watches from older ones get `410`. */
  compact(): void;
  /** Cuts every open watch stream (socket destroyed mid-stream, no final chunk). Returns how many. */
  breakWatches(): number;
  /** Sends a BOOKMARK now on every watch that allows them. */
  bookmark(): void;
  /** Number of open watch streams. */
  openWatches(): number;
  close(): Promise<void>;
}

interface OpenWatch {
  res: ServerResponse;
  socket: Socket;
  resource: ResourceInfo;
  namespace: string | undefined;
  matches: (o: KubeObj) => boolean;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

function statusObject(e: HttpError): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: e.message,
    reason: e.reason,
    ...(e.details !== undefined ? { details: e.details } : {}),
    code: e.code,
  };
}

function groupedName(r: ResourceInfo): string {
  return r.group === '' ? r.resource : `${r.resource}.${r.group}`;
}

function notFound(r: ResourceInfo, name: string): HttpError {
  return new HttpError(404, 'NotFound', `${groupedName(r)} "${name}" not found`, {
    name,
    ...(r.group !== '' ? { group: r.group } : {}),
    kind: r.resource,
  });
}

// --- selectors ------------------------------------------------------------------------------------

type FieldReq = { field: string; op: '=' | '!='; value: string };

function parseFieldSelector(sel: string, r: ResourceInfo): FieldReq[] {
  const out: FieldReq[] = [];
  for (const part of sel.split(',')) {
    if (part.trim() === '') continue;
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(part.trim());
    if (m === null)
      throw new HttpError(400, 'BadRequest', `invalid selector: '${sel}'; can't understand '${part}'`);
    const field = m[1]!.trim();
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && r.fields[field] === undefined) {
      throw new HttpError(
        400,
        'BadRequest',
        `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`,
      );
    }
    out.push({ field, op: m[2] === '!=' ? '!=' : '=', value: m[3]!.trim() });
  }
  return out;
}

function fieldValue(o: KubeObj, field: string, r: ResourceInfo): string {
  if (field === 'metadata.name') return o.metadata.name;
  if (field === 'metadata.namespace') return str(o.metadata.namespace);
  return r.fields[field]!(o);
}

type LabelReq =
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!exists' };

function parseLabelSelector(sel: string): LabelReq[] {
  const out: LabelReq[] = [];
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of sel) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts) {
    const p = raw.trim();
    if (p === '') continue;
    let m = /^([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(p);
    if (m !== null) {
      out.push({ key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()) });
      continue;
    }
    m = /^([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$/.exec(p);
    if (m !== null) {
      out.push({ key: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]! });
      continue;
    }
    m = /^(!?)([A-Za-z0-9./_-]+)$/.exec(p);
    if (m !== null) {
      out.push({ key: m[2]!, op: m[1] === '!' ? '!exists' : 'exists' });
      continue;
    }
    throw new HttpError(400, 'BadRequest', `unable to parse requirement: invalid label selector "${sel}"`);
  }
  return out;
}

function labelsMatch(o: KubeObj, reqs: LabelReq[]): boolean {
  const labels = (o.metadata.labels ?? {}) as Record<string, string>;
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = labels[r.key];
    switch (r.op) {
      case '=':
        return has && v === r.value;
      case '!=':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v!);
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'exists':
        return has;
      case '!exists':
        return !has;
    }
  });
}

// --- RBAC ----------------------------------------------------------------------------------------

function allowed(
  user: KubeUser,
  verb: string,
  group: string,
  resource: string,
  namespace: string | undefined,
  name: string | undefined,
): boolean {
  return user.rules.some(
    (r) =>
      (r.verbs.includes('*') || r.verbs.includes(verb)) &&
      (r.apiGroups.includes('*') || r.apiGroups.includes(group)) &&
      (r.resources.includes('*') || r.resources.includes(resource)) &&
      (r.resourceNames === undefined || (name !== undefined && r.resourceNames.includes(name))) &&
      (r.namespaces === undefined || (namespace !== undefined && r.namespaces.includes(namespace))),
  );
}

function forbidden(
  user: string,
  verb: string,
  r: ResourceInfo,
  namespace: string | undefined,
  name: string | undefined,
  subresource?: string,
): HttpError {
  const what = name !== undefined ? `${groupedName(r)} "${name}"` : groupedName(r);
  const scope = namespace !== undefined ? `in the namespace "${namespace}"` : 'at the cluster scope';
  const resource = subresource !== undefined ? `${r.resource}/${subresource}` : r.resource;
  return new HttpError(
    403,
    'Forbidden',
    `${what} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${r.group}" ${scope}`,
    {
      ...(name !== undefined ? { name } : {}),
      ...(r.group !== '' ? { group: r.group } : {}),
      kind: r.resource,
    },
  );
}

// --- validation (events.k8s.io/v1: pkg/apis/core/validation/events.go ValidateEventCreate) ----------

const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

function validateEvent(o: Record<string, unknown>): void {
  const errs: string[] = [];
  const eventTime = o.eventTime;
  if (typeof eventTime !== 'string' || eventTime === '') errs.push('eventTime: Required value');
  else if (!MICRO_TIME.test(eventTime)) {
    // The JSON decoder rejects a MicroTime that is not RFC 3339 with microseconds.
    throw new HttpError(
      400,
      'BadRequest',
      `Event in version "v1" cannot be handled as a Event: parsing time "${eventTime}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse`,
    );
  }
  for (const f of ['reportingController', 'reportingInstance', 'action', 'reason']) {
    const v = o[f];
    if (typeof v !== 'string' || v === '') errs.push(`${f}: Required value`);
    else if (v.length > 128) errs.push(`${f}: Too long: may not be more than 128 bytes`);
  }
  if (typeof o.note === 'string' && Buffer.byteLength(o.note) > 1024)
    errs.push('note: Too long: may not be more than 1024 bytes');
  if (o.type !== 'Normal' && o.type !== 'Warning')
    errs.push(`type: Unsupported value: ${JSON.stringify(o.type)}: supported values: "Normal", "Warning"`);
  const reg = get(o, 'regarding');
  if (typeof reg !== 'object' || reg === null) errs.push('regarding: Required value');
  const series = o.series as Record<string, unknown> | undefined;
  if (series !== undefined && series !== null) {
    if (typeof series.count !== 'number' || series.count < 2)
      errs.push('series.count: Invalid value: should be at least 2');
    if (typeof series.lastObservedTime !== 'string' || !MICRO_TIME.test(series.lastObservedTime))
      errs.push('series.lastObservedTime: Required value');
  }
  if (errs.length > 0) {
    const name = str(get(o, 'metadata', 'name'));
    throw new HttpError(422, 'Invalid', `Event.events.k8s.io "${name}" is invalid: [${errs.join(', ')}]`, {
      name,
      group: 'events.k8s.io',
      kind: 'Event',
    });
  }
}

// --- patching ------------------------------------------------------------------------------------

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// --- the server ----------------------------------------------------------------------------------

/** Starts the double. Stop it with `close()`. */
export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const dir = await makeTempDir('kubeapi-');
  const tls = await makeTlsFiles(join(dir, 'tls'));
  const users = new Map<string, KubeUser>(
    Object.entries(options.users ?? { 'admin-token': { name: 'admin', rules: ALLOW_ALL } }),
  );
  const store = new Map<string, KubeObj>();
  const history: HistoryEntry[] = [];
  const historyLimit = options.historyLimit ?? 10_000;
  let rv = 1;
  /** History holds every change after this resource version. */
  let compactedAt = 1;
  const log: KubeRequest[] = [];
  const watches = new Set<OpenWatch>();
  const sockets = new Set<Socket>();

  const keyOf = (r: ResourceInfo, namespace: string | undefined, name: string): string =>
    `${r.group}/${r.resource}/${namespace ?? ''}/${name}`;
  const resourceFor = (apiVersion: string, kindOrResource: string): ResourceInfo => {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    const r = RESOURCES.find(
      (x) =>
        x.group === group &&
        x.version === version &&
        (x.kind === kindOrResource || x.resource === kindOrResource),
    );
    if (r === undefined) throw new Error(`the API double does not serve ${apiVersion} ${kindOrResource}`);
    return r;
  };
  const withTypeMeta = (r: ResourceInfo, o: KubeObj): KubeObj => ({
    ...o,
    apiVersion: r.group === '' ? r.version : `${r.group}/${r.version}`,
    kind: r.kind,
  });

  const record = (
    type: HistoryEntry['type'],
    r: ResourceInfo,
    key: string,
    o: KubeObj,
    prev?: KubeObj,
  ): void => {
    const h: HistoryEntry = {
      rv,
      type,
      key,
      resource: r,
      object: o,
      ...(prev !== undefined ? { prev } : {}),
    };
    history.push(h);
    while (history.length > historyLimit) {
      const dropped = history.shift()!;
      compactedAt = dropped.rv;
    }
    for (const w of watches) sendChange(w, h);
  };

  /** Sends one change to a watch, as its selectors see it (`watchEventFor`). */
  const sendChange = (w: OpenWatch, h: HistoryEntry): void => {
    if (h.resource !== w.resource) return;
    if (w.namespace !== undefined && h.object.metadata.namespace !== w.namespace) return;
    const ev = watchEventFor(h, w.matches);
    if (ev !== undefined) sendEvent(w, ev.type, ev.object);
  };

  const sendEvent = (w: OpenWatch, type: string, o: KubeObj): void => {
    if (!w.res.writableEnded && !w.socket.destroyed)
      w.res.write(JSON.stringify({ type, object: withTypeMeta(w.resource, o) }) + '\n');
  };
  /**
   * A BOOKMARK at the current resource version. Only the one that ends the initial events of a
   * `sendInitialEvents=true` watch carries the `k8s.io/initial-events-end: "true"` annotation; every
   * other bookmark has none (apimachinery `metav1.InitialEventsAnnotationKey`).
   */
  const sendBookmark = (w: OpenWatch, initialEventsEnd = false): void => {
    if (!w.bookmarks || w.res.writableEnded || w.socket.destroyed) return;
    const apiVersion =
      w.resource.group === '' ? w.resource.version : `${w.resource.group}/${w.resource.version}`;
    w.res.write(
      JSON.stringify({
        type: 'BOOKMARK',
        object: {
          kind: w.resource.kind,
          apiVersion,
          metadata: {
            resourceVersion: String(rv),
            ...(initialEventsEnd ? { annotations: { 'k8s.io/initial-events-end': 'true' } } : {}),
          },
        },
      }) + '\n',
    );
  };

  const storeCreate = (r: ResourceInfo, namespace: string | undefined, body: KubeObj): KubeObj => {
    const meta = { ...(body.metadata ?? {}) } as KubeObj['metadata'];
    if ((meta.name ?? '') === '' && typeof meta.generateName === 'string')
      meta.name = `${meta.generateName}${randomUUID().slice(0, 5)}`;
    if (typeof meta.name !== 'string' || meta.name === '') {
      throw new HttpError(
        422,
        'Invalid',
        `${r.kind} "" is invalid: metadata.name: Required value: name or generateName is required`,
        { kind: r.kind },
      );
    }
    if (r.namespaced) {
      const bodyNs = str(meta.namespace);
      if (bodyNs !== '' && namespace !== undefined && bodyNs !== namespace) {
        throw new HttpError(
          400,
          'BadRequest',
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      meta.namespace = namespace ?? (bodyNs === '' ? 'default' : bodyNs);
    } else delete meta.namespace;
    const key = keyOf(r, meta.namespace, meta.name);
    if (store.has(key)) {
      throw new HttpError(409, 'AlreadyExists', `${groupedName(r)} "${meta.name}" already exists`, {
        name: meta.name,
        ...(r.group !== '' ? { group: r.group } : {}),
        kind: r.resource,
      });
    }
    rv++;
    meta.uid = typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : randomUUID();
    meta.resourceVersion = String(rv);
    meta.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const { apiVersion: _a, kind: _k, ...rest } = body;
    const stored: KubeObj = { ...rest, metadata: meta };
    store.set(key, stored);
    record('ADDED', r, key, stored);
    return stored;
  };

  const storeReplace = (r: ResourceInfo, key: string, next: KubeObj): KubeObj => {
    const prev = store.get(key)!;
    rv++;
    const { apiVersion: _a, kind: _k, ...rest } = next;
    const stored: KubeObj = {
      ...rest,
      metadata: {
        ...next.metadata,
        name: prev.metadata.name,
        ...(prev.metadata.namespace !== undefined ? { namespace: prev.metadata.namespace } : {}),
        uid: prev.metadata.uid,
        creationTimestamp: prev.metadata.creationTimestamp,
        resourceVersion: String(rv),
      },
    };
    store.set(key, stored);
    record('MODIFIED', r, key, stored, prev);
    return stored;
  };

  const storeDelete = (r: ResourceInfo, key: string): KubeObj | undefined => {
    const prev = store.get(key);
    if (prev === undefined) return undefined;
    store.delete(key);
    rv++;
    const gone: KubeObj = { ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } };
    record('DELETED', r, key, gone);
    return gone;
  };

  const listOf = (
    r: ResourceInfo,
    namespace: string | undefined,
    match: (o: KubeObj) => boolean,
  ): KubeObj[] =>
    [...store.entries()]
      .filter(([k]) => k.startsWith(`${r.group}/${r.resource}/`))
      .map(([, o]) => o)
      .filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && match(o))
      .sort((a, b) =>
        `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(
          `${b.metadata.namespace ?? ''}/${b.metadata.name}`,
        ),
      );

  /** Parses `/api/v1/...` and `/apis/G/V/...` into resource coordinates. */
  const route = (
    path: string,
  ):
    | { r: ResourceInfo; namespace: string | undefined; name: string | undefined; subresource?: string }
    | undefined => {
    const seg = path
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 2) {
      group = '';
      version = seg[1]!;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 3) {
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    if (rest.length < 1 || rest.length > 3) return undefined;
    const r = RESOURCES.find((x) => x.group === group && x.version === version && x.resource === rest[0]);
    if (r === undefined) return undefined;
    if (!r.namespaced && namespace !== undefined) return undefined;
    if (rest.length === 3) {
      // The one subresource served: a ServiceAccount's token.
      if (r.resource !== 'serviceaccounts' || rest[2] !== 'token' || namespace === undefined)
        return undefined;
      return { r, namespace, name: rest[1], subresource: 'token' };
    }
    return { r, namespace, name: rest[1] };
  };

  const readBody = async (req: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > 3 * 1024 * 1024)
        throw new HttpError(413, 'RequestEntityTooLarge', 'the request body is too large');
      chunks.push(c);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new HttpError(400, 'BadRequest', 'the request body is not valid JSON');
    }
  };

  const tokenRequests: KubeTokenRequest[] = [];
  /** `POST .../serviceaccounts/NAME/token` (see the module comment). */
  const tokenRequest = async (
    req: IncomingMessage,
    user: string,
    namespace: string,
    name: string,
  ): Promise<Record<string, unknown>> => {
    const saInfo = RESOURCES.find((x) => x.resource === 'serviceaccounts')!;
    const sa = store.get(keyOf(saInfo, namespace, name));
    if (sa === undefined) throw notFound(saInfo, name);
    const body = (await readBody(req)) as Record<string, unknown>;
    if (typeof body !== 'object' || body === null)
      throw new HttpError(400, 'BadRequest', 'the request body is not an object');
    const kind = str(body.kind);
    if (kind !== '' && kind !== 'TokenRequest')
      throw new HttpError(400, 'BadRequest', `the kind ${kind} does not match TokenRequest`);
    const spec = (typeof body.spec === 'object' && body.spec !== null ? body.spec : {}) as Record<
      string,
      unknown
    >;
    const audiences = Array.isArray(spec.audiences)
      ? spec.audiences.filter((a): a is string => typeof a === 'string')
      : [];
    // The API server's own audience when none is asked for.
    if (audiences.length === 0) audiences.push('https://kubernetes.default.svc');
    const asked = typeof spec.expirationSeconds === 'number' ? spec.expirationSeconds : 3600;
    if (asked < 600)
      throw new HttpError(
        422,
        'Invalid',
        `TokenRequest.authentication.k8s.io "${name}" is invalid: spec.expirationSeconds: Invalid value: ${asked}: may not specify a duration less than 10 minutes`,
        { name, group: 'authentication.k8s.io', kind: 'TokenRequest' },
      );
    const granted = Math.min(asked, options.maxTokenExpirationSeconds ?? asked);
    let boundPod: { name: string; uid: string } | undefined;
    const ref = spec.boundObjectRef as Record<string, unknown> | undefined;
    if (ref !== undefined && ref !== null) {
      if (str(ref.kind) !== 'Pod' || str(ref.apiVersion) !== 'v1')
        throw new HttpError(400, 'BadRequest', `cannot bind token to object of type ${str(ref.kind)}`);
      const podInfo = RESOURCES.find((x) => x.resource === 'pods')!;
      const pod = store.get(keyOf(podInfo, namespace, str(ref.name)));
      if (pod === undefined) throw notFound(podInfo, str(ref.name));
      if (str(ref.uid) !== '' && str(ref.uid) !== str(pod.metadata.uid))
        throw new HttpError(
          409,
          'Conflict',
          `Operation cannot be fulfilled on Pod "${str(ref.name)}": the UID in the bound object reference (${str(ref.uid)}) does not match the UID in record. The object might have been deleted and then recreated`,
          { name: str(ref.name), kind: 'Pod' },
        );
      const podSa = str(get(pod, 'spec', 'serviceAccountName'));
      if ((podSa === '' ? 'default' : podSa) !== name)
        throw new HttpError(
          400,
          'BadRequest',
          `cannot bind token for serviceaccount "${name}" to pod running with different serviceaccount name.`,
        );
      boundPod = { name: pod.metadata.name, uid: str(pod.metadata.uid) };
    }
    const iat = Math.floor(Date.now() / 1000);
    const exp = iat + granted;
    const claims: KubeTokenClaims = {
      aud: audiences,
      sub: `system:serviceaccount:${namespace}:${name}`,
      iat,
      exp,
      'kubernetes.io': {
        namespace,
        serviceaccount: { name, uid: str(sa.metadata.uid) },
        ...(boundPod !== undefined ? { pod: boundPod } : {}),
      },
    };
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.kimg-double`;
    tokenRequests.push({
      namespace,
      serviceAccount: name,
      audiences,
      expirationSeconds: granted,
      ...(boundPod !== undefined ? { boundPod } : {}),
      user,
    });
    return {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: {
        name,
        namespace,
        creationTimestamp: new Date(iat * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
      },
      spec: {
        audiences,
        expirationSeconds: granted,
        ...(boundPod !== undefined ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', ...boundPod } } : {}),
      },
      status: { token, expirationTimestamp: new Date(exp * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, entry: KubeRequest): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://double');
    entry.path = url.pathname;
    for (const [k, v] of url.searchParams) entry.query[k] = v;
    const auth = req.headers.authorization ?? '';
    const token = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
    const user = token !== undefined ? users.get(token) : undefined;
    if (user === undefined) throw new HttpError(401, 'Unauthorized', 'Unauthorized');
    entry.user = user.name;
    if (url.pathname === '/version') {
      sendJson(res, 200, {
        major: '1',
        minor: '33',
        gitVersion: 'v1.33.0-kimg-double',
        platform: 'linux/amd64',
      });
      return;
    }
    const rt = route(url.pathname);
    if (rt === undefined)
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const { r, namespace, name } = rt;
    entry.apiGroup = r.group;
    entry.resource = r.resource;
    if (namespace !== undefined) entry.namespace = namespace;
    if (name !== undefined) entry.name = name;
    if (rt.subresource !== undefined) {
      entry.resource = `${r.resource}/${rt.subresource}`;
      if (req.method !== 'POST')
        throw new HttpError(
          405,
          'MethodNotAllowed',
          'the server does not allow this method on the requested resource',
        );
      entry.verb = 'create';
      if (!allowed(user, 'create', r.group, entry.resource, namespace, name))
        throw forbidden(user.name, 'create', r, namespace, name, rt.subresource);
      sendJson(res, 201, await tokenRequest(req, user.name, namespace!, name!));
      return;
    }
    const isWatch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const verb = (() => {
      switch (req.method) {
        case 'GET':
          return isWatch ? 'watch' : name === undefined ? 'list' : 'get';
        case 'POST':
          return 'create';
        case 'PATCH':
          return 'patch';
        case 'PUT':
          return 'update';
        case 'DELETE':
          return name === undefined ? 'deletecollection' : 'delete';
        default:
          throw new HttpError(
            405,
            'MethodNotAllowed',
            `the server does not allow this method on the requested resource`,
          );
      }
    })();
    entry.verb = verb;
    if (!allowed(user, verb, r.group, r.resource, namespace, name))
      throw forbidden(user.name, verb, r, namespace, name);

    if (verb === 'get') {
      const o = store.get(keyOf(r, namespace, name!));
      if (o === undefined) throw notFound(r, name!);
      sendJson(res, 200, withTypeMeta(r, o));
      return;
    }
    if (verb === 'list' || verb === 'watch') {
      const fields = parseFieldSelector(url.searchParams.get('fieldSelector') ?? '', r);
      const labels = parseLabelSelector(url.searchParams.get('labelSelector') ?? '');
      const matches = (o: KubeObj): boolean =>
        labelsMatch(o, labels) &&
        fields.every((f) => (fieldValue(o, f.field, r) === f.value) === (f.op === '='));
      if (verb === 'list') {
        const items = listOf(r, namespace, matches);
        sendJson(res, 200, {
          kind: `${r.kind}List`,
          apiVersion: r.group === '' ? r.version : `${r.group}/${r.version}`,
          metadata: { resourceVersion: String(rv) },
          items,
        });
        return;
      }
      startWatch(req, res, r, namespace, matches, url.searchParams);
      return;
    }
    if (verb === 'create') {
      if (name !== undefined)
        throw new HttpError(
          405,
          'MethodNotAllowed',
          'the server does not allow this method on the requested resource',
        );
      const body = (await readBody(req)) as KubeObj;
      if (typeof body !== 'object' || body === null)
        throw new HttpError(400, 'BadRequest', 'the request body is not an object');
      body.metadata ??= { name: '' };
      const kind = str(body.kind);
      if (kind !== '' && kind !== r.kind)
        throw new HttpError(400, 'BadRequest', `the kind ${kind} does not match the resource ${r.resource}`);
      if (r.group === 'events.k8s.io') validateEvent(body);
      sendJson(res, 201, withTypeMeta(r, storeCreate(r, namespace, body)));
      return;
    }
    if (name === undefined)
      throw new HttpError(
        405,
        'MethodNotAllowed',
        'the server does not allow this method on the requested resource',
      );
    const key = keyOf(r, namespace, name);
    const cur = store.get(key);
    if (cur === undefined) throw notFound(r, name);
    if (verb === 'patch') {
      const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      const patch = await readBody(req);
      let next: unknown;
      if (ct === 'application/merge-patch+json' || ct === 'application/strategic-merge-patch+json')
        next = mergePatch(cur, patch);
      else if (ct === 'application/json-patch+json') {
        try {
          next = fastJsonPatch.applyPatch(
            structuredClone(cur),
            patch as fastJsonPatch.Operation[],
            true,
            false,
          ).newDocument;
        } catch (e) {
          throw new HttpError(422, 'Invalid', `the JSON patch cannot be applied: ${(e as Error).message}`);
        }
      } else
        throw new HttpError(
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
        );
      sendJson(res, 200, withTypeMeta(r, storeReplace(r, key, next as KubeObj)));
      return;
    }
    if (verb === 'update') {
      const body = (await readBody(req)) as KubeObj;
      const want = str(get(body, 'metadata', 'resourceVersion'));
      if (want !== '' && want !== cur.metadata.resourceVersion) {
        throw new HttpError(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${groupedName(r)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
          { name, kind: r.resource },
        );
      }
      sendJson(res, 200, withTypeMeta(r, storeReplace(r, key, body)));
      return;
    }
    const gone = storeDelete(r, key)!;
    sendJson(res, 200, withTypeMeta(r, gone));
  };

  const startWatch = (
    req: IncomingMessage,
    res: ServerResponse,
    r: ResourceInfo,
    namespace: string | undefined,
    matches: (o: KubeObj) => boolean,
    q: URLSearchParams,
  ): void => {
    const from = q.get('resourceVersion') ?? '';
    const n = from === '' ? 0 : Number(from);
    if (!Number.isInteger(n) || n < 0)
      throw new HttpError(400, 'BadRequest', `invalid resource version "${from}"`);
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    // Streaming lists (`sendInitialEvents`), validated as apimachinery's ValidateListOptions does.
    const initialEvents = q.get('sendInitialEvents');
    if (initialEvents !== null) {
      const errs: string[] = [];
      if (q.get('resourceVersionMatch') !== 'NotOlderThan')
        errs.push(
          'resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan',
        );
      if (!bookmarks)
        errs.push(
          'allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true',
        );
      if (errs.length > 0)
        throw new HttpError(
          422,
          'Invalid',
          `ListOptions.meta.k8s.io "" is invalid: ${errs.length === 1 ? errs[0]! : `[${errs.join(', ')}]`}`,
          { group: 'meta.k8s.io', kind: 'ListOptions' },
        );
    }
    res.writeHead(200, {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
      'cache-control': 'no-cache, private',
    });
    // The real server sends the headers at once; a quiet watch must not leave the client waiting.
    res.flushHeaders();
    const w: OpenWatch = { res, socket: req.socket, resource: r, namespace, matches, bookmarks };
    if (initialEvents === 'true') {
      // The current state (never older than `resourceVersion`), then the bookmark that ends it.
      for (const o of listOf(r, namespace, matches)) sendEvent(w, 'ADDED', o);
      sendBookmark(w, true);
    } else if (n === 0) {
      for (const o of listOf(r, namespace, matches)) sendEvent(w, 'ADDED', o);
    } else {
      if (n < compactedAt) {
        // The real server answers a watch from a compacted revision with 200 and one ERROR event.
        const gone = new HttpError(410, 'Expired', `too old resource version: ${n} (${compactedAt})`);
        res.end(JSON.stringify({ type: 'ERROR', object: statusObject(gone) }) + '\n');
        return;
      }
      for (const h of history) if (h.rv > n) sendChange(w, h);
    }
    watches.add(w);
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    let endTimer: NodeJS.Timeout | undefined;
    if (timeout > 0) endTimer = setTimeout(() => res.end(), timeout * 1000);
    if ((options.bookmarkIntervalMs ?? 0) > 0 && w.bookmarks)
      w.timer = setInterval(() => sendBookmark(w), options.bookmarkIntervalMs);
    const done = (): void => {
      watches.delete(w);
      if (w.timer !== undefined) clearInterval(w.timer);
      if (endTimer !== undefined) clearTimeout(endTimer);
    };
    res.on('close', done);
    res.on('finish', done);
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    res.end(JSON.stringify(body));
  };

  const server: Server = createServer(
    { cert: await readFile(tls.certFile), key: await readFile(tls.keyFile) },
    (req, res) => {
      const entry: KubeRequest = {
        method: req.method ?? '',
        path: '',
        verb: '',
        apiGroup: '',
        resource: '',
        query: {},
        user: '',
        status: 0,
        at: Date.now(),
      };
      log.push(entry);
      handle(req, res, entry)
        .then(() => {
          entry.status = res.statusCode;
        })
        .catch((e: unknown) => {
          const err =
            e instanceof HttpError
              ? e
              : new HttpError(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
          entry.status = err.code;
          if (!res.headersSent) sendJson(res, err.code, statusObject(err));
          else res.end();
        });
    },
  );
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;
  let closed = false;

  const refFor = (object: Record<string, unknown>, ref: KubeObjectRef | undefined): ResourceInfo =>
    resourceFor(ref?.apiVersion ?? str(object.apiVersion), ref?.resource ?? str(object.kind));

  return {
    url,
    caFile: tls.caFile,
    resourceVersion: () => String(rv),
    async writeKubeconfig(token, o = {}) {
      const ctx = o.context ?? 'kimg-test';
      const file = o.file ?? join(dir, `kubeconfig-${ctx}-${token.replace(/[^A-Za-z0-9_-]/g, '_')}`);
      const ca = (await readFile(tls.caFile)).toString('base64');
      const text = [
        'apiVersion: v1',
        'kind: Config',
        `current-context: ${ctx}`,
        'clusters:',
        `- name: ${ctx}-cluster`,
        '  cluster:',
        `    server: ${url}`,
        `    certificate-authority-data: ${ca}`,
        'users:',
        `- name: ${ctx}-user`,
        '  user:',
        `    token: ${token}`,
        'contexts:',
        `- name: ${ctx}`,
        '  context:',
        `    cluster: ${ctx}-cluster`,
        `    user: ${ctx}-user`,
        ...(o.namespace !== undefined ? [`    namespace: ${o.namespace}`] : []),
        '',
      ].join('\n');
      await writeFile(file, text, { mode: 0o600 });
      return file;
    },
    setUser(token, user) {
      users.set(token, user);
    },
    create(object, ref) {
      const r = refFor(object, ref);
      const ns = r.namespaced ? str(get(object, 'metadata', 'namespace')) || 'default' : undefined;
      return withTypeMeta(r, storeCreate(r, ns, structuredClone(object) as KubeObj));
    },
    update(object, ref) {
      const r = refFor(object, ref);
      const o = structuredClone(object) as KubeObj;
      const ns = r.namespaced ? str(o.metadata?.namespace) || 'default' : undefined;
      const key = keyOf(r, ns, str(o.metadata?.name));
      if (!store.has(key)) throw new Error(`${r.kind} ${ns ?? ''}/${str(o.metadata?.name)} does not exist`);
      return withTypeMeta(r, storeReplace(r, key, o));
    },
    remove(apiVersion, kind, namespace, name) {
      const r = resourceFor(apiVersion, kind);
      return (
        storeDelete(r, keyOf(r, r.namespaced ? (namespace ?? 'default') : undefined, name)) !== undefined
      );
    },
    object(apiVersion, kind, namespace, name) {
      const r = resourceFor(apiVersion, kind);
      const o = store.get(keyOf(r, r.namespaced ? (namespace ?? 'default') : undefined, name));
      return o === undefined ? undefined : withTypeMeta(r, structuredClone(o));
    },
    objects(apiVersion, kind, namespace) {
      const r = resourceFor(apiVersion, kind);
      return listOf(r, namespace, () => true).map((o) => withTypeMeta(r, structuredClone(o)));
    },
    requests: () => log.map((e) => ({ ...e, query: { ...e.query } })),
    tokenRequests: () => tokenRequests.map((t) => structuredClone(t)),
    clearRequests: () => {
      log.length = 0;
    },
    compact() {
      history.length = 0;
      compactedAt = rv;
    },
    breakWatches() {
      const n = watches.size;
      for (const w of [...watches]) w.socket.destroy();
      return n;
    },
    bookmark() {
      for (const w of watches) sendBookmark(w);
    },
    openWatches: () => watches.size,
    async close() {
      if (closed) return;
      closed = true;
      for (const w of watches) w.res.end();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      await removeTempDir(dir);
    },
  };
}
