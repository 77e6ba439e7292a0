/**
 * The kubelet's two uses of the reference grammar: kubernetes `pkg/util/parsers/parsers.go`
 * (`ParseImageName`) and `pkg/kubelet/images/image_manager.go` (`applyDefaultImageTag`).
 *
 * The kubelet validates and tag-defaults the container's `image` string but never sends a normalized name
 * over CRI: `busybox` becomes `busybox:latest`, not `docker.io/library/busybox:latest`. The runtime
 * normalizes. Both functions always use docker.io semantics, as the kubelet does.
 */
import { KimgError, quote } from '../errors/index.js';
import { failureError, isFailure } from './failure.js';
import { DEFAULT_REGISTRY, DEFAULT_TAG, parseNormalizedResult } from './parse.js';

/** What `parseImageName` returns: the normalized repository, the tag and the digest. */
export interface ImageName {
  /** The normalized repository name without tag or digest (`docker.io/library/nginx`). */
  readonly repo: string;
  /** The tag; `latest` when the image has neither tag nor digest; undefined for a digest without tag. */
  readonly tag: string | undefined;
  /** The digest, if the image has one. */
  readonly digest: string | undefined;
}

/**
 * kubernetes `parsers.ParseImageName`: normalizes `image` (docker.io semantics) and returns repo, tag and
 * digest, with tag `latest` when neither tag nor digest is given.
 *
 * @throws KimgError with the reference code (`INVALID_REFERENCE_FORMAT`, `NAME_CONTAINS_UPPERCASE`, …)
 *   and the message `couldn't parse image name "<image>": <upstream error>`.
 */
export function parseImageName(image: string): ImageName {
  const r = parseNormalizedResult(image, { defaultRegistry: DEFAULT_REGISTRY });
  if (isFailure(r)) {
    // Exactly the kubelet's text; the hint stays on the cause.
    throw new KimgError(r.code, `couldn't parse image name ${quote(image)}: ${r.text}`, {
      input: image,
      cause: failureError(r, image),
    });
  }
  const { name, tag, digest } = r;
  return Object.freeze({
    repo: name,
    tag: tag === undefined && digest === undefined ? DEFAULT_TAG : tag,
    digest,
  });
}

/**
 * kubelet `applyDefaultImageTag`: when `image` has no digest and does not already end in `:<tag>`,
 * appends `:<tag>` (that is `:latest`) to the ORIGINAL string. `busybox` → `busybox:latest`;
 * `busybox:1.36`, `busybox@sha256:…` and `busybox:1.36@sha256:…` are returned unchanged. The result is
 * what the kubelet sends as CRI `ImageSpec.image`.
 *
 * @throws KimgError as `parseImageName` (the manager reports it as `InvalidImageName`).
 */
export function applyDefaultTag(image: string): string {
  const { tag, digest } = parseImageName(image);
  if (digest === undefined && tag !== undefined && tag !== '' && !image.endsWith(`:${tag}`)) {
    return `${image}:${tag}`;
  }
  return image;
}

/** True when `image` parses (kubelet semantics). Never throws. */
export function isValidImageName(image: unknown): image is string {
  return typeof image === 'string' && !isFailure(parseNormalizedResult(image));
}
