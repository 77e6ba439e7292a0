/**
 * CRI differential, kimg over containerd: the same CRI calls through kimg's CRI client against
 * - **containerd**: a private containerd's own CRI plugin, and
 * - **kimg-containerd**: `kimg serve` with the containerd backend (the composition root's
 *   `{kind: 'containerd'}`) over a second private containerd: PullImage runs kimg's pipeline into that
 *   containerd; ListImages / ImageStatus / RemoveImage answer from its store;
 * over the same registries and images. Observations (id, repo tags, repo digests, size, uid/username,
 * pinned, presence) must be equal. Also: containerd's own CRI plugin on the second containerd sees
 * what kimg pulled the same way, and the CLI's `--containerd` commands (pull, images, inspect, rmi).
 * The runtime over containerd tells `onPulled` of its pulls and leaves the same pull records as over
 * kimg's store: pods without credentials are treated alike under each verification policy.
 *
 * Known difference, asserted where it occurs: ImageFsInfo describes each daemon's own filesystem.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CliContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/program.js';
import { loadNodeConfig } from '../../src/config/index.js';
import { Secret, credentialHash } from '../../src/credentials/index.js';
import { CriImageService, startCriServer, type CriServer } from '../../src/cri/index.js';
import {
  FilePullRecords,
  type CredentialCandidate,
  type ImageInfo,
  type PodInfo,
} from '../../src/manager/index.js';
import { openNodeRuntime, type ImageServiceBackend, type NodeRuntime } from '../../src/runtime/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { Sink } from '../helpers/output.js';
import { startRegistries, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { writeFile } from 'node:fs/promises';

type Target = 'containerd' | 'kimg-containerd';

function observe(i: ImageInfo | undefined): unknown {
  if (i === undefined) return 'absent';
  return {
    id: i.id,
    repoTags: [...i.repoTags].sort(),
    repoDigests: [...i.repoDigests].sort(),
    size: i.size,
    uid: i.uid ?? null,
    username: i.username ?? null,
    pinned: i.pinned,
  };
}

describe('cri differential: kimg serve over containerd vs containerd', () => {
  let work = '';
  let regs: Record<'plain' | 'basic', StartedRegistry>;
  let theirs: StartedContainerd;
  let ours: StartedContainerd;
  let runtime: NodeRuntime;
  let server: CriServer;
  const clients = {} as Record<Target, CriImageService>;
  let oursCri: CriImageService;
  let small: GeneratedImage;
  let named: GeneratedImage;
  let multi: GeneratedImage;
  let privateImg: GeneratedImage;

  async function same<T>(what: string, fn: (c: CriImageService, t: Target) => Promise<T>): Promise<T> {
    const c = await fn(clients.containerd, 'containerd');
    const k = await fn(clients['kimg-containerd'], 'kimg-containerd');
    assert.deepEqual(k, c, `${what}: kimg over containerd (actual) differs from containerd (expected)`);
    return k;
  }

  async function kimg(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
    const stdout = new Sink();
    const stderr = new Sink();
    const ctx: CliContext = { stdout, stderr, env: {}, exitStatus: 0 };
    const status = await runCli(['node', 'kimg', ...args], ctx);
    return { status, stdout: stdout.text, stderr: stderr.text };
  }

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    work = await makeTempDir('ctrd-diff-');
    const startedRegs = startRegistries(['plain', 'basic']);
    const started = Promise.all([startContainerd(), startContainerd()]);
    [small, named, multi, privateImg] = await Promise.all([
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
      generateImage(join(work, 'private'), { name: 'private-app', layers: [{ size: 5000 }] }),
    ]);
    regs = await startedRegs;
    [theirs, ours] = await started;
    for (const r of Object.values(regs)) for (const c of [theirs, ours]) await c.addPlainHttpRegistry(r.host);
    await Promise.all([
      skopeoPush(small, regs.plain, 'small:1'),
      skopeoPush(small, regs.plain, 'small-docker:1', { format: 'v2s2' }),
      skopeoPush(named, regs.plain, 'named:1'),
      skopeoPush(multi, regs.plain, 'multi:1'),
      skopeoPush(small, regs.basic, 'small:1'),
      skopeoPush(privateImg, regs.basic, 'private:v1'),
    ]);
    // The composition root, configured the way a node's file does it.
    const configFile = join(work, 'kubelet.yaml');
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
    server = await startCriServer({ listen: `unix://${work}/kimg.sock`, imageService: runtime.imageService });
    clients.containerd = new CriImageService({ endpoint: theirs.address });
    clients['kimg-containerd'] = new CriImageService({ endpoint: server.address });
    oursCri = new CriImageService({ endpoint: ours.address });
  });

  after(async () => {
    for (const c of Object.values(clients)) c.close();
    oursCri?.close();
    await server?.close({ drainTimeoutMs: 1000 });
    await runtime?.close().catch(() => undefined);
    await Promise.all([theirs?.stop(), ours?.stop()]);
    await stopRegistries(Object.values(regs ?? {}));
    if (work) await removeTempDir(work);
  });

  test('the runtime picked the containerd backend', () => {
    assert.equal(runtime.backend.kind, 'containerd');
    assert.ok(runtime.containerd);
  });

  for (const [label, image] of [
    ['OCI', () => `${regs.plain.host}/small:1`],
    ['Docker schema 2', () => `${regs.plain.host}/small-docker:1`],
    ['named user', () => `${regs.plain.host}/named:1`],
    ['OCI index', () => `${regs.plain.host}/multi:1`],
    ['by digest', () => `${regs.plain.host}/small@${small.digest}`],
  ] as const) {
    test(`${label}: PullImage ref and ImageStatus (by name, id, short id) are equal`, async () => {
      const name = image();
      const ref = await same('image_ref', (c) => c.pullImage({ image: name }, undefined));
      await same('ImageStatus', async (c) => observe(await c.imageStatus({ image: name })));
      await same('ImageStatus by id', async (c) => observe(await c.imageStatus({ image: ref })));
      await same('ImageStatus by short id', async (c) =>
        observe(await c.imageStatus({ image: ref.slice('sha256:'.length, 'sha256:'.length + 12) })),
      );
    });
  }

  test('Basic auth through the CRI AuthConfig', async () => {
    const name = `${regs.basic.host}/small:1`;
    const auth = { username: regs.basic.username!, password: new Secret(regs.basic.password!) };
    await same('image_ref', (c) => c.pullImage({ image: name }, auth));
    await same('ImageStatus', async (c) => observe(await c.imageStatus({ image: name })));
  });

  test('ListImages is the same set; containerd CRI on kimg’s containerd agrees', async () => {
    const list = (xs: ImageInfo[]) =>
      xs.map(observe).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    const l = await same('ListImages', async (c) => list(await c.listImages()));
    // containerd's own CRI plugin over the containerd kimg wrote into lists the same images.
    let seen: unknown;
    for (let i = 0; i < 100; i++) {
      seen = list(await oursCri.listImages());
      if (JSON.stringify(seen) === JSON.stringify(l)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(seen, l);
  });

  test('RemoveImage by tag removes every name; removing an absent image succeeds', async () => {
    const name = `${regs.plain.host}/named:1`;
    await same('RemoveImage', async (c) => c.removeImage({ image: name }));
    await same('ImageStatus after remove', async (c) => observe(await c.imageStatus({ image: name })));
    await same('RemoveImage absent', async (c) => c.removeImage({ image: name }));
    // containerd collected the content of the removed image.
    const left = (await ours.ctr(['content', 'ls', '-q'], { namespace: 'k8s.io' })).stdout;
    assert.ok(!left.includes(named.manifests[0]!.layers[0]!.digest));
  });

  test('ImageFsInfo: kimg over containerd answers containerd’s own image filesystem', async () => {
    const fs = await clients['kimg-containerd'].imageFsInfo();
    const own = await oursCri.imageFsInfo();
    assert.equal(fs[0]?.mountpoint, own[0]?.mountpoint);
    assert.ok(fs[0]!.mountpoint.includes(ours.baseDir));
  });

  test('CLI --containerd: pull, images, inspect, rmi', async () => {
    const name = `${regs.plain.host}/small:1`;
    const sock = ours.socket;
    const p = await kimg(
      'pull',
      '--containerd',
      sock,
      '--plain-http',
      regs.plain.host,
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
    assert.equal(pulled.id, small.manifests[0]!.config.digest);
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
    const image = `${regs.basic.host}/private:v1`;
    const secret: CredentialCandidate = {
      key: regs.basic.host,
      auth: { username: regs.basic.username!, password: new Secret(regs.basic.password!) },
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
        registry: { plainHttp: [regs.basic.host] },
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
    assert.deepEqual(over.credentialMapping?.[`${regs.basic.host}/private`], {
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
