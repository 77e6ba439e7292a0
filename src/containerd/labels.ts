/**
 * The labels containerd's own pull puts on content and image records, computed the same way so that
 * containerd's garbage collector and its CRI plugin treat what kimg writes exactly like what
 * containerd pulled itself.
 *
 * GC (containerd `metadata/gc.go`): an image record's target is a root; from there the collector
 * follows content labels `containerd.io/gc.ref.content[.<anything>]` (value: a digest) and snapshot
 * labels `containerd.io/gc.ref.snapshot.<snapshotter>` (value: a snapshot key). A blob nobody refers to
 * and no live lease holds is removed at the next collection. So every parent blob names its children:
 * - index → each manifest entry: `containerd.io/gc.ref.content.m.<i>` (all entries, fetched or not);
 * - manifest → config: `containerd.io/gc.ref.content.config`;
 * - manifest → each layer: `containerd.io/gc.ref.content.l.<i>`;
 * - anything else: `containerd.io/gc.ref.content.<i>`.
 * A prefix ending in `.` always takes the counter; `config` takes it from its second use on
 * (`config`, `config1`); counters run per prefix within one parent, in child order
 * (containerd `images/mediatypes.go` ChildGCLabels, `images/handlers.go` SetChildrenMappedLabels).
 *
 * Also from containerd's pull: `containerd.io/distribution.source.<host>=<repo>[,<repo>…]` on every
 * fetched blob (sorted, de-duplicated; left out past the 4096-byte label limit; `remotes/docker/handler.go`),
 * where `<host>` is the host of the image's name without its port (Go's `url.Hostname()`: a pull of
 * `127.0.0.1:5000/app` labels `…distribution.source.127.0.0.1`), whichever endpoint (a `hosts.toml`
 * mirror) served the blob,
 * `containerd.io/uncompressed=<diffID>` on each layer after unpack and
 * `containerd.io/gc.ref.snapshot.<snapshotter>=<top chain ID>` on the config (`unpacker.go`).
 */
import { MediaType } from '../oci/index.js';

export const LABEL_GC_REF_CONTENT = 'containerd.io/gc.ref.content';
export const LABEL_GC_REF_SNAPSHOT = 'containerd.io/gc.ref.snapshot';
export const LABEL_GC_EXPIRE = 'containerd.io/gc.expire';
export const LABEL_UNCOMPRESSED = 'containerd.io/uncompressed';
export const LABEL_DISTRIBUTION_SOURCE = 'containerd.io/distribution.source';
export const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';
/** containerd's CRI plugin marks the image records it manages with this label (value `managed`). */
export const LABEL_CRI_IMAGE = 'io.cri-containerd.image';
/** The pinned label of containerd's CRI plugin (value `pinned`), set on the sandbox image. */
export const LABEL_CRI_PINNED = 'io.cri-containerd.pinned';
/** containerd's limit on a label's key plus value (containerd `labels/validate.go`). */
export const MAX_LABEL_BYTES = 4096;

/** Whether a media type is one containerd treats as a layer (`images.IsLayerType`). */
export function isLayerMediaType(t: string): boolean {
  return (
    t.startsWith('application/vnd.oci.image.layer.') ||
    t.startsWith('application/vnd.docker.image.rootfs.') ||
    t === 'application/vnd.docker.image.rootfs.diff.tar' ||
    t.startsWith('application/vnd.docker.image.rootfs.foreign.')
  );
}

/** The GC label prefix a child of this media type gets from its parent. */
function childPrefix(mediaType: string): string {
  switch (mediaType) {
    case MediaType.DockerManifest:
    case MediaType.OciManifest:
    case MediaType.DockerManifestList:
    case MediaType.OciIndex:
      return `${LABEL_GC_REF_CONTENT}.m.`;
    case MediaType.DockerConfig:
    case MediaType.OciConfig:
    case 'application/vnd.containerd.container.checkpoint.config.v1+proto':
      return `${LABEL_GC_REF_CONTENT}.config`;
    default:
      return isLayerMediaType(mediaType) ? `${LABEL_GC_REF_CONTENT}.l.` : `${LABEL_GC_REF_CONTENT}.`;
  }
}

/**
 * The GC labels a parent blob carries for its children (`children` in containerd's order: config then
 * layers for a manifest, `manifests[]` for an index).
 */
export function childGcLabels(
  children: readonly { mediaType: string; digest: string }[],
): Record<string, string> {
  const counters = new Map<string, number>();
  const out: Record<string, string> = {};
  for (const c of children) {
    const prefix = childPrefix(c.mediaType);
    const n = counters.get(prefix) ?? 0;
    counters.set(prefix, n + 1);
    const key = prefix.endsWith('.') ? `${prefix}${n}` : n === 0 ? prefix : `${prefix}${n}`;
    out[key] = c.digest;
  }
  return out;
}

/** The children of a manifest or index document, in containerd's order. */
export function childrenOf(doc: {
  config?: { mediaType: string; digest: string };
  layers?: readonly { mediaType: string; digest: string }[];
  manifests?: readonly { mediaType: string; digest: string }[];
}): { mediaType: string; digest: string }[] {
  if (Array.isArray(doc.manifests))
    return doc.manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest }));
  const out: { mediaType: string; digest: string }[] = [];
  if (doc.config) out.push({ mediaType: doc.config.mediaType, digest: doc.config.digest });
  for (const l of doc.layers ?? []) out.push({ mediaType: l.mediaType, digest: l.digest });
  return out;
}

/**
 * The host a distribution-source label key names for a reference's `domain` (`host[:port]`): the
 * domain without its port and without IPv6 brackets, as Go's `url.Hostname()` of `dummy://<domain>`
 * (containerd `remotes/docker/handler.go`), so `127.0.0.1:5000` → `127.0.0.1`, `[::1]:5000` → `::1`.
 */
function distributionSourceHost(domain: string): string {
  let host = domain;
  const colon = host.lastIndexOf(':');
  if (colon !== -1 && /^:\d*$/.test(host.slice(colon))) host = host.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host;
}

/**
 * The distribution-source label for a blob of the image named `domain`/`repo` (the reference's domain,
 * `host[:port]`, whatever mirror served it), merged with the value the blob already carries
 * (`existing`, comma-joined repos). Undefined when nothing changes or the label would exceed
 * containerd's size limit.
 */
export function distributionSourceLabel(
  domain: string,
  repo: string,
  existing: Record<string, string> = {},
): { key: string; value: string } | undefined {
  const key = `${LABEL_DISTRIBUTION_SOURCE}.${distributionSourceHost(domain)}`;
  const old = existing[key];
  const repos = new Set((old ?? '').split(',').filter((r) => r !== ''));
  if (repos.has(repo)) return undefined;
  repos.add(repo);
  const value = [...repos].sort().join(',');
  if (Buffer.byteLength(key) + Buffer.byteLength(value) > MAX_LABEL_BYTES) return undefined;
  return { key, value };
}

/** The lease label making a lease expire (RFC 3339, like containerd's `leases.WithExpiration`). */
export function leaseExpiryLabels(now: Date, ttlMs: number): Record<string, string> {
  return { [LABEL_GC_EXPIRE]: new Date(now.getTime() + ttlMs).toISOString().replace(/\.\d{3}Z$/, 'Z') };
}
