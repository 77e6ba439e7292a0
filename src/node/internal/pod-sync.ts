/**
 * One sync of one pod (what a pod worker runs): re-read the secrets directory and resolve the pod's
 * pull Secrets, ensure every container's image through the image manager (pull policy, credentials,
 * verification, back-off, events), then mark used images, observe metrics, log pulls and failures,
 * and apply each container's result to its state. A failed sync is logged and counted like a finished
 * one; the pod is synced again (by its worker) until every image is ready.
 */
import { toKimgError } from '../../errors/index.js';
import type { ContainerImageResult, ImageManager, ImageSpec, PodManifest } from '../../manager/index.js';
import type { NodeMetrics } from '../metrics.js';
import { podImageVolumes, type ImageVolumes } from './image-volumes.js';
import { observeEnsureResult } from './instrument.js';
import type { AgentLog } from './log.js';
import type { PodImageStatus } from './pod-status.js';
import type { SyncPod } from './pod-worker.js';
import type { AgentPod } from './static-pods.js';
import { pullFailedNow } from './waiting-reasons.js';

/**
 * Where a sync gets the pod's pull Secrets: the secrets directory (`AgentPodSecrets`) for static
 * pods, the API server (`ClusterPodSecrets`) in cluster mode. `resolvePod` registers them under the
 * pod's uid in the runtime's credentials.
 */
export interface PodSecretResolver {
  refresh(): Promise<void>;
  resolvePod(
    uid: string,
    pod: Record<string, unknown>,
    fields: Record<string, unknown>,
  ): void | string[] | Promise<void | string[]>;
}

/** What a pod sync uses. */
export interface PodSyncDeps {
  manager: ImageManager;
  secrets: PodSecretResolver;
  status: PodImageStatus;
  metrics: NodeMetrics;
  log: AgentLog;
  /** The pods' image volumes (pulled after the containers' images, then materialised). */
  volumes?: ImageVolumes;
  /** Records that an image was used now (kimg's store keeps last-used times for GC). */
  markUsed: (spec: ImageSpec, when: Date) => Promise<unknown>;
}

/** The sync function of the pods' workers. */
export function podSyncer(deps: PodSyncDeps): SyncPod<AgentPod> {
  return async (pod, signal) => {
    await deps.secrets.refresh();
    // Static pods name the Secrets they could not get (the FailedToRetrieveImagePullSecret event the
    // manager records); cluster mode records that warning itself and returns nothing.
    const failed = await deps.secrets.resolvePod(pod.uid, pod.object, { pod: pod.key, source: pod.file });
    const failedPullSecrets = Array.isArray(failed) ? failed : [];
    let ready = false;
    try {
      const result = await deps.manager.ensurePodImages(pod.object as PodManifest, {
        signal,
        failedPullSecrets,
        ...(pod.runtimeHandler !== undefined ? { runtimeHandler: pod.runtimeHandler } : {}),
      });
      if (signal.aborted) return ready;
      ready = result.ok;
      const backoff = await deps.manager.listBackoff().catch(() => []);
      const now = new Date();
      for (const line of result.results) {
        await reportLine(deps, pod, line, now);
        deps.status.onResult(pod, line, backoff);
      }
      if (deps.volumes !== undefined && podImageVolumes(pod.object).length > 0) {
        const volumes = await deps.volumes.sync(deps.manager, result.pod, pod.object, {
          signal,
          ...(pod.runtimeHandler !== undefined ? { runtimeHandler: pod.runtimeHandler } : {}),
          onResult: (v, r) =>
            reportLine(
              deps,
              pod,
              { list: 'containers', container: `volume ${v.name}`, image: v.reference, result: r },
              now,
            ),
        });
        if (signal.aborted) return ready;
        ready = ready && volumes.every((v) => v.state === 'Ready');
        deps.status.onVolumes(pod, volumes, await deps.manager.listBackoff().catch(() => []));
      }
      deps.status.onSynced(pod);
    } catch (e) {
      if (signal.aborted) return ready;
      deps.log({
        level: 'error',
        msg: `sync of pod ${pod.key} failed: ${toKimgError(e).message}`,
        pod: pod.key,
      });
      deps.status.onSynced(pod);
    }
    return ready;
  };
}

/** Marks a used image, observes the metrics and logs a pull or a failed pull of one result line. */
async function reportLine(
  deps: PodSyncDeps,
  pod: AgentPod,
  line: ContainerImageResult,
  now: Date,
): Promise<void> {
  const r = line.result;
  if (r === undefined) return;
  if (r.ok && r.spec !== undefined) await deps.markUsed(r.spec, now).catch(() => false);
  observeEnsureResult(deps.metrics, r);
  const where = { pod: pod.key, container: line.container, image: line.image };
  if (r.action === 'pulled')
    deps.log({ level: 'info', msg: 'pulled image', ...where, bytes: r.pull?.imageSize, ms: r.pull?.pullMs });
  if (pullFailedNow(r))
    deps.log({ level: 'warn', msg: 'image pull failed', ...where, code: r.error?.code, error: r.message });
}
