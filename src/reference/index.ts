/**
 * Image references: parsing, validation and normalization of `[host[:port]/]path[:tag][@digest]`,
 * exactly as distribution/reference v0.6.0 (`ParseNormalizedNamed`, `Parse`, `ParseNamed`,
 * `ParseAnyReference`, `ParseDockerRef`, `FamiliarName`, `FamiliarString`), go-digest v1.0.0 and the
 * kubelet (`parsers.ParseImageName`, `applyDefaultImageTag`) do. Linear-time scanners, no regex
 * backtracking: any string, of any size, gives a result or a coded `KimgError` quickly.
 *
 * Error codes (one per upstream sentinel; messages start with upstream's exact text):
 * `INVALID_REFERENCE_FORMAT`, `TAG_INVALID_FORMAT`, `DIGEST_INVALID_FORMAT`, `DIGEST_INVALID_LENGTH`,
 * `DIGEST_UNSUPPORTED`, `NAME_CONTAINS_UPPERCASE`, `NAME_EMPTY`, `NAME_TOO_LONG`, `NAME_NOT_CANONICAL`;
 * `INVALID_ARGUMENT` for a bad option or a non-string input.
 *
 * Public API of the module; everything else in src/reference is internal.
 */
export {
  DEFAULT_REGISTRY,
  LEGACY_DEFAULT_REGISTRY,
  OFFICIAL_REPO_PREFIX,
  DEFAULT_TAG,
  DEFAULT_PARSE_OPTIONS,
  parseReference,
  tryParseReference,
  parseStrict,
  parseNamed,
  parseAnyReference,
  parseDockerRef,
  splitDomain,
  familiarName,
  formatReference,
  parseDigest,
  isDigest,
  type ParseOptions,
  type Reference,
  type DigestReference,
  type ReferenceParts,
  type ParseResult,
} from './parse.js';
export { applyDefaultTag, parseImageName, isValidImageName, type ImageName } from './kubelet.js';
export { DIGEST_ALGORITHMS, type DigestAlgorithm, type ParsedDigest } from './digest.js';
export { MAX_PATH_LENGTH, MAX_TAG_LENGTH } from './grammar.js';
export type { ReferenceErrorCode } from './failure.js';
