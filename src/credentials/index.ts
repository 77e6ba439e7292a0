/**
 * Credentials: docker config files, keyring matching, pull Secrets, ServiceAccounts and exec credential
 * providers, with kubelet's semantics (`pkg/credentialprovider`: `config.go`, `keyring.go`,
 * `provider.go`, `secrets/secrets.go`, `plugin/{config,plugin,plugins}.go`). Public API.
 *
 * Passwords and tokens are always `Secret`s: they print as `<redacted>` and no error message, output
 * or log line of this module contains one.
 *
 * Failure codes: `DOCKER_CONFIG_INVALID`, `SECRET_INVALID`, `SECRET_NOT_FOUND`,
 * `CREDENTIAL_PROVIDER_CONFIG_INVALID`, `CREDENTIAL_PROVIDER_FAILED`, `NO_CREDENTIALS_ACCEPTED`,
 * `CONFIG_INVALID` (manifest files), `FILE_NOT_FOUND`, `USAGE` / `INVALID_ARGUMENT` (create secret),
 * and the reference codes for image names that do not parse.
 */
export { Secret, type AuthConfig } from './secret.js';
export {
  parseDockerConfig,
  loadDockerConfigFile,
  nodeDockerConfigSearchPaths,
  loadNodeDockerConfig,
  CachedNodeDockerConfig,
  DEFAULT_KUBELET_ROOT_DIR,
  NODE_DOCKER_CONFIG_CACHE_MS,
  type Clock as CredentialsClock,
  type DockerConfig,
  type DockerConfigEntry,
  type DockerConfigFormat,
  type ParseDockerConfigOptions,
  type DockerConfigSearchPath,
  type DockerConfigSearchOutcome,
  type NodeDockerConfig,
  type NodeDockerConfigSearchOptions,
  type LoadNodeDockerConfigOptions,
} from './docker-config.js';
export {
  Keyring,
  imageRepository,
  normalizeKeyringKey,
  matchKey,
  isDefaultRegistryMatch,
  describeReason,
  DOCKER_HUB_FALLBACK_KEY,
  type CredentialSource,
  type CredentialMatch,
  type NearMiss,
  type NearMissReason,
  type KeyringExplanation,
} from './keyring.js';
export {
  parseKubernetesObjects,
  MANIFEST_LIMITS,
  type ManifestLimits,
  readKubernetesObjects,
  readManifestFile,
  decodeSecret,
  resolvePodPullSecrets,
  pullSecretsFromObjects,
  failedPullSecretNames,
  SECRET_TYPE_DOCKER_CONFIG_JSON,
  SECRET_TYPE_DOCKERCFG,
  DOCKER_CONFIG_JSON_KEY,
  DOCKERCFG_KEY,
  type KubeObject,
  type DecodedSecret,
  type ResolvedPullSecret,
  type PullSecretProblem,
  type PodPullSecrets,
  type ResolvePullSecretsOptions,
} from './k8s-objects.js';
export { credentialHash } from './hash.js';
export {
  parseCredentialProviderConfig,
  validateCredentialProviderConfig,
  loadCredentialProviderConfig,
  CREDENTIAL_PROVIDER_CONFIG_VERSIONS,
  CREDENTIAL_PROVIDER_API_VERSIONS,
  type CredentialProviderConfig,
  type CredentialProviderSpec,
  type CredentialProviderConfigOptions,
  type TokenAttributes,
} from './provider-config.js';
export {
  ExecCredentialProvider,
  PluginManager,
  parseCredentialProviderResponse,
  redactPluginStderr,
  spawnPlugin,
  DEFAULT_PLUGIN_TIMEOUT_MS,
  PLUGIN_OUTPUT_LIMITS,
  PLUGIN_STDERR_EXCERPT,
  CACHE_PURGE_INTERVAL_MS,
  type SpawnPlugin,
  type SpawnResult,
  type ExecProviderOptions,
  type ProvideResult,
  type PluginPodContext,
  type ServiceAccountInfo,
  type CredentialProviderResponse,
  type PluginProblem,
  type PluginLookup,
  type PluginManagerLoadOptions,
} from './exec-provider.js';
export {
  buildKeyring,
  lookupPullCredentials,
  tryEachCredential,
  describeSource,
  type PullCredentialSources,
  type PullCredentialLookup,
  type CredentialProblem,
} from './resolve.js';
export {
  buildDockerRegistrySecret,
  formatDockerRegistrySecret,
  dockerConfigJsonFor,
  DEFAULT_DOCKER_SERVER,
  type DockerRegistrySecretOptions,
  type DockerRegistrySecretManifest,
} from './docker-registry-secret.js';
export {
  PodCredentials,
  serviceAccountFromObjects,
  type PodCredentialContext,
  type PodCredentialPluginOptions,
  type PodCredentialsOptions,
  type PodCredentialCandidate,
} from './pod-credentials.js';
export { credentialsBindTo } from './host-binding.js';
export {
  ProjectedTokenFileSource,
  TOKEN_FILE_MAX_BYTES,
  type TokenSource,
  type ServiceAccountTokenRequest,
} from './token-source.js';
