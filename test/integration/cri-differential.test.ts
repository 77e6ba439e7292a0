/**
 * Differential CRI conformance: one table of CRI calls run through kimg's CRI client against two real
 * runtimes — a private **containerd** (1.6, CRI plugin, registries marked plain HTTP in `hosts.toml`)
 * and **kimg serve** (in-process, kimg's store) — over the same registries and images. Each case
 * reduces a runtime's answers to an observation (ids, tags, digests, uid/username, chain id, presence,
 * error class) and the two observations must be equal.
 *
 * Every failure has the same gRPC code from both runtimes and the same message shape (`failed to pull
 * and unpack image "<ref>": …`, `failed to parse image reference "<image>": …`); the registry's own
 * text after it differs by nature. Deliberate differences (docs/deliberate-differences.md) are
 * asserted per runtime and explained where they occur:
 * - Registry down: containerd sends Unknown + `dial tcp … connection refused`; kimg sends Unknown +
 *   `RegistryUnavailable: …`, the cri-api convention the kubelet turns into reason
 *   `RegistryUnavailable` (kubelet `evalCRIPullErr`). containerd 1.6 predates that convention.
 * - Version and ImageFsInfo describe the runtime itself (name, mountpoint) and naturally differ.
 * - runtime_handler: containerd 1.6 ignores `ImageSpec.runtime_handler` for images (one image per
 *   name); kimg keys images by handler, so handler cases are in cri.test.ts only.
 */
import { FakeClock } from '../helpers/clock.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CriImageService, startCriServer, storeVerboseInfo, type CriServer } from '../../src/cri/index.js';
import { Secret } from '../../src/credentials/index.js';
import { isKimgError, type KimgError } from '../../src/errors/index.js';
import {
  ImageManager,
  LocalImageService,
  type CredentialCandidate,
  type ImageInfo,
} from '../../src/manager/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { startRegistries, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CANARY = 'Diff-Canary-Pw-7781';
type Target = 'containerd' | 'kimg';
const TARGETS: readonly Target[] = ['containerd', 'kimg'];

/** What an error looks like from the outside: kimg's class, the gRPC code, the message's shape. */
interface ErrorObservation {
  error: string;
  grpc: string;
  registryUnavailablePrefix: boolean;
  /** containerd's CRI wrapper (`failed to pull and unpack image "<ref>"`), or the whole message. */
  shape: string;
}

/** The CRI plugin's wrapper at the start of a PullImage failure (after any rpc-error or prefix). */
function messageShape(message: string): string {
  const m = /failed to (?:pull and unpack image|parse image reference) "[^"]*"/.exec(message);
  return m ? m[0] : message;
}

/** Auth classes kimg splits finer than a runtime can: one class for comparison. */
function errorClass(code: string): string {
  return code === 'TOKEN_REFUSED' || code === 'NO_CREDENTIALS_ACCEPTED' ? 'UNAUTHORIZED' : code;
}

async function observeError(p: Promise<unknown>): Promise<ErrorObservation | { ok: true }> {
  try {
    await p;
    return { ok: true };
  } catch (e) {
    if (!isKimgError(e)) throw e;
    const k = e as unknown as KimgError;
    return {
      error: errorClass(k.code),
      grpc: String(k.details.actual ?? ''),
      registryUnavailablePrefix: k.message.startsWith('RegistryUnavailable'),
      shape: messageShape(k.message),
    };
  }
}

/** The comparable part of an Image (size is compared separately: > 0). */
function imageObservation(i: ImageInfo | undefined): unknown {
  if (i === undefined) return 'absent';
  return {
    id: i.id,
    repoTags: [...i.repoTags].sort(),
    repoDigests: [...i.repoDigests].sort(),
    uid: i.uid ?? null,
    username: i.username ?? null,
    pinned: i.pinned,
    sizePositive: i.size > 0,
  };
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('cri differential: containerd vs kimg serve', () => {
  let work = '';
  let regs: Record<'plain' | 'basic' | 'token', StartedRegistry>;
  let ctrd: StartedContainerd;
  let store: Store;
  let registry: RegistryClient;
  let server: CriServer;
  const clients = {} as Record<Target, CriImageService>;
  let small: GeneratedImage;
  let named: GeneratedImage;
  let multi: GeneratedImage;
  let downHost = '';

  const creds = () => ({ username: 'kimg', password: new Secret(CANARY) });
  /** Runs `fn` against both runtimes (sequentially: 2 cores) and returns both observations. */
  async function both<T>(fn: (c: CriImageService, t: Target) => Promise<T>): Promise<Record<Target, T>> {
    const out = {} as Record<Target, T>;
    for (const t of TARGETS) out[t] = await fn(clients[t], t);
    return out;
  }
  /** Both observations must be equal; returns the common one. */
  async function same<T>(what: string, fn: (c: CriImageService, t: Target) => Promise<T>): Promise<T> {
    const r = await both(fn);
    assert.deepEqual(r.kimg, r.containerd, `${what}: kimg (actual) differs from containerd (expected)`);
    return r.kimg;
  }

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    work = await makeTempDir('cri-diff-');
    const startedRegs = startRegistries(['plain', 'basic', 'token'], { password: CANARY });
    const startedCtrd = startContainerd();
    [small, named, multi] = await Promise.all([
      generateImage(join(work, 'small'), {
        name: 'small',
        layers: [{ size: 4096 }, { size: 9000, kind: 'text' }],
        user: '1000:1000',
      }),
      generateImage(join(work, 'named'), { name: 'named', layers: [{ size: 2048 }], user: 'nobody:nogroup' }),
      generateImage(join(work, 'multi'), {
        name: 'multi',
        layers: [{ size: 3000 }],
        platforms: [
          { os: 'linux', architecture: 'amd64' },
          { os: 'linux', architecture: 'arm64', variant: 'v8' },
        ],
      }),
    ]);
    regs = await startedRegs;
    ctrd = await startedCtrd;
    downHost = `127.0.0.1:${await closedPort()}`;
    for (const r of Object.values(regs)) await ctrd.addPlainHttpRegistry(r.host);
    await ctrd.addPlainHttpRegistry(downHost);
    await Promise.all([
      skopeoPush(small, regs.plain, 'small:1'),
      skopeoPush(small, regs.plain, 'small:2'),
      skopeoPush(small, regs.plain, 'small-docker:1', { format: 'v2s2' }),
      skopeoPush(named, regs.plain, 'named:1'),
      skopeoPush(multi, regs.plain, 'multi:1'),
      skopeoPush(multi, regs.plain, 'multi-docker:1', { format: 'v2s2' }),
      skopeoPush(small, regs.basic, 'small:1'),
      skopeoPush(small, regs.token, 'small:1'),
    ]);
    store = await openStore({ root: join(work, 'root') });
    registry = new RegistryClient({ plainHttp: [...Object.values(regs).map((r) => r.host), downHost] });
    server = await startCriServer({
      listen: `unix://${work}/kimg.sock`,
      imageService: new LocalImageService({ store, registry, platform: 'linux/amd64' }),
      verboseInfo: storeVerboseInfo(store),
    });
    clients.containerd = new CriImageService({ endpoint: ctrd.address });
    clients.kimg = new CriImageService({ endpoint: server.address });
  });

  after(async () => {
    for (const c of Object.values(clients)) c.close();
    await server?.close({ drainTimeoutMs: 1000 });
    await store?.close().catch(() => undefined);
    await registry?.close().catch(() => undefined);
    await ctrd?.stop();
    await stopRegistries(Object.values(regs ?? {}));
    if (work) await removeTempDir(work);
  });

  test('Version: both speak runtime API v1 (names differ by nature)', async () => {
    const v = await both((c) => c.version());
    assert.equal(v.containerd.runtimeApiVersion, 'v1');
    assert.equal(v.kimg.runtimeApiVersion, 'v1');
    assert.equal(v.containerd.runtimeName, 'containerd');
    assert.equal(v.kimg.runtimeName, 'kimg');
  });

  test('pull plain OCI: same image_ref (config digest) and the same Image fields', async () => {
    const name = `${regs.plain.host}/small:1`;
    const ref = await same('image_ref', (c) => c.pullImage({ image: name }, undefined));
    assert.equal(ref, small.manifests[0]!.config.digest);
    const img = await same('ImageStatus', async (c) =>
      imageObservation(await c.imageStatus({ image: name })),
    );
    assert.deepEqual(img, {
      id: ref,
      repoTags: [name],
      repoDigests: [`${regs.plain.host}/small@${small.digest}`],
      uid: 1000,
      username: null,
      pinned: false,
      sizePositive: true,
    });
    await same('ImageStatus by id', async (c) => imageObservation(await c.imageStatus({ image: ref })));
  });

  test('Image.size: both count the compressed content of the platform image', async () => {
    const name = `${regs.plain.host}/small:1`;
    const sizes = await both(async (c) => (await c.imageStatus({ image: name }))?.size ?? 0);
    assert.equal(sizes.kimg, sizes.containerd);
  });

  test('a named User: username, no uid', async () => {
    const name = `${regs.plain.host}/named:1`;
    await same('image_ref', (c) => c.pullImage({ image: name }, undefined));
    const img = (await same('ImageStatus', async (c) =>
      imageObservation(await c.imageStatus({ image: name })),
    )) as {
      username: string;
      uid: null;
    };
    assert.equal(img.username, 'nobody');
    assert.equal(img.uid, null);
  });

  test('Docker media types: same id as OCI; multi-arch OCI index and Docker list: the amd64 config digest', async () => {
    await same('docker image_ref', (c) =>
      c.pullImage({ image: `${regs.plain.host}/small-docker:1` }, undefined),
    );
    for (const tag of ['multi:1', 'multi-docker:1']) {
      const name = `${regs.plain.host}/${tag}`;
      const ref = await same(`${tag} image_ref`, (c) => c.pullImage({ image: name }, undefined));
      const amd64 = multi.manifests.find((m) => m.platform?.architecture === 'amd64')!;
      assert.equal(ref, amd64.config.digest);
      await same(`${tag} ImageStatus`, async (c) => imageObservation(await c.imageStatus({ image: name })));
    }
  });

  test('verbose ImageStatus: the same chainID and image config in info', async () => {
    const name = `${regs.plain.host}/small:1`;
    await same('verbose info', async (c) => {
      const v = await c.imageStatusVerbose({ image: name });
      const info = JSON.parse(v.info.info ?? '{}') as {
        chainID?: string;
        imageSpec?: { config?: unknown; rootfs?: unknown };
      };
      return { chainID: info.chainID, config: info.imageSpec?.config, rootfs: info.imageSpec?.rootfs };
    });
  });

  test('ListImages: one entry per image, every tag of it', async () => {
    await same('pull small:2', (c) => c.pullImage({ image: `${regs.plain.host}/small:2` }, undefined));
    const listed = (await same('ListImages', async (c) => {
      const images = (await c.listImages()).filter((i) =>
        i.repoTags.some((t) => t.startsWith(regs.plain.host)),
      );
      return images.map(imageObservation).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    })) as Array<{ id: string; repoTags: string[] }>;
    // small (OCI and Docker tags share one id), named, multi (OCI index and Docker list share the amd64 id)
    assert.equal(listed.length, 3, JSON.stringify(listed));
    const smallEntry = listed.find((i) => i.id === small.manifests[0]!.config.digest);
    assert.deepEqual(smallEntry?.repoTags, [
      `${regs.plain.host}/small-docker:1`,
      `${regs.plain.host}/small:1`,
      `${regs.plain.host}/small:2`,
    ]);
  });

  test('ImageStatus of an absent image is empty, not an error', async () => {
    const r = await same('absent status', async (c) =>
      imageObservation(await c.imageStatus({ image: `${regs.plain.host}/never:1` })),
    );
    assert.equal(r, 'absent');
  });

  test('RemoveImage by one tag removes the image with all its tags; removing again succeeds', async () => {
    const t1 = `${regs.plain.host}/small:1`;
    const t2 = `${regs.plain.host}/small:2`;
    const r = await same('remove', async (c) => {
      await c.removeImage({ image: t1 });
      const after = [
        imageObservation(await c.imageStatus({ image: t1 })),
        imageObservation(await c.imageStatus({ image: t2 })),
      ];
      const again = await observeError(c.removeImage({ image: t1 }));
      return { after, again };
    });
    assert.deepEqual(r.after, ['absent', 'absent']);
    assert.deepEqual(r.again, { ok: true });
  });

  test('Basic auth: with AuthConfig both pull; without or wrong both fail as UNAUTHORIZED, code Unknown', async () => {
    const name = `${regs.basic.host}/small:1`;
    await same('basic with creds', (c) => c.pullImage({ image: name }, creds()));
    for (const auth of [undefined, { username: 'kimg', password: new Secret('wrong') }]) {
      const r = await same(`basic ${auth ? 'wrong' : 'none'}`, (c) =>
        observeError(c.pullImage({ image: name }, auth)),
      );
      // Unknown: the kubelet shows the registry's message itself, not `rpc error: code = …`.
      assert.deepEqual(r, {
        error: 'UNAUTHORIZED',
        grpc: 'Unknown',
        registryUnavailablePrefix: false,
        shape: `failed to pull and unpack image "${name}"`,
      });
    }
  });

  test('token auth: credentials and anonymous pull-only tokens work; wrong credentials fail as UNAUTHORIZED', async () => {
    const name = `${regs.token.host}/small:1`;
    await same('token with creds', (c) => c.pullImage({ image: name }, creds()));
    await same('token anonymous', (c) => c.pullImage({ image: name }, undefined));
    const r = await same('token wrong', (c) =>
      observeError(c.pullImage({ image: name }, { username: 'kimg', password: new Secret('wrong') })),
    );
    assert.deepEqual(r, {
      error: 'UNAUTHORIZED',
      grpc: 'Unknown',
      registryUnavailablePrefix: false,
      shape: `failed to pull and unpack image "${name}"`,
    });
  });

  test('a reference that does not parse: both code Unknown, `failed to parse image reference`', async () => {
    for (const image of [`${regs.plain.host}/UPPER:1`, `${regs.plain.host}/small:bad!tag`]) {
      const r = (await both((c) => observeError(c.pullImage({ image }, undefined)))) as Record<
        Target,
        ErrorObservation
      >;
      for (const t of TARGETS) {
        assert.equal(r[t].grpc, 'Unknown', `${t}: ${JSON.stringify(r[t])}`);
        assert.equal(
          r[t].shape,
          `failed to parse image reference "${image}"`,
          `${t}: ${JSON.stringify(r[t])}`,
        );
      }
    }
  });

  test('a repo digest names an image pulled by tag: ImageStatus and RemoveImage find it', async () => {
    const tagged = `${regs.plain.host}/named:1`;
    const byDigest = `${regs.plain.host}/named@${named.digest}`;
    await same('pull named:1', (c) => c.pullImage({ image: tagged }, undefined));
    const img = (await same('ImageStatus by repo digest', async (c) =>
      imageObservation(await c.imageStatus({ image: byDigest })),
    )) as { id: string; repoTags: string[] };
    assert.equal(img.id, named.manifests[0]!.config.digest);
    assert.deepEqual(img.repoTags, [tagged]);
    // Another repository with that digest is not this image.
    const other = await same('other repository', async (c) =>
      imageObservation(await c.imageStatus({ image: `${regs.plain.host}/nope@${named.digest}` })),
    );
    assert.equal(other, 'absent');
    const gone = await same('RemoveImage by repo digest', async (c) => {
      await c.removeImage({ image: byDigest });
      return [
        imageObservation(await c.imageStatus({ image: tagged })),
        imageObservation(await c.imageStatus({ image: byDigest })),
      ];
    });
    assert.deepEqual(gone, ['absent', 'absent']);
  });

  test('a moved tag keeps the old image: untagged, by repo digest and id', async () => {
    const name = `${regs.plain.host}/moving:1`;
    await skopeoPush(small, regs.plain, 'moving:1');
    await same('pull moving:1 (small)', (c) => c.pullImage({ image: name }, undefined));
    await skopeoPush(named, regs.plain, 'moving:1');
    const ref = await same('pull moving:1 (named)', (c) => c.pullImage({ image: name }, undefined));
    assert.equal(ref, named.manifests[0]!.config.digest);
    const oldId = small.manifests[0]!.config.digest;
    const oldRepoDigest = `${regs.plain.host}/moving@${small.digest}`;
    const old = (await same('old image by id', async (c) =>
      imageObservation(await c.imageStatus({ image: oldId })),
    )) as { repoTags: string[]; repoDigests: string[] };
    assert.deepEqual(
      old.repoTags.filter((t) => t.includes('/moving:')),
      [],
    );
    assert.ok(old.repoDigests.includes(oldRepoDigest), JSON.stringify(old));
    await same('old image by repo digest', async (c) =>
      imageObservation(await c.imageStatus({ image: oldRepoDigest })),
    );
    const listed = await same('ListImages: the old image is listed', async (c) =>
      (await c.listImages()).some((i) => i.repoDigests.includes(oldRepoDigest)),
    );
    assert.equal(listed, true);
  });

  test('missing tag and missing repository: NotFound from both', async () => {
    for (const image of [`${regs.plain.host}/small:nope`, `${regs.plain.host}/nope:1`]) {
      const r = await same(`pull ${image}`, (c) => observeError(c.pullImage({ image }, undefined)));
      assert.deepEqual(r, {
        error: 'NOT_FOUND',
        grpc: 'NotFound',
        registryUnavailablePrefix: false,
        shape: `failed to pull and unpack image "${image}"`,
      });
    }
  });

  test('registry down: both code Unknown; kimg adds the RegistryUnavailable prefix (deliberate, see header)', async () => {
    const r = await both((c) => observeError(c.pullImage({ image: `${downHost}/x:1` }, undefined)));
    const cd = r.containerd as ErrorObservation;
    const km = r.kimg as ErrorObservation;
    assert.equal(cd.grpc, 'Unknown');
    assert.equal(km.grpc, 'Unknown');
    assert.equal(cd.registryUnavailablePrefix, false);
    assert.equal(km.registryUnavailablePrefix, true);
    assert.equal(km.shape, cd.shape);
    assert.equal(km.error, 'REGISTRY_UNAVAILABLE');
  });

  test('ImageFsInfo: both report a first image filesystem with a timestamp and used bytes', async () => {
    const r = await both((c) => c.imageFsInfo());
    for (const t of TARGETS) {
      const fs = r[t][0];
      assert.ok(fs, `${t} reports an image filesystem`);
      assert.ok(fs.timestamp > 0 && fs.usedBytes >= 0 && fs.mountpoint !== '', `${t}: ${JSON.stringify(fs)}`);
    }
  });
  test('the image manager over either runtime (kimg ensure --image-service): same pull-policy, credential and back-off outcomes', async () => {
    const image = `${regs.basic.host}/small:1`;
    const pod = { name: 'p', namespace: 'default', uid: 'uid-1' };
    const good: CredentialCandidate[] = [{ key: regs.basic.host, auth: creds() }];
    const bad: CredentialCandidate[] = [
      { key: regs.basic.host, auth: { username: 'kimg', password: new Secret('wrong') } },
    ];
    const outcomes = await both(async (c) => {
      await c.removeImage({ image });
      const clock = new FakeClock(1_000_000);
      const manager = new ImageManager({ imageService: c, clock });
      const run = async (policy: string, credentials: CredentialCandidate[], img = image) => {
        const r = await manager.ensureImageExists({
          pod,
          container: { name: 'app', image: img },
          pullPolicy: policy,
          credentials,
        });
        return {
          action: r.action,
          reason: r.reason ?? null,
          ok: r.ok,
          events: r.events.map((e) => e.reason),
          ref: r.imageRef,
        };
      };
      const steps = [];
      steps.push(await run('Never', good)); // absent + Never
      steps.push(await run('IfNotPresent', good)); // pulls with the pod's credentials
      steps.push(await run('IfNotPresent', good)); // present: used
      steps.push(await run('Always', bad, `${regs.basic.host}/small:2`)); // wrong credentials: ErrImagePull
      steps.push(await run('Always', bad, `${regs.basic.host}/small:2`)); // within 10 s: ImagePullBackOff
      clock.advance(11_000);
      steps.push(await run('Always', good, `${regs.basic.host}/small:2`)); // after the window: pull again (tag missing there)
      return steps;
    });
    assert.deepEqual(outcomes.kimg, outcomes.containerd);
    const o = outcomes.kimg;
    assert.deepEqual(
      o.map((s) => s.action),
      ['failed', 'pulled', 'used', 'failed', 'failed', 'failed'],
    );
    assert.deepEqual(
      o.map((s) => s.reason),
      ['ErrImageNeverPull', null, null, 'ErrImagePull', 'ImagePullBackOff', 'ErrImagePull'],
    );
    assert.equal(o[1]!.ref, small.manifests[0]!.config.digest);
  });
});
