/**
 * The store summary served on `/api/store` and shown on the status page: the images (names, size,
 * pinned, in use by a pod, a pre-pull or a runtime's container, last used), the pre-pulls, the image
 * filesystem's usage against the GC thresholds, and the last GC run.
 */
import {
  resolveImageKeys,
  type FsUsageSource,
  type ImageGCPolicy,
  type ImageGCResult,
  type ImageService,
} from '../../manager/index.js';
import type { PrepullState } from '../prepull.js';
import type { GcRunSummary, StoreSummary } from '../types.js';

export type { GcRunSummary, StoreSummary };

/** What the summary is made of. */
export interface StoreSummaryInput {
  /** The store root, the CRI runtime's endpoint, or containerd's socket. */
  root: string;
  imageService: Pick<ImageService, 'listImages'>;
  /** kimg's image records (last-used times by image id); none for a CRI runtime's images. */
  records(): Promise<readonly { imageId: string; lastUsed: string }[]>;
  /** The images GC keeps as in use: ids or names, matched as image GC matches them. */
  inUse: readonly string[];
  prepull: PrepullState[];
  policy: Pick<ImageGCPolicy, 'highThresholdPercent' | 'lowThresholdPercent'>;
  gcPeriodMs: number;
  lastGc: GcRunSummary | undefined;
  usage: FsUsageSource;
}

/** The summary of a GC run: images removed, their sizes, the bytes the sweep reclaimed, the error. */
export function gcRunSummary(r: ImageGCResult): GcRunSummary {
  return {
    at: r.startedAt,
    removed: r.removed.length,
    bytes: r.removed.reduce((a, x) => a + x.bytes, 0),
    reclaimed: r.bytesReclaimed,
    ...(r.error !== undefined ? { error: r.error } : {}),
  };
}

/** Used percent of a filesystem, one decimal (0 for an unknown capacity). */
export function usedPercent(capacityBytes: number, availableBytes: number): number {
  return capacityBytes > 0 ? Math.round(((capacityBytes - availableBytes) * 1000) / capacityBytes) / 10 : 0;
}

/** Builds the summary; an unknown filesystem usage is left out. */
export async function summarizeStore(input: StoreSummaryInput): Promise<StoreSummary> {
  const infos = await input.imageService.listImages();
  const used = resolveImageKeys(
    infos.map((i) => ({ key: i.id, id: i.id, names: [...i.repoTags, ...i.repoDigests] })),
    input.inUse,
  ).keys;
  const records = await input.records();
  const images = infos.map((i) => {
    const lastUsed = records
      .filter((r) => r.imageId === i.id)
      .map((r) => r.lastUsed)
      .sort()
      .pop();
    return {
      names: [...i.repoTags, ...i.repoDigests],
      id: i.id,
      size: i.size,
      pinned: i.pinned,
      inUse: used.has(i.id),
      ...(lastUsed !== undefined ? { lastUsed } : {}),
    };
  });
  const summary: StoreSummary = {
    root: input.root,
    images,
    totalBytes: images.reduce((a, i) => a + i.size, 0),
    prepull: input.prepull,
    gc: {
      highThresholdPercent: input.policy.highThresholdPercent,
      lowThresholdPercent: input.policy.lowThresholdPercent,
      periodMs: input.gcPeriodMs,
      ...(input.lastGc !== undefined ? { lastRun: input.lastGc } : {}),
    },
  };
  try {
    const fs = await input.usage.imageFsStats();
    summary.usage = {
      capacityBytes: fs.capacityBytes,
      availableBytes: fs.availableBytes,
      usedPercent: usedPercent(fs.capacityBytes, fs.availableBytes),
    };
  } catch {
    // usage unknown
  }
  return summary;
}
