/**
 * Per-pod sync workers, as the kubelet's pod workers keep one goroutine per pod: a pod's syncs never
 * overlap; a sync asked for while one runs is coalesced into one more run after it; a pod whose images
 * are not all ready is synced again after the re-sync period; stopping a worker (pod removed or
 * changed) cancels its sync in progress and its pending re-sync.
 *
 * States of one worker: idle → running (→ running again when a sync was asked for meanwhile) → idle,
 * with a re-sync timer pending after a run that left the pod not ready; any state → stopped, final.
 *
 * Source: kubernetes `pkg/kubelet/pod_workers.go` (one worker per pod, `UpdatePod` coalescing, the
 * re-queue after a failed sync).
 */

/** Syncs one pod once; resolves whether every image is ready (false: sync again after the period). */
export type SyncPod<P> = (pod: P, signal: AbortSignal) => Promise<boolean>;

/** The timer functions a worker uses (injected by tests to step time by hand). */
export interface WorkerTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/** Node's timers, unref'd: a pending re-sync does not keep the process alive. */
export const NODE_TIMERS: WorkerTimers = {
  set: (fn, ms) => setTimeout(fn, ms).unref(),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Options of {@link PodWorker} and {@link PodWorkers}. */
export interface PodWorkerOptions<P> {
  syncPod: SyncPod<P>;
  /** Delay of the re-sync after a sync that left the pod not ready. */
  resyncMs: number;
  /** Default {@link NODE_TIMERS}. */
  timers?: WorkerTimers;
}

/** One pod's worker (see the module comment). */
export class PodWorker<P> {
  private readonly abort = new AbortController();
  private readonly timers: WorkerTimers;
  private timer: unknown;
  private runningSync: Promise<void> | undefined;
  private again = false;
  private isStopped = false;

  constructor(
    readonly pod: P,
    private readonly options: PodWorkerOptions<P>,
  ) {
    this.timers = options.timers ?? NODE_TIMERS;
  }

  /** The sync in progress, if any. */
  get running(): Promise<void> | undefined {
    return this.runningSync;
  }

  /** Whether a re-sync is pending. */
  get resyncPending(): boolean {
    return this.timer !== undefined;
  }

  get stopped(): boolean {
    return this.isStopped;
  }

  /**
   * Syncs the pod: starts a run when idle; while a run is in progress, asks for one more run after it
   * and returns the run in progress. A stopped worker does nothing.
   */
  sync(): Promise<void> {
    if (this.isStopped) return Promise.resolve();
    if (this.runningSync !== undefined) {
      this.again = true;
      return this.runningSync;
    }
    this.runningSync = this.run();
    return this.runningSync;
  }

  /** Stops for good: the sync in progress is aborted with `reason`, a pending re-sync is dropped. */
  stop(reason: Error): void {
    this.isStopped = true;
    this.abort.abort(reason);
    this.cancelTimer();
  }

  private async run(): Promise<void> {
    try {
      do {
        this.again = false;
        const ready = await this.options.syncPod(this.pod, this.abort.signal);
        if (!ready) this.schedule();
      } while (this.again && !this.isStopped);
    } finally {
      // Cleared in the same turn the loop ends: a sync asked for after this starts a new run.
      this.runningSync = undefined;
    }
  }

  private schedule(): void {
    if (this.isStopped) return;
    this.cancelTimer();
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      void this.sync();
    }, this.options.resyncMs);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
  }
}

/** The workers of every pod, by pod key. */
export class PodWorkers<P extends { key: string }> {
  private readonly workers = new Map<string, PodWorker<P>>();

  constructor(private readonly options: PodWorkerOptions<P>) {}

  /** Starts the pod's worker and its first sync (a worker under the same key is replaced). */
  start(pod: P): PodWorker<P> {
    const w = new PodWorker(pod, this.options);
    this.workers.set(pod.key, w);
    void w.sync();
    return w;
  }

  /** Stops and forgets the worker of `key` (no-op when there is none). */
  stop(key: string, reason: Error): void {
    const w = this.workers.get(key);
    if (w === undefined) return;
    w.stop(reason);
    this.workers.delete(key);
  }

  /** Stops every worker. */
  stopAll(reason: Error): void {
    for (const key of [...this.workers.keys()]) this.stop(key, reason);
  }

  /** The worker of `key`. */
  get(key: string): PodWorker<P> | undefined {
    return this.workers.get(key);
  }

  /** Whether any pod's sync is running. */
  busy(): boolean {
    return [...this.workers.values()].some((w) => w.running !== undefined);
  }

  /** Syncs every idle pod now and waits for it and for the syncs in progress (no second run behind them). */
  async syncAll(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.running ?? w.sync()));
  }
}
