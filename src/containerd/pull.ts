/**
 * `pullIntoContainerd`: kimg's one pull pipeline (src/pull `pullImage`) writing into containerd
 * through {@link ContainerdPullTarget}. kimg resolves, authenticates, selects the platform and
 * fetches (its registry client: mirrors, retries, resume, stall detection); containerd stores,
 * unpacks and runs. The result is indistinguishable, for containerd and its CRI plugin, from
 * containerd's own `PullImage` of the same image.
 *
 * Order (containerd `pull.go`, CRI `image_pull.go`), split between the pipeline and the target:
 * 1. A lease (`kimg-pull-<ms>-<random>`, `containerd.io/gc.expire` = now + 24 h) that every call of
 *    the pull names, so containerd's GC keeps ingests, blobs and snapshots while the pull runs, and
 *    drops them by expiry if kimg dies.
 * 2. Config, then layers (`max_concurrent_downloads` = 3): a blob in this namespace or in another one
 *    (containerd shares it when the write opens) is not downloaded; otherwise the registry's bytes
 *    stream into containerd's content Write (ingest ref `layer-<digest>`, resumed from containerd's
 *    offset after a crash, committed with the expected digest and size) — or, when containerd's content
 *    directory is reachable from here, into that directory by kimg, recorded through the same protocol
 *    without the bytes (src/containerd/direct-content.ts).
 * 3. While later layers download, committed layers are unpacked in order into the snapshotter
 *    (src/containerd/unpack.ts), skipping what is already unpacked — on containerd's host as root with
 *    overlayfs, extracted by kimg as soon as each blob is committed and moved into its snapshot in
 *    order (src/containerd/local-apply.ts), else through containerd's Diff.Apply.
 * 4. Manifest and index; once the unpack is done, the labels (distribution source, child GC labels,
 *    `containerd.io/gc.ref.snapshot.<snapshotter>` on the config) and the image records CRI's
 *    PullImage creates: `sha256:<config digest>` (the image id), the tag name, `name@<digest>`, each
 *    labelled `io.cri-containerd.image=managed`.
 * 5. The lease is deleted (kept, until it expires, when the pull failed).
 * Before 1, once the reference is resolved: when containerd already holds the image as 2-4 would leave
 * it (records, blobs, labels, top snapshot; `ContainerdPullTarget.present`), the pull ends there, with
 * read-only calls only: no lease, no write (the kubelet's `Always` on a present image).
 */
import type { AuthConfig } from '../credentials/index.js';
import { pullImage, type ImagePullEvent, type ImagePullResult, type ImagePullStats } from '../pull/index.js';
import type { Platform } from '../platform/index.js';
import { parseReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/index.js';
import type { ContainerdClient, ContainerdDescriptor } from './client.js';
import { criImageNames } from './images.js';
import { ContainerdPullTarget } from './pull-target.js';

/** Defaults of {@link ContainerdPullOptions}. */
export const DEFAULT_CONTAINERD_PULL_OPTIONS = Object.freeze({
  /** containerd's CRI `max_concurrent_downloads`. */
  concurrency: 3,
  /** containerd's default snapshotter on Linux. */
  snapshotter: 'overlayfs',
  /** containerd's client lease default (`leases.WithExpiration(24h)`). */
  leaseTtlMs: 24 * 3600_000,
  progressIntervalMs: 100,
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
  /**
   * Write blob bytes into containerd's content directory when it is reachable from here, and record
   * them through the content Write protocol without their bytes (default true; src/containerd
   * `direct-content.ts`). false = every byte through the protocol.
   */
  directWrite?: boolean | undefined;
  /**
   * With direct writes, the `overlayfs` snapshotter and kimg on containerd's host as root: kimg
   * extracts layers into the snapshotter's directories itself, concurrently with the fetch, instead of
   * containerd's Diff.Apply one after the other (src/containerd `local-apply.ts`). Default false:
   * every layer through Diff.Apply (docs/design/containerd-backend.md says why local apply is opt-in).
   */
  localApply?: boolean | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((event: ImagePullEvent) => void) | undefined;
  progressIntervalMs?: number | undefined;
}

/** What a pull into containerd did: the pipeline's statistics and the unpack's. */
export interface ContainerdPullStats extends ImagePullStats {
  /** Layers written into the snapshotter by this pull. */
  layersUnpacked: number;
  /**
   * Blobs kimg wrote into containerd's content directory itself and recorded without their bytes
   * (the others' bytes went through containerd's content Write protocol).
   */
  blobsWrittenDirect: number;
  /** Of `layersUnpacked`, the layers kimg extracted itself (local apply); the rest went through Diff.Apply. */
  layersAppliedLocally: number;
}

/**
 * The result of {@link pullIntoContainerd}: the pipeline's result (`record`, `stats`, so callbacks
 * taking an {@link ImagePullResult} serve both backends) and containerd's view of it.
 */
export interface ContainerdPullResult extends ImagePullResult {
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

/** The canonical reference, for the lease label; a bad one is left for the pipeline to report. */
function canonical(image: string, defaultRegistry: string | undefined): string | undefined {
  try {
    return parseReference(image, defaultRegistry !== undefined ? { defaultRegistry } : {}).pullRef;
  } catch {
    return undefined;
  }
}

/**
 * Pulls `image` into containerd (see the module comment) and resolves once the image records exist.
 * @throws KimgError: reference codes; `PLATFORM_NOT_FOUND`; the registry's codes; `DIGEST_MISMATCH`
 *   (containerd's commit or unpack verification); `MANIFEST_INVALID`; `CONTAINERD_UNAVAILABLE`,
 *   `CONTAINERD_ERROR`; `ABORTED`.
 */
export async function pullIntoContainerd(
  image: string,
  options: ContainerdPullOptions,
): Promise<ContainerdPullResult> {
  const target = new ContainerdPullTarget({
    directWrite: options.directWrite !== false,
    localApply: options.localApply === true,
    client: options.client,
    snapshotter:
      options.unpack === false
        ? undefined
        : (options.snapshotter ?? DEFAULT_CONTAINERD_PULL_OPTIONS.snapshotter),
    pinned: options.pinned,
    image: canonical(image, options.defaultRegistry),
    signal: options.signal,
  });
  const { record, stats } = await pullImage(image, {
    store: target,
    registry: options.registry,
    platform: options.platform,
    auth: options.auth,
    defaultRegistry: options.defaultRegistry,
    concurrency: options.concurrency ?? DEFAULT_CONTAINERD_PULL_OPTIONS.concurrency,
    signal: options.signal,
    onProgress: options.onProgress,
    progressIntervalMs: options.progressIntervalMs,
  });
  return {
    image: record.name,
    id: record.imageId,
    digest: record.digest,
    mediaType: record.mediaType,
    manifestDigest: record.manifestDigest,
    names: criImageNames(parseReference(record.name), record.imageId, record.digest),
    size: record.size,
    layers: record.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    unpacked: target.unpacked,
    record,
    stats: {
      ...stats,
      layersUnpacked: target.layersUnpacked,
      blobsWrittenDirect: target.blobsWrittenDirect,
      layersAppliedLocally: target.layersAppliedLocally,
    },
  };
}
