/**
 * The CRI face of kimg: its own wire-compatible subset of `runtime.v1` (`proto/kimg-cri.proto`), a
 * server that serves any `ImageService` on a unix socket (`kimg serve`), a client that makes any
 * CRI runtime socket (containerd, `kimg serve`) an `ImageService` (`kimg cri`, `kimg ensure
 * --image-service`), and a RuntimeService client listing a runtime's containers (image GC's in-use
 * images over a CRI backend). Errors are translated once each way (`errors.ts`): KimgError code ↔ gRPC status,
 * with the kubelet's `RegistryUnavailable` prefix rule.
 *
 * Follows k8s.io/cri-api `pkg/apis/runtime/v1/api.proto`, k8s.io/cri-client `pkg/remote_image.go` and
 * containerd `internal/cri/server/images`, and the kubelet's `evalCRIPullErr`; see
 * docs/design/upstream-parity.md.
 *
 * Failure codes: `RUNTIME_UNAVAILABLE`, `RUNTIME_ERROR`, `INVALID_ARGUMENT`, `INTERNAL`, and whatever
 * code a runtime's error maps back to (`NOT_FOUND`, `UNAUTHORIZED`, `DENIED`, `REGISTRY_UNAVAILABLE` …).
 */
export {
  startCriServer,
  unixSocketPath,
  CRI_SERVER_DEFAULTS,
  type CriServer,
  type CriServerOptions,
  type CriVersionInfo,
} from './server.js';
export {
  CriImageService,
  CRI_CLIENT_DEFAULTS,
  type CriClientOptions,
  type RuntimeVersion,
  type ImageStatusResult,
} from './client.js';
export {
  CriRuntimeService,
  containerFromWire,
  criContainerImageInUse,
  type CriContainer,
  type CriContainerFilter,
} from './runtime-client.js';
export {
  toGrpcStatus,
  fromGrpcError,
  grpcCodeName,
  kubeletErrorText,
  GRPC_STATUS_BY_CODE,
  KIMG_ERROR_CODE_METADATA,
  REGISTRY_UNAVAILABLE_PREFIX,
  SIGNATURE_VALIDATION_FAILED_PREFIX,
  type GrpcStatusObject,
  type GrpcErrorContext,
} from './errors.js';
export { authFromWire, authToWire } from './convert.js';
export {
  storeVerboseInfo,
  configVerboseInfo,
  verboseInfoFromConfig,
  goImageSpecJson,
  chainId,
  type VerboseInfo,
} from './verbose.js';
export { criProtoPath, loadCriPackage, CRI_PROTO_FILE, CRI_API_VERSION } from './proto.js';
