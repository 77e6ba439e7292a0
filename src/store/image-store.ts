/**
 * The image store: records of stored images (`records.ts`) kept in step with the OCI layout's
 * `index.json`, so `skopeo inspect oci:<root>/oci:<name>` and `umoci stat` see exactly kimg's images.
 *
 * Order of writes (records are the source of truth, `index.json` is derived):
 * - put: blobs are already committed (fsynced) → check they exist → make their directory entries
 *   durable (`ContentStore.syncBlobs`) → write the record (atomic) → rewrite `index.json` (atomic).
 * - delete: remove the record file (+ fsync dir) → rewrite `index.json`.
 * A crash between the two steps leaves `index.json` out of step with the records; `openStore`
 * detects that and rewrites `index.json` from the records (and `kimg store verify` reports it). Both
 * steps run under the store's metadata lock, so two processes never interleave their rewrites.
 *
 * `index.json` entries kimg did not write (no `io.kimg.image.name` annotation, e.g. an image copied in
 * with skopeo) are preserved as they are, and protected from store GC.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { KimgError, quote } from '../errors/index.js';
import { ANNOTATION_REF_NAME, type Descriptor, type ImageIndex } from '../oci/index.js';
import type { ContentStore } from './content-store.js';
import {
  fsyncDir,
  ioError,
  isNotFound,
  isTempName,
  readDirIfExists,
  readFileIfExists,
  writeFileAtomic,
} from './internal/fsutil.js';
import {
  ANNOTATION_KIMG_HANDLER,
  ANNOTATION_KIMG_NAME,
  emptyIndex,
  parseIndexDocument,
  serializeIndex,
} from './layout.js';
import { isTaggedName, repositoryOfName } from './format.js';
import type { StorePaths } from './paths.js';
import {
  type ImageKey,
  type ImageRecord,
  parseRecordFile,
  recordFileName,
  sameKey,
  serializeRecord,
  validateRecord,
} from './records.js';

/** The image-record seam (kubelet sees it through the CRI ImageService). */
export interface ImageStore {
  /**
   * Stores or replaces the record for (name, runtimeHandler) and updates `index.json`. Every blob the
   * record names (index, manifest, config, layers) must already be committed: `BLOB_NOT_FOUND`
   * otherwise. `INVALID_ARGUMENT` for a malformed record.
   */
  put(record: ImageRecord): Promise<void>;
  /** The record, or undefined. `STORE_CORRUPT` (naming the file) when its file is damaged. */
  get(key: ImageKey): Promise<ImageRecord | undefined>;
  /** Like `get`, but `IMAGE_NOT_PRESENT` when absent. */
  require(key: ImageKey): Promise<ImageRecord>;
  /** Every record, sorted by name then handler. `STORE_CORRUPT` naming the first damaged file. */
  list(): Promise<ImageRecord[]>;
  /** Removes the record (blobs stay until store GC). Returns false when there was none. */
  delete(key: ImageKey): Promise<boolean>;
  /** Sets `lastUsed`. `IMAGE_NOT_PRESENT` when absent. */
  touch(key: ImageKey, lastUsed?: Date): Promise<void>;
  /** Records whose image id (config digest) is `id`, or starts with the hex prefix `id` (≥ 4 characters). */
  findByImageId(id: string): Promise<ImageRecord[]>;
}

/** Runs `fn` under the store's metadata lock (in process and across processes). */
export type MetadataLock = <T>(holder: string, fn: () => Promise<T>) => Promise<T>;

/** The `index.json` entry kimg writes for a record. */
export function indexEntryFor(record: ImageRecord): Descriptor {
  const annotations: Record<string, string> = { [ANNOTATION_KIMG_NAME]: record.name };
  // One ref.name per name: only the default-handler record carries it, so skopeo/umoci never see two
  // entries with the same name. Records for other handlers are addressable through kimg only.
  if (record.runtimeHandler === '') annotations[ANNOTATION_REF_NAME] = record.name;
  else annotations[ANNOTATION_KIMG_HANDLER] = record.runtimeHandler;
  return {
    mediaType: record.manifestMediaType,
    digest: record.manifestDigest,
    size: record.manifestSize,
    annotations,
    platform: record.platform,
  };
}

/** Whether an index.json entry was written by kimg. */
export function isManagedEntry(d: Descriptor): boolean {
  return d.annotations?.[ANNOTATION_KIMG_NAME] !== undefined;
}

function compareRecords(a: ImageRecord, b: ImageRecord): number {
  return a.name < b.name
    ? -1
    : a.name > b.name
      ? 1
      : a.runtimeHandler < b.runtimeHandler
        ? -1
        : a.runtimeHandler > b.runtimeHandler
          ? 1
          : 0;
}

/** The index.json kimg wants: foreign entries as they are, then one entry per record. */
export function desiredIndex(current: ImageIndex, records: readonly ImageRecord[]): ImageIndex {
  const foreign = current.manifests.filter((d) => !isManagedEntry(d));
  const managed = [...records].sort(compareRecords).map(indexEntryFor);
  const { manifests: _m, ...rest } = current;
  return { ...emptyIndex(), ...rest, manifests: [...foreign, ...managed] };
}

/** Every blob a record names: index, manifest, config, layers. */
function blobsOf(r: ImageRecord): string[] {
  const need = [r.manifestDigest, r.imageId, ...r.layers.map((l) => l.digest)];
  if (r.indexDigest) need.push(r.indexDigest);
  if (r.digest !== r.manifestDigest && r.digest !== r.indexDigest) need.push(r.digest);
  return need;
}

/** The filesystem image store over a root's `images/` directory and `oci/index.json`. */
export class LocalImageStore implements ImageStore {
  constructor(
    private readonly paths: StorePaths,
    private readonly content: ContentStore,
    private readonly lock: MetadataLock,
  ) {}

  private file(key: ImageKey): string {
    return join(this.paths.images, recordFileName(key));
  }

  /** Reads `index.json` strictly (`STORE_CORRUPT` naming it); an absent file is an empty index. */
  async readIndex(): Promise<ImageIndex> {
    const buf = await readFileIfExists(this.paths.indexFile);
    if (buf === undefined) return emptyIndex();
    return parseIndexDocument(buf, this.paths.indexFile, 'STORE_CORRUPT');
  }

  /** Reads every record file; `onBad` decides what a damaged one does (default: throw). */
  async readAll(onBad?: (file: string, error: unknown) => void): Promise<ImageRecord[]> {
    const out: ImageRecord[] = [];
    for (const name of (await readDirIfExists(this.paths.images)).sort()) {
      if (!name.endsWith('.json') || isTempName(name)) continue;
      const file = join(this.paths.images, name);
      try {
        const text = await fsp.readFile(file, 'utf8');
        const rec = parseRecordFile(text, file);
        if (recordFileName(rec) !== name) {
          throw new KimgError(
            'STORE_CORRUPT',
            `image record ${quote(file)} holds ${quote(rec.name)}, which belongs in another file: run \`kimg store verify --repair\``,
            {
              file,
            },
          );
        }
        out.push(rec);
      } catch (e) {
        if (isNotFound(e)) continue;
        if (onBad && e instanceof KimgError && e.code === 'STORE_CORRUPT') onBad(file, e);
        else if (e instanceof KimgError) throw e;
        else throw ioError('read', file, e);
      }
    }
    return out.sort(compareRecords);
  }

  /**
   * Rewrites `index.json` from the records when it differs (caller holds the metadata lock). Returns
   * whether it was rewritten. `STORE_CORRUPT` when `index.json` or a record is damaged.
   */
  async syncIndexLocked(records?: ImageRecord[]): Promise<boolean> {
    const recs = records ?? (await this.readAll());
    const current = await this.readIndex();
    const want = desiredIndex(current, recs);
    const text = serializeIndex(want);
    const existing = await readFileIfExists(this.paths.indexFile);
    if (existing !== undefined && existing.toString('utf8') === text) return false;
    await writeFileAtomic(this.paths.indexFile, text, 0o644);
    return true;
  }

  /** Whether `index.json` is out of step with the records (without writing). */
  async indexOutOfSync(records: ImageRecord[]): Promise<boolean> {
    const current = await this.readIndex();
    const existing = await readFileIfExists(this.paths.indexFile);
    return (
      existing === undefined || existing.toString('utf8') !== serializeIndex(desiredIndex(current, records))
    );
  }

  private async checkBlobs(need: readonly string[], r: ImageRecord): Promise<void> {
    for (const d of need) {
      if (!(await this.content.hasBlob(d))) {
        throw new KimgError(
          'BLOB_NOT_FOUND',
          `cannot record image ${quote(r.name)}: blob ${d} is not in the content store (commit every blob before the record)`,
          {
            input: d,
          },
        );
      }
    }
  }

  async put(record: ImageRecord): Promise<void> {
    const rec = validateRecord(structuredClone(record));
    const need = blobsOf(rec);
    await this.checkBlobs(need, rec);
    // The record must not outlive a power loss that its blobs do not: their directory entries are made
    // durable first (one directory fsync for all of them when the content store deferred it).
    await this.content.syncBlobs(need);
    await this.lock(`put ${rec.name}`, async () => {
      await this.keepMovedImageLocked(rec);
      await writeFileAtomic(this.file(rec), serializeRecord(rec));
      await this.syncIndexLocked();
    });
  }

  /**
   * A tag that moves to another image does not lose the old one: containerd's CRI keeps the old
   * image's `<repo>@<digest>` and `sha256:<id>` records, so the image stays present, untagged, until it
   * is removed or collected by image GC (running pods keep using it: the "mix of old and new Pods" a
   * moved tag causes). kimg keeps it as a record under its repo digest, unless another record of the
   * same repository already holds that digest. Written before the tag record is replaced, so a crash in
   * between leaves the old image named twice rather than lost.
   */
  private async keepMovedImageLocked(next: ImageRecord): Promise<void> {
    const previous = await this.get(next).catch(() => undefined);
    if (previous === undefined || previous.digest === next.digest || !isTaggedName(previous.name)) return;
    const repository = repositoryOfName(previous.name);
    const others = (await this.readAll()).filter(
      (r) =>
        r.name !== previous.name &&
        r.runtimeHandler === previous.runtimeHandler &&
        r.digest === previous.digest &&
        repositoryOfName(r.name) === repository,
    );
    if (others.length > 0) return;
    const kept: ImageRecord = { ...previous, name: `${repository}@${previous.digest}` };
    await writeFileAtomic(this.file(kept), serializeRecord(kept));
  }

  async get(key: ImageKey): Promise<ImageRecord | undefined> {
    const file = this.file(key);
    const buf = await readFileIfExists(file);
    if (buf === undefined) return undefined;
    const rec = parseRecordFile(buf.toString('utf8'), file);
    if (!sameKey(rec, key)) {
      throw new KimgError(
        'STORE_CORRUPT',
        `image record ${quote(file)} holds ${quote(rec.name)} instead of ${quote(key.name)}: run \`kimg store verify --repair\``,
        { file },
      );
    }
    return rec;
  }

  async require(key: ImageKey): Promise<ImageRecord> {
    const rec = await this.get(key);
    if (!rec) {
      const h = key.runtimeHandler ? ` for runtime handler ${quote(key.runtimeHandler)}` : '';
      throw new KimgError(
        'IMAGE_NOT_PRESENT',
        `image ${quote(key.name)}${h} is not present in the local store: pull or load it first`,
        { input: key.name },
      );
    }
    return rec;
  }

  list(): Promise<ImageRecord[]> {
    return this.readAll();
  }

  async delete(key: ImageKey): Promise<boolean> {
    return this.lock(`delete ${key.name}`, async () => {
      const file = this.file(key);
      try {
        await fsp.unlink(file);
      } catch (e) {
        if (isNotFound(e)) return false;
        throw ioError('delete', file, e);
      }
      await fsyncDir(this.paths.images);
      await this.syncIndexLocked();
      return true;
    });
  }

  async touch(key: ImageKey, lastUsed: Date = new Date()): Promise<void> {
    await this.lock(`touch ${key.name}`, async () => {
      const rec = await this.require(key);
      rec.lastUsed = lastUsed.toISOString();
      await writeFileAtomic(this.file(key), serializeRecord(rec));
    });
  }

  async findByImageId(id: string): Promise<ImageRecord[]> {
    const want = id.startsWith('sha256:')
      ? id
      : id.length >= 4 && /^[a-f0-9]+$/.test(id)
        ? `sha256:${id}`
        : undefined;
    if (want === undefined) return [];
    const all = await this.list();
    return all.filter((r) => (want.length === 71 ? r.imageId === want : r.imageId.startsWith(want)));
  }
}
