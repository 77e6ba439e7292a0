/**
 * The store: kimg's durable, on-disk image store — an OCI image layout of blobs (readable by skopeo
 * and umoci), an ingest area for in-progress downloads, and image records (name, digest, image id,
 * size, platform, runtime handler, pulled-at, last-used).
 *
 * - `openStore({root})` opens or creates a root (`resolveStoreRoot`: `--root`, `$KIMG_ROOT`,
 *   `/var/lib/kimg` as root, `$XDG_DATA_HOME/kimg` otherwise) and recovers from crashes.
 * - `store.content` is the content store (containerd `core/content` shape): `info`, `openRead`,
 *   `writer` (ingest → verify → durable commit, resumable, locked per ref), `listIngests`, `delete`,
 *   `walk`.
 * - `store.images` holds the records, kept in step with `oci/index.json`.
 * - `store.gc()`, `store.verify({repair})`, `store.df()`, `store.load()`, `store.save()`.
 * - `PullTarget` is the seam the pull pipeline (src/pull) writes into; `Store` implements it.
 *
 * Failure codes: `STORE_CORRUPT`, `STORE_LOCKED`, `STORE_IO`, `STORE_VERSION_UNSUPPORTED`,
 * `BLOB_NOT_FOUND`, `IMAGE_NOT_PRESENT`, `LAYOUT_INVALID`, `DIGEST_MISMATCH`, `SIZE_MISMATCH`.
 */
export { openStore, type Store, type OpenStoreOptions, type Lease } from './store.js';
export {
  LocalContentStore,
  DEFAULT_HASHING,
  DEFAULT_READ_BLOB_MAX,
  type ContentStore,
  type IngestWriter,
  type ChunkSink,
  type BlobInfo,
  type ExpectedBlob,
  type WriterOptions,
  type IngestStatus,
  type CommitResult,
  type LocalContentStoreOptions,
} from './content-store.js';
export {
  createHasherFactory,
  WorkerHasherPool,
  InlineHasherFactory,
  resolveHashingMode,
  inlineSha256MBps,
  AUTO_INLINE_MIN_MBPS,
  type StreamHasher,
  type HasherFactory,
  type HashingMode,
  type WorkerHasherOptions,
} from './hasher.js';
export { indexEntryFor, type ImageStore } from './image-store.js';
export { RECORD_FORMAT_VERSION, type ImageRecord, type ImageKey, type ImageSource } from './records.js';
export {
  resolveStoreRoot,
  storePaths,
  STORE_FORMAT_VERSION,
  SYSTEM_ROOT,
  type StorePaths,
  type RootResolution,
} from './paths.js';
export { DEFAULT_INGEST_MAX_AGE_MS, type GcOptions, type GcResult } from './gc.js';
export type { VerifyOptions, VerifyResult, VerifyProblem, VerifyProblemKind } from './verify.js';
export type { DiskUsage, UsageCount } from './df.js';
export {
  parseLayoutSpec,
  canonicalImageName,
  type LayoutSpec,
  type LoadOptions,
  type LoadResult,
  type LoadedImage,
  type SaveOptions,
  type SaveResult,
  type CopyStats,
} from './transfer.js';
export { humanSize, truncateId, splitNameTag, repositoryOfName, isTaggedName } from './format.js';
export { lookupImages, lookupImage, recordsForReference } from './lookup.js';
export { ANNOTATION_KIMG_NAME, ANNOTATION_KIMG_HANDLER } from './layout.js';
export type { LockInfo as StoreLockInfo } from './internal/locks.js';
export type { PullTarget, PullContent, PullWriter, PullImages, PullLease, ResolvedPull } from './target.js';
/**
 * Durable file replacement and owner-only directories: src/durable's, re-exported for the callers that
 * took them from here.
 */
export { writeFileAtomic, ensureDir, FILE_MODE, DIR_MODE } from '../durable/index.js';
