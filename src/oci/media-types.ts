/**
 * Media types of the OCI image spec and Docker's image manifest v2 schema 2, as registries serve them.
 * Sources: opencontainers/image-spec `specs-go/v1/mediatype.go`; containerd `core/images/mediatypes.go`.
 */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
} as const;
export type MediaTypeName = (typeof MediaType)[keyof typeof MediaType];

/** Image manifests (one platform). */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [MediaType.OciManifest, MediaType.DockerManifest];
/** Indexes / manifest lists (many platforms). */
export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.OciIndex, MediaType.DockerManifestList];

/**
 * The `Accept` header for manifest requests: the four types kimg understands, like containerd's
 * resolver (containerd adds `*\/*`; kimg does not, so a registry that would answer schema 1 is told no).
 */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
].join(', ');

export function isManifestMediaType(t: string | undefined): boolean {
  return t !== undefined && MANIFEST_MEDIA_TYPES.includes(t);
}
export function isIndexMediaType(t: string | undefined): boolean {
  return t !== undefined && INDEX_MEDIA_TYPES.includes(t);
}
