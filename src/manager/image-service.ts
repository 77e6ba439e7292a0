/**
 * The image manager's view of an image service: the CRI `ImageService` RPCs the kubelet uses
 * (ImageStatus, PullImage, ListImages, RemoveImage, ImageFsInfo), in domain types. Both kimg's own
 * store and a CRI client talking to containerd implement it, so the manager runs unchanged on either.
 *
 * Contract (CRI conventions, cri-api `api.proto` and containerd's server):
 * - `imageStatus` of an absent image resolves `undefined` (not an error); a present image has a
 *   non-empty `id` and a `size` > 0 (the kubelet treats anything else as an inspect error).
 * - `pullImage` resolves the image ref, which equals `ImageInfo.id` (containerd: the config digest).
 * - `removeImage` is idempotent: removing an absent image succeeds.
 * - With the `RuntimeClassInImageCriApi` gate on, `ImageSpec.runtimeHandler` is part of the image's
 *   identity: the same image pulled for two handlers is two images, and status/remove address one pair.
 * - Failures are KimgErrors with codes from `src/errors/codes.ts`; the manager derives container
 *   reasons from the code, never from the message.
 *
 * Credentials come in as candidates in the kubelet's order (pod Secrets, node docker config, exec
 * plugins); the shape matches `CredentialMatch` from the credentials keyring.
 *
 * Source: cri-api `pkg/apis/runtime/v1/api.proto` @ 791729b2; kubernetes
 * `pkg/kubelet/kuberuntime/kuberuntime_image.go` (GetImageRef, GetImageSize, PullImage's credential
 * loop), cri-client `pkg/remote_image.go` (the id/size and image-ref checks); see docs/design/upstream-parity.md.
 */
import type { AuthConfig } from '../credentials/index.js';

/** CRI `ImageSpec`: the image as the kubelet names it (tag-defaulted, never normalized). */
export interface ImageSpec {
  /** `busybox:latest`, `registry.example/app@sha256:…`, or an image id. */
  image: string;
  /** The runtime handler; sent only when the `RuntimeClassInImageCriApi` gate is on. */
  runtimeHandler?: string;
  /** The pod's annotations (the kubelet sends all of them). */
  annotations?: Record<string, string>;
}

/** CRI `Image`: what the image service knows about a present image. */
export interface ImageInfo {
  /** The image id; equals the ref `pullImage` returned (containerd: the config digest). */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Bytes; must be > 0. */
  size: number;
  /** Never removed by image GC (the sandbox image, for example). */
  pinned: boolean;
  /** From the config's `User` when it is numeric. */
  uid?: number;
  /** From the config's `User` when it is a name. */
  username?: string;
  /** The spec the image is known under, including its runtime handler. */
  spec?: ImageSpec;
}

/** The sandbox a pull is for (the parts of CRI `PodSandboxConfig` an image service may read). */
export interface PodSandboxInfo {
  name: string;
  namespace: string;
  uid: string;
  attempt?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** CRI `FilesystemUsage` of the image filesystem. */
export interface ImageFsUsage {
  /** Nanoseconds since the epoch. */
  timestamp: number;
  mountpoint: string;
  usedBytes: number;
  inodesUsed?: number;
}

/** Per-call options of the image service. */
export interface ImageServiceCallOptions {
  signal?: AbortSignal;
}

/** An image service (see the module comment for the contract). */
export interface ImageService {
  /** The image's status; `undefined` when absent. */
  imageStatus(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<ImageInfo | undefined>;
  /** Pulls with `auth` (undefined = anonymous); resolves the image ref. */
  pullImage(
    spec: ImageSpec,
    auth: AuthConfig | undefined,
    sandbox?: PodSandboxInfo,
    options?: ImageServiceCallOptions,
  ): Promise<string>;
  /** Every present image (one entry per image and runtime handler when handlers are in use). */
  listImages(options?: ImageServiceCallOptions): Promise<ImageInfo[]>;
  /** Removes the image (by id or name, for `spec.runtimeHandler` when given); absent = success. */
  removeImage(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<void>;
  /** The image filesystem(s), first one authoritative. Optional. */
  imageFsInfo?(options?: ImageServiceCallOptions): Promise<ImageFsUsage[]>;
}

/** Where a credential came from; compatible with the keyring's `CredentialSource`. Never a secret. */
export interface CredentialCandidateSource {
  /** `secret`, `service-account`, `node`, `flag`, `plugin`. */
  kind: string;
  namespace?: string;
  name?: string;
  uid?: string;
  file?: string;
  plugin?: string;
  serviceAccount?: string;
}

/** One credential to try, in the kubelet's order; compatible with the keyring's `CredentialMatch`. */
export interface CredentialCandidate {
  /** The keyring key that matched (`index.docker.io`, `registry.example/team`): safe to print. */
  key: string;
  auth: AuthConfig;
  source?: CredentialCandidateSource;
}

/** The pod facts the image manager uses. */
export interface PodInfo {
  name: string;
  namespace: string;
  uid: string;
  annotations?: Record<string, string>;
  serviceAccountName?: string;
}

/**
 * Finds the credentials for `image` (the normalized repository without tag, `docker.io/library/nginx`,
 * as the kubelet looks it up) for `pod`, in the order to try them. Called at most once per
 * `ensureImageExists`, and only when a pull is needed. Errors are returned to the caller as they are.
 */
export type CredentialResolver = (image: string, pod: PodInfo) => Promise<CredentialCandidate[]>;

/** The kubelet image GC's key for an image: `<id>` or, with a runtime handler, `<id>,<handler>`. */
export function imageRecordKey(id: string, runtimeHandler?: string): string {
  return runtimeHandler === undefined || runtimeHandler === '' ? id : `${id},${runtimeHandler}`;
}
