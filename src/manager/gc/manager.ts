/**
 * The image GC manager: detects images through the image service, plans a run, removes the chosen
 * images, sweeps the blobs they freed and reports warnings, events and metrics (kubelet
 * `realImageGCManager`).
 */
import { createRequire } from 'node:module';
import type { Counter, Registry } from 'prom-client';
import { goDurationString } from '../../config/index.js';
import { toKimgError, type KimgErrorLike } from '../../errors/index.js';
import { systemClock, type Clock } from '../../clock/index.js';
import { imageRecordKey, type ImageInfo, type ImageService } from '../image-service.js';
import {
  type ImageGCDecision,
  type ImageGCWarning,
  type TrackedImage,
  aggregate,
  freeDiskSpaceFailedMessage,
  planImageGC,
  resolveImageKeys,
  walkForSpace,
} from './plan.js';
import {
  DEFAULT_IMAGE_GC_POLICY,
  DEFAULT_PINNED_IMAGES,
  IMAGE_GC_PERIOD_MS,
  type ImageGCPolicy,
  checkImageGCPolicy,
  imageGCDisabled,
} from './policy.js';
import {
  type ImageGCState,
  type ImageGCStateStore,
  type ImageUsageHints,
  MemoryImageGCStateStore,
} from './state.js';
import type { FsUsageSource, ImageFsStats } from './usage.js';

/** A Warning event on the Node. */
export interface ImageGCEvent extends ImageGCWarning {
  type: 'Warning';
  object: { kind: 'Node'; name: string };
  /** Clock milliseconds. */
  timestamp: number;
}

/** Where image GC events go. `record` must not throw. */
export interface ImageGCEventRecorder {
  record(event: ImageGCEvent): void;
}

/** Counters of what image GC did in this process (also exported to prom-client when a registry is given). */
export interface ImageGCStats {
  runs: number;
  failedRuns: number;
  imagesRemoved: { age: number; space: number };
  bytesRemoved: { age: number; space: number };
  /** Bytes the blob sweep returned to the filesystem. */
  bytesReclaimed: number;
}

/** Options of {@link ImageGCManager}. */
export interface ImageGCManagerOptions {
  /** The image service images are listed from and removed through (kimg's store or a CRI runtime). */
  service: Pick<ImageService, 'listImages' | 'removeImage'>;
  /** The image filesystem's usage. */
  usage: FsUsageSource;
  /** Default {@link DEFAULT_IMAGE_GC_POLICY}; checked with {@link checkImageGCPolicy}. */
  policy?: ImageGCPolicy;
  /** Default the system clock. */
  clock?: Clock;
  /** Default: events are only returned in results. */
  recorder?: ImageGCEventRecorder;
  /** The Node events are about. Default `localhost`. */
  nodeName?: string;
  /** Images never collected, by name or id. Default {@link DEFAULT_PINNED_IMAGES}. */
  pinnedImages?: readonly string[];
  /** Default in memory (upstream behaviour). `FileImageGCStateStore` keeps times across processes. */
  state?: ImageGCStateStore;
  /** First-detection and last-use times the service knows (`storeUsageHints(store)`). */
  hints?: ImageUsageHints;
  /** Frees the blobs removed images no longer need (kimg: `() => store.gc()`); returns bytes freed. */
  sweep?: () => Promise<number>;
  /** Registers `kimg_image_garbage_collected_total` and `kimg_image_garbage_collected_bytes_total`. */
  metricsRegistry?: Registry;
  /**
   * The images the runtime's containers use (names or ids; e.g. containerd's containers), asked on
   * every run and dry run right after the images are listed, as the kubelet asks its runtime for its
   * pods (kubelet `detectImages`). They count as in use besides the run's own `inUse`; one that names
   * no image is not reported as unmatched (its container outlived its image). A failure fails the run:
   * nothing is removed while it is unknown which images containers use. Default: none.
   */
  containersInUse?: () => Promise<readonly string[]>;
}

/** Per-run options. */
export interface ImageGCRunOptions {
  /** Images in use (names, ids or keys): never removed, and their last use becomes now. */
  inUse?: readonly string[];
}

/** What one run did (or, for a dry run, would do). */
export interface ImageGCResult {
  dryRun: boolean;
  startedAt: number;
  usageBefore?: ImageFsStats;
  usageAfter?: ImageFsStats;
  /** The final decision per image (failed removals have reason `remove-failed`). */
  decisions: ImageGCDecision[];
  removed: { image: TrackedImage; reason: 'max-age' | 'space'; bytes: number }[];
  failed: { image: TrackedImage; error: KimgErrorLike }[];
  /** Bytes to free to reach the low threshold (0 below the high threshold). */
  toFree: number;
  /** Image sizes removed by the space pass. */
  freed: number;
  /** Bytes the blob sweep freed. */
  bytesReclaimed: number;
  events: ImageGCEvent[];
  /** `inUse` / pinned inputs that named no image. */
  unmatched: { inUse: string[]; pinned: string[] };
  /** The run's error text (the kubelet's `GarbageCollect` error), when it failed. */
  error?: string;
}

/**
 * The image GC manager over an image service (see the module comment). One run at a time: concurrent
 * calls are queued.
 */
export class ImageGCManager {
  readonly policy: ImageGCPolicy;
  readonly stats: ImageGCStats = {
    runs: 0,
    failedRuns: 0,
    imagesRemoved: { age: 0, space: 0 },
    bytesRemoved: { age: 0, space: 0 },
    bytesReclaimed: 0,
  };
  private readonly clock: Clock;
  private readonly stateStore: ImageGCStateStore;
  private readonly createdAt: number;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly counters: { images: Counter<'reason'>; bytes: Counter<'reason'> } | undefined;

  /** @throws KimgError `CONFIG_INVALID` for an invalid policy. */
  constructor(private readonly options: ImageGCManagerOptions) {
    this.policy = { ...(options.policy ?? DEFAULT_IMAGE_GC_POLICY) };
    checkImageGCPolicy(this.policy);
    this.clock = options.clock ?? systemClock;
    this.stateStore = options.state ?? new MemoryImageGCStateStore();
    this.createdAt = this.clock.now();
    if (options.metricsRegistry) {
      // prom-client is loaded only when a registry is given: every face opening a runtime without
      // metrics (`kimg gc`, `kimg explain`) starts without it.
      const { Counter } = createRequire(import.meta.url)('prom-client') as typeof import('prom-client');
      const registers = [options.metricsRegistry];
      this.counters = {
        images: new Counter({
          name: 'kimg_image_garbage_collected_total',
          help: 'Images removed by image garbage collection, by reason (age, space); kubelet image_garbage_collected_total',
          labelNames: ['reason'],
          registers,
        }),
        bytes: new Counter({
          name: 'kimg_image_garbage_collected_bytes_total',
          help: 'Sizes of the images removed by image garbage collection, by reason (age, space)',
          labelNames: ['reason'],
          registers,
        }),
      };
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async loadState(): Promise<ImageGCState> {
    return (await this.stateStore.load()) ?? { since: this.createdAt, consecutiveFailures: 0, images: {} };
  }

  /**
   * Lists the images and updates tracking (kubelet `detectImages`): new images get a first detection
   * time (the hint, else now), images in use get last use = now, vanished images are forgotten.
   */
  private async detect(
    state: ImageGCState,
    now: number,
    inUseInputs: readonly string[],
  ): Promise<{
    images: TrackedImage[];
    inUse: Set<string>;
    pinned: Set<string>;
    unmatched: ImageGCResult['unmatched'];
  }> {
    const infos: ImageInfo[] = await this.options.service.listImages();
    const hints = this.options.hints
      ? await this.options.hints()
      : new Map<string, { firstDetected?: number; lastUsed?: number }>();
    const images: TrackedImage[] = infos.map((info) => {
      const handler = info.spec?.runtimeHandler ?? '';
      return {
        key: imageRecordKey(info.id, handler),
        id: info.id,
        runtimeHandler: handler,
        size: info.size,
        pinned: info.pinned,
        names: [...info.repoTags, ...info.repoDigests],
        firstDetected: 0,
        lastUsed: 0,
      };
    });
    const inUse = resolveImageKeys(images, inUseInputs);
    const containers = this.options.containersInUse ? await this.options.containersInUse() : [];
    for (const k of resolveImageKeys(images, containers).keys) inUse.keys.add(k);
    const pinned = resolveImageKeys(images, this.options.pinnedImages ?? DEFAULT_PINNED_IMAGES);
    const seen = new Set<string>();
    for (const img of images) {
      seen.add(img.key);
      const prev = state.images[img.key];
      const hint = hints.get(img.key);
      img.firstDetected = hint?.firstDetected ?? prev?.firstDetected ?? now;
      img.lastUsed = Math.max(prev?.lastUsed ?? 0, hint?.lastUsed ?? 0, inUse.keys.has(img.key) ? now : 0);
      state.images[img.key] = { firstDetected: img.firstDetected, lastUsed: img.lastUsed };
    }
    for (const k of Object.keys(state.images)) if (!seen.has(k)) delete state.images[k];
    return {
      images,
      inUse: inUse.keys,
      pinned: pinned.keys,
      unmatched: { inUse: inUse.unmatched, pinned: pinned.unmatched },
    };
  }

  private event(w: ImageGCWarning, now: number): ImageGCEvent {
    const e: ImageGCEvent = {
      type: 'Warning',
      reason: w.reason,
      message: w.message,
      object: { kind: 'Node', name: this.options.nodeName ?? 'localhost' },
      timestamp: now,
    };
    try {
      this.options.recorder?.record(e);
    } catch {
      // a recorder must not fail GC
    }
    return e;
  }

  /**
   * Runs {@link garbageCollect} every `periodMs` (the kubelet's `ImageGCPeriod`, 5 min) until stopped,
   * with the images in use from `inUse`. Does nothing when GC is disabled (high threshold 100 without a
   * maximum age), as the kubelet does not start its loop then. The timer does not keep the process alive.
   */
  start(
    options: {
      periodMs?: number;
      inUse?: () => Promise<readonly string[]> | readonly string[];
      onResult?: (result: ImageGCResult) => void;
      onError?: (error: KimgErrorLike) => void;
    } = {},
  ): { stop(): void } {
    if (imageGCDisabled(this.policy)) return { stop: () => undefined };
    let running = false;
    const tick = async (): Promise<void> => {
      if (running) return;
      running = true;
      try {
        const inUse = options.inUse ? await options.inUse() : [];
        const result = await this.garbageCollect({ inUse });
        options.onResult?.(result);
      } catch (e) {
        options.onError?.(toKimgError(e, 'image garbage collection'));
      } finally {
        running = false;
      }
    };
    const timer = setInterval(() => void tick(), options.periodMs ?? IMAGE_GC_PERIOD_MS);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  /**
   * What a run would do now, without removing anything or writing state. Max-age removals are assumed
   * to free nothing before the space pass (the real run re-reads the usage after them).
   */
  plan(options: ImageGCRunOptions = {}): Promise<ImageGCResult> {
    return this.serial(() => this.run(options, true));
  }

  /**
   * One GC run (kubelet `GarbageCollect` plus its loop's failure handling). Deletion and threshold
   * failures are reported in the result (`error`, `failed`, events), not thrown.
   *
   * @throws KimgError from `listImages`, the usage source or the state store (the run counts as failed).
   */
  garbageCollect(options: ImageGCRunOptions = {}): Promise<ImageGCResult> {
    return this.serial(() => this.run(options, false));
  }

  private async run(options: ImageGCRunOptions, dryRun: boolean): Promise<ImageGCResult> {
    const now = this.clock.now();
    const state = await this.loadState();
    const result: ImageGCResult = {
      dryRun,
      startedAt: now,
      decisions: [],
      removed: [],
      failed: [],
      toFree: 0,
      freed: 0,
      bytesReclaimed: 0,
      events: [],
      unmatched: { inUse: [], pinned: [] },
    };
    try {
      await this.runInner(options, dryRun, state, now, result);
    } catch (e) {
      if (!dryRun) await this.finish(state, now, result, toKimgError(e).message);
      throw e;
    }
    if (!dryRun) await this.finish(state, now, result, result.error);
    return result;
  }

  private async finish(
    state: ImageGCState,
    now: number,
    result: ImageGCResult,
    error: string | undefined,
  ): Promise<void> {
    this.stats.runs++;
    if (error !== undefined) {
      this.stats.failedRuns++;
      if (state.consecutiveFailures > 0)
        result.events.push(this.event({ reason: 'ImageGCFailed', message: error }, now));
      state.consecutiveFailures++;
    } else state.consecutiveFailures = 0;
    await this.stateStore.save(state);
  }

  private async runInner(
    options: ImageGCRunOptions,
    dryRun: boolean,
    state: ImageGCState,
    now: number,
    result: ImageGCResult,
  ): Promise<void> {
    const policy = this.policy;
    const detected = await this.detect(state, now, options.inUse ?? []);
    result.unmatched = detected.unmatched;
    const usageBefore = imageGCDisabled(policy) ? undefined : await this.options.usage.imageFsStats();
    if (usageBefore) result.usageBefore = usageBefore;
    const base = {
      inUse: detected.inUse,
      pinned: detected.pinned,
      policy,
      now,
      beganGC: state.since,
    };
    const first = planImageGC({ ...base, images: detected.images, usage: usageBefore });
    const finalDecisions = new Map(first.decisions.map((d) => [d.image.key, d]));
    const emit = (w: ImageGCWarning): void => {
      const e = dryRun
        ? {
            type: 'Warning' as const,
            ...w,
            object: { kind: 'Node' as const, name: this.options.nodeName ?? 'localhost' },
            timestamp: now,
          }
        : this.event(w, now);
      result.events.push(e);
    };
    if (dryRun) {
      result.decisions = first.decisions;
      result.toFree = first.toFree;
      result.freed = first.freed;
      for (const w of first.warnings) emit(w);
      if (first.error !== undefined) result.error = first.error;
      return;
    }
    const remove = async (image: TrackedImage): Promise<KimgErrorLike | undefined> => {
      try {
        const spec =
          image.runtimeHandler === ''
            ? { image: image.id }
            : { image: image.id, runtimeHandler: image.runtimeHandler };
        await this.options.service.removeImage(spec);
        delete state.images[image.key];
        return undefined;
      } catch (e) {
        return toKimgError(e, `removing image ${image.id}`);
      }
    };
    const count = (image: TrackedImage, reason: 'age' | 'space'): void => {
      this.stats.imagesRemoved[reason]++;
      this.stats.bytesRemoved[reason] += image.size;
      this.counters?.images.inc({ reason });
      this.counters?.bytes.inc({ reason }, image.size);
      result.removed.push({ image, reason: reason === 'age' ? 'max-age' : 'space', bytes: image.size });
    };
    const fail = (image: TrackedImage, error: KimgErrorLike): void => {
      result.failed.push({ image, error });
      const d = finalDecisions.get(image.key);
      if (d)
        finalDecisions.set(image.key, {
          ...d,
          action: 'keep',
          reason: 'remove-failed',
          bytes: 0,
          error: error.message,
        });
    };
    const sweep = async (): Promise<void> => {
      if (!this.options.sweep) return;
      const bytes = await this.options.sweep();
      result.bytesReclaimed += bytes;
      this.stats.bytesReclaimed += bytes;
    };
    const finishDecisions = (): void => {
      result.decisions = first.decisions.map((d) => finalDecisions.get(d.image.key) as ImageGCDecision);
    };

    // 1. Maximum age.
    const ageErrors: KimgErrorLike[] = [];
    const removedByAge = new Set<string>();
    for (const image of first.ageOrder) {
      const error = await remove(image);
      if (error) {
        ageErrors.push(error);
        fail(image, error);
      } else {
        removedByAge.add(image.key);
        count(image, 'age');
      }
    }
    if (ageErrors.length > 0) {
      // The kubelet returns here: no space pass after a failed max-age pass.
      if (removedByAge.size > 0) await sweep();
      for (const d of first.decisions) {
        if (d.reason === 'space')
          finalDecisions.set(d.image.key, { ...d, action: 'keep', reason: 'not-attempted', bytes: 0 });
      }
      finishDecisions();
      result.error = `wanted to free images older than ${goDurationString(BigInt(Math.round(policy.maxAgeMs)) * 1_000_000n)}, encountered errors in image deletion: ${aggregate(ageErrors)}`;
      result.usageAfter = await this.options.usage.imageFsStats();
      return;
    }

    // 2. Space, over fresh statistics when the max-age pass freed something.
    let plan = first;
    if (removedByAge.size > 0) {
      await sweep();
      const usage = await this.options.usage.imageFsStats();
      plan = planImageGC({
        ...base,
        images: detected.images.filter((i) => !removedByAge.has(i.key)),
        usage,
        skipMaxAge: true,
      });
      for (const d of plan.decisions) finalDecisions.set(d.image.key, d);
    }
    result.toFree = plan.toFree;
    if (plan.warnings.some((w) => w.reason === 'InvalidDiskCapacity')) {
      for (const w of plan.warnings) emit(w);
      result.error = plan.error as string;
      finishDecisions();
      return;
    }
    if (plan.overHighThreshold) {
      const walk = await walkForSpace(plan.spaceEligible, plan.toFree, remove);
      result.freed = walk.freed;
      for (const image of walk.removed) count(image, 'space');
      for (const f of walk.failed) fail(f.image, f.error);
      // The real walk may go further than the plan (after failures) or stop where the plan did.
      const removedKeys = new Set(walk.removed.map((i) => i.key));
      const failedKeys = new Set(walk.failed.map((f) => f.image.key));
      for (const image of plan.spaceEligible) {
        if (failedKeys.has(image.key)) continue;
        const d = finalDecisions.get(image.key) as ImageGCDecision;
        finalDecisions.set(
          image.key,
          removedKeys.has(image.key)
            ? { ...d, action: 'delete', reason: 'space', bytes: image.size }
            : { ...d, action: 'keep', reason: 'enough-freed', bytes: 0 },
        );
      }
      if (walk.removed.length > 0) await sweep();
      if (walk.failed.length > 0) {
        result.error = `wanted to free ${plan.toFree} bytes, but freed ${walk.freed} bytes space with errors in image deletion: ${aggregate(walk.failed.map((f) => f.error))}`;
      } else if (walk.freed < plan.toFree) {
        const message = freeDiskSpaceFailedMessage(plan.toFree, walk.freed);
        emit({ reason: 'FreeDiskSpaceFailed', message });
        result.error = message;
      }
    }
    finishDecisions();
    if (result.removed.length > 0) result.usageAfter = await this.options.usage.imageFsStats();
    else if (usageBefore) result.usageAfter = usageBefore;
  }
}
