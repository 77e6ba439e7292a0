/**
 * containerd as a `PullTarget` (src/store `target.ts`): the generic pull pipeline (`src/pull`
 * `pullImage`) writes into containerd's content store through the content Write protocol, and its
 * image record becomes the image records containerd's CRI plugin creates.
 *
 * One target per pull (the seam's lease is not passed to `writer`, so the target remembers it):
 * - `lease(holder)`: a containerd lease (24 h expiry) every later call of this target names;
 * - `content.writer`: STAT on ref `<kind>-<digest>`; AlreadyExists (this namespace, or shared from
 *   another one at full offset) → `existing`; otherwise the ingest's offset to resume from, the
 *   `ContentWriter` as the registry's sink, COMMIT with the expected digest and size. containerd's
 *   "ref … locked" is the seam's `STORE_LOCKED`, so the pipeline polls;
 * - `images.put(record)`: the labels containerd's pull sets (distribution source on every blob,
 *   child GC labels on the manifest and the index), the unpack of the layers in order when enabled
 *   (after the fetch: the seam learns the layer order only from the record), then the CRI records.
 *
 * Compared with `pullIntoContainerd`, the unpack does not overlap the fetch
 * (docs/design/containerd-backend.md has the measurement); everything else is the same.
 */
import { randomBytes } from 'node:crypto';
import { KimgError, isKimgError } from '../errors/index.js';
import type { ImageIndex, ImageManifest } from '../oci/index.js';
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
  WriterOptions,
} from '../store/index.js';
import { containerdStatus, type ContainerdClient } from './client.js';
import { openContentWriter, writeContent, type ContentWriter } from './content-writer.js';
import { criImageNames, putImageRecords } from './images.js';
import {
  LABEL_CRI_IMAGE,
  LABEL_CRI_PINNED,
  childGcLabels,
  childrenOf,
  distributionSourceLabel,
  leaseExpiryLabels,
} from './labels.js';
import { LayerUnpacker } from './unpack.js';

/** Options of {@link ContainerdPullTarget}. */
export interface ContainerdPullTargetOptions {
  client: ContainerdClient;
  /** Unpack into this snapshotter when the record is put; undefined = leave it to containerd. */
  snapshotter?: string | undefined;
}

function locked(e: unknown): boolean {
  return containerdStatus(e) === 'UNAVAILABLE' && /\blocked\b/.test((e as Error).message);
}

/** See the module comment. */
export class ContainerdPullTarget implements PullTarget {
  readonly content: PullContent;
  readonly images: PullImages;
  private leaseId: string | undefined;

  constructor(private readonly o: ContainerdPullTargetOptions) {
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

  async lease(holder: string): Promise<PullLease> {
    const id = `kimg-pull-${Date.now()}-${randomBytes(6).toString('hex')}`;
    await this.o.client.leaseCreate(id, {
      ...leaseExpiryLabels(new Date(), 24 * 3600_000),
      'kimg.io/holder': holder.slice(0, 1000),
    });
    this.leaseId = id;
    return {
      release: async () => {
        await this.o.client.leaseDelete(id).catch(() => undefined);
        if (this.leaseId === id) this.leaseId = undefined;
      },
    };
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
    if (w === undefined || w.resumedFrom === size) {
      const open = w;
      return {
        existing: true,
        offset: size,
        sink: (): ChunkSink => ({ write: () => true, onDrain: (cb) => queueMicrotask(() => cb()) }),
        commit: async () => (open ? open.commit() : undefined),
        close: async () => open?.close(),
      };
    }
    const writer = w;
    return {
      existing: false,
      offset: writer.resumedFrom,
      sink: () => writer,
      commit: () => writer.commit(),
      close: () => writer.close(),
    };
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
    for (const d of new Set([record.imageId, ...record.layers.map((l) => l.digest)])) await label(d);
    if (this.o.snapshotter !== undefined) {
      const config = await readJson<{ rootfs?: { diff_ids?: string[] } }>(record.imageId);
      const unpacker = new LayerUnpacker({
        client,
        snapshotter: this.o.snapshotter,
        diffIds: config.rootfs?.diff_ids ?? [],
        ...(this.leaseId !== undefined ? { lease: this.leaseId } : {}),
      });
      manifest.layers.forEach(
        (l, i) =>
          void unpacker.schedule(
            i,
            { mediaType: l.mediaType, digest: l.digest, size: l.size },
            Promise.resolve(),
          ),
      );
      await unpacker.finish(record.imageId);
    }
    await label(record.manifestDigest, childGcLabels(childrenOf(manifest)));
    if (record.indexDigest !== undefined) {
      const index = await readJson<ImageIndex>(record.indexDigest);
      await label(record.indexDigest, childGcLabels(childrenOf(index)));
    }
    const labels: Record<string, string> = { [LABEL_CRI_IMAGE]: 'managed' };
    if (record.pinned === true) labels[LABEL_CRI_PINNED] = 'pinned';
    try {
      await putImageRecords(
        client,
        criImageNames(ref, record.imageId, record.digest),
        { mediaType: record.mediaType, digest: record.digest, size: await this.sizeOf(record) },
        labels,
        call,
      );
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
