/**
 * Building the image service of a backend, and the image filesystem usage image GC reads for it.
 */
import { ContainerdClient, ContainerdImageService } from '../../containerd/index.js';
import { CriImageService } from '../../cri/index.js';
import {
  LocalImageService,
  StatfsUsageSource,
  type FsUsageSource,
  type ImageService,
} from '../../manager/index.js';
import type { RegistryClient } from '../../registry/index.js';
import type { Store } from '../../store/index.js';
import type { ImageServiceBackend, NodeRuntimeOverrides } from '../types.js';

/** An opened backend: the service, the store-backed one when local, and how to close it. */
export interface OpenedBackend {
  service: ImageService;
  local: LocalImageService | undefined;
  cri: CriImageService | undefined;
  containerd: ContainerdImageService | undefined;
  close(): void;
}

/** What building a local service needs besides the backend setting. */
export interface LocalServiceContext {
  store: Store;
  registry: RegistryClient;
  defaultRegistry: string;
  overrides: Pick<NodeRuntimeOverrides, 'onProgress' | 'onPulled'>;
}

/** A `LocalImageService` for `platform` (undefined = the backend's). */
export function localService(
  backend: Extract<ImageServiceBackend, { kind: 'local' }>,
  ctx: LocalServiceContext,
  platform: string | undefined = backend.platform,
): LocalImageService {
  const { onProgress, onPulled } = ctx.overrides;
  return new LocalImageService({
    store: ctx.store,
    registry: ctx.registry,
    ...(platform !== undefined ? { platform } : {}),
    ...(backend.concurrency !== undefined ? { concurrency: backend.concurrency } : {}),
    // docker.io is the service's own default: passing it changes nothing, leaving it out keeps the
    // options the service was always built with.
    ...(ctx.defaultRegistry !== 'docker.io' ? { defaultRegistry: ctx.defaultRegistry } : {}),
    ...(onProgress !== undefined ? { onProgress } : {}),
    ...(onPulled !== undefined ? { onPulled } : {}),
  });
}

/** Opens the backend's image service. */
export function openImageBackend(backend: ImageServiceBackend, ctx: LocalServiceContext): OpenedBackend {
  switch (backend.kind) {
    case 'local': {
      const local = localService(backend, ctx);
      return { service: local, local, cri: undefined, containerd: undefined, close: () => {} };
    }
    case 'cri': {
      const cri = new CriImageService({
        endpoint: backend.endpoint,
        ...(backend.timeoutMs !== undefined ? { timeoutMs: backend.timeoutMs } : {}),
      });
      return { service: cri, local: undefined, cri, containerd: undefined, close: () => cri.close() };
    }
    case 'containerd': {
      const client = new ContainerdClient({
        address: backend.address,
        ...(backend.namespace !== undefined ? { namespace: backend.namespace } : {}),
      });
      // containerd's CRI plugin serves on the same socket: its ImageFsInfo is containerd's own answer
      // (image GC reads usage through it too).
      const cri = new CriImageService({ endpoint: `unix://${client.socket}` });
      const { onProgress, onPulled } = ctx.overrides;
      const containerd = new ContainerdImageService({
        client,
        registry: ctx.registry,
        snapshotter: backend.snapshotter,
        platform: backend.platform,
        concurrency: backend.concurrency,
        directWrite: backend.directWrite,
        localApply: backend.localApply,
        ...(ctx.defaultRegistry !== 'docker.io' ? { defaultRegistry: ctx.defaultRegistry } : {}),
        ...(onProgress !== undefined ? { onProgress } : {}),
        ...(onPulled !== undefined ? { onPulled } : {}),
        criImageFsInfo: (o) => cri.imageFsInfo(o),
      });
      return {
        service: containerd,
        local: undefined,
        cri,
        containerd,
        close: () => {
          cri.close();
          client.close();
        },
      };
    }
  }
}

/**
 * The image filesystem usage of a backend: kimg's store filesystem (used bytes = blobs + ingests), or
 * the runtime's image filesystem (statfs of the mount point it reports, its own used bytes).
 */
export function backendUsage(opened: OpenedBackend, store: Store): FsUsageSource {
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
