/**
 * The pieces of a backend that need the manager: the store-backed image service, and the image
 * filesystem usage image GC reads. Loaded only by callers that build the manager anyway (the node
 * runtime, or `openImageBackend` asked for the image service).
 */
import { LocalImageService, StatfsUsageSource, type FsUsageSource } from '../../manager/index.js';
import type { RegistryClient } from '../../registry/index.js';
import type { Store } from '../../store/index.js';
import type { CriImageService } from '../../cri/index.js';
import type { ImageServiceBackend, NodeRuntimeOverrides } from '../types.js';

/** What a store-backed service is built with (`openImageBackend`'s options). */
export interface LocalServiceOptions extends Pick<NodeRuntimeOverrides, 'onProgress' | 'onPulled'> {
  store: Store;
  registry: RegistryClient;
  defaultRegistry?: string | undefined;
}

/** A `LocalImageService` for `platform` (undefined = the backend's). */
export function localImageService(
  backend: Extract<ImageServiceBackend, { kind: 'local' }>,
  o: LocalServiceOptions,
  platform: string | undefined = backend.platform,
): LocalImageService {
  return new LocalImageService({
    store: o.store,
    registry: o.registry,
    ...(platform !== undefined ? { platform } : {}),
    ...(backend.concurrency !== undefined ? { concurrency: backend.concurrency } : {}),
    // docker.io is the service's own default: passing it changes nothing, leaving it out keeps the
    // options the service was always built with.
    ...(o.defaultRegistry !== undefined && o.defaultRegistry !== 'docker.io'
      ? { defaultRegistry: o.defaultRegistry }
      : {}),
    ...(o.onProgress !== undefined ? { onProgress: o.onProgress } : {}),
    ...(o.onPulled !== undefined ? { onPulled: o.onPulled } : {}),
  });
}

/**
 * The image filesystem usage of a backend: kimg's store filesystem (used bytes = blobs + ingests), or
 * the runtime's image filesystem (statfs of the mount point it reports, its own used bytes).
 */
export function backendUsage(opened: { cri: CriImageService | undefined }, store: Store): FsUsageSource {
  const cri = opened.cri;
  if (cri !== undefined) {
    return {
      imageFsStats: async () => {
        const fs = (await cri.imageFsInfo())[0];
        const st = await new StatfsUsageSource(fs?.mountpoint || store.root).imageFsStats();
        return fs !== undefined ? { ...st, usedBytes: fs.usedBytes } : st;
      },
    };
  }
  return new StatfsUsageSource(store.root, async () => {
    const df = await store.df();
    return df.blobs.bytes + df.ingests.bytes;
  });
}
