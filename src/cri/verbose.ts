/**
 * The `info` map of a verbose CRI ImageStatus for images in kimg's store, in containerd's shape: one
 * key `info` whose value is the JSON document `{"chainID": "...", "imageSpec": <the OCI image config>}`
 * (containerd `internal/cri/server/images/image_status.go`, `toCRIImageInfo`). The chain id is the OCI
 * image-spec ChainID of the config's `rootfs.diff_ids` (`config.md`, "Layer ChainID"):
 * ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
 */
import { createHash } from 'node:crypto';
import type { ImageInfo } from '../manager/index.js';
import type { Store } from '../store/index.js';
import { MAX_CONFIG_BYTES } from '../oci/index.js';

/** OCI ChainID of a list of layer diff ids ('' for none). */
export function chainId(diffIds: readonly string[]): string {
  let chain = '';
  for (const d of diffIds) {
    chain = chain === '' ? d : `sha256:${createHash('sha256').update(`${chain} ${d}`).digest('hex')}`;
  }
  return chain;
}

/**
 * A `verboseInfo` callback for `startCriServer` reading the image's config (its id) from `store`.
 * @throws KimgError store codes (`BLOB_NOT_FOUND`, `STORE_IO`) when the config cannot be read.
 */
export function storeVerboseInfo(store: Store): (image: ImageInfo) => Promise<Record<string, string>> {
  return async (image): Promise<Record<string, string>> => {
    const text = (await store.content.readBlob(image.id, { maxBytes: MAX_CONFIG_BYTES })).toString('utf8');
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch {
      return {};
    }
    const diffIds = (config as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
    const ids = Array.isArray(diffIds) ? diffIds.filter((d): d is string => typeof d === 'string') : [];
    return { info: JSON.stringify({ chainID: chainId(ids), imageSpec: config }) };
  };
}
