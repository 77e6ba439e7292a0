/**
 * Image records as containerd's CRI plugin writes them on PullImage (containerd
 * `pkg/cri/server/image_pull.go`, `helpers.go` getRepoDigestAndTag), so the CRI plugin lists an image
 * kimg pulled with the same id, repo tags and repo digests as one it pulled itself:
 * - `sha256:<config digest>`: the image id (neither a tag nor a digest for CRI);
 * - `<name>:<tag>` when the reference (normalized like `ParseDockerRef`: a digest wins over a tag) is tagged;
 * - `<name>@<digest>`: the reference itself when it has a digest, else the name at the target digest.
 * All share one target (the index or manifest the reference named) and the label
 * `io.cri-containerd.image=managed`. A record that exists is updated (`target` and the labels that
 * differ), like CRI's createImageReference.
 */
import type { Reference } from '../reference/index.js';
import {
  containerdStatus,
  type ContainerdCallOptions,
  type ContainerdClient,
  type ContainerdDescriptor,
} from './client.js';

/** The record names CRI creates for a pull of `ref`, in CRI's order (id, tag, digest). */
export function criImageNames(ref: Reference, configDigest: string, targetDigest: string): string[] {
  const names = [configDigest];
  if (ref.digest !== undefined) names.push(`${ref.name}@${ref.digest}`);
  else {
    names.push(`${ref.name}:${ref.tag ?? 'latest'}`);
    names.push(`${ref.name}@${targetDigest}`);
  }
  return names;
}

/** Creates or updates each named record with `target` and `labels` (see the module comment). */
export async function putImageRecords(
  client: ContainerdClient,
  names: readonly string[],
  target: ContainerdDescriptor,
  labels: Record<string, string>,
  o?: ContainerdCallOptions,
): Promise<void> {
  for (const name of names) {
    const image = { name, labels, target };
    try {
      await client.imageCreate(image, o);
      continue;
    } catch (e) {
      if (containerdStatus(e) !== 'ALREADY_EXISTS') throw e;
    }
    const old = await client.imageGet(name, o);
    const differing = Object.keys(labels).filter((k) => old?.labels[k] !== labels[k]);
    if (old && old.target.digest === target.digest && differing.length === 0) continue;
    // Labels the record has and kimg does not set (another tool's) are kept.
    await client.imageUpdate(
      { name, labels: { ...(old?.labels ?? {}), ...labels }, target },
      ['target', ...differing.map((k) => `labels.${k}`)],
      o,
    );
  }
}
