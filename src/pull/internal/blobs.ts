/**
 * Getting one blob of a pull into the target: re-use it when it is there, join a download of it by a
 * concurrent pull in this process (single flight per digest, containerd PR #6702), wait for another
 * process that holds its ingest lock, or download it into a resumable writer — once more from byte 0
 * when a resumed ingest fails verification at commit.
 */
import { isKimgError } from '../../errors/index.js';
import type { Descriptor } from '../../oci/index.js';
import type { CallOptions, FetchedManifest, RegistryClient, RepositoryRef } from '../../registry/index.js';
import type { PullTarget } from '../../store/index.js';
import { DEFAULT_IMAGE_PULL_OPTIONS, type ImagePullEvent, type ImagePullStats } from '../types.js';
import { abortError, sleep } from './concurrency.js';

/** Whether a blob is the image config or a layer (shown in `layer-start` events). */
export type BlobKind = 'config' | 'layer';

/** Per-target in-flight blob downloads (single flight across concurrent pulls in this process). */
const inflightByTarget = new WeakMap<PullTarget, Map<string, Promise<void>>>();

function inflightFor(target: PullTarget): Map<string, Promise<void>> {
  let m = inflightByTarget.get(target);
  if (!m) {
    m = new Map();
    inflightByTarget.set(target, m);
  }
  return m;
}

/** What one pull's blob fetcher needs. */
export interface BlobFetcherOptions {
  target: PullTarget;
  registry: RegistryClient;
  repo: RepositoryRef;
  /** The signal and credentials of every registry call. */
  call: CallOptions;
  /** Names the writer in lock messages. */
  holder: string;
  progressIntervalMs: number;
  emit: (e: ImagePullEvent) => void;
  /** Counted into as blobs are re-used or downloaded. */
  stats: ImagePullStats;
}

/** Fetches the blobs of one pull into its target. */
export class BlobFetcher {
  constructor(private readonly o: BlobFetcherOptions) {}

  private get signal(): AbortSignal | undefined {
    return this.o.call.signal;
  }

  /** Stores a fetched manifest or index (bytes already verified by the registry client). */
  async ensureManifest(doc: FetchedManifest): Promise<void> {
    await this.singleFlight(
      doc.digest,
      () =>
        this.waitingForLocks(
          async () =>
            void (await this.o.target.content.writeBlob(doc.bytes, {
              digest: doc.digest,
              size: doc.bytes.length,
            })),
        ),
      () => {},
    );
  }

  /**
   * Makes sure a config or layer is committed: re-uses it when it is in the target (the writer touches
   * it, so a concurrent GC keeps it under this pull's lease), joins a download of it by a concurrent
   * pull in this process, or downloads it (resuming an interrupted ingest).
   */
  async ensureBlob(desc: Descriptor, kind: BlobKind): Promise<void> {
    const { emit, stats } = this.o;
    const ran = await this.singleFlight(
      desc.digest,
      () => this.waitingForLocks(() => this.downloadVerified(desc, kind)),
      () =>
        emit({
          type: 'layer-start',
          digest: desc.digest,
          size: desc.size,
          kind,
          cached: true,
          resumedFrom: 0,
        }),
    );
    if (!ran) {
      stats.blobsReused++;
      emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: false });
    }
  }

  /**
   * Single flight per digest within this process: joins a running `run` for `digest`, or runs it and
   * lets later callers join. Resolves true when this call ran it. A leader that was cancelled by its
   * own signal does not fail the joiners: one of them takes over.
   */
  private async singleFlight(digest: string, run: () => Promise<void>, onJoin: () => void): Promise<boolean> {
    const inflight = inflightFor(this.o.target);
    const signal = this.signal;
    let joined = false;
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const running = inflight.get(digest);
      if (running) {
        if (!joined) onJoin();
        joined = true;
        try {
          await running;
          return false;
        } catch (e) {
          if (isKimgError(e, 'ABORTED') && !signal?.aborted) continue;
          throw e;
        }
      }
      // A failure caused by our own cancellation is ABORTED, so joiners know to take over.
      const mine = run().catch((e: unknown) => {
        throw signal?.aborted && !isKimgError(e, 'ABORTED') ? abortError(signal) : e;
      });
      inflight.set(digest, mine);
      try {
        await mine;
        return true;
      } finally {
        if (inflight.get(digest) === mine) inflight.delete(digest);
      }
    }
  }

  /** Retries `fn` while another process holds the ingest lock (it commits the blob or gives up its lock). */
  private async waitingForLocks<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        if (!isKimgError(e, 'STORE_LOCKED')) throw e;
        await sleep(DEFAULT_IMAGE_PULL_OPTIONS.lockPollMs, this.signal);
      }
    }
  }

  /**
   * `download`, once more from byte 0 when a resumed ingest fails verification at commit (its prefix
   * was damaged, e.g. by a crash of the machine; the commit already discarded it).
   */
  private async downloadVerified(desc: Descriptor, kind: BlobKind): Promise<void> {
    const attempt: { resumedFrom: number } = { resumedFrom: 0 };
    try {
      await this.download(desc, kind, attempt);
    } catch (e) {
      if (!(attempt.resumedFrom > 0 && isKimgError(e, 'DIGEST_MISMATCH'))) throw e;
      await this.download(desc, kind, attempt);
    }
  }

  private async download(desc: Descriptor, kind: BlobKind, attempt: { resumedFrom: number }): Promise<void> {
    const { target, emit, stats } = this.o;
    attempt.resumedFrom = 0;
    const writer = await target.content.writer({
      ref: desc.digest,
      expected: { digest: desc.digest, size: desc.size },
      holder: this.o.holder,
    });
    if (writer.existing) {
      await writer.commit();
      emit({ type: 'layer-start', digest: desc.digest, size: desc.size, kind, cached: true, resumedFrom: 0 });
      stats.blobsReused++;
      emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: false });
      return;
    }
    const resumedFrom = writer.offset;
    attempt.resumedFrom = resumedFrom;
    emit({ type: 'layer-start', digest: desc.digest, size: desc.size, kind, cached: false, resumedFrom });
    let committed = false;
    try {
      if (resumedFrom < desc.size) {
        await this.o.registry.copyBlob(this.o.repo, desc, writer.sink(), {
          ...this.o.call,
          verify: false,
          offset: resumedFrom,
          onProgress: this.progressReporter(desc.digest),
        });
      }
      await writer.commit();
      committed = true;
    } finally {
      // Keep a partial ingest for the next pull to resume; commit already discarded corrupt content.
      if (!committed) await writer.close().catch(() => {});
    }
    stats.blobsDownloaded++;
    if (resumedFrom > 0) stats.blobsResumed++;
    stats.bytesDownloaded += desc.size - resumedFrom;
    emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: true });
  }

  /** `bytes` events for one blob, at most one per `progressIntervalMs` plus the last one. */
  private progressReporter(digest: string): (position: number, total: number) => void {
    let lastEmit = 0;
    return (position, total) => {
      const now = Date.now();
      if (now - lastEmit >= this.o.progressIntervalMs || position === total) {
        lastEmit = now;
        this.o.emit({ type: 'bytes', digest, completed: position, total });
      }
    };
  }
}
