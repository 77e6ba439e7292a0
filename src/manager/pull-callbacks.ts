/**
 * The callbacks an image service running kimg's pull pipeline reports through — kimg's own store
 * (`LocalImageService`) and containerd's (`ContainerdImageService`) alike — and the one place they are
 * bound to a pull, so both backends tell the same `onPulled` the same thing (the node agent refreshes
 * its store summary from it).
 */
import type { ImagePullEvent, ImagePullResult } from '../pull/index.js';
import type { ImageSpec } from './image-service.js';

/** Progress and completion callbacks of a pulling image service; `R` is what its pulls return. */
export interface PullCallbacks<R extends ImagePullResult = ImagePullResult> {
  /** Progress of every pull, with the spec it is for. Must not throw. */
  onProgress?: ((spec: ImageSpec, event: ImagePullEvent) => void) | undefined;
  /** After each successful pull, with what it committed and took (tests, metrics). Must not throw. */
  onPulled?: ((spec: ImageSpec, result: R) => void) | undefined;
}

/**
 * Runs `pull` with `callbacks` bound to `spec`: `pull` is given the progress callback for its events
 * (undefined when there is none); `onPulled` is told the result once the pull succeeded. A throwing
 * `onPulled` never fails the pull.
 */
export async function pullWithCallbacks<R extends ImagePullResult>(
  spec: ImageSpec,
  callbacks: PullCallbacks<R>,
  pull: (onProgress: ((event: ImagePullEvent) => void) | undefined) => Promise<R>,
): Promise<R> {
  const { onProgress, onPulled } = callbacks;
  const result = await pull(onProgress === undefined ? undefined : (e) => onProgress(spec, e));
  try {
    onPulled?.(spec, result);
  } catch {
    // A callback must not fail a pull.
  }
  return result;
}
