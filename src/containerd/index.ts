/**
 * containerd as kimg's image store: kimg fetches (its registry client, credentials, mirrors, resume,
 * stall detection, progress), containerd stores, unpacks and runs. kimg speaks containerd's own gRPC
 * API (content, images, leases, snapshots, diff, namespaces, containers; kimg's wire-compatible subset
 * in `proto/containerd/`) on its socket, in namespace `k8s.io` by default (the CRI plugin's), and writes
 * exactly what containerd's own pull would: blobs through the content Write protocol under a lease,
 * with containerd's GC and distribution-source labels, layers unpacked into the snapshotter, and the
 * image records containerd's CRI plugin creates on PullImage. Design and measurements:
 * `docs/design/containerd-backend.md`.
 *
 * Public API:
 * - {@link ContainerdClient}: the typed gRPC client (`new ContainerdClient({address, namespace})`,
 *   `close()`); {@link containerdStatus} reads the gRPC status of its errors.
 * - {@link pullIntoContainerd}: the pull (`client`, `registry`, `platform`, `auth`, `unpack`,
 *   `snapshotter`, `onProgress`, `signal`) → {@link ContainerdPullResult} (`id` = config digest): the
 *   one pull pipeline (src/pull `pullImage`) into a {@link ContainerdPullTarget}.
 * - {@link openContentWriter} / {@link writeContent}: the content Write protocol as a registry
 *   `BlobSink` (resumable by ref and offset).
 * - {@link LayerUnpacker}, {@link chainIds}: unpacking through snapshots + diff.
 * - {@link openLocalApply}: local apply — kimg extracts layers into containerd's overlayfs snapshotter
 *   itself (root, same host), concurrently with the fetch; {@link localApplyState} says why not.
 * - {@link ContainerdPullTarget}: containerd as the pipeline's `PullTarget` (src/pull `pullImage`),
 *   unpacking layers as they commit.
 * - {@link ContainerdImageService}: the CRI image service (`ImageService`) over containerd's store;
 *   its `imagesInUse()` lists the images containers use ({@link containerImageInUse}), for image GC.
 * - {@link criImageNames}, {@link putImageRecords}: CRI-compatible image records.
 * - Labels: {@link childGcLabels}, {@link distributionSourceLabel} and the label key constants.
 *
 * Failure codes: `CONTAINERD_UNAVAILABLE` (socket), `CONTAINERD_ERROR` (with the gRPC status in
 * `details.actual`), `INVALID_ARGUMENT` (address, namespace), `DIGEST_MISMATCH`/`SIZE_MISMATCH`
 * (containerd's verification at commit or unpack), plus the registry's and reference's codes on pull.
 */
export {
  ContainerdClient,
  DEFAULT_CONTAINERD_OPTIONS,
  LEASE_HEADER,
  NAMESPACE_HEADER,
  containerdStatus,
  containerdTarget,
  fromContainerdError,
  validateNamespace,
  type ContainerdCallOptions,
  type ContainerdClientOptions,
  type ContainerdContainer,
  type ContainerdDescriptor,
  type ContainerdImage,
  type ContainerdLease,
  type ContainerdMount,
  type ContainerdStatus,
  type ContentInfo,
  type IngestStatus,
  type SnapshotInfo,
} from './client.js';
export {
  ContentWriter,
  DEFAULT_CONTENT_WRITER_OPTIONS,
  ingestRef,
  openContentWriter,
  writeContent,
  type ContentWriterOptions,
} from './content-writer.js';
export { CRI_CONTAINER_METADATA_EXTENSION, containerImageInUse } from './containers.js';
export { criImageNames, putImageRecords } from './images.js';
export { ContainerdImageService, type ContainerdImageServiceOptions } from './image-service.js';
export { ContainerdPullTarget, type ContainerdPullTargetOptions } from './pull-target.js';
export {
  DirectContent,
  openDirectContent,
  DIRECT_STAGING_DIR,
  DIRECT_INGEST_MAX_AGE_MS,
  type DirectContentState,
  type DirectContentOptions,
} from './direct-content.js';
export {
  LABEL_CRI_IMAGE,
  LABEL_CRI_PINNED,
  LABEL_DISTRIBUTION_SOURCE,
  LABEL_GC_EXPIRE,
  LABEL_GC_REF_CONTENT,
  LABEL_GC_REF_SNAPSHOT,
  LABEL_SNAPSHOT_REF,
  LABEL_UNCOMPRESSED,
  MAX_LABEL_BYTES,
  childGcLabels,
  childrenOf,
  distributionSourceLabel,
  isLayerMediaType,
  leaseExpiryLabels,
} from './labels.js';
export {
  DEFAULT_CONTAINERD_PULL_OPTIONS,
  pullIntoContainerd,
  type ContainerdPullOptions,
  type ContainerdPullResult,
  type ContainerdPullStats,
} from './pull.js';
export { chainIds } from '../oci/index.js';
export { LayerUnpacker, type LayerUnpackResult, type LayerUnpackerOptions } from './unpack.js';
export {
  DEFAULT_LOCAL_APPLY_CONCURRENCY,
  LOCAL_STAGING_DIR,
  LocalApply,
  localApplyState,
  openLocalApply,
  type LocalApplyOptions,
  type LocalApplyRunner,
  type LocalApplyState,
  type StagedLayer,
} from './local-apply.js';
