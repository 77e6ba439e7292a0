/**
 * Unpack: stored images → filesystems. An OCI runtime bundle for runc/crun (`unpackImage` →
 * `DIR/rootfs` + `DIR/config.json`, image-spec `conversion.md` on runc's default spec, `rootless` like
 * umoci's), or overlay-ready snapshot directories keyed by chain ID shared between images.
 *
 * Layers are applied exactly as image-spec `layer.md` says (whiteouts, opaque directories, hardlinks,
 * owners, modes, times, xattrs), every diff ID is checked, and no entry can reach outside the root:
 * names are resolved inside it component by component, as umoci's securejoin and containerd's
 * `fs.RootPath` do (docs/design/unpack.md).
 *
 * `extractLayerFile` extracts one layer blob file into a directory (diff ID checked) and
 * `inheritImplicitDirs` completes it over its lower layers, for a caller placing layers into another
 * program's snapshot directories (src/containerd's local apply).
 *
 * `materializeImageVolume` fills an image volume's directory (KEP-4639): an image's layers, or an OCI
 * artifact's titled blobs as files.
 *
 * Failure codes: `IMAGE_NOT_PRESENT`, `BLOB_NOT_FOUND`, `MANIFEST_INVALID`, `UNSUPPORTED_MEDIA_TYPE`,
 * `DIGEST_MISMATCH`, `LAYER_INVALID`, `UNPACK_UNSAFE`, `TARGET_NOT_EMPTY`, `USER_NOT_FOUND`,
 * `STORE_IO`, `ABORTED`.
 */
export { chainIds } from '../oci/index.js';
export {
  unpackImage,
  DEFAULT_UNPACK_OPTIONS,
  type UnpackSource,
  type UnpackOptions,
  type UnpackEvent,
  type UnpackResult,
  type UnpackedLayer,
  extractLayerFile,
  inheritImplicitDirs,
  type ExtractLayerOptions,
  type ExtractedLayer,
} from './unpack.js';
export { materializeImageVolume, ANNOTATION_TITLE, type ImageVolumeResult } from './volume.js';
export type { LayerApplyStats } from './internal/apply.js';
export type { RuntimeSpec, ImageConfigFile } from './internal/runtime-config.js';
export { readTar, type TarEntry, type TarHeader, type TarEntryType } from './internal/tar.js';
export { layerCompression, type Compression } from './internal/decompress.js';
