/**
 * The OCI data model kimg moves around: descriptors, manifests, indexes, image configs.
 * Source: opencontainers/image-spec `descriptor.md`, `manifest.md`, `image-index.md`, `config.md`.
 */

/** A platform as written in an index entry or an image config (image-spec `specs-go/v1/descriptor.go`). */
export interface OciPlatform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  features?: string[];
}

/** A content descriptor: what a manifest says about a blob or a child manifest. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: OciPlatform;
  artifactType?: string;
}

/** An image manifest (OCI or Docker schema 2; the fields kimg reads are shared). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An image index (OCI) or manifest list (Docker). */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** The parts of an image config kimg reads (image-spec `config.md`). */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  'os.version'?: string;
  variant?: string;
  created?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    Labels?: Record<string, string>;
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: unknown[];
}

/** The annotation naming an image inside an OCI layout's index.json. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
