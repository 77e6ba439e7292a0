/**
 * Keeps the pods' image states in the agent's `PodStateStore` up to date from the three things that
 * change them: the image manager's events (through the pure reducers), the image service's progress
 * events (through the pull-progress tracker), and each sync's result.
 */
import type { BackoffEntry, ContainerImageResult, ManagerEvent } from '../../manager/index.js';
import { backoffKey } from '../../manager/index.js';
import type { ImagePullEvent } from '../../pull/index.js';
import type { ImageVolumeState, PodStateStore } from '../pod-state.js';
import { PullProgressTracker, layersOnPullEvent, type PullTarget } from './pull-progress.js';
import { newPodView, type AgentPod } from './static-pods.js';
import { containerOnManagerEvent, containerOnResult, podEventOf } from './waiting-reasons.js';

/** The pods' image states (see the module comment). */
export class PodImageStatus {
  private readonly tracker = new PullProgressTracker();
  /** The running pods by uid: manager events name the pod by uid. */
  private readonly byUid = new Map<string, AgentPod>();

  constructor(private readonly state: PodStateStore) {}

  /** A pod starts: its view (every container waiting) replaces any view under its key. */
  podStarted(pod: AgentPod, now: number): void {
    this.byUid.set(pod.uid, pod);
    this.state.upsert(newPodView(pod, now));
  }

  /** A pod stops: its manager events and progress are no longer applied (its view stays until forgotten). */
  podStopped(pod: AgentPod): void {
    this.byUid.delete(pod.uid);
    this.tracker.stopPod(pod.key, pod.uid);
  }

  /** Records a manager event on the pod and applies it to the container's state. */
  onManagerEvent(e: ManagerEvent): void {
    this.state.recordEvent(podEventOf(e));
    const pod = this.byUid.get(e.object.pod.uid);
    if (pod === undefined) return;
    const target: PullTarget = { podKey: pod.key, uid: pod.uid, container: e.object.container };
    this.state.updateContainer(pod.key, pod.uid, e.object.container, (c) => {
      const next = containerOnManagerEvent(c, e);
      if (e.reason === 'Pulling') this.tracker.start(c.image, target);
      else if (c.pulling !== undefined && next.pulling === undefined) this.tracker.stop(target);
      return next;
    });
  }

  /** Applies an image service progress event to every container pulling `image`. */
  onProgress(image: string, ev: ImagePullEvent): void {
    for (const t of this.tracker.targets(image)) {
      this.state.updateContainer(t.podKey, t.uid, t.container, (c) => {
        if (c.pulling === undefined) return;
        return { ...c, pulling: { ...c.pulling, layers: layersOnPullEvent(c.pulling.layers, ev) } };
      });
    }
  }

  /**
   * Applies a sync's result line to its container, with the back-off entries listed after the sync.
   */
  onResult(pod: AgentPod, line: ContainerImageResult, backoff: readonly BackoffEntry[]): void {
    const entry = backoff.find((x) => x.key === backoffKey(pod.uid, line.image));
    this.state.updateContainer(pod.key, pod.uid, line.container, (c) =>
      containerOnResult(c, line, entry, Date.now()),
    );
  }

  /**
   * Sets the pod's image volume states after a sync, with the back-off's next retry of each failed
   * one (keyed like a container image: pod uid and reference).
   */
  onVolumes(pod: AgentPod, volumes: ImageVolumeState[], backoff: readonly BackoffEntry[]): void {
    const now = Date.now();
    for (const v of volumes) {
      if (v.state === 'Ready') continue;
      const entry = backoff.find((x) => x.key === backoffKey(pod.uid, v.reference));
      if (entry !== undefined && entry.retryAtMs > now) v.nextRetryAt = entry.retryAtMs;
      if (entry?.lastError !== undefined) v.lastError = entry.lastError;
    }
    this.state.updatePod(pod.key, pod.uid, (p) => {
      p.volumes = volumes;
    });
  }

  /** Counts a finished sync (successful or not) on the pod's view. */
  onSynced(pod: AgentPod): void {
    this.state.updatePod(pod.key, pod.uid, (p) => {
      p.syncs++;
      p.lastSyncAt = Date.now();
    });
  }
}
