/**
 * The pure plan of one image GC run (kubelet `GarbageCollect`: `freeOldImages`, then `freeSpace` in
 * `imagesInEvictionOrder`), and the resolution of configured image names to tracked keys. No I/O: the
 * manager feeds it the tracked images, the usage and the time, and carries out its removals.
 */
import type { KimgErrorLike } from '../../errors/index.js';
import { tryParseReference } from '../../reference/index.js';
import { type ImageGCPolicy, imageGCDisabled } from './policy.js';
import type { ImageFsStats } from './usage.js';

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
export async function walkForSpace(
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
export function aggregate(errors: readonly { message: string }[]): string {
  if (errors.length === 1) return (errors[0] as { message: string }).message;
  return `[${errors.map((e) => e.message).join(', ')}]`;
}

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
