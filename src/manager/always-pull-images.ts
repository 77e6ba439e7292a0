/**
 * The `AlwaysPullImages` admission plugin as pure functions over AdmissionReview-shaped requests.
 *
 * In a multi-tenant cluster a pod could otherwise start from an image another tenant's credentials
 * pulled onto the node, just by naming it. The plugin forces `imagePullPolicy: Always` on every
 * container of every new pod, so the kubelet always goes to the registry with the pod's own
 * credentials. It handles CREATE and UPDATE of `pods` (core group) only: subresources
 * (`pods/ephemeralcontainers`, `pods/status`, …) and other resources pass untouched, and so do UPDATEs
 * that introduce no image the old pod did not already use. The mutating half sets `Always`; the
 * validating half rejects any container left with another policy.
 *
 * Source: kubernetes `plugin/pkg/admission/alwayspullimages/admission.go`,
 * `pkg/apis/core/pods/util.go` (VisitContainersWithPath), apimachinery `api/errors` (NewForbidden,
 * NewBadRequest), `util/validation/field` (NotSupported), `util/errors` (aggregate).
 */
import { CONTAINER_LISTS } from './defaulting.js';
import { goQuote } from './go-format.js';

/** The plugin's registered name. */
export const ALWAYS_PULL_IMAGES_PLUGIN = 'AlwaysPullImages';

/** The parts of an `admission.k8s.io/v1` AdmissionReview request the plugin reads. */
export interface AdmissionRequest {
  /** `CREATE`, `UPDATE`, `DELETE` or `CONNECT`. */
  operation: string;
  /** The resource addressed; the plugin acts on group '' (core), resource `pods`. */
  resource: { group?: string; version?: string; resource: string };
  /** The subresource, if any (`ephemeralcontainers`, `status`, …). */
  subResource?: string;
  /** The object's name, used in Forbidden messages (falls back to `object.metadata.name`). */
  name?: string;
  /** The new object (a Pod). */
  object?: unknown;
  /** The stored object, for UPDATE. */
  oldObject?: unknown;
}

/** Why a request was passed through without being looked at. */
export type AdmissionSkipReason = 'operation' | 'subresource' | 'resource' | 'no-new-images';

/** One JSON Patch (RFC 6902) operation. */
export interface JsonPatchOperation {
  op: 'add';
  path: string;
  value: string;
}

/** One rejected container in a validation result. */
export interface AdmissionCause {
  /** `spec.containers[0].imagePullPolicy` */
  field: string;
  /** The policy found (`IfNotPresent`, `Never`, or '' when unset). */
  value: string;
  /** `Unsupported value: "IfNotPresent": supported values: "Always"` */
  message: string;
}

/** The plugin's answer. */
export type AdmissionResult =
  | {
      allowed: true;
      /** Set when the request was not looked at. */
      skipped?: AdmissionSkipReason;
      /** Admit only: whether any container's policy changed. */
      mutated?: boolean;
      /** Admit only: the pod after mutation (a copy; the request is not modified). */
      object?: unknown;
      /** Admit only: the same change as JSON Patch operations, for a mutating webhook response. */
      patch?: JsonPatchOperation[];
    }
  | {
      allowed: false;
      /** 400 for a non-Pod object, 403 for a rejected policy. */
      status: 400 | 403;
      reason: 'BadRequest' | 'Forbidden';
      /** The API server's message text. */
      message: string;
      causes?: AdmissionCause[];
    };

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether the object is a Pod as far as the plugin can tell (kind absent or `Pod`, spec absent or an object). */
function isPod(v: unknown): v is Obj {
  return (
    isObj(v) &&
    (v['kind'] === undefined || v['kind'] === 'Pod') &&
    (v['spec'] === undefined || isObj(v['spec']))
  );
}

/** Every container of a pod spec with its field path, in the API server's order. */
function containersOf(pod: Obj): Array<{ container: Obj; path: string; pointer: string }> {
  const out: Array<{ container: Obj; path: string; pointer: string }> = [];
  const spec = pod['spec'];
  if (!isObj(spec)) return out;
  for (const list of CONTAINER_LISTS) {
    const cs = spec[list];
    if (!Array.isArray(cs)) continue;
    cs.forEach((c, i) => {
      if (isObj(c)) out.push({ container: c, path: `spec.${list}[${i}]`, pointer: `/spec/${list}/${i}` });
    });
  }
  return out;
}

function imagesOf(pod: Obj): Set<unknown> {
  return new Set(containersOf(pod).map(({ container }) => container['image'] ?? ''));
}

function skipReason(req: AdmissionRequest): AdmissionSkipReason | undefined {
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return 'operation';
  if (req.subResource !== undefined && req.subResource !== '') return 'subresource';
  const resource = isObj(req.resource) ? req.resource : { resource: '' };
  if ((resource.group ?? '') !== '' || resource.resource !== 'pods') return 'resource';
  if (req.operation === 'UPDATE' && isPod(req.object) && isPod(req.oldObject)) {
    const old = imagesOf(req.oldObject);
    const hasNew = containersOf(req.object).some(({ container }) => !old.has(container['image'] ?? ''));
    if (!hasNew) return 'no-new-images';
  }
  return undefined;
}

const BAD_REQUEST = {
  allowed: false,
  status: 400,
  reason: 'BadRequest',
  message: 'Resource was marked with kind Pod but was unable to be converted',
} as const;

/**
 * The plugin's mutating half: sets `imagePullPolicy: Always` on every init, regular and ephemeral
 * container of a pod being created or updated with a new image. Returns the mutated copy and the
 * equivalent JSON Patch; requests the plugin ignores come back `allowed` with `skipped`. A `pods`
 * request whose object is not a Pod is refused with upstream's BadRequest text. Pure; never throws.
 */
export function alwaysPullImagesAdmit(req: AdmissionRequest): AdmissionResult {
  const skipped = skipReason(req);
  if (skipped !== undefined) return { allowed: true, skipped };
  if (!isPod(req.object)) return { ...BAD_REQUEST };
  const pod = structuredClone(req.object);
  const patch: JsonPatchOperation[] = [];
  for (const { container, pointer } of containersOf(pod)) {
    if (container['imagePullPolicy'] !== 'Always') {
      container['imagePullPolicy'] = 'Always';
      patch.push({ op: 'add', path: `${pointer}/imagePullPolicy`, value: 'Always' });
    }
  }
  return { allowed: true, mutated: patch.length > 0, object: pod, patch };
}

/**
 * The plugin's validating half: refuses a pod (CREATE, or UPDATE with a new image) that has any
 * container whose policy is not `Always`, with the API server's aggregated Forbidden message, e.g.
 * `pods "web" is forbidden: spec.containers[0].imagePullPolicy: Unsupported value: "IfNotPresent": supported values: "Always"`
 * (several problems print as `[e1, e2]`). Pure; never throws.
 *
 * UNVERIFIED against a live API server: the message text follows apimachinery's NewForbidden,
 * field.NotSupported and aggregate formatting; the HTTP status a real API server reports for the
 * aggregate may differ from the 403 given here.
 */
export function alwaysPullImagesValidate(req: AdmissionRequest): AdmissionResult {
  const skipped = skipReason(req);
  if (skipped !== undefined) return { allowed: true, skipped };
  if (!isPod(req.object)) return { ...BAD_REQUEST };
  const meta = req.object['metadata'];
  const name = req.name || (isObj(meta) && typeof meta['name'] === 'string' ? meta['name'] : '');
  const subject = name === '' ? 'pods is forbidden' : `pods ${goQuote(name)} is forbidden`;
  const causes: AdmissionCause[] = [];
  for (const { container, path } of containersOf(req.object)) {
    const raw = container['imagePullPolicy'];
    if (raw === 'Always') continue;
    const value = typeof raw === 'string' ? raw : '';
    causes.push({
      field: `${path}.imagePullPolicy`,
      value,
      message: `Unsupported value: ${goQuote(value)}: supported values: ${goQuote('Always')}`,
    });
  }
  if (causes.length === 0) return { allowed: true };
  const texts = [...new Set(causes.map((c) => `${subject}: ${c.field}: ${c.message}`))];
  const message = texts.length === 1 ? (texts[0] ?? '') : `[${texts.join(', ')}]`;
  return { allowed: false, status: 403, reason: 'Forbidden', message, causes };
}
