/**
 * The kubelet image manager's policy core: pull-policy defaulting and the AlwaysPullImages admission
 * plugin, the pull decision with the kubelet's exact event texts, and the per-pod image back-off.
 * The runtime on top: `ImageManager.ensureImageExists` / `ensurePodImages` over an `ImageService`
 * (kimg's store or a CRI runtime), serial and parallel pullers, persisted back-off and the kubelet's
 * events. Time is injected everywhere (`Clock`).
 *
 * Follows kubernetes `pkg/apis/core/v1/defaults.go`, `plugin/pkg/admission/alwayspullimages`,
 * `pkg/kubelet/images/{image_manager.go,puller.go,helpers.go}`, `pkg/kubelet/kuberuntime/
 * kuberuntime_image.go` and client-go `util/flowcontrol/backoff.go`; see sections 2 and 3 of the
 * upstream-semantics digest.
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
export {
  imageRecordKey,
  type ImageService,
  type ImageSpec,
  type ImageInfo,
  type ImageFsUsage,
  type ImageServiceCallOptions,
  type PodSandboxInfo,
  type PodInfo,
  type CredentialCandidate,
  type CredentialCandidateSource,
  type CredentialResolver,
} from './image-service.js';
export {
  PullBackoff,
  MemoryBackoffStore,
  FileBackoffStore,
  backoffFilePath,
  splitBackoffKey,
  type BackoffStore,
  type BackoffSnapshot,
  type BackoffEntry,
  type BackoffFilter,
  type BackoffGate,
  type PullBackoffOptions,
} from './backoff-store.js';
export {
  SerialPuller,
  ParallelPuller,
  TokenBucket,
  createPuller,
  pullWithCredentials,
  aggregatePullErrors,
  SERIAL_PULL_QUEUE_SIZE,
  type Puller,
  type PullTask,
  type PullResult,
  type PullerStats,
  type PullerOptions,
  type PullerConfig,
} from './puller.js';
export {
  ImageManager,
  MemoryEventRecorder,
  DISCARD_EVENTS,
  NEVER_VERIFY,
  imageManagerOptionsFromConfig,
  type ImageManagerOptions,
  type EnsureImageRequest,
  type EnsureImageResult,
  type EnsurePodImagesOptions,
  type PodImagesResult,
  type ContainerImageResult,
  type ContainerInfo,
  type PodManifest,
  type PullSummary,
  type ManagerEvent,
  type EventRecorder,
  type CredentialVerifier,
  type VerificationRequest,
  type ListedImage,
} from './image-manager.js';
