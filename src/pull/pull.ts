/**
 * `pullImage` and `pullImageEvents`: one pull from resolving the reference to committing the record,
 * in the order that keeps the target consistent (config, layers, manifests, record last).
 */
import { KimgError, isKimgError, quote } from '../errors/index.js';
import { MAX_CONFIG_BYTES } from '../oci/index.js';
import { parseReference } from '../reference/index.js';
import type { CallOptions } from '../registry/index.js';
import { BlobFetcher } from './internal/blobs.js';
import { abortError, followSignal, limiter, settleAll } from './internal/concurrency.js';
import { buildRecord } from './internal/record.js';
import type { ImageRecord, PullTarget } from '../store/index.js';
import {
  checkSinglePlatform,
  choosePlatform,
  parseConfig,
  recordPlatform,
  resolvedPlatformText,
  resolveImage,
  type PlatformChoice,
  type ResolvedImage,
} from './internal/resolve.js';
import {
  DEFAULT_IMAGE_PULL_OPTIONS,
  type ImagePullEvent,
  type ImagePullOptions,
  type ImagePullResult,
  type ImagePullStats,
} from './types.js';

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
    const result = await runPull(
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

/** One pull: resolve; then either the target already holds the image, or config, layers, manifests, record under a lease. */
async function runPull(
  image: string,
  options: ImagePullOptions,
  emit: (e: ImagePullEvent) => void,
): Promise<ImagePullResult> {
  const { store: target, registry, signal } = options;
  const ref = parseReference(
    image,
    options.defaultRegistry !== undefined ? { defaultRegistry: options.defaultRegistry } : {},
  );
  const choice = choosePlatform(options.platform);
  const call: CallOptions = { signal, ...(options.auth !== undefined ? { auth: options.auth } : {}) };
  const stats: ImagePullStats = {
    blobsDownloaded: 0,
    blobsReused: 0,
    blobsResumed: 0,
    bytesDownloaded: 0,
    seconds: 0,
  };
  const holder = `pull ${ref.pullRef} (pid ${process.pid})`;
  const runtimeHandler = options.runtimeHandler ?? '';

  const resolved = await resolveImage(registry, ref, image, choice, call);
  const { manifest, manifestDoc, root } = resolved;
  emit({
    type: 'resolved',
    image: ref.pullRef,
    digest: root.digest,
    mediaType: root.mediaType,
    manifestDigest: manifestDoc.digest,
    platform: resolvedPlatformText(resolved, choice),
  });
  // The config's size is checked against the shared cap before any byte is fetched: a config
  // claiming 1 GiB is the registry's fault (MANIFEST_INVALID), never a download then a store error.
  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new KimgError(
      'MANIFEST_INVALID',
      `the manifest of ${quote(image)} declares a ${manifest.config.size}-byte config, more than the ${MAX_CONFIG_BYTES}-byte limit for image configs: the registry's image is not usable`,
      { input: image, expected: MAX_CONFIG_BYTES, actual: manifest.config.size },
    );
  }

  // Already complete in the target (the kubelet's `Always` on a present image): read-only, no lease.
  const present = await presentRecord(target, resolved, ref.pullRef, runtimeHandler, choice, image);
  if (present !== undefined) {
    stats.blobsReused = new Set([manifest.config.digest, ...manifest.layers.map((l) => l.digest)]).size;
    emit({
      type: 'committed',
      image: present.name,
      id: present.imageId,
      digest: present.digest,
      size: present.size,
    });
    return { record: present, stats };
  }

  const blobs = new BlobFetcher({
    target,
    registry,
    repo: { domain: ref.domain, path: ref.path },
    call,
    holder,
    progressIntervalMs: options.progressIntervalMs ?? DEFAULT_IMAGE_PULL_OPTIONS.progressIntervalMs,
    emit,
    stats,
  });
  const lease = await target.lease(holder);
  try {
    // Config first (a single-platform image for another platform fails before any layer is fetched),
    // then the layers, manifests after, the record last: what a record names is always there.
    const limit = limiter(Math.max(1, options.concurrency ?? DEFAULT_IMAGE_PULL_OPTIONS.concurrency));
    await limit(() => blobs.ensureBlob(manifest.config, 'config'));
    const configBytes = await target.content.readBlob(manifest.config.digest, { maxBytes: MAX_CONFIG_BYTES });
    const config = parseConfig(configBytes, manifest.config, ref.pullRef, image);
    checkSinglePlatform(resolved, config, choice, ref.pullRef, image);
    if (target.layersPlanned) await target.layersPlanned({ manifest, config });
    const seen = new Set<string>([manifest.config.digest]);
    await settleAll(
      manifest.layers
        .filter((desc) => (seen.has(desc.digest) ? false : (seen.add(desc.digest), true)))
        .map((desc) => limit(() => blobs.ensureBlob(desc, 'layer'))),
    );
    if (resolved.index) await blobs.ensureManifest(resolved.index);
    await blobs.ensureManifest(manifestDoc);

    const previous = await target.images.get({ name: ref.pullRef, runtimeHandler }).catch(() => undefined);
    const platform = recordPlatform(resolved, config, choice);
    const record = buildRecord(
      ref.pullRef,
      runtimeHandler,
      resolved,
      platform,
      previous,
      new Date().toISOString(),
    );
    await target.images.put(record);
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
}

/**
 * The record the target already holds for the resolved image, when it says the image is complete
 * there (`PullTarget.present`); undefined otherwise, and for a target without the hook. The config is
 * read from the target (absent = not present) and checked as the ordinary path checks it, so a
 * malformed config or another platform's single-platform image fails the same way on both paths.
 */
async function presentRecord(
  target: PullTarget,
  resolved: ResolvedImage,
  name: string,
  runtimeHandler: string,
  choice: PlatformChoice,
  image: string,
): Promise<ImageRecord | undefined> {
  if (target.present === undefined) return undefined;
  const { manifest } = resolved;
  let bytes: Buffer;
  try {
    bytes = await target.content.readBlob(manifest.config.digest, { maxBytes: MAX_CONFIG_BYTES });
  } catch {
    return undefined;
  }
  const config = parseConfig(bytes, manifest.config, name, image);
  checkSinglePlatform(resolved, config, choice, name, image);
  const previous = await target.images.get({ name, runtimeHandler }).catch(() => undefined);
  const record = buildRecord(
    name,
    runtimeHandler,
    resolved,
    recordPlatform(resolved, config, choice),
    previous,
    new Date().toISOString(),
  );
  const index = resolved.index?.manifest;
  return target
    .present({
      record,
      manifest,
      config,
      ...(index !== undefined && 'manifests' in index ? { index } : {}),
    })
    .catch(() => undefined);
}
