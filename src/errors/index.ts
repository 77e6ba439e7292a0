/**
 * kimg's error model: one base class, `KimgError`, with a stable literal-union `code` (the table in
 * `codes.ts`, mirrored in docs/errors.md), a message that names the offending input and what to do,
 * `cause`, and typed `details`. Faces translate codes once each (CLI exit status, CRI gRPC status,
 * manager event reason); nothing matches on message text.
 */
export { ERROR_CODES, ALL_ERROR_CODES, type KimgErrorCode } from './codes.js';
export {
  KimgError,
  isKimgError,
  isKimgErrorCode,
  toKimgError,
  quote,
  quoteValue,
  type KimgErrorDetails,
  type KimgErrorOptions,
  type KimgErrorLike,
  type RegistryErrorEntry,
  type KubeRequestDetails,
} from './kimg-error.js';
export { unreachableSocket, type UnreachableSocket } from './unreachable.js';
