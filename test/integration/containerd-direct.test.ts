/**
 * kimg writing blob bytes into containerd's content directory itself and recording them through the
 * content Write protocol without their bytes (src/containerd `direct-content.ts`), against a real
 * containerd 1.6 (CRI plugin, overlayfs) and a real registry:
 * - the blobs land as containerd's own would (read-only files under `blobs/sha256`, every one hashing to
 *   its digest), labelled, listed by containerd, unpacked, and containerd's CRI reports the same image as
 *   after its own PullImage; nothing is left in kimg's staging area;
 * - a pull cancelled mid-layer keeps kimg's partial write (containerd's GC leaves it alone), and the
 *   next pull resumes it;
 * - with containerd's `isolated` content policy containerd does not record a blob it did not write:
 *   kimg notices, sends those bytes through the protocol and writes the rest through it too;
 * - `directWrite: false` sends every byte through the protocol.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ContainerdClient,
  openDirectContent,
  pullIntoContainerd,
  type ContainerdPullOptions,
} from '../../src/containerd/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { isKimgError } from '../../src/errors/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const NS = 'k8s.io';

function contentRoot(ctrd: StartedContainerd): string {
  return join(ctrd.root, 'io.containerd.content.v1.content');
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** kimg's staging area in containerd's content directory: bytes of each partial write. */
async function staged(ctrd: StartedContainerd): Promise<number[]> {
  const dir = join(contentRoot(ctrd), 'blobs', 'kimg-ingest');
  const out: number[] = [];
  for (const name of await readdir(dir).catch(() => [])) {
    const s = await stat(join(dir, name, 'data')).catch(() => undefined);
    if (s !== undefined) out.push(s.size);
  }
  return out;
}

describe('direct writes into containerd’s content directory', () => {
  let work = '';
  let reg: StartedRegistry;
  let img: GeneratedImage;
  let registry: RegistryClient;
  const started: { ctrd: StartedContainerd; client: ContainerdClient; cri: CriImageService }[] = [];

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    work = await makeTempDir('ctrd-direct-');
    const r = startRegistry({ mode: 'plain' });
    img = await generateImage(join(work, 'img'), {
      name: 'ctrd-direct',
      layers: [{ size: 6 * MiB }, { size: 16 * MiB }, { size: 3 * MiB }],
    });
    reg = await r;
    await skopeoPush(img, reg, 'img:1');
    registry = new RegistryClient({ plainHttp: [reg.host] });
  });

  after(async () => {
    for (const s of started) {
      s.client.close();
      s.cri.close();
      await s.ctrd.stop();
    }
    await registry?.close().catch(() => undefined);
    await reg?.stop();
    if (work) await removeTempDir(work);
  });

  async function containerd(
    policy: 'shared' | 'isolated' = 'shared',
  ): Promise<{ ctrd: StartedContainerd; client: ContainerdClient; cri: CriImageService }> {
    const ctrd = await startContainerd({ plainHttpRegistries: [reg.host], contentSharingPolicy: policy });
    const s = {
      ctrd,
      client: new ContainerdClient({ address: ctrd.socket }),
      cri: new CriImageService({ endpoint: ctrd.address }),
    };
    started.push(s);
    return s;
  }

  const pull = (
    client: ContainerdClient,
    ctrd: StartedContainerd,
    extra: Partial<ContainerdPullOptions> = {},
  ) =>
    pullIntoContainerd(`${reg.host}/img:1`, {
      client,
      registry,
      platform: 'linux/amd64',
      snapshotter: ctrd.snapshotter,
      ...extra,
    });

  const blobsOf = (g: GeneratedImage): string[] => {
    const m = g.manifests[0]!;
    return [m.config.digest, ...m.layers.map((l) => l.digest)];
  };

  test('blobs land as containerd’s own; containerd records, labels and unpacks them; CRI sees its own image', async () => {
    const { ctrd, client, cri } = await containerd();
    const direct = await openDirectContent(client);
    assert.equal(direct.state.usable, true, JSON.stringify(direct.state));
    const r = await pull(client, ctrd);
    assert.equal(r.stats.blobsWrittenDirect, blobsOf(img).length, JSON.stringify(r.stats));
    assert.equal(r.unpacked, true);
    for (const d of blobsOf(img)) {
      const file = join(contentRoot(ctrd), 'blobs', 'sha256', d.slice(7));
      const st = await stat(file);
      assert.equal(st.mode & 0o777, 0o444, `${d}: containerd's blobs are read-only`);
      assert.equal(await sha256File(file), d);
      const info = await client.contentInfo(d);
      assert.ok(info, `containerd does not list ${d}`);
      assert.ok(
        Object.keys(info.labels).some((k) => k.startsWith('containerd.io/distribution.source.')),
        `${d} has no distribution source label: ${JSON.stringify(info.labels)}`,
      );
    }
    assert.deepEqual(await staged(ctrd), [], 'nothing left in the staging area');
    assert.deepEqual(
      (await client.leaseList()).filter((l) => l.id.startsWith('kimg-')),
      [],
    );
    // containerd's CRI sees the image it would have pulled itself.
    let status = await cri.imageStatus({ image: `${reg.host}/img:1` });
    for (let i = 0; i < 200 && status === undefined; i++) {
      await new Promise((res) => setTimeout(res, 50));
      status = await cri.imageStatus({ image: `${reg.host}/img:1` });
    }
    assert.equal(status?.id, img.manifests[0]!.config.digest);
    assert.deepEqual(status?.repoDigests, [`${reg.host}/img@${img.digest}`]);
    // A second pull writes nothing.
    const again = await pull(client, ctrd);
    assert.equal(again.stats.blobsWrittenDirect, 0);
    assert.equal(again.stats.bytesDownloaded, 0);
  });

  test('a cancelled pull keeps its partial write through a GC; the next pull resumes it', async () => {
    const { ctrd, client } = await containerd();
    const layer = img.manifests[0]!.layers[1]!;
    const ac = new AbortController();
    await assert.rejects(
      pull(client, ctrd, {
        signal: ac.signal,
        progressIntervalMs: 0,
        onProgress: (e) => {
          if (e.type === 'bytes' && e.digest === layer.digest && e.completed > 4 * MiB) ac.abort();
        },
      }),
      (e: unknown) => isKimgError(e, 'ABORTED'),
    );
    const partial = await staged(ctrd);
    assert.ok(
      partial.some((b) => b > 0 && b < layer.size),
      `no partial write: ${JSON.stringify(partial)}`,
    );
    // A synchronous collection (deleting any lease with sync runs one) leaves kimg's staging alone.
    await client.leaseCreate('gc-now', {});
    await client.leaseDelete('gc-now', { sync: true });
    assert.deepEqual(await staged(ctrd), partial);
    const r = await pull(client, ctrd);
    // Every layer cut short by the cancel (up to three download at once) is resumed.
    assert.ok(
      r.stats.blobsResumed >= 1 && r.stats.blobsResumed === partial.filter((b) => b > 0).length,
      JSON.stringify({ stats: r.stats, partial }),
    );
    assert.ok(r.stats.bytesDownloaded < img.blobBytes, JSON.stringify(r.stats));
    assert.deepEqual(await staged(ctrd), []);
    for (const d of blobsOf(img)) assert.ok(await client.contentInfo(d), `${d} missing`);
  });

  test('isolated content policy: containerd does not record what kimg placed; kimg sends the bytes instead', async () => {
    const { ctrd, client, cri } = await containerd('isolated');
    const r = await pull(client, ctrd);
    // The first blob was written directly, then (containerd not seeing it) sent through the protocol;
    // every later blob went through the protocol.
    assert.ok(r.stats.blobsWrittenDirect <= 1, JSON.stringify(r.stats));
    const direct = await openDirectContent(client);
    assert.equal(direct.state.usable, false);
    for (const d of blobsOf(img)) {
      const info = await client.contentInfo(d);
      assert.equal(
        info?.size,
        [img.manifests[0]!.config, ...img.manifests[0]!.layers].find((x) => x.digest === d)?.size,
      );
      assert.equal(await sha256File(join(contentRoot(ctrd), 'blobs', 'sha256', d.slice(7))), d);
    }
    let status = await cri.imageStatus({ image: `${reg.host}/img:1` });
    for (let i = 0; i < 200 && status === undefined; i++) {
      await new Promise((res) => setTimeout(res, 50));
      status = await cri.imageStatus({ image: `${reg.host}/img:1` });
    }
    assert.equal(status?.id, img.manifests[0]!.config.digest);
    const active = (await ctrd.ctr(['content', 'active'], { namespace: NS })).stdout;
    assert.doesNotMatch(active, /layer-sha256/);
  });

  test('directWrite: false sends every byte through the content Write protocol', async () => {
    const { ctrd, client } = await containerd();
    const r = await pull(client, ctrd, { directWrite: false });
    assert.equal(r.stats.blobsWrittenDirect, 0);
    assert.ok(r.stats.blobsDownloaded >= blobsOf(img).length);
    assert.deepEqual(await staged(ctrd), []);
    for (const d of blobsOf(img)) assert.ok(await client.contentInfo(d), `${d} missing`);
  });
});
