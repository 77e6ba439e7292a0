/**
 * Node configuration: the image-related fields of the kubelet's configuration file
 * (`KubeletConfiguration`, `kubelet.config.k8s.io/v1beta1`) decoded, defaulted and validated exactly as
 * the kubelet does, plus kimg's own settings (a `kimg:` key or a sibling `KimgConfiguration` file). Go's
 * duration and quoting text forms live in `src/gotext` and are re-exported here for callers that
 * already import them from configuration.
 *
 * Every problem is reported at once in one `CONFIG_INVALID` KimgError (`details.items`); fields the
 * kubelet does not know are returned as notices. Depends only on errors and reference.
 *
 * Source: kubernetes `pkg/kubelet/apis/config/v1beta1/defaults.go`,
 * `pkg/kubelet/apis/config/validation/validation.go`, `pkg/kubelet/images/pullmanager/
 * image_pull_policies.go`, `pkg/features/kube_features.go`; staging kubelet `config/v1beta1/types.go`.
 */
export {
  goQuote,
  goTimeQuote,
  goParseDuration,
  goDurationString,
  durationToMs,
  type DurationParse,
} from '../gotext/index.js';
export {
  FEATURE_GATES,
  FEATURE_GATE_NAMES,
  isFeatureGateName,
  resolveFeatureGates,
  type FeatureGateName,
  type FeatureGateSpec,
  type FeatureGates,
} from './feature-gates.js';
export {
  KUBELET_CONFIG_API_VERSION,
  KUBELET_CONFIG_KIND,
  KUBELET_CONFIG_FIELDS,
  KUBELET_IMAGE_CONFIG_DEFAULTS,
  DEFAULT_CONTAINER_RUNTIME_ENDPOINT,
  IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES,
  decodeKubeletImageConfig,
  defaultKubeletImageConfig,
  validateKubeletImageConfig,
  parseAllowlistPattern,
  validateAllowlistPatterns,
  type KubeletImageConfig,
  type ConfigDuration,
  type ImagePullCredentialsVerificationPolicy,
  type AllowlistPattern,
  type DecodeContext,
} from './kubelet-config.js';
export {
  KIMG_CONFIG_API_VERSION,
  KIMG_CONFIG_KIND,
  KIMG_SETTINGS_DEFAULTS,
  KIMG_SETTINGS_FIELDS,
  parseNodeConfig,
  parseNodeConfigs,
  loadNodeConfig,
  type NodeConfig,
  type KimgSettings,
  type ConfigSource,
  type ParseNodeConfigOptions,
} from './load.js';
export { validatePrepullEntries, parseSecretRef, type PrepullImage } from './prepull.js';
