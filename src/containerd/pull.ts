/**
 * kimg's pull pipeline writing into containerd's store: kimg resolves, authenticates, selects the
 * platform and fetches (its registry client: mirrors, retries, resume, stall detection); containerd
 * stores, unpacks and runs. The result is indistinguishable, for containerd and its CRI plugin, from
 * containerd's own `PullImage` of the same image.
 *
 * Order (containerd `pull.go`, CRI `image_pull.go`):
 * 1. A lease (`kimg-pull-<random>`, `containerd.io/gc.expire` = now + 24 h) that every call of the pull
 *    names, so containerd's GC keeps ingests, blobs and snapshots while the pull runs, and drops them
 *    by expiry if kimg dies.
 * 2. Config, then layers (`max_concurrent_downloads` = 3): a blob already in this namespace is used as
 *    it is (Info); one in another namespace is shared by containerd when the write opens
 *    (AlreadyExists); otherwise the registry's bytes stream straight into containerd's content Write
 *    (ingest ref `layer-<digest>`, resumed from containerd's offset after a crash, committed with the
 *    expected digest and size and the distribution-source label).
 * 3. While later layers download, committed layers are unpacked in order into the snapshotter
 *    (src/containerd/unpack.ts), skipping what is already unpacked.
 * 4. Manifest and index with their child GC labels (written after their children, so a label never
 *    points at nothing written by this pull).
 * 5. The image records CRI's PullImage creates: `sha256:<config digest>` (the image id), the tag name,
 *    `name@<digest>`, each labelled `io.cri-containerd.image=managed`; Create, then Update on
 *    AlreadyExists. containerd publishes an event per record, and the CRI plugin picks the image up.
 * 6. The lease is deleted: from here on the records keep everything alive.
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { AuthConfig } from '../credentials/index.js';
import { KimgError, isKimgError } from '../errors/index.js';
import {
  MediaType,
  isManifestMediaType,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '../oci/index.js';
import {
  defaultMatcher,
  formatPlatform,
  hostPlatform,
  parsePlatform,
  platformMatcher,
  selectManifest,
  type Platform,
} from '../platform/index.js';
import { parseReference, type Reference } from '../reference/index.js';
import type { FetchedManifest, RegistryClient } from '../registry/index.js';
import type { ImagePullEvent } from '../pull/index.js';
import { containerdStatus, type ContainerdClient, type ContainerdDescriptor } from './client.js';
import { ingestRef, openContentWriter, writeContent } from './content-writer.js';
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
import { LayerUnpacker } from './unpack.js';

/** Defaults of {@link ContainerdPullOptions}. */
export const DEFAULT_CONTAINERD_PULL_OPTIONS = Object.freeze({
  /** containerd's CRI `max_concurrent_downloads`. */
  concurrency: 3,
  /** containerd's default snapshotter on Linux. */
  snapshotter: 'overlayfs',
  /** containerd's client lease default (`leases.WithExpiration(24h)`). */
  leaseTtlMs: 24 * 3600_000,
  progressIntervalMs: 100,
  /** How often to look again while another writer holds an ingest ref. */
  lockPollMs: 100,
});

/** Options of {@link pullIntoContainerd}. */
export interface ContainerdPullOptions {
  client: ContainerdClient;
  registry: RegistryClient;
  /** Platform to select from an index. Default: this host (containerd's default matcher). */
  platform?: string | Platform | undefined;
  /** Credentials for this pull; `null` = anonymous; undefined = the registry client's lookup. */
  auth?: AuthConfig | null | undefined;
  defaultRegistry?: string | undefined;
  concurrency?: number | undefined;
  /** Unpack into the snapshotter during the pull (default true; see docs/design/containerd-backend.md). */
  unpack?: boolean | undefined;
  snapshotter?: string | undefined;
  /** Mark the records pinned (`io.cri-containerd.pinned=pinned`, the sandbox image). */
  pinned?: boolean | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((event: ImagePullEvent) => void) | undefined;
  progressIntervalMs?: number | undefined;
}

/** What a pull into containerd did. */
export interface ContainerdPullStats {
  blobsDownloaded: number;
  blobsReused: number;
  blobsResumed: number;
  bytesDownloaded: number;
  /** Layers written into the snapshotter by this pull. */
  layersUnpacked: number;
  seconds: number;
}

/** The result of {@link pullIntoContainerd}. */
export interface ContainerdPullResult {
  /** The reference as pulled (`docker.io/library/busybox:1.36`). */
  image: string;
  /** The image id = config digest (what CRI PullImage answers). */
  id: string;
  /** The target: digest of the index or manifest the reference named. */
  digest: string;
  mediaType: string;
  manifestDigest: string;
  /** The records created or updated. */
  names: string[];
  /** Bytes of the image's content for the platform (index + manifest + config + layers). */
  size: number;
  /** The layers' blob descriptors. */
  layers: ContainerdDescriptor[];
  /** Whether every layer is unpacked for the snapshotter. */
  unpacked: boolean;
  stats: ContainerdPullStats;
}

/** Leases of kimg's pulls are named `kimg-pull-<ms>-<random>`. */
const LEASE_PREFIX = 'kimg-pull-';
/** The lease label naming the image a pull was for. */
const LABEL_KIMG_PULL = 'kimg.io/pull';

/** Per-client in-flight blob writes (single flight across concurrent pulls in this process). */
const inflightByClient = new WeakMap<ContainerdClient, Map<string, Promise<void>>>();

function abortError(signal: AbortSignal): KimgError {
  return new KimgError('ABORTED', 'the pull was cancelled', { cause: signal.reason });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

function isLocked(e: unknown): boolean {
  return containerdStatus(e) === 'UNAVAILABLE' && /\blocked\b/.test((e as Error).message);
}

/**
 * Pulls `image` into containerd (see the module comment) and resolves once the image records exist.
 * @throws KimgError: reference codes; `PLATFORM_NOT_FOUND`; the registry's codes; `DIGEST_MISMATCH`
 *   (containerd's commit or unpack verification); `CONTAINERD_UNAVAILABLE`, `CONTAINERD_ERROR`; `ABORTED`.
 */
export async function pullIntoContainerd(
  image: string,
  options: ContainerdPullOptions,
): Promise<ContainerdPullResult> {
  const started = Date.now();
  const emit = options.onProgress ?? (() => {});
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  const forward = (): void => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) forward();
  else options.signal?.addEventListener('abort', forward, { once: true });
  try {
    const r = await pullInner(image, { ...options, signal: controller.signal }, emit);
    r.stats.seconds = (Date.now() - started) / 1000;
    return r;
  } catch (e) {
    const err = isKimgError(e)
      ? (e as KimgError)
      : options.signal?.aborted
        ? abortError(options.signal)
        : new KimgError('INTERNAL', `pulling ${JSON.stringify(image)} into containerd failed: ${String(e)}`, {
            cause: e,
          });
    emit({ type: 'error', code: err.code, message: err.message });
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', forward);
  }
}

async function pullInner(
  image: string,
  options: ContainerdPullOptions,
  emit: (e: ImagePullEvent) => void,
): Promise<ContainerdPullResult> {
  const { client, registry, signal } = options;
  const ref: Reference = parseReference(
    image,
    options.defaultRegistry !== undefined ? { defaultRegistry: options.defaultRegistry } : {},
  );
  const requested: Platform | undefined =
    options.platform === undefined
      ? undefined
      : typeof options.platform === 'string'
        ? parsePlatform(options.platform)
        : options.platform;
  const matcher = requested ? platformMatcher(requested) : defaultMatcher(hostPlatform());
  const call = { signal, ...(options.auth !== undefined ? { auth: options.auth } : {}) };
  const repo = { domain: ref.domain, path: ref.path };
  const snapshotter = options.snapshotter ?? DEFAULT_CONTAINERD_PULL_OPTIONS.snapshotter;
  const unpack = options.unpack ?? true;
  const stats: ContainerdPullStats = {
    blobsDownloaded: 0,
    blobsReused: 0,
    blobsResumed: 0,
    bytesDownloaded: 0,
    layersUnpacked: 0,
    seconds: 0,
  };
  let inflight = inflightByClient.get(client);
  if (!inflight) inflightByClient.set(client, (inflight = new Map()));

  const top = await registry.getImageManifest(
    { domain: ref.domain, path: ref.path, tag: ref.tag, digest: ref.digest },
    {
      ...call,
      select: (index, desc) => selectManifest(index.manifests, requested ?? matcher, { index: desc.digest }),
    },
  );
  const manifestDoc = top.manifest;
  if (!isManifestMediaType(manifestDoc.mediaType) || manifestDoc.isIndex) {
    throw new KimgError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${ref.pullRef} resolved to ${manifestDoc.mediaType}, which is not an image manifest kimg can pull`,
      { input: image, actual: manifestDoc.mediaType },
    );
  }
  const manifest = manifestDoc.manifest as ImageManifest;
  if (!manifest.config || !Array.isArray(manifest.layers)) {
    throw new KimgError(
      'MANIFEST_INVALID',
      `the manifest ${manifestDoc.digest} of ${ref.pullRef} has no config or layers`,
      {
        input: image,
      },
    );
  }
  const rootDoc: FetchedManifest = top.index ?? manifestDoc;
  const selected = top.index
    ? (top.index.manifest as ImageIndex).manifests.find((d) => d.digest === manifestDoc.digest)?.platform
    : undefined;
  emit({
    type: 'resolved',
    image: ref.pullRef,
    digest: rootDoc.digest,
    mediaType: rootDoc.mediaType,
    manifestDigest: manifestDoc.digest,
    platform: selected
      ? formatPlatform({
          os: selected.os,
          architecture: selected.architecture,
          ...(selected.variant ? { variant: selected.variant } : {}),
        })
      : requested
        ? formatPlatform(requested)
        : '',
  });

  // Already there (the kubelet's `Always` on a present image): every record names this target and the
  // image is unpacked for this snapshotter. Read-only calls, no lease, no content walk.
  {
    const names = criImageNames(ref, manifest.config.digest, rootDoc.digest);
    const [records, configInfo] = await Promise.all([
      Promise.all(names.map((n) => client.imageGet(n, { signal }))),
      client.contentInfo(manifest.config.digest, { signal }),
    ]);
    const top = configInfo?.labels[`${LABEL_GC_REF_SNAPSHOT}.${snapshotter}`];
    const complete =
      records.every(
        (r) =>
          r !== undefined &&
          r.target.digest === rootDoc.digest &&
          r.labels[LABEL_CRI_IMAGE] === 'managed' &&
          (options.pinned !== true || r.labels[LABEL_CRI_PINNED] === 'pinned'),
      ) &&
      configInfo !== undefined &&
      (!unpack ||
        (top !== undefined && (await client.snapshotStat(snapshotter, top, { signal })) !== undefined));
    if (complete) {
      const size =
        documentsSize(rootDoc, manifestDoc) +
        manifest.config.size +
        manifest.layers.reduce((a, l) => a + l.size, 0);
      stats.blobsReused = 1 + new Set(manifest.layers.map((l) => l.digest)).size;
      emit({
        type: 'committed',
        image: ref.pullRef,
        id: manifest.config.digest,
        digest: rootDoc.digest,
        size,
      });
      return {
        image: ref.pullRef,
        id: manifest.config.digest,
        digest: rootDoc.digest,
        mediaType: rootDoc.mediaType,
        manifestDigest: manifestDoc.digest,
        names,
        size,
        layers: manifest.layers.map(toCtrDesc),
        unpacked: unpack,
        stats,
      };
    }
  }

  // A failed or cancelled pull keeps its lease until it expires, like a pull killed mid-way: the
  // ingests it holds are what the next pull resumes (containerd collects an ingest whose lease is
  // gone). The next successful pull of the same image deletes it.
  const lease = `${LEASE_PREFIX}${Date.now()}-${randomBytes(6).toString('hex')}`;
  const leaseLabel = ref.pullRef.slice(0, 1000);
  let failed = false;
  await client.leaseCreate(
    lease,
    {
      ...leaseExpiryLabels(new Date(), DEFAULT_CONTAINERD_PULL_OPTIONS.leaseTtlMs),
      [LABEL_KIMG_PULL]: leaseLabel,
    },
    { signal },
  );
  const cc = { lease, signal };
  try {
    const limit = limiter(Math.max(1, options.concurrency ?? DEFAULT_CONTAINERD_PULL_OPTIONS.concurrency));

    // --- config: needed in memory for the diff IDs and the platform check ---
    const configDesc = manifest.config;
    const configBytes = await limit(() => ensureSmallBlob(configDesc, 'config'));
    let config: ImageConfig = {};
    try {
      const parsed: unknown = JSON.parse(configBytes.toString('utf8'));
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
        config = parsed as ImageConfig;
      else throw new Error('not a JSON object');
    } catch (e) {
      if (configDesc.mediaType === MediaType.OciConfig || configDesc.mediaType === MediaType.DockerConfig) {
        throw new KimgError(
          'MANIFEST_INVALID',
          `the image config ${configDesc.digest} of ${ref.pullRef} is not a JSON object`,
          {
            input: image,
            cause: e,
          },
        );
      }
    }
    if (!top.index && typeof config.os === 'string' && typeof config.architecture === 'string') {
      const p: Platform = {
        os: config.os,
        architecture: config.architecture,
        ...(typeof config.variant === 'string' && config.variant !== '' ? { variant: config.variant } : {}),
      };
      if (!matcher.match(p)) {
        throw new KimgError(
          'PLATFORM_NOT_FOUND',
          `no match for platform in manifest ${manifestDoc.digest}: not found: ${ref.pullRef} is a single-platform image for ${formatPlatform(p)}, not ${requested ? formatPlatform(requested) : 'this host (' + formatPlatform(hostPlatform()) + ')'}; pass --platform to choose`,
          { input: image, items: [formatPlatform(p)] },
        );
      }
    }
    const diffIds = Array.isArray(config.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
    const unpacking =
      unpack &&
      (configDesc.mediaType === MediaType.OciConfig || configDesc.mediaType === MediaType.DockerConfig);
    if (unpacking && diffIds.length !== manifest.layers.length) {
      throw new KimgError(
        'MANIFEST_INVALID',
        `the config of ${ref.pullRef} lists ${diffIds.length} diff ids for ${manifest.layers.length} layers`,
        { input: image },
      );
    }
    const unpacker = unpacking
      ? new LayerUnpacker({ client, snapshotter, diffIds, lease, signal })
      : undefined;
    const alreadyUnpacked = unpacker ? await unpacker.isUnpacked() : false;

    // --- layers, unpacked in order as they arrive ---
    const layerDone = new Map<string, Promise<void>>();
    const layerPromises = manifest.layers.map((desc) => {
      let p = layerDone.get(desc.digest);
      if (!p) {
        p = limit(() => ensureLayer(desc));
        p.catch(() => undefined);
        layerDone.set(desc.digest, p);
      }
      return p;
    });
    if (unpacker && !alreadyUnpacked) {
      manifest.layers.forEach((desc, i) => void unpacker.schedule(i, toCtrDesc(desc), layerPromises[i]!));
    }
    await settleAll(layerPromises);
    if (unpacker && !alreadyUnpacked) {
      await unpacker.finish(configDesc.digest);
      stats.layersUnpacked = unpacker.applied;
    }

    // --- manifest, then index, each naming its children ---
    await ensureDocument(manifestDoc);
    if (top.index) await ensureDocument(top.index);

    // --- records, as CRI's PullImage makes them ---
    const target: ContainerdDescriptor = {
      mediaType: rootDoc.mediaType,
      digest: rootDoc.digest,
      size: rootDoc.bytes.length,
    };
    const labels: Record<string, string> = { [LABEL_CRI_IMAGE]: 'managed' };
    if (options.pinned) labels[LABEL_CRI_PINNED] = 'pinned';
    const names = criImageNames(ref, configDesc.digest, rootDoc.digest);
    await putImageRecords(client, names, target, labels, cc);
    const size =
      (top.index ? top.index.bytes.length : 0) +
      manifestDoc.bytes.length +
      configDesc.size +
      manifest.layers.reduce((a, l) => a + l.size, 0);
    emit({ type: 'committed', image: ref.pullRef, id: configDesc.digest, digest: rootDoc.digest, size });
    return {
      image: ref.pullRef,
      id: configDesc.digest,
      digest: rootDoc.digest,
      mediaType: rootDoc.mediaType,
      manifestDigest: manifestDoc.digest,
      names,
      size,
      layers: manifest.layers.map(toCtrDesc),
      unpacked: unpacker !== undefined,
      stats,
    };
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    if (!failed) {
      // The records hold everything now. Leases of earlier, failed pulls of this image go too: what
      // they held is part of this image or was superseded.
      const stale = (await client.leaseList().catch(() => []))
        .filter((l) => l.id.startsWith(LEASE_PREFIX) && l.labels[LABEL_KIMG_PULL] === leaseLabel)
        .map((l) => l.id);
      for (const id of new Set([lease, ...stale])) await client.leaseDelete(id).catch(() => undefined);
    }
  }

  /** Single flight per digest within this process; `run` once, later callers wait for it. */
  async function singleFlight(digest: string, run: () => Promise<void>): Promise<boolean> {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const running = inflight!.get(digest);
      if (running) {
        try {
          await running;
          return false;
        } catch (e) {
          if (isKimgError(e, 'ABORTED') && !signal?.aborted) continue;
          throw e;
        }
      }
      const mine = run();
      inflight!.set(digest, mine);
      try {
        await mine;
        return true;
      } finally {
        if (inflight!.get(digest) === mine) inflight!.delete(digest);
      }
    }
  }

  /**
   * A blob containerd has in this namespace: held by the pull's lease from now on, and given this
   * repository as distribution source. Resolves false when the blob is not there.
   */
  async function adoptExisting(desc: Descriptor, extra: Record<string, string> = {}): Promise<boolean> {
    const info = await client.contentInfo(desc.digest, cc);
    if (!info) return false;
    const ds = distributionSourceLabel(ref.domain, ref.path, info.labels);
    const wanted: Record<string, string> = { ...extra };
    if (ds) wanted[ds.key] = ds.value;
    const changed = Object.entries(wanted).filter(([k, v]) => info.labels[k] !== v);
    if (changed.length > 0) await client.contentSetLabels(desc.digest, Object.fromEntries(changed), cc);
    return true;
  }

  /** Commit labels for a fresh blob. */
  function freshLabels(extra: Record<string, string> = {}): Record<string, string> {
    const ds = distributionSourceLabel(ref.domain, ref.path);
    return { ...(ds ? { [ds.key]: ds.value } : {}), ...extra };
  }

  async function openWriter(desc: Descriptor): Promise<Awaited<ReturnType<typeof openContentWriter>>> {
    for (;;) {
      try {
        return await openContentWriter(client, {
          ref: ingestRef(desc.mediaType, desc.digest),
          digest: desc.digest,
          size: desc.size,
          ...cc,
        });
      } catch (e) {
        if (!isLocked(e)) throw e;
        await sleep(DEFAULT_CONTAINERD_PULL_OPTIONS.lockPollMs, signal);
      }
    }
  }

  /** The config: into containerd (if missing) and into memory. */
  async function ensureSmallBlob(desc: Descriptor, kind: 'config'): Promise<Buffer> {
    const readBack = () => client.contentRead(desc.digest, { ...cc, maxBytes: 16 * 1024 * 1024 });
    const reused = (): void => {
      stats.blobsReused++;
      emit({ type: 'layer-start', digest: desc.digest, size: desc.size, kind, cached: true, resumedFrom: 0 });
      emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: false });
    };
    if (await adoptExisting(desc)) {
      reused();
      return readBack();
    }
    const writer = await openWriter(desc);
    if (!writer || writer.resumedFrom === desc.size) {
      // Present in another namespace: containerd shares it on commit.
      if (writer) await writer.commit(freshLabels());
      await adoptExisting(desc);
      reused();
      return readBack();
    }
    emit({ type: 'layer-start', digest: desc.digest, size: desc.size, kind, cached: false, resumedFrom: 0 });
    let bytes: Buffer;
    try {
      bytes = await registry.fetchBlob(repo, desc, call);
      // The whole verified config is in memory: any prefix containerd holds is rewritten from 0.
      if (writer.resumedFrom > 0) {
        await writer.close();
        await client.contentAbort(ingestRef(desc.mediaType, desc.digest), cc);
        await writeContent(client, bytes, {
          ref: ingestRef(desc.mediaType, desc.digest),
          digest: desc.digest,
          size: desc.size,
          labels: freshLabels(),
          ...cc,
        });
      } else {
        writer.write(bytes);
        await writer.commit(freshLabels());
      }
    } catch (e) {
      await writer.close();
      throw e;
    }
    stats.blobsDownloaded++;
    stats.bytesDownloaded += bytes.length;
    emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: true });
    return bytes;
  }

  async function ensureLayer(desc: Descriptor): Promise<void> {
    const ran = await singleFlight(desc.digest, () => fetchLayer(desc));
    if (!ran) {
      // Another pull in this process wrote it: hold it under this pull's lease too.
      await adoptExisting(desc);
      stats.blobsReused++;
      emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: false });
    }
  }

  async function fetchLayer(desc: Descriptor): Promise<void> {
    // No Info first: opening the write answers AlreadyExists for a blob containerd has (and adds it to
    // the lease), so a fresh blob costs no extra round trip.
    for (let attempt = 0; ; attempt++) {
      const writer = await openWriter(desc);
      if (!writer || writer.resumedFrom === desc.size) {
        // Shared from another namespace (containerd answers the full size and makes it visible here on
        // commit), or a complete ingest: nothing to download.
        if (writer) await writer.commit(freshLabels());
        await adoptExisting(desc);
        emit({
          type: 'layer-start',
          digest: desc.digest,
          size: desc.size,
          kind: 'layer',
          cached: true,
          resumedFrom: 0,
        });
        stats.blobsReused++;
        emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: false });
        return;
      }
      const resumedFrom = writer.resumedFrom;
      emit({
        type: 'layer-start',
        digest: desc.digest,
        size: desc.size,
        kind: 'layer',
        cached: false,
        resumedFrom,
      });
      const interval = options.progressIntervalMs ?? DEFAULT_CONTAINERD_PULL_OPTIONS.progressIntervalMs;
      let lastEmit = 0;
      try {
        if (resumedFrom < desc.size) {
          await registry.copyBlob(repo, desc, writer, {
            ...call,
            verify: false,
            offset: resumedFrom,
            onProgress: (position, total) => {
              const now = Date.now();
              if (now - lastEmit >= interval || position === total) {
                lastEmit = now;
                emit({ type: 'bytes', digest: desc.digest, completed: position, total });
              }
            },
          });
        }
        await writer.commit(freshLabels());
      } catch (e) {
        // Keep the ingest for the next pull to resume; a failed verification already aborted it.
        await writer.close();
        if (attempt === 0 && resumedFrom > 0 && isKimgError(e, 'DIGEST_MISMATCH')) continue;
        if (signal?.aborted && !isKimgError(e, 'ABORTED')) throw abortError(signal);
        throw e;
      }
      stats.blobsDownloaded++;
      if (resumedFrom > 0) stats.blobsResumed++;
      stats.bytesDownloaded += desc.size - resumedFrom;
      emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: true });
      return;
    }
  }

  /** A manifest or index (bytes in memory, verified by the registry client), with its child GC labels. */
  async function ensureDocument(doc: FetchedManifest): Promise<void> {
    const gc = childGcLabels(childrenOf(doc.manifest as ImageManifest & ImageIndex));
    const desc: Descriptor = { mediaType: doc.mediaType, digest: doc.digest, size: doc.bytes.length };
    await singleFlight(doc.digest, async () => {
      if (await adoptExisting(desc, gc)) return;
      const wrote = await writeContent(client, doc.bytes, {
        ref: ingestRef(doc.mediaType, doc.digest),
        digest: doc.digest,
        size: doc.bytes.length,
        labels: freshLabels(gc),
        ...cc,
      });
      if (!wrote) await adoptExisting(desc, gc);
    });
  }
}

/** Bytes of the index (when the reference named one) and the manifest. */
function documentsSize(root: FetchedManifest, manifest: FetchedManifest): number {
  return (root === manifest ? 0 : root.bytes.length) + manifest.bytes.length;
}

function toCtrDesc(d: Descriptor): ContainerdDescriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

async function settleAll(promises: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
