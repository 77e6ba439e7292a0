/**
 * The kubelet image manager: before a container starts, make sure its image is on the node — or say
 * exactly why not, with the kubelet's events and container waiting reasons.
 *
 * `ensureImageExists` follows the kubelet's `EnsureImageExists` step by step:
 * 1. tag-default the image (`busybox` → `busybox:latest`, never normalized); unparsable → Warning
 *    `InspectFailed` `Failed to apply default image tag …`, reason `InvalidImageName`;
 * 2. build the spec: the image, the pod's annotations, and the runtime handler when the
 *    `RuntimeClassInImageCriApi` gate is on;
 * 3. `IfNotPresent`/`Never`: ask the image service (ImageStatus); an error → Warning `InspectFailed`
 *    `Failed to inspect image "": …`, reason `ImageInspectError`; absent with `Never` → Warning
 *    `ErrImageNeverPull`;
 * 4. present: gate `KubeletEnsureSecretPulledImages` off → Normal `Pulled` `… already present on
 *    machine`; on → ask the credential verifier (the pull records of `manager/pull-records.ts`) and either use the image
 *    (`… and can be accessed by the pod`) or go on to pull;
 * 5. a pull is needed but the policy is `Never` → the same `ErrImageNeverPull` as for an absent image;
 * 6. resolve the pod's credentials (once, lazily);
 * 7. pull: record the pull intent (gate on), refuse while the pod's back-off for this image is open
 *    (Normal `BackOff`, reason `ImagePullBackOff`, status message with the last error appended), else
 *    Normal `Pulling`, hand the request to the puller, and on failure Warning `Failed`
 *    `Failed to pull image …`, a longer back-off and reason `ErrImagePull`; on success Normal `Pulled`
 *    `Successfully pulled image "…" in <pull> (<total> including waiting). Image size: <n> bytes.`
 *
 * Container reasons come from error codes (`reasonForCode`), never from message text. The result
 * carries the reason, the status message, the error and the events of this call; events also go to the
 * `EventRecorder`. Images of one pod are never pulled in parallel: calls for the same pod UID run one
 * after another, and `ensurePodImages` walks init containers, then containers, then ephemeral
 * containers in order.
 *
 * Source: kubernetes `pkg/kubelet/images/image_manager.go` (EnsureImageExists, imagePullPrecheck,
 * pullImage), `pkg/kubelet/kuberuntime/kuberuntime_manager.go` (init containers before the others),
 * `pkg/kubelet/events/event.go`; see docs/design/upstream-parity.md.
 */
import { KimgError, toKimgError, type KimgErrorLike } from '../errors/index.js';
import { applyDefaultTag, parseImageName } from '../reference/index.js';
import { resolveFeatureGates, type FeatureGates, type KubeletImageConfig } from '../config/index.js';
import { systemClock, type Clock } from '../clock/index.js';
import { backoffKey } from './backoff.js';
import { PullBackoff, type BackoffEntry, type BackoffFilter, type BackoffStore } from './backoff-store.js';
import { CONTAINER_LISTS, defaultPullPolicy, type PullPolicy } from './defaulting.js';
import { goQuote } from './go-format.js';
import type {
  CredentialCandidate,
  CredentialResolver,
  ImageInfo,
  ImageService,
  ImageSpec,
  PodInfo,
  PodSandboxInfo,
} from './image-service.js';
import { imageRecordKey } from './image-service.js';
import {
  alreadyPresentMessage,
  backOffMessage,
  containerFailedMessage,
  failedToRetrievePullSecretsMessage,
  decidePull,
  failedToApplyDefaultTagMessage,
  failedToInspectMessage,
  failedToPullMessage,
  failedToRecordPullIntentMessage,
  needsPresenceCheck,
  pulledMessage,
  pullingMessage,
  reasonForCode,
  evalCriPullError,
  type EventReasonName,
  type ImagePullErrorReason,
} from './policy.js';
import { createPuller, type Puller } from './puller.js';

// --- events -------------------------------------------------------------------------------------

/** An event the manager records, on the container's object reference. */
export interface ManagerEvent {
  type: 'Normal' | 'Warning';
  reason: EventReasonName;
  message: string;
  /** The pod and container the event is about; `container` is '' for an event on the pod itself. */
  object: { pod: { name: string; namespace: string; uid: string }; container: string };
  /** Clock milliseconds. */
  timestamp: number;
}

/** Where events go (the kubelet's `record.EventRecorder`). `record` must not throw. */
export interface EventRecorder {
  record(event: ManagerEvent): void;
}

/** Drops events. */
export const DISCARD_EVENTS: EventRecorder = Object.freeze({ record: () => undefined });

// --- credential verification (KEP-2535) ---------------------------------------------------------

/** What the verifier is asked before a present image may be used. */
export interface VerificationRequest {
  /** The image as the pod spells it. */
  image: string;
  /** The present image's id. */
  imageRef: string;
  pod: PodInfo;
  /** The pod's credentials (resolved at most once per `ensureImageExists`). */
  getPodCredentials: () => Promise<CredentialCandidate[]>;
}

/**
 * The kubelet's image pull manager (`pullmanager.ImagePullManager`), used only while the
 * `KubeletEnsureSecretPulledImages` gate is on. The real one checks pull records against the verification policy.
 */
export interface CredentialVerifier {
  /** True when the pod must pull (its credentials were not verified for this image). */
  mustAttemptImagePull(request: VerificationRequest): Promise<boolean>;
  /** Before every pull attempt. A failure stops the pull. */
  recordPullIntent?(image: string): Promise<void>;
  /** After a successful pull, with the credential that worked (undefined = anonymous). */
  recordImagePulled?(
    image: string,
    imageRef: string,
    credential: CredentialCandidate | undefined,
  ): Promise<void>;
  /** After a pull attempt that did not succeed (including a back-off refusal). */
  recordImagePullFailed?(image: string): Promise<void>;
}

/** The default verifier: every present image is verified (the kubelet with policy `NeverVerify`). */
export const NEVER_VERIFY: CredentialVerifier = Object.freeze({
  mustAttemptImagePull: async () => false,
});

// --- requests and results -----------------------------------------------------------------------

/** A container as the manager sees it. */
export interface ContainerInfo {
  name: string;
  image: string;
  /** After API defaulting; unset or '' = defaulted from the image (`:latest`/no tag → Always). */
  imagePullPolicy?: PullPolicy | string;
}

/** One `ensureImageExists` call. */
export interface EnsureImageRequest {
  pod: PodInfo;
  container: ContainerInfo;
  /** Overrides `container.imagePullPolicy`. */
  pullPolicy?: PullPolicy | string;
  /** The pod's RuntimeClass handler; sent to the image service only with `RuntimeClassInImageCriApi`. */
  runtimeHandler?: string;
  /** The sandbox the image is for; default: the pod's name, namespace, uid and annotations. */
  podSandboxConfig?: PodSandboxInfo;
  /** Use these credentials instead of asking the resolver. */
  credentials?: CredentialCandidate[];
  signal?: AbortSignal;
}

/** Timing and outcome of a pull this call made. */
export interface PullSummary {
  /** Time queued behind other pulls. */
  queueWaitMs: number;
  /** The image service's pull (credential loop and size lookup). */
  pullMs: number;
  /** From the request to the result, including the wait (the event's "including waiting"). */
  totalMs: number;
  imageSize: number;
  /** The keyring key of the credential that worked; undefined for an anonymous pull. */
  credentialKey?: string;
  attempts: number;
}

/** The outcome of `ensureImageExists` (the kubelet's `(imageRef, message, err)`). */
export interface EnsureImageResult {
  ok: boolean;
  /** The image id to create the container from; '' on failure. */
  imageRef: string;
  /**
   * The container status message: '' after a pull, `… already present on machine` when used, the
   * failure text otherwise (for a back-off: `Back-off pulling image "<image>": <reason>: <last error>`).
   */
  message: string;
  /** The container waiting reason on failure (`ErrImagePull`, `ImagePullBackOff`, …). */
  reason?: ImagePullErrorReason;
  /** The failure, with its code (the reason is `reasonForCode(error.code)`). */
  error?: KimgErrorLike;
  /** The image as the pod spells it, and the spec sent to the image service (once built). */
  image: string;
  spec?: ImageSpec;
  /** The pull policy applied. */
  pullPolicy: string;
  /** `used` (present), `pulled`, or `failed`. */
  action: 'used' | 'pulled' | 'failed';
  /** Set when this call pulled. */
  pull?: PullSummary;
  /** The events this call recorded, in order. */
  events: ManagerEvent[];
}

/** A pod manifest, as far as `ensurePodImages` reads it. */
export interface PodManifest {
  metadata?: { name?: string; namespace?: string; uid?: string; annotations?: Record<string, string> };
  spec?: {
    initContainers?: ContainerInfo[];
    containers?: ContainerInfo[];
    ephemeralContainers?: ContainerInfo[];
    serviceAccountName?: string;
  };
}

/** Options of `ensurePodImages`. */
export interface EnsurePodImagesOptions {
  runtimeHandler?: string;
  podSandboxConfig?: PodSandboxInfo;
  credentials?: CredentialCandidate[];
  signal?: AbortSignal;
  /**
   * The kubelet starts regular containers only after the init containers, so an init container whose
   * image fails stops the walk (the rest are reported `skipped`). Set true to try every image anyway.
   */
  continueAfterInitFailure?: boolean;
  /**
   * Names of the pod's pull Secrets that could not be retrieved (missing, another namespace,
   * undecodable): one Warning `FailedToRetrieveImagePullSecret` on the pod per call (the kubelet emits it
   * once per pod sync, from `getPullSecretsForPod`). See `failedPullSecretNames` in src/credentials.
   */
  failedPullSecrets?: readonly string[];
}

/** One container's line in `ensurePodImages`. */
export interface ContainerImageResult {
  list: (typeof CONTAINER_LISTS)[number];
  container: string;
  image: string;
  /** Undefined when skipped. */
  result?: EnsureImageResult;
  skipped?: 'init-container-failed';
}

/** The outcome of `ensurePodImages`. */
export interface PodImagesResult {
  pod: PodInfo;
  /** True when every container's image is ready. */
  ok: boolean;
  results: ContainerImageResult[];
}

/** Options of `ImageManager`. */
export interface ImageManagerOptions {
  imageService: ImageService;
  /** Default: `createPuller` from the four settings below. */
  puller?: Puller;
  /** Default true. */
  serializeImagePulls?: boolean;
  /** Default unset (unlimited once parallel). */
  maxParallelImagePulls?: number | null;
  /** Default 0 (unlimited) for the library; the kubelet's configuration default is 5. */
  registryPullQPS?: number;
  /** Default 10 (used only with `registryPullQPS` > 0). */
  registryBurst?: number;
  /** Gates; unset ones take their defaults (`RuntimeClassInImageCriApi` off, `KubeletEnsureSecretPulledImages` on). */
  featureGates?: Readonly<Record<string, boolean>>;
  /** Credential lookup; default: no credentials (anonymous pulls). */
  credentials?: CredentialResolver;
  /** Default `NEVER_VERIFY`. */
  verifier?: CredentialVerifier;
  /** Default `DISCARD_EVENTS` (every result still lists its events). */
  recorder?: EventRecorder;
  /** Default the system clock. */
  clock?: Clock;
  /** The back-off; default a `PullBackoff` over `backoffStore` (default: in memory). */
  backoff?: PullBackoff;
  backoffStore?: BackoffStore;
}

/** The manager settings a kubelet configuration gives (`parseNodeConfig(...).kubelet`). */
export function imageManagerOptionsFromConfig(
  config: KubeletImageConfig,
): Pick<
  ImageManagerOptions,
  'serializeImagePulls' | 'maxParallelImagePulls' | 'registryPullQPS' | 'registryBurst' | 'featureGates'
> {
  return {
    serializeImagePulls: config.serializeImagePulls,
    maxParallelImagePulls: config.maxParallelImagePulls,
    registryPullQPS: config.registryPullQPS,
    registryBurst: config.registryBurst,
    featureGates: config.featureGates,
  };
}

/** A present image as `listImages` reports it, with the image GC's key. */
export interface ListedImage extends ImageInfo {
  /** `<id>` or `<id>,<runtime handler>` (kubelet image GC keying). */
  key: string;
}

/**
 * A verification pull (the image is present, the pod's credentials were not verified for it) failed
 * with an `ErrImagePull` error: say so (KEP-2535; kimg's wording, the event keeps upstream's text).
 * Other reasons (a runtime's `RegistryUnavailable`, …) pass through unchanged.
 */
function credentialsNotVerified(image: string, cause: KimgErrorLike): KimgErrorLike {
  if (reasonForCode(cause.code) !== 'ErrImagePull') return cause;
  if (/^(RegistryUnavailable|SignatureValidationFailed)/.test(cause.message)) return cause;
  return new KimgError(
    'CREDENTIALS_NOT_VERIFIED',
    `image ${goQuote(image)} is present on the node, but this pod's credentials were not verified for it and pulling with them failed: ${cause.message}`,
    { input: image, cause },
  );
}

function podObject(pod: PodInfo): { name: string; namespace: string; uid: string } {
  return { name: pod.name, namespace: pod.namespace, uid: pod.uid };
}

/** The image manager (see the module comment). */
export class ImageManager {
  readonly service: ImageService;
  readonly puller: Puller;
  readonly gates: FeatureGates;
  readonly backoff: PullBackoff;
  readonly clock: Clock;
  private readonly recorder: EventRecorder;
  private readonly verifier: CredentialVerifier;
  private readonly resolver: CredentialResolver | undefined;
  private readonly podChains = new Map<string, Promise<unknown>>();

  /**
   * @throws KimgError `CONFIG_INVALID` with the kubelet's message for an invalid puller configuration
   *   (`serializeImagePulls` true with `maxParallelImagePulls` > 1, or `maxParallelImagePulls` < 1).
   */
  constructor(options: ImageManagerOptions) {
    this.service = options.imageService;
    this.clock = options.clock ?? systemClock;
    this.puller =
      options.puller ??
      createPuller(
        this.service,
        {
          serializeImagePulls: options.serializeImagePulls ?? true,
          maxParallelImagePulls: options.maxParallelImagePulls ?? null,
          registryPullQPS: options.registryPullQPS ?? 0,
          registryBurst: options.registryBurst ?? 10,
        },
        { clock: this.clock },
      );
    this.gates = resolveFeatureGates(options.featureGates ?? {});
    this.backoff =
      options.backoff ??
      new PullBackoff({
        clock: this.clock,
        ...(options.backoffStore ? { store: options.backoffStore } : {}),
      });
    this.recorder = options.recorder ?? DISCARD_EVENTS;
    this.verifier = options.verifier ?? NEVER_VERIFY;
    this.resolver = options.credentials;
  }

  /** Whether image specs carry the runtime handler (`RuntimeClassInImageCriApi`). */
  get runtimeHandlerKeying(): boolean {
    return this.gates['RuntimeClassInImageCriApi'] === true;
  }

  /** The spec the kubelet sends for `image` (already tag-defaulted) with this handler. */
  specFor(image: string, runtimeHandler?: string, annotations?: Record<string, string>): ImageSpec {
    const spec: ImageSpec = { image };
    if (annotations !== undefined && Object.keys(annotations).length > 0)
      spec.annotations = { ...annotations };
    if (this.runtimeHandlerKeying && runtimeHandler !== undefined && runtimeHandler !== '') {
      spec.runtimeHandler = runtimeHandler;
    }
    return spec;
  }

  /** Runs `fn` after every earlier call for the same pod UID: one pod's images never pull in parallel. */
  private forPod<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.podChains.get(uid) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.podChains.set(uid, tail);
    void tail.then(() => {
      if (this.podChains.get(uid) === tail) this.podChains.delete(uid);
    });
    return run;
  }

  /**
   * Ensures the container's image is present (see the module comment for the steps). Never throws for
   * a per-image problem: the result says `ok: false` with the reason, message, error and events.
   *
   * @throws KimgError `INVALID_ARGUMENT` when the request has no pod or container.
   */
  ensureImageExists(request: EnsureImageRequest): Promise<EnsureImageResult> {
    if (
      typeof request !== 'object' ||
      request === null ||
      typeof request.pod !== 'object' ||
      request.pod === null
    ) {
      return Promise.reject(new KimgError('INVALID_ARGUMENT', 'ensureImageExists needs {pod, container}'));
    }
    if (typeof request.container !== 'object' || request.container === null) {
      return Promise.reject(new KimgError('INVALID_ARGUMENT', 'ensureImageExists needs {pod, container}'));
    }
    return this.forPod(String(request.pod.uid), () => this.ensure(request));
  }

  /**
   * EnsureImageExists, then the container event the kubelet's runtime records when it cannot start the
   * container for that reason: Warning `Failed` `Error: <reason>` (kuberuntime `startContainer`), after
   * the image manager's own `Failed to pull image …` / `Back-off pulling image …`.
   */
  private async ensure(request: EnsureImageRequest): Promise<EnsureImageResult> {
    const result = await this.ensureImage(request);
    if (result.ok || result.reason === undefined) return result;
    const event: ManagerEvent = {
      type: 'Warning',
      reason: 'Failed',
      message: containerFailedMessage(result.reason),
      object: { pod: podObject(request.pod), container: String(request.container.name) },
      timestamp: this.clock.now(),
    };
    result.events.push(event);
    try {
      this.recorder.record(event);
    } catch {
      // A recorder must not break a pull.
    }
    return result;
  }

  private async ensureImage(request: EnsureImageRequest): Promise<EnsureImageResult> {
    const { pod, container } = request;
    const requested = typeof container.image === 'string' ? container.image : '';
    const rawPolicy = request.pullPolicy ?? container.imagePullPolicy;
    const policy =
      rawPolicy === undefined || rawPolicy === '' ? defaultPullPolicy(requested) : String(rawPolicy);
    const events: ManagerEvent[] = [];
    const emit = (type: 'Normal' | 'Warning', reason: EventReasonName, message: string): void => {
      const event: ManagerEvent = {
        type,
        reason,
        message,
        object: { pod: podObject(pod), container: String(container.name) },
        timestamp: this.clock.now(),
      };
      events.push(event);
      try {
        this.recorder.record(event);
      } catch {
        // A recorder must not break a pull.
      }
    };
    const base = { image: requested, pullPolicy: policy, events };
    let spec: ImageSpec | undefined;
    const fail = (
      error: KimgErrorLike,
      message: string,
      reason?: ImagePullErrorReason,
    ): EnsureImageResult => {
      const r: EnsureImageResult = {
        ...base,
        ok: false,
        imageRef: '',
        message,
        reason: reason ?? reasonForCode(error.code),
        error,
        action: 'failed',
      };
      if (spec !== undefined) r.spec = spec;
      return r;
    };
    try {
      // 1. Default the tag.
      let image: string;
      try {
        image = applyDefaultTag(requested);
      } catch (e) {
        const cause = toKimgError(e);
        const msg = failedToApplyDefaultTagMessage(requested, cause.message);
        emit('Warning', 'InspectFailed', msg);
        return fail(new KimgError('INVALID_IMAGE_NAME', msg, { input: requested, cause }), msg);
      }
      // 2. The spec.
      spec = this.specFor(image, request.runtimeHandler, pod.annotations);
      // 3. Presence.
      let imageRef = '';
      if (needsPresenceCheck(policy)) {
        try {
          const info = await this.service.imageStatus(
            spec,
            request.signal ? { signal: request.signal } : undefined,
          );
          if (info !== undefined) {
            if (typeof info.id !== 'string' || info.id === '' || !(info.size > 0)) {
              throw new KimgError(
                'IMAGE_SERVICE_PROTOCOL_ERROR',
                `Id or size of image ${goQuote(spec.image)} is not set`,
                {
                  input: spec.image,
                },
              );
            }
            imageRef = info.id;
          }
        } catch (e) {
          const cause = toKimgError(e);
          // Upstream prints the (empty) imageRef here, not the image.
          const msg = failedToInspectMessage('', cause.message);
          emit('Warning', 'InspectFailed', msg);
          return fail(new KimgError('IMAGE_INSPECT_ERROR', msg, { input: requested, cause }), msg);
        }
      }
      // 6 (lazily). The pod's credentials, looked up at most once.
      let credentials: Promise<CredentialCandidate[]> | undefined;
      const getCredentials = (): Promise<CredentialCandidate[]> =>
        (credentials ??= this.lookupCredentials(image, pod, request.credentials));
      // 4. Verification of a present image.
      const present = imageRef !== '';
      let verified: boolean | undefined;
      if (present && this.gates['KubeletEnsureSecretPulledImages'] === true) {
        try {
          verified = !(await this.verifier.mustAttemptImagePull({
            image: requested,
            imageRef,
            pod,
            getPodCredentials: getCredentials,
          }));
        } catch (e) {
          const err = toKimgError(e);
          return fail(err, err.message);
        }
      }
      // 3–5. The decision (policy.ts holds the truth table).
      const decision = decidePull({
        policy,
        present,
        image: requested,
        ...(verified === undefined ? {} : { verified }),
      });
      if (decision.action === 'use') {
        const message = decision.event?.message ?? alreadyPresentMessage(requested);
        emit('Normal', 'Pulled', message);
        return { ...base, ok: true, imageRef, message, spec, action: 'used' };
      }
      if (decision.action === 'never-pull-error') {
        const message = decision.event?.message ?? '';
        emit('Warning', 'ErrImageNeverPull', message);
        return fail(new KimgError('ERR_IMAGE_NEVER_PULL', message, { input: requested }), message);
      }
      // 6. Credentials.
      let candidates: CredentialCandidate[];
      try {
        candidates = await getCredentials();
      } catch (e) {
        const err = toKimgError(e);
        return fail(err, err.message);
      }
      // 7. Pull (a present image whose credentials were not verified pulls to verify them).
      const unverified = present && verified === false;
      return await this.pull(request, requested, spec, candidates, emit, base, fail, unverified);
    } catch (e) {
      const err = toKimgError(e);
      return fail(err, err.message);
    }
  }

  private async lookupCredentials(
    image: string,
    pod: PodInfo,
    explicit: CredentialCandidate[] | undefined,
  ): Promise<CredentialCandidate[]> {
    if (explicit !== undefined) return [...explicit];
    if (this.resolver === undefined) return [];
    // The kubelet looks credentials up by the normalized repository without tag or digest.
    const { repo } = parseImageName(image);
    const found = await this.resolver(repo, pod);
    return Array.isArray(found) ? found : [];
  }

  private async pull(
    request: EnsureImageRequest,
    requested: string,
    spec: ImageSpec,
    candidates: CredentialCandidate[],
    emit: (type: 'Normal' | 'Warning', reason: EventReasonName, message: string) => void,
    base: { image: string; pullPolicy: string; events: ManagerEvent[] },
    fail: (error: KimgErrorLike, message: string, reason?: ImagePullErrorReason) => EnsureImageResult,
    unverifiedPresent = false,
  ): Promise<EnsureImageResult> {
    const { pod } = request;
    const verifying = this.gates['KubeletEnsureSecretPulledImages'] === true;
    if (verifying && this.verifier.recordPullIntent !== undefined) {
      try {
        await this.verifier.recordPullIntent(requested);
      } catch (e) {
        const err = toKimgError(e);
        return fail(err, failedToRecordPullIntentMessage(requested, err.message));
      }
    }
    let succeeded: { imageRef: string; credential: CredentialCandidate | undefined } | undefined;
    try {
      const key = backoffKey(pod.uid, requested);
      const gate = await this.backoff.begin(key);
      if (gate.inBackOff) {
        emit('Normal', 'BackOff', backOffMessage(requested));
        const message = backOffMessage(requested, gate.lastError);
        const remaining = Math.max(0, gate.retryAtMs - this.clock.now());
        return fail(
          new KimgError('IMAGE_PULL_BACKOFF', message, {
            input: requested,
            retryAfterSeconds: Math.ceil(remaining / 1000),
            retryable: true,
          }),
          message,
        );
      }
      emit('Normal', 'Pulling', pullingMessage(requested));
      const start = this.clock.now();
      const task = {
        spec,
        credentials: candidates,
        sandbox: request.podSandboxConfig ?? {
          name: pod.name,
          namespace: pod.namespace,
          uid: pod.uid,
          ...(pod.annotations ? { annotations: { ...pod.annotations } } : {}),
        },
        ...(request.signal ? { signal: request.signal } : {}),
      };
      let result;
      try {
        result = await this.puller.pull(task);
      } catch (e) {
        const pullErr = toKimgError(e);
        emit('Warning', 'Failed', failedToPullMessage(requested, pullErr.message));
        const err = unverifiedPresent ? credentialsNotVerified(requested, pullErr) : pullErr;
        // kubelet `evalCRIPullErr`: a CRI runtime signals RegistryUnavailable / SignatureValidationFailed
        // only by this message prefix (code Unknown) — the one place the CRI contract is text.
        const cri = evalCriPullError(requested, err.message);
        const reason = cri.reason !== 'ErrImagePull' ? cri.reason : reasonForCode(err.code);
        const message = cri.reason !== 'ErrImagePull' ? cri.message : err.message;
        await this.backoff.recordFailure(key, `${reason}: ${message}`);
        return fail(err, message, reason);
      }
      const totalMs = this.clock.now() - start;
      emit('Normal', 'Pulled', pulledMessage(requested, result.pullMs, totalMs, result.imageSize));
      await this.backoff.recordSuccess();
      succeeded = { imageRef: result.imageRef, credential: result.credential };
      const pull: PullSummary = {
        queueWaitMs: result.queueWaitMs,
        pullMs: result.pullMs,
        totalMs,
        imageSize: result.imageSize,
        attempts: result.attempts,
      };
      if (result.credential !== undefined) pull.credentialKey = result.credential.key;
      return { ...base, ok: true, imageRef: result.imageRef, message: '', spec, action: 'pulled', pull };
    } finally {
      if (verifying) {
        try {
          if (succeeded !== undefined) {
            await this.verifier.recordImagePulled?.(requested, succeeded.imageRef, succeeded.credential);
          } else {
            await this.verifier.recordImagePullFailed?.(requested);
          }
        } catch {
          // Upstream logs record failures and carries on.
        }
      }
    }
  }

  /**
   * Ensures every image of a pod, one after another, never in parallel for the pod: init containers,
   * then containers, then ephemeral containers, in spec order. Present images return at once (they
   * never wait in the pull queue). An init container's failure stops the walk unless
   * `continueAfterInitFailure`.
   *
   * The pod needs `metadata.name`; `namespace` defaults to `default`; without `metadata.uid` the back-off
   * is keyed by `<namespace>/<name>` so repeated runs for the same manifest share it.
   *
   * @throws KimgError `INVALID_ARGUMENT` when the manifest has no name or no container lists.
   */
  async ensurePodImages(
    manifest: PodManifest,
    options: EnsurePodImagesOptions = {},
  ): Promise<PodImagesResult> {
    const meta = manifest?.metadata ?? {};
    if (typeof meta.name !== 'string' || meta.name === '') {
      throw new KimgError('INVALID_ARGUMENT', 'the pod has no metadata.name: give the pod a name');
    }
    const namespace =
      typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
    const pod: PodInfo = {
      name: meta.name,
      namespace,
      uid: typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : `${namespace}/${meta.name}`,
    };
    if (meta.annotations !== undefined) pod.annotations = { ...meta.annotations };
    const spec = manifest.spec ?? {};
    if (typeof spec.serviceAccountName === 'string') pod.serviceAccountName = spec.serviceAccountName;
    if (options.failedPullSecrets !== undefined && options.failedPullSecrets.length > 0) {
      const event: ManagerEvent = {
        type: 'Warning',
        reason: 'FailedToRetrieveImagePullSecret',
        message: failedToRetrievePullSecretsMessage(options.failedPullSecrets),
        object: { pod: podObject(pod), container: '' },
        timestamp: this.clock.now(),
      };
      try {
        this.recorder.record(event);
      } catch {
        // A recorder must not break a sync.
      }
    }
    const results: ContainerImageResult[] = [];
    let initFailed = false;
    for (const list of CONTAINER_LISTS) {
      const containers = spec[list];
      if (!Array.isArray(containers)) continue;
      for (const c of containers) {
        const container: ContainerInfo = {
          name: typeof c?.name === 'string' ? c.name : '',
          image: typeof c?.image === 'string' ? c.image : '',
        };
        if (typeof c?.imagePullPolicy === 'string') container.imagePullPolicy = c.imagePullPolicy;
        const line: ContainerImageResult = { list, container: container.name, image: container.image };
        if (initFailed && !options.continueAfterInitFailure) {
          line.skipped = 'init-container-failed';
          results.push(line);
          continue;
        }
        const request: EnsureImageRequest = { pod, container };
        if (options.runtimeHandler !== undefined) request.runtimeHandler = options.runtimeHandler;
        if (options.podSandboxConfig !== undefined) request.podSandboxConfig = options.podSandboxConfig;
        if (options.credentials !== undefined) request.credentials = options.credentials;
        if (options.signal !== undefined) request.signal = options.signal;
        line.result = await this.ensureImageExists(request);
        if (!line.result.ok && list === 'initContainers') initFailed = true;
        results.push(line);
      }
    }
    return { pod, ok: results.every((r) => r.result?.ok === true), results };
  }

  /**
   * Removes an image (by id or name). With `RuntimeClassInImageCriApi` on, only the copy for
   * `runtimeHandler` is removed; absent = success.
   *
   * @throws KimgError from the image service.
   */
  async removeImage(
    image: string,
    options: { runtimeHandler?: string; signal?: AbortSignal } = {},
  ): Promise<void> {
    await this.service.removeImage(
      this.specFor(image, options.runtimeHandler),
      options.signal ? { signal: options.signal } : undefined,
    );
  }

  /** The present images with their GC keys (`<id>` or `<id>,<handler>`). @throws KimgError from the image service. */
  async listImages(options: { signal?: AbortSignal } = {}): Promise<ListedImage[]> {
    const images = await this.service.listImages(options.signal ? { signal: options.signal } : undefined);
    return images.map((img) => ({
      ...img,
      key: imageRecordKey(img.id, this.runtimeHandlerKeying ? img.spec?.runtimeHandler : undefined),
    }));
  }

  /** Every back-off entry, as of now. @throws KimgError `STORE_CORRUPT`/`STORE_IO` from a file store. */
  listBackoff(): Promise<BackoffEntry[]> {
    return this.backoff.list();
  }

  /**
   * Clears back-off entries (all, one key, or a pod's and/or an image's) so the next ensure pulls at
   * once; returns the keys removed. @throws KimgError `STORE_CORRUPT`/`STORE_IO` from a file store.
   */
  clearBackoff(filter: BackoffFilter = {}): Promise<string[]> {
    return this.backoff.clear(filter);
  }
}
