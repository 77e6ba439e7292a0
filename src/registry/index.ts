/**
 * The OCI distribution client: resolve, fetch and push manifests and blobs on real registries, with
 * Basic and token auth, mirrors from containerd `hosts.toml`, TLS, retries, resumable verified blob
 * streams and stall detection. Public API of `src/registry`.
 */
export { RegistryClient } from './client.js';
export { nextLink } from './internal/lists.js';
export {
  DEFAULT_REGISTRY_CLIENT_OPTIONS,
  MAX_MANIFEST_BYTES,
  type RegistryClientOptions,
  type RepositoryRef,
  type ImageRef,
  type CredentialLookup,
  type CallOptions,
  type FetchedManifest,
  type PlatformSelector,
  type ImageManifestOptions,
  type ImageManifestResult,
  type OpenBlobOptions,
  type PushBlobOptions,
  type PushBlobResult,
  type BlobContent,
} from './types.js';
export type { BlobSink } from './internal/blob-reader.js';
export { repositoryScope, normalizeScopes, DEFAULT_TOKEN_LIFETIME_S } from './auth.js';
export { parseWwwAuthenticate, challengeScopes, type AuthChallenge } from './www-authenticate.js';
export {
  parseHostsToml,
  resolveRegistryEndpoints,
  hostDirectories,
  isPlainHttpHost,
  isLoopbackPlainHttp,
  parseGoDuration,
  type HostCapability,
  type RegistryEndpoint,
  type EndpointTls,
  type HostsOptions,
} from './hosts.js';
export {
  ContentVerifier,
  createVerifyStream,
  createSizeLimitStream,
  digestOf,
  type VerifyContext,
} from './verify.js';
export {
  RetryPolicy,
  DEFAULT_RETRY_POLICY,
  HostBackoff,
  SYSTEM_CLOCK as REGISTRY_SYSTEM_CLOCK,
  parseRetryAfter,
  isRetryableNetworkError,
  type RetryPolicyOptions,
  type Clock as RegistryClock,
} from './retry.js';
export {
  REGISTRY_CHANNELS,
  debugFromEnv,
  type RequestStartMessage,
  type RequestEndMessage,
  type RequestErrorMessage,
  type RetryMessage,
} from './diagnostics.js';
export { redactUrl } from './internal/redact.js';
