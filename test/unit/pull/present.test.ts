/**
 * The pull pipeline's `present` hook (src/store `target.ts`): once the reference is resolved and the
 * config is readable from the target, a target that answers a record ends the pull there — no lease,
 * no writer, no blob request — with the record the full path writes; a target that answers undefined
 * or fails, or lacks the config, gets the ordinary path; a single-platform image for another platform
 * fails as on the ordinary path. The target is kimg's own store, wrapped to record the seam's calls.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isKimgError } from '../../../src/errors/index.js';
import { MediaType } from '../../../src/oci/index.js';
import { pullImage } from '../../../src/pull/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import {
  openStore,
  type ImageRecord,
  type PullTarget,
  type ResolvedPull,
  type Store,
} from '../../../src/store/index.js';
import { bytes, sha256, startFaultServer, type FaultServer } from '../../helpers/fault-server.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

let dir: string;
let store: Store;
let fault: FaultServer;
let registry: RegistryClient;

const layer = bytes(3000, 7);
const config = Buffer.from(
  JSON.stringify({
    architecture: 'arm64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
    config: {},
  }),
);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
    layers: [{ mediaType: MediaType.OciLayerGzip, digest: sha256(layer), size: layer.length }],
  }),
);

before(async () => {
  dir = await makeTempDir('pull-present-');
  store = await openStore({ root: dir });
  fault = await startFaultServer();
  fault.route('GET', '/v2/app/manifests/1', (_req, res) => {
    res.writeHead(200, { 'content-type': MediaType.OciManifest }).end(manifest);
  });
  for (const blob of [config, layer]) {
    fault.route('GET', `/v2/app/blobs/${sha256(blob)}`, (_req, res) => {
      res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
    });
  }
  registry = new RegistryClient({ plainHttp: [fault.host] });
});
after(async () => {
  await registry.close();
  await store.close();
  await fault.close();
  await removeTempDir(dir);
});

/** The store as a target with a `present` answer, recording the seam calls made. */
function target(answer: (image: ResolvedPull) => Promise<ImageRecord | undefined>) {
  const calls: string[] = [];
  const asked: ResolvedPull[] = [];
  const t: PullTarget = {
    content: {
      readBlob: (d, o) => (calls.push('readBlob'), store.content.readBlob(d, o)),
      writer: (o) => (calls.push('writer'), store.content.writer(o)),
      writeBlob: (d, e) => (calls.push('writeBlob'), store.content.writeBlob(d, e)),
    },
    images: {
      get: (k) => (calls.push('get'), store.images.get(k)),
      put: (r) => (calls.push('put'), store.images.put(r)),
    },
    lease: (h) => (calls.push('lease'), store.lease(h)),
    present: (image) => {
      calls.push('present');
      asked.push(image);
      return answer(image);
    },
  };
  return { t, calls, asked };
}

const image = () => `${fault.host}/app:1`;
const pull = (t: PullTarget, platform = 'linux/arm64') =>
  pullImage(image(), { store: t, registry, platform });
const blobRequests = () => fault.requests.filter((r) => r.path.includes('/blobs/')).length;
const timeless = ({ pulledAt: _p, lastUsed: _l, ...rest }: ImageRecord) => rest;

test('without the config in the target, present is not asked; the ordinary path pulls', async () => {
  const { t, calls } = target(() => Promise.reject(new Error('must not be asked')));
  const r = await pull(t);
  assert.ok(!calls.includes('present'));
  assert.ok(calls.includes('lease') && calls.includes('put'));
  assert.equal(r.stats.blobsDownloaded, 2);
});

test('a record in answer ends the pull: no lease, no write, no blob request; the full path’s record', async () => {
  const full = await pull(target(() => Promise.resolve(undefined)).t);
  const { t, calls, asked } = target((img) => Promise.resolve(img.record));
  const blobs = blobRequests();
  const events: string[] = [];
  const r = await pullImage(image(), {
    store: t,
    registry,
    platform: 'linux/arm64',
    onProgress: (e) => events.push(e.type),
  });
  assert.deepEqual(calls, ['readBlob', 'get', 'present']);
  assert.equal(blobRequests(), blobs);
  assert.deepEqual(events, ['resolved', 'committed']);
  assert.deepEqual(timeless(r.record), timeless(full.record));
  assert.deepEqual(timeless(asked[0]!.record), timeless(full.record));
  assert.equal(asked[0]!.config.architecture, 'arm64');
  assert.equal(asked[0]!.index, undefined);
  assert.deepEqual(r.stats, { ...r.stats, blobsDownloaded: 0, blobsReused: 2, bytesDownloaded: 0 });
});

test('undefined or a failure in answer: the ordinary path, nothing downloaded again', async () => {
  for (const answer of [() => Promise.resolve(undefined), () => Promise.reject(new Error('boom'))]) {
    const { t, calls } = target(answer);
    const r = await pull(t);
    assert.deepEqual(calls.slice(0, 4), ['readBlob', 'get', 'present', 'lease']);
    assert.ok(calls.includes('put'));
    assert.equal(r.stats.blobsDownloaded, 0);
  }
});

test('a single-platform image for another platform fails as on the ordinary path, present or not', async () => {
  const { t, calls } = target((img) => Promise.resolve(img.record));
  await assert.rejects(pull(t, 'linux/amd64'), (e) => isKimgError(e, 'PLATFORM_NOT_FOUND'));
  assert.ok(!calls.includes('present') && !calls.includes('lease'));
});
