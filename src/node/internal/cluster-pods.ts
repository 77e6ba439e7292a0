/**
 * Cluster mode: the pods bound to this node come from the API server instead of `staticPodPath`, the
 * way the kubelet's API source gets them (`pkg/kubelet/config/apiserver.go`: list + watch with
 * `spec.nodeName=<node>`), and their pull Secrets from the API server through the watch-based secret
 * manager (`src/kube`). The agent only pulls ahead of the kubelet and records Events; it never writes
 * Pod status (the kubelet owns it).
 *
 * Each informer change turns the cached pods into the reconciler's manifest set: a pod keeps its
 * name and UID (no static-pod renaming), its hash covers what decides its images (containers, pull
 * Secrets, ServiceAccount, RuntimeClass), so status updates from the kubelet change nothing, and an
 * edited image is a replacement. Pods that finished (`Succeeded`/`Failed`) or are being deleted are
 * dropped, as the kubelet stops working on them.
 */
import { createHash } from 'node:crypto';
import type { KubeObject, PodCredentials } from '../../credentials/index.js';
import { toKimgError } from '../../errors/index.js';
import {
  KubeEventRecorder,
  PodSecretManager,
  missingSecretNames,
  missingSecretsMessage,
  nodePodInformer,
  objectKey,
  type KubeClient,
  type KubeInformer,
  type KubeJson,
} from '../../kube/index.js';
import { applyPodDefaults, applyUpdateDefaults, runtimeHandlerFor } from '../../manager/index.js';
import type { ManifestPod } from '../watcher.js';
import type { AgentLog } from './log.js';
import type { PodSecretResolver } from './pod-sync.js';
import type { WarnOnce } from './pod-secrets.js';
import type { AgentPod } from './static-pods.js';

/** Where cluster pods come from, in `AgentPod.file` and the status page. */
export const API_SERVER_ORIGIN = 'API server';

/** The fields of a pod spec that decide its images and credentials. */
function imageHash(o: KubeJson): string {
  const spec = (o.spec ?? {}) as Record<string, unknown>;
  const pick = {
    uid: o.metadata?.uid,
    initContainers: spec.initContainers,
    containers: spec.containers,
    ephemeralContainers: spec.ephemeralContainers,
    imagePullSecrets: spec.imagePullSecrets,
    serviceAccountName: spec.serviceAccountName,
    runtimeClassName: spec.runtimeClassName,
  };
  return createHash('sha256').update(JSON.stringify(pick)).digest('hex');
}

/** A cached API pod as the reconciler's manifest, or undefined when the kubelet no longer works on it. */
export function apiPodManifest(o: KubeJson): ManifestPod | undefined {
  const phase = ((o.status ?? {}) as Record<string, unknown>).phase;
  if (phase === 'Succeeded' || phase === 'Failed') return undefined;
  if (o.metadata?.deletionTimestamp !== undefined && o.metadata.deletionTimestamp !== null) return undefined;
  const name = o.metadata?.name ?? '';
  const namespace = o.metadata?.namespace ?? 'default';
  if (name === '') return undefined;
  return { key: objectKey(o), name, namespace, file: API_SERVER_ORIGIN, object: o, hash: imageHash(o) };
}

/** The agent pod of an API pod: its own name and UID, defaulted as the API server stores it. */
export function apiAgentPod(
  m: ManifestPod,
  previous: AgentPod | undefined,
  objects: readonly KubeObject[],
): AgentPod {
  const raw = structuredClone(m.object);
  const object = previous !== undefined ? applyUpdateDefaults(previous.object, raw) : applyPodDefaults(raw);
  const meta = (object.metadata ??= {}) as Record<string, unknown>;
  const uid = typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : `${m.namespace}/${m.name}`;
  const pod: AgentPod = {
    key: m.key,
    manifestKey: m.key,
    name: m.name,
    namespace: m.namespace,
    uid,
    file: API_SERVER_ORIGIN,
    hash: m.hash,
    object,
  };
  const handler = runtimeHandlerFor(object, objects);
  if (handler !== undefined) pod.runtimeHandler = handler;
  return pod;
}

/**
 * The pods' pull Secrets from the API server, registered in the runtime's credentials per pod; a
 * missing referenced Secret records the kubelet's `FailedToRetrieveImagePullSecret` warning.
 */
export class ClusterPodSecrets implements PodSecretResolver {
  constructor(
    private readonly manager: PodSecretManager,
    private readonly credentials: PodCredentials,
    private readonly events: KubeEventRecorder,
    private readonly warnOnce: WarnOnce,
  ) {}

  /** Nothing to re-read: the watches keep the objects current. */
  refresh(): Promise<void> {
    return Promise.resolve();
  }

  async resolvePod(
    uid: string,
    pod: Record<string, unknown>,
    fields: Record<string, unknown>,
  ): Promise<void> {
    try {
      const secrets = await this.manager.pullSecrets(pod as KubeJson);
      for (const p of secrets.problems) this.warnOnce(p.message, fields);
      const missing = missingSecretNames(secrets);
      if (missing.length > 0) {
        const meta = (pod.metadata ?? {}) as Record<string, unknown>;
        this.events.recordEvent({
          type: 'Warning',
          reason: 'FailedToRetrieveImagePullSecret',
          note: missingSecretsMessage(missing),
          action: 'RetrieveImagePullSecret',
          regarding: {
            kind: 'Pod',
            apiVersion: 'v1',
            namespace: String(meta.namespace ?? 'default'),
            name: String(meta.name ?? ''),
            uid,
          },
        });
      }
      this.credentials.setPodSecrets(uid, secrets);
    } catch (e) {
      this.warnOnce(toKimgError(e).message, fields);
    }
  }

  forgetPod(uid: string, pod: Record<string, unknown>): void {
    this.manager.unregisterPod(pod as KubeJson);
    this.credentials.forgetPod(uid);
  }
}

/** Options of {@link ClusterPodSource}. */
export interface ClusterPodSourceOptions {
  client: KubeClient;
  nodeName: string;
  /** The set of pods after every change (the reconciler's `onPods`). */
  onPods: (pods: Map<string, ManifestPod>) => void;
  log: AgentLog;
  /** Re-deliver the cached pods this often (ms); 0 = never. */
  resyncMs?: number;
  /** Informer retry back-off start (tests). */
  initialBackoffMs?: number;
}

/** The node's pods from the API server (see the module comment). */
export class ClusterPodSource {
  readonly informer: KubeInformer;
  private firstFailure: (() => void) | undefined;

  constructor(private readonly options: ClusterPodSourceOptions) {
    // The first list's objects arrive one by one: the set is emitted once, after it (`start`).
    const changed = (): void => {
      if (this.informer.hasSynced()) this.emit();
    };
    this.informer = nodePodInformer({
      client: options.client,
      nodeName: options.nodeName,
      ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
      ...(options.initialBackoffMs !== undefined ? { initialBackoffMs: options.initialBackoffMs } : {}),
      onAdd: changed,
      onUpdate: changed,
      onDelete: changed,
      onResync: changed,
      onSynced: () => this.emit(),
      onError: (e, what) => {
        options.log({
          level: 'warn',
          msg: `${what} of the node's pods failed (retrying): ${e.message}`,
          code: e.code,
        });
        this.firstFailure?.();
      },
    });
  }

  /** The cached API pod of `namespace/name`. */
  pod(key: string): KubeJson | undefined {
    return this.informer.get(key);
  }

  private emit(): void {
    const pods = new Map<string, ManifestPod>();
    for (const o of this.informer.list()) {
      const m = apiPodManifest(o);
      if (m !== undefined) pods.set(m.key, m);
    }
    this.options.onPods(pods);
  }

  /**
   * Starts the list + watch; resolves after the first list was applied, or at its first failure
   * (RBAC, unreachable API server: the agent runs and keeps retrying, as the kubelet does).
   */
  async start(): Promise<void> {
    this.informer.start();
    await new Promise<void>((resolve) => {
      this.firstFailure = resolve;
      void this.informer.waitForSync().then(resolve);
    });
    this.firstFailure = undefined;
  }

  close(): Promise<void> {
    return this.informer.stop();
  }
}
