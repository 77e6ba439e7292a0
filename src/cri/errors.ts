/**
 * The CRI face's one translation of errors, both ways.
 *
 * Server side (kimg → kubelet): a KimgError code becomes a gRPC status code, once, in
 * {@link toGrpcStatus}. The rules that matter to the kubelet (docs/design/upstream-parity.md, cri-api
 * `pkg/errors/errors.go`, kubelet `evalCRIPullErr`, cri-client `pkg/remote_image.go`):
 * - cri-client unwraps only gRPC code **Unknown** to the bare status message; any other code reaches
 *   the kubelet as `rpc error: code = X desc = …`. The kubelet then checks the text for the prefixes
 *   `RegistryUnavailable` and `SignatureValidationFailed`. So an unreachable registry is sent as code
 *   Unknown with a message starting `RegistryUnavailable: …` (the kubelet shows `image pull failed for
 *   <image> because the registry is unavailable: …`, reason `RegistryUnavailable`).
 * - `NotFound` is what `IsNotFound` tests; containerd uses it for a missing repository/tag/digest.
 * - Other pull failures go out as Unknown, like containerd's: its CRI plugin passes registry failures
 *   (401 and failed token fetches, 403, 429, 5xx) through `errdefs.ToGRPC`, which knows none of them,
 *   so the kubelet shows the registry's message itself rather than `rpc error: code = Unauthenticated`.
 *   Only what containerd marks with an errdefs class keeps a sharper code (a missing tag, repository or
 *   platform: `NotFound`; a cancelled call: `Canceled`).
 * - PullImage messages have containerd's shape, `failed to pull and unpack image "<ref>": <cause>`
 *   (and `failed to parse image reference "<image>": <cause>` for a bad reference, code Unknown), see
 *   {@link pullFailure}.
 * - The `RegistryUnavailable:` prefix for an unreachable registry is kimg's own: containerd sends the
 *   dial error as it is. It is the cri-api sentinel a runtime is meant to use, and is listed in
 *   `docs/deliberate-differences.md`.
 * Every status also carries the kimg code in the trailer `kimg-error-code`, so a kimg client maps it
 * back exactly without reading text.
 *
 * Client side (runtime → kimg): {@link fromGrpcError} maps a gRPC error back to a KimgError. Order:
 * the `kimg-error-code` trailer; then the gRPC code; then — only for code Unknown, because containerd
 * sends almost every pull failure as Unknown (`401 Unauthorized`, `failed to authorize`)
 * — the message text. This function is the one place in kimg that inspects a runtime's error text.
 * The KimgError's message is what the kubelet would show: the bare message for Unknown, else
 * `rpc error: code = <Code> desc = <message>` (cri-client's formatting).
 */
import * as grpc from '@grpc/grpc-js';
import {
  KimgError,
  isKimgError,
  isKimgErrorCode,
  toKimgError,
  unreachableSocket,
  type KimgErrorCode,
} from '../errors/index.js';

/** Trailer carrying the kimg error code on every error status kimg serves. */
export const KIMG_ERROR_CODE_METADATA = 'kimg-error-code';

/** The message prefix the kubelet turns into reason `RegistryUnavailable` (cri-api `ErrRegistryUnavailable`). */
export const REGISTRY_UNAVAILABLE_PREFIX = 'RegistryUnavailable';

/** The message prefix the kubelet turns into reason `SignatureValidationFailed`. */
export const SIGNATURE_VALIDATION_FAILED_PREFIX = 'SignatureValidationFailed';

const S = grpc.status;

/**
 * KimgError code → gRPC status code. Codes not listed are sent as Unknown (the containerd default for
 * pull failures), which also keeps this table valid when other modules add codes.
 */
export const GRPC_STATUS_BY_CODE: Readonly<Partial<Record<KimgErrorCode, grpc.status>>> = {
  // absent things
  NOT_FOUND: S.NOT_FOUND,
  IMAGE_NOT_PRESENT: S.NOT_FOUND,
  PLATFORM_NOT_FOUND: S.NOT_FOUND,
  FILE_NOT_FOUND: S.NOT_FOUND,
  SECRET_NOT_FOUND: S.NOT_FOUND,
  // bad input (a PullImage reference error is Unknown instead, see pullFailure)
  INVALID_REFERENCE_FORMAT: S.INVALID_ARGUMENT,
  TAG_INVALID_FORMAT: S.INVALID_ARGUMENT,
  DIGEST_INVALID_FORMAT: S.INVALID_ARGUMENT,
  DIGEST_INVALID_LENGTH: S.INVALID_ARGUMENT,
  DIGEST_UNSUPPORTED: S.INVALID_ARGUMENT,
  NAME_CONTAINS_UPPERCASE: S.INVALID_ARGUMENT,
  NAME_EMPTY: S.INVALID_ARGUMENT,
  NAME_TOO_LONG: S.INVALID_ARGUMENT,
  NAME_NOT_CANONICAL: S.INVALID_ARGUMENT,
  PLATFORM_INVALID: S.INVALID_ARGUMENT,
  INVALID_IMAGE_NAME: S.INVALID_ARGUMENT,
  INVALID_ARGUMENT: S.INVALID_ARGUMENT,
  USAGE: S.INVALID_ARGUMENT,
  // credentials and registry refusals: Unknown, as containerd sends them (see the module comment)
  UNAUTHORIZED: S.UNKNOWN,
  TOKEN_REFUSED: S.UNKNOWN,
  NO_CREDENTIALS_ACCEPTED: S.UNKNOWN,
  DENIED: S.UNKNOWN,
  TOO_MANY_REQUESTS: S.UNKNOWN,
  // transient, local
  STORE_LOCKED: S.UNAVAILABLE,
  ABORTED: S.CANCELLED,
  // integrity and store
  DIGEST_MISMATCH: S.DATA_LOSS,
  SIZE_MISMATCH: S.DATA_LOSS,
  STORE_CORRUPT: S.DATA_LOSS,
  STORE_IO: S.INTERNAL,
  STORE_VERSION_UNSUPPORTED: S.FAILED_PRECONDITION,
  INTERNAL: S.INTERNAL,
  // REGISTRY_UNAVAILABLE: Unknown + prefix, see toGrpcStatus.
};

/** A gRPC status ready to hand to a grpc-js callback. */
export interface GrpcStatusObject {
  code: grpc.status;
  details: string;
  metadata: grpc.Metadata;
}

/**
 * The gRPC status kimg's CRI server sends for `e` (anything thrown by the library).
 * `REGISTRY_UNAVAILABLE` → Unknown with `RegistryUnavailable: <message>`; others per
 * {@link GRPC_STATUS_BY_CODE}; non-KimgErrors are wrapped as `INTERNAL` first.
 */
export function toGrpcStatus(e: unknown): GrpcStatusObject {
  const err = toKimgError(e);
  const metadata = new grpc.Metadata();
  metadata.set(KIMG_ERROR_CODE_METADATA, err.code);
  if (err.code === 'REGISTRY_UNAVAILABLE') {
    // Already prefixed when relayed from another runtime (kimg serve over a CriImageService).
    const details = err.message.startsWith(REGISTRY_UNAVAILABLE_PREFIX)
      ? err.message
      : `${REGISTRY_UNAVAILABLE_PREFIX}: ${err.message}`;
    return { code: S.UNKNOWN, details, metadata };
  }
  return { code: GRPC_STATUS_BY_CODE[err.code] ?? S.UNKNOWN, details: err.message, metadata };
}

/** The start of every PullImage failure containerd's CRI plugin sends (1.6 and 2.x `image_pull.go`). */
export const PULL_FAILURE_PREFIX = 'failed to pull and unpack image';

/** Reference error codes: a PullImage that cannot parse its image. */
const REFERENCE_CODES: ReadonlySet<KimgErrorCode> = new Set<KimgErrorCode>([
  'INVALID_REFERENCE_FORMAT',
  'TAG_INVALID_FORMAT',
  'DIGEST_INVALID_FORMAT',
  'DIGEST_INVALID_LENGTH',
  'DIGEST_UNSUPPORTED',
  'NAME_CONTAINS_UPPERCASE',
  'NAME_EMPTY',
  'NAME_TOO_LONG',
  'NAME_NOT_CANONICAL',
  'INVALID_IMAGE_NAME',
]);

/**
 * The gRPC status for a failed PullImage of `image` (as the request spelled it), with containerd's
 * message shape: `failed to pull and unpack image "<normalized ref>": <message>`; a reference that
 * does not parse is `failed to parse image reference "<image>": <message>` with code Unknown, as
 * containerd reports it. A message already in that shape (relayed from another runtime) is kept.
 */
export function pullFailure(e: unknown, image: string, normalizedRef: string | undefined): GrpcStatusObject {
  const err = toKimgError(e);
  if (err.message.startsWith(PULL_FAILURE_PREFIX) || err.message.startsWith(REGISTRY_UNAVAILABLE_PREFIX))
    return toGrpcStatus(err);
  if (REFERENCE_CODES.has(err.code) || normalizedRef === undefined) {
    const st = toGrpcStatus(
      new KimgError(err.code, `failed to parse image reference ${JSON.stringify(image)}: ${err.message}`, {
        ...err.details,
        cause: err,
      }),
    );
    return REFERENCE_CODES.has(err.code) ? { ...st, code: S.UNKNOWN } : st;
  }
  return toGrpcStatus(
    new KimgError(err.code, `${PULL_FAILURE_PREFIX} ${JSON.stringify(normalizedRef)}: ${err.message}`, {
      ...err.details,
      cause: err,
    }),
  );
}

/** The upper-case gRPC code name (`NOT_FOUND`) → cri-client's `NotFound` spelling. */
export function grpcCodeName(code: number): string {
  const name = (S as unknown as Record<number, string | undefined>)[code];
  if (name === undefined) return `Code(${code})`;
  return name
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('')
    .replace(/^Ok$/, 'OK');
}

/** The text the kubelet would see for a gRPC error (cri-client: Unknown → bare message). */
export function kubeletErrorText(code: number, details: string): string {
  return code === S.UNKNOWN ? details : `rpc error: code = ${grpcCodeName(code)} desc = ${details}`;
}

/** Context for {@link fromGrpcError}: which call failed where, for the message. */
export interface GrpcErrorContext {
  /** The RPC name (`PullImage`). */
  rpc: string;
  /** The endpoint (`unix:///run/containerd/containerd.sock`). */
  endpoint: string;
  /** The image the call was about, if any. */
  image?: string;
}

// Text patterns for containerd's code-Unknown errors (containerd 1.6/2.x `core/remotes/docker`
// resolver/authorizer texts; docs/design/upstream-parity.md). Order matters: auth before not-found, since containerd's
// auth failure says "pull access denied, repository does not exist or may require authorization".
const UNKNOWN_TEXT_RULES: ReadonlyArray<readonly [RegExp, KimgErrorCode]> = [
  [/^RegistryUnavailable\b/, 'REGISTRY_UNAVAILABLE'],
  [
    /\b401 Unauthorized\b|failed to authorize|failed to fetch (?:oauth|anonymous) token|\bunauthorized\b|pull access denied/i,
    'UNAUTHORIZED',
  ],
  [/\b403 Forbidden\b|\bdenied: /i, 'DENIED'],
  [/\b429 Too Many Requests\b/i, 'TOO_MANY_REQUESTS'],
  [/: not found$|\b404 Not Found\b/i, 'NOT_FOUND'],
  [/no match for platform/i, 'PLATFORM_NOT_FOUND'],
  [/unexpected commit digest|digest mismatch/i, 'DIGEST_MISMATCH'],
];

/**
 * Maps an error from a CRI call back to a KimgError (see the module comment for the order of
 * evidence). Connection failures (`Unavailable` before any answer, `DeadlineExceeded` while
 * connecting) become `RUNTIME_UNAVAILABLE`; anything unclassified `RUNTIME_ERROR`. KimgErrors pass
 * through unchanged.
 */
export function fromGrpcError(e: unknown, ctx: GrpcErrorContext): KimgError {
  if (isKimgError(e)) return e as KimgError;
  const se = e as Partial<grpc.ServiceError>;
  if (typeof se !== 'object' || se === null || typeof se.code !== 'number') {
    return new KimgError(
      'RUNTIME_ERROR',
      `CRI ${ctx.rpc} to ${ctx.endpoint} failed: ${String((e as Error)?.message ?? e)}`,
      {
        cause: e,
        method: ctx.rpc,
        ...(ctx.image !== undefined ? { input: ctx.image } : {}),
      },
    );
  }
  const code = se.code;
  const details = se.details ?? se.message ?? '';
  const text = kubeletErrorText(code, details);
  const extra = {
    cause: e,
    method: ctx.rpc,
    actual: grpcCodeName(code),
    ...(ctx.image !== undefined ? { input: ctx.image } : {}),
  };
  const trailer = se.metadata?.get(KIMG_ERROR_CODE_METADATA)[0];
  if (isKimgErrorCode(trailer)) return new KimgError(trailer, text, extra);
  switch (code) {
    case S.NOT_FOUND:
      return new KimgError('NOT_FOUND', text, extra);
    case S.UNAUTHENTICATED:
      return new KimgError('UNAUTHORIZED', text, extra);
    case S.PERMISSION_DENIED:
      return new KimgError('DENIED', text, extra);
    case S.INVALID_ARGUMENT:
      return new KimgError('INVALID_ARGUMENT', text, extra);
    case S.RESOURCE_EXHAUSTED:
      return new KimgError('TOO_MANY_REQUESTS', text, extra);
    case S.CANCELLED:
      return new KimgError('ABORTED', text, extra);
    case S.DATA_LOSS:
      return new KimgError('DIGEST_MISMATCH', text, extra);
    case S.UNAVAILABLE: {
      const unreachable = unreachableSocket(details);
      return new KimgError(
        'RUNTIME_UNAVAILABLE',
        `the CRI runtime at ${ctx.endpoint} is unavailable (${ctx.rpc}): ${unreachable.reason}; ${
          unreachable.permission
            ? "run kimg as a user that may open the runtime's socket (root, or the socket's group)"
            : 'check that it is running and that the socket path is right'
        }`,
        { ...extra, retryable: true },
      );
    }
    case S.UNKNOWN:
      for (const [re, mapped] of UNKNOWN_TEXT_RULES)
        if (re.test(details)) return new KimgError(mapped, text, extra);
      return new KimgError('RUNTIME_ERROR', text, extra);
    default:
      return new KimgError('RUNTIME_ERROR', text, extra);
  }
}
