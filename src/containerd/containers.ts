/**
 * Which image a containerd container uses, for image garbage collection's "in use".
 *
 * The kubelet's image GC keeps the image of every container the runtime knows, running or not, and
 * names it by the image id the runtime reports for the container (kubernetes
 * `pkg/kubelet/images/image_gc_manager.go` detectImages). containerd's CRI plugin records that id in
 * the container's metadata extension (`io.cri-containerd.container.metadata`, JSON
 * `{"Version":"v1","Metadata":{…,"ImageRef":"sha256:<config digest>"}}`; containerd
 * `pkg/cri/store/container/metadata.go`), while the container record's `image` field holds the name
 * the image had when the container was created. The id is preferred: a tag that moved since then
 * names another image. Containers made without the CRI plugin (`ctr run`, other clients) have only the
 * name, so the name is used for them. The limit that leaves: such a container whose tag has since moved
 * keeps the tag's new image in use, not the one it runs (GC may then remove the latter's records; its
 * snapshots stay, held by the container, as containerd's own GC holds them).
 */
import type { ContainerdContainer } from './client.js';

/** Where containerd's CRI plugin keeps a container's metadata (containerd `pkg/cri/server/helpers.go`). */
export const CRI_CONTAINER_METADATA_EXTENSION = 'io.cri-containerd.container.metadata';

/** A CRI metadata document is a few KiB; a larger one is not read (the name is used instead). */
const MAX_CRI_METADATA_BYTES = 1024 * 1024;

const IMAGE_ID = /^sha256:[a-f0-9]{64}$/;

/**
 * The image `c` uses, as image GC's in-use input takes it: the image id from the CRI plugin's metadata
 * when present and well-formed, else the record's image name; `undefined` for a container without
 * either (created from no image).
 */
export function containerImageInUse(
  c: Pick<ContainerdContainer, 'image' | 'extensions'>,
): string | undefined {
  const ext = c.extensions[CRI_CONTAINER_METADATA_EXTENSION];
  if (ext !== undefined && ext.value.byteLength <= MAX_CRI_METADATA_BYTES) {
    const ref = criImageRef(Buffer.from(ext.value.buffer, ext.value.byteOffset, ext.value.byteLength));
    if (ref !== undefined) return ref;
  }
  return c.image !== '' ? c.image : undefined;
}

function criImageRef(json: Buffer): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(json.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const meta = (doc as { Metadata?: unknown }).Metadata;
  if (typeof meta !== 'object' || meta === null) return undefined;
  const ref = (meta as { ImageRef?: unknown }).ImageRef;
  return typeof ref === 'string' && IMAGE_ID.test(ref) ? ref : undefined;
}
