/**
 * The pre-pull runner: pulls the pre-pull list once, in order, after the pods' pulls — it waits while
 * any pod's sync runs, so pods keep priority — through the same image manager (another one per other
 * platform), with `IfNotPresent`, each entry's Secret resolved from the secrets directory. Each entry
 * moves `Pending` → `Pulling` → `Present` or `Failed`; the image ids of present entries stay in use
 * for image GC while listed.
 */
import { toKimgError } from '../../errors/index.js';
import { parseSecretRef } from '../../config/index.js';
import type { ImageManager } from '../../manager/index.js';
import type { NodeMetrics } from '../metrics.js';
import type { PrepullImage, PrepullState } from '../prepull.js';
import { observeEnsureResult } from './instrument.js';
import type { AgentLog } from './log.js';
import type { AgentPodSecrets } from './pod-secrets.js';

/** How often the runner looks whether the pods' syncs are done. */
const PODS_BUSY_POLL_MS = 50;

/** What the runner uses. */
export interface PrepullRunnerDeps {
  /** The image manager for a platform (`undefined`: the node's). */
  managerFor(platform: string | undefined): ImageManager;
  secrets: AgentPodSecrets;
  /** Whether a pod's sync is running (the runner waits). */
  podsBusy(): boolean;
  /** Settles once the first set of static pods has been started. */
  podsStarted(): Promise<void>;
  metrics: NodeMetrics;
  log: AgentLog;
  /** The states changed (the store summary lists them). */
  changed(): void;
}

/** Runs a pre-pull list (see the module comment). */
export class PrepullRunner {
  private readonly list: PrepullState[];
  private readonly abort = new AbortController();

  constructor(
    images: readonly PrepullImage[],
    private readonly deps: PrepullRunnerDeps,
  ) {
    this.list = images.map((p) => ({ ...p, state: 'Pending', imageRef: '', reason: '', message: '' }));
  }

  /** The entries and their states (copies). */
  states(): PrepullState[] {
    return this.list.map((p) => ({ ...p }));
  }

  /** The image ids of the entries pulled or found present. */
  imageRefs(): string[] {
    return this.list.filter((p) => p.imageRef !== '').map((p) => p.imageRef);
  }

  /** Stops the run (the pull in progress is cancelled; later entries stay `Pending`). */
  stop(reason: Error): void {
    this.abort.abort(reason);
  }

  /** Tries every entry once, in order; settles when done or stopped. */
  async run(): Promise<void> {
    await this.deps.podsStarted();
    for (let i = 0; i < this.list.length; i++) {
      while (this.deps.podsBusy() && !this.abort.signal.aborted)
        await new Promise((r) => setTimeout(r, PODS_BUSY_POLL_MS));
      if (this.abort.signal.aborted) return;
      await this.pullOne(i, this.list[i]!);
    }
  }

  private async pullOne(i: number, p: PrepullState): Promise<void> {
    const uid = `kimg-prepull-${i}`;
    // The pre-pull is a pod of the Secret's namespace: `namespace/name`, or `name` in `default`.
    const ref = p.secret !== undefined ? parseSecretRef(p.secret) : undefined;
    const pod = { name: 'kimg-prepull', namespace: ref?.namespace ?? 'default' };
    this.deps.secrets.resolvePod(
      uid,
      {
        kind: 'Pod',
        metadata: pod,
        spec: { imagePullSecrets: ref !== undefined ? [{ name: ref.name }] : [] },
      },
      { prepull: p.image },
    );
    p.state = 'Pulling';
    this.deps.changed();
    const r = await this.deps.managerFor(p.platform).ensureImageExists({
      pod: { ...pod, uid },
      container: { name: `prepull-${i}`, image: p.image, imagePullPolicy: 'IfNotPresent' },
      signal: this.abort.signal,
    });
    observeEnsureResult(this.deps.metrics, r);
    p.state = r.ok ? 'Present' : 'Failed';
    p.imageRef = r.imageRef;
    p.reason = r.reason ?? '';
    p.message = r.message;
    if (r.error !== undefined) p.code = r.error.code;
    else delete p.code;
    this.deps.log({
      level: r.ok ? 'info' : 'warn',
      msg: r.ok ? 'pre-pulled image' : 'pre-pull failed',
      image: p.image,
      ...(p.platform !== undefined ? { platform: p.platform } : {}),
      ...(r.ok ? { id: r.imageRef } : { code: r.error?.code, error: r.message }),
    });
    this.deps.changed();
  }
}

/** The run's failure, logged (the run itself never rejects to its caller). */
export function logPrepullFailure(log: AgentLog): (e: unknown) => void {
  return (e) => log({ level: 'error', msg: `pre-pull: ${toKimgError(e).message}` });
}
