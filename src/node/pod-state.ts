/**
 * The node agent's view of its pods, as the kubelet reports them in the pod status: per container the
 * image state (waiting with the kubelet's reason — `ContainerCreating` while pulling, `ErrImagePull`,
 * `ImagePullBackOff`, `ErrImageNeverPull`, `InvalidImageName`, `ImageInspectError` — or ready with the
 * image id), live per-layer pull progress, the back-off's next retry and last error; plus the node's
 * events with kubectl's aggregation (`(x4 over 20s)`).
 *
 * Everything here is plain data (no credentials: events and messages come from the image manager,
 * which never prints one), served as JSON by the agent's HTTP server and watched through `onChange`.
 *
 * Source: kubernetes `pkg/kubelet/kuberuntime/kuberuntime_container.go` (waiting reasons),
 * `pkg/kubelet/images/types.go`, client-go `tools/record/events_cache.go` (event aggregation),
 * kubectl `pkg/printers/internalversion/printers.go` (the STATUS column: the first waiting reason).
 */
import { EventEmitter } from 'node:events';

/** One layer of an in-progress pull. */
export interface LayerProgress {
  digest: string;
  size: number;
  completed: number;
  /** `config` or `layer`. */
  kind: string;
  cached: boolean;
  done: boolean;
}

/** A container's image state. */
export interface ContainerImageState {
  name: string;
  /** `initContainers`, `containers` or `ephemeralContainers`. */
  list: string;
  image: string;
  imagePullPolicy: string;
  /** `Waiting` until the image is ready; `Ready` after. */
  state: 'Waiting' | 'Ready';
  /** The waiting reason (kubectl's STATUS): '' when ready. */
  reason: string;
  /** The status message (the manager's). */
  message: string;
  /** The image id once ready. */
  imageRef: string;
  /** Set while the image is being pulled. */
  pulling?: { startedAt: number; layers: LayerProgress[] };
  /** While in back-off: when the next pull may be tried (ms since the epoch). */
  nextRetryAt?: number;
  /** The last pull error (`<reason>: <message>`), kept while the back-off entry lives. */
  lastError?: string;
}

/**
 * An image volume's state (KEP-4639 `volumes[].image`): pulled like a container image, then
 * materialised read-only under the agent's state directory.
 */
export interface ImageVolumeState {
  name: string;
  /** The image or artifact reference as the pod spells it. */
  reference: string;
  pullPolicy: string;
  /** `Ready` once pulled and materialised. */
  state: 'Waiting' | 'Ready';
  /** The waiting reason (`ContainerCreating`, `ErrImagePull`, `ImagePullBackOff`, …): '' when ready. */
  reason: string;
  message: string;
  /** The image id once pulled. */
  imageRef: string;
  /** The manifest digest of what was materialised. */
  digest: string;
  /** `image` (layers applied) or `artifact` (titled blobs as files), once materialised. */
  kind?: 'image' | 'artifact';
  /** The directory the volume is materialised in. */
  path?: string;
  /** An artifact's files (relative paths). */
  files?: string[];
  /** While in back-off: when the next pull may be tried (ms since the epoch). */
  nextRetryAt?: number;
  /** The last pull error (`<reason>: <message>`). */
  lastError?: string;
}

/** A pod as `kimg get pods` / the status page show it. */
export interface PodView {
  /** `<namespace>/<name>`. */
  key: string;
  name: string;
  namespace: string;
  uid: string;
  /** The manifest file. */
  file: string;
  /** When the agent first saw the pod (ms since the epoch); a changed manifest makes a new pod. */
  createdAt: number;
  /** Completed syncs. */
  syncs: number;
  lastSyncAt?: number;
  containers: ContainerImageState[];
  /**
   * What the pod uses that the kubelet refuses in a static pod and kimg accepts as its own extension
   * (pull Secrets or a ServiceAccount, resolved from the agent's secrets directory).
   */
  extensions?: string[];
  /** The pod's image volumes, in spec order (absent when it has none). */
  volumes?: ImageVolumeState[];
}

/** A recorded event (pod or node), kubectl-aggregated. */
export interface NodeEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  object:
    | { kind: 'Pod'; namespace: string; name: string; uid: string; container?: string }
    | { kind: 'Node'; name: string };
  firstTimestamp: number;
  lastTimestamp: number;
  count: number;
}

/** kubectl's STATUS column for one pod view. */
export function podStatus(pod: PodView): string {
  if (pod.syncs === 0 && pod.containers.every((c) => c.state === 'Waiting' && c.reason === ''))
    return 'Pending';
  const init = pod.containers.filter((c) => c.list === 'initContainers');
  for (const c of init) {
    if (c.state === 'Waiting' && c.reason !== '' && c.reason !== 'ContainerCreating')
      return `Init:${c.reason}`;
  }
  for (const c of pod.containers) {
    if (c.state === 'Waiting' && c.reason !== '' && c.reason !== 'ContainerCreating') return c.reason;
  }
  // A container cannot start before the image volumes it mounts are pulled: the kubelet reports the
  // volume's pull failure as the container's waiting reason.
  for (const v of pod.volumes ?? []) {
    if (v.state === 'Waiting' && v.reason !== '' && v.reason !== 'ContainerCreating') return v.reason;
  }
  if (
    pod.containers.length > 0 &&
    pod.containers.every((c) => c.state === 'Ready') &&
    (pod.volumes ?? []).every((v) => v.state === 'Ready')
  )
    return 'ImagesReady';
  return 'ContainerCreating';
}

/** `ready/total` over the regular containers (kubectl's READY column; here: image ready). */
export function podReady(pod: PodView): string {
  const regular = pod.containers.filter((c) => c.list === 'containers');
  return `${regular.filter((c) => c.state === 'Ready').length}/${regular.length}`;
}

/** Options of {@link PodStateStore}. */
export interface PodStateStoreOptions {
  /** Most events kept (oldest dropped). Default 500. */
  maxEvents?: number;
  now?: () => number;
}

/**
 * The pods and events of the agent. Emits `change` (`{kind: 'pods' | 'events' | 'store'}`) after
 * every update; listeners must not throw.
 */
export class PodStateStore extends EventEmitter {
  private readonly pods = new Map<string, PodView>();
  private readonly eventList: NodeEvent[] = [];
  private readonly maxEvents: number;
  private readonly now: () => number;

  constructor(options: PodStateStoreOptions = {}) {
    super();
    this.maxEvents = options.maxEvents ?? 500;
    this.now = options.now ?? Date.now;
  }

  private changed(kind: 'pods' | 'events' | 'store'): void {
    this.emit('change', { kind });
  }

  /** Every pod, sorted by namespace then name (copies). */
  list(): PodView[] {
    return [...this.pods.values()].sort((a, b) => a.key.localeCompare(b.key)).map((p) => structuredClone(p));
  }

  /** One pod (a copy) by `<namespace>/<name>`. */
  get(key: string): PodView | undefined {
    const p = this.pods.get(key);
    return p === undefined ? undefined : structuredClone(p);
  }

  /** Adds or replaces a pod (a changed manifest is a new pod: new uid, fresh state). */
  upsert(pod: PodView): void {
    this.pods.set(pod.key, pod);
    this.changed('pods');
  }

  /** Removes a pod; its events stay. */
  remove(key: string): boolean {
    const had = this.pods.delete(key);
    if (had) this.changed('pods');
    return had;
  }

  /**
   * Updates one container of a pod (no-op when the pod or container is gone or replaced): `update`
   * either changes the container in place or returns its new state (a reducer's result).
   */
  updateContainer(
    key: string,
    uid: string,
    container: string,
    update: (c: ContainerImageState) => ContainerImageState | void,
  ): void {
    const p = this.pods.get(key);
    if (p === undefined || p.uid !== uid) return;
    const i = p.containers.findIndex((x) => x.name === container);
    const c = p.containers[i];
    if (c === undefined) return;
    const next = update(c);
    if (next !== undefined) p.containers[i] = next;
    this.changed('pods');
  }

  /** Updates a pod in place (no-op when gone or replaced). */
  updatePod(key: string, uid: string, update: (p: PodView) => void): void {
    const p = this.pods.get(key);
    if (p === undefined || p.uid !== uid) return;
    update(p);
    this.changed('pods');
  }

  /** Records an event, aggregating repeats of the same object, reason and message (client-go). */
  recordEvent(
    event: Omit<NodeEvent, 'firstTimestamp' | 'lastTimestamp' | 'count'> & { timestamp?: number },
  ): void {
    const ts = event.timestamp ?? this.now();
    const same = (e: NodeEvent): boolean =>
      e.type === event.type &&
      e.reason === event.reason &&
      e.message === event.message &&
      JSON.stringify(e.object) === JSON.stringify(event.object);
    const existing = this.eventList.find(same);
    if (existing !== undefined) {
      existing.count++;
      existing.lastTimestamp = ts;
      // Move to the end: the list is ordered by last occurrence.
      this.eventList.splice(this.eventList.indexOf(existing), 1);
      this.eventList.push(existing);
    } else {
      this.eventList.push({
        type: event.type,
        reason: event.reason,
        message: event.message,
        object: event.object,
        firstTimestamp: ts,
        lastTimestamp: ts,
        count: 1,
      });
      if (this.eventList.length > this.maxEvents) this.eventList.shift();
    }
    this.changed('events');
  }

  /** Events, oldest first (copies); optionally only a pod's (by namespace and name). */
  events(filter: { namespace?: string; name?: string } = {}): NodeEvent[] {
    return this.eventList
      .filter(
        (e) =>
          (filter.name === undefined || (e.object.kind === 'Pod' && e.object.name === filter.name)) &&
          (filter.namespace === undefined ||
            (e.object.kind === 'Pod' && e.object.namespace === filter.namespace)),
      )
      .map((e) => structuredClone(e));
  }

  /** Signals that the store changed (pull committed, GC run). */
  storeChanged(): void {
    this.changed('store');
  }
}
