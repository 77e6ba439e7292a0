/**
 * Store garbage collection: mark every blob reachable from the image records and from `index.json`
 * (manifests → config + layers; indexes → their children that are present), then sweep the rest, plus
 * ingests left over longer than `ingestMaxAgeMs`. Like containerd's content GC after `RemoveImage`,
 * this is where `kimg rmi` actually frees space.
 *
 * Safety against concurrent pulls: the pull pipeline commits blobs before it writes the record. A blob
 * committed (or re-used, which touches it) at or after the start of a live lease (`Store.lease()`,
 * across processes via `<root>/leases/`) is never swept. Ingests with a live lock are never removed.
 * Mark and sweep run under the metadata lock, so no record appears between them.
 */
import { isIndexMediaType, isManifestMediaType } from '../oci/index.js';
import { isKimgError } from '../errors/index.js';
import { parseManifestBlob } from './layout.js';
import type { StoreContext } from './types.js';

/** Default age after which an unlocked ingest is garbage: 24 hours (a pull stalled that long restarts). */
export const DEFAULT_INGEST_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** Options of `Store.gc`. */
export interface GcOptions {
  /** Report what would be removed without removing anything. */
  dryRun?: boolean;
  /** Unlocked ingests not updated for this long are removed; default 24 h. */
  ingestMaxAgeMs?: number;
  /** "Now", injectable for tests. */
  now?: Date;
}

/** What GC removed (or would remove). */
export interface GcResult {
  dryRun: boolean;
  /** Blobs swept. */
  removed: { digest: string; size: number }[];
  bytesFreed: number;
  /** Ingests removed. */
  ingestsRemoved: { ref: string; bytes: number }[];
  /** Blobs kept because something references them. */
  referenced: number;
  /** Unreferenced blobs kept because a live lease protects them. */
  protected: number;
}

/**
 * The set of digests reachable from records and index.json. Missing or unparsable manifests are
 * skipped (their record's own digests are still marked), so GC never fails on a damaged store.
 */
export async function markReachable(ctx: StoreContext): Promise<Set<string>> {
  const marked = new Set<string>();
  const queue: { digest: string; mediaType?: string | undefined }[] = [];
  // Strict: a damaged record or index.json stops GC (STORE_CORRUPT naming the file) rather than letting
  // it sweep blobs that a repairable image still needs. `kimg store verify --repair` first.
  const records = await ctx.images.readAll();
  for (const r of records) {
    for (const d of [r.digest, r.manifestDigest, r.indexDigest, r.imageId, ...r.layers.map((l) => l.digest)])
      if (d) marked.add(d);
    queue.push({ digest: r.manifestDigest, mediaType: r.manifestMediaType });
    if (r.indexDigest) queue.push({ digest: r.indexDigest, mediaType: r.mediaType });
  }
  const index = await ctx.images.readIndex();
  for (const d of index.manifests) {
    marked.add(d.digest);
    queue.push({ digest: d.digest, mediaType: d.mediaType });
  }
  const seen = new Set<string>();
  while (queue.length > 0) {
    const item = queue.pop() as { digest: string; mediaType?: string };
    if (seen.has(item.digest)) continue;
    seen.add(item.digest);
    if (
      item.mediaType !== undefined &&
      !isManifestMediaType(item.mediaType) &&
      !isIndexMediaType(item.mediaType)
    )
      continue;
    let bytes: Buffer;
    try {
      bytes = await ctx.content.readBlob(item.digest, { verify: false });
    } catch {
      continue;
    }
    try {
      const parsed = parseManifestBlob(
        bytes,
        item.mediaType,
        ctx.content.blobPath(item.digest),
        'STORE_CORRUPT',
      );
      if (parsed.kind === 'index') {
        for (const c of parsed.index.manifests) {
          if (await ctx.content.hasBlob(c.digest)) {
            marked.add(c.digest);
            queue.push({ digest: c.digest, mediaType: c.mediaType });
          }
        }
      } else {
        marked.add(parsed.manifest.config.digest);
        for (const l of parsed.manifest.layers) marked.add(l.digest);
      }
    } catch {
      // a damaged manifest: verify reports it; GC keeps what the records name
    }
  }
  return marked;
}

/** Runs store GC (see the file header). */
export async function runGc(ctx: StoreContext, options: GcOptions = {}): Promise<GcResult> {
  const dryRun = options.dryRun === true;
  const now = (options.now ?? new Date()).getTime();
  const maxAge = options.ingestMaxAgeMs ?? DEFAULT_INGEST_MAX_AGE_MS;
  return ctx.withMetadataLock('store gc', async () => {
    const marked = await markReachable(ctx);
    const leaseSince = await ctx.oldestLiveLease();
    const result: GcResult = {
      dryRun,
      removed: [],
      bytesFreed: 0,
      ingestsRemoved: [],
      referenced: 0,
      protected: 0,
    };
    for await (const blob of ctx.content.walk()) {
      if (marked.has(blob.digest)) {
        result.referenced++;
        continue;
      }
      // 1 s slack: filesystem timestamps may be coarser than the lease clock.
      if (leaseSince !== undefined && blob.committedAt.getTime() >= leaseSince.getTime() - 1000) {
        result.protected++;
        continue;
      }
      if (!dryRun) {
        try {
          await ctx.content.delete(blob.digest);
        } catch (e) {
          if (!isKimgError(e, 'BLOB_NOT_FOUND')) throw e;
          continue;
        }
      }
      result.removed.push({ digest: blob.digest, size: blob.size });
      result.bytesFreed += blob.size;
    }
    result.ingestsRemoved = await ctx.content.removeStaleIngests(maxAge, { now, dryRun });
    return result;
  });
}
