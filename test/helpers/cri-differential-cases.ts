/**
 * The CRI differential case table: one list of CRI call sequences that every differential suite runs
 * against containerd's own CRI plugin (the reference) and one kimg column, over the same registries
 * and images. `test/integration/cri-differential.test.ts` runs it with `kimg serve` over kimg's store,
 * `test/integration/containerd-cri-differential.test.ts` with `kimg serve --containerd` over a second
 * containerd. Each case reduces a runtime's answers to an observation (ids, tags, digests,
 * uid/username, verbose info, presence, error class) and the observations must be equal.
 *
 * Every failure has the same gRPC code from both runtimes and the same message shape (`failed to pull
 * and unpack image "<ref>": …`, `failed to parse image reference "<image>": …`); the registry's own
 * text after it differs by nature. Deliberate differences (docs/deliberate-differences.md) are
 * asserted per runtime and explained where they occur:
 * - Registry down: containerd sends Unknown + `dial tcp … connection refused`; kimg sends Unknown +
 *   `RegistryUnavailable: …`, the cri-api convention the kubelet turns into reason
 *   `RegistryUnavailable` (kubelet `evalCRIPullErr`). containerd 1.6 predates that convention. kimg
 *   pulls with its own pipeline whatever its store, so the column over containerd sends it too.
 * - Version and ImageFsInfo describe the runtime itself (name, mountpoint) and naturally differ.
 *
 * The cases run in the order of the table and build on each other's images (a suite runs them from
 * fresh stores, before anything else of its own).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { CriImageService } from '../../src/cri/index.js';
import { Secret } from '../../src/credentials/index.js';
import { isKimgError, type KimgError } from '../../src/errors/index.js';
import { ImageManager, type CredentialCandidate, type ImageInfo } from '../../src/manager/index.js';
import { FakeClock } from './clock.js';
import type { StartedContainerd } from './containerd.js';
import { describeImage, generateImage, tagInLayout, writeJsonBlob, type GeneratedImage } from './images.js';
import { startRegistries, stopRegistries, type StartedRegistry } from './registry.js';
import { skopeoPush } from './skopeo.js';

export const CANARY = 'Diff-Canary-Pw-7781';
/** `containerd` is the reference; `kimg` the column under test (kimg's store or containerd's). */
export type Target = 'containerd' | 'kimg';
export const TARGETS: readonly Target[] = ['containerd', 'kimg'];

/** What an error looks like from the outside: kimg's class, the gRPC code, the message's shape. */
export interface ErrorObservation {
  error: string;
  grpc: string;
  registryUnavailablePrefix: boolean;
  /** containerd's CRI wrapper (`failed to pull and unpack image "<ref>"`), or the whole message. */
  shape: string;
}

/** The CRI plugin's wrapper at the start of a PullImage failure (after any rpc-error or prefix). */
export function messageShape(message: string): string {
  const m = /failed to (?:pull and unpack image|parse image reference) "[^"]*"/.exec(message);
  return m ? m[0] : message;
}

/** Auth classes kimg splits finer than a runtime can: one class for comparison. */
function errorClass(code: string): string {
  return code === 'TOKEN_REFUSED' || code === 'NO_CREDENTIALS_ACCEPTED' ? 'UNAUTHORIZED' : code;
}

export async function observeError(p: Promise<unknown>): Promise<ErrorObservation | { ok: true }> {
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
export function imageObservation(i: ImageInfo | undefined): unknown {
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

/** Registries, images and the unreachable host every case uses. */
export interface CriDiffFixtures {
  regs: Record<'plain' | 'basic' | 'token', StartedRegistry>;
  small: GeneratedImage;
  named: GeneratedImage;
  multi: GeneratedImage;
  /** A config as Docker writes it (fields outside the image spec, odd timestamps, `<&>`). */
  dockerStyle: GeneratedImage;
  /** `127.0.0.1:<a closed port>`. */
  downHost: string;
}

/**
 * Writes an image into `layoutDir` whose config carries what `docker build` leaves in one (fields
 * outside the image spec, empty values, unsorted maps, non-UTC timestamps with trailing zeros,
 * characters Go's JSON encoder escapes): containerd's verbose ImageStatus re-encodes all of it.
 */
async function generateDockerStyleImage(layoutDir: string): Promise<GeneratedImage> {
  const base = await generateImage(layoutDir, { name: 'docker-style', layers: [{ size: 1500 }] });
  const m = base.manifests[0]!;
  const config = {
    architecture: 'amd64',
    created: '2024-01-01T00:00:00.500000000+00:00',
    author: 'kimg <test@kimg>',
    os: 'linux',
    container: '3f2a',
    docker_version: '24.0.7',
    container_config: { Hostname: '3f2a', Cmd: ['/bin/sh', '-c', '#(nop) CMD ["sh"]'] },
    config: {
      Hostname: '',
      User: '',
      Env: ['A=<b>&c'],
      Cmd: ['sh'],
      ArgsEscaped: true,
      OnBuild: null,
      Image: 'sha256:3f2a',
      Labels: { z: '1', a: '2', B: '3' },
      ExposedPorts: { '80/tcp': {}, '443/tcp': {} },
      Volumes: null,
      WorkingDir: '/w',
    },
    rootfs: { type: 'layers', diff_ids: m.layers.map((l) => l.diffId) },
    history: [
      { created: '2023-05-05T10:00:00.120000+02:00', created_by: 'ADD x /', comment: '' },
      { created_by: 'CMD ["sh"]', empty_layer: true },
    ],
  };
  const cfg = await writeJsonBlob(layoutDir, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: m.mediaType,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
    layers: m.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const top = { ...(await writeJsonBlob(layoutDir, manifest)), mediaType: m.mediaType };
  await tagInLayout(layoutDir, 'docker-style', top);
  return describeImage(layoutDir, 'docker-style', top, [{ ...m, ...top, config: cfg }]);
}

/**
 * Starts the registries, generates and pushes the images, and marks every registry (and the down host)
 * plain HTTP in the `hosts.toml` of each containerd `starting` resolves to (started meanwhile). The
 * caller stops the registries (this function does when it fails).
 */
export async function prepareCriDiffFixtures(
  work: string,
  starting: Promise<readonly StartedContainerd[]>,
): Promise<CriDiffFixtures> {
  const startedRegs = startRegistries(['plain', 'basic', 'token'], { password: CANARY });
  const [small, named, multi, dockerStyle] = await Promise.all([
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
    generateDockerStyleImage(join(work, 'docker-style')),
  ]);
  const regs = await startedRegs;
  try {
    const containerds = await starting;
    const downHost = `127.0.0.1:${await closedPort()}`;
    for (const c of containerds) {
      for (const r of Object.values(regs)) await c.addPlainHttpRegistry(r.host);
      await c.addPlainHttpRegistry(downHost);
    }
    await Promise.all([
      skopeoPush(small, regs.plain, 'small:1'),
      skopeoPush(small, regs.plain, 'small:2'),
      skopeoPush(small, regs.plain, 'small-docker:1', { format: 'v2s2' }),
      skopeoPush(named, regs.plain, 'named:1'),
      skopeoPush(multi, regs.plain, 'multi:1'),
      skopeoPush(multi, regs.plain, 'multi-docker:1', { format: 'v2s2' }),
      skopeoPush(dockerStyle, regs.plain, 'docker-style:1'),
      skopeoPush(small, regs.basic, 'small:1'),
      skopeoPush(small, regs.token, 'small:1'),
    ]);
    return { regs, small, named, multi, dockerStyle, downHost };
  } catch (e) {
    await stopRegistries(Object.values(regs));
    throw e;
  }
}

/** What a case runs against: the fixtures and one CRI client per target. */
export interface CriDiffContext {
  fx: CriDiffFixtures;
  clients: Record<Target, CriImageService>;
  /** The kimg column's name in assertion messages, e.g. `kimg serve --containerd`. */
  label: string;
}

/** Runs `fn` against both runtimes (sequentially: 2 cores) and returns both observations. */
export async function both<T>(
  ctx: CriDiffContext,
  fn: (c: CriImageService, t: Target) => Promise<T>,
): Promise<Record<Target, T>> {
  const out = {} as Record<Target, T>;
  for (const t of TARGETS) out[t] = await fn(ctx.clients[t], t);
  return out;
}

/** Both observations must be equal; returns the common one. */
export async function same<T>(
  ctx: CriDiffContext,
  what: string,
  fn: (c: CriImageService, t: Target) => Promise<T>,
): Promise<T> {
  const r = await both(ctx, fn);
  assert.deepEqual(r.kimg, r.containerd, `${what}: ${ctx.label} (actual) differs from containerd (expected)`);
  return r.kimg;
}

export interface CriDiffCase {
  name: string;
  run(ctx: CriDiffContext): Promise<void>;
}

const creds = () => ({ username: 'kimg', password: new Secret(CANARY) });
const wrong = () => ({ username: 'kimg', password: new Secret('wrong') });

/** The cases, in order (see the module comment). */
export const CRI_DIFFERENTIAL_CASES: readonly CriDiffCase[] = [
  {
    name: 'Version: both speak runtime API v1 (names differ by nature)',
    async run(ctx) {
      const v = await both(ctx, (c) => c.version());
      assert.equal(v.containerd.runtimeApiVersion, 'v1');
      assert.equal(v.kimg.runtimeApiVersion, 'v1');
      assert.equal(v.containerd.runtimeName, 'containerd');
      assert.equal(v.kimg.runtimeName, 'kimg');
    },
  },
  {
    name: 'pull plain OCI: same image_ref (config digest) and the same Image fields',
    async run(ctx) {
      const { regs, small } = ctx.fx;
      const name = `${regs.plain.host}/small:1`;
      const ref = await same(ctx, 'image_ref', (c) => c.pullImage({ image: name }, undefined));
      assert.equal(ref, small.manifests[0]!.config.digest);
      const img = await same(ctx, 'ImageStatus', async (c) =>
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
      await same(ctx, 'ImageStatus by id', async (c) =>
        imageObservation(await c.imageStatus({ image: ref })),
      );
    },
  },
  {
    name: 'Image.size: both count the compressed content of the platform image',
    async run(ctx) {
      const name = `${ctx.fx.regs.plain.host}/small:1`;
      const sizes = await both(ctx, async (c) => (await c.imageStatus({ image: name }))?.size ?? 0);
      assert.equal(sizes.kimg, sizes.containerd);
    },
  },
  {
    name: 'a named User: username, no uid',
    async run(ctx) {
      const name = `${ctx.fx.regs.plain.host}/named:1`;
      await same(ctx, 'image_ref', (c) => c.pullImage({ image: name }, undefined));
      const img = (await same(ctx, 'ImageStatus', async (c) =>
        imageObservation(await c.imageStatus({ image: name })),
      )) as { username: string; uid: null };
      assert.equal(img.username, 'nobody');
      assert.equal(img.uid, null);
    },
  },
  {
    name: 'Docker media types: same id as OCI; multi-arch OCI index and Docker list: the amd64 config digest',
    async run(ctx) {
      const { regs, multi } = ctx.fx;
      await same(ctx, 'docker image_ref', (c) =>
        c.pullImage({ image: `${regs.plain.host}/small-docker:1` }, undefined),
      );
      for (const tag of ['multi:1', 'multi-docker:1']) {
        const name = `${regs.plain.host}/${tag}`;
        const ref = await same(ctx, `${tag} image_ref`, (c) => c.pullImage({ image: name }, undefined));
        const amd64 = multi.manifests.find((m) => m.platform?.architecture === 'amd64')!;
        assert.equal(ref, amd64.config.digest);
        await same(ctx, `${tag} ImageStatus`, async (c) =>
          imageObservation(await c.imageStatus({ image: name })),
        );
      }
    },
  },
  {
    name: 'verbose ImageStatus: the same info, byte for byte (chainID and the image config as containerd re-encodes it)',
    async run(ctx) {
      const { regs, small, dockerStyle } = ctx.fx;
      const dockerName = `${regs.plain.host}/docker-style:1`;
      await same(ctx, 'pull docker-style', (c) => c.pullImage({ image: dockerName }, undefined));
      for (const [name, img] of [
        [`${regs.plain.host}/small:1`, small],
        [dockerName, dockerStyle],
      ] as const) {
        const info = await same(ctx, `verbose info of ${name}`, async (c) => {
          const v = await c.imageStatusVerbose({ image: name });
          return { keys: Object.keys(v.info).sort(), info: v.info.info };
        });
        assert.deepEqual(info.keys, ['info']);
        const parsed = JSON.parse(info.info!) as {
          chainID: string;
          imageSpec: { rootfs: { diff_ids: string[] }; container_config?: unknown };
        };
        assert.deepEqual(
          parsed.imageSpec.rootfs.diff_ids,
          img.manifests[0]!.layers.map((l) => l.diffId),
        );
        assert.match(parsed.chainID, /^sha256:[0-9a-f]{64}$/);
        assert.equal(
          parsed.imageSpec.container_config,
          undefined,
          'fields outside the image spec are left out',
        );
      }
      // An absent image: no image and no info.
      const absent = await same(ctx, 'verbose status of an absent image', async (c) =>
        c.imageStatusVerbose({ image: `${regs.plain.host}/never:1` }),
      );
      assert.deepEqual(absent, { image: undefined, info: {} });
    },
  },
  {
    name: 'ListImages: one entry per image, every tag of it',
    async run(ctx) {
      const { regs, small } = ctx.fx;
      await same(ctx, 'pull small:2', (c) => c.pullImage({ image: `${regs.plain.host}/small:2` }, undefined));
      const listed = (await same(ctx, 'ListImages', async (c) => {
        const images = (await c.listImages()).filter((i) =>
          i.repoTags.some((t) => t.startsWith(regs.plain.host)),
        );
        return images
          .map(imageObservation)
          .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
      })) as Array<{ id: string; repoTags: string[] }>;
      // small (OCI and Docker tags share one id), named, multi (OCI index and Docker list share the
      // amd64 id), docker-style
      assert.equal(listed.length, 4, JSON.stringify(listed));
      const smallEntry = listed.find((i) => i.id === small.manifests[0]!.config.digest);
      assert.deepEqual(smallEntry?.repoTags, [
        `${regs.plain.host}/small-docker:1`,
        `${regs.plain.host}/small:1`,
        `${regs.plain.host}/small:2`,
      ]);
    },
  },
  {
    name: 'ImageStatus of an absent image (tag or repository) is empty, not an error',
    async run(ctx) {
      for (const image of [`${ctx.fx.regs.plain.host}/never:1`, `${ctx.fx.regs.plain.host}/small:never`]) {
        const r = await same(ctx, `absent status ${image}`, async (c) =>
          imageObservation(await c.imageStatus({ image })),
        );
        assert.equal(r, 'absent');
      }
    },
  },
  {
    name: 'RemoveImage by one tag removes the image with all its tags; removing again succeeds',
    async run(ctx) {
      const t1 = `${ctx.fx.regs.plain.host}/small:1`;
      const t2 = `${ctx.fx.regs.plain.host}/small:2`;
      const r = await same(ctx, 'remove', async (c) => {
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
    },
  },
  {
    name: 'RemoveImage by id removes every name of the image',
    async run(ctx) {
      const { regs, small } = ctx.fx;
      const id = small.manifests[0]!.config.digest;
      const names = [`${regs.plain.host}/small:1`, `${regs.plain.host}/small:2`];
      for (const image of names) await same(ctx, `pull ${image}`, (c) => c.pullImage({ image }, undefined));
      const r = await same(ctx, 'remove by id', async (c) => {
        await c.removeImage({ image: id });
        return [
          imageObservation(await c.imageStatus({ image: id })),
          ...(await Promise.all(
            names.map(async (image) => imageObservation(await c.imageStatus({ image }))),
          )),
          (await c.listImages()).some((i) => i.id === id),
        ];
      });
      assert.deepEqual(r, ['absent', 'absent', 'absent', false]);
    },
  },
  {
    name: 'Basic auth: with AuthConfig both pull; without or wrong both fail as UNAUTHORIZED, code Unknown',
    async run(ctx) {
      const name = `${ctx.fx.regs.basic.host}/small:1`;
      await same(ctx, 'basic with creds', (c) => c.pullImage({ image: name }, creds()));
      for (const auth of [undefined, wrong()]) {
        const r = await same(ctx, `basic ${auth ? 'wrong' : 'none'}`, (c) =>
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
    },
  },
  {
    name: 'token auth: credentials and anonymous pull-only tokens work; wrong credentials fail as UNAUTHORIZED',
    async run(ctx) {
      const name = `${ctx.fx.regs.token.host}/small:1`;
      await same(ctx, 'token with creds', (c) => c.pullImage({ image: name }, creds()));
      await same(ctx, 'token anonymous', (c) => c.pullImage({ image: name }, undefined));
      const r = await same(ctx, 'token wrong', (c) => observeError(c.pullImage({ image: name }, wrong())));
      assert.deepEqual(r, {
        error: 'UNAUTHORIZED',
        grpc: 'Unknown',
        registryUnavailablePrefix: false,
        shape: `failed to pull and unpack image "${name}"`,
      });
    },
  },
  {
    name: 'a reference that does not parse: both code Unknown, `failed to parse image reference`',
    async run(ctx) {
      const host = ctx.fx.regs.plain.host;
      for (const image of [`${host}/UPPER:1`, `${host}/small:bad!tag`]) {
        const r = (await both(ctx, (c) => observeError(c.pullImage({ image }, undefined)))) as Record<
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
    },
  },
  {
    name: 'a repo digest names an image pulled by tag: ImageStatus and RemoveImage find it',
    async run(ctx) {
      const { regs, named } = ctx.fx;
      const tagged = `${regs.plain.host}/named:1`;
      const byDigest = `${regs.plain.host}/named@${named.digest}`;
      await same(ctx, 'pull named:1', (c) => c.pullImage({ image: tagged }, undefined));
      const img = (await same(ctx, 'ImageStatus by repo digest', async (c) =>
        imageObservation(await c.imageStatus({ image: byDigest })),
      )) as { id: string; repoTags: string[] };
      assert.equal(img.id, named.manifests[0]!.config.digest);
      assert.deepEqual(img.repoTags, [tagged]);
      // Another repository with that digest is not this image.
      const other = await same(ctx, 'other repository', async (c) =>
        imageObservation(await c.imageStatus({ image: `${regs.plain.host}/nope@${named.digest}` })),
      );
      assert.equal(other, 'absent');
      const gone = await same(ctx, 'RemoveImage by repo digest', async (c) => {
        await c.removeImage({ image: byDigest });
        return [
          imageObservation(await c.imageStatus({ image: tagged })),
          imageObservation(await c.imageStatus({ image: byDigest })),
        ];
      });
      assert.deepEqual(gone, ['absent', 'absent']);
    },
  },
  {
    name: 'a moved tag keeps the old image: untagged, by repo digest and id',
    async run(ctx) {
      const { regs, small, named } = ctx.fx;
      const name = `${regs.plain.host}/moving:1`;
      await skopeoPush(small, regs.plain, 'moving:1');
      await same(ctx, 'pull moving:1 (small)', (c) => c.pullImage({ image: name }, undefined));
      await skopeoPush(named, regs.plain, 'moving:1');
      const ref = await same(ctx, 'pull moving:1 (named)', (c) => c.pullImage({ image: name }, undefined));
      assert.equal(ref, named.manifests[0]!.config.digest);
      await same(ctx, 'the tag names the new image', async (c) =>
        imageObservation(await c.imageStatus({ image: name })),
      );
      const oldId = small.manifests[0]!.config.digest;
      const oldRepoDigest = `${regs.plain.host}/moving@${small.digest}`;
      const old = (await same(ctx, 'old image by id', async (c) =>
        imageObservation(await c.imageStatus({ image: oldId })),
      )) as { repoTags: string[]; repoDigests: string[] };
      assert.deepEqual(
        old.repoTags.filter((t) => t.includes('/moving:')),
        [],
      );
      assert.ok(old.repoDigests.includes(oldRepoDigest), JSON.stringify(old));
      await same(ctx, 'old image by repo digest', async (c) =>
        imageObservation(await c.imageStatus({ image: oldRepoDigest })),
      );
      const listed = await same(ctx, 'ListImages: the old image is listed', async (c) =>
        (await c.listImages()).some((i) => i.repoDigests.includes(oldRepoDigest)),
      );
      assert.equal(listed, true);
    },
  },
  {
    name: 'missing tag and missing repository: NotFound from both',
    async run(ctx) {
      for (const image of [`${ctx.fx.regs.plain.host}/small:nope`, `${ctx.fx.regs.plain.host}/nope:1`]) {
        const r = await same(ctx, `pull ${image}`, (c) => observeError(c.pullImage({ image }, undefined)));
        assert.deepEqual(r, {
          error: 'NOT_FOUND',
          grpc: 'NotFound',
          registryUnavailablePrefix: false,
          shape: `failed to pull and unpack image "${image}"`,
        });
      }
    },
  },
  {
    name: 'registry down: both code Unknown; kimg adds the RegistryUnavailable prefix (deliberate, see header)',
    async run(ctx) {
      const r = await both(ctx, (c) =>
        observeError(c.pullImage({ image: `${ctx.fx.downHost}/x:1` }, undefined)),
      );
      const cd = r.containerd as ErrorObservation;
      const km = r.kimg as ErrorObservation;
      assert.equal(cd.grpc, 'Unknown');
      assert.equal(km.grpc, 'Unknown');
      assert.equal(cd.registryUnavailablePrefix, false);
      assert.equal(km.registryUnavailablePrefix, true);
      assert.equal(km.shape, cd.shape);
      assert.equal(km.error, 'REGISTRY_UNAVAILABLE');
    },
  },
  {
    name: 'ImageFsInfo: both report a first image filesystem with a timestamp and used bytes',
    async run(ctx) {
      const r = await both(ctx, (c) => c.imageFsInfo());
      for (const t of TARGETS) {
        const fs = r[t][0];
        assert.ok(fs, `${t} reports an image filesystem`);
        assert.ok(
          fs.timestamp > 0 && fs.usedBytes >= 0 && fs.mountpoint !== '',
          `${t}: ${JSON.stringify(fs)}`,
        );
      }
    },
  },
  {
    name: 'the image manager over either runtime (kimg ensure --image-service): same pull-policy, credential and back-off outcomes',
    async run(ctx) {
      const { regs, small } = ctx.fx;
      const image = `${regs.basic.host}/small:1`;
      const pod = { name: 'p', namespace: 'default', uid: 'uid-1' };
      const good: CredentialCandidate[] = [{ key: regs.basic.host, auth: creds() }];
      const bad: CredentialCandidate[] = [{ key: regs.basic.host, auth: wrong() }];
      const outcomes = await both(ctx, async (c) => {
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
    },
  },
];
