/**
 * The OCI image data model shared by the registry client and the store: media types, descriptors,
 * manifests, indexes and configs, and the one set of limits and validation rules every reader of them
 * applies (`validate.ts`). Types, constants and pure checks; no I/O.
 */
export {
  MediaType,
  MANIFEST_MEDIA_TYPES,
  INDEX_MEDIA_TYPES,
  MANIFEST_ACCEPT,
  isManifestMediaType,
  isIndexMediaType,
  type MediaTypeName,
} from './media-types.js';
export {
  ANNOTATION_REF_NAME,
  type OciPlatform,
  type Descriptor,
  type ImageManifest,
  type ImageIndex,
  type ImageConfig,
} from './types.js';
export {
  MAX_MANIFEST_BYTES,
  MAX_CONFIG_BYTES,
  descriptorProblem,
  manifestDocumentProblem,
  jsonSizeProblem,
} from './validate.js';
export { chainIds } from './chain-id.js';
