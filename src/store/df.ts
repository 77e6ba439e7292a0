/**
 * `kimg store df`: where the store's bytes are — blobs (referenced by images or reclaimable by store
 * GC), in-progress ingests, quarantined files — and the filesystem's capacity (like the CRI
 * `ImageFsInfo` used bytes, plus what GC would free).
 */
import { promises as fsp, statfs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ioError, readDirIfExists } from './internal/fsutil.js';
import { markReachable } from './gc.js';
import type { StoreContext } from './types.js';

/** A count of files and their bytes. */
export interface UsageCount {
  count: number;
  bytes: number;
}

/** The report of `Store.df`. */
export interface DiskUsage {
  root: string;
  images: number;
  blobs: UsageCount;
  /** Blobs some image or index.json entry needs. */
  referenced: UsageCount;
  /** Blobs store GC would remove (ignoring lease protection). */
  reclaimable: UsageCount;
  ingests: UsageCount;
  quarantine: UsageCount;
  /** The filesystem holding the root. */
  filesystem: { totalBytes: number; freeBytes: number; availableBytes: number };
}

async function treeUsage(dir: string): Promise<UsageCount> {
  const out: UsageCount = { count: 0, bytes: 0 };
  for (const name of await readDirIfExists(dir)) {
    const p = join(dir, name);
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) {
      const sub = await treeUsage(p);
      out.count += sub.count;
      out.bytes += sub.bytes;
    } else if (st.isFile()) {
      out.count++;
      out.bytes += st.size;
    }
  }
  return out;
}

const statfsAsync = promisify(statfs);

/** Computes disk usage (reads every record and manifest; does not hash). */
export async function runDf(ctx: StoreContext): Promise<DiskUsage> {
  const marked = await markReachable(ctx);
  const blobs: UsageCount = { count: 0, bytes: 0 };
  const referenced: UsageCount = { count: 0, bytes: 0 };
  const reclaimable: UsageCount = { count: 0, bytes: 0 };
  for await (const b of ctx.content.walk()) {
    blobs.count++;
    blobs.bytes += b.size;
    const bucket = marked.has(b.digest) ? referenced : reclaimable;
    bucket.count++;
    bucket.bytes += b.size;
  }
  const ingests = await ctx.content.listIngests();
  let fs;
  try {
    fs = await statfsAsync(ctx.paths.root);
  } catch (e) {
    throw ioError('statfs', ctx.paths.root, e);
  }
  return {
    root: ctx.paths.root,
    images: (await ctx.images.list()).length,
    blobs,
    referenced,
    reclaimable,
    ingests: { count: ingests.length, bytes: ingests.reduce((a, i) => a + i.offset, 0) },
    quarantine: await treeUsage(ctx.paths.quarantine),
    filesystem: {
      totalBytes: fs.blocks * fs.bsize,
      freeBytes: fs.bfree * fs.bsize,
      availableBytes: fs.bavail * fs.bsize,
    },
  };
}
