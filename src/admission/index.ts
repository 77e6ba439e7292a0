/**
 * Admission: the two admission behaviours of the Images concept page, as a library, a CLI
 * (`kimg pin`, `kimg admission serve`) and a mutating webhook.
 *
 * - `AlwaysPullImages` ("Required image pull"): every container of a new Pod gets
 *   `imagePullPolicy: Always` (the plugin itself lives in src/manager; the webhook reuses it).
 * - Digest pinning (third-party admission controllers, "Image pull operations"): tags in Pods and pod
 *   templates rewritten to `name:tag@sha256:…` resolved at the registry (the index digest for a
 *   multi-arch image), with a TTL cache so the registry is not asked per request.
 *
 * Built on src/reference (parsing), src/credentials (keyring, Secrets), src/registry (HEAD resolve)
 * and src/manager (AlwaysPullImages). Sources: kubernetes `plugin/pkg/admission/alwayspullimages`,
 * `staging/src/k8s.io/api/admission/v1/types.go`.
 *
 * Failure codes: `CONFIG_INVALID` (policy file, unparsable manifests), `FILE_NOT_FOUND`, `USAGE`
 * (listen address), `INVALID_ARGUMENT` (a body that is not an AdmissionReview), and per image the
 * registry and reference codes (`NOT_FOUND`, `UNAUTHORIZED`, `DIGEST_MISMATCH`, …).
 */
export {
  pinImages,
  countYamlDocuments,
  pinObjects,
  pinnedImage,
  findImageSlots,
  ResolutionCache,
  type ImageResolver,
  type ResolveOptions,
  type PinOptions,
  type ImageSlot,
  type PinChange,
  type PinError,
  type PinTextResult,
  type PinObjectsResult,
  type ResolutionCacheOptions,
} from './pin.js';
export { registryResolver, type RegistryResolverOptions } from './resolver.js';
export {
  parseAdmissionPolicy,
  validateAdmissionPolicy,
  loadAdmissionPolicy,
  DEFAULT_ADMISSION_POLICY,
  type AdmissionPolicy,
} from './policy.js';
export {
  handleAdmissionReview,
  startAdmissionServer,
  parseListenAddress,
  ADMISSION_REVIEW_API_VERSION,
  DEFAULT_ADMISSION_LISTEN,
  PINNED_RESOURCES,
  type AdmissionReview,
  type AdmissionReviewRequest,
  type AdmissionReviewResponse,
  type AdmissionPatchOperation,
  type AdmissionOutcome,
  type AdmissionHandlerOptions,
  type AdmissionServerOptions,
  type AdmissionServer,
} from './webhook.js';
