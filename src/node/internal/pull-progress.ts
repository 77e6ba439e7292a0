/**
 * Live pull progress for the status page. Progress events come from the image service per image as
 * the pod spells it (after the default tag is applied), not per container, so the agent keeps which
 * containers are pulling which image: a container joins when the manager records `Pulling` for it and
 * leaves at `Failed`/`Pulled` or when its pod goes. Several containers (of one pod or of several) may
 * pull the same image at once; each sees the same layers.
 */
import { applyDefaultTag } from '../../reference/index.js';
import type { ImagePullEvent } from '../../pull/index.js';
import type { LayerProgress } from '../pod-state.js';

/** One container that is pulling: the pod (key and uid, so a replaced pod is not matched) and its name. */
export interface PullTarget {
  readonly podKey: string;
  readonly uid: string;
  readonly container: string;
}

function sameTarget(a: PullTarget, b: PullTarget): boolean {
  return a.podKey === b.podKey && a.uid === b.uid && a.container === b.container;
}

/**
 * The tracker's key: an image as the image service's progress events name it (default tag applied),
 * so `busybox` and `busybox:latest` meet. Made only by {@link progressImageKey}.
 */
export type PullImageKey = string & { readonly __pullImageKey: true };

/**
 * The image name progress events carry for `image`: with the default tag applied. An image that does
 * not parse keeps its spelling (the manager reports the invalid name itself; no progress will come).
 */
export function progressImageKey(image: string): PullImageKey {
  try {
    return applyDefaultTag(image) as PullImageKey;
  } catch {
    return image as PullImageKey;
  }
}

/** Which containers are pulling which image. */
export class PullProgressTracker {
  private readonly byImage = new Map<PullImageKey, PullTarget[]>();

  /** `target` is pulling `image` (as the pod spells it). Idempotent. */
  start(image: string, target: PullTarget): void {
    const key = progressImageKey(image);
    const targets = this.byImage.get(key) ?? [];
    if (!targets.some((t) => sameTarget(t, target))) targets.push({ ...target });
    this.byImage.set(key, targets);
  }

  /** `target` stopped pulling, whatever the image. */
  stop(target: PullTarget): void {
    this.removeWhere((t) => sameTarget(t, target));
  }

  /** Every container of the pod (`podKey` with `uid`) stopped pulling. */
  stopPod(podKey: string, uid: string): void {
    this.removeWhere((t) => t.podKey === podKey && t.uid === uid);
  }

  /**
   * The containers pulling `image` (the progress events' image name, or a key), in the order they
   * started.
   */
  targets(image: string): readonly PullTarget[] {
    return [...(this.byImage.get(progressImageKey(image)) ?? [])];
  }

  private removeWhere(match: (t: PullTarget) => boolean): void {
    for (const [image, targets] of [...this.byImage]) {
      const kept = targets.filter((t) => !match(t));
      if (kept.length === 0) this.byImage.delete(image);
      else this.byImage.set(image, kept);
    }
  }
}

/**
 * The layers of an in-progress pull after a progress event: `layer-start` adds a layer once (a cached
 * one is complete at once, a resumed one starts at the resumed offset), `bytes` moves its count,
 * `layer-done` completes it. Other events and unknown digests leave the list as it is.
 */
export function layersOnPullEvent(layers: readonly LayerProgress[], ev: ImagePullEvent): LayerProgress[] {
  switch (ev.type) {
    case 'layer-start':
      if (layers.some((l) => l.digest === ev.digest)) return [...layers];
      return [
        ...layers,
        {
          digest: ev.digest,
          size: ev.size,
          completed: ev.cached ? ev.size : ev.resumedFrom,
          kind: ev.kind,
          cached: ev.cached,
          done: false,
        },
      ];
    case 'bytes':
      return layers.map((l) => (l.digest === ev.digest ? { ...l, completed: ev.completed } : l));
    case 'layer-done':
      return layers.map((l) => (l.digest === ev.digest ? { ...l, completed: l.size, done: true } : l));
    default:
      return [...layers];
  }
}
