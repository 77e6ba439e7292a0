/**
 * Image GC in the agent: the GC manager runs on its period (and on demand) with the images in use by
 * the pods and the pre-pulls (the runtime's GC manager adds the images of the runtime's containers
 * itself on every run, e.g. containerd's); each run's reclaimed bytes are counted, its removals logged
 * and the store summary told, and the last run is kept for the summary.
 */
import type { ImageGCManager, ImageGCResult } from '../../manager/index.js';
import type { NodeMetrics } from '../metrics.js';
import type { AgentLog } from './log.js';
import { gcRunSummary, type GcRunSummary } from './store-summary.js';

/** What the runner uses. */
export interface ImageGcRunnerDeps {
  gc: ImageGCManager;
  periodMs: number;
  /** The images the agent's pods and pre-pulls use (ids or names), read at the start of each run. */
  inUse(): readonly string[] | Promise<readonly string[]>;
  metrics: NodeMetrics;
  log: AgentLog;
  /** Images were removed (the store summary changed). */
  storeChanged(): void;
}

/** Runs and reports image GC (see the module comment). */
export class ImageGcRunner {
  private last: GcRunSummary | undefined;
  private loop: { stop(): void } | undefined;

  constructor(private readonly deps: ImageGcRunnerDeps) {}

  /** The last run, once one ran. */
  get lastRun(): GcRunSummary | undefined {
    return this.last;
  }

  /** Starts the periodic runs (none when the policy disables GC). */
  start(): void {
    this.loop = this.deps.gc.start({
      periodMs: this.deps.periodMs,
      inUse: this.deps.inUse,
      onResult: (r) => this.report(r),
      onError: (e) => this.deps.log({ level: 'error', msg: `image garbage collection failed: ${e.message}` }),
    });
  }

  /** Stops the periodic runs. */
  stop(): void {
    this.loop?.stop();
  }

  /** Runs GC now with the images in use. */
  async runNow(): Promise<ImageGCResult> {
    const r = await this.deps.gc.garbageCollect({ inUse: await this.deps.inUse() });
    this.report(r);
    return r;
  }

  private report(r: ImageGCResult): void {
    this.deps.metrics.gcReclaimedBytes.inc(r.bytesReclaimed);
    this.last = gcRunSummary(r);
    if (r.removed.length > 0) {
      for (const x of r.removed)
        this.deps.log({
          level: 'info',
          msg: 'image garbage collected',
          image: x.image.names[0] ?? x.image.id,
          reason: x.reason,
          bytes: x.bytes,
        });
      this.deps.storeChanged();
    }
    if (r.error !== undefined) this.deps.log({ level: 'warn', msg: `image garbage collection: ${r.error}` });
  }
}
