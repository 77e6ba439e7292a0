/**
 * The kubelet image manager's policy core: pull-policy defaulting and the AlwaysPullImages admission
 * plugin, the pull decision with the kubelet's exact event texts, and the per-pod image back-off.
 * Everything here is pure or clock-injected; the manager's runtime (`ensureImageExists`, pullers,
 * pull records) builds on it.
 *
 * Follows kubernetes `pkg/apis/core/v1/defaults.go`, `plugin/pkg/admission/alwayspullimages`,
 * `pkg/kubelet/images/image_manager.go` and client-go `util/flowcontrol/backoff.go`; see sections 2 and
 * 3 of the upstream-semantics digest.
 */
export {
  defaultPullPolicy,
  applyPodDefaults,
  applyUpdateDefaults,
  isPullPolicy,
  PULL_POLICIES,
  POD_SPEC_PATHS,
  CONTAINER_LISTS,
  type PullPolicy,
  type PodDefaultsOptions,
} from './defaulting.js';
export {
  alwaysPullImagesAdmit,
  alwaysPullImagesValidate,
  ALWAYS_PULL_IMAGES_PLUGIN,
  type AdmissionRequest,
  type AdmissionResult,
  type AdmissionSkipReason,
  type AdmissionCause,
  type JsonPatchOperation,
} from './always-pull-images.js';
export {
  decidePull,
  needsPresenceCheck,
  EventReason,
  neverPullMessage,
  alreadyPresentMessage,
  pullingMessage,
  pulledMessage,
  backOffMessage,
  failedToPullMessage,
  failedToInspectMessage,
  failedToApplyDefaultTagMessage,
  failedToRecordPullIntentMessage,
  containerFailedMessage,
  evalCriPullError,
  reasonForCode,
  type PullDecision,
  type PullDecisionInput,
  type PullEvent,
  type EventReasonName,
  type ImagePullErrorReason,
} from './policy.js';
export { goQuote, goDurationString, formatDuration } from './go-format.js';
export {
  Backoff,
  FakeClock,
  systemClock,
  backoffKey,
  IMAGE_BACKOFF_INITIAL_MS,
  IMAGE_BACKOFF_MAX_MS,
  type Clock,
  type BackoffOptions,
  type BackoffState,
} from './backoff.js';
