/**
 * The pull progress hub: one place where every in-flight pull's per-layer progress is kept and
 * broadcast as lines a kubelet-side tool can read, shaped like the image pull progress proposal
 * (kubernetes/enhancements KEP-5334, `Progress{name, progress, total, error}`; see
 * docs/design/pull-progress.md).
 *
 * It is fed with the pipeline's typed {@link ImagePullEvent}s (kimg's store and containerd's store
 * backends), and with `begin`/`end` around every image service pull (every backend, so a CRI
 * runtime's pull, which reports no layers, still shows as an image line while it runs). A pull leaves
 * the hub when its last `end` arrives; its final line (`done: true`, or `error`) is the last one
 * listeners see for it. Memory is the in-flight pulls' layers only.
 */
import type { ImagePullEvent } from './types.js';

/**
 * One progress line. `name` is the proposal's field: the layer digest for a layer line, the image for
 * an image line. `image` and `layer` say the same explicitly, so a reader needs no digest test.
 */
export interface PullProgressLine {
  /** The layer digest (layer line) or the image as requested (image line). */
  name: string;
  /** The image as requested (`docker.io/library/busybox:latest`, or as the caller spelled it). */
  image: string;
  /** The layer (or config) digest; absent on image lines. */
  layer?: string;
  /** Bytes present so far (a layer's downloaded or reused bytes; an image's sum over its blobs). */
  progress: number;
  /** Bytes expected (0 while unknown, e.g. before the manifest is resolved or through CRI). */
  total: number;
  /** `CODE: message` of a failed pull (image line) — the pull's final line. */
  error?: string;
  /** The image's final line of a successful pull. */
  done?: true;
}

/** One blob of an in-flight pull. */
interface LayerState {
  progress: number;
  total: number;
  done: boolean;
}

/** One in-flight pull of an image (concurrent pulls of the same image share it). */
interface PullState {
  refs: number;
  layers: Map<string, LayerState>;
  error: string | undefined;
  committed: boolean;
}

/** A summary of an in-flight pull (status pages, metrics). */
export interface InFlightPull {
  image: string;
  progress: number;
  total: number;
  layers: number;
  layersDone: number;
}

export type PullProgressListener = (line: PullProgressLine) => void;

/** See the module comment. */
export class PullProgressHub {
  private readonly pulls = new Map<string, PullState>();
  private readonly listeners = new Set<PullProgressListener>();

  /** Subscribes to every line from now on; returns the unsubscribe function. */
  subscribe(listener: PullProgressListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Listeners subscribed now. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  /** A pull of `image` starts (an image service call). */
  begin(image: string): void {
    const p = this.pulls.get(image);
    if (p !== undefined) {
      p.refs++;
      return;
    }
    this.pulls.set(image, { refs: 1, layers: new Map(), error: undefined, committed: false });
    this.emit(this.imageLine(image, this.pulls.get(image)!));
  }

  /**
   * A pull of `image` ended (`error` when it failed). The last end of an image emits its final line
   * and drops it.
   */
  end(image: string, error?: { code: string; message: string }): void {
    const p = this.pulls.get(image);
    if (p === undefined) return;
    if (error !== undefined) p.error ??= `${error.code}: ${error.message}`;
    if (--p.refs > 0) return;
    this.finish(image, p);
  }

  /** A pipeline event of a pull of `image`. */
  event(image: string, ev: ImagePullEvent): void {
    let p = this.pulls.get(image);
    if (p === undefined) {
      // Events without a `begin` (a caller feeding the hub directly): the pull lasts until its own
      // `committed` or `error` event.
      p = { refs: 0, layers: new Map(), error: undefined, committed: false };
      this.pulls.set(image, p);
    }
    switch (ev.type) {
      case 'resolved':
        this.emit(this.imageLine(image, p));
        return;
      case 'layer-start': {
        const l = { progress: ev.cached ? ev.size : ev.resumedFrom, total: ev.size, done: ev.cached };
        p.layers.set(ev.digest, l);
        this.emit(layerLine(image, ev.digest, l));
        return;
      }
      case 'bytes': {
        const l = p.layers.get(ev.digest) ?? { progress: 0, total: ev.total, done: false };
        l.progress = ev.completed;
        l.total = ev.total;
        p.layers.set(ev.digest, l);
        this.emit(layerLine(image, ev.digest, l));
        return;
      }
      case 'layer-done': {
        const l = { progress: ev.size, total: ev.size, done: true };
        p.layers.set(ev.digest, l);
        this.emit(layerLine(image, ev.digest, l));
        this.emit(this.imageLine(image, p));
        return;
      }
      case 'committed':
        p.committed = true;
        if (p.refs === 0) this.finish(image, p);
        return;
      case 'error':
        p.error ??= `${ev.code}: ${ev.message}`;
        if (p.refs === 0) this.finish(image, p);
        return;
    }
  }

  /** The current lines of every in-flight pull: per image, its image line then its layer lines. */
  snapshot(): PullProgressLine[] {
    const out: PullProgressLine[] = [];
    for (const [image, p] of this.pulls) {
      out.push(this.imageLine(image, p));
      for (const [digest, l] of p.layers) out.push(layerLine(image, digest, l));
    }
    return out;
  }

  /** One summary per in-flight pull. */
  inFlight(): InFlightPull[] {
    return [...this.pulls].map(([image, p]) => {
      const { progress, total } = sums(p);
      let layersDone = 0;
      for (const l of p.layers.values()) if (l.done) layersDone++;
      return { image, progress, total, layers: p.layers.size, layersDone };
    });
  }

  private finish(image: string, p: PullState): void {
    this.pulls.delete(image);
    const line = this.imageLine(image, p);
    if (p.error !== undefined) line.error = p.error;
    else line.done = true;
    this.emit(line);
  }

  private imageLine(image: string, p: PullState): PullProgressLine {
    return { name: image, image, ...sums(p) };
  }

  private emit(line: PullProgressLine): void {
    for (const l of this.listeners) {
      try {
        l(line);
      } catch {
        // A listener is a face's writer: its failure must never fail or stall the pull.
      }
    }
  }
}

function sums(p: PullState): { progress: number; total: number } {
  let progress = 0;
  let total = 0;
  for (const l of p.layers.values()) {
    progress += l.progress;
    total += l.total;
  }
  return { progress, total };
}

function layerLine(image: string, digest: string, l: LayerState): PullProgressLine {
  return { name: digest, image, layer: digest, progress: l.progress, total: l.total };
}
