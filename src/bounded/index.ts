/**
 * Bounded reads: every file or process output kimg reads from an untrusted source (OCI layouts, pod
 * manifests, secrets directories, credential plugins) is size-capped and type-checked here, so a FIFO,
 * a device or an endless producer costs neither a hang nor memory. The limits themselves live with
 * their callers and are listed in docs/security.md.
 */
export {
  readBoundedFile,
  readBoundedText,
  collectBounded,
  type BoundedFileOptions,
  type BoundedOutput,
} from './read.js';
