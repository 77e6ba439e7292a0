/**
 * The content store: blobs addressed by digest under an OCI image layout's `blobs/<alg>/<hex>`, written
 * through an ingest area and made visible only by an atomic, durable commit.
 *
 * Shape follows containerd `core/content/content.go` (Provider = `openRead`/`readBlob`, InfoProvider =
 * `info`, Ingester = `writer`, IngestManager = `ingestStatus`/`listIngests`/`abortIngest`, Manager =
 * `walk`/`delete`) and the local implementation `plugins/content/local/{store,writer}.go`:
 *
 * - Ingest: `<ingestRoot>/<sha256(ref)>/{data,meta,lock}`, outside `blobs/`, so an in-progress
 *   download is never visible as a blob. containerd keeps `ref`, `expected`, `total`, `startedat` and
 *   `updatedat` as five files; kimg writes them as one JSON file, `meta` (five file writes per blob
 *   were a third of a small blob's file operations), and takes the update time from `data`'s mtime.
 *   Ingests an earlier kimg left in the five-file form are still read.
 * - Commit: fsync `data` → check size and digest (`SIZE_MISMATCH` / `DIGEST_MISMATCH` with expected
 *   and actual) → chmod read-only → rename into `blobs/<alg>/<hex>` → fsync that directory → remove the
 *   ingest. A blob that already exists is success (`alreadyExisted`). kimg's own store defers the
 *   directory fsync to `syncBlobs`, once per image record for all its blobs (`deferBlobDirSync`).
 * - Resume: re-opening a writer for the same ref continues from the bytes already in `data` (they are
 *   re-hashed first, like containerd's `resumeHash`), so a pull can continue with a `Range` request.
 * - Locks: one writer per ref, in process and across processes (`lock` file with holder, PID and
 *   since); a second writer gets `STORE_LOCKED` saying who holds it and for how long.
 *
 * SIGKILL at any point leaves at most an ingest directory and never a visible blob whose bytes do not
 * match its name: the only way into `blobs/` is the rename after verification.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { KimgError, isKimgError, quote } from '../errors/index.js';
import { MAX_MANIFEST_BYTES } from '../oci/index.js';
import { type DigestAlgorithm, DIGEST_ALGORITHMS, parseDigest } from './internal/digest.js';
import {
  DIR_MODE,
  ensureDir,
  errnoCode,
  fsyncDir,
  fsyncDirShared,
  ioError,
  isNotFound,
  isTempName,
  readDirIfExists,
  FILE_MODE,
} from './internal/fsutil.js';
import {
  acquireFileLock,
  type FileLock,
  isStale,
  type LockInfo,
  LockTable,
  readLockFile,
} from './internal/locks.js';
import { createHasherFactory, type HasherFactory, type HashingMode, type StreamHasher } from './hasher.js';
import { noteBytesThrough } from './internal/reclaim.js';
import { giveWriteBuffer, takeWriteBuffer, WRITE_BUFFER_BYTES } from './internal/buffers.js';
import type { ChunkSink, ExpectedBlob, PullContent, PullWriter, WriterOptions } from './target.js';

export type { ChunkSink, ExpectedBlob, WriterOptions };

/** What the store knows about a committed blob. */
export interface BlobInfo {
  digest: string;
  size: number;
  /** When the blob was committed (or last re-committed / touched). */
  committedAt: Date;
}

/** Progress of one ingest (containerd `content.Status`). */
export interface IngestStatus {
  ref: string;
  /** Bytes persisted in the ingest so far. */
  offset: number;
  /** Expected total size, when known. */
  total?: number;
  expected?: string;
  startedAt: Date;
  updatedAt: Date;
  /** The lock on this ingest, if a live writer holds it. */
  lock?: LockInfo;
}

/** Result of a commit. */
export interface CommitResult extends BlobInfo {
  /** True when the blob was already in the store (the ingest was discarded). */
  alreadyExisted: boolean;
}

/**
 * One write transaction (containerd `content.Writer`). Write chunks in order with `write`, then
 * `commit()`; `close()` keeps the ingest for a later resume; `abort()` deletes it. Not safe for
 * concurrent calls: await each `write` before the next (or use `writable()` with `stream.pipeline`).
 */
export interface IngestWriter extends PullWriter {
  readonly ref: string;
  readonly expected: Readonly<ExpectedBlob>;
  /**
   * Bytes accepted so far (buffered up to 1 MiB, all persisted by `close`/`commit`); after a resume it
   * starts at the resumed offset (ask the registry for `Range: bytes=<offset>-`).
   */
  readonly offset: number;
  /** The offset the writer was opened at (0 for a fresh ingest). */
  readonly resumedFrom: number;
  /** True when the blob was already committed when the writer was opened: skip the download and `commit()`. */
  readonly existing: boolean;
  /** Appends a chunk. Refuses bytes past the expected size (`SIZE_MISMATCH`, the ingest is discarded). */
  write(chunk: Uint8Array): Promise<void>;
  /** Truncates to zero and restarts the digest (the server ignored a `Range` request). */
  reset(): Promise<void>;
  /**
   * fsync → verify size and digest → rename into blobs → fsync directory. `SIZE_MISMATCH` when short
   * (the ingest is kept for resume), `DIGEST_MISMATCH` (the ingest is discarded). Releases the lock.
   */
  commit(): Promise<CommitResult>;
  /** Flushes and closes, keeping the ingest for a later resume. Releases the lock. Idempotent. */
  close(): Promise<void>;
  /** Deletes the ingest. Releases the lock. Idempotent. */
  abort(): Promise<void>;
  status(): IngestStatus;
  /** A Writable over `write` for `stream.pipeline` (backpressure included). It does not commit. */
  writable(): Writable;
  /**
   * The writer as a synchronous chunk sink (the registry client's `copyBlob` feeds it borrowed socket
   * bytes without a stream in between). It does not commit.
   */
  sink(): ChunkSink;
}

/** The content store seam (containerd `content.Store`). */
export interface ContentStore extends PullContent {
  /** Metadata of a committed blob; `BLOB_NOT_FOUND` when absent. */
  info(digest: string): Promise<BlobInfo>;
  /** Whether a blob is committed. */
  hasBlob(digest: string): Promise<boolean>;
  /** Streams a committed blob from `offset` (default 0); `BLOB_NOT_FOUND` when absent. */
  openRead(digest: string, options?: { offset?: number }): Promise<Readable>;
  /** Reads a whole blob into memory, refusing blobs over `maxBytes` (default the manifest cap, 4,393,216 bytes). */
  readBlob(digest: string, options?: { maxBytes?: number; verify?: boolean }): Promise<Buffer>;
  /** Opens (or resumes) a write transaction. `STORE_LOCKED` when another writer holds the ref. */
  writer(options: WriterOptions): Promise<IngestWriter>;
  /** Writes a small blob in one call (manifests, configs, indexes) and commits it. */
  writeBlob(data: Uint8Array, expected?: ExpectedBlob): Promise<CommitResult>;
  /** Status of the ingest for `ref`, or undefined. */
  ingestStatus(ref: string): Promise<IngestStatus | undefined>;
  /** Every ingest on disk (live or left over). */
  listIngests(): Promise<IngestStatus[]>;
  /** Removes an ingest; `STORE_LOCKED` when a live writer holds it. */
  abortIngest(ref: string): Promise<void>;
  /** The in-process lock on `ref`, if any (for single-flight decisions of the pull pipeline). */
  lockStatus(ref: string): LockInfo | undefined;
  /** Deletes a committed blob; `BLOB_NOT_FOUND` when absent. */
  delete(digest: string): Promise<void>;
  /** Every committed blob (order unspecified). */
  walk(): AsyncIterable<BlobInfo>;
  /** The path of a blob's file (whether or not it exists). */
  blobPath(digest: string): string;
  /**
   * Makes the directory entries of these committed blobs durable. Call it before writing anything
   * durable that names them (an image record): a store that defers its directory fsyncs
   * (`deferBlobDirSync`) does them here, one per directory for all the blobs of a pull.
   */
  syncBlobs(digests: readonly string[]): Promise<void>;
  /** Stops the hashing workers. */
  close(): Promise<void>;
}

/** Options of `LocalContentStore`. */
export interface LocalContentStoreOptions {
  /** The `blobs` directory of an OCI layout. */
  blobsDir: string;
  /** The ingest area (same filesystem as `blobsDir`, outside it). */
  ingestDir: string;
  /** Where sha256 runs; default `DEFAULT_HASHING`. Or pass a shared `hasher`. */
  hashing?: HashingMode;
  hasher?: HasherFactory;
  /**
   * A commit does not fsync the blob directory after its rename; `syncBlobs` does, once for every blob
   * an image record names, before the record is written (LocalImageStore.put). For a store whose
   * blobs become durable references only through its own records (kimg's store): a power loss may
   * then lose a blob committed since the last record, which nothing names yet, and its next pull
   * fetches it again. Off by default: a commit is durable on its own.
   */
  deferBlobDirSync?: boolean;
}

/**
 * Where hashing runs by default: `auto` measures this CPU's single-thread sha256 once and hashes inline
 * when it is fast (SHA extensions), in the worker pool otherwise (`AUTO_INLINE_MIN_MBPS` documents the
 * measurements behind it).
 */
export const DEFAULT_HASHING: HashingMode = 'auto';

/** Default cap for `readBlob`: src/oci's manifest and config cap, the registry client's too. */
export const DEFAULT_READ_BLOB_MAX = MAX_MANIFEST_BYTES;

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function blobNotFound(digest: string, cause?: unknown): KimgError {
  return new KimgError(
    'BLOB_NOT_FOUND',
    `blob ${digest} is not in the content store: pull or load the image again`,
    {
      input: digest,
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

/** An ingest's metadata (the `meta` file). */
interface IngestMeta {
  ref: string;
  expected?: string;
  total?: number;
  /** ISO 8601. */
  startedAt?: string;
  /** ISO 8601; only ingests of the five-file form have it (kimg's own take `data`'s mtime). */
  updatedAt?: string;
}

/**
 * Reads an ingest's metadata: the `meta` file, or the five files of the earlier form. Undefined for a
 * torn ingest (killed before its metadata was written whole).
 */
export async function readIngestMeta(dir: string): Promise<IngestMeta | undefined> {
  const read = (name: string) => fsp.readFile(join(dir, name), 'utf8').catch(() => undefined);
  const text = await read('meta');
  if (text !== undefined) {
    try {
      const v = JSON.parse(text) as Partial<Record<keyof IngestMeta, unknown>>;
      if (typeof v.ref !== 'string') return undefined;
      return {
        ref: v.ref,
        ...(typeof v.expected === 'string' ? { expected: v.expected } : {}),
        ...(typeof v.total === 'number' ? { total: v.total } : {}),
        ...(typeof v.startedAt === 'string' ? { startedAt: v.startedAt } : {}),
      };
    } catch {
      return undefined;
    }
  }
  const ref = await read('ref');
  if (ref === undefined) return undefined;
  const [expected, total, startedAt, updatedAt] = await Promise.all([
    read('expected'),
    read('total'),
    read('startedat'),
    read('updatedat'),
  ]);
  return {
    ref,
    ...(expected ? { expected } : {}),
    ...(total !== undefined && total !== '' ? { total: Number(total) } : {}),
    ...(startedAt ? { startedAt } : {}),
    ...(updatedAt ? { updatedAt } : {}),
  };
}

/** Bytes of the files directly in `dir` (a torn ingest's, whose metadata is missing). */
async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    const st = await fsp.stat(join(dir, name)).catch(() => undefined);
    if (st?.isFile()) total += st.size;
  }
  return total;
}

/** The durable, local, OCI-layout content store. */
export class LocalContentStore implements ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;
  readonly hasher: HasherFactory;
  private readonly ownsHasher: boolean;
  private readonly locks = new LockTable();
  /** See LocalContentStoreOptions.deferBlobDirSync. */
  readonly deferBlobDirSync: boolean;
  /**
   * Directories this store created or found (the ingest area, `blobs/<alg>`): each is made once per
   * store, not once per blob; an operation that finds one gone makes it again and retries.
   */
  private readonly madeDirs = new Set<string>();

  constructor(options: LocalContentStoreOptions) {
    this.blobsDir = options.blobsDir;
    this.ingestDir = options.ingestDir;
    this.ownsHasher = options.hasher === undefined;
    this.hasher = options.hasher ?? createHasherFactory(options.hashing ?? DEFAULT_HASHING);
    this.deferBlobDirSync = options.deferBlobDirSync === true;
  }

  /** `ensureDir` once per directory and store (see `madeDirs`); `again` after the directory vanished. */
  async ensureDirOnce(dir: string, mode: number = DIR_MODE, again = false): Promise<void> {
    if (!again && this.madeDirs.has(dir)) return;
    await ensureDir(dir, mode);
    this.madeDirs.add(dir);
  }

  /**
   * Creates the ingest directory `dir` (its parent once per store). An existing one is fine: it holds
   * an interrupted ingest to resume, or another writer's, which the lock file settles.
   */
  private async makeIngestDir(dir: string): Promise<void> {
    await this.ensureDirOnce(this.ingestDir);
    for (let attempt = 0; ; attempt++) {
      try {
        await fsp.mkdir(dir, { mode: DIR_MODE });
        return;
      } catch (e) {
        if (errnoCode(e) === 'EEXIST') return;
        if (!isNotFound(e) || attempt > 0) throw ioError('create directory', dir, e);
        await this.ensureDirOnce(this.ingestDir, DIR_MODE, true);
      }
    }
  }

  async syncBlobs(digests: readonly string[]): Promise<void> {
    if (!this.deferBlobDirSync) return;
    const dirs = new Set(digests.map((d) => join(this.blobPath(d), '..')));
    await Promise.all([...dirs].map((d) => fsyncDirShared(d)));
  }

  blobPath(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return join(this.blobsDir, algorithm, encoded);
  }

  async info(digest: string): Promise<BlobInfo> {
    const p = this.blobPath(digest);
    try {
      const st = await fsp.stat(p);
      return { digest, size: st.size, committedAt: st.mtime };
    } catch (e) {
      if (isNotFound(e)) throw blobNotFound(digest, e);
      throw ioError('stat blob', p, e);
    }
  }

  async hasBlob(digest: string): Promise<boolean> {
    try {
      await fsp.access(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  async openRead(digest: string, options: { offset?: number } = {}): Promise<Readable> {
    const p = this.blobPath(digest);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(p, 'r');
    } catch (e) {
      if (isNotFound(e)) throw blobNotFound(digest, e);
      throw ioError('open blob', p, e);
    }
    return fh.createReadStream({ start: options.offset ?? 0, highWaterMark: 256 * 1024 });
  }

  async readBlob(digest: string, options: { maxBytes?: number; verify?: boolean } = {}): Promise<Buffer> {
    const max = options.maxBytes ?? DEFAULT_READ_BLOB_MAX;
    const info = await this.info(digest);
    if (info.size > max) {
      throw new KimgError(
        'STORE_CORRUPT',
        `blob ${digest} is ${info.size} bytes, over the ${max}-byte limit for in-memory reads`,
        {
          input: digest,
          file: this.blobPath(digest),
          expected: max,
          actual: info.size,
        },
      );
    }
    const p = this.blobPath(digest);
    let buf: Buffer;
    try {
      buf = await fsp.readFile(p);
    } catch (e) {
      if (isNotFound(e)) throw blobNotFound(digest, e);
      throw ioError('read blob', p, e);
    }
    if (options.verify !== false) {
      const { algorithm } = parseDigest(digest);
      const actual = `${algorithm}:${createHash(algorithm).update(buf).digest('hex')}`;
      if (actual !== digest) {
        throw new KimgError(
          'STORE_CORRUPT',
          `blob file ${quote(p)} does not match its digest (got ${actual}): run \`kimg store verify --repair\``,
          {
            input: digest,
            file: p,
            expected: digest,
            actual,
          },
        );
      }
    }
    return buf;
  }

  private ingestPath(ref: string): string {
    return join(this.ingestDir, sha256Hex(ref));
  }

  lockStatus(ref: string): LockInfo | undefined {
    return this.locks.get(ref);
  }

  async writer(options: WriterOptions): Promise<IngestWriter> {
    const { algorithm } = parseDigest(options.expected.digest);
    const expected: ExpectedBlob = { ...options.expected };
    if (expected.size !== undefined && (!Number.isSafeInteger(expected.size) || expected.size < 0)) {
      throw new KimgError(
        'INVALID_ARGUMENT',
        `invalid expected size ${String(expected.size)} for ${expected.digest}: must be a non-negative integer`,
        {
          input: String(expected.size),
        },
      );
    }
    const ref = options.ref ?? expected.digest;
    const holder = options.holder ?? `pid ${process.pid}`;
    const target = this.blobPath(expected.digest);
    const existingSize = await fsp.stat(target).then(
      (s) => s.size,
      () => undefined,
    );
    if (existingSize !== undefined && (expected.size === undefined || expected.size === existingSize)) {
      return new ExistingWriter(ref, expected, existingSize, target);
    }
    this.locks.acquire(ref, holder, `ingest ${quote(ref)}`);
    let fileLock: FileLock | undefined;
    try {
      const dir = this.ingestPath(ref);
      await this.makeIngestDir(dir);
      fileLock = await acquireFileLock(join(dir, 'lock'), holder, `ingest ${quote(ref)}`, 0);
      const w = new LocalIngestWriter(this, ref, expected, algorithm, dir, target, fileLock, () =>
        this.locks.release(ref),
      );
      await w.open();
      return w;
    } catch (e) {
      await fileLock?.release().catch(() => undefined);
      this.locks.release(ref);
      throw e;
    }
  }

  async writeBlob(data: Uint8Array, expected?: ExpectedBlob): Promise<CommitResult> {
    const algorithm: DigestAlgorithm = expected ? parseDigest(expected.digest).algorithm : 'sha256';
    const digest = expected?.digest ?? `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
    const w = await this.writer({ expected: { digest, size: expected?.size ?? data.byteLength } });
    try {
      if (!w.existing) {
        // An interrupted ingest of this digest (a killed process) is resumed at its offset: `data` is
        // the whole content, so start over rather than append it after the persisted prefix.
        if (w.offset > 0) await w.reset();
        await w.write(data);
      }
      return await w.commit();
    } catch (e) {
      await w.close().catch(() => undefined);
      throw e;
    }
  }

  private async readIngest(dir: string): Promise<IngestStatus | undefined> {
    const meta = await readIngestMeta(dir);
    if (meta === undefined) return undefined;
    const st = await fsp.stat(join(dir, 'data')).catch(() => undefined);
    const started = meta.startedAt ? new Date(meta.startedAt) : new Date(st?.birthtimeMs ?? 0);
    const updatedFile = meta.updatedAt ? Date.parse(meta.updatedAt) : 0;
    const updated = new Date(
      Math.max(Number.isNaN(updatedFile) ? 0 : updatedFile, st?.mtimeMs ?? 0, started.getTime() || 0),
    );
    const inProc = this.locks.get(meta.ref);
    const fileLock = await readLockFile(join(dir, 'lock'));
    const lock = inProc ?? (fileLock && !isStale(fileLock) ? fileLock : undefined);
    return {
      ref: meta.ref,
      offset: st?.size ?? 0,
      ...(meta.total !== undefined && Number.isFinite(meta.total) ? { total: meta.total } : {}),
      ...(meta.expected ? { expected: meta.expected } : {}),
      startedAt: started,
      updatedAt: updated,
      ...(lock ? { lock } : {}),
    };
  }

  async ingestStatus(ref: string): Promise<IngestStatus | undefined> {
    return this.readIngest(this.ingestPath(ref));
  }

  async listIngests(): Promise<IngestStatus[]> {
    const out: IngestStatus[] = [];
    for (const name of await readDirIfExists(this.ingestDir)) {
      const dir = join(this.ingestDir, name);
      const st = await this.readIngest(dir);
      if (st) out.push(st);
      else {
        // A torn ingest (killed before its `ref` file was written): report it by directory name.
        const stat = await fsp.stat(dir).catch(() => undefined);
        if (stat?.isDirectory()) {
          out.push({ ref: `<unknown:${name}>`, offset: 0, startedAt: stat.mtime, updatedAt: stat.mtime });
        }
      }
    }
    return out;
  }

  /**
   * Removes the ingests nobody holds that were not updated for `maxAgeMs` (as of `now`, ms), and
   * resolves each with its bytes; `dryRun` only lists them. An ingest a writer took since the listing
   * (`STORE_LOCKED`) stays and is left out.
   */
  async removeStaleIngests(
    maxAgeMs: number,
    options: { now?: number; dryRun?: boolean } = {},
  ): Promise<{ ref: string; bytes: number }[]> {
    const now = options.now ?? Date.now();
    const removed: { ref: string; bytes: number }[] = [];
    for (const ing of await this.listIngests()) {
      if (ing.lock || now - ing.updatedAt.getTime() < maxAgeMs) continue;
      const bytes = ing.ref.startsWith('<unknown:')
        ? await dirBytes(join(this.ingestDir, ing.ref.slice(9, -1)))
        : ing.offset;
      if (options.dryRun !== true) {
        try {
          await this.abortIngest(ing.ref);
        } catch (e) {
          if (isKimgError(e, 'STORE_LOCKED')) continue;
          throw e;
        }
      }
      removed.push({ ref: ing.ref, bytes });
    }
    return removed;
  }

  async abortIngest(ref: string): Promise<void> {
    const dir =
      ref.startsWith('<unknown:') && ref.endsWith('>')
        ? join(this.ingestDir, ref.slice(9, -1))
        : this.ingestPath(ref);
    const inProc = this.locks.get(ref);
    if (inProc)
      throw new KimgError(
        'STORE_LOCKED',
        `ingest ${quote(ref)} is being written by ${quote(inProc.holder)} since ${inProc.since}`,
        { input: ref, retryable: true },
      );
    const lock = await acquireFileLock(join(dir, 'lock'), `abort ${ref}`, `ingest ${quote(ref)}`, 0).catch(
      (e: unknown) => {
        if (e instanceof KimgError && e.code === 'STORE_IO' && isNotFound(e.cause)) return undefined;
        throw e;
      },
    );
    try {
      await fsp.rm(dir, { recursive: true, force: true });
    } catch (e) {
      throw ioError('remove ingest', dir, e);
    } finally {
      await lock?.release().catch(() => undefined);
    }
  }

  async delete(digest: string): Promise<void> {
    const p = this.blobPath(digest);
    try {
      await fsp.unlink(p);
    } catch (e) {
      if (isNotFound(e)) throw blobNotFound(digest, e);
      throw ioError('delete blob', p, e);
    }
    await fsyncDir(join(p, '..'));
  }

  async *walk(): AsyncIterable<BlobInfo> {
    for (const alg of Object.keys(DIGEST_ALGORITHMS) as DigestAlgorithm[]) {
      const dir = join(this.blobsDir, alg);
      for (const name of await readDirIfExists(dir)) {
        if (isTempName(name) || name.length !== DIGEST_ALGORITHMS[alg] || !/^[a-f0-9]+$/.test(name)) continue;
        const st = await fsp.stat(join(dir, name)).catch(() => undefined);
        if (st?.isFile()) yield { digest: `${alg}:${name}`, size: st.size, committedAt: st.mtime };
      }
    }
  }

  async close(): Promise<void> {
    if (this.ownsHasher) await this.hasher.close();
  }
}

/** The writer handed out when the blob is already committed: writes are counted and dropped. */
class ExistingWriter implements IngestWriter {
  readonly existing = true;
  readonly resumedFrom = 0;
  offset = 0;
  private readonly startedAt = new Date();
  constructor(
    readonly ref: string,
    readonly expected: ExpectedBlob,
    private readonly size: number,
    private readonly target: string,
  ) {}
  write(chunk: Uint8Array): Promise<void> {
    this.offset += chunk.byteLength;
    return Promise.resolve();
  }
  reset(): Promise<void> {
    this.offset = 0;
    return Promise.resolve();
  }
  async commit(): Promise<CommitResult> {
    // Touch: a blob re-used by a new pull counts as just committed for GC's lease protection.
    const now = new Date();
    await fsp.utimes(this.target, now, now).catch(() => undefined);
    return { digest: this.expected.digest, size: this.size, committedAt: now, alreadyExisted: true };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  abort(): Promise<void> {
    return Promise.resolve();
  }
  status(): IngestStatus {
    return {
      ref: this.ref,
      offset: this.offset,
      total: this.size,
      expected: this.expected.digest,
      startedAt: this.startedAt,
      updatedAt: new Date(),
    };
  }
  writable(): Writable {
    return writableOver(this);
  }
  sink(): ChunkSink {
    // Nothing to write: the blob is already committed; count the bytes like `write` does.
    return {
      write: (chunk) => {
        this.offset += chunk.byteLength;
        return true;
      },
      onDrain: (cb) => queueMicrotask(() => cb()),
    };
  }
}

/**
 * Removes a committed ingest's directory by its known names: its metadata, then its lock, then the
 * directory (a recursive remove lists and stats every entry first: three times the file operations).
 * An ingest of the five-file form leaves the directory non-empty: removed recursively then. Failures
 * are ignored, the blob is committed already.
 */
async function removeIngestDir(dir: string, withData: boolean): Promise<void> {
  await Promise.all(
    (withData ? ['meta', 'data'] : ['meta']).map((n) => fsp.unlink(join(dir, n)).catch(() => undefined)),
  );
  await fsp.unlink(join(dir, 'lock')).catch(() => undefined);
  await fsp.rmdir(dir).catch(async (e: unknown) => {
    if (errnoCode(e) === 'ENOTEMPTY')
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  });
}

function writableOver(w: IngestWriter): Writable {
  return new Writable({
    // The writer buffers 1 MiB itself; this only has to cover one write's latency.
    highWaterMark: 128 * 1024,
    write(chunk: Buffer, _enc, cb) {
      w.write(chunk).then(() => cb(), cb);
    },
  });
}

type WriterState = 'open' | 'failed' | 'done';

/**
 * Every this many bytes written, an ingest starts an `fdatasync` in the background (at most one in
 * flight per writer; the download does not wait for it). Without it the kernel writes nothing back
 * until the commit's fsync (the dirty thresholds are a share of RAM, gigabytes on a node), so the disk
 * sits idle during the download and then the whole layer is flushed while the pull waits. Started
 * early, writeback overlaps the download and the commit's fsync only flushes the tail. Measured on the
 * 2-core reference VM, 1 GiB pull: 3.3 s with it, 4.0-4.6 s without (16 MiB: no better than 32).
 */
const BACKGROUND_SYNC_BYTES = 32 * 1024 * 1024;
/**
 * Background syncs in flight in this process, at most `MAX_BACKGROUND_SYNCS`: each holds one of libuv's
 * 4 thread-pool threads for the whole flush, and the writes of the downloads in flight need the others
 * (one sync at a time still flushes faster than the disk takes the data).
 */
let backgroundSyncs = 0;
const MAX_BACKGROUND_SYNCS = 1;

class LocalIngestWriter implements IngestWriter {
  readonly existing = false;
  /** Bytes accepted (written + buffered). */
  offset = 0;
  /** Bytes written to the data file. */
  private written = 0;
  /** The buffer being filled; its first `used` bytes are accepted and not yet queued. */
  private buf: Buffer | undefined;
  private used = 0;
  /** Full buffers to write, in order; the first is being written while `writing` is set. */
  private queue: { buf: Buffer; bytes: number }[] = [];
  private writing: Promise<void> | undefined;
  private drainWaiters: ((err?: Error) => void)[] = [];
  private discarding: Promise<void> | undefined;
  /** The background `fdatasync` in flight, if any, and the file size when the last one started. */
  private syncing: Promise<void> | undefined;
  private syncedUpTo = 0;
  resumedFrom = 0;
  private fh: fsp.FileHandle | undefined;
  private hash: StreamHasher | undefined;
  private state: WriterState = 'open';
  private startedAt = new Date();
  private updatedAtMs = Date.now();
  private failure: unknown;

  constructor(
    private readonly store: LocalContentStore,
    readonly ref: string,
    readonly expected: ExpectedBlob,
    private readonly algorithm: DigestAlgorithm,
    private readonly dir: string,
    private readonly target: string,
    private readonly fileLock: FileLock,
    private readonly unlockRef: () => void,
  ) {}

  private get dataPath(): string {
    return join(this.dir, 'data');
  }

  /** Opens the ingest: fresh, or resumed from the persisted bytes (re-hashed). */
  async open(): Promise<void> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.dataPath, fsc.O_RDWR | fsc.O_CREAT, FILE_MODE);
    } catch (e) {
      throw ioError('open ingest', this.dataPath, e);
    }
    this.fh = fh;
    const size = (await fh.stat()).size;
    // The metadata of an earlier writer matters only when it left bytes to resume from.
    const prev = size > 0 ? await readIngestMeta(this.dir) : undefined;
    const prevExpected = prev?.expected;
    const prevStarted = prev?.startedAt;
    const resumable =
      size > 0 &&
      prevExpected === this.expected.digest &&
      (this.expected.size === undefined || size <= this.expected.size);
    this.hash = this.store.hasher.create(this.algorithm);
    if (resumable) {
      await this.rehash(size);
      this.offset = size;
      this.written = size;
      this.resumedFrom = size;
      const started = prevStarted ? new Date(prevStarted) : undefined;
      if (started && !Number.isNaN(started.getTime())) this.startedAt = started;
    } else {
      if (size > 0) await fh.truncate(0);
      const meta: IngestMeta = {
        ref: this.ref,
        expected: this.expected.digest,
        ...(this.expected.size !== undefined ? { total: this.expected.size } : {}),
        startedAt: this.startedAt.toISOString(),
      };
      try {
        // Not atomic, like containerd's: a torn `meta` reads as a torn ingest (nothing to resume).
        await fsp.writeFile(join(this.dir, 'meta'), JSON.stringify(meta), { mode: FILE_MODE });
      } catch (e) {
        throw ioError('write ingest metadata', this.dir, e);
      }
    }
  }

  private async rehash(size: number): Promise<void> {
    const fh = this.fh as fsp.FileHandle;
    const hash = this.hash as StreamHasher;
    let pos = 0;
    const buf = Buffer.allocUnsafeSlow(Math.min(WRITE_BUFFER_BYTES, size));
    while (pos < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
      await hash.capacity();
    }
  }

  private check(): void {
    if (this.state === 'done') throw new KimgError('INTERNAL', `writer for ${quote(this.ref)} is closed`);
    if (this.state === 'failed') {
      throw new KimgError(
        'STORE_IO',
        `writer for ${quote(this.ref)} failed earlier: close it and open a new writer to resume`,
        {
          input: this.ref,
          cause: this.failure,
        },
      );
    }
  }

  /**
   * Takes a chunk synchronously (the sink path: `chunk` may be reused by the caller once this returns):
   * copies it into the current write buffer and queues full buffers for writing. Returns false when a
   * full buffer is waiting behind the one being written; the caller should wait for `onDrain`.
   */
  accept(chunk: Uint8Array): boolean {
    this.check();
    const n = chunk.byteLength;
    if (n === 0) return this.queue.length < 2;
    if (this.expected.size !== undefined && this.offset + n > this.expected.size) {
      const actual = this.offset + n;
      this.state = 'failed';
      this.failure = new KimgError(
        'SIZE_MISMATCH',
        `content for ${this.expected.digest} is longer than its descriptor: ${actual} > ${this.expected.size} bytes (ingest discarded)`,
        { input: this.expected.digest, expected: this.expected.size, actual, bytesRead: actual },
      );
      void this.discard();
      this.notifyDrain();
      throw this.failure;
    }
    let off = 0;
    while (off < n) {
      if (!this.buf) this.buf = this.store.hasher.buffer?.(WRITE_BUFFER_BYTES) ?? takeWriteBuffer();
      const k = Math.min(n - off, this.buf.byteLength - this.used);
      this.buf.set(k === n ? chunk : chunk.subarray(off, off + k), this.used);
      this.used += k;
      off += k;
      if (this.used === this.buf.byteLength) this.enqueue();
    }
    this.offset += n;
    this.updatedAtMs = Date.now();
    return this.queue.length < 2;
  }

  /** Calls `cb` once the writer takes chunks again (or with the error that stopped it). */
  onDrain(cb: (err?: Error) => void): void {
    if (this.state !== 'open' || this.queue.length < 2) {
      const err = this.state === 'open' ? undefined : this.stoppedError();
      queueMicrotask(() => cb(err));
      return;
    }
    this.drainWaiters.push(cb);
  }

  async write(chunk: Uint8Array): Promise<void> {
    let ok: boolean;
    try {
      ok = this.accept(chunk);
    } catch (e) {
      if (this.discarding) await this.discarding;
      throw e;
    }
    if (!ok) {
      await new Promise<void>((resolve, reject) => this.onDrain((err) => (err ? reject(err) : resolve())));
    }
  }

  private stoppedError(): Error {
    if (this.state === 'failed' && this.failure instanceof Error) return this.failure;
    return new KimgError('INTERNAL', `writer for ${quote(this.ref)} is closed`);
  }

  private notifyDrain(): void {
    if (this.drainWaiters.length === 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    const err = this.state === 'failed' ? this.stoppedError() : undefined;
    for (const cb of waiters) cb(err);
  }

  /** Gives the writer's unwritten buffers back to the pool (the writer is finished with them). */
  private dropBuffers(): void {
    if (this.buf) giveWriteBuffer(this.buf);
    this.buf = undefined;
    this.used = 0;
    for (const q of this.queue) giveWriteBuffer(q.buf);
    this.queue = [];
  }

  /** Queues the current buffer (full, or the tail) for writing and starts the write loop. */
  private enqueue(): void {
    const buf = this.buf;
    if (!buf || this.used === 0) return;
    this.queue.push({ buf, bytes: this.used });
    this.buf = undefined;
    this.used = 0;
    this.writing ??= this.runQueue();
  }

  /**
   * Writes the queued buffers strictly in order, one positional write at a time (so the ingest file is
   * always a prefix of the blob, whatever moment the process dies at), hashing each after it was
   * written: the digest and the file stay in step even when a write fails half way.
   */
  private async runQueue(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.state === 'open') {
        const { buf, bytes } = this.queue[0] as { buf: Buffer; bytes: number };
        await this.writeOut(buf, bytes);
        this.queue.shift();
        if (this.queue.length < 2) this.notifyDrain();
      }
    } catch (e) {
      this.state = 'failed';
      this.failure = e;
      for (const q of this.queue) giveWriteBuffer(q.buf);
      this.queue = [];
      this.notifyDrain();
    } finally {
      this.writing = undefined;
    }
  }

  /** Queues what is buffered and waits until everything accepted is written (or the writer failed). */
  private async flush(): Promise<void> {
    if (this.state === 'open') this.enqueue();
    while (this.writing) await this.writing;
    if (this.state === 'failed') throw this.stoppedError();
  }

  private async writeOut(buf: Buffer, bytes: number): Promise<void> {
    const fh = this.fh as fsp.FileHandle;
    try {
      let done = 0;
      while (done < bytes) {
        const { bytesWritten } = await fh.write(buf, done, bytes - done, this.written + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw ioError('write ingest', this.dataPath, e);
    }
    this.written += bytes;
    if (
      !this.syncing &&
      backgroundSyncs < MAX_BACKGROUND_SYNCS &&
      this.written - this.syncedUpTo >= BACKGROUND_SYNC_BYTES
    ) {
      this.syncedUpTo = this.written;
      backgroundSyncs++;
      const done = (): void => {
        backgroundSyncs--;
        this.syncing = undefined;
      };
      // Best effort: the commit's fsync is the one that counts (and reports failures).
      this.syncing = fh.datasync().then(done, done);
    }
    const hash = this.hash as StreamHasher;
    if (this.store.hasher.buffer && bytes === buf.byteLength) {
      // A worker pool: hand the full buffer over (no copy); the next one comes from the pool.
      hash.take(buf);
    } else {
      hash.update(buf.subarray(0, bytes));
      giveWriteBuffer(buf);
    }
    noteBytesThrough(bytes);
    await hash.capacity();
  }

  async reset(): Promise<void> {
    this.check();
    while (this.writing) await this.writing;
    this.check();
    await this.syncing;
    this.used = 0;
    this.written = 0;
    this.syncedUpTo = 0;
    await (this.fh as fsp.FileHandle).truncate(0);
    this.hash?.dispose();
    this.hash = this.store.hasher.create(this.algorithm);
    this.offset = 0;
    this.resumedFrom = 0;
  }

  private async release(): Promise<void> {
    while (this.writing) await this.writing.catch(() => undefined);
    this.dropBuffers();
    await this.syncing;
    this.state = 'done';
    this.hash?.dispose();
    this.hash = undefined;
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
    await this.fileLock.release().catch(() => undefined);
    this.unlockRef();
  }

  /** Deletes the ingest and releases the lock (once, however many paths ask). */
  private discard(): Promise<void> {
    return (this.discarding ??= this.doDiscard());
  }

  private async doDiscard(): Promise<void> {
    while (this.writing) await this.writing.catch(() => undefined);
    this.dropBuffers();
    await this.syncing;
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
    this.state = 'done';
    this.hash?.dispose();
    this.hash = undefined;
    await fsp.rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    this.unlockRef();
  }

  async commit(): Promise<CommitResult> {
    this.check();
    const fh = this.fh as fsp.FileHandle;
    let size: number;
    try {
      await this.flush();
      await this.syncing;
      await fh.sync();
      size = (await fh.stat()).size;
    } catch (e) {
      this.state = 'failed';
      this.failure = e;
      await this.release();
      throw e instanceof KimgError ? e : ioError('fsync ingest', this.dataPath, e);
    }
    if (this.expected.size !== undefined && size !== this.expected.size) {
      // Short: keep the ingest so a later writer resumes it with a Range request (updated now, so the
      // stale-ingest sweep gives it its full age).
      const now = new Date();
      await fh.utimes(now, now).catch(() => undefined);
      await this.release();
      throw new KimgError(
        'SIZE_MISMATCH',
        `content for ${this.expected.digest} is ${size} bytes, descriptor says ${this.expected.size} (ingest kept for resume)`,
        { input: this.expected.digest, expected: this.expected.size, actual: size, bytesRead: size },
      );
    }
    let actual: string;
    try {
      actual = await (this.hash as StreamHasher).digest();
    } catch (e) {
      await this.release();
      throw e;
    }
    this.hash = undefined;
    if (actual !== this.expected.digest) {
      await this.discard();
      throw new KimgError(
        'DIGEST_MISMATCH',
        `content does not match its digest: expected ${this.expected.digest}, got ${actual} (ingest discarded)`,
        {
          input: this.expected.digest,
          expected: this.expected.digest,
          actual,
          bytesRead: size,
        },
      );
    }
    const blobDir = join(this.target, '..');
    try {
      await fh.chmod(0o444);
    } catch {
      // read-only is protection, not correctness
    }
    const fhClose = this.fh;
    this.fh = undefined;
    await fhClose?.close().catch(() => undefined);
    let alreadyExisted = false;
    try {
      await this.store.ensureDirOnce(blobDir, 0o755);
      const present = await fsp.stat(this.target).catch(() => undefined);
      if (present && present.size === size) {
        alreadyExisted = true;
      } else {
        // Absent, or present with the wrong size (a damaged blob): the verified ingest replaces it.
        await fsp.rename(this.dataPath, this.target).catch(async (e: unknown) => {
          // `blobs/<alg>` removed behind the store's back: make it again, once.
          if (!isNotFound(e)) throw e;
          await this.store.ensureDirOnce(blobDir, 0o755, true);
          await fsp.rename(this.dataPath, this.target);
        });
      }
    } catch (e) {
      await this.release();
      throw e instanceof KimgError ? e : ioError('commit blob', this.target, e);
    }
    // Shared with the other blobs committing now (one pull's layers): see fsyncDirShared. A store that
    // defers it does it in syncBlobs, once per image record.
    if (!this.store.deferBlobDirSync) await fsyncDirShared(blobDir);
    const now = new Date();
    if (alreadyExisted) await fsp.utimes(this.target, now, now).catch(() => undefined);
    // The data file went into blobs/ unless the blob was there already.
    await removeIngestDir(this.dir, alreadyExisted);
    this.state = 'done';
    this.unlockRef();
    return { digest: this.expected.digest, size, committedAt: now, alreadyExisted };
  }

  async close(): Promise<void> {
    if (this.discarding) return this.discarding;
    if (this.state === 'done') return;
    try {
      if (this.state === 'open') await this.flush();
      await this.fh?.sync();
    } catch {
      // best effort: a resume re-hashes whatever is there
    }
    // The ingest's update time is its data file's mtime: set it to the last byte accepted.
    const at = new Date(this.updatedAtMs);
    await this.fh?.utimes(at, at).catch(() => undefined);
    await this.release();
  }

  async abort(): Promise<void> {
    if (this.discarding) return this.discarding;
    if (this.state === 'done') return;
    await this.discard();
  }

  status(): IngestStatus {
    return {
      ref: this.ref,
      offset: this.offset,
      ...(this.expected.size !== undefined ? { total: this.expected.size } : {}),
      expected: this.expected.digest,
      startedAt: this.startedAt,
      updatedAt: new Date(this.updatedAtMs),
      lock: this.fileLock.info,
    };
  }

  writable(): Writable {
    return writableOver(this);
  }

  sink(): ChunkSink {
    return { write: (chunk) => this.accept(chunk), onDrain: (cb) => this.onDrain(cb) };
  }
}
