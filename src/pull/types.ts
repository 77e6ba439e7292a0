/**
 * The pull pipeline's public types: options, progress events, statistics and the result.
 */
import type { AuthConfig } from '../credentials/index.js';
import type { Platform } from '../platform/index.js';
import type { RegistryClient } from '../registry/index.js';
import type { ImageRecord, PullTarget } from '../store/index.js';

/** Progress events of a pull, in the order they happen. */
export type ImagePullEvent =
  | {
      type: 'resolved';
      image: string;
      digest: string;
      mediaType: string;
      manifestDigest: string;
      platform: string;
    }
  | {
      type: 'layer-start';
      digest: string;
      size: number;
      kind: 'config' | 'layer';
      /**
       * Already in the store (nothing to download), or joined another pull's download. If that pull is
       * cancelled, this one takes over and emits a second `layer-start` with `cached: false`.
       */
      cached: boolean;
      /** Bytes of a previous, interrupted download that are resumed rather than fetched again. */
      resumedFrom: number;
    }
  | { type: 'bytes'; digest: string; completed: number; total: number }
  | { type: 'layer-done'; digest: string; size: number; downloaded: boolean }
  | { type: 'committed'; image: string; id: string; digest: string; size: number }
  | { type: 'error'; code: string; message: string };

/** Options of `pullImage`. Defaults in {@link DEFAULT_IMAGE_PULL_OPTIONS}. */
export interface ImagePullOptions {
  /** Where the image goes: kimg's `Store`, or any other {@link PullTarget}. */
  store: PullTarget;
  registry: RegistryClient;
  /** Platform to select from an index: `os/arch[/variant]` or an object. Default: the host (containerd `Default()`). */
  platform?: string | Platform | undefined;
  /** Credentials for this pull; `null` = anonymous; undefined = the client's `credentials` option. */
  auth?: AuthConfig | null | undefined;
  /** Registry for single-component names (`busybox`). Default `docker.io`. */
  defaultRegistry?: string | undefined;
  /** CRI runtime handler the image is pulled for (`RuntimeClassInImageCriApi`). Default ''. */
  runtimeHandler?: string | undefined;
  /** Blobs downloaded at once. Default 3 (containerd `max_concurrent_downloads`). */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((event: ImagePullEvent) => void) | undefined;
  /** Minimum interval between `bytes` events per blob (ms). Default 100. */
  progressIntervalMs?: number | undefined;
}

export const DEFAULT_IMAGE_PULL_OPTIONS = Object.freeze({
  /** containerd's CRI `max_concurrent_downloads` default. */
  concurrency: 3,
  progressIntervalMs: 100,
  /** How often a process waiting on another process's ingest lock looks again. */
  lockPollMs: 100,
});

/** What a pull did. */
export interface ImagePullStats {
  /** Blobs (config + layers) fetched from the registry by this pull. */
  blobsDownloaded: number;
  /** Blobs already in the store, or fetched by a concurrent pull this one joined. */
  blobsReused: number;
  /** Blobs whose download continued an interrupted ingest. */
  blobsResumed: number;
  /** Bytes this pull asked the registry for (blob bodies; resumed prefixes not counted). */
  bytesDownloaded: number;
  /** Wall time of the pull in seconds. */
  seconds: number;
}

/** The result of a pull: the committed record and what it took. */
export interface ImagePullResult {
  record: ImageRecord;
  stats: ImagePullStats;
}
