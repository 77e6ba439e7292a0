/**
 * The pull pipeline: registry → store. `pullImage` resolves a reference, selects the platform's
 * manifest from an index, fetches the config (and, for a single-platform image, checks its platform
 * before any layer is fetched), then the layers in parallel into the content store (each blob hashed
 * while it is written, verified at commit, made visible by an atomic rename), then the manifests, and
 * commits the image record last, so a pull that fails, is cancelled or is killed never leaves a half
 * image behind: at worst an ingest that the next pull of the same digest resumes with a `Range`
 * request (and downloads again from byte 0 if the resumed content fails verification).
 *
 * Shape follows containerd's pull (`core/remotes/docker`, `core/images/handlers.go`): the manifest is
 * fetched with one GET (its exact bytes are stored), `max_concurrent_downloads` = 3, blobs already in
 * the store are not fetched again (so `imagePullPolicy: Always` costs one manifest request when
 * nothing changed; re-used blobs are touched so a concurrent store GC keeps them under the pull's
 * lease), and concurrent pulls that need the same blob download it once (containerd PR #6702;
 * STYLE.md §7): the first asks the registry, later ones join its promise, and if the first is
 * cancelled one of them takes over (resuming its ingest). Across processes the store's per-ingest
 * locks serialize writers; a waiting process polls until the blob appears and reuses it.
 *
 * Progress is data (STYLE.md §9): typed events to a callback or an async iterator; the CLI renders them.
 */
import { setMaxListeners } from 'node:events';
import { KimgError, isKimgError } from '../errors/index.js';
import {
  MediaType,
  isIndexMediaType,
  isManifestMediaType,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  type OciPlatform,
} from '../oci/index.js';
import {
  defaultMatcher,
  formatPlatform,
  hostPlatform,
  parsePlatform,
  platformMatcher,
  selectManifest,
  type Platform,
  type PlatformMatcher,
} from '../platform/index.js';
import { parseReference, type Reference } from '../reference/index.js';
import type { AuthConfig } from '../credentials/index.js';
import type { FetchedManifest, RegistryClient } from '../registry/index.js';
import type { ImageRecord } from './records.js';
import type { Store } from './store.js';

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

/** Options of {@link pullImage}. Defaults in {@link DEFAULT_IMAGE_PULL_OPTIONS}. */
export interface ImagePullOptions {
  store: Store;
  registry: RegistryClient;
  /** Platform to select from an index: `os/arch[/variant]` or an object. Default: the host (containerd `Default()`). */
  platform?: string | Platform | undefined;
  /** Credentials for this pull; `null` = anonymous; undefined = the client's `credentials` option. */
  auth?: AuthConfig | null | undefined;
  /** Registry for single-component names (`busybox`). Default `docker.io`. */
  defaultRegistry?: string | undefined;
  /** CRI runtime handler the image is pulled for (issue E `RuntimeClassInImageCriApi`). Default ''. */
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

/** Per-store in-flight blob downloads (single-flight across concurrent pulls in this process). */
const inflightByStore = new WeakMap<Store, Map<string, Promise<void>>>();

function inflightFor(store: Store): Map<string, Promise<void>> {
  let m = inflightByStore.get(store);
  if (!m) {
    m = new Map();
    inflightByStore.set(store, m);
  }
  return m;
}

function toPlatformObject(p: OciPlatform | Platform): OciPlatform {
  const o = p as Platform & OciPlatform;
  const out: OciPlatform = { architecture: o.architecture, os: o.os };
  if (o.variant) out.variant = o.variant;
  const osVersion = o.osVersion ?? o['os.version'];
  if (osVersion) out['os.version'] = osVersion;
  const features = o.osFeatures ?? o['os.features'];
  if (features?.length) out['os.features'] = [...features];
  return out;
}

function platformOfConfig(config: ImageConfig): OciPlatform | undefined {
  const str = (v: unknown): v is string => typeof v === 'string' && v !== '';
  if (!str(config.os) || !str(config.architecture)) return undefined;
  const p: OciPlatform = { os: config.os, architecture: config.architecture };
  if (str(config.variant)) p.variant = config.variant;
  if (str(config['os.version'])) p['os.version'] = config['os.version'];
  return p;
}

function asPlatform(p: OciPlatform): Platform {
  const out: Platform = { os: p.os, architecture: p.architecture };
  if (p.variant) out.variant = p.variant;
  if (p['os.version']) out.osVersion = p['os.version'];
  if (p['os.features']) out.osFeatures = [...p['os.features']];
  return out;
}

/** A counting semaphore for the per-pull download limit. */
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

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal): KimgError {
  return new KimgError('ABORTED', 'the pull was cancelled', { cause: signal.reason });
}

/**
 * Pulls `image` into the store and resolves with the committed record once it is durable.
 *
 * @throws KimgError: reference codes for a bad name; `PLATFORM_INVALID`, `PLATFORM_NOT_FOUND`; the
 *   registry's codes (`UNAUTHORIZED`, `NOT_FOUND`, `REGISTRY_UNAVAILABLE`, `DIGEST_MISMATCH`, `STALLED`,
 *   …); `UNSUPPORTED_MEDIA_TYPE` for a manifest that is not an image; store codes; `ABORTED`.
 */
export async function pullImage(image: string, options: ImagePullOptions): Promise<ImagePullResult> {
  const started = Date.now();
  const emit = options.onProgress ?? (() => {});
  // Every request and blob download in flight listens to the signal (a pull of many layers at a high
  // concurrency passes the EventTarget's default of 10 listeners): listen through an own signal.
  const inner = options.signal ? followSignal(options.signal) : undefined;
  try {
    const result = await pullInner(
      image,
      inner ? { ...options, signal: inner.controller.signal } : options,
      emit,
    );
    result.stats.seconds = (Date.now() - started) / 1000;
    return result;
  } catch (e) {
    const err = isKimgError(e)
      ? e
      : options.signal?.aborted
        ? abortError(options.signal)
        : new KimgError('INTERNAL', `pulling ${JSON.stringify(image)} failed unexpectedly: ${String(e)}`, {
            cause: e,
          });
    emit({ type: 'error', code: err.code, message: err.message });
    throw err;
  } finally {
    inner?.unlink();
  }
}

/**
 * A controller that aborts (with the same reason) when `outer` does, until `unlink`; its signal takes
 * any number of listeners.
 */
function followSignal(outer: AbortSignal | undefined): { controller: AbortController; unlink: () => void } {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  const forward = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) forward();
  else outer?.addEventListener('abort', forward, { once: true });
  return { controller, unlink: () => outer?.removeEventListener('abort', forward) };
}

/**
 * The same pull as an async iterator of its events; the last event is `committed` (or the iterator
 * throws the pull's error) and the iterator's return value is the {@link ImagePullResult}. Leaving the
 * loop early (`break`, `return`, a throw in the loop body) cancels the pull and waits until it has
 * stopped (its partial downloads are kept for a later pull to resume).
 */
export async function* pullImageEvents(
  image: string,
  options: Omit<ImagePullOptions, 'onProgress'>,
): AsyncGenerator<ImagePullEvent, ImagePullResult, undefined> {
  const queue: ImagePullEvent[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let result: ImagePullResult | undefined;
  let failure: unknown;
  const { controller, unlink } = followSignal(options.signal);
  const running = pullImage(image, {
    ...options,
    signal: controller.signal,
    onProgress: (e) => {
      if (e.type === 'error') return;
      queue.push(e);
      wake?.();
    },
  }).then(
    (r) => {
      result = r;
      done = true;
      wake?.();
    },
    (e: unknown) => {
      failure = e;
      done = true;
      wake?.();
    },
  );
  try {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (done) break;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
    while (queue.length > 0) yield queue.shift()!;
    if (failure !== undefined) throw failure;
    return result!;
  } finally {
    unlink();
    if (!done) {
      controller.abort(new Error('the pull event iterator was closed early'));
      await running;
    }
  }
}

async function pullInner(
  image: string,
  options: ImagePullOptions,
  emit: (e: ImagePullEvent) => void,
): Promise<ImagePullResult> {
  const { store, registry, signal } = options;
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
  const matcher: PlatformMatcher = requested ? platformMatcher(requested) : defaultMatcher(hostPlatform());
  const call = { signal, ...(options.auth !== undefined ? { auth: options.auth } : {}) };
  const repo = { domain: ref.domain, path: ref.path };
  const stats: ImagePullStats = {
    blobsDownloaded: 0,
    blobsReused: 0,
    blobsResumed: 0,
    bytesDownloaded: 0,
    seconds: 0,
  };

  const lease = await store.lease(`pull ${ref.pullRef} (pid ${process.pid})`);
  try {
    const top = await registry.getImageManifest(
      { domain: ref.domain, path: ref.path, tag: ref.tag, digest: ref.digest },
      {
        ...call,
        select: (index, desc) =>
          selectManifest(index.manifests, requested ?? matcher, { index: desc.digest }),
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
    checkManifestShape(manifest, ref.pullRef, manifestDoc.digest);
    const rootDoc: FetchedManifest = top.index ?? manifestDoc;
    const selectedPlatform = top.index
      ? top.index.manifest && 'manifests' in top.index.manifest
        ? top.index.manifest.manifests.find((d) => d.digest === manifestDoc.digest)?.platform
        : undefined
      : undefined;
    emit({
      type: 'resolved',
      image: ref.pullRef,
      digest: rootDoc.digest,
      mediaType: rootDoc.mediaType,
      manifestDigest: manifestDoc.digest,
      platform: selectedPlatform
        ? formatPlatform(asPlatform(selectedPlatform))
        : requested
          ? formatPlatform(requested)
          : '',
    });

    // Config first (a single-platform image for another platform fails before any layer is fetched),
    // then the layers, manifests after, the record last: what a record names is always there.
    const limit = limiter(Math.max(1, options.concurrency ?? DEFAULT_IMAGE_PULL_OPTIONS.concurrency));
    await limit(() => ensureBlob(manifest.config, 'config'));
    const configBytes = await store.content.readBlob(manifest.config.digest, { maxBytes: 4 * 1024 * 1024 });
    let config: ImageConfig = {};
    try {
      const parsed: unknown = JSON.parse(configBytes.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not a JSON object');
      config = parsed as ImageConfig;
    } catch (e) {
      // Artifacts (non-image config types) may carry anything; an image config must be a JSON object.
      if (isImageConfigType(manifest.config.mediaType)) {
        throw new KimgError(
          'MANIFEST_INVALID',
          `the image config ${manifest.config.digest} of ${ref.pullRef} is not a valid JSON object`,
          {
            input: image,
            cause: e,
          },
        );
      }
    }
    const configPlatform = platformOfConfig(config);
    if (
      !top.index &&
      configPlatform &&
      isImageConfigType(manifest.config.mediaType) &&
      !matcher.match(asPlatform(configPlatform))
    ) {
      // containerd `images.Manifest`: a single-platform image must match the platform too.
      throw new KimgError(
        'PLATFORM_NOT_FOUND',
        `no match for platform in manifest ${manifestDoc.digest}: not found: ${ref.pullRef} is a single-platform image for ${formatPlatform(asPlatform(configPlatform))}, not ${requested ? formatPlatform(requested) : 'this host (' + formatPlatform(hostPlatform()) + ')'}; pass --platform to choose`,
        { input: image, items: [formatPlatform(asPlatform(configPlatform))] },
      );
    }
    const seen = new Set<string>([manifest.config.digest]);
    await settleAll(
      manifest.layers
        .filter((desc) => (seen.has(desc.digest) ? false : (seen.add(desc.digest), true)))
        .map((desc) => limit(() => ensureBlob(desc, 'layer'))),
    );
    if (top.index) await ensureManifestBlob(top.index);
    await ensureManifestBlob(manifestDoc);

    const platform: OciPlatform = toPlatformObject(
      selectedPlatform ?? configPlatform ?? requested ?? hostPlatform(),
    );
    const runtimeHandler = options.runtimeHandler ?? '';
    const previous = await store.images.get({ name: ref.pullRef, runtimeHandler }).catch(() => undefined);
    const now = new Date().toISOString();
    const size =
      (top.index ? top.index.bytes.length : 0) +
      manifestDoc.bytes.length +
      manifest.config.size +
      [...new Map(manifest.layers.map((l) => [l.digest, l.size])).values()].reduce((a, b) => a + b, 0);
    const record: ImageRecord = {
      name: ref.pullRef,
      runtimeHandler,
      digest: rootDoc.digest,
      mediaType: rootDoc.mediaType,
      manifestDigest: manifestDoc.digest,
      manifestMediaType: manifestDoc.mediaType,
      manifestSize: manifestDoc.bytes.length,
      ...(top.index ? { indexDigest: top.index.digest } : {}),
      imageId: manifest.config.digest,
      size,
      platform,
      layers: manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      pulledAt: now,
      lastUsed: previous?.lastUsed ?? now,
      ...(previous?.pinned ? { pinned: true } : {}),
      source: 'pull',
    };
    await store.images.put(record);
    emit({
      type: 'committed',
      image: record.name,
      id: record.imageId,
      digest: record.digest,
      size: record.size,
    });
    return { record, stats };
  } finally {
    await lease.release();
  }

  /**
   * Single flight per digest within this process: joins a running `run` for `digest`, or runs it and
   * lets later callers join. Resolves true when this call ran it. A leader that was cancelled by its
   * own signal does not fail the joiners: one of them takes over.
   */
  async function singleFlight(
    digest: string,
    run: () => Promise<void>,
    onJoin: () => void,
  ): Promise<boolean> {
    const inflight = inflightFor(store);
    let joined = false;
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const running = inflight.get(digest);
      if (running) {
        if (!joined) onJoin();
        joined = true;
        try {
          await running;
          return false;
        } catch (e) {
          if (isKimgError(e, 'ABORTED') && !signal?.aborted) continue;
          throw e;
        }
      }
      // A failure caused by our own cancellation is ABORTED, so joiners know to take over.
      const mine = run().catch((e: unknown) => {
        throw signal?.aborted && !isKimgError(e, 'ABORTED') ? abortError(signal) : e;
      });
      inflight.set(digest, mine);
      try {
        await mine;
        return true;
      } finally {
        if (inflight.get(digest) === mine) inflight.delete(digest);
      }
    }
  }

  /** Retries `fn` while another process holds the ingest lock (it commits the blob or gives up its lock). */
  async function waitingForLocks<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        if (!isKimgError(e, 'STORE_LOCKED')) throw e;
        await sleep(DEFAULT_IMAGE_PULL_OPTIONS.lockPollMs, signal);
      }
    }
  }

  /** Stores a fetched manifest or index (bytes already verified by the registry client). */
  async function ensureManifestBlob(doc: FetchedManifest): Promise<void> {
    await singleFlight(
      doc.digest,
      () =>
        waitingForLocks(
          async () =>
            void (await store.content.writeBlob(doc.bytes, { digest: doc.digest, size: doc.bytes.length })),
        ),
      () => {},
    );
  }

  /**
   * Makes sure a config or layer is committed: re-uses it when it is in the store (touching it, so a
   * concurrent store GC keeps it under this pull's lease), joins a download of it by a concurrent pull
   * in this process, or downloads it (resuming an interrupted ingest).
   */
  async function ensureBlob(desc: Descriptor, kind: 'config' | 'layer'): Promise<void> {
    const ran = await singleFlight(
      desc.digest,
      () => waitingForLocks(() => downloadVerified(desc, kind)),
      () =>
        emit({
          type: 'layer-start',
          digest: desc.digest,
          size: desc.size,
          kind,
          cached: true,
          resumedFrom: 0,
        }),
    );
    if (!ran) {
      stats.blobsReused++;
      emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: false });
    }
  }

  /**
   * `download`, once more from byte 0 when a resumed ingest fails verification at commit (its prefix
   * was damaged, e.g. by a crash of the machine; the commit already discarded it).
   */
  async function downloadVerified(desc: Descriptor, kind: 'config' | 'layer'): Promise<void> {
    const attempt: { resumedFrom: number } = { resumedFrom: 0 };
    try {
      await download(desc, kind, attempt);
    } catch (e) {
      if (!(attempt.resumedFrom > 0 && isKimgError(e, 'DIGEST_MISMATCH'))) throw e;
      await download(desc, kind, attempt);
    }
  }

  async function download(
    desc: Descriptor,
    kind: 'config' | 'layer',
    attempt: { resumedFrom: number },
  ): Promise<void> {
    attempt.resumedFrom = 0;
    const writer = await store.content.writer({
      ref: desc.digest,
      expected: { digest: desc.digest, size: desc.size },
      holder: `pull ${ref.pullRef} (pid ${process.pid})`,
    });
    if (writer.existing) {
      await writer.commit();
      emit({ type: 'layer-start', digest: desc.digest, size: desc.size, kind, cached: true, resumedFrom: 0 });
      stats.blobsReused++;
      emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: false });
      return;
    }
    const resumedFrom = writer.offset;
    attempt.resumedFrom = resumedFrom;
    emit({ type: 'layer-start', digest: desc.digest, size: desc.size, kind, cached: false, resumedFrom });
    const interval = options.progressIntervalMs ?? DEFAULT_IMAGE_PULL_OPTIONS.progressIntervalMs;
    let lastEmit = 0;
    let committed = false;
    try {
      if (resumedFrom < desc.size) {
        await registry.copyBlob(repo, desc, writer.sink(), {
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
      await writer.commit();
      committed = true;
    } finally {
      // Keep a partial ingest for the next pull to resume; commit already discarded corrupt content.
      if (!committed) await writer.close().catch(() => {});
    }
    stats.blobsDownloaded++;
    if (resumedFrom > 0) stats.blobsResumed++;
    stats.bytesDownloaded += desc.size - resumedFrom;
    emit({ type: 'layer-done', digest: desc.digest, size: desc.size, downloaded: true });
  }
}

/** Waits for every promise; rejects with the first failure once all have settled (no dangling writers). */
async function settleAll(promises: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function isImageConfigType(t: string): boolean {
  return t === MediaType.OciConfig || t === MediaType.DockerConfig;
}

function checkManifestShape(m: ImageManifest, image: string, digest: string): void {
  const bad = (what: string) =>
    new KimgError(
      'MANIFEST_INVALID',
      `the manifest ${digest} of ${image} is not a valid image manifest: ${what}`,
      {
        input: image,
      },
    );
  if (typeof m !== 'object' || m === null) throw bad('not an object');
  const checkDesc = (d: unknown, where: string): void => {
    const x = d as Partial<Descriptor> | undefined;
    if (
      !x ||
      typeof x.digest !== 'string' ||
      typeof x.size !== 'number' ||
      !Number.isSafeInteger(x.size) ||
      x.size < 0
    ) {
      throw bad(`${where} is not a descriptor with a digest and a size`);
    }
    if (typeof x.mediaType !== 'string') throw bad(`${where} has no mediaType`);
  };
  checkDesc(m.config, 'config');
  if (!Array.isArray(m.layers)) throw bad('layers is not a list');
  m.layers.forEach((l, i) => checkDesc(l, `layers[${i}]`));
  if (isIndexMediaType(m.config.mediaType)) throw bad('the config is an index');
}
