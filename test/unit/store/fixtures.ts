/**
 * Small fixtures for the store tests: a store in a temp dir, and tiny images written straight through
 * the content store (manifest + config + layers of random bytes), so record/GC/verify tests need no
 * registry and no layout generator.
 */
import { createHash, randomBytes } from 'node:crypto';
import { MediaType, type ImageIndex } from '../../../src/oci/index.js';
import { openStore, type ImageRecord, type OpenStoreOptions, type Store } from '../../../src/store/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

export function sha256(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** A store in a fresh temp dir; `cleanup()` closes it and removes the dir. */
export async function tempStore(
  options: Omit<OpenStoreOptions, 'root'> = {},
): Promise<{ store: Store; root: string; cleanup: () => Promise<void> }> {
  const root = await makeTempDir('store-');
  const store = await openStore({ ...options, root });
  let done = false;
  return {
    store,
    root,
    cleanup: async () => {
      if (done) return;
      done = true;
      await store.close();
      await removeTempDir(root);
    },
  };
}

export interface TinyImage {
  record: ImageRecord;
  manifest: Buffer;
  config: Buffer;
  layers: Buffer[];
  index?: Buffer;
}

/**
 * Writes a tiny image's blobs (and, with `platforms`, an index whose other children are absent) and
 * returns the record to `put` (not yet stored unless `put` is true).
 */
export async function addTinyImage(
  store: Store,
  name: string,
  opts: {
    layers?: number;
    layerSize?: number;
    docker?: boolean;
    put?: boolean;
    runtimeHandler?: string;
    sharedLayer?: Buffer;
    index?: boolean;
  } = {},
): Promise<TinyImage> {
  const layers: Buffer[] = Array.from({ length: opts.layers ?? 2 }, () =>
    randomBytes(opts.layerSize ?? 1024),
  );
  if (opts.sharedLayer) layers.push(opts.sharedLayer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) },
      nonce: randomBytes(8).toString('hex'),
    }),
  );
  const layerType = opts.docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip;
  const manifestType = opts.docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: {
        mediaType: opts.docker ? MediaType.DockerConfig : MediaType.OciConfig,
        digest: sha256(config),
        size: config.length,
      },
      layers: layers.map((l) => ({ mediaType: layerType, digest: sha256(l), size: l.length })),
    }),
  );
  for (const b of [...layers, config, manifest]) await store.content.writeBlob(b);
  let index: Buffer | undefined;
  if (opts.index) {
    const idx: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: manifestType,
          digest: sha256(manifest),
          size: manifest.length,
          platform: { os: 'linux', architecture: 'amd64' },
        },
        {
          mediaType: manifestType,
          digest: sha256('absent child'),
          size: 12,
          platform: { os: 'linux', architecture: 'arm64' },
        },
      ],
    };
    index = Buffer.from(JSON.stringify(idx));
    await store.content.writeBlob(index);
  }
  const now = new Date().toISOString();
  const record: ImageRecord = {
    name,
    runtimeHandler: opts.runtimeHandler ?? '',
    digest: index ? sha256(index) : sha256(manifest),
    mediaType: index ? MediaType.OciIndex : manifestType,
    manifestDigest: sha256(manifest),
    manifestMediaType: manifestType,
    manifestSize: manifest.length,
    ...(index ? { indexDigest: sha256(index) } : {}),
    imageId: sha256(config),
    size: (index?.length ?? 0) + manifest.length + config.length + layers.reduce((a, l) => a + l.length, 0),
    platform: { os: 'linux', architecture: 'amd64' },
    layers: layers.map((l) => ({ mediaType: layerType, digest: sha256(l), size: l.length })),
    pulledAt: now,
    lastUsed: now,
    source: 'pull',
  };
  if (opts.put) await store.images.put(record);
  return { record, manifest, config, layers, ...(index ? { index } : {}) };
}
