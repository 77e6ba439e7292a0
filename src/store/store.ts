/**
 * Opening a store root: format-version check, layout bootstrap, start-up recovery, and the `Store`
 * object that ties the content store, the image records and the maintenance operations together.
 *
 * Start-up recovery (`openStore`):
 * 1. `kimg-store.json` — created `{"version":1}` for a new root; a newer version is refused with
 *    `STORE_VERSION_UNSUPPORTED`; a damaged file is `STORE_CORRUPT` naming it.
 * 2. `oci/oci-layout`, `oci/index.json`, `oci/blobs/` — created when absent.
 * 3. Temp files of interrupted atomic writes (`.name.tmp-<pid>-*`) of dead processes are removed.
 * 4. Ingests: kept (a later writer for the same ref resumes from the persisted offset; a lock file
 *    left by a dead process is taken over); ingests with no metadata (killed between mkdir and the
 *    first write) are removed. Old ingests are removed by store GC (`ingestMaxAgeMs`), leases of dead
 *    processes by the next GC.
 * 5. Reconcile: if `index.json` is out of step with the records (a crash between the record write and
 *    the index rewrite), it is rewritten from the records. A damaged `index.json` or record stops the
 *    open with `STORE_CORRUPT` naming the file (`kimg store verify --repair` fixes it), unless
 *    `reconcile: false` (what `verify` itself uses).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { KimgError, quote } from '../errors/index.js';
import { DEFAULT_HASHING, LocalContentStore } from './content-store.js';
import { runDf, type DiskUsage } from './df.js';
import { runGc, type GcOptions, type GcResult } from './gc.js';
import { createHasherFactory, type HasherFactory, type HashingMode } from './hasher.js';
import { LocalImageStore, type ImageStore } from './image-store.js';
import {
  ensureDir,
  pidAlive,
  readDirIfExists,
  readFileIfExists,
  writeFileAtomic,
  DIR_MODE,
} from './internal/fsutil.js';
import { acquireFileLock, isStale, type LockInfo, readLockFile } from './internal/locks.js';
import { emptyIndex, OCI_LAYOUT_VERSION, parseOciLayout, serializeIndex } from './layout.js';
import { resolveStoreRoot, STORE_FORMAT_VERSION, storePaths, type StorePaths } from './paths.js';
import {
  loadLayout,
  saveLayout,
  type LoadOptions,
  type LoadResult,
  type SaveOptions,
  type SaveResult,
} from './transfer.js';
import type { PullLease, PullTarget } from './target.js';
import type { StoreContext } from './types.js';
import { runVerify, type VerifyOptions, type VerifyResult } from './verify.js';

/** Options of `openStore`. */
export interface OpenStoreOptions {
  /** Store root; default from `resolveStoreRoot` (`$KIMG_ROOT`, `/var/lib/kimg` as root, XDG otherwise). */
  root?: string;
  /** Environment for root resolution; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Where sha256 runs (default `DEFAULT_HASHING`), or a hasher to share. */
  hashing?: HashingMode;
  hasher?: HasherFactory;
  /** Rewrite a stale index.json and fail on damaged metadata (default true). `verify` opens with false. */
  reconcile?: boolean;
  /** How long to wait for the metadata lock before `STORE_LOCKED` (default 30 s). */
  lockWaitMs?: number;
}

/**
 * `KIMG_HASHING=inline|worker|auto` overrides where sha256 runs (for measurements and odd machines);
 * anything else is ignored.
 */
function hashingFromEnv(env: NodeJS.ProcessEnv): HashingMode | undefined {
  const v = env.KIMG_HASHING;
  return v === 'inline' || v === 'worker' || v === 'auto' ? v : undefined;
}

/** A lease: while held, blobs committed since it started are safe from store GC. */
export interface Lease extends PullLease {
  readonly holder: string;
  readonly since: Date;
  release(): Promise<void>;
}

/** An open store. It is a {@link PullTarget}: the pull pipeline writes into it. */
export interface Store extends PullTarget {
  readonly root: string;
  readonly paths: StorePaths;
  /** Blobs (OCI layout `blobs/`), ingests and their locks. */
  readonly content: LocalContentStore;
  /** Image records, kept in step with `oci/index.json`. */
  readonly images: ImageStore;
  /**
   * Takes a lease for a pull or load: blobs committed (or re-used via a writer) while it is held
   * survive a concurrent store GC until the image record is written. Release it after `images.put`.
   */
  lease(holder: string): Promise<Lease>;
  /** Store GC: sweep blobs no image needs and old ingests. */
  gc(options?: GcOptions): Promise<GcResult>;
  /** Verify (and optionally repair) the whole store. */
  verify(options?: VerifyOptions): Promise<VerifyResult>;
  /** Disk usage. */
  df(): Promise<DiskUsage>;
  /** Import images from an OCI layout. */
  load(options: LoadOptions): Promise<LoadResult>;
  /** Export an image to an OCI layout. */
  save(options: SaveOptions): Promise<SaveResult>;
  /** Stops hashing workers. The store must not be used afterwards. */
  close(): Promise<void>;
}

/** How long a temp or torn file of a live-looking writer is respected. */
const TORN_GRACE_MS = 60_000;

function versionCorrupt(file: string, what: string): KimgError {
  return new KimgError(
    'STORE_CORRUPT',
    `store version file ${quote(file)} is not valid: ${what}: run \`kimg store verify --repair\``,
    { file },
  );
}

async function checkVersion(paths: StorePaths): Promise<void> {
  const buf = await readFileIfExists(paths.versionFile);
  if (buf === undefined) {
    await writeFileAtomic(paths.versionFile, JSON.stringify({ version: STORE_FORMAT_VERSION }) + '\n');
    return;
  }
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch {
    throw versionCorrupt(paths.versionFile, 'not JSON');
  }
  const version = (v as { version?: unknown } | null)?.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
    throw versionCorrupt(paths.versionFile, 'no integer version');
  if (version > STORE_FORMAT_VERSION) {
    throw new KimgError(
      'STORE_VERSION_UNSUPPORTED',
      `store ${quote(paths.root)} has on-disk format version ${version}, but this kimg understands only ${STORE_FORMAT_VERSION}: upgrade kimg, or use another --root`,
      { file: paths.versionFile, expected: STORE_FORMAT_VERSION, actual: version },
    );
  }
}

async function bootstrapLayout(paths: StorePaths, strict: boolean): Promise<void> {
  await ensureDir(paths.oci, 0o755);
  await ensureDir(join(paths.blobs, 'sha256'), 0o755);
  await ensureDir(paths.images);
  await ensureDir(paths.ingest);
  const layout = await readFileIfExists(paths.layoutFile);
  if (layout === undefined) {
    await writeFileAtomic(
      paths.layoutFile,
      JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }),
      0o644,
    );
  } else if (strict) {
    parseOciLayout(layout, paths.layoutFile, 'STORE_CORRUPT');
  }
  if ((await readFileIfExists(paths.indexFile)) === undefined) {
    await writeFileAtomic(paths.indexFile, serializeIndex(emptyIndex()), 0o644);
  }
}

/** Removes temp files of dead writers in `dir` (`.name.tmp-<pid>-<rand>`). */
async function cleanTemps(dir: string): Promise<void> {
  for (const name of await readDirIfExists(dir)) {
    const m = /^\..+\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    await fsp.rm(join(dir, name), { force: true }).catch(() => undefined);
  }
}

async function recoverIngests(paths: StorePaths): Promise<void> {
  for (const name of await readDirIfExists(paths.ingest)) {
    const dir = join(paths.ingest, name);
    const lockFile = join(dir, 'lock');
    // A stale lock file is left in place: the next writer takes it over (acquireFileLock).
    const lock = await readLockFile(lockFile);
    const live = lock !== undefined && !isStale(lock);
    if (live) continue;
    // Metadata written: `meta`, or `ref` in the five-file form of earlier versions.
    const hasMeta = await fsp.access(join(dir, 'meta')).then(
      () => true,
      () =>
        fsp.access(join(dir, 'ref')).then(
          () => true,
          () => false,
        ),
    );
    if (hasMeta) continue;
    const st = await fsp.stat(dir).catch(() => undefined);
    // Torn: no metadata. Its writer is dead when a stale lock said so, or when it is old.
    if (st && (lock !== undefined || Date.now() - st.mtimeMs > TORN_GRACE_MS)) {
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

class LocalStore implements Store, StoreContext {
  readonly root: string;
  readonly content: LocalContentStore;
  readonly images: LocalImageStore;
  readonly hasher: HasherFactory;
  private readonly ownsHasher: boolean;
  private metaChain: Promise<unknown> = Promise.resolve();
  private readonly leases = new Map<string, { since: Date; file: string }>();

  constructor(
    readonly paths: StorePaths,
    hasher: HasherFactory | undefined,
    hashing: HashingMode,
    private readonly lockWaitMs: number,
  ) {
    this.root = paths.root;
    this.ownsHasher = hasher === undefined;
    this.hasher = hasher ?? createHasherFactory(hashing);
    this.content = new LocalContentStore({
      blobsDir: paths.blobs,
      ingestDir: paths.ingest,
      hasher: this.hasher,
      // Blobs of kimg's store are named durably only by image records, and put() syncs them first.
      deferBlobDirSync: true,
    });
    this.images = new LocalImageStore(paths, this.content, (holder, fn) => this.withMetadataLock(holder, fn));
  }

  withMetadataLock<T>(holder: string, fn: () => Promise<T>): Promise<T> {
    const run = async () => {
      const lock = await acquireFileLock(
        this.paths.lockFile,
        holder,
        `store ${quote(this.root)}`,
        this.lockWaitMs,
      );
      try {
        return await fn();
      } finally {
        await lock.release();
      }
    };
    const p = this.metaChain.then(run, run);
    this.metaChain = p.catch(() => undefined);
    return p;
  }

  async lease(holder: string): Promise<Lease> {
    await ensureDir(this.paths.leases);
    const id = `${process.pid}-${randomBytes(6).toString('hex')}`;
    const since = new Date();
    const info: LockInfo = { holder, pid: process.pid, host: hostname(), since: since.toISOString() };
    const file = join(this.paths.leases, `${id}.json`);
    await writeFileAtomic(file, JSON.stringify(info));
    this.leases.set(id, { since, file });
    let released = false;
    return {
      holder,
      since,
      release: async () => {
        if (released) return;
        released = true;
        this.leases.delete(id);
        await fsp.rm(file, { force: true });
      },
    };
  }

  async withLease<T>(holder: string, fn: () => Promise<T>): Promise<T> {
    const l = await this.lease(holder);
    try {
      return await fn();
    } finally {
      await l.release();
    }
  }

  async oldestLiveLease(): Promise<Date | undefined> {
    let oldest: number | undefined;
    for (const l of this.leases.values()) oldest = Math.min(oldest ?? Infinity, l.since.getTime());
    for (const name of await readDirIfExists(this.paths.leases)) {
      if (!name.endsWith('.json')) continue;
      const file = join(this.paths.leases, name);
      const info = await readLockFile(file);
      if (!info) continue;
      if (isStale(info)) {
        await fsp.rm(file, { force: true }).catch(() => undefined);
        continue;
      }
      const t = Date.parse(info.since);
      if (!Number.isNaN(t)) oldest = Math.min(oldest ?? Infinity, t);
    }
    return oldest === undefined ? undefined : new Date(oldest);
  }

  gc(options?: GcOptions): Promise<GcResult> {
    return runGc(this, options);
  }

  verify(options?: VerifyOptions): Promise<VerifyResult> {
    return runVerify(this, options);
  }

  df(): Promise<DiskUsage> {
    return runDf(this);
  }

  load(options: LoadOptions): Promise<LoadResult> {
    return loadLayout(this, options);
  }

  save(options: SaveOptions): Promise<SaveResult> {
    return saveLayout(this, options);
  }

  async close(): Promise<void> {
    for (const l of this.leases.values()) await fsp.rm(l.file, { force: true }).catch(() => undefined);
    this.leases.clear();
    if (this.ownsHasher) await this.hasher.close();
  }
}

/**
 * Opens (creating when needed) the store at `options.root` and runs start-up recovery (see the file
 * header). Failures: `STORE_VERSION_UNSUPPORTED`, `STORE_CORRUPT` (naming the file), `STORE_IO`,
 * `STORE_LOCKED` (metadata lock held too long by another process).
 */
export async function openStore(options: OpenStoreOptions = {}): Promise<Store> {
  const root = resolveStoreRoot({ root: options.root, ...(options.env ? { env: options.env } : {}) });
  const paths = storePaths(root);
  await ensureDir(root, DIR_MODE);
  const reconcile = options.reconcile !== false;
  if (reconcile) await checkVersion(paths);
  else if ((await readFileIfExists(paths.versionFile)) === undefined)
    await writeFileAtomic(paths.versionFile, JSON.stringify({ version: STORE_FORMAT_VERSION }) + '\n');
  await bootstrapLayout(paths, reconcile);
  const store = new LocalStore(
    paths,
    options.hasher,
    options.hashing ?? hashingFromEnv(options.env ?? process.env) ?? DEFAULT_HASHING,
    options.lockWaitMs ?? 30_000,
  );
  try {
    await Promise.all([
      cleanTemps(root),
      cleanTemps(paths.oci),
      cleanTemps(paths.images),
      cleanTemps(paths.leases),
    ]);
    await recoverIngests(paths);
    if (reconcile) {
      const records = await store.images.readAll();
      if (await store.images.indexOutOfSync(records)) {
        await store.withMetadataLock('open: rebuild index.json', () => store.images.syncIndexLocked());
      }
    }
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}
