/**
 * Cluster mode: the Kubernetes API as the source of pods, Secrets and ServiceAccounts, and the sink of
 * Events, through the maintained client library (`@kubernetes/client-node`). Public API.
 *
 * - `loadKubeClientConfig`: `--kubeconfig`, `--context`, `KUBECONFIG`, `~/.kube/config`, in-cluster
 *   service account — as kubectl resolves them;
 * - `KubeClient`: the calls kimg makes, counted, failures translated once into coded errors;
 * - `KubeInformer` / `nodePodInformer`: list + watch caches (bookmarks, resume, relist on `410`,
 *   resync);
 * - `PodSecretManager`: the kubelet's watch-based secret manager (only referenced objects, own
 *   namespace only); `fetchPodPullSecrets` for one-shot reads;
 * - `TokenRequestSource`: service-account tokens for credential provider plugins with
 *   `tokenAttributes`, from the TokenRequest API, bound to the pod and cached;
 *   `tokenRequestCredentials`: that source plus the pods' ServiceAccounts, for one-shot callers;
 * - `KubeEventRecorder`: `events.k8s.io/v1` Events with series aggregation;
 * - `readPodContext`, `readDeploymentContext`, `listStuckContainers`, `nodeImagePresence`: the reads
 *   behind `kimg explain pod/NAME`.
 *
 * Failure codes: `KUBE_CONFIG_INVALID`, `KUBE_UNAVAILABLE`, `KUBE_UNAUTHORIZED`, `KUBE_FORBIDDEN`
 * (names verb and resource), `KUBE_NOT_FOUND`, `KUBE_GONE`, `KUBE_API_ERROR`; `SECRET_NOT_FOUND` for a
 * Secret of another namespace, `SECRET_INVALID`.
 */
export {
  loadKubeClientConfig,
  SERVICE_ACCOUNT_DIR,
  type KubeConfigOptions,
  type KubeClientConfig,
} from './config.js';
export {
  KubeClient,
  type KubeJson,
  type KubeList,
  type KubeListOptions,
  type KubeWatchEvent,
  type KubeResource,
  type ServiceAccountToken,
  type ServiceAccountTokenOptions,
} from './client.js';
export {
  TokenRequestSource,
  TOKEN_REQUEST_EXPIRATION_SECONDS,
  tokenRequestCredentials,
  serviceAccountInfo,
  type TokenRequester,
  type TokenRequestSourceOptions,
  type TokenRequestCredentialsOptions,
} from './token-request.js';
export { toKubeError, kubeStatusError, parseStatus, type KubeStatus, type KubeRequest } from './errors.js';
export { KubeInformer, objectKey, type InformerHandlers, type InformerOptions } from './informer.js';
export { nodePodInformer, type NodePodInformerOptions } from './pods.js';
export {
  PodSecretManager,
  fetchPodPullSecrets,
  podReferences,
  asKubeObject,
  missingSecretsMessage,
  missingSecretNames,
  type PodSecretManagerOptions,
} from './secrets.js';
export {
  KubeEventRecorder,
  KIMG_REPORTING_CONTROLLER,
  EVENT_SERIES_REFRESH_MS,
  type KubeEventInput,
  type KubeEventRecorderOptions,
} from './events.js';
export {
  readPodContext,
  readDeploymentContext,
  listStuckContainers,
  nodeImagePresence,
  parseKubeTarget,
  problemText,
  IMAGE_WAITING_REASONS,
  type PodContext,
  type NodeImagePresence,
  type StuckContainer,
  type KubeTarget,
} from './lookup.js';
export {
  explainClusterPod,
  NodeStatusImages,
  type ClusterPodExplanation,
  type ClusterExplainOptions,
  type PresenceSource,
} from './explain.js';
