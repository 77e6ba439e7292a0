/**
 * The kubelet's pull decision and its user-visible words.
 *
 * Before starting a container the kubelet decides whether to use the image on the node, pull it, or
 * fail. `Always` skips the presence check and pulls (the runtime reuses layers it has). `IfNotPresent`
 * pulls only when the image is missing — or, since credential verification (KEP-2535, gate
 * `KubeletEnsureSecretPulledImages`, default on since 1.35), when the image is present but this pod's
 * credentials were never verified for it. `Never` uses a present, verified image and otherwise fails
 * with `ErrImageNeverPull`, with the same message whether the image is missing or merely not verified,
 * so a pod cannot learn that an image it may not use is on the node.
 *
 * The message builders reproduce the kubelet's event texts byte for byte (Go `%q` quoting, Go
 * durations truncated to milliseconds).
 *
 * Source: kubernetes `pkg/kubelet/images/image_manager.go` (imagePullPrecheck, EnsureImageExists,
 * pullImage, evalCRIPullErr), `pkg/kubelet/images/types.go`, `pkg/kubelet/events/event.go`; see
 * docs/design/upstream-parity.md.
 */
import type { KimgErrorCode } from '../errors/index.js';
import type { PullPolicy } from './defaulting.js';
import { formatDuration, goQuote } from './go-format.js';

/** Container `waiting.reason` values the image manager produces (kubelet `images/types.go`, cri-api errors). */
export type ImagePullErrorReason =
  | 'ImagePullBackOff'
  | 'ImageInspectError'
  | 'ErrImagePull'
  | 'ErrImageNeverPull'
  | 'InvalidImageName'
  | 'RegistryUnavailable'
  | 'SignatureValidationFailed';

/** Event reasons the image manager records (kubelet `events/event.go`). */
export const EventReason = Object.freeze({
  Pulling: 'Pulling',
  Pulled: 'Pulled',
  Failed: 'Failed',
  InspectFailed: 'InspectFailed',
  ErrImageNeverPull: 'ErrImageNeverPull',
  BackOff: 'BackOff',
  /** On the pod: some pull Secrets could not be retrieved (kubelet `getPullSecretsForPod`). */
  FailedToRetrieveImagePullSecret: 'FailedToRetrieveImagePullSecret',
} as const);

/** One of `EventReason`'s values. */
export type EventReasonName = (typeof EventReason)[keyof typeof EventReason];

/** An event the manager should record on the container's object reference. */
export interface PullEvent {
  type: 'Normal' | 'Warning';
  reason: EventReasonName;
  message: string;
}

/** What `decidePull` needs to know. */
export interface PullDecisionInput {
  /** The container's `imagePullPolicy` (after defaulting). Unknown values behave like `Always`, as upstream. */
  policy: PullPolicy | string;
  /** Whether the runtime reported the image present. Ignored for `Always` (never checked). */
  present: boolean;
  /**
   * The credential verification result for a present image: `true` when MustAttemptImagePull said no
   * pull is needed, `false` when it said the pod must pull. Leave undefined when verification is off
   * (gate `KubeletEnsureSecretPulledImages` disabled): a present image is then used as is.
   */
  verified?: boolean;
  /** The container's image as written in the pod; when given, the decision carries its event. */
  image?: string;
}

/** The pull decision (see the truth table in `decidePull`). */
export type PullDecision =
  | {
      action: 'use';
      /** `present` (verification off) or `verified` (present and this pod's credentials verified). */
      reason: 'present' | 'verified';
      /** Normal `Pulled` "already present…" event, when `image` was given. */
      event?: PullEvent;
    }
  | {
      action: 'pull';
      /** Why: the policy is Always (or unknown), the image is absent, or present but not verified for this pod. */
      reason: 'policy-always' | 'unknown-policy' | 'not-present' | 'not-verified';
    }
  | {
      action: 'never-pull-error';
      /** What is really going on; the message does not tell the two apart. */
      reason: 'not-present' | 'not-verified';
      errorReason: 'ErrImageNeverPull';
      code: 'ERR_IMAGE_NEVER_PULL';
      /** Warning `ErrImageNeverPull` event, when `image` was given. */
      event?: PullEvent;
    };

/** Whether the kubelet asks the runtime for the image's status before deciding (not for `Always` or unknown policies). */
export function needsPresenceCheck(policy: PullPolicy | string): boolean {
  return policy === 'IfNotPresent' || policy === 'Never';
}

/**
 * The kubelet's pull decision, a pure function of policy, presence and verification:
 *
 * | policy       | present | verified   | decision |
 * |--------------|---------|------------|----------|
 * | Always       | —       | —          | pull (subject to back-off) |
 * | IfNotPresent | no      | —          | pull |
 * | IfNotPresent | yes     | yes / off  | use, `Pulled` "already present…" |
 * | IfNotPresent | yes     | no         | pull with the pod's credentials |
 * | Never        | no      | —          | `ErrImageNeverPull` |
 * | Never        | yes     | yes / off  | use |
 * | Never        | yes     | no         | `ErrImageNeverPull` (same message as absent) |
 *
 * Any other policy string pulls without checking, as upstream's switch falls through. Never throws.
 */
export function decidePull(input: PullDecisionInput): PullDecision {
  const { policy, present, verified, image } = input;
  if (policy === 'Always') return { action: 'pull', reason: 'policy-always' };
  if (!needsPresenceCheck(policy)) return { action: 'pull', reason: 'unknown-policy' };
  if (present && verified !== false) {
    const decision: PullDecision = { action: 'use', reason: verified === true ? 'verified' : 'present' };
    if (image !== undefined) {
      decision.event = {
        type: 'Normal',
        reason: 'Pulled',
        message: alreadyPresentMessage(image, { verified: verified === true }),
      };
    }
    return decision;
  }
  const reason = present ? 'not-verified' : 'not-present';
  if (policy === 'IfNotPresent') return { action: 'pull', reason };
  const decision: PullDecision = {
    action: 'never-pull-error',
    reason,
    errorReason: 'ErrImageNeverPull',
    code: 'ERR_IMAGE_NEVER_PULL',
  };
  if (image !== undefined)
    decision.event = { type: 'Warning', reason: 'ErrImageNeverPull', message: neverPullMessage(image) };
  return decision;
}

// --- the kubelet's messages ------------------------------------------------------------------------

/** `Container image "<image>" is not present with pull policy of Never` (Warning `ErrImageNeverPull`). */
export function neverPullMessage(image: string): string {
  return `Container image ${goQuote(image)} is not present with pull policy of Never`;
}

/**
 * `Container image "<image>" already present on machine` (Normal `Pulled`), or with
 * `verified: true` the credential-verification variant `… already present on machine and can be
 * accessed by the pod`.
 */
export function alreadyPresentMessage(image: string, options: { verified?: boolean } = {}): string {
  const base = `Container image ${goQuote(image)} already present on machine`;
  return options.verified ? `${base} and can be accessed by the pod` : base;
}

/** `Pulling image "<image>"` (Normal `Pulling`). */
export function pullingMessage(image: string): string {
  return `Pulling image ${goQuote(image)}`;
}

/**
 * `Successfully pulled image "<image>" in <pull> (<total> including waiting). Image size: <n> bytes.`
 * (Normal `Pulled`). Durations are in milliseconds and printed as Go does after truncating to whole
 * milliseconds: `pullMs` is the runtime's pull, `totalMs` includes time queued behind other pulls.
 */
export function pulledMessage(image: string, pullMs: number, totalMs: number, sizeBytes: number): string {
  const size = Number.isFinite(sizeBytes) ? Math.trunc(sizeBytes) : 0;
  return `Successfully pulled image ${goQuote(image)} in ${formatDuration(pullMs)} (${formatDuration(totalMs)} including waiting). Image size: ${size} bytes.`;
}

/**
 * `Back-off pulling image "<image>"` (the Normal `BackOff` event). With `previousError` (the stored
 * `<reason>: <message>` of the last failure) it is the container status message instead:
 * `Back-off pulling image "<image>": ErrImagePull: <detail>`.
 */
export function backOffMessage(image: string, previousError?: string): string {
  const base = `Back-off pulling image ${goQuote(image)}`;
  return previousError === undefined ? base : `${base}: ${previousError}`;
}

/** `Failed to pull image "<image>": <error>` (Warning `Failed`). */
export function failedToPullMessage(image: string, error: string): string {
  return `Failed to pull image ${goQuote(image)}: ${error}`;
}

/** `Failed to inspect image "<imageRef>": <error>` (Warning `InspectFailed`; upstream prints the empty ref). */
export function failedToInspectMessage(imageRef: string, error: string): string {
  return `Failed to inspect image ${goQuote(imageRef)}: ${error}`;
}

/** `Failed to apply default image tag "<image>": <error>` (Warning `InspectFailed`, then `InvalidImageName`). */
export function failedToApplyDefaultTagMessage(image: string, error: string): string {
  return `Failed to apply default image tag ${goQuote(image)}: ${error}`;
}

/** `Failed to record image pull intent for container image "<image>": <error>`. */
export function failedToRecordPullIntentMessage(image: string, error: string): string {
  return `Failed to record image pull intent for container image ${goQuote(image)}: ${error}`;
}

/** The kubelet's Warning `FailedToRetrieveImagePullSecret` text (Secret names joined by `, `). */
export function failedToRetrievePullSecretsMessage(names: readonly string[]): string {
  return `Unable to retrieve some image pull secrets (${names.join(', ')}); attempting to pull the image may not succeed.`;
}

/** `Error: <reason>`: the Warning `Failed` event of a container that could not start. */
export function containerFailedMessage(reason: ImagePullErrorReason): string {
  return `Error: ${reason}`;
}

/**
 * The kubelet's classification of a failed CRI PullImage by the error text's prefix
 * (`evalCRIPullErr`): `RegistryUnavailable…` → `image pull failed for <image> because the registry is
 * unavailable<rest>`; `SignatureValidationFailed…` → `… because the signature validation failed<rest>`;
 * anything else keeps the text and is `ErrImagePull`. `<rest>` is the text after the prefix. The
 * image is printed unquoted, as upstream does.
 */
export function evalCriPullError(
  image: string,
  errorText: string,
): { reason: ImagePullErrorReason; message: string } {
  for (const [prefix, why] of [
    ['RegistryUnavailable', 'the registry is unavailable'],
    ['SignatureValidationFailed', 'the signature validation failed'],
  ] as const) {
    if (errorText.startsWith(prefix)) {
      return {
        reason: prefix,
        message: `image pull failed for ${image} because ${why}${errorText.slice(prefix.length)}`,
      };
    }
  }
  return { reason: 'ErrImagePull', message: errorText };
}

/**
 * The container `waiting.reason` for a kimg error code raised while ensuring an image: the manager's
 * one translation of codes to kubelet reasons. Every other code (registry, store, credentials) is
 * `ErrImagePull`: `RegistryUnavailable` / `SignatureValidationFailed` arise only from a runtime's error
 * text (see `evalCriPullError`), and containerd does not produce them for an unreachable registry.
 */
export function reasonForCode(code: KimgErrorCode): ImagePullErrorReason {
  switch (code) {
    case 'ERR_IMAGE_NEVER_PULL':
      return 'ErrImageNeverPull';
    case 'IMAGE_PULL_BACKOFF':
      return 'ImagePullBackOff';
    case 'INVALID_IMAGE_NAME':
      return 'InvalidImageName';
    case 'IMAGE_INSPECT_ERROR':
      return 'ImageInspectError';
    default:
      return 'ErrImagePull';
  }
}
