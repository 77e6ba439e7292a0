/**
 * Pullers: how the kubelet hands pulls to the image service.
 *
 * - Serial (the default, `serializeImagePulls: true`): one worker takes pull requests from a queue
 *   buffered to 10 and sends one PullImage at a time; a caller finding the buffer full waits to
 *   enqueue. Other pulls wait until the one in progress completes.
 * - Parallel (`serializeImagePulls: false`): requests go to the image service at once, bounded by
 *   `maxParallelImagePulls` slots when it is ≥ 1 (unset or < 1 = no limit); extra requests wait for a
 *   slot.
 *
 * One request is the kubelet's whole `PullImage`: every credential candidate in order until one
 * succeeds (none → one anonymous pull; all fail → the aggregate error, no anonymous fallback), then a
 * best-effort ImageStatus for the size. It holds its slot throughout. Each result reports the time
 * spent queued (`queueWaitMs`) separately from the pull itself (`pullMs`).
 *
 * Pod order is not the puller's job: `ImageManager.ensurePodImages` awaits each container's image
 * before the next, so one pod's pulls never overlap; different pods overlap when the puller allows.
 *
 * An optional throttle (`registryPullQPS`/`registryBurst`, the kubelet's token bucket) is consulted when
 * a request reaches the image service, one token per request: without a token the pull fails at once
 * with `pull QPS exceeded`.
 *
 * Source: kubernetes `pkg/kubelet/images/puller.go` (serialImagePuller, parallelImagePuller,
 * maxImagePullRequests = 10), `pkg/kubelet/images/helpers.go` (throttleImagePulling),
 * `pkg/kubelet/kuberuntime/kuberuntime_image.go` (PullImage), apimachinery `util/errors` (aggregate).
 */
import {
  KimgError,
  isKimgError,
  toKimgError,
  type KimgErrorCode,
  type KimgErrorLike,
} from '../errors/index.js';
import { systemClock, type Clock } from '../clock/index.js';
import { goQuote } from './go-format.js';
import type { CredentialCandidate, ImageService, ImageSpec, PodSandboxInfo } from './image-service.js';

/** The serial puller's queue capacity (kubelet `maxImagePullRequests`). */
export const SERIAL_PULL_QUEUE_SIZE = 10;

/** One pull request. */
export interface PullTask {
  spec: ImageSpec;
  /** Candidates in order; empty = one anonymous pull. */
  credentials: readonly CredentialCandidate[];
  sandbox?: PodSandboxInfo;
  signal?: AbortSignal;
}

/** A successful pull. */
export interface PullResult {
  /** The image ref the image service returned (equals the image id). */
  imageRef: string;
  /** Bytes, from a best-effort ImageStatus after the pull; 0 when unknown. */
  imageSize: number;
  /** Time from the request to the start of the first PullImage (queue and slot wait). */
  queueWaitMs: number;
  /** Time of the credential loop and the size lookup (the kubelet's `pullDuration`). */
  pullMs: number;
  /** The candidate that worked; undefined for an anonymous pull. */
  credential?: CredentialCandidate;
  /** PullImage calls made (credentials tried). */
  attempts: number;
}

/** Counters for status output. */
export interface PullerStats {
  /** Requests the image service is working on. */
  inFlight: number;
  /** Requests waiting (in the queue, for a slot, or to enqueue). */
  waiting: number;
}

/** One interface, two strategies. */
export interface Puller {
  readonly mode: 'serial' | 'parallel';
  /** The slot count of a parallel puller; undefined = unlimited (and for the serial puller, 1). */
  readonly maxParallel: number | undefined;
  /**
   * Pulls `task` when the strategy allows. Resolves when the image service has the image.
   *
   * @throws KimgError from the image service (one candidate: its error as it is; several: the
   *   aggregate, see `aggregatePullErrors`); `ABORTED` when `task.signal` fires while waiting;
   *   `TOO_MANY_REQUESTS` (`pull QPS exceeded`) from a throttle.
   */
  pull(task: PullTask): Promise<PullResult>;
  stats(): PullerStats;
}

const AUTH_CODES: readonly KimgErrorCode[] = [
  'UNAUTHORIZED',
  'DENIED',
  'TOKEN_REFUSED',
  'NO_CREDENTIALS_ACCEPTED',
];

/**
 * The kubelet's aggregate of the errors of a credential loop (apimachinery `NewAggregate`): one error
 * is returned as it is; several give one KimgError whose message is `[e1, e2]` with duplicate texts
 * removed. Its code: `NO_CREDENTIALS_ACCEPTED` when every attempt was refused for its credentials, the
 * common code when all agree, else the first error's. `details.items` names the keys tried (never a
 * secret); `cause` is an AggregateError of the originals.
 */
export function aggregatePullErrors(
  errors: readonly KimgErrorLike[],
  keys: readonly string[],
): KimgErrorLike {
  const first = errors[0];
  if (first === undefined) return new KimgError('INTERNAL', 'aggregatePullErrors called without errors');
  if (errors.length === 1) return first;
  const texts = [...new Set(errors.map((e) => e.message))];
  const codes = new Set(errors.map((e) => e.code));
  let code: KimgErrorCode = first.code;
  if (errors.every((e) => AUTH_CODES.includes(e.code))) code = 'NO_CREDENTIALS_ACCEPTED';
  else if (codes.size === 1) code = first.code;
  const message = texts.length === 1 ? (texts[0] ?? '') : `[${texts.join(', ')}]`;
  return new KimgError(code, message, {
    items: keys.map((k, i) => `${k}: ${errors[i]?.code ?? 'unknown'}`),
    retryable: errors.some((e) => e.details.retryable === true),
    cause: new AggregateError(errors, message),
  });
}

/**
 * The kubelet's `PullImage` over an image service: no candidates → one anonymous pull; otherwise each
 * candidate in order until one works. An empty image ref from the service is an error (cri-client:
 * `imageRef of image "<img>" is not set`).
 */
export async function pullWithCredentials(
  service: ImageService,
  task: PullTask,
): Promise<{ imageRef: string; credential?: CredentialCandidate; attempts: number }> {
  const options = task.signal === undefined ? undefined : { signal: task.signal };
  const once = async (auth: CredentialCandidate['auth'] | undefined): Promise<string> => {
    let ref: string;
    try {
      ref = await service.pullImage(task.spec, auth, task.sandbox, options);
    } catch (e) {
      throw toKimgError(e, `pull ${goQuote(task.spec.image)}`);
    }
    if (typeof ref !== 'string' || ref === '') {
      throw new KimgError(
        'IMAGE_SERVICE_PROTOCOL_ERROR',
        `imageRef of image ${goQuote(task.spec.image)} is not set`,
        {
          input: task.spec.image,
        },
      );
    }
    return ref;
  };
  if (task.credentials.length === 0) return { imageRef: await once(undefined), attempts: 1 };
  const errors: KimgErrorLike[] = [];
  for (const candidate of task.credentials) {
    try {
      return { imageRef: await once(candidate.auth), credential: candidate, attempts: errors.length + 1 };
    } catch (e) {
      errors.push(toKimgError(e));
      if (isKimgError(e, 'ABORTED')) break;
    }
  }
  // Only the candidates actually tried (an abort stops the loop early).
  throw aggregatePullErrors(
    errors,
    task.credentials.slice(0, errors.length).map((c) => c.key),
  );
}

/** One request's work, timed: the credential loop, then the best-effort size (kubelet puller.go). */
async function execute(
  service: ImageService,
  clock: Clock,
  throttle: TokenBucket | undefined,
  task: PullTask,
  queuedAt: number,
): Promise<PullResult> {
  const start = clock.now();
  const queueWaitMs = start - queuedAt;
  // One token covers the whole credential loop, taken when the request reaches the image service.
  if (throttle !== undefined && !throttle.tryAccept()) {
    throw new KimgError('TOO_MANY_REQUESTS', 'pull QPS exceeded', {
      input: task.spec.image,
      retryable: true,
    });
  }
  const { imageRef, credential, attempts } = await pullWithCredentials(service, task);
  let imageSize = 0;
  try {
    const info = await service.imageStatus(
      task.spec,
      task.signal === undefined ? undefined : { signal: task.signal },
    );
    if (info !== undefined && Number.isFinite(info.size) && info.size > 0) imageSize = info.size;
  } catch {
    // Best effort, as upstream: the size is 0 when the status cannot be read.
  }
  const result: PullResult = { imageRef, imageSize, queueWaitMs, pullMs: clock.now() - start, attempts };
  if (credential !== undefined) result.credential = credential;
  return result;
}

function abortError(task: PullTask): KimgError {
  return new KimgError(
    'ABORTED',
    `pull of ${goQuote(task.spec.image)} was cancelled while waiting in the pull queue`,
    {
      input: task.spec.image,
    },
  );
}

interface Job {
  task: PullTask;
  queuedAt: number;
  resolve: (r: PullResult) => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

/** Options of both pullers. */
export interface PullerOptions {
  clock?: Clock;
  /** The kubelet's `registryPullQPS`/`registryBurst` throttle; none = unlimited. */
  throttle?: TokenBucket;
}

/** The kubelet's serial puller (see the module comment). */
export class SerialPuller implements Puller {
  readonly mode = 'serial' as const;
  readonly maxParallel = 1;
  private readonly buffer: Job[] = [];
  private readonly blocked: Job[] = [];
  private busy = false;
  private readonly clock: Clock;
  private readonly throttle: TokenBucket | undefined;

  constructor(
    private readonly service: ImageService,
    options: PullerOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.throttle = options.throttle;
  }

  stats(): PullerStats {
    return { inFlight: this.busy ? 1 : 0, waiting: this.buffer.length + this.blocked.length };
  }

  pull(task: PullTask): Promise<PullResult> {
    return new Promise<PullResult>((resolve, reject) => {
      if (task.signal?.aborted) {
        reject(abortError(task));
        return;
      }
      const job: Job = { task, queuedAt: this.clock.now(), resolve, reject, cleanup: () => undefined };
      if (task.signal !== undefined) {
        const signal = task.signal;
        const onAbort = () => {
          for (const list of [this.buffer, this.blocked]) {
            const i = list.indexOf(job);
            if (i >= 0) {
              list.splice(i, 1);
              this.refill();
              reject(abortError(task));
            }
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        job.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      // A full buffer makes the caller wait to enqueue, as a send on the full Go channel blocks.
      if (this.buffer.length < SERIAL_PULL_QUEUE_SIZE) this.buffer.push(job);
      else this.blocked.push(job);
      void this.drain();
    });
  }

  private refill(): void {
    while (this.buffer.length < SERIAL_PULL_QUEUE_SIZE && this.blocked.length > 0) {
      const next = this.blocked.shift();
      if (next !== undefined) this.buffer.push(next);
    }
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let job = this.buffer.shift(); job !== undefined; job = this.buffer.shift()) {
        this.refill();
        job.cleanup();
        try {
          job.resolve(await execute(this.service, this.clock, this.throttle, job.task, job.queuedAt));
        } catch (e) {
          job.reject(toKimgError(e));
        }
      }
    } finally {
      this.busy = false;
    }
  }
}

/** The kubelet's parallel puller: `maxParallel` slots (undefined or < 1 = unlimited). */
export class ParallelPuller implements Puller {
  readonly mode = 'parallel' as const;
  readonly maxParallel: number | undefined;
  private active = 0;
  private readonly waiters: Array<{ grant: () => void }> = [];
  private readonly clock: Clock;
  private readonly throttle: TokenBucket | undefined;

  constructor(
    private readonly service: ImageService,
    maxParallel?: number | null,
    options: PullerOptions = {},
  ) {
    this.maxParallel =
      maxParallel === undefined || maxParallel === null || !(maxParallel >= 1)
        ? undefined
        : Math.floor(maxParallel);
    this.clock = options.clock ?? systemClock;
    this.throttle = options.throttle;
  }

  stats(): PullerStats {
    return { inFlight: this.active, waiting: this.waiters.length };
  }

  private acquire(task: PullTask): Promise<void> {
    if (this.maxParallel === undefined || this.active < this.maxParallel) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          cleanup();
          this.active++;
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(abortError(task));
      };
      const cleanup = () => task.signal?.removeEventListener('abort', onAbort);
      task.signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private release(): void {
    this.active--;
    const next = this.waiters.shift();
    if (next !== undefined) next.grant();
  }

  async pull(task: PullTask): Promise<PullResult> {
    if (task.signal?.aborted) throw abortError(task);
    const queuedAt = this.clock.now();
    await this.acquire(task);
    try {
      return await execute(this.service, this.clock, this.throttle, task, queuedAt);
    } catch (e) {
      throw toKimgError(e);
    } finally {
      this.release();
    }
  }
}

/** How to build the puller: the kubelet's settings. */
export interface PullerConfig {
  /** Default true, as the kubelet. */
  serializeImagePulls?: boolean;
  /** With `serializeImagePulls: false`: the slot count; unset or null = unlimited. */
  maxParallelImagePulls?: number | null;
  /** Pulls per second across the node; 0 or unset = unlimited (the kubelet's default is 5). */
  registryPullQPS?: number;
  /** Token bucket size when `registryPullQPS` > 0 (the kubelet's default is 10). */
  registryBurst?: number;
}

/**
 * The kubelet's choice (`NewImageManager`): a `SerialPuller` when `serializeImagePulls` (default),
 * else a `ParallelPuller` with `maxParallelImagePulls`.
 *
 * @throws KimgError `CONFIG_INVALID` with the kubelet's message when `serializeImagePulls` is true and
 *   `maxParallelImagePulls` > 1 (`maxParallelImagePulls cannot be larger than 1 unless
 *   SerializeImagePulls (--serialize-image-pulls) is set to false`), or when `maxParallelImagePulls` is
 *   set below 1 (`maxParallelImagePulls <n> must be a positive number`): the kubelet refuses to start.
 */
export function createPuller(
  service: ImageService,
  config: PullerConfig = {},
  options: PullerOptions = {},
): Puller {
  const serialize = config.serializeImagePulls ?? true;
  const max = config.maxParallelImagePulls ?? null;
  const problems: string[] = [];
  if (max !== null && !(max >= 1)) {
    problems.push(`invalid configuration: maxParallelImagePulls ${max} must be a positive number`);
  }
  if (serialize && max !== null && max > 1) {
    problems.push(
      'invalid configuration: maxParallelImagePulls cannot be larger than 1 unless SerializeImagePulls (--serialize-image-pulls) is set to false',
    );
  }
  if (problems.length > 0) {
    throw new KimgError(
      'CONFIG_INVALID',
      problems.length === 1 ? (problems[0] ?? '') : `[${problems.join(', ')}]`,
      {
        items: problems,
      },
    );
  }
  const qps = config.registryPullQPS ?? 0;
  const withThrottle: PullerOptions = { ...options };
  if (qps > 0 && options.throttle === undefined) {
    withThrottle.throttle = new TokenBucket(qps, config.registryBurst ?? 0, options.clock ?? systemClock);
  }
  return serialize ? new SerialPuller(service, withThrottle) : new ParallelPuller(service, max, withThrottle);
}

/**
 * The kubelet's pull throttle (`throttleImagePulling`, client-go `NewTokenBucketRateLimiter`): a token
 * bucket of `burst` tokens, full at start, refilled at `qps` per second. `tryAccept` never waits.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly qps: number,
    readonly burst: number,
    private readonly clock: Clock = systemClock,
  ) {
    this.tokens = Math.max(0, burst);
    this.last = clock.now();
  }

  /** Takes a token if one is there. */
  tryAccept(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(
      Math.max(0, this.burst),
      this.tokens + (Math.max(0, now - this.last) / 1000) * this.qps,
    );
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}
