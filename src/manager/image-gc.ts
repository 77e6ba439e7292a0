/**
 * Image garbage collection, as the kubelet's image GC manager does it over the CRI: keep the image
 * filesystem's usage under `imageGCHighThresholdPercent` by removing unused images, least recently used
 * first, until usage is back at `imageGCLowThresholdPercent`; and remove images unused for longer than
 * `imageMaximumGCAge` regardless of usage.
 *
 * The algorithm (kubelet `GarbageCollect`, section 7 of the upstream-semantics digest):
 * 1. Detect: every image `listImages` reports is tracked under its key (`<id>` or `<id>,<handler>`,
 *    `imageRecordKey`) with the time it was first detected and the time it was last seen in use.
 * 2. Candidates: images not in use and not pinned (CRI `pinned`, or named in the configured pinned list,
 *    e.g. the sandbox image), ordered by last use, then first detection (the LRU rank).
 * 3. Max age (when `imageMaximumGCAge` > 0 and GC has been running for longer than it): every candidate
 *    unused for longer than the maximum age is removed. Failures abort the run with
 *    `wanted to free images older than <d>, encountered errors in image deletion: <errs>`.
 * 4. Usage: `100 - floor(available * 100 / capacity)` of the image filesystem (statfs). Capacity 0 is a
 *    `InvalidDiskCapacity` warning. At or above the high threshold, `capacity * (100 - low) / 100 -
 *    available` bytes are to be freed: candidates are removed in LRU order, skipping those used since the
 *    run began and those first detected less than `imageMinimumGCAge` ago, until the sizes removed reach
 *    that amount. Falling short is a `FreeDiskSpaceFailed` warning
 *    (`Failed to garbage collect required amount of images. Attempted to free <n> bytes, but only found
 *    <m> bytes eligible to free.`); removal errors end the run with
 *    `wanted to free <n> bytes, but freed <m> bytes space with errors in image deletion: <errs>`.
 * 5. A run that fails right after a failed run records `ImageGCFailed` with the error text (the kubelet's
 *    GC loop). `imageGCHighThresholdPercent` 100 with no maximum age disables image GC.
 *
 * Removing an image removes its records only (CRI `RemoveImage`); the blobs no other image needs are
 * freed by the store's blob GC (kimg: `store.gc()`, passed in as `sweep`; containerd does it on its
 * own), which runs after the removals so the space is really returned. Shared layers stay while any
 * image uses them. Freed bytes are counted, as upstream, as the sum of the removed images' sizes.
 *
 * Where kimg differs (decided, not accidental): the kubelet keeps first-detection and last-use times in
 * memory (a restart makes every image new). kimg's CLI is not long-running, so the times can be kept in
 * a state file (`<root>/manager/image-gc.json`, `FileImageGCStateStore`) and, for kimg's own store, taken
 * from the image records (`storeUsageHints`: first detection = when the image was pulled or loaded, last
 * use = the record's `lastUsed`). The "GC has been running longer than the maximum age" guard uses the
 * time the state was created.
 *
 * Source: kubernetes `pkg/kubelet/images/image_gc_manager.go` (detectImages, GarbageCollect,
 * freeOldImages, freeSpace, imagesInEvictionOrder, byLastUsedAndDetected) and `pkg/kubelet/kubelet.go`
 * (StartGarbageCollection: the failure logging and the disabled case); `pkg/kubelet/apis/config/
 * validation/validation.go` for the configuration messages (in `src/config`).
 */
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { Counter, type Registry } from 'prom-client';
import type { KubeletImageConfig } from '../config/index.js';
import { goDurationString } from '../config/index.js';
import { KimgError, quote, toKimgError, type KimgErrorLike } from '../errors/index.js';
import { tryParseReference } from '../reference/index.js';
import { ensureDir, writeFileAtomic } from '../durable/index.js';
import type { ImageRecord } from '../store/index.js';
import { systemClock, type Clock } from '../clock/index.js';
import { imageRecordKey, type ImageInfo, type ImageService } from './image-service.js';

// --- policy ------------------------------------------------------------------------------------

/** The image GC policy (kubelet `ImageGCPolicy`), durations in milliseconds. */
export interface ImageGCPolicy {
  /** Usage (percent) at or above which space is freed. 100 with `maxAgeMs` 0 disables image GC. */
  highThresholdPercent: number;
  /** Usage (percent) space is freed down to. */
  lowThresholdPercent: number;
  /** Images first detected less than this long ago are never removed for space. */
  minAgeMs: number;
  /** Images unused for longer than this are removed regardless of usage; 0 = off. */
  maxAgeMs: number;
}

/** The kubelet's defaults (`SetDefaults_KubeletConfiguration`): 85 %, 80 %, 2m, off. */
export const DEFAULT_IMAGE_GC_POLICY: Readonly<ImageGCPolicy> = Object.freeze({
  highThresholdPercent: 85,
  lowThresholdPercent: 80,
  minAgeMs: 120_000,
  maxAgeMs: 0,
});

/** The kubelet's `ImageGCPeriod`: one image GC run every 5 minutes. */
export const IMAGE_GC_PERIOD_MS = 5 * 60_000;

/**
 * Images pinned by default: containerd pins its sandbox image (`pinned_images.sandbox`, default
 * `registry.k8s.io/pause:3.10.2`), so the kubelet never collects it.
 */
export const DEFAULT_PINNED_IMAGES: readonly string[] = Object.freeze(['registry.k8s.io/pause:3.10.2']);

/** The policy a (validated) kubelet configuration gives (`parseNodeConfig(...).kubelet`). */
export function imageGCPolicyFromConfig(
  config: Pick<
    KubeletImageConfig,
    'imageGCHighThresholdPercent' | 'imageGCLowThresholdPercent' | 'imageMinimumGCAge' | 'imageMaximumGCAge'
  >,
): ImageGCPolicy {
  return {
    highThresholdPercent: config.imageGCHighThresholdPercent,
    lowThresholdPercent: config.imageGCLowThresholdPercent,
    minAgeMs: config.imageMinimumGCAge.ms,
    maxAgeMs: config.imageMaximumGCAge.ms,
  };
}

/**
 * Checks a policy the way the kubelet's `NewImageGCManager` does (configuration files are validated
 * earlier, and more strictly, by `src/config`: low must be below high there).
 *
 * @throws KimgError `CONFIG_INVALID` with upstream's message: `invalid HighThresholdPercent <n>, must be
 *   in range [0-100]`, the same for Low, `LowThresholdPercent <l> can not be higher than
 *   HighThresholdPercent <h>`; and for negative or non-finite ages.
 */
export function checkImageGCPolicy(policy: ImageGCPolicy): void {
  const problems: string[] = [];
  const { highThresholdPercent: high, lowThresholdPercent: low } = policy;
  if (!Number.isInteger(high) || high < 0 || high > 100)
    problems.push(`invalid HighThresholdPercent ${high}, must be in range [0-100]`);
  if (!Number.isInteger(low) || low < 0 || low > 100)
    problems.push(`invalid LowThresholdPercent ${low}, must be in range [0-100]`);
  if (low > high)
    problems.push(`LowThresholdPercent ${low} can not be higher than HighThresholdPercent ${high}`);
  for (const [k, v] of [
    ['minAgeMs', policy.minAgeMs],
    ['maxAgeMs', policy.maxAgeMs],
  ] as const) {
    if (!Number.isFinite(v) || v < 0) problems.push(`invalid ${k} ${v}, must be a non-negative duration`);
  }
  if (problems.length > 0) {
    throw new KimgError('CONFIG_INVALID', `invalid image GC policy: ${problems.join('; ')}`, {
      items: problems,
    });
  }
}

/** Whether the kubelet would not run image GC at all (high threshold 100 and no maximum age). */
export function imageGCDisabled(policy: ImageGCPolicy): boolean {
  return policy.highThresholdPercent === 100 && policy.maxAgeMs === 0;
}

// --- usage -------------------------------------------------------------------------------------

/** The image filesystem's statistics (kubelet `ImageFsStats`: capacity and available bytes). */
export interface ImageFsStats {
  capacityBytes: number;
  availableBytes: number;
  /** Bytes the image store itself holds (CRI `ImageFsInfo.used_bytes`), when known. */
  usedBytes?: number;
  /** The directory measured. */
  mountpoint?: string;
}

/** Where image GC reads the image filesystem's usage from. */
export interface FsUsageSource {
  /** @throws KimgError when the filesystem cannot be measured (`STORE_IO`). */
  imageFsStats(): Promise<ImageFsStats>;
}

/**
 * The real filesystem holding `path` (`statfs`): capacity = blocks × block size, available = blocks
 * available to unprivileged users × block size (what cAdvisor reports as the filesystem's available
 * bytes). `usedBytes`, when given, adds the store's own used bytes (e.g. from `store.df()`).
 */
export class StatfsUsageSource implements FsUsageSource {
  constructor(
    readonly path: string,
    private readonly usedBytes?: () => Promise<number>,
  ) {}

  async imageFsStats(): Promise<ImageFsStats> {
    let st;
    try {
      st = await fsp.statfs(this.path);
    } catch (e) {
      throw new KimgError(
        'STORE_IO',
        `cannot measure the image filesystem at ${quote(this.path)}: ${String(e)}`,
        {
          file: this.path,
          cause: e,
        },
      );
    }
    const out: ImageFsStats = {
      capacityBytes: st.blocks * st.bsize,
      availableBytes: st.bavail * st.bsize,
      mountpoint: this.path,
    };
    if (this.usedBytes) out.usedBytes = await this.usedBytes();
    return out;
  }
}

/** A usage source with set numbers (tests, simulations). */
export class FakeUsageSource implements FsUsageSource {
  constructor(
    public capacityBytes: number,
    public availableBytes: number,
  ) {}
  /** Thrown by the next reads while set. */
  error: KimgError | undefined;

  async imageFsStats(): Promise<ImageFsStats> {
    if (this.error) throw this.error;
    return { capacityBytes: this.capacityBytes, availableBytes: this.availableBytes };
  }
}

// --- the pure plan -----------------------------------------------------------------------------

/** An image as image GC tracks it. Times are clock milliseconds; `lastUsed` 0 = never seen in use. */
export interface TrackedImage {
  /** `<id>` or `<id>,<runtime handler>`. */
  key: string;
  id: string;
  /** '' = the default runtime. */
  runtimeHandler: string;
  size: number;
  /** Pinned by the runtime (CRI `pinned`). */
  pinned: boolean;
  /** Repo tags and digests, for display and for matching names. */
  names: string[];
  firstDetected: number;
  lastUsed: number;
}

/** Why an image is kept or removed. */
export type ImageGCReason =
  | 'in-use'
  | 'pinned'
  | 'too-young'
  | 'used-since-gc-began'
  | 'below-threshold'
  | 'enough-freed'
  | 'gc-disabled'
  | 'no-usage-stats'
  | 'max-age'
  | 'space'
  | 'remove-failed'
  | 'not-attempted';

/** The decision about one image. */
export interface ImageGCDecision {
  image: TrackedImage;
  action: 'keep' | 'delete';
  reason: ImageGCReason;
  /** 1-based position in eviction order (least recently used first), for GC candidates. */
  rank?: number;
  /** Bytes removing it frees (its size) for deletions, 0 for keeps. */
  bytes: number;
  /** For `remove-failed`: the error text. */
  error?: string;
}

/** A warning event for the Node (kubelet event reasons). */
export interface ImageGCWarning {
  reason: 'FreeDiskSpaceFailed' | 'InvalidDiskCapacity' | 'ImageGCFailed';
  message: string;
}

/** Input of {@link planImageGC}. */
export interface ImageGCPlanInput {
  images: readonly TrackedImage[];
  /** Keys of images in use by any container (running or exited). */
  inUse?: Iterable<string>;
  /** Keys pinned by configuration (resolve names with {@link resolveImageKeys}). */
  pinned?: Iterable<string>;
  /** The image filesystem's statistics; undefined = not available (only max age applies). */
  usage: ImageFsStats | undefined;
  policy: ImageGCPolicy;
  /** The time of this run (`freeTime`). */
  now: number;
  /** When image GC began (the kubelet's start; the state's creation in kimg). */
  beganGC: number;
  /** Do not apply the maximum age (the re-plan after the max-age removals). */
  skipMaxAge?: boolean;
}

/** The plan: a decision per image and the numbers behind it. */
export interface ImageGCPlan {
  /** Candidates in eviction order, then in-use and pinned images (by key). */
  decisions: ImageGCDecision[];
  deletions: ImageGCDecision[];
  keeps: ImageGCDecision[];
  /** Usage percent as the kubelet computes it (undefined without stats or with capacity 0). */
  usagePercent?: number;
  capacityBytes?: number;
  availableBytes?: number;
  overHighThreshold: boolean;
  /** Bytes to free to reach the low threshold (0 when under the high threshold). */
  toFree: number;
  /** Sum of sizes the space pass removes. */
  freed: number;
  /** Sum of sizes the max-age pass removes. */
  ageFreed: number;
  /** Candidates the space pass removes (assuming every removal succeeds), in order. */
  spaceOrder: TrackedImage[];
  /**
   * Every candidate the space pass may remove, in order (`spaceOrder` is a prefix): the executor walks
   * this list, so a failed removal is made up for by the next eligible image.
   */
  spaceEligible: TrackedImage[];
  /** Candidates the max-age pass removes. */
  ageOrder: TrackedImage[];
  warnings: ImageGCWarning[];
  /** The error `GarbageCollect` would return, if any. */
  error?: string;
}

/** The kubelet's eviction order: last used, then first detected (key breaks exact ties). */
function byLastUsedAndDetected(a: TrackedImage, b: TrackedImage): number {
  if (a.lastUsed !== b.lastUsed) return a.lastUsed - b.lastUsed;
  if (a.firstDetected !== b.firstDetected) return a.firstDetected - b.firstDetected;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** The kubelet's `usagePercent` and `amountToFree`, in exact integer arithmetic. */
export function imageFsUsage(
  capacityBytes: number,
  availableBytes: number,
  lowThresholdPercent: number,
): { usagePercent: number; toFree: number; available: number } {
  const cap = BigInt(Math.max(0, Math.trunc(capacityBytes)));
  let avail = BigInt(Math.max(0, Math.trunc(availableBytes)));
  if (avail > cap) avail = cap;
  if (cap === 0n) return { usagePercent: 0, toFree: 0, available: 0 };
  const usagePercent = 100 - Number((avail * 100n) / cap);
  const toFree = (cap * BigInt(100 - lowThresholdPercent)) / 100n - avail;
  return { usagePercent, toFree: Number(toFree), available: Number(avail) };
}

export const INVALID_CAPACITY_MESSAGE = 'invalid capacity 0 on image filesystem';

/** The `FreeDiskSpaceFailed` message (kubelet `GarbageCollect`). */
export function freeDiskSpaceFailedMessage(toFree: number, freed: number): string {
  return `Failed to garbage collect required amount of images. Attempted to free ${toFree} bytes, but only found ${freed} bytes eligible to free.`;
}

/**
 * Decides, without side effects, what one image GC run removes and keeps, assuming every removal
 * succeeds (see the module comment for the rules). Deterministic for a given input.
 */
export function planImageGC(input: ImageGCPlanInput): ImageGCPlan {
  const { policy, now } = input;
  const inUse = new Set(input.inUse ?? []);
  const pinnedKeys = new Set(input.pinned ?? []);
  const plan: ImageGCPlan = {
    decisions: [],
    deletions: [],
    keeps: [],
    overHighThreshold: false,
    toFree: 0,
    freed: 0,
    ageFreed: 0,
    spaceOrder: [],
    spaceEligible: [],
    ageOrder: [],
    warnings: [],
  };
  const fixed: ImageGCDecision[] = [];
  const candidates: TrackedImage[] = [];
  for (const image of input.images) {
    if (inUse.has(image.key)) fixed.push({ image, action: 'keep', reason: 'in-use', bytes: 0 });
    else if (image.pinned || pinnedKeys.has(image.key))
      fixed.push({ image, action: 'keep', reason: 'pinned', bytes: 0 });
    else candidates.push(image);
  }
  candidates.sort(byLastUsedAndDetected);
  fixed.sort((a, b) => (a.image.key < b.image.key ? -1 : a.image.key > b.image.key ? 1 : 0));
  const decided = new Map<string, ImageGCDecision>();
  const rank = new Map(candidates.map((c, i) => [c.key, i + 1]));
  const decide = (image: TrackedImage, action: 'keep' | 'delete', reason: ImageGCReason): void => {
    decided.set(image.key, {
      image,
      action,
      reason,
      rank: rank.get(image.key) as number,
      bytes: action === 'delete' ? image.size : 0,
    });
  };

  if (imageGCDisabled(policy)) {
    for (const c of candidates) decide(c, 'keep', 'gc-disabled');
  } else {
    // 1. Maximum age (only once GC has been running for longer than it).
    let remaining = candidates;
    if (!input.skipMaxAge && policy.maxAgeMs > 0 && now - input.beganGC > policy.maxAgeMs) {
      remaining = [];
      for (const c of candidates) {
        if (now - c.lastUsed > policy.maxAgeMs) {
          decide(c, 'delete', 'max-age');
          plan.ageOrder.push(c);
          plan.ageFreed += c.size;
        } else remaining.push(c);
      }
    }
    // 2. Usage.
    const usage = input.usage;
    if (usage === undefined) {
      for (const c of remaining) decide(c, 'keep', 'no-usage-stats');
    } else if (Math.trunc(usage.capacityBytes) <= 0) {
      plan.capacityBytes = 0;
      plan.availableBytes = 0;
      plan.warnings.push({ reason: 'InvalidDiskCapacity', message: INVALID_CAPACITY_MESSAGE });
      plan.error = INVALID_CAPACITY_MESSAGE;
      for (const c of remaining) decide(c, 'keep', 'no-usage-stats');
    } else {
      const u = imageFsUsage(usage.capacityBytes, usage.availableBytes, policy.lowThresholdPercent);
      plan.usagePercent = u.usagePercent;
      plan.capacityBytes = Math.trunc(usage.capacityBytes);
      plan.availableBytes = u.available;
      if (u.usagePercent >= policy.highThresholdPercent) {
        plan.overHighThreshold = true;
        plan.toFree = u.toFree;
        let freed = 0;
        for (const c of remaining) {
          if (c.lastUsed >= now) {
            decide(c, 'keep', 'used-since-gc-began');
            continue;
          }
          if (now - c.firstDetected < policy.minAgeMs) {
            decide(c, 'keep', 'too-young');
            continue;
          }
          plan.spaceEligible.push(c);
          if (freed >= u.toFree && plan.spaceOrder.length > 0) {
            decide(c, 'keep', 'enough-freed');
            continue;
          }
          decide(c, 'delete', 'space');
          plan.spaceOrder.push(c);
          freed += c.size;
        }
        plan.freed = freed;
        if (freed < u.toFree) {
          const message = freeDiskSpaceFailedMessage(u.toFree, freed);
          plan.warnings.push({ reason: 'FreeDiskSpaceFailed', message });
          plan.error = message;
        }
      } else {
        for (const c of remaining) decide(c, 'keep', 'below-threshold');
      }
    }
  }
  for (const c of candidates) {
    const d = decided.get(c.key) as ImageGCDecision;
    plan.decisions.push(d);
  }
  plan.decisions.push(...fixed);
  for (const d of plan.decisions) (d.action === 'delete' ? plan.deletions : plan.keeps).push(d);
  return plan;
}

/**
 * The space pass's walk over `order` with real removals: removes until the sizes removed reach
 * `toFree`; a failed removal is recorded and the walk goes on (kubelet `freeSpace`).
 */
async function walkForSpace(
  order: readonly TrackedImage[],
  toFree: number,
  remove: (image: TrackedImage) => Promise<KimgErrorLike | undefined>,
): Promise<{
  freed: number;
  removed: TrackedImage[];
  failed: { image: TrackedImage; error: KimgErrorLike }[];
}> {
  let freed = 0;
  const removed: TrackedImage[] = [];
  const failed: { image: TrackedImage; error: KimgErrorLike }[] = [];
  for (const image of order) {
    const error = await remove(image);
    if (error) {
      failed.push({ image, error });
      continue;
    }
    removed.push(image);
    freed += image.size;
    if (freed >= toFree) break;
  }
  return { freed, removed, failed };
}

/** Go's `errors.NewAggregate(errs).Error()`: one error as itself, several as `[a, b]`. */
function aggregate(errors: readonly { message: string }[]): string {
  if (errors.length === 1) return (errors[0] as { message: string }).message;
  return `[${errors.map((e) => e.message).join(', ')}]`;
}

// --- names → keys ------------------------------------------------------------------------------

function normalizedName(input: string): string | undefined {
  try {
    const r = tryParseReference(input);
    return r.ok ? r.reference.pullRef : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The keys of the tracked images each input names: a key (`<id>,<handler>` names that pair only), a full
 * image id or a hex prefix of one (≥ 4 characters, with or without `sha256:`), or a repo tag / repo
 * digest (normalized like the store's names: `busybox` → `docker.io/library/busybox:latest`). A name or
 * id matches the image for every runtime handler. Inputs that match nothing are listed in `unmatched`.
 */
export function resolveImageKeys(
  images: readonly Pick<TrackedImage, 'key' | 'id' | 'names'>[],
  inputs: Iterable<string>,
): { keys: Set<string>; unmatched: string[] } {
  const keys = new Set<string>();
  const unmatched: string[] = [];
  for (const raw of inputs) {
    const input = raw.trim();
    const norm = normalizedName(input);
    const hex = /^(sha256:)?([a-f0-9]{4,64})$/.exec(input)?.[2];
    let hit = false;
    for (const img of images) {
      const idHex = img.id.startsWith('sha256:') ? img.id.slice(7) : img.id;
      const match =
        img.key === input ||
        img.id === input ||
        (hex !== undefined && idHex.startsWith(hex)) ||
        img.names.includes(input) ||
        (norm !== undefined && img.names.some((n) => n === norm || normalizedName(n) === norm));
      if (match) {
        keys.add(img.key);
        hit = true;
      }
    }
    if (!hit) unmatched.push(raw);
  }
  return { keys, unmatched };
}

// --- tracking state ----------------------------------------------------------------------------

/** What image GC remembers between runs. Times are clock milliseconds; `lastUsed` 0 = never. */
export interface ImageGCState {
  /** When tracking began (the kubelet's `beganGC`). */
  since: number;
  /** Consecutive failed runs (the kubelet's `prevImageGCFailed`, as a count). */
  consecutiveFailures: number;
  images: Record<string, { firstDetected: number; lastUsed: number }>;
}

/** Where the tracking state lives. */
export interface ImageGCStateStore {
  /** The state, or undefined when there is none yet. @throws KimgError `STORE_CORRUPT`, `STORE_IO`. */
  load(): Promise<ImageGCState | undefined>;
  /** @throws KimgError `STORE_IO`. */
  save(state: ImageGCState): Promise<void>;
}

/** In-memory state: the kubelet's behaviour (a new process sees every image as new). */
export class MemoryImageGCStateStore implements ImageGCStateStore {
  private state: ImageGCState | undefined;
  async load(): Promise<ImageGCState | undefined> {
    return this.state === undefined ? undefined : structuredClone(this.state);
  }
  async save(state: ImageGCState): Promise<void> {
    this.state = structuredClone(state);
  }
}

/** The state file under a kimg root: `<root>/manager/image-gc.json`. */
export function imageGCStateFile(root: string): string {
  return join(root, 'manager', 'image-gc.json');
}

const STATE_VERSION = 1;

function toIso(ms: number): string | null {
  return ms > 0 ? new Date(ms).toISOString() : null;
}

/**
 * The state as a JSON file (`imageGCStateFile(root)`), written atomically (temp, fsync, rename), mode
 * 0600. Times are ISO 8601; `lastUsed: null` = never seen in use.
 */
export class FileImageGCStateStore implements ImageGCStateStore {
  readonly file: string;
  constructor(root: string) {
    this.file = imageGCStateFile(root);
  }

  private corrupt(what: string, cause?: unknown): KimgError {
    return new KimgError(
      'STORE_CORRUPT',
      `image GC state ${quote(this.file)} is not valid (${what}); remove the file to start tracking afresh (every image counts as newly detected)`,
      { file: this.file, ...(cause === undefined ? {} : { cause }) },
    );
  }

  async load(): Promise<ImageGCState | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new KimgError('STORE_IO', `cannot read image GC state ${quote(this.file)}: ${String(e)}`, {
        file: this.file,
        cause: e,
      });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw this.corrupt('not JSON', e);
    }
    const o = raw as { version?: unknown; since?: unknown; consecutiveFailures?: unknown; images?: unknown };
    if (typeof o !== 'object' || o === null || o.version !== STATE_VERSION)
      throw this.corrupt('no version 1');
    const time = (v: unknown, what: string): number => {
      if (v === null) return 0;
      const t = typeof v === 'string' ? Date.parse(v) : NaN;
      if (Number.isNaN(t)) throw this.corrupt(`${what} is not an ISO 8601 time`);
      return t;
    };
    const since = time(o.since, 'since');
    const failures = o.consecutiveFailures;
    if (typeof failures !== 'number' || !Number.isInteger(failures) || failures < 0)
      throw this.corrupt('consecutiveFailures is not a count');
    if (typeof o.images !== 'object' || o.images === null || Array.isArray(o.images))
      throw this.corrupt('images is not an object');
    const images: ImageGCState['images'] = {};
    for (const [k, v] of Object.entries(o.images as Record<string, unknown>)) {
      const e = v as { firstDetected?: unknown; lastUsed?: unknown } | null;
      if (typeof e !== 'object' || e === null)
        throw this.corrupt(`images[${JSON.stringify(k)}] is not an object`);
      images[k] = {
        firstDetected: time(e.firstDetected, `images[${JSON.stringify(k)}].firstDetected`),
        lastUsed: time(e.lastUsed ?? null, `images[${JSON.stringify(k)}].lastUsed`),
      };
    }
    return { since, consecutiveFailures: failures, images };
  }

  async save(state: ImageGCState): Promise<void> {
    const images: Record<string, { firstDetected: string | null; lastUsed: string | null }> = {};
    for (const k of Object.keys(state.images).sort()) {
      const e = state.images[k] as { firstDetected: number; lastUsed: number };
      images[k] = { firstDetected: toIso(e.firstDetected), lastUsed: toIso(e.lastUsed) };
    }
    const text =
      JSON.stringify(
        {
          version: STATE_VERSION,
          since: toIso(state.since),
          consecutiveFailures: state.consecutiveFailures,
          images,
        },
        null,
        1,
      ) + '\n';
    // Durable replace: temp file, fsync, rename, directory fsync (0600 in a 0700 directory).
    await ensureDir(dirname(this.file));
    await writeFileAtomic(this.file, text);
  }
}

// --- usage hints from kimg's store -------------------------------------------------------------

/** Per image key, what the image service knows about first detection and last use (clock ms). */
export type ImageUsageHints = () => Promise<Map<string, { firstDetected?: number; lastUsed?: number }>>;

/**
 * Hints from kimg's image records: per (image id, handler), first detection = the earliest
 * `pulledAt` of its records (kimg saw the image when it wrote it) and last use = the latest `lastUsed`.
 */
export function storeUsageHints(store: { images: { list(): Promise<ImageRecord[]> } }): ImageUsageHints {
  return async () => {
    const out = new Map<string, { firstDetected?: number; lastUsed?: number }>();
    for (const r of await store.images.list()) {
      const key = imageRecordKey(r.imageId, r.runtimeHandler);
      const pulled = Date.parse(r.pulledAt);
      const used = Date.parse(r.lastUsed);
      const e = out.get(key) ?? {};
      if (!Number.isNaN(pulled)) e.firstDetected = Math.min(e.firstDetected ?? Infinity, pulled);
      if (!Number.isNaN(used)) e.lastUsed = Math.max(e.lastUsed ?? 0, used);
      out.set(key, e);
    }
    return out;
  };
}

// --- the manager -------------------------------------------------------------------------------

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

/** Keeps image GC events in memory. */
export class MemoryImageGCEventRecorder implements ImageGCEventRecorder {
  readonly events: ImageGCEvent[] = [];
  record(event: ImageGCEvent): void {
    this.events.push(event);
  }
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
