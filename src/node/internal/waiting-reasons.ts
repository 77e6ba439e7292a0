/**
 * Pure reducers from what the image manager reports to a container's image state as the kubelet shows
 * it in the pod status: the manager's events while a sync runs (`Pulling` → `ContainerCreating` with
 * live progress, `Failed` → `ErrImagePull`, `BackOff` → `ImagePullBackOff`, `ErrImageNeverPull`), then
 * the sync's result per container (ready with the image id, or the result's waiting reason —
 * `InvalidImageName`, `ImageInspectError`, … — with the back-off's next retry and last error; init
 * containers not tried yet wait with `PodInitializing`).
 *
 * The reducers never mutate their input: the agent stores what they return.
 *
 * Source: kubernetes `pkg/kubelet/kuberuntime/kuberuntime_container.go` (waiting reasons and the
 * messages kept with them), `pkg/kubelet/images/image_manager.go` (the events).
 */
import type {
  BackoffEntry,
  ContainerImageResult,
  EnsureImageResult,
  ManagerEvent,
} from '../../manager/index.js';
import type { ContainerImageState, NodeEvent } from '../pod-state.js';

/** The waiting reason of a container whose init containers' images are not all ready. */
export const POD_INITIALIZING = 'PodInitializing';
/** The status message that goes with {@link POD_INITIALIZING}. */
export const POD_INITIALIZING_MESSAGE = 'an init container image is not ready';

/**
 * The container's state after a manager event. `Pulling` starts a fresh progress record (the
 * container waits in `ContainerCreating`); `Failed` and `Pulled` end it; `Failed`, `BackOff` and
 * `ErrImageNeverPull` set the waiting reason the kubelet shows until the sync's result arrives.
 * `InspectFailed` changes nothing here: the result carries `ImageInspectError`.
 */
export function containerOnManagerEvent(
  c: Readonly<ContainerImageState>,
  e: Pick<ManagerEvent, 'reason' | 'message' | 'timestamp'>,
): ContainerImageState {
  const next: ContainerImageState = { ...c };
  switch (e.reason) {
    case 'Pulling':
      next.state = 'Waiting';
      next.reason = 'ContainerCreating';
      next.message = e.message;
      delete next.nextRetryAt;
      next.pulling = { startedAt: e.timestamp, layers: [] };
      return next;
    case 'Failed':
      delete next.pulling;
      next.state = 'Waiting';
      next.reason = 'ErrImagePull';
      return next;
    case 'BackOff':
      next.state = 'Waiting';
      next.reason = 'ImagePullBackOff';
      return next;
    case 'ErrImageNeverPull':
      next.state = 'Waiting';
      next.reason = 'ErrImageNeverPull';
      next.message = e.message;
      return next;
    case 'Pulled':
      delete next.pulling;
      return next;
    default:
      return next;
  }
}

/**
 * The container's state after its line of a pod sync's result. A skipped container (an init
 * container before it failed) waits in `PodInitializing`; a ready one holds the image id and loses its
 * back-off fields; a failed one takes the result's reason (default `ErrImagePull`) and message, the
 * back-off entry's next retry while it is in the future, and the entry's last error — or, without an
 * entry, `<reason>: <message>` of this failure unless it is the back-off refusal itself (which is not a
 * new error). A line without a result leaves the state as it is.
 *
 * @param backoff the back-off entry of the pod's uid and the line's image, if any.
 * @param nowMs the current time (milliseconds since the epoch).
 */
export function containerOnResult(
  c: Readonly<ContainerImageState>,
  line: Pick<ContainerImageResult, 'result' | 'skipped'>,
  backoff: Pick<BackoffEntry, 'retryAtMs' | 'lastError'> | undefined,
  nowMs: number,
): ContainerImageState {
  if (line.skipped !== undefined)
    return { ...c, state: 'Waiting', reason: POD_INITIALIZING, message: POD_INITIALIZING_MESSAGE };
  const r = line.result;
  if (r === undefined) return { ...c };
  const next: ContainerImageState = { ...c, imagePullPolicy: r.pullPolicy };
  delete next.pulling;
  if (r.ok) {
    next.state = 'Ready';
    next.reason = '';
    next.message = r.message;
    next.imageRef = r.imageRef;
    delete next.nextRetryAt;
    delete next.lastError;
    return next;
  }
  next.state = 'Waiting';
  next.reason = r.reason ?? 'ErrImagePull';
  next.message = r.message;
  next.imageRef = '';
  if (backoff !== undefined && backoff.retryAtMs > nowMs) next.nextRetryAt = backoff.retryAtMs;
  else delete next.nextRetryAt;
  if (backoff?.lastError !== undefined) next.lastError = backoff.lastError;
  else if (r.reason !== 'ImagePullBackOff') next.lastError = `${next.reason}: ${r.message}`;
  return next;
}

/** Whether an ensure result is a pull that failed now (a `Failed` event), not a refusal or a hit. */
export function pullFailedNow(r: Pick<EnsureImageResult, 'ok' | 'events'>): boolean {
  return !r.ok && r.events.some((e) => e.reason === 'Failed');
}

/** The node event a manager event is recorded as (on the pod, naming the container). */
export function podEventOf(e: ManagerEvent): Omit<NodeEvent, 'firstTimestamp' | 'lastTimestamp' | 'count'> & {
  timestamp: number;
} {
  return {
    type: e.type,
    reason: e.reason,
    message: e.message,
    object: {
      kind: 'Pod',
      namespace: e.object.pod.namespace,
      name: e.object.pod.name,
      uid: e.object.pod.uid,
      container: e.object.container,
    },
    timestamp: e.timestamp,
  };
}
