/**
 * Finding stored images from user input, the way crictl/containerd accept it: a reference (normalized
 * like containerd's `ParseDockerRef`, `busybox` → `docker.io/library/busybox:latest`), or an image id (config digest,
 * `sha256:<hex>`, or a hex prefix of at least 4 characters, like `crictl rmi 7439649f`).
 *
 * A repo digest names the image however it was pulled: containerd's CRI writes a `<repo>@<digest>`
 * record next to the tag record on every pull (containerd `internal/cri/server/images/image_pull.go`),
 * so `REG/repo@sha256:<top digest>` finds an image pulled as `REG/repo:tag`. kimg keeps one record per
 * pulled name and matches the repo digest against the records' repository and top-level digest instead.
 */
import { tryParseReference, type Reference } from '../reference/index.js';
import { KimgError, quote } from '../errors/index.js';
import { repositoryOfName } from './format.js';
import type { ImageStore } from './image-store.js';
import type { ImageRecord } from './records.js';

/**
 * The records a parsed reference names for `runtimeHandler`: the record of its pull name, else (for
 * a digest reference) every record of the same repository whose top-level digest is that digest.
 */
export async function recordsForReference(
  images: Pick<ImageStore, 'get' | 'list'>,
  ref: Reference,
  runtimeHandler = '',
): Promise<ImageRecord[]> {
  const exact = await images.get({ name: ref.pullRef, runtimeHandler });
  if (exact) return [exact];
  if (ref.digest === undefined) return [];
  return (await images.list()).filter(
    (r) =>
      r.runtimeHandler === runtimeHandler && r.digest === ref.digest && repositoryOfName(r.name) === ref.name,
  );
}

/**
 * The records `input` names for `runtimeHandler` (default `''`): the record of its canonical name if
 * there is one, else every record whose image id matches. Empty when nothing matches. Image-id matches
 * ignore the handler only when `anyHandler` is set.
 */
export async function lookupImages(
  images: ImageStore,
  input: string,
  options: { runtimeHandler?: string; anyHandler?: boolean } = {},
): Promise<ImageRecord[]> {
  const handler = options.runtimeHandler ?? '';
  const parsed = tryParseReference(input);
  if (parsed.ok) {
    const named = await recordsForReference(images, parsed.reference, handler);
    if (named.length > 0) return named;
  }
  const byId = await images.findByImageId(input);
  return options.anyHandler ? byId : byId.filter((r) => r.runtimeHandler === handler);
}

/** Like `lookupImages`, but exactly one image: `IMAGE_NOT_PRESENT` for none, `INVALID_ARGUMENT` when an id prefix is ambiguous. */
export async function lookupImage(
  images: ImageStore,
  input: string,
  options: { runtimeHandler?: string } = {},
): Promise<ImageRecord> {
  const found = await lookupImages(images, input, options);
  if (found.length === 0) {
    throw new KimgError(
      'IMAGE_NOT_PRESENT',
      `no such image ${quote(input)} in the local store: see \`kimg images\``,
      { input },
    );
  }
  const ids = new Set(found.map((r) => r.imageId));
  if (ids.size > 1) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `image id prefix ${quote(input)} is ambiguous: it matches ${[...ids].join(', ')}`,
      { input, items: [...ids] },
    );
  }
  return found[0] as ImageRecord;
}
