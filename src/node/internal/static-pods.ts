/**
 * Static pods: a manifest read from `staticPodPath` becomes a pod the way the kubelet's file source
 * makes one — the name gets the node name as suffix, the UID (when the manifest has none) is a hash of
 * the manifest, its file and the node name, so an edited manifest is a new pod — and is decoded and
 * defaulted afresh on every read, as the file source does (it never sees the previous version, so an
 * edit from `image: x:1` to `image: x` makes the policy `Always`; there is no API-server update
 * defaulting for static pods). The reconciler turns each new set of manifests into pods removed,
 * replaced and added, one set at a time: an edited manifest is one pod stopped and one started.
 *
 * Source: kubernetes `pkg/kubelet/config/{file.go,common.go}`.
 */
import { createHash } from 'node:crypto';
import type { KubeObject } from '../../credentials/index.js';
import { applyPodDefaults, runtimeHandlerFor, staticPodExtensions } from '../../manager/index.js';
import type { ContainerImageState, PodView } from '../pod-state.js';
import { initialVolumeStates } from './image-volumes.js';
import type { ManifestPod } from '../watcher.js';

/** A static pod as the agent runs it. */
export interface AgentPod {
  /** `<namespace>/<name>`. */
  key: string;
  /** The watcher's key of the manifest it comes from. */
  manifestKey: string;
  name: string;
  namespace: string;
  uid: string;
  file: string;
  /** The manifest's hash (a different hash is an edited manifest). */
  hash: string;
  /** After defaulting (what the API server would store). */
  object: Record<string, unknown>;
  /** The CRI runtime handler of the pod's RuntimeClass, when it names one. */
  runtimeHandler?: string;
}

/** The UID of a static pod whose manifest has none (kubelet `common.go`: a hash of what defines it). */
export function staticPodUid(object: unknown, file: string, nodeName: string): string {
  return createHash('md5').update(file).update(JSON.stringify(object)).update(nodeName).digest('hex');
}

/**
 * The pod for manifest `m` on `nodeName`, decoded and defaulted afresh (kubelet file source).
 * `objects` hold the RuntimeClasses the pod may name.
 */
export function toAgentPod(m: ManifestPod, nodeName: string, objects: readonly KubeObject[]): AgentPod {
  const object = applyPodDefaults(structuredClone(m.object));
  const meta = (object.metadata ??= {}) as Record<string, unknown>;
  const name = `${m.name}-${nodeName}`;
  meta.name = name;
  meta.namespace = m.namespace;
  const uid =
    typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : staticPodUid(m.object, m.file, nodeName);
  meta.uid = uid;
  const pod: AgentPod = {
    key: `${m.namespace}/${name}`,
    manifestKey: m.key,
    name,
    namespace: m.namespace,
    uid,
    file: m.file,
    hash: m.hash,
    object,
  };
  const handler = runtimeHandlerFor(object, objects);
  if (handler !== undefined) pod.runtimeHandler = handler;
  return pod;
}

/** Every container of a pod object, init containers first, each waiting with no reason yet. */
export function initialContainerStates(object: Record<string, unknown>): ContainerImageState[] {
  const spec = (object.spec ?? {}) as Record<string, unknown>;
  const out: ContainerImageState[] = [];
  for (const list of ['initContainers', 'containers', 'ephemeralContainers']) {
    const cs = spec[list];
    if (!Array.isArray(cs)) continue;
    for (const c of cs as Record<string, unknown>[]) {
      out.push({
        name: typeof c.name === 'string' ? c.name : '',
        list,
        image: typeof c.image === 'string' ? c.image : '',
        imagePullPolicy: typeof c.imagePullPolicy === 'string' ? c.imagePullPolicy : '',
        state: 'Waiting',
        reason: '',
        message: '',
        imageRef: '',
      });
    }
  }
  return out;
}

/** The view of a pod the agent just started (no sync yet). */
export function newPodView(pod: AgentPod, createdAt: number): PodView {
  const extensions = staticPodExtensions(pod.object);
  const volumes = initialVolumeStates(pod.object);
  return {
    ...(extensions.length > 0 ? { extensions } : {}),
    ...(volumes.length > 0 ? { volumes } : {}),
    key: pod.key,
    name: pod.name,
    namespace: pod.namespace,
    uid: pod.uid,
    file: pod.file,
    createdAt,
    syncs: 0,
    containers: initialContainerStates(pod.object),
  };
}

/** What the reconciler does to pods. */
export interface StaticPodHooks {
  /**
   * The pod for a new or edited manifest. `previous` is the pod before the edit: static pods ignore it
   * (decoded afresh), pods from the API server use it (the API server's update defaulting).
   */
  toPod(m: ManifestPod, previous: AgentPod | undefined): AgentPod;
  /** Starts a pod (new, or the replacement of a changed one). */
  start(pod: AgentPod): void;
  /** Stops a pod; `removed` also forgets its view, `changed` is followed by its replacement. */
  drop(pod: AgentPod, why: 'removed' | 'changed'): Promise<void>;
  /** Forgets the view of a pod key. */
  forget(key: string): void;
  /** A pod was added (not a replacement). */
  added(pod: AgentPod): void;
}

/**
 * Applies each set of manifests the watcher reports, in order: pods whose manifest is gone are
 * dropped, pods whose manifest changed (hash or file) are replaced by a new pod, new manifests start
 * pods. Unchanged manifests keep their pods.
 */
export class StaticPodReconciler {
  private readonly byManifest = new Map<string, AgentPod>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly hooks: StaticPodHooks) {}

  /** Queues a set of manifests (the watcher's `onPods`). */
  readonly onPods = (manifests: Map<string, ManifestPod>): void => {
    this.queue = this.queue.then(() => this.apply(manifests));
  };

  /** Settles once every set queued so far is applied. */
  settled(): Promise<void> {
    return this.queue;
  }

  private async apply(manifests: Map<string, ManifestPod>): Promise<void> {
    for (const [mk, pod] of [...this.byManifest]) {
      if (manifests.has(mk)) continue;
      this.byManifest.delete(mk);
      await this.hooks.drop(pod, 'removed');
      this.hooks.forget(pod.key);
    }
    for (const [mk, m] of manifests) {
      const prev = this.byManifest.get(mk);
      if (prev !== undefined && prev.hash === m.hash && prev.file === m.file) continue;
      const next = this.hooks.toPod(m, prev);
      if (prev !== undefined) {
        await this.hooks.drop(prev, 'changed');
        if (prev.key !== next.key) this.hooks.forget(prev.key);
      } else {
        this.hooks.added(next);
      }
      this.byManifest.set(mk, next);
      this.hooks.start(next);
    }
  }
}
