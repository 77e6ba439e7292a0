/**
 * The seam the pull pipeline (`src/pull`) writes into: just what a pull needs from an image store,
 * so that kimg's own OCI-layout store and containerd's content and image services can both receive
 * a pull. Types only.
 *
 * The shape follows containerd `core/content/content.go` — a Provider (`readBlob`), an Ingester
 * (`writer`, resumable by ref, committed with the expected digest and size) — plus the image records
 * (`images.get`/`images.put`, containerd `core/images`) and a lease (containerd `core/leases`) that
 * keeps freshly committed blobs alive until the record that names them exists.
 *
 * The pipeline's order of calls, which every implementation may rely on:
 * 0. Once the reference is resolved (target digest and media type known, the platform's manifest
 *    selected), when the target has `present`: `content.readBlob(config digest)` and
 *    `images.get(key)`, then `present({record, manifest, config, index})`. A record in answer ends the
 *    pull there: no lease, no writer, no write of any kind.
 * 1. `lease(holder)` once per pull; `release()` after the record is written or the pull failed.
 * 2. For the config and each layer: `content.writer({ref, expected, holder})`; if `existing`, `commit()`
 *    at once; otherwise the registry streams bytes from `offset` into `sink()`, then `commit()`; on a
 *    failure `close()` (the partial ingest is kept for the next pull to resume).
 * 3. `content.readBlob(config digest)` once the config is committed, then `layersPlanned({manifest,
 *    config})` (when the target has it) before any layer's writer is opened.
 * 4. `content.writeBlob(bytes, expected)` for the manifest (and the index), whose bytes the registry
 *    client already verified.
 * 5. `images.get(key)` (to keep `lastUsed`/`pinned` of an earlier record), then `images.put(record)`.
 *
 * Failure codes the pipeline acts on: `STORE_LOCKED` from `writer` (another process writes the same
 * ref: the pipeline polls until it can take it or finds the blob committed) and `DIGEST_MISMATCH` from
 * `commit` of a resumed ingest (the pipeline downloads once more from byte 0). Any other error fails
 * the pull as it is.
 */
import type { ImageConfig, ImageIndex, ImageManifest } from '../oci/index.js';
import type { ImageKey, ImageRecord } from './records.js';

/** The blob a writer must produce. `size` is optional but strongly advised (bounds the write). */
export interface ExpectedBlob {
  digest: string;
  size?: number;
}

/**
 * Takes chunks synchronously: `write` copies what it keeps (the caller may reuse `chunk` as soon as it
 * returns) and returns false when the consumer should wait for `onDrain` before the next chunk; it
 * throws when the writer failed. The registry client's `BlobSink` has this shape.
 */
export interface ChunkSink {
  write(chunk: Uint8Array): boolean;
  onDrain(cb: (err?: Error) => void): void;
}

/** Options of {@link PullContent.writer}. */
export interface WriterOptions {
  /** Ingest key; the same ref resumes the same ingest. Defaults to the expected digest. */
  ref?: string;
  expected: ExpectedBlob;
  /** Who writes (shown in `STORE_LOCKED` messages), e.g. `pull 127.0.0.1:5000/small:1 (pid 42)`. */
  holder?: string;
}

/**
 * One resumable write of a blob, as the pipeline uses it (containerd `content.Writer`). The writer
 * holds the ref's lock from opening until `commit` or `close`.
 */
export interface PullWriter {
  /** True when the blob was already committed when the writer was opened: skip the download, `commit()`. */
  readonly existing: boolean;
  /** Bytes already in the ingest: the registry is asked for `Range: bytes=<offset>-`. */
  readonly offset: number;
  /** The writer as a synchronous chunk sink for the registry client's `copyBlob`. It does not commit. */
  sink(): ChunkSink;
  /**
   * Makes the blob visible under its digest, durably, after checking size and digest; success when
   * it already existed. Fails with `SIZE_MISMATCH` (short: the ingest is kept) or `DIGEST_MISMATCH`
   * (the ingest is discarded). Releases the lock either way.
   */
  commit(): Promise<unknown>;
  /** Persists what was written and releases the lock, keeping the ingest for a later resume. Idempotent. */
  close(): Promise<void>;
}

/** The content side of a {@link PullTarget} (containerd Provider + Ingester). */
export interface PullContent {
  /**
   * Reads a committed blob into memory, refusing one over `maxBytes`. `BLOB_NOT_FOUND` when absent.
   */
  readBlob(digest: string, options?: { maxBytes?: number }): Promise<Buffer>;
  /**
   * Opens (or resumes) a write of one blob. `STORE_LOCKED` while another writer (in this or another
   * process) holds the ref.
   */
  writer(options: WriterOptions): Promise<PullWriter>;
  /**
   * Writes a small blob (manifest, index) in one call and commits it; success when it already exists.
   * `DIGEST_MISMATCH`/`SIZE_MISMATCH` when `data` does not match `expected`; `STORE_LOCKED` as `writer`.
   */
  writeBlob(data: Uint8Array, expected?: ExpectedBlob): Promise<unknown>;
}

/** The image-record side of a {@link PullTarget} (containerd `images.Store`, narrowed). */
export interface PullImages {
  /** The record for `key`, or undefined when there is none. */
  get(key: ImageKey): Promise<ImageRecord | undefined>;
  /**
   * Creates or replaces the record for `(record.name, record.runtimeHandler)`, durably. Everything the
   * record names is already committed (the pipeline writes the record last).
   */
  put(record: ImageRecord): Promise<void>;
}

/** Held while a pull writes: blobs committed under it survive a concurrent garbage collection. */
export interface PullLease {
  /** Ends the lease; blobs no record names become collectable. */
  release(): Promise<void>;
}

/** What a pull resolved, handed to {@link PullTarget.present} before anything is written. */
export interface ResolvedPull {
  /** The record the pull would write (`lastUsed`/`pinned` carried over from `images.get`). */
  record: ImageRecord;
  /** The platform's image manifest. */
  manifest: ImageManifest;
  /** Its config, as the target holds it. */
  config: ImageConfig;
  /** The index the reference named, when it named one. */
  index?: ImageIndex | undefined;
}

/**
 * Where a pull writes: content, image records and a lease. Implemented by kimg's `Store` (an OCI
 * image layout on disk) and by the containerd backend.
 */
export interface PullTarget {
  /** Takes a lease named after `holder` (shown by GC and lock messages). */
  lease(holder: string): Promise<PullLease>;
  readonly content: PullContent;
  readonly images: PullImages;
  /**
   * Optional: told the manifest and the parsed config once the config is committed and checked, before
   * any layer is written, so a target can act on layers as they commit (containerd's backend unpacks
   * them in order while later ones download). A failure fails the pull.
   */
  layersPlanned?(plan: { manifest: ImageManifest; config: ImageConfig }): Promise<void>;
  /**
   * Optional, read-only: whether the resolved image is complete in this target — everything the
   * ordinary path would write is there and says what it would say. The record the target holds for it
   * ends the pull without a lease or any write (the kubelet's `Always` on a present image);
   * undefined (anything missing or different) takes the ordinary path, which writes or repairs what is
   * missing. Called only when the config is readable from the target; a failure counts as undefined.
   */
  present?(image: ResolvedPull): Promise<ImageRecord | undefined>;
}
