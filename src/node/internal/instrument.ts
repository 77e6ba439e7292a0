/**
 * The agent's metrics taps: pulls in progress counted at the image service (after the puller's queue,
 * so queued pulls do not count), credential plugin runs timed and their failures counted, and each
 * ensure result's pull duration and failure reason observed.
 */
import { spawnPlugin, type SpawnPlugin } from '../../credentials/index.js';
import type { EnsureImageResult, ImageService } from '../../manager/index.js';
import type { NodeMetrics } from '../metrics.js';
import { pullFailedNow } from './waiting-reasons.js';

/** `svc` with its pulls counted in `kimg_image_pulls_in_progress`. */
export function countPulls(svc: ImageService, metrics: NodeMetrics): ImageService {
  return {
    imageStatus: (s, o) => svc.imageStatus(s, o),
    listImages: (o) => svc.listImages(o),
    removeImage: (s, o) => svc.removeImage(s, o),
    ...(svc.imageFsInfo !== undefined ? { imageFsInfo: (o) => svc.imageFsInfo!(o) } : {}),
    pullImage: async (spec, auth, sandbox, o) => {
      metrics.pullsInProgress.inc();
      try {
        return await svc.pullImage(spec, auth, sandbox, o);
      } finally {
        metrics.pullsInProgress.dec();
      }
    },
  };
}

/** `spawnPlugin` timed per plugin binary, with failed runs (exit code, spawn error, timeout) counted. */
export function timedPluginSpawn(metrics: NodeMetrics): SpawnPlugin {
  return async (command, args, o) => {
    const name = command.split('/').pop() ?? command;
    const end = metrics.pluginDuration.startTimer({ plugin_name: name });
    const r = await spawnPlugin(command, args, o);
    end();
    if (r.code !== 0 || r.spawnError !== undefined || r.timedOut)
      metrics.pluginErrors.inc({ plugin_name: name });
    return r;
  };
}

/** Observes an ensure result: its pull's duration and size, or the code of a pull that failed now. */
export function observeEnsureResult(
  metrics: NodeMetrics,
  r: Pick<EnsureImageResult, 'ok' | 'pull' | 'error' | 'events'>,
): void {
  if (r.pull !== undefined) metrics.observePull(r.pull.pullMs / 1000, r.pull.imageSize);
  if (pullFailedNow(r) && r.error !== undefined) metrics.pullErrors.inc({ reason: r.error.code });
}
