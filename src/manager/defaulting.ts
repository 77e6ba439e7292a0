/**
 * `imagePullPolicy` defaulting: what the API server writes into a container that does not set a pull
 * policy, for Pods and for the pod templates of workloads.
 *
 * The rule (kubernetes `SetDefaults_Container`): parse the image like the kubelet does
 * (`parsers.ParseImageName`, which reports tag `latest` when an image has neither tag nor digest); a
 * tag of exactly `latest` gives `Always`, anything else `IfNotPresent`. So `nginx`, `nginx:latest` and
 * even `nginx:latest@sha256:…` default to `Always`; `nginx:1.25`, `nginx@sha256:…`, `nginx:Latest` (the
 * comparison is case-sensitive) and images that do not parse default to `IfNotPresent`.
 *
 * Defaulting runs when an object is created. Updates that only change the image keep the stored
 * policy (`kubectl apply`/`set image`/`edit` send the live field back), which is why switching a
 * Deployment to `:latest` later does not make it `Always` (`applyUpdateDefaults`).
 *
 * Source: kubernetes `pkg/apis/core/v1/defaults.go` (SetDefaults_Container, SetDefaults_EphemeralContainer),
 * `pkg/util/parsers/parsers.go`; the "Default image pull policy" section of the Images concept page.
 * Only `imagePullPolicy` (and an image volume's `pullPolicy`) is defaulted here; other container defaults are out of kimg's scope.
 */
import { parseImageName } from '../reference/index.js';

/** A container's `imagePullPolicy`. */
export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

/** The valid pull policies, in the API's order. */
export const PULL_POLICIES: readonly PullPolicy[] = Object.freeze([
  'Always',
  'IfNotPresent',
  'Never',
] as const);

/** Whether `v` is one of the three valid pull policies. */
export function isPullPolicy(v: unknown): v is PullPolicy {
  return v === 'Always' || v === 'IfNotPresent' || v === 'Never';
}

/**
 * The policy the API server gives a container with image `image` and no `imagePullPolicy`: `Always`
 * when the kubelet's parse of the image yields tag `latest` (no tag and no digest counts as `latest`),
 * else `IfNotPresent` (including digest-only and unparsable images). Never throws.
 */
export function defaultPullPolicy(image: string): 'Always' | 'IfNotPresent' {
  let tag: string | undefined;
  try {
    tag = parseImageName(image).tag;
  } catch {
    // Upstream ignores the error ("assume it has been validated elsewhere"): tag stays empty.
    tag = undefined;
  }
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** The three container lists of a pod spec, in the order the API server visits them. */
export const CONTAINER_LISTS = ['initContainers', 'containers', 'ephemeralContainers'] as const;

/** Where each supported kind keeps its pod spec, as a path of object keys. */
export const POD_SPEC_PATHS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  Pod: ['spec'],
  PodTemplate: ['template', 'spec'],
  ReplicationController: ['spec', 'template', 'spec'],
  Deployment: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
});

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function at(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (!isObj(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

function isEmptyPolicy(v: unknown): boolean {
  return v === undefined || v === null || v === '';
}

/**
 * Calls `visit` for every container of every pod spec in `obj` (a Pod, a workload with a pod
 * template, or a `*List` of them), with the matching container of `old` (same kind path, same list,
 * same `name`) when `old` is given.
 */
function visitContainers(obj: unknown, old: unknown, visit: (c: Obj, oldC: Obj | undefined) => void): void {
  if (!isObj(obj)) return;
  const kind = obj['kind'];
  if (typeof kind === 'string' && kind.endsWith('List') && Array.isArray(obj['items'])) {
    const oldItems = isObj(old) && Array.isArray(old['items']) ? (old['items'] as unknown[]) : [];
    (obj['items'] as unknown[]).forEach((item, i) => visitContainers(item, oldItems[i], visit));
    return;
  }
  // An object without `kind` is taken as a Pod (a bare pod manifest or an AdmissionReview object).
  const path = typeof kind === 'string' ? POD_SPEC_PATHS[kind] : POD_SPEC_PATHS['Pod'];
  if (path === undefined) return;
  const spec = at(obj, path);
  const oldSpec = old === undefined ? undefined : at(old, path);
  if (!isObj(spec)) return;
  for (const list of CONTAINER_LISTS) {
    const containers = spec[list];
    if (!Array.isArray(containers)) continue;
    const oldList = isObj(oldSpec) && Array.isArray(oldSpec[list]) ? (oldSpec[list] as unknown[]) : [];
    for (const c of containers) {
      if (!isObj(c)) continue;
      const oldC = oldList.find(
        (o): o is Obj => isObj(o) && o['name'] === c['name'] && c['name'] !== undefined,
      );
      visit(c, oldC);
    }
  }
}

/** Options of `applyPodDefaults` / `applyUpdateDefaults`. */
export interface PodDefaultsOptions {
  /**
   * Model the `AlwaysPullImages` admission plugin: every container ends up `Always`. The plugin itself
   * mutates Pods only; for a workload this shows the policy its pods will get, not what the API
   * server stores in the template. Default false.
   */
  alwaysPullImages?: boolean;
}

/**
 * Calls `visit` for the `image` source of every image volume (KEP-4639, `volumes[].image`) of every
 * pod spec in `obj`, the way `visitContainers` walks containers.
 */
function visitImageVolumes(obj: unknown, visit: (source: Obj) => void): void {
  if (!isObj(obj)) return;
  const kind = obj['kind'];
  if (typeof kind === 'string' && kind.endsWith('List') && Array.isArray(obj['items'])) {
    for (const item of obj['items'] as unknown[]) visitImageVolumes(item, visit);
    return;
  }
  const path = typeof kind === 'string' ? POD_SPEC_PATHS[kind] : POD_SPEC_PATHS['Pod'];
  if (path === undefined) return;
  const spec = at(obj, path);
  if (!isObj(spec) || !Array.isArray(spec['volumes'])) return;
  for (const v of spec['volumes'] as unknown[]) {
    if (isObj(v) && isObj(v['image'])) visit(v['image']);
  }
}

/**
 * An image volume's `pullPolicy` is defaulted from its `reference` exactly as a container's from its
 * image (`Always` for `:latest` or no tag, else `IfNotPresent`). `AlwaysPullImages` also covers image
 * volumes (the plugin mutates them since image volumes exist). Volumes of a pod cannot change on update,
 * so update defaulting needs no old object for them.
 */
function defaultImageVolume(source: Obj, options: PodDefaultsOptions): void {
  if (isEmptyPolicy(source['pullPolicy'])) {
    source['pullPolicy'] = defaultPullPolicy(
      typeof source['reference'] === 'string' ? source['reference'] : '',
    );
  }
  if (options.alwaysPullImages) source['pullPolicy'] = 'Always';
}

function defaultContainer(c: Obj, options: PodDefaultsOptions): void {
  if (isEmptyPolicy(c['imagePullPolicy'])) {
    c['imagePullPolicy'] = defaultPullPolicy(typeof c['image'] === 'string' ? c['image'] : '');
  }
  if (options.alwaysPullImages) c['imagePullPolicy'] = 'Always';
}

/**
 * Returns a copy of `obj` with `imagePullPolicy` defaulted on every init, regular and ephemeral
 * container of its pod spec(s). Supports Pod, PodTemplate, ReplicationController, Deployment,
 * StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, objects without `kind` (taken as Pods) and
 * `*List`s of these; other kinds are returned copied and unchanged. Policies already set are kept
 * (unless `alwaysPullImages`). The input is not modified. Never throws for JSON-like input.
 */
export function applyPodDefaults<T>(obj: T, options: PodDefaultsOptions = {}): T {
  const copy = structuredClone(obj);
  visitContainers(copy, undefined, (c) => defaultContainer(c, options));
  visitImageVolumes(copy, (v) => defaultImageVolume(v, options));
  return copy;
}

/**
 * Defaulting on update: returns a copy of `newObj` where each container without `imagePullPolicy`
 * takes the policy stored on the container of the same name in `oldObj` (same pod spec, same list),
 * and only containers new to the object are defaulted from their image. So an update that changes
 * only the image keeps the stored policy, even when the new tag is `latest`. The inputs are not
 * modified.
 */
export function applyUpdateDefaults<T>(oldObj: unknown, newObj: T, options: PodDefaultsOptions = {}): T {
  const copy = structuredClone(newObj);
  visitContainers(copy, oldObj, (c, oldC) => {
    if (
      isEmptyPolicy(c['imagePullPolicy']) &&
      oldC !== undefined &&
      !isEmptyPolicy(oldC['imagePullPolicy'])
    ) {
      c['imagePullPolicy'] = oldC['imagePullPolicy'];
    }
    defaultContainer(c, options);
  });
  visitImageVolumes(copy, (v) => defaultImageVolume(v, options));
  return copy;
}
