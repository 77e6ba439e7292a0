/**
 * `kimg pull --containerd` through a registry mirror configured by containerd's own `hosts.toml`
 * (the `certs.d` layout: `<hostsDir>/<registry host>/hosts.toml` with `[host."http://mirror"]
 * capabilities = ["pull", "resolve"]`), against containerd's own CRI PullImage of the same image
 * through the same directory (the CRI plugin's `registry.config_path`):
 * - the image's name uses a host that does not serve it: `localhost:1` (refuses connections), or a
 *   second registry that lacks the image; the mirror has it;
 * - both pulls succeed and containerd's CRI ImageStatus is equal after each (id, repo tags, repo
 *   digests, size);
 * - every blob carries the labels containerd's pull gives it, the distribution source included:
 *   containerd names the host of the image's name (without its port), never the mirror;
 * - a mirror that fails (refuses, or lacks the image) falls through to the next host, and last to the
 *   registry itself, for both;
 * - the CLI takes the directory as `--hosts-dir`, a node's configuration as `kimg.hostsDir`.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadNodeConfig } from '../../src/config/index.js';
import { ContainerdClient } from '../../src/containerd/index.js';
import { CriImageService } from '../../src/cri/index.js';
import { openNodeRuntime } from '../../src/runtime/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import {
  startRegistry,
  stopRegistries,
  type AccessLogEntry,
  type StartedRegistry,
} from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { criEventually as criEventuallyOf, observeImage } from '../helpers/cri-views.js';
import { kimgInProcess as kimg } from '../helpers/cli.js';

/** A loopback port nothing listens on (privileged, never bound here): connections are refused. */
const REFUSING = '127.0.0.1:1';

/** Every blob of a generated image: top-level object, manifests, configs, layers. */
function blobsOf(img: GeneratedImage): string[] {
  const out = new Set<string>([img.digest]);
  for (const m of img.manifests) {
    out.add(m.digest);
    out.add(m.config.digest);
    for (const l of m.layers) out.add(l.digest);
  }
  return [...out];
}

describe('containerd image store through a hosts.toml mirror: kimg and containerd alike', () => {
  let work = '';
  let mirror: StartedRegistry;
  let upstream: StartedRegistry;
  let ctrd: StartedContainerd;
  let client: ContainerdClient;
  let cri: CriImageService;
  let mirrored: GeneratedImage;
  let direct: GeneratedImage;

  /** `<certsDir>/<host>/hosts.toml`, read by containerd's CRI plugin on each pull and by kimg. */
  async function writeHostsToml(host: string, lines: readonly string[]): Promise<void> {
    const dir = join(ctrd.certsDir, host);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'hosts.toml'), [...lines, ''].join('\n'));
  }

  /** Labels of every blob of `img` in containerd's content store (undefined: not there). */
  async function labelsOf(img: GeneratedImage): Promise<Record<string, Record<string, string> | undefined>> {
    const out: Record<string, Record<string, string> | undefined> = {};
    for (const d of blobsOf(img)) out[d] = (await client.contentInfo(d))?.labels;
    return out;
  }

  /** CRI's view once its event monitor has caught up with records another client created. */
  const criEventually = (image: string, expected: unknown): Promise<unknown> =>
    criEventuallyOf(cri, image, expected);

  /** Requests each registry received while `fn` ran. */
  async function requestsDuring<T>(fn: () => Promise<T>): Promise<{
    result: T;
    mirror: AccessLogEntry[];
    upstream: AccessLogEntry[];
  }> {
    const [m0, u0] = [(await mirror.accessLog()).length, (await upstream.accessLog()).length];
    const result = await fn();
    return {
      result,
      mirror: (await mirror.accessLog()).slice(m0),
      upstream: (await upstream.accessLog()).slice(u0),
    };
  }

  /**
   * containerd's CRI PullImage of `image`, then kimg's pull of it (`ourPull`, default
   * {@link cliPull}) after containerd's RemoveImage collected everything: the CRI observations and every blob's labels
   * after each, and the registry requests of each pull.
   */
  async function bothPull(
    image: string,
    img: GeneratedImage,
    ourPull: (image: string) => Promise<string> = cliPull,
  ) {
    const theirs = await requestsDuring(async () => {
      const ref = await cri.pullImage({ image }, undefined);
      return { ref, status: observeImage(await cri.imageStatus({ image })), labels: await labelsOf(img) };
    });
    await cri.removeImage({ image: theirs.result.ref });
    assert.equal(observeImage(await cri.imageStatus({ image })), 'absent');
    for (const [d, l] of Object.entries(await labelsOf(img)))
      assert.equal(l, undefined, `${d} was collected with containerd's image`);

    const ours = await requestsDuring(async () => ({
      id: await ourPull(image),
      status: await criEventually(image, theirs.result.status),
      labels: await labelsOf(img),
    }));
    assert.equal(ours.result.id, theirs.result.ref);
    assert.deepEqual(ours.result.status, theirs.result.status);
    assert.deepEqual(ours.result.labels, theirs.result.labels);
    // Leave no record behind for the next case.
    await cri.removeImage({ image: ours.result.id });
    assert.equal(await criEventually(image, 'absent'), 'absent');
    return { theirs, ours };
  }

  /** `kimg pull --containerd <socket> --hosts-dir <certsDir>`: the image id it reports. */
  async function cliPull(image: string): Promise<string> {
    const p = await kimg(
      'pull',
      '--containerd',
      ctrd.socket,
      '--hosts-dir',
      ctrd.certsDir,
      '--platform',
      'linux/amd64',
      '--progress',
      'none',
      '-o',
      'json',
      image,
    );
    assert.equal(p.status, 0, p.stderr);
    return (JSON.parse(p.stdout) as { id: string }).id;
  }

  /** Registry requests for repository `repo` (`/v2/<repo>/…`). */
  const forRepo = (log: readonly AccessLogEntry[], repo: string) =>
    log.filter((e) => e.path.startsWith(`/v2/${repo}/`));

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    work = await makeTempDir('ctrd-mirror-');
    const regs = Promise.all([startRegistry({ mode: 'plain' }), startRegistry({ mode: 'plain' })]);
    const started = startContainerd({ namespace: 'k8s.io' });
    [mirrored, direct] = await Promise.all([
      generateImage(join(work, 'mirrored'), {
        name: 'mirrored',
        layers: [{ size: 5000 }, { size: 7000, kind: 'text' }],
        user: '1000:1000',
      }),
      generateImage(join(work, 'direct'), { name: 'direct', layers: [{ size: 3000 }, { size: 1200 }] }),
    ]);
    [mirror, upstream] = await regs;
    ctrd = await started;
    await Promise.all([
      skopeoPush(mirrored, mirror, 'lib/mirrored:1'),
      // Only upstream has this one: the mirror answers 404 for it.
      skopeoPush(direct, upstream, 'lib/direct:1'),
    ]);
    // `localhost:1` refuses: only its mirror serves it.
    await writeHostsToml('localhost:1', [
      `[host."http://${mirror.host}"]`,
      '  capabilities = ["pull", "resolve"]',
    ]);
    // upstream: first a mirror that refuses, then the mirror, last upstream itself.
    await writeHostsToml(upstream.host, [
      `server = "http://${upstream.host}"`,
      '',
      `[host."http://${REFUSING}"]`,
      '  capabilities = ["pull", "resolve"]',
      '',
      `[host."http://${mirror.host}"]`,
      '  capabilities = ["pull", "resolve"]',
    ]);
    client = new ContainerdClient({ address: ctrd.socket });
    cri = new CriImageService({ endpoint: ctrd.address });
  });

  after(async () => {
    cri?.close();
    client?.close();
    await ctrd?.stop();
    await stopRegistries([mirror, upstream]);
    if (work) await removeTempDir(work);
  });

  test('a name whose host refuses, served by its mirror: the same CRI image and blob labels as containerd’s pull', async () => {
    const image = 'localhost:1/lib/mirrored:1';
    const { theirs, ours } = await bothPull(image, mirrored);
    const status = theirs.result.status as { id: string; repoTags: string[]; repoDigests: string[] };
    assert.equal(status.id, mirrored.manifests[0]!.config.digest);
    assert.deepEqual(status.repoTags, [image]);
    assert.deepEqual(status.repoDigests, [`localhost:1/lib/mirrored@${mirrored.digest}`]);
    // containerd labels with the name's host (Go's url.Hostname: no port), not the mirror's.
    for (const [d, labels] of Object.entries(ours.result.labels)) {
      assert.equal(labels?.['containerd.io/distribution.source.localhost'], 'lib/mirrored', d);
      assert.deepEqual(
        Object.keys(labels ?? {}).filter((k) => k.startsWith('containerd.io/distribution.source.')),
        ['containerd.io/distribution.source.localhost'],
        d,
      );
    }
    // Both fetched from the mirror.
    for (const pull of [theirs, ours]) {
      assert.ok(forRepo(pull.mirror, 'lib/mirrored').some((e) => e.status === 200));
      assert.deepEqual(forRepo(pull.upstream, 'lib/mirrored'), []);
    }
  });

  test('a second registry without the image: the refusing mirror is skipped, the next one serves', async () => {
    const image = `${upstream.host}/lib/mirrored:1`;
    const { theirs, ours } = await bothPull(image, mirrored);
    for (const [d, labels] of Object.entries(ours.result.labels))
      assert.equal(labels?.['containerd.io/distribution.source.127.0.0.1'], 'lib/mirrored', d);
    for (const pull of [theirs, ours]) {
      assert.ok(forRepo(pull.mirror, 'lib/mirrored').some((e) => e.status === 200));
      // upstream, which lacks the image, is never asked: the mirror answered.
      assert.deepEqual(forRepo(pull.upstream, 'lib/mirrored'), []);
    }
  });

  test('mirrors that refuse or lack the image: the pull falls back to the registry itself', async () => {
    const image = `${upstream.host}/lib/direct:1`;
    const { theirs, ours } = await bothPull(image, direct);
    for (const [d, labels] of Object.entries(ours.result.labels))
      assert.equal(labels?.['containerd.io/distribution.source.127.0.0.1'], 'lib/direct', d);
    for (const pull of [theirs, ours]) {
      const asked = forRepo(pull.mirror, 'lib/direct');
      assert.ok(
        asked.length > 0 && asked.every((e) => e.status === 404),
        `the mirror was asked and lacks it: ${JSON.stringify(asked)}`,
      );
      assert.ok(
        forRepo(pull.upstream, 'lib/direct').some((e) => /\/blobs\//.test(e.path) && e.status === 200),
      );
    }
  });

  test('a node configured with kimg.hostsDir and kimg.containerd pulls through the mirror as containerd does', async () => {
    const file = join(work, 'kubelet.yaml');
    await writeFile(
      file,
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        'kimg:',
        `  rootDir: ${join(work, 'root')}`,
        `  hostsDir: ${ctrd.certsDir}`,
        '  containerd:',
        `    address: unix://${ctrd.socket}`,
        `    snapshotter: ${ctrd.snapshotter}`,
        '',
      ].join('\n'),
    );
    const config = await loadNodeConfig([file]);
    assert.equal(config.kimg.hostsDir, ctrd.certsDir);
    const runtime = await openNodeRuntime(config, {
      env: {},
      imageService: {
        kind: 'containerd',
        address: config.kimg.containerd!.address,
        snapshotter: ctrd.snapshotter,
        platform: 'linux/amd64',
      },
      credentials: false,
      verification: 'read-only',
    });
    try {
      const image = 'localhost:1/lib/mirrored:1';
      const { ours } = await bothPull(image, mirrored, (i) =>
        runtime.imageService.pullImage({ image: i }, undefined),
      );
      assert.ok(forRepo(ours.mirror, 'lib/mirrored').some((e) => e.status === 200));
    } finally {
      await runtime.close();
    }
  });
});
