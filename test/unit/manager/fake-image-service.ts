/**
 * A scripted in-memory ImageService for the image manager's step tables: it records every call,
 * answers PullImage from a script (per call, or by credential), keys images by (image, runtime handler)
 * like a runtime with KEP-4216, advances a FakeClock to simulate transfer time, can hold pulls open for
 * a number of event-loop turns or until released, and tracks concurrency overall and per pod.
 */
import type { FakeClock } from '../../helpers/clock.js';
import { createHash } from 'node:crypto';
import { KimgError } from '../../../src/errors/index.js';
import type { AuthConfig } from '../../../src/credentials/index.js';
import type { ImageInfo, ImageService, ImageSpec, PodSandboxInfo } from '../../../src/manager/index.js';

/** What one PullImage call does: succeed, fail with an error, or succeed with a given ref. */
export type PullOutcome = 'ok' | KimgError | { ref: string };

export interface Call {
  op: 'ImageStatus' | 'PullImage' | 'ListImages' | 'RemoveImage';
  image: string;
  handler?: string;
  /** The username of the AuthConfig (PullImage); undefined = anonymous. */
  user?: string;
  /** The sandbox's pod UID (PullImage). */
  pod?: string;
  annotations?: Record<string, string>;
}

export function idOf(image: string): string {
  return 'sha256:' + createHash('sha256').update(image).digest('hex');
}

function keyOf(spec: ImageSpec): string {
  return `${spec.image}|${spec.runtimeHandler ?? ''}`;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

export class FakeImageService implements ImageService {
  readonly calls: Call[] = [];
  readonly images = new Map<string, ImageInfo>();
  /** Thrown by every ImageStatus while set. */
  statusError: KimgError | undefined;
  /** Returned by ImageStatus for present images instead of the stored info (for malformed answers). */
  statusOverride: ((info: ImageInfo) => ImageInfo) | undefined;
  /** Outcomes of successive PullImage calls; the last one repeats. Default `['ok']`. */
  outcomes: PullOutcome[] = ['ok'];
  /** Outcome by username (credential tests); `''` = anonymous. Wins over `outcomes`. */
  outcomeByUser: Map<string, PullOutcome> | undefined;
  /** Clock advance per pull (simulated transfer time). */
  pullMs = 0;
  /** Size of pulled images. */
  pulledSize = 4242;
  /** Event-loop turns each pull stays in flight. */
  holdTicks = 0;
  /** When set, pulls wait until `release()`. */
  manual = false;
  private waiting: Array<() => void> = [];
  private pullCount = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly inFlightByPod = new Map<string, number>();
  maxInFlightPerPod = 0;
  /** Images in the order their pulls started. */
  readonly pullOrder: string[] = [];

  constructor(readonly clock: FakeClock) {}

  /** Puts an image in the store (for `present` scenarios). */
  add(image: string, options: { handler?: string; size?: number; id?: string } = {}): void {
    const spec: ImageSpec = { image };
    if (options.handler !== undefined) spec.runtimeHandler = options.handler;
    this.images.set(keyOf(spec), {
      id: options.id ?? idOf(image),
      repoTags: [image],
      repoDigests: [],
      size: options.size ?? this.pulledSize,
      pinned: false,
      spec,
    });
  }

  has(image: string, handler?: string): boolean {
    return this.images.has(`${image}|${handler ?? ''}`);
  }

  /** The ops of the calls since the last `resetCalls`. */
  ops(): string[] {
    return this.calls.map((c) => c.op);
  }

  resetCalls(): void {
    this.calls.length = 0;
  }

  /** Lets held pulls finish (all, or the first `n`). */
  release(n = Infinity): void {
    const go = this.waiting.splice(0, n);
    for (const g of go) g();
  }

  /** Pulls currently held by `manual`. */
  get held(): number {
    return this.waiting.length;
  }

  async imageStatus(spec: ImageSpec): Promise<ImageInfo | undefined> {
    const call: Call = { op: 'ImageStatus', image: spec.image };
    if (spec.runtimeHandler !== undefined) call.handler = spec.runtimeHandler;
    this.calls.push(call);
    await Promise.resolve();
    if (this.statusError !== undefined) throw this.statusError;
    const info = this.images.get(keyOf(spec));
    if (info === undefined) return undefined;
    return this.statusOverride ? this.statusOverride(structuredClone(info)) : structuredClone(info);
  }

  async pullImage(spec: ImageSpec, auth: AuthConfig | undefined, sandbox?: PodSandboxInfo): Promise<string> {
    const call: Call = { op: 'PullImage', image: spec.image };
    if (spec.runtimeHandler !== undefined) call.handler = spec.runtimeHandler;
    if (auth?.username !== undefined) call.user = auth.username;
    if (sandbox !== undefined) call.pod = sandbox.uid;
    if (spec.annotations !== undefined) call.annotations = { ...spec.annotations };
    this.calls.push(call);
    this.pullOrder.push(spec.image);
    const pod = sandbox?.uid ?? '';
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const podCount = (this.inFlightByPod.get(pod) ?? 0) + 1;
    this.inFlightByPod.set(pod, podCount);
    this.maxInFlightPerPod = Math.max(this.maxInFlightPerPod, podCount);
    try {
      this.clock.advance(this.pullMs);
      for (let i = 0; i < this.holdTicks; i++) await tick();
      if (this.manual) await new Promise<void>((r) => this.waiting.push(r));
      const n = this.pullCount++;
      let outcome: PullOutcome | undefined;
      if (this.outcomeByUser !== undefined) outcome = this.outcomeByUser.get(auth?.username ?? '');
      outcome ??= this.outcomes[Math.min(n, this.outcomes.length - 1)] ?? 'ok';
      if (outcome instanceof KimgError) throw outcome;
      if (outcome !== 'ok') return outcome.ref;
      const info: ImageInfo = {
        id: idOf(spec.image),
        repoTags: [spec.image],
        repoDigests: [],
        size: this.pulledSize,
        pinned: false,
        spec: { ...spec },
      };
      this.images.set(keyOf(spec), info);
      return info.id;
    } finally {
      this.inFlight--;
      this.inFlightByPod.set(pod, (this.inFlightByPod.get(pod) ?? 1) - 1);
    }
  }

  async listImages(): Promise<ImageInfo[]> {
    this.calls.push({ op: 'ListImages', image: '' });
    return [...this.images.values()].map((i) => structuredClone(i));
  }

  async removeImage(spec: ImageSpec): Promise<void> {
    const call: Call = { op: 'RemoveImage', image: spec.image };
    if (spec.runtimeHandler !== undefined) call.handler = spec.runtimeHandler;
    this.calls.push(call);
    for (const [k, info] of this.images) {
      const sameName = info.id === spec.image || info.repoTags.includes(spec.image);
      if (sameName && (info.spec?.runtimeHandler ?? '') === (spec.runtimeHandler ?? ''))
        this.images.delete(k);
    }
  }
}

/** Waits until `cond()` holds, turning the event loop (bounded, so a broken test fails instead of hanging). */
export async function until(cond: () => boolean, what: string, maxTurns = 2000): Promise<void> {
  for (let i = 0; i < maxTurns; i++) {
    if (cond()) return;
    await tick();
  }
  throw new Error(`timed out waiting for: ${what}`);
}
