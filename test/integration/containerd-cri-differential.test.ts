/**
 * CRI differential, kimg over containerd: the case table of test/helpers/cri-differential-cases.ts (the
 * one cri-differential.test.ts runs over kimg's store), then the cases below, through kimg's CRI client
 * against
 * - **containerd**: a private containerd's own CRI plugin, and
 * - **kimg serve --containerd**: the `kimg serve` CLI process with `--containerd` naming a second
 *   private containerd: PullImage runs kimg's pipeline into that containerd; ListImages / ImageStatus
 *   (verbose too) / RemoveImage answer from its store;
 * over the same registries and images. Observations (id, repo tags, repo digests, size, uid/username,
 * pinned, presence, verbose info, error class and message shape) must be equal; the table's header
 * lists the deliberate differences it asserts (registry down: kimg's `RegistryUnavailable` prefix, over
 * containerd as over its own store). Also: containerd's own CRI plugin on the second containerd sees
 * what kimg pulled the same way (its verbose info too), and the CLI's `--containerd` commands (pull,
 * images, inspect, rmi), and the node agent's CRI socket over containerd (verbose ImageStatus). The
 * composition root reads `kimg.containerd` from a node's configuration; over containerd it tells
 * `onPulled` of its pulls and leaves the same pull records as over kimg's store: pods without
 * credentials are treated alike under each verification policy.
 *
 * Known difference, asserted where it occurs: ImageFsInfo describes each daemon's own filesystem.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadNodeConfig } from '../../src/config/index.js';
import { Secret, credentialHash } from '../../src/credentials/index.js';
import { CriImageService, type ImageStatusResult } from '../../src/cri/index.js';
import {
  FilePullRecords,
  type CredentialCandidate,
  type ImageInfo,
  type PodInfo,
} from '../../src/manager/index.js';
import { startNodeAgent } from '../../src/node/index.js';
import { FakeUsageSource } from '../../src/testing/index.js';
import { openNodeRuntime, type ImageServiceBackend, type NodeRuntime } from '../../src/runtime/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import {
  CRI_DIFFERENTIAL_CASES,
  prepareCriDiffFixtures,
  same,
  type CriDiffContext,
} from '../helpers/cri-differential-cases.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, spawnTracked, waitFor, type TrackedProcess } from '../helpers/proc.js';
import { stopRegistries } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { observeImage } from '../helpers/cri-views.js';
import { kimgInProcess as kimg } from '../helpers/cli.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

describe('cri differential: kimg serve --containerd vs containerd', () => {
  let work = '';
  let theirs: StartedContainerd | undefined;
  let ours: StartedContainerd;
  let runtime: NodeRuntime;
  let serve: TrackedProcess | undefined;
  const ctx = { label: 'kimg serve --containerd', clients: {} } as CriDiffContext;
  let oursCri: CriImageService;
  let lonely: GeneratedImage;
  let configFile = '';
  let privateImg: GeneratedImage;

  /**
   * Verbose ImageStatus from containerd's own CRI plugin on the containerd kimg pulls into, once that
   * plugin has learnt of the image (it follows containerd's image events).
   */
  async function containerdCriStatus(image: string): Promise<ImageStatusResult> {
    let r = await oursCri.imageStatusVerbose({ image });
    for (let i = 0; i < 100 && r.image === undefined; i++) {
      await new Promise((done) => setTimeout(done, 50));
      r = await oursCri.imageStatusVerbose({ image });
    }
    return r;
  }

  /** `kimg serve --containerd <ours>` as a node runs it; resolves its CRI endpoint once it listens. */
  async function startServe(): Promise<string> {
    const socket = join(work, 'kimg.sock');
    const stderrFile = join(work, 'kimg-serve.err');
    const hosts = [...Object.values(ctx.fx.regs).map((r) => r.host), ctx.fx.downHost];
    serve = spawnTracked(
      'kimg serve --containerd',
      process.execPath,
      [
        CLI,
        'serve',
        '--containerd',
        ours.socket,
        '--listen',
        `unix://${socket}`,
        '--root',
        join(work, 'kimg-root'),
        '--platform',
        'linux/amd64',
        ...hosts.flatMap((h) => ['--plain-http', h]),
      ],
      { stderrFile },
    );
    const log = () => readFile(stderrFile, 'utf8').catch(() => '');
    await waitFor(
      'kimg serve to listen',
      async () => ((await log()).includes('listening on') ? true : undefined),
      {
        watch: serve,
        timeoutMs: 20_000,
        intervalMs: 20,
        describe: log,
      },
    );
    return `unix://${socket}`;
  }

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    work = await makeTempDir('ctrd-diff-');
    const starting = Promise.all([
      startContainerd().then((c) => (theirs = c)),
      startContainerd().then((c) => (ours = c)),
    ]);
    [ctx.fx, lonely, privateImg] = await Promise.all([
      prepareCriDiffFixtures(work, starting),
      generateImage(join(work, 'lonely'), { name: 'lonely', layers: [{ size: 2500 }], user: '7' }),
      generateImage(join(work, 'private'), { name: 'private-app', layers: [{ size: 5000 }] }),
    ]);
    const { regs } = ctx.fx;
    await Promise.all([
      skopeoPush(lonely, regs.plain, 'lonely:1'),
      skopeoPush(privateImg, regs.basic, 'private:v1'),
    ]);
    // The composition root, configured the way a node's file does it.
    configFile = join(work, 'kubelet.yaml');
    await writeFile(
      configFile,
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        'kimg:',
        `  rootDir: ${join(work, 'root')}`,
        '  containerd:',
        `    address: unix://${ours.socket}`,
        '    namespace: k8s.io',
        `    snapshotter: ${ours.snapshotter}`,
        '',
      ].join('\n'),
    );
    const config = await loadNodeConfig([configFile]);
    assert.deepEqual(config.kimg.containerd, {
      address: `unix://${ours.socket}`,
      namespace: 'k8s.io',
      snapshotter: ours.snapshotter,
    });
    runtime = await openNodeRuntime(config, {
      env: {},
      imageService: {
        kind: 'containerd',
        address: config.kimg.containerd!.address,
        snapshotter: ours.snapshotter,
        platform: 'linux/amd64',
      },
      registry: { plainHttp: Object.values(regs).map((r) => r.host) },
      credentials: false,
      verification: 'read-only',
    });
    ctx.clients.containerd = new CriImageService({ endpoint: theirs!.address });
    ctx.clients.kimg = new CriImageService({ endpoint: await startServe() });
    oursCri = new CriImageService({ endpoint: ours.address });
  });

  after(async () => {
    for (const c of Object.values(ctx.clients)) c.close();
    oursCri?.close();
    if (serve) await killProcess(serve);
    await runtime?.close().catch(() => undefined);
    await Promise.all([theirs?.stop(), ours?.stop()]);
    await stopRegistries(Object.values(ctx.fx?.regs ?? {}));
    if (work) await removeTempDir(work);
  });

  // The shared table first: its cases start from empty stores.
  for (const c of CRI_DIFFERENTIAL_CASES) test(c.name, () => c.run(ctx));

  test('the runtime picked the containerd backend', () => {
    assert.equal(runtime.backend.kind, 'containerd');
    assert.ok(runtime.containerd);
  });

  for (const [label, image] of [
    ['OCI', () => `${ctx.fx.regs.plain.host}/small:1`],
    ['Docker schema 2', () => `${ctx.fx.regs.plain.host}/small-docker:1`],
    ['named user', () => `${ctx.fx.regs.plain.host}/named:1`],
    ['OCI index', () => `${ctx.fx.regs.plain.host}/multi:1`],
    ['by digest', () => `${ctx.fx.regs.plain.host}/small@${ctx.fx.small.digest}`],
  ] as const) {
    test(`${label}: PullImage ref and ImageStatus (by name, id, short id) are equal`, async () => {
      const name = image();
      const ref = await same(ctx, 'image_ref', (c) => c.pullImage({ image: name }, undefined));
      await same(ctx, 'ImageStatus', async (c) => observeImage(await c.imageStatus({ image: name })));
      await same(ctx, 'ImageStatus by id', async (c) => observeImage(await c.imageStatus({ image: ref })));
      await same(ctx, 'ImageStatus by short id', async (c) =>
        observeImage(await c.imageStatus({ image: ref.slice('sha256:'.length, 'sha256:'.length + 12) })),
      );
    });
  }

  test('Basic auth through the CRI AuthConfig', async () => {
    const name = `${ctx.fx.regs.basic.host}/small:1`;
    const auth = { username: ctx.fx.regs.basic.username!, password: new Secret(ctx.fx.regs.basic.password!) };
    await same(ctx, 'image_ref', (c) => c.pullImage({ image: name }, auth));
    await same(ctx, 'ImageStatus', async (c) => observeImage(await c.imageStatus({ image: name })));
  });

  test('ListImages is the same set; containerd CRI on kimg’s containerd agrees', async () => {
    const list = (xs: ImageInfo[]) =>
      xs.map(observeImage).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    const l = await same(ctx, 'ListImages', async (c) => list(await c.listImages()));
    // containerd's own CRI plugin over the containerd kimg wrote into lists the same images.
    let seen: unknown;
    for (let i = 0; i < 100; i++) {
      seen = list(await oursCri.listImages());
      if (JSON.stringify(seen) === JSON.stringify(l)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(seen, l);
  });

  test('an image only kimg pulled: containerd’s CRI gives the same verbose info; RemoveImage by tag collects its content', async () => {
    const name = `${ctx.fx.regs.plain.host}/lonely:1`;
    await same(ctx, 'image_ref', (c) => c.pullImage({ image: name }, undefined));
    // containerd's own CRI plugin on the containerd kimg pulled into renders the same verbose info.
    const mine = await ctx.clients.kimg.imageStatusVerbose({ image: name });
    assert.deepEqual(mine.info, (await containerdCriStatus(name)).info);
    await same(ctx, 'RemoveImage', async (c) => c.removeImage({ image: name }));
    await same(ctx, 'ImageStatus after remove', async (c) =>
      observeImage(await c.imageStatus({ image: name })),
    );
    await same(ctx, 'RemoveImage absent', async (c) => c.removeImage({ image: name }));
    // containerd collected the content of the removed image.
    const left = (await ours.ctr(['content', 'ls', '-q'], { namespace: 'k8s.io' })).stdout;
    assert.ok(!left.includes(lonely.manifests[0]!.layers[0]!.digest));
    assert.ok(!left.includes(lonely.manifests[0]!.config.digest));
  });

  test('kimg node with kimg.containerd in its configuration: its CRI socket answers verbose ImageStatus as containerd', async () => {
    const name = `${ctx.fx.regs.plain.host}/multi:1`;
    await ctx.clients.kimg.pullImage({ image: name }, undefined);
    const agent = await startNodeAgent({
      config: await loadNodeConfig([configFile]),
      criListen: `unix://${join(work, 'agent.sock')}`,
      metricsAddr: null,
      staticPods: false,
      registry: { plainHttp: [ctx.fx.regs.plain.host] },
      platform: 'linux/amd64',
      gcPeriodMs: 3_600_000,
      // 10% used: below every threshold, so image GC leaves containerd's images alone.
      usage: new FakeUsageSource(1_000_000_000, 900_000_000),
      nodeDockerConfig: false,
      env: {},
      log: () => undefined,
    });
    const client = new CriImageService({ endpoint: agent.criAddress! });
    try {
      const viaAgent = await client.imageStatusVerbose({ image: name });
      const viaContainerd = await containerdCriStatus(name);
      assert.equal(viaAgent.image?.id, viaContainerd.image?.id);
      assert.deepEqual(viaAgent.info, viaContainerd.info);
      assert.ok(viaAgent.info.info?.includes('"chainID":"sha256:'));
    } finally {
      client.close();
      await agent.close();
    }
  });

  test('ImageFsInfo: kimg over containerd answers containerd’s own image filesystem', async () => {
    const fs = await ctx.clients.kimg.imageFsInfo();
    const own = await oursCri.imageFsInfo();
    assert.equal(fs[0]?.mountpoint, own[0]?.mountpoint);
    assert.ok(fs[0]!.mountpoint.includes(ours.baseDir));
  });

  test('CLI --containerd: pull, images, inspect, rmi', async () => {
    const name = `${ctx.fx.regs.plain.host}/small:1`;
    const sock = ours.socket;
    const p = await kimg(
      'pull',
      '--containerd',
      sock,
      '--plain-http',
      ctx.fx.regs.plain.host,
      '--platform',
      'linux/amd64',
      '--progress',
      'none',
      '-o',
      'json',
      name,
    );
    assert.equal(p.status, 0, p.stderr);
    const pulled = JSON.parse(p.stdout) as { id: string; digest: string };
    assert.equal(pulled.id, ctx.fx.small.manifests[0]!.config.digest);
    const imgs = await kimg('images', '--containerd', `unix://${sock}`, '-o', 'json');
    assert.equal(imgs.status, 0, imgs.stderr);
    const listed = (JSON.parse(imgs.stdout) as { images: ImageInfo[] }).images.find(
      (i) => i.id === pulled.id,
    );
    assert.ok(listed?.repoTags.includes(name));
    const table = await kimg('images', '--containerd', sock);
    assert.match(table.stdout, /IMAGE\s+TAG\s+DIGEST\s+IMAGE ID\s+SIZE/);
    const ins = await kimg('inspect', '--containerd', sock, name);
    assert.equal(ins.status, 0, ins.stderr);
    assert.equal((JSON.parse(ins.stdout) as { image: ImageInfo }).image.id, pulled.id);
    const rm = await kimg('rmi', '--containerd', sock, name);
    assert.equal(rm.status, 0, rm.stderr);
    assert.match(rm.stdout, new RegExp(`Deleted: ${name.replace(/[.]/g, '\\.')}`));
    const gone = await kimg('inspect', '--containerd', sock, name);
    assert.notEqual(gone.status, 0);
  });

  /**
   * Pods A (with a pull Secret), B (none) and C (A's Secret) ensure a private image, first under
   * NeverVerifyPreloadedImages, then (a restarted node, same root) under AlwaysVerify, through a runtime
   * over `backend`. Returns what each ensure did, what `onPulled` saw and the image's pull record.
   */
  async function credentialScenario(backend: ImageServiceBackend) {
    const root = join(work, `verify-${backend.kind}`);
    const image = `${ctx.fx.regs.basic.host}/private:v1`;
    const secret: CredentialCandidate = {
      key: ctx.fx.regs.basic.host,
      auth: { username: ctx.fx.regs.basic.username!, password: new Secret(ctx.fx.regs.basic.password!) },
      source: { kind: 'secret', namespace: 'default', name: 'regcred', uid: 'secret-uid-1' },
    };
    const pods: [PodInfo, CredentialCandidate[]][] = [
      [{ name: 'a', namespace: 'default', uid: 'uid-a' }, [secret]],
      [{ name: 'b', namespace: 'default', uid: 'uid-b' }, []],
      [{ name: 'c', namespace: 'default', uid: 'uid-c' }, [secret]],
    ];
    const ensures: unknown[] = [];
    const pulled: string[] = [];
    for (const policy of ['NeverVerifyPreloadedImages', 'AlwaysVerify']) {
      const file = join(work, `kubelet-${backend.kind}-${policy}.yaml`);
      await writeFile(
        file,
        [
          'apiVersion: kubelet.config.k8s.io/v1beta1',
          'kind: KubeletConfiguration',
          `imagePullCredentialsVerificationPolicy: ${policy}`,
          '',
        ].join('\n'),
      );
      const rt = await openNodeRuntime(await loadNodeConfig([file]), {
        env: {},
        root,
        imageService: backend,
        registry: { plainHttp: [ctx.fx.regs.basic.host] },
        credentials: false,
        onPulled: (spec, result) => pulled.push(`${spec.image} ${result.record.imageId}`),
      });
      try {
        for (const [pod, credentials] of pods) {
          const r = await rt.manager.ensureImageExists({
            pod: { ...pod, uid: `${pod.uid}-${policy}` },
            container: { name: 'app', image, imagePullPolicy: 'IfNotPresent' },
            credentials,
          });
          ensures.push({
            policy,
            pod: pod.name,
            ok: r.ok,
            action: r.action,
            code: r.error?.code ?? null,
            events: r.events.map((e) => e.reason),
          });
        }
      } finally {
        await rt.close();
      }
    }
    const id = privateImg.manifests[0]!.config.digest;
    const record = await new FilePullRecords(root).getImagePulledRecord(id);
    return { image, id, ensures, pulled, credentialMapping: record?.credentialMapping, secret };
  }

  test('the runtime over containerd: onPulled after a pull, and pull records that treat pods as over kimg’s store', async () => {
    const local = await credentialScenario({ kind: 'local', platform: 'linux/amd64' });
    const over = await credentialScenario({
      kind: 'containerd',
      address: `unix://${ours.socket}`,
      namespace: 'k8s.io',
      snapshotter: ours.snapshotter,
      platform: 'linux/amd64',
    });
    // Over containerd: A pulled once (onPulled told), with A's Secret in the pull record; B without
    // credentials must pull (and is refused) under both policies; C with the Secret uses the image.
    assert.deepEqual(over.pulled, [`${over.image} ${over.id}`]);
    assert.deepEqual(over.credentialMapping?.[`${ctx.fx.regs.basic.host}/private`], {
      kubernetesSecrets: [
        {
          namespace: 'default',
          name: 'regcred',
          uid: 'secret-uid-1',
          credentialHash: credentialHash(over.secret.auth),
        },
      ],
    });
    const outcome = (e: unknown) => {
      const { policy, pod, ok, action, code } = e as Record<string, unknown>;
      return `${String(policy)} ${String(pod)}: ${String(ok)} ${String(action)} ${String(code)}`;
    };
    assert.deepEqual(over.ensures.map(outcome), [
      'NeverVerifyPreloadedImages a: true pulled null',
      'NeverVerifyPreloadedImages b: false failed CREDENTIALS_NOT_VERIFIED',
      'NeverVerifyPreloadedImages c: true used null',
      'AlwaysVerify a: true used null',
      'AlwaysVerify b: false failed CREDENTIALS_NOT_VERIFIED',
      'AlwaysVerify c: true used null',
    ]);
    // Exactly what the same node does over kimg's own store.
    assert.deepEqual(
      { ensures: over.ensures, pulled: over.pulled, credentialMapping: over.credentialMapping },
      { ensures: local.ensures, pulled: local.pulled, credentialMapping: local.credentialMapping },
    );
    // The image is in containerd, for its CRI plugin too (which learns of it from containerd's events).
    let seen: ImageInfo | undefined;
    for (let i = 0; i < 100 && seen === undefined; i++) {
      seen = await oursCri.imageStatus({ image: over.image });
      if (seen === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(seen?.id, over.id);
  });
});
