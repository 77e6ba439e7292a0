/**
 * Pull Secrets and ServiceAccounts for pods, fetched from the API server the way the kubelet's secret
 * manager does (`pkg/kubelet/secret/secret_manager.go`, `pkg/kubelet/util/manager/watch_based_manager.go`,
 * the default `Watch` change-detection strategy):
 *
 * - only objects a registered pod references are fetched: the pod's `imagePullSecrets`, and — when
 *   the pod lists none — its ServiceAccount and the ServiceAccount's `imagePullSecrets` (what the
 *   ServiceAccount admission plugin copies into such a pod);
 * - each referenced object is kept current by its own list + watch narrowed to
 *   `metadata.name=<name>` in the pod's namespace: an unchanged Secret is never fetched again, a
 *   changed one arrives as a watch event; the watch stops when the last pod referencing it is
 *   unregistered;
 * - a pod can only use objects of its own namespace (a `LocalObjectReference` has no namespace; the
 *   node authorizer refuses any other): {@link PodSecretManager.secretFor} refuses a Secret of another
 *   namespace without asking the API server.
 *
 * The decoding and the pull-Secret rules (types, keys, docker config parsing, problems) are
 * `src/credentials`' `resolvePodPullSecrets`, shared with the file-based sources.
 */
import {
  resolvePodPullSecrets,
  type KubeObject,
  type PodPullSecrets,
  type PullSecretProblem,
} from '../credentials/index.js';
import { KimgError, quote, type KimgErrorLike } from '../errors/index.js';
import type { KubeClient, KubeJson } from './client.js';
import { KubeInformer } from './informer.js';

/** Where a pod's objects live and what they are called. */
interface PodRefs {
  namespace: string;
  uid: string;
  /** `spec.imagePullSecrets` names (non-empty). */
  secrets: string[];
  /** The ServiceAccount name (`default` when unset). */
  serviceAccount: string;
}

/** Reads the references of a Pod object. */
export function podReferences(pod: KubeJson): PodRefs {
  const meta = pod.metadata ?? {};
  const spec = (pod.spec ?? {}) as Record<string, unknown>;
  const names: string[] = [];
  if (Array.isArray(spec.imagePullSecrets)) {
    for (const r of spec.imagePullSecrets) {
      const n = typeof r === 'object' && r !== null ? (r as Record<string, unknown>).name : undefined;
      if (typeof n === 'string' && n !== '' && !names.includes(n)) names.push(n);
    }
  }
  const sa =
    typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== ''
      ? spec.serviceAccountName
      : typeof spec.serviceAccount === 'string' && spec.serviceAccount !== ''
        ? spec.serviceAccount
        : 'default';
  return {
    namespace: typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default',
    uid: typeof meta.uid === 'string' ? meta.uid : '',
    secrets: names,
    serviceAccount: sa,
  };
}

/** An API object as the credentials module reads it (`file` names its origin, never a path). */
export function asKubeObject(o: KubeJson, kind: 'Secret' | 'ServiceAccount'): KubeObject {
  const ns = o.metadata?.namespace ?? 'default';
  const name = o.metadata?.name ?? '';
  return {
    apiVersion: 'v1',
    kind,
    name,
    namespace: ns,
    object: { ...o, apiVersion: 'v1', kind },
    file: 'API server',
    position: `${kind === 'Secret' ? 'secrets' : 'serviceaccounts'}/${ns}/${name} resourceVersion ${String(o.metadata?.resourceVersion ?? '')}`,
  };
}

/** The kubelet's warning when referenced Secrets are missing (`FailedToRetrieveImagePullSecret`). */
export function missingSecretsMessage(names: readonly string[]): string {
  return `Unable to retrieve some image pull secrets (${names.join(', ')}); attempting to pull the image may not succeed.`;
}

/** The names of the pod's referenced Secrets that were not found (for the warning event). */
export function missingSecretNames(secrets: PodPullSecrets): string[] {
  return secrets.problems.filter((p) => p.kind === 'not-found').map((p) => p.name);
}

/** Rewrites file-oriented problem texts for objects read from the API server. */
function apiProblems(problems: PullSecretProblem[]): PullSecretProblem[] {
  return problems.map((p) => {
    if (p.kind === 'not-found') {
      return {
        ...p,
        message: `Secret ${quote(`${p.namespace}/${p.name}`)} not found on the API server: kubelet skips it and warns FailedToRetrieveImagePullSecret`,
      };
    }
    if (p.kind === 'service-account-not-found') {
      return {
        ...p,
        message: `ServiceAccount ${quote(`${p.namespace}/${p.name}`)} not found on the API server, so its imagePullSecrets were not considered`,
      };
    }
    return p;
  });
}

/**
 * A pod's pull Secrets read with one GET per object, no cache (for `kimg explain`: one-shot, and the
 * caller's identity only needs `get`). The ServiceAccount is read only when the pod lists no Secrets
 * (its list is then the one used; a pod that lists Secrets never uses its ServiceAccount's, so
 * reading it would only demand a `get serviceaccounts` grant for nothing). Secrets and a
 * ServiceAccount that do not exist are problems, as the kubelet skips them; other failures throw.
 *
 * @throws KimgError `KUBE_FORBIDDEN` (naming the verb and resource) when RBAC denies reading a
 * referenced Secret, or the ServiceAccount of a pod that lists none, `KUBE_UNAVAILABLE`,
 * `SECRET_INVALID`.
 */
export async function fetchPodPullSecrets(
  client: KubeClient,
  pod: KubeJson,
): Promise<{ secrets: PodPullSecrets; serviceAccount?: KubeJson }> {
  const refs = podReferences(pod);
  const objects: KubeObject[] = [];
  let names = refs.secrets;
  let serviceAccount: KubeJson | undefined;
  if (names.length === 0) {
    try {
      serviceAccount = await client.getServiceAccount(refs.namespace, refs.serviceAccount);
      objects.push(asKubeObject(serviceAccount, 'ServiceAccount'));
    } catch (e) {
      if (!(e instanceof KimgError && e.code === 'KUBE_NOT_FOUND')) throw e;
    }
    if (serviceAccount !== undefined) names = namesOf(serviceAccount.imagePullSecrets);
  }
  for (const name of names) {
    try {
      objects.push(asKubeObject(await client.getSecret(refs.namespace, name), 'Secret'));
    } catch (e) {
      if (!(e instanceof KimgError && e.code === 'KUBE_NOT_FOUND')) throw e;
    }
  }
  const secrets = resolvePodPullSecrets({ ...pod, kind: 'Pod' }, objects);
  return {
    secrets: { ...secrets, problems: apiProblems(secrets.problems) },
    ...(serviceAccount !== undefined ? { serviceAccount } : {}),
  };
}

function namesOf(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const r of list) {
    const n = typeof r === 'object' && r !== null ? (r as Record<string, unknown>).name : undefined;
    if (typeof n === 'string' && n !== '' && !out.includes(n)) out.push(n);
  }
  return out;
}

/** Options of {@link PodSecretManager}. */
export interface PodSecretManagerOptions {
  client: KubeClient;
  /** A watch failed (retried on its own): for logs. */
  onError?: (error: KimgErrorLike, object: string) => void;
  /** A watched object changed (pods using it may sync again). */
  onChange?: (kind: 'Secret' | 'ServiceAccount', namespace: string, name: string) => void;
  /** Informer back-off settings (tests). */
  initialBackoffMs?: number;
}

interface Watched {
  informer: KubeInformer;
  /** Pod UIDs referencing it. */
  pods: Set<string>;
}

/** Watch-based cache of the Secrets and ServiceAccounts registered pods reference (module comment). */
export class PodSecretManager {
  private readonly watched = new Map<string, Watched>();
  private readonly podKeys = new Map<string, Set<string>>();
  private closed = false;

  constructor(private readonly options: PodSecretManagerOptions) {}

  /** Starts watching what `pod` references (idempotent per pod UID; a changed pod re-registers). */
  registerPod(pod: KubeJson): void {
    const refs = podReferences(pod);
    const keys = new Set<string>();
    for (const n of refs.secrets) keys.add(`Secret/${refs.namespace}/${n}`);
    if (refs.secrets.length === 0) {
      const saKey = `ServiceAccount/${refs.namespace}/${refs.serviceAccount}`;
      keys.add(saKey);
      // The ServiceAccount's Secrets stay registered across re-registrations (no watch churn).
      const sa = this.watched.get(saKey)?.informer.get(`${refs.namespace}/${refs.serviceAccount}`);
      for (const n of namesOf(sa?.imagePullSecrets)) keys.add(`Secret/${refs.namespace}/${n}`);
    }
    this.setPodKeys(refs.uid, keys);
  }

  /** Stops watching objects no other pod references. */
  unregisterPod(pod: KubeJson): void {
    this.setPodKeys(podReferences(pod).uid, new Set());
    this.podKeys.delete(podReferences(pod).uid);
  }

  /** Objects being watched (`Secret/ns/name`), for tests and the status page. */
  watchedObjects(): string[] {
    return [...this.watched.keys()].sort();
  }

  private setPodKeys(uid: string, keys: Set<string>): void {
    const old = this.podKeys.get(uid) ?? new Set<string>();
    for (const k of keys) {
      if (old.has(k)) continue;
      this.ensure(k).pods.add(uid);
    }
    for (const k of old) {
      if (keys.has(k)) continue;
      const w = this.watched.get(k);
      if (w === undefined) continue;
      w.pods.delete(uid);
      if (w.pods.size === 0) {
        this.watched.delete(k);
        void w.informer.stop();
      }
    }
    this.podKeys.set(uid, keys);
  }

  private ensure(key: string): Watched {
    let w = this.watched.get(key);
    if (w !== undefined) return w;
    const [kind, namespace, name] = key.split('/') as ['Secret' | 'ServiceAccount', string, string];
    const informer = new KubeInformer({
      client: this.options.client,
      resource: kind === 'Secret' ? 'secrets' : 'serviceaccounts',
      namespace,
      fieldSelector: `metadata.name=${name}`,
      ...(this.options.initialBackoffMs !== undefined
        ? { initialBackoffMs: this.options.initialBackoffMs }
        : {}),
      onError: (e) => this.options.onError?.(e, key),
      onUpdate: () => this.options.onChange?.(kind, namespace, name),
      onDelete: () => this.options.onChange?.(kind, namespace, name),
    });
    w = { informer, pods: new Set() };
    this.watched.set(key, w);
    if (!this.closed) informer.start();
    return w;
  }

  private async lookup(
    kind: 'Secret' | 'ServiceAccount',
    namespace: string,
    name: string,
    uid: string,
  ): Promise<KubeJson | undefined> {
    const key = `${kind}/${namespace}/${name}`;
    const w = this.ensure(key);
    w.pods.add(uid);
    this.podKeys.get(uid)?.add(key);
    const failure = await w.informer.waitForSyncOrFailure();
    // Not readable yet (RBAC, API server down): the caller decides; the watch keeps retrying.
    if (failure !== undefined) throw failure;
    return w.informer.get(`${namespace}/${name}`);
  }

  /**
   * The ServiceAccount `namespace/name` for the pod `podUid`, from the cache (registering the
   * reference: watched by name like the pods' pull Secrets), for credential providers with
   * `tokenAttributes`.
   * @throws KimgError `SECRET_NOT_FOUND` when it does not exist; the watch's first failure
   *   (`KUBE_FORBIDDEN`, `KUBE_UNAVAILABLE`).
   */
  async serviceAccount(namespace: string, name: string, podUid: string): Promise<KubeJson> {
    const sa = await this.lookup('ServiceAccount', namespace, name, podUid);
    if (sa === undefined)
      throw new KimgError(
        'SECRET_NOT_FOUND',
        `ServiceAccount ${quote(`${namespace}/${name}`)} not found on the API server`,
        { input: `${namespace}/${name}` },
      );
    return sa;
  }

  /**
   * One Secret for `pod`, from the cache (registering the reference).
   *
   * @throws KimgError `SECRET_NOT_FOUND` without any request when `namespace` is not the pod's: pods
   * can use Secrets of their own namespace only.
   */
  async secretFor(pod: KubeJson, namespace: string, name: string): Promise<KubeJson | undefined> {
    const refs = podReferences(pod);
    if (namespace !== refs.namespace) {
      throw new KimgError(
        'SECRET_NOT_FOUND',
        `refused to read Secret ${quote(`${namespace}/${name}`)} for pod ${quote(`${refs.namespace}/${String(pod.metadata?.name ?? '')}`)}: pods can use pull Secrets of their own namespace only`,
        { input: `${namespace}/${name}` },
      );
    }
    return this.lookup('Secret', namespace, name, refs.uid);
  }

  /**
   * The pod's pull Secrets as the kubelet would use them (resolved by `resolvePodPullSecrets`), waiting
   * for each referenced object's first list. Missing objects are `problems` (kind `not-found`).
   *
   * @throws KimgError `SECRET_INVALID` for a pull Secret with an unparsable payload; the first
   * failure of a referenced object's list or watch before it synced (`KUBE_FORBIDDEN` naming verb and
   * resource, `KUBE_UNAVAILABLE`).
   */
  async pullSecrets(pod: KubeJson): Promise<PodPullSecrets> {
    this.registerPod(pod);
    const refs = podReferences(pod);
    const objects: KubeObject[] = [];
    let names = refs.secrets;
    if (names.length === 0) {
      const sa = await this.lookup('ServiceAccount', refs.namespace, refs.serviceAccount, refs.uid);
      if (sa !== undefined) {
        objects.push(asKubeObject(sa, 'ServiceAccount'));
        names = namesOf(sa.imagePullSecrets);
      }
    }
    for (const name of names) {
      const s = await this.secretFor(pod, refs.namespace, name);
      if (s !== undefined) objects.push(asKubeObject(s, 'Secret'));
    }
    const resolved = resolvePodPullSecrets({ ...pod, kind: 'Pod' }, objects);
    return { ...resolved, problems: apiProblems(resolved.problems) };
  }

  /** Stops every watch. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.watched.values()];
    this.watched.clear();
    await Promise.all(all.map((w) => w.informer.stop()));
  }
}
