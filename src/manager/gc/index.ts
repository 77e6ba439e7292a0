/**
 * Image garbage collection, as the kubelet's image GC manager does it over the CRI: keep the image
 * filesystem's usage under `imageGCHighThresholdPercent` by removing unused images, least recently used
 * first, until usage is back at `imageGCLowThresholdPercent`; and remove images unused for longer than
 * `imageMaximumGCAge` regardless of usage.
 *
 * The algorithm (kubelet `GarbageCollect`):
 * 1. Detect: every image `listImages` reports is tracked under its key (`<id>` or `<id>,<handler>`,
 *    `imageRecordKey`) with the time it was first detected and the time it was last seen in use.
 * 2. Candidates: images not in use and not pinned (CRI `pinned`, or named in the configured pinned list,
 *    e.g. the sandbox image), ordered by last use, then first detection (the LRU rank).
 * 3. Max age (when `imageMaximumGCAge` > 0 and GC has been running for longer than it): every candidate
 *    unused for longer than the maximum age is removed. Failures abort the run with
 *    `wanted to free images older than <d>, encountered errors in image deletion: <errs>`.
 * 4. Usage: `100 - floor(available * 100 / capacity)` of the image filesystem (statfs). Capacity 0 is a
 *    `InvalidDiskCapacity` warning. At or above the high threshold, `capacity * (100 - low) / 100 -
 *    available` bytes are to be freed: candidates are removed in LRU order, skipping those used since the
 *    run began and those first detected less than `imageMinimumGCAge` ago, until the sizes removed reach
 *    that amount. Falling short is a `FreeDiskSpaceFailed` warning
 *    (`Failed to garbage collect required amount of images. Attempted to free <n> bytes, but only found
 *    <m> bytes eligible to free.`); removal errors end the run with
 *    `wanted to free <n> bytes, but freed <m> bytes space with errors in image deletion: <errs>`.
 * 5. A run that fails right after a failed run records `ImageGCFailed` with the error text (the kubelet's
 *    GC loop). `imageGCHighThresholdPercent` 100 with no maximum age disables image GC.
 *
 * Removing an image removes its records only (CRI `RemoveImage`); the blobs no other image needs are
 * freed by the store's blob GC (kimg: `store.gc()`, passed in as `sweep`; containerd does it on its
 * own), which runs after the removals so the space is really returned. Shared layers stay while any
 * image uses them. Freed bytes are counted, as upstream, as the sum of the removed images' sizes.
 *
 * Where kimg differs (decided, not accidental): the kubelet keeps first-detection and last-use times in
 * memory (a restart makes every image new). kimg's CLI is not long-running, so the times can be kept in
 * a state file (`<root>/manager/image-gc.json`, `FileImageGCStateStore`) and, for kimg's own store, taken
 * from the image records (`storeUsageHints`: first detection = when the image was pulled or loaded, last
 * use = the record's `lastUsed`). The "GC has been running longer than the maximum age" guard uses the
 * time the state was created.
 *
 * Source: kubernetes `pkg/kubelet/images/image_gc_manager.go` (detectImages, GarbageCollect,
 * freeOldImages, freeSpace, imagesInEvictionOrder, byLastUsedAndDetected) and `pkg/kubelet/kubelet.go`
 * (StartGarbageCollection: the failure logging and the disabled case); `pkg/kubelet/apis/config/
 * validation/validation.go` for the configuration messages (in `src/config`).
 */
/*
 * Layout, like the kubelet's `pkg/kubelet/images/`: `policy.ts` (thresholds, ages, pinned images),
 * `usage.ts` (image filesystem statistics), `plan.ts` (the pure plan of a run), `state.ts` (first
 * detection and last use, kept between runs), `manager.ts` (`ImageGCManager`, which runs the plan).
 */
export * from './policy.js';
export * from './usage.js';
export * from './plan.js';
export * from './state.js';
export * from './manager.js';
