/**
 * containerd as a `PullTarget` (src/store `target.ts`): the generic pull pipeline (`src/pull`
 * `pullImage`) writes into containerd's content store through the content Write protocol, and its
 * image record becomes the image records containerd's CRI plugin creates.
 *
 * One target per pull (the seam's lease is not passed to `writer`, so the target remembers it):
 * - `lease(holder)`: a containerd lease (24 h expiry) every later call of this target names. Its
 *   `release()` deletes it only once the image records exist (with the leases of earlier, failed
 *   pulls of the same image): a failed or cancelled pull keeps its lease until it expires, so
 *   containerd's GC keeps the ingests the next pull resumes;
 * - `content.writer`: STAT on ref `<kind>-<digest>`; AlreadyExists (this namespace, or shared from
 *   another one at full offset) → `existing`; otherwise the ingest's offset to resume from, the
 *   `ContentWriter` as the registry's sink, COMMIT with the expected digest and size. containerd's
 *   "ref … locked" is the seam's `STORE_LOCKED`, so the pipeline polls;
 * - `layersPlanned({manifest, config})` (called by the pipeline once the config is in): a
 *   `LayerUnpacker` (src/containerd `unpack.ts`) is given every layer in manifest order, each waiting
 *   for the `commit()` of its blob, so committed layers are unpacked into the snapshotter while later
 *   ones still download;
 * - `images.put(record)`: waits for that unpack (containerd's pull, too, creates the records after
 *   unpacking), sets the labels containerd's pull sets (distribution source on every blob, child GC
 *   labels on the manifest and the index), then creates the CRI records;
 * - `present(...)` (called by the pipeline once the reference is resolved, before the lease): answers,
 *   with read-only calls made at once (the records, one `Info` per blob, the top snapshot's `Stat`),
 *   whether all of the above is already there exactly as `put` would leave it. Then the pull ends
 *   without a lease or any write; anything missing or different takes the ordinary path, which
 *   repairs it.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { KimgError, isKimgError } from '../errors/index.js';
import { MediaType, chainIds, type ImageConfig, type ImageIndex, type ImageManifest } from '../oci/index.js';
import { parseReference } from '../reference/index.js';
import type {
  ChunkSink,
  ExpectedBlob,
  ImageKey,
  ImageRecord,
  PullContent,
  PullImages,
  PullLease,
  PullTarget,
  PullWriter,
  ResolvedPull,
  WriterOptions,
} from '../store/index.js';
import { containerdStatus, type ContainerdClient } from './client.js';
import { openContentWriter, writeContent, type ContentWriter } from './content-writer.js';
import {
  collectedBeforeRecorded,
  openDirectContent,
  usableDirect,
  type DirectContent,
} from './direct-content.js';
import { criImageNames, putImageRecords } from './images.js';
import {
  LABEL_CRI_IMAGE,
  LABEL_CRI_PINNED,
  LABEL_GC_REF_SNAPSHOT,
  childGcLabels,
  childrenOf,
  distributionSourceLabel,
  leaseExpiryLabels,
} from './labels.js';
import { LocalApply, openLocalApply } from './local-apply.js';
import { LayerUnpacker } from './unpack.js';

/** Sends a file's bytes from `w.offset` through a content writer, waiting whenever it is full. */
async function copyFileInto(path: string, w: ContentWriter): Promise<void> {
  for await (const chunk of createReadStream(path, { start: w.offset, highWaterMark: 1024 * 1024 })) {
    if (!w.write(chunk as Buffer))
      await new Promise<void>((res, rej) => w.onDrain((e) => (e ? rej(e) : res())));
  }
}

/** Options of {@link ContainerdPullTarget}. */
export interface ContainerdPullTargetOptions {
  client: ContainerdClient;
  /** Unpack into this snapshotter during the pull; undefined = leave it to containerd. */
  snapshotter?: string | undefined;
  /** Mark the records pinned (`io.cri-containerd.pinned=pinned`, the sandbox image). */
  pinned?: boolean | undefined;
  /**
   * The image pulled (its canonical reference), named by the lease's `kimg.io/pull` label so that a
   * successful pull also ends the leases of earlier, failed pulls of it. Default: the lease holder.
   */
  image?: string | undefined;
  /** Cancels the unpack (the pipeline's own calls carry their signal). */
  signal?: AbortSignal | undefined;
  /**
   * Write blob bytes into containerd's content directory when it is reachable from here, and record
   * them without their bytes (src/containerd `direct-content.ts`; probed at the first blob to write).
   * Default false: every byte through the content Write protocol.
   */
  directWrite?: boolean | undefined;
  /**
   * With direct writes and the `overlayfs` snapshotter on containerd's host as root: extract layers
   * into the snapshotter's directories here, concurrently with the fetch, instead of through
   * containerd's Diff.Apply one after the other (src/containerd `local-apply.ts`; probed at the first
   * image to unpack). Default false.
   */
  localApply?: boolean | undefined;
}

/** Leases of kimg's pulls are named `kimg-pull-<ms>-<random>`. */
const LEASE_PREFIX = 'kimg-pull-';
/** The lease label naming the image a pull was for. */
const LABEL_KIMG_PULL = 'kimg.io/pull';
/** containerd's client lease default (`leases.WithExpiration(24h)`). */
const LEASE_TTL_MS = 24 * 3600_000;

/** A promise with its resolve function (a layer's commit, awaited by its unpack). */
interface Committed {
  promise: Promise<void>;
  resolve: () => void;
}

function isImageConfig(mediaType: string): boolean {
  return mediaType === MediaType.OciConfig || mediaType === MediaType.DockerConfig;
}

/** Whether `labels` carries every label of `want` with its value. */
function hasLabels(labels: Record<string, string>, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

function locked(e: unknown): boolean {
  return containerdStatus(e) === 'UNAVAILABLE' && /\blocked\b/.test((e as Error).message);
}

/** See the module comment. */
export class ContainerdPullTarget implements PullTarget {
  readonly content: PullContent;
  readonly images: PullImages;
  private leaseId: string | undefined;
  private leaseLabel = '';
  /** Set once `put` created the records: only then does `release` end the lease. */
  private recorded = false;
  private unpacker: LayerUnpacker | undefined;
  /** Set when `present` found the image complete and unpacked for the snapshotter. */
  private foundUnpacked = false;
  private readonly commits = new Map<string, Committed>();
  /**
   * Labels a blob this pull commits carries from the start: the distribution source of the image's
   * repository (a fresh blob in this namespace has no other repository yet). Setting it on COMMIT saves
   * containerd one metadata transaction per blob; `put` merges it into blobs that were already there.
   */
  private readonly sourceLabels: Record<string, string>;

  constructor(private readonly o: ContainerdPullTargetOptions) {
    const ref = o.image !== undefined ? parseReference(o.image) : undefined;
    const ds = ref && distributionSourceLabel(ref.domain, ref.path);
    this.sourceLabels = ds ? { [ds.key]: ds.value } : {};
    this.content = {
      readBlob: (digest, options) => this.readBlob(digest, options),
      writer: (options) => this.writer(options),
      writeBlob: (data, expected) => this.writeBlob(data, expected),
    };
    this.images = {
      get: (key) => this.get(key),
      put: (record) => this.put(record),
    };
  }

  private call(): { lease?: string } {
    return this.leaseId !== undefined ? { lease: this.leaseId } : {};
  }

  /** Blobs this pull wrote into containerd's content directory itself (the rest went through Write). */
  blobsWrittenDirect = 0;

  /** Layers written into the snapshotter during this pull (the others were unpacked already). */
  get layersUnpacked(): number {
    return this.unpacker?.applied ?? 0;
  }

  /** Of {@link layersUnpacked}, those kimg extracted itself (local apply); the rest went through Diff.Apply. */
  get layersAppliedLocally(): number {
    return this.unpacker?.appliedLocally ?? 0;
  }

  /** Whether this pull unpacked (or found unpacked) every layer for the snapshotter. */
  get unpacked(): boolean {
    return (this.recorded && this.unpacker !== undefined) || this.foundUnpacked;
  }

  async lease(holder: string): Promise<PullLease> {
    const { client } = this.o;
    const id = `${LEASE_PREFIX}${Date.now()}-${randomBytes(6).toString('hex')}`;
    const label = (this.o.image ?? holder).slice(0, 1000);
    await client.leaseCreate(id, {
      ...leaseExpiryLabels(new Date(), LEASE_TTL_MS),
      [LABEL_KIMG_PULL]: label,
    });
    this.leaseId = id;
    this.leaseLabel = label;
    return {
      release: async () => {
        if (!this.recorded) {
          await this.unpacker?.abandon();
          return;
        }
        // The records hold everything now. Leases of earlier, failed pulls of this image go too: what
        // they held is part of this image or was superseded.
        const stale = (await client.leaseList().catch(() => []))
          .filter((l) => l.id.startsWith(LEASE_PREFIX) && l.labels[LABEL_KIMG_PULL] === label)
          .map((l) => l.id);
        for (const lease of new Set([id, ...stale])) await client.leaseDelete(lease).catch(() => undefined);
        if (this.leaseId === id) this.leaseId = undefined;
      },
    };
  }

  /** The commit of `digest` in this pull (created by whichever of writer and unpacker asks first). */
  private committed(digest: string): Committed {
    let c = this.commits.get(digest);
    if (!c) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      c = { promise, resolve };
      this.commits.set(digest, c);
    }
    return c;
  }

  /**
   * Schedules the unpack of every layer in manifest order, each once its blob is committed. Configs
   * that are not image configs (artifacts) are not unpacked, as containerd's unpacker skips them.
   */
  async layersPlanned({ manifest, config }: { manifest: ImageManifest; config: ImageConfig }): Promise<void> {
    const { snapshotter } = this.o;
    if (snapshotter === undefined || !isImageConfig(manifest.config.mediaType)) return;
    const diffIds = Array.isArray(config.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
    if (diffIds.length !== manifest.layers.length) {
      throw new KimgError(
        'MANIFEST_INVALID',
        `the config ${manifest.config.digest} lists ${diffIds.length} diff ids for ${manifest.layers.length} layers`,
        { input: manifest.config.digest },
      );
    }
    const local = snapshotter === 'overlayfs' ? await this.localApply() : undefined;
    const unpacker = new LayerUnpacker({
      client: this.o.client,
      snapshotter,
      diffIds,
      ...(local !== undefined ? { local } : {}),
      ...(this.leaseId !== undefined ? { lease: this.leaseId } : {}),
      ...(this.o.signal !== undefined ? { signal: this.o.signal } : {}),
    });
    manifest.layers.forEach(
      (l, i) =>
        void unpacker.schedule(
          i,
          { mediaType: l.mediaType, digest: l.digest, size: l.size },
          this.committed(l.digest).promise,
        ),
    );
    this.unpacker = unpacker;
  }

  /** Local apply when asked for and possible here (see the option), else undefined. */
  private async localApply(): Promise<LocalApply | undefined> {
    if (this.o.localApply !== true || this.o.directWrite !== true) return undefined;
    const direct = usableDirect(await openDirectContent(this.o.client));
    if (direct === undefined) return undefined;
    const local = await openLocalApply(this.o.client, direct);
    return local instanceof LocalApply ? local : undefined;
  }

  /**
   * Whether the image is complete in containerd exactly as `put` would leave it (see the module
   * comment): the records CRI's PullImage creates name the target with CRI's managed label (and the
   * pinned one when asked); every blob is there with its distribution source, the manifest and index
   * with their child GC labels; when unpacking, the top chain ID's snapshot is committed and the
   * config names it. Read-only; `record` when complete, undefined otherwise.
   */
  async present({ record, manifest, config, index }: ResolvedPull): Promise<ImageRecord | undefined> {
    const { client, snapshotter } = this.o;
    const call = this.o.signal !== undefined ? { signal: this.o.signal } : {};
    const ref = parseReference(record.name);
    const names = criImageNames(ref, record.imageId, record.digest);
    const blobs = [
      ...new Set([
        record.digest,
        record.manifestDigest,
        record.imageId,
        ...record.layers.map((l) => l.digest),
      ]),
    ];
    const unpack = snapshotter !== undefined && isImageConfig(manifest.config.mediaType);
    const diffIds = Array.isArray(config.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
    // A config whose diff ids do not match its layers is the ordinary path's to report.
    if (unpack && diffIds.length !== manifest.layers.length) return undefined;
    const top = unpack ? chainIds(diffIds).at(-1) : undefined;
    const [images, infos, snapshot] = await Promise.all([
      Promise.all(names.map((n) => client.imageGet(n, call))),
      Promise.all(blobs.map((d) => client.contentInfo(d, call))),
      top !== undefined ? client.snapshotStat(snapshotter!, top, call) : undefined,
    ]);
    const info = new Map(infos.flatMap((i, n) => (i !== undefined ? [[blobs[n]!, i] as const] : [])));
    if (info.size !== blobs.length) return undefined;
    const pinned = record.pinned === true || this.o.pinned === true;
    const targetSize = info.get(record.digest)!.size;
    const recordsOk = images.every(
      (img) =>
        img !== undefined &&
        img.target.digest === record.digest &&
        img.target.mediaType === record.mediaType &&
        img.target.size === targetSize &&
        img.labels[LABEL_CRI_IMAGE] === 'managed' &&
        (!pinned || img.labels[LABEL_CRI_PINNED] === 'pinned'),
    );
    if (!recordsOk) return undefined;
    const sourced = [...info.values()].every(
      (i) => distributionSourceLabel(ref.domain, ref.path, i.labels) === undefined,
    );
    const gcLabelled =
      hasLabels(info.get(record.manifestDigest)!.labels, childGcLabels(childrenOf(manifest))) &&
      (record.indexDigest === undefined ||
        (index !== undefined &&
          hasLabels(info.get(record.indexDigest)!.labels, childGcLabels(childrenOf(index)))));
    if (!sourced || !gcLabelled) return undefined;
    if (top !== undefined) {
      if (snapshot?.kind !== 'COMMITTED') return undefined;
      if (info.get(record.imageId)!.labels[`${LABEL_GC_REF_SNAPSHOT}.${snapshotter!}`] !== top)
        return undefined;
    }
    this.foundUnpacked = unpack;
    return record;
  }

  private async readBlob(digest: string, options?: { maxBytes?: number }): Promise<Buffer> {
    try {
      return await this.o.client.contentRead(digest, { ...this.call(), ...options });
    } catch (e) {
      if (containerdStatus(e) === 'NOT_FOUND')
        throw new KimgError('BLOB_NOT_FOUND', `containerd has no blob ${digest}`, {
          input: digest,
          cause: e,
        });
      throw e;
    }
  }

  private async writer(options: WriterOptions): Promise<PullWriter> {
    const { digest, size } = options.expected;
    if (size === undefined)
      throw new KimgError('INVALID_ARGUMENT', `a write into containerd needs the size of ${digest}`, {
        input: digest,
      });
    const direct =
      this.o.directWrite === true ? usableDirect(await openDirectContent(this.o.client)) : undefined;
    if (direct !== undefined) {
      // containerd's own partial ingest (an interrupted write through the protocol) is resumed as it is.
      const partial = await this.o.client.contentStatus(`layer-${digest}`, this.call());
      if (partial === undefined || partial.offset === 0)
        return this.directWriter(direct, digest, size, options.holder);
    }
    let w: ContentWriter | undefined;
    try {
      w = await openContentWriter(this.o.client, {
        // The seam passes no media type; configs and layers both come through here and containerd's
        // puller names most of them `layer-<digest>`, so that is the ref a resume is likeliest to meet.
        ref: `layer-${digest}`,
        digest,
        size,
        ...this.call(),
      });
    } catch (e) {
      if (locked(e))
        throw new KimgError('STORE_LOCKED', `another writer holds containerd's ingest of ${digest}`, {
          input: digest,
          cause: e,
        });
      throw e;
    }
    const done = (): void => this.committed(digest).resolve();
    if (w === undefined || w.resumedFrom === size) {
      const open = w;
      return {
        existing: true,
        offset: size,
        sink: (): ChunkSink => ({ write: () => true, onDrain: (cb) => queueMicrotask(() => cb()) }),
        commit: async () => {
          if (open) await open.commit(this.sourceLabels);
          done();
        },
        close: async () => open?.close(),
      };
    }
    const writer = w;
    return {
      existing: false,
      offset: writer.resumedFrom,
      sink: () => writer,
      commit: async () => {
        await writer.commit(this.sourceLabels);
        done();
      },
      close: () => writer.close(),
    };
  }

  /**
   * A blob written by kimg into containerd's content directory, recorded once verified and in place
   * (see src/containerd `direct-content.ts`). A blob containerd already holds anywhere is `existing`.
   */
  private async directWriter(
    direct: DirectContent,
    digest: string,
    size: number,
    holder: string | undefined,
  ): Promise<PullWriter> {
    const ref = `layer-${digest}`;
    const local = await direct.writer({ ref, digest, size, ...(holder !== undefined ? { holder } : {}) });
    return {
      existing: local.existing,
      offset: local.offset,
      sink: () => local.sink(),
      commit: async () => {
        const r = await local.commit();
        if (!r.alreadyExisted) this.blobsWrittenDirect++;
        await this.recordDirect(direct, digest, size);
        this.committed(digest).resolve();
      },
      close: () => local.close(),
    };
  }

  /**
   * Records a blob kimg placed in containerd's content directory: STAT answers the full size when
   * containerd sees it (or AlreadyExists when this namespace has it), then COMMIT under the lease.
   * When containerd does not see it, direct writes stop and these bytes go through the protocol.
   */
  private async recordDirect(direct: DirectContent, digest: string, size: number): Promise<void> {
    const { client } = this.o;
    const ref = `layer-${digest}`;
    const w = await openContentWriter(client, { ref, digest, size, ...this.call() });
    if (w === undefined) return;
    if (w.resumedFrom === size) return w.commit(this.sourceLabels);
    const path = direct.blobPath(digest);
    try {
      const present = await fsp.stat(path).catch(() => undefined);
      if (present === undefined) throw collectedBeforeRecorded(digest);
      direct.disable(
        `containerd does not see the blobs kimg writes into ${direct.root} (another mount namespace, or content_sharing_policy "isolated")`,
      );
      await copyFileInto(path, w);
      await w.commit(this.sourceLabels);
    } catch (e) {
      await w.close();
      throw e;
    }
  }

  private async writeBlob(data: Uint8Array, expected?: ExpectedBlob): Promise<unknown> {
    if (expected === undefined)
      throw new KimgError('INVALID_ARGUMENT', 'a write into containerd needs the expected digest');
    return writeContent(this.o.client, data, {
      ref: `manifest-${expected.digest}`,
      digest: expected.digest,
      size: expected.size ?? data.byteLength,
      ...this.call(),
    });
  }

  /** containerd keeps no kimg record: there is nothing earlier to carry over. */
  private get(_key: ImageKey): Promise<ImageRecord | undefined> {
    return Promise.resolve(undefined);
  }

  private async put(record: ImageRecord): Promise<void> {
    const { client } = this.o;
    const call = this.call();
    const ref = parseReference(record.name);
    const readJson = async <T>(d: string): Promise<T> =>
      JSON.parse((await client.contentRead(d, call)).toString('utf8')) as T;
    const label = async (digest: string, extra: Record<string, string> = {}): Promise<void> => {
      const info = await client.contentInfo(digest, call);
      if (!info) return;
      const ds = distributionSourceLabel(ref.domain, ref.path, info.labels);
      const want: Record<string, string> = { ...extra, ...(ds ? { [ds.key]: ds.value } : {}) };
      const changed = Object.entries(want).filter(([k, v]) => info.labels[k] !== v);
      if (changed.length > 0) await client.contentSetLabels(digest, Object.fromEntries(changed), call);
    };
    const manifest = await readJson<ImageManifest>(record.manifestDigest);
    // Reads at once; a write only where a label is missing (blobs this pull committed carry it).
    await Promise.all(
      [...new Set([record.imageId, ...record.layers.map((l) => l.digest)])].map((d) => label(d)),
    );
    if (this.o.snapshotter !== undefined && this.unpacker === undefined) {
      // Put without `layersPlanned` (a caller driving the seam itself): unpack now, in order.
      const config = await readJson<ImageConfig>(record.imageId);
      await this.layersPlanned({ manifest, config });
      for (const l of manifest.layers) this.committed(l.digest).resolve();
    }
    await this.unpacker?.finish(record.imageId);
    await label(record.manifestDigest, childGcLabels(childrenOf(manifest)));
    if (record.indexDigest !== undefined) {
      const index = await readJson<ImageIndex>(record.indexDigest);
      await label(record.indexDigest, childGcLabels(childrenOf(index)));
    }
    const labels: Record<string, string> = { [LABEL_CRI_IMAGE]: 'managed' };
    if (record.pinned === true || this.o.pinned === true) labels[LABEL_CRI_PINNED] = 'pinned';
    try {
      await putImageRecords(
        client,
        criImageNames(ref, record.imageId, record.digest),
        { mediaType: record.mediaType, digest: record.digest, size: await this.sizeOf(record) },
        labels,
        call,
      );
      this.recorded = true;
    } catch (e) {
      throw isKimgError(e) ? e : new KimgError('INTERNAL', String(e), { cause: e });
    }
  }

  /** The size of the target blob (the record keeps the manifest's; the index's is read from containerd). */
  private async sizeOf(record: ImageRecord): Promise<number> {
    if (record.digest === record.manifestDigest) return record.manifestSize;
    const info = await this.o.client.contentInfo(record.digest, this.call());
    return info?.size ?? 0;
  }
}
