/**
 * Same-host blob writes into containerd's content store: kimg writes a blob's bytes into containerd's
 * content directory itself and then records it with the content Write protocol, without its bytes.
 *
 * Why: every byte sent through `Content.Write` is protobuf-encoded and HTTP/2-framed by kimg, then
 * decoded, hashed and written by containerd — on a 2-core node containerd's daemon alone spent about
 * 6 CPU seconds per GiB on it, more than containerd's own pull of the same image takes
 * (docs/design/containerd-backend.md, "Blob bytes"). containerd's local content store is a directory
 * (`<root>/blobs/sha256/<hex>`, the OCI layout kimg's own store uses), and its metadata store, under its
 * default `shared` content policy, records a blob the directory already holds without reading it
 * (containerd `metadata/content.go` Writer: `shared`). So when kimg runs on containerd's host with
 * access to that directory, it writes like its own store (hashed while written, verified, fsynced,
 * renamed into place, read-only), then `STAT` (containerd answers the full offset: it sees the blob)
 * and `COMMIT` with the expected digest and size record it in the namespace under the pull's lease.
 *
 * Where: the content plugin's `root` export (Introspection `Plugins`, as `ctr plugins ls -d` shows it).
 * kimg's partial writes live in `<root>/blobs/kimg-ingest/` (resumed by the next pull, like kimg's own
 * ingests; containerd's content walk skips a directory under `blobs/` that is not a digest algorithm,
 * and its ingest listing never sees it).
 *
 * Not used — the Write protocol carries the bytes — when the plugin exports no root, the directory is
 * not writable from here or on another filesystem than the staging area, containerd already holds part
 * of the blob in its own ingest (resumed as it is), or containerd does not see a blob kimg placed (a
 * different mount namespace, or the `isolated` content policy): then this pull falls back for that
 * blob, and the whole process for the rest.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { KimgError } from '../errors/index.js';
import {
  LocalContentStore,
  ensureDir,
  type HasherFactory,
  type HashingMode,
  type IngestWriter,
} from '../store/index.js';
import type { ContainerdClient } from './client.js';

/** containerd's local content store plugin (`io.containerd.content.v1.content`). */
const CONTENT_PLUGIN = { type: 'io.containerd.content.v1', id: 'content' } as const;
/** kimg's staging directory under `<root>/blobs`: not a digest algorithm, so containerd skips it. */
export const DIRECT_STAGING_DIR = 'kimg-ingest';

/** Why direct writes are off (for logs and `explain`-style diagnostics), or undefined when on. */
export type DirectContentState = { usable: true; root: string } | { usable: false; reason: string };

/** kimg's writes into containerd's content directory (see the module comment). */
export class DirectContent {
  private off: string | undefined;

  /** @internal use {@link openDirectContent}. */
  constructor(
    /** containerd's content root (`/var/lib/containerd/io.containerd.content.v1.content`); '' if unknown. */
    readonly root: string,
    private readonly store: LocalContentStore | undefined,
    unusable?: string,
  ) {
    this.off = store === undefined ? (unusable ?? 'not probed') : undefined;
  }

  get state(): DirectContentState {
    return this.off === undefined ? { usable: true, root: this.root } : { usable: false, reason: this.off };
  }

  get usable(): boolean {
    return this.off === undefined;
  }

  /** Stops direct writes for the rest of this process (containerd does not see them). */
  disable(reason: string): void {
    this.off ??= reason;
  }

  /** The hasher of kimg's writes (shared by what else reads containerd's blobs here), when on. */
  get hasher(): HasherFactory | undefined {
    return this.store?.hasher;
  }

  /** The path containerd reads `digest` from. */
  blobPath(digest: string): string {
    return this.local().blobPath(digest);
  }

  private local(): LocalContentStore {
    if (this.store === undefined)
      throw new KimgError(
        'INTERNAL',
        `direct writes into containerd's content directory are off: ${this.off}`,
      );
    return this.store;
  }

  /** Opens (or resumes) kimg's write of one blob; `STORE_LOCKED` while another writer holds `ref`. */
  writer(options: { ref: string; digest: string; size: number; holder?: string }): Promise<IngestWriter> {
    return this.local().writer({
      ref: options.ref,
      expected: { digest: options.digest, size: options.size },
      ...(options.holder !== undefined ? { holder: options.holder } : {}),
    });
  }

  /**
   * Removes kimg's partial writes nobody resumed for `maxAgeMs` (containerd expires an ingest no lease
   * holds after 24 h too). Locked ones (a pull writing now) stay. Resolves the refs removed.
   */
  async sweep(maxAgeMs: number, nowMs: number = Date.now()): Promise<string[]> {
    const stale = await this.store?.removeStaleIngests(maxAgeMs, { now: nowMs }).catch(() => []);
    return (stale ?? []).map((i) => i.ref);
  }

  async close(): Promise<void> {
    await this.store?.close();
  }
}

/** How long kimg's partial writes in containerd's content directory wait for a resume (24 h). */
export const DIRECT_INGEST_MAX_AGE_MS = 24 * 3600_000;

/** Options of {@link openDirectContent}. */
export interface DirectContentOptions {
  /** Where sha256 runs (kimg's store default: `auto`). */
  hashing?: HashingMode | undefined;
}

const opened = new WeakMap<ContainerdClient, Promise<DirectContent>>();

/**
 * The direct writer for `client`'s containerd, probed once per client: the content plugin's root,
 * writable from here, with the staging directory on its filesystem. When direct writes cannot be used
 * it is not `usable` and its `state` says why.
 */
export function openDirectContent(
  client: ContainerdClient,
  options: DirectContentOptions = {},
): Promise<DirectContent> {
  let p = opened.get(client);
  if (p === undefined) {
    p = probe(client, options);
    opened.set(client, p);
  }
  return p;
}

async function probe(client: ContainerdClient, options: DirectContentOptions): Promise<DirectContent> {
  const off = (reason: string, root = ''): DirectContent => new DirectContent(root, undefined, reason);
  let root: string | undefined;
  try {
    const plugins = await client.plugins([`type==${CONTENT_PLUGIN.type},id==${CONTENT_PLUGIN.id}`]);
    root = plugins.find((p) => p.type === CONTENT_PLUGIN.type && p.id === CONTENT_PLUGIN.id)?.exports.root;
  } catch (e) {
    return off(`containerd's plugin list is not readable: ${(e as Error).message}`);
  }
  if (root === undefined || root === '') return off("containerd's content plugin exports no root directory");
  const blobs = join(root, 'blobs');
  const staging = join(blobs, DIRECT_STAGING_DIR);
  try {
    await fsp.access(root, fsc.W_OK | fsc.X_OK);
    // containerd creates `blobs` with its first blob; the same mode as it gives it.
    await ensureDir(blobs, 0o755);
    await ensureDir(staging, 0o700);
    const [a, b] = await Promise.all([fsp.stat(blobs), fsp.stat(staging)]);
    if (a.dev !== b.dev) return off(`${staging} is not on the filesystem of ${blobs}`, root);
  } catch (e) {
    return off(
      `containerd's content directory ${root} is not writable from here (${(e as Error).message})`,
      root,
    );
  }
  const store = new LocalContentStore({
    blobsDir: blobs,
    ingestDir: staging,
    ...(options.hashing !== undefined ? { hashing: options.hashing } : {}),
  });
  const direct = new DirectContent(root, store);
  // Partial writes of pulls that were never resumed (the process died, the image was dropped).
  void direct.sweep(DIRECT_INGEST_MAX_AGE_MS);
  return direct;
}

/** `d` when direct writes are on, else undefined. */
export function usableDirect(d: DirectContent): DirectContent | undefined {
  return d.usable ? d : undefined;
}

/** The error of a blob containerd collected between kimg's write and its record (a GC in between). */
export function collectedBeforeRecorded(digest: string): KimgError {
  return new KimgError(
    'CONTAINERD_ERROR',
    `containerd's garbage collector removed ${digest} before kimg recorded it; pull again`,
    { input: digest, actual: 'NOT_FOUND' },
  );
}
