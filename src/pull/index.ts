/**
 * The pull pipeline: registry → image store. `pullImage` resolves a reference, selects the platform's
 * manifest from an index, fetches the config (and, for a single-platform image, checks its platform
 * before any layer is fetched), then the layers in parallel into the target's content store (each blob
 * hashed while it is written, verified at commit, made visible by an atomic rename), then the
 * manifests, and commits the image record last, so a pull that fails, is cancelled or is killed never
 * leaves a half image behind: at worst an ingest that the next pull of the same digest resumes with a
 * `Range` request (and downloads again from byte 0 if the resumed content fails verification).
 *
 * The pipeline writes into a `PullTarget` (src/store `target.ts`): kimg's own `Store`, or any other
 * backend with content, image records and leases in containerd's shape.
 *
 * Shape follows containerd's pull (`core/remotes/docker`, `core/images/handlers.go`): the manifest is
 * fetched with one GET (its exact bytes are stored), `max_concurrent_downloads` = 3, blobs already in
 * the store are not fetched again (so `imagePullPolicy: Always` costs one manifest request when
 * nothing changed; re-used blobs are touched so a concurrent store GC keeps them under the pull's
 * lease; a target with the `present` hook, containerd's, ends such a pull read-only once the reference
 * is resolved), and concurrent pulls that need the same blob download it once (containerd PR #6702): the
 * first asks the registry, later ones join its promise, and if the first is cancelled one of them
 * takes over (resuming its ingest). Across processes the store's per-ingest locks serialize writers; a
 * waiting process polls until the blob appears and reuses it.
 *
 * Progress is data: typed events to a callback or an async iterator; the CLI renders them. The
 * `PullProgressHub` (`progress.ts`) keeps every in-flight pull's per-layer progress for the faces
 * that stream it (docs/design/pull-progress.md).
 *
 * Layout: `pull.ts` (the entry points and the order of steps), `internal/resolve.ts` (manifest,
 * config, platform), `internal/blobs.ts` (single flight, lock waits, resumable downloads),
 * `internal/record.ts` (the committed record), `internal/concurrency.ts`.
 */
export { pullImage, pullImageEvents } from './pull.js';
export {
  PullProgressHub,
  type PullProgressLine,
  type PullProgressListener,
  type InFlightPull,
} from './progress.js';
export {
  DEFAULT_IMAGE_PULL_OPTIONS,
  type ImagePullOptions,
  type ImagePullEvent,
  type ImagePullStats,
  type ImagePullResult,
} from './types.js';
