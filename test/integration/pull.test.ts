/**
 * The pull pipeline against real registries: every harness mode (plain, Basic, token,
 * redirect, TLS), OCI and Docker media types, multi-platform selection, single-flight downloads,
 * cached layers, progress events, and the `kimg pull` CLI (`-o json`, JSON-lines progress, exit
 * statuses, no password in any output). The images land in a real OCI layout that skopeo and umoci
 * read. Needs docker-registry, skopeo and umoci (the test fails, never skips, when they are missing).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import type { CliContext } from '../../src/cli/context.js';
import { Secret } from '../../src/credentials/index.js';
import { isKimgError } from '../../src/errors/index.js';
import { MediaType } from '../../src/oci/index.js';
import {
  RegistryClient,
  type BlobSink,
  type OpenBlobOptions,
  type RegistryClientOptions,
  type RepositoryRef,
} from '../../src/registry/index.js';
import {
  pullImage,
  pullImageEvents,
  type ImagePullEvent,
  type ImagePullResult,
} from '../../src/pull/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { requireBinary } from '../helpers/components.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { runCommand } from '../helpers/proc.js';
import {
  startRegistries,
  stopRegistries,
  type AccessLogEntry,
  type RegistryMode,
  type StartedRegistry,
} from '../helpers/registry.js';
import { skopeo, skopeoInspectRaw, skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { Sink } from '../helpers/output.js';

const CANARY = 'Pull-Canary-Pw-93be';
const MODES = ['plain', 'basic', 'token', 'redirect', 'tls'] as const satisfies readonly RegistryMode[];
type Mode = (typeof MODES)[number];
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const PLATFORMS = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
  { os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348.2113' },
];

/** GET requests for blobs in an access log slice, counted per digest. */
function blobGets(entries: AccessLogEntry[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of entries) {
    const m = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(e.path);
    if (e.method === 'GET' && m?.[1]) out.set(m[1], (out.get(m[1]) ?? 0) + 1);
  }
  return out;
}

/**
 * A client whose blob streams (of blobs over `holdAt` bytes) stop after `holdAt` bytes while held: a
 * download paused in the middle, so a test can cancel it, or join it, at a known point.
 */
class HoldingClient extends RegistryClient {
  readonly holdAt = 1024 * 1024;
  private gate: Promise<void> | undefined;
  private reach: () => void = () => {};
  /** Resolves when a held stream has reached `holdAt`. */
  reached: Promise<void> = Promise.resolve();

  /** Holds the streams opened from now on. */
  hold(): void {
    this.gate = new Promise(() => {});
    this.reached = new Promise((r) => (this.reach = r));
  }
  /** Streams opened from now on are not held (held ones stay held until destroyed). */
  unhold(): void {
    this.gate = undefined;
  }
  override async copyBlob(
    repo: RepositoryRef,
    desc: { digest: string; size: number },
    sink: BlobSink,
    opts: OpenBlobOptions = {},
  ): Promise<void> {
    const gate = this.gate;
    if (!gate || desc.size <= this.holdAt) return super.copyBlob(repo, desc, sink, opts);
    const at = this.holdAt;
    const reach = this.reach;
    let passed = opts.offset ?? 0;
    // Past `holdAt` the sink reports itself full and its drain waits for the gate.
    const held: BlobSink = {
      write(chunk) {
        const before = passed;
        passed += chunk.length;
        const ok = sink.write(chunk);
        if (passed < at) return ok;
        if (before < at) reach();
        return false;
      },
      onDrain(cb) {
        void gate.then(() => sink.onDrain(cb));
      },
    };
    return super.copyBlob(repo, desc, held, opts);
  }
}

describe('pull: registry → store', () => {
  let work = '';
  let regs: Record<Mode, StartedRegistry>;
  let small: GeneratedImage;
  let multi: GeneratedImage;
  let sharedA: GeneratedImage;
  let sharedB: GeneratedImage;
  let cancel: GeneratedImage;
  let umoci = '';
  const stores: Store[] = [];
  const clients: RegistryClient[] = [];
  let roots = 0;

  const reg = (m: Mode): StartedRegistry => regs[m];
  const creds = () => ({ username: 'kimg', password: new Secret(CANARY) });

  async function newStore(): Promise<Store> {
    const s = await openStore({ root: join(work, `root-${roots++}`) });
    stores.push(s);
    return s;
  }
  function client(extra: RegistryClientOptions = {}): RegistryClient {
    const c = new RegistryClient({
      plainHttp: MODES.filter((m) => m !== 'tls').map((m) => reg(m).host),
      caFiles: [reg('tls').caFile!],
      ...extra,
    });
    clients.push(c);
    return c;
  }
  /** Access-log entries of `r` appended while `fn` ran. */
  async function logDuring<T>(
    r: StartedRegistry,
    fn: () => Promise<T>,
  ): Promise<{ value: T; log: AccessLogEntry[] }> {
    const before = (await r.accessLog()).length;
    const value = await fn();
    return { value, log: (await r.accessLog()).slice(before) };
  }

  async function kimg(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
    const stdout = new Sink();
    const stderr = new Sink();
    const ctx: CliContext = { stdout, stderr, env: {}, exitStatus: 0 };
    const status = await runCli(['node', 'kimg', ...args], ctx);
    const all = stdout.text + stderr.text;
    assert.ok(!all.includes(CANARY), `the password leaked into the output of kimg ${args.join(' ')}`);
    return { status, stdout: stdout.text, stderr: stderr.text };
  }
  const plainFlags = (): string[] =>
    MODES.filter((m) => m !== 'tls').flatMap((m) => ['--plain-http', reg(m).host]);

  before(async () => {
    umoci = requireBinary('umoci');
    requireBinary('skopeo');
    work = await makeTempDir('pull-');
    const started = startRegistries(MODES, { password: CANARY });
    [small, multi, sharedA, sharedB, cancel] = await Promise.all([
      generateImage(join(work, 'small'), {
        name: 'small',
        layers: [{ size: 4096 }, { size: 20_000, kind: 'text' }],
      }),
      generateImage(join(work, 'multi'), { name: 'multi', layers: [{ size: 3000 }], platforms: PLATFORMS }),
      // Same name and tag (both seed the layer tar's info.txt), different layouts: layers 0 and 1 are
      // byte-identical, layer 2 differs by size, so do the configs.
      generateImage(join(work, 'shared-a'), {
        name: 'shared',
        layers: [{ size: 300_000, seed: 'base' }, { size: 100_000, seed: 'mid' }, { size: 5000 }],
      }),
      generateImage(join(work, 'shared-b'), {
        name: 'shared',
        layers: [{ size: 300_000, seed: 'base' }, { size: 100_000, seed: 'mid' }, { size: 7000 }],
      }),
      generateImage(join(work, 'cancel'), { name: 'cancel', layers: [{ size: 3 * 1024 * 1024 }] }),
    ]);
    regs = await started;
    await Promise.all([
      ...MODES.map((m) => skopeoPush(small, reg(m), 'small:1')),
      skopeoPush(small, reg('plain'), 'small-docker:1', { format: 'v2s2' }),
      skopeoPush(multi, reg('plain'), 'multi:1'),
      skopeoPush(multi, reg('plain'), 'multi-docker:1', { format: 'v2s2' }),
      skopeoPush(sharedA, reg('plain'), 'shared-a:1'),
      skopeoPush(sharedB, reg('plain'), 'shared-b:1'),
      skopeoPush(cancel, reg('plain'), 'cancel:1'),
    ]);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const s of stores) await s.close().catch(() => undefined);
    await stopRegistries(Object.values(regs ?? {}));
    if (work) await removeTempDir(work);
  });

  test('every registry mode: the image lands with the registry digest; skopeo and umoci read the store', async () => {
    const store = await newStore();
    const c = client();
    for (const mode of MODES) {
      const r = reg(mode);
      const name = `${r.host}/small:1`;
      const auth = mode === 'plain' || mode === 'tls' ? null : creds();
      const { value: res, log } = await logDuring(r, () => pullImage(name, { store, registry: c, auth }));
      const m = small.manifests[0]!;
      assert.equal(res.record.name, name);
      assert.equal(res.record.digest, small.digest, `${mode}: record digest = registry digest`);
      assert.equal(res.record.manifestDigest, small.digest);
      assert.equal(res.record.mediaType, MediaType.OciManifest);
      assert.equal(res.record.imageId, m.config.digest);
      assert.deepEqual(
        res.record.layers.map((l) => l.digest),
        m.layers.map((l) => l.digest),
      );
      assert.equal(res.record.size, small.blobBytes);
      assert.deepEqual(res.record.platform, { os: 'linux', architecture: 'amd64' });
      for (const d of [small.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
        assert.ok(await store.content.hasBlob(d), `${mode}: ${d} is in the store`);
        assert.equal(sha256(await store.content.readBlob(d, { verify: false })), d);
      }
      assert.equal((await store.images.get({ name, runtimeHandler: '' }))?.digest, small.digest);
      // The first mode downloads the blobs; later modes share the store, so they only fetch the manifest.
      const gets = blobGets(log);
      if (mode === MODES[0]) assert.equal(gets.size, 3, `${mode}: config + 2 layers downloaded`);
      else assert.equal(gets.size, 0, `${mode}: blobs already in the store are not downloaded`);

      const info = JSON.parse((await skopeo(['inspect', `oci:${store.root}/oci:${name}`])).stdout) as {
        Digest: string;
        Layers: string[];
      };
      assert.equal(info.Digest, small.digest, `${mode}: skopeo inspect oci: shows the registry digest`);
      assert.deepEqual(
        info.Layers,
        m.layers.map((l) => l.digest),
      );
      const st = await runCommand(umoci, ['stat', '--image', `${store.root}/oci:${name}`]);
      for (const l of m.layers)
        assert.ok(st.stdout.includes(l.digest), `${mode}: umoci stat lists ${l.digest}`);
    }
  });

  test('redirect: blobs come from 127.0.0.2 with no Authorization; token: the token server issued the pull token', async () => {
    const store = await newStore();
    const c = client();
    await pullImage(`${reg('redirect').host}/small:1`, { store, registry: c, auth: creds() });
    const served = reg('redirect')
      .blobHost!.requests()
      .filter((r) => r.method === 'GET');
    assert.ok(served.length >= 3, `the blob host served the blobs (${served.length} GETs)`);
    assert.ok(
      served.every((r) => !r.authorization),
      'Authorization reached the 127.0.0.2 blob host',
    );
    const access = await reg('redirect').accessLog();
    assert.ok(access.some((a) => a.method === 'GET' && a.path.includes('/blobs/') && a.status === 307));

    const t = reg('token').token!;
    const before = t.requests().length;
    const anon = await kimg(
      'pull',
      ...plainFlags(),
      '--root',
      (await newStore()).root,
      `${reg('token').host}/small:1`,
      '--progress',
      'none',
    );
    assert.equal(anon.status, 0, anon.stderr);
    const anonReqs = t.requests().slice(before);
    assert.ok(
      anonReqs.length > 0 && anonReqs.every((q) => q.user === undefined && q.granted),
      'an anonymous pull token',
    );
    const mid = t.requests().length;
    const withCreds = await kimg(
      'pull',
      ...plainFlags(),
      '--creds',
      `kimg:${CANARY}`,
      '--root',
      (await newStore()).root,
      `${reg('token').host}/small:1`,
      '--progress',
      'none',
      '-o',
      'json',
    );
    assert.equal(withCreds.status, 0, withCreds.stderr);
    assert.equal((JSON.parse(withCreds.stdout) as { digest: string }).digest, small.digest);
    const credReqs = t.requests().slice(mid);
    assert.ok(
      credReqs.length > 0 && credReqs.every((q) => q.user === 'kimg' && q.granted),
      'a token for user kimg',
    );
  });

  test('--platform selects linux/amd64, linux/arm64/v8, linux/arm/v7 and windows/amd64 from an index (CLI)', async () => {
    const root = (await newStore()).root;
    for (const [i, p] of PLATFORMS.entries()) {
      const spec = `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
      const r = await kimg(
        'pull',
        ...plainFlags(),
        '--root',
        root,
        '--platform',
        spec,
        `${reg('plain').host}/multi:1`,
        '-o',
        'json',
        '--progress',
        'none',
      );
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { digest: string; id: string; platform: string };
      assert.equal(out.digest, multi.digest, 'the record digest is the index digest');
      assert.equal(out.id, multi.manifests[i]!.config.digest, `${spec}: the config of that platform`);
      assert.equal(out.platform, spec);
      const info = JSON.parse(
        (await skopeo(['inspect', `oci:${root}/oci:${reg('plain').host}/multi:1`])).stdout,
      ) as {
        Digest: string;
        Os: string;
        Architecture: string;
      };
      assert.equal(info.Digest, multi.manifests[i]!.digest, `${spec}: the store names the selected manifest`);
      assert.equal(info.Architecture, p.architecture);
    }
    await runCommand(umoci, ['stat', '--image', `${root}/oci:${reg('plain').host}/multi:1`]);
  });

  test('wrong platform → PLATFORM_NOT_FOUND (exit 3), without downloading layers', async () => {
    const plain = reg('plain');
    const arm = multi.manifests[1]!;
    const root = (await newStore()).root;
    const { value: single, log } = await logDuring(plain, () =>
      kimg(
        'pull',
        ...plainFlags(),
        '--root',
        root,
        '--platform',
        'linux/amd64',
        `${plain.host}/multi@${arm.digest}`,
      ),
    );
    assert.equal(single.status, 3, single.stderr);
    assert.match(single.stderr, /PLATFORM_NOT_FOUND/);
    assert.match(single.stderr, /linux\/arm64\/v8/);
    assert.equal(
      blobGets(log).get(arm.layers[0]!.digest),
      undefined,
      'the layers of the wrong platform were not downloaded',
    );

    const none = await kimg(
      'pull',
      ...plainFlags(),
      '--root',
      root,
      '--platform',
      'linux/s390x',
      `${plain.host}/multi:1`,
    );
    assert.equal(none.status, 3, none.stderr);
    assert.match(none.stderr, /PLATFORM_NOT_FOUND/);
    const store = await openStore({ root });
    try {
      assert.deepEqual(await store.images.list(), [], 'no record for a failed pull');
    } finally {
      await store.close();
    }
  });

  test('single-flight: concurrent pulls of one image and of images sharing layers download each blob once', async () => {
    const plain = reg('plain');
    const store = await newStore();
    const c = client();
    const names = [`${plain.host}/shared-a:1`, `${plain.host}/shared-b:1`];
    const { value: results, log } = await logDuring(plain, () =>
      Promise.all(
        [names[0]!, names[0]!, names[1]!, names[0]!, names[1]!].map((n) =>
          pullImage(n, { store, registry: c, auth: null, concurrency: 2 }),
        ),
      ),
    );
    const gets = blobGets(log);
    const wanted = new Set(
      [sharedA, sharedB].flatMap((img) => [
        img.manifests[0]!.config.digest,
        ...img.manifests[0]!.layers.map((l) => l.digest),
      ]),
    );
    assert.equal(wanted.size, 6, 'two shared layers, one unique layer and a config per image');
    assert.deepEqual(new Set(gets.keys()), wanted);
    for (const [d, n] of gets) assert.equal(n, 1, `${d} was downloaded ${n} times`);
    const downloaded = results.reduce((a, r) => a + r.stats.blobsDownloaded, 0);
    assert.equal(downloaded, 6, 'six downloads in all; every other blob joined one');
    assert.equal(results[0]!.record.digest, sharedA.digest);
    assert.equal(results[2]!.record.digest, sharedB.digest);

    // A second pull of the same tag: the manifest only, zero blob GETs.
    const again = await logDuring(plain, () => pullImage(names[0]!, { store, registry: c, auth: null }));
    assert.equal(blobGets(again.log).size, 0, 'layers already in the store are not downloaded again');
    assert.deepEqual(
      {
        downloaded: again.value.stats.blobsDownloaded,
        reused: again.value.stats.blobsReused,
        bytes: again.value.stats.bytesDownloaded,
      },
      { downloaded: 0, reused: 4, bytes: 0 },
    );
    assert.ok(
      again.log.some((e) => e.path === '/v2/shared-a/manifests/1'),
      'the tag was resolved again',
    );
    assert.deepEqual((await store.verify()).problems, []);
  });

  test('cancellation: ABORTED keeps the partial download, the next pull resumes it; a joined pull takes over', async () => {
    const plain = reg('plain');
    const name = `${plain.host}/cancel:1`;
    const layer = cancel.manifests[0]!.layers[0]!;
    const c = new HoldingClient({ plainHttp: [plain.host] });
    clients.push(c);
    const layerGets = (log: AccessLogEntry[]) => blobGets(log).get(layer.digest) ?? 0;

    // Cancel in the middle of the layer; the ingest stays, the next pull continues it with Range.
    const store = await newStore();
    const first = await logDuring(plain, async () => {
      c.hold();
      const ctl = new AbortController();
      const p = pullImage(name, { store, registry: c, auth: null, signal: ctl.signal });
      await c.reached;
      ctl.abort(new Error('cancelled by the test'));
      await assert.rejects(p, (e: unknown) => isKimgError(e, 'ABORTED'));
    });
    c.unhold();
    const ingests = await store.content.listIngests();
    assert.equal(ingests.length, 1);
    const kept = ingests[0]!.offset;
    assert.ok(kept > 0 && kept < layer.size, `the partial download was kept (${kept} bytes)`);
    assert.equal(ingests[0]!.expected, layer.digest);
    assert.equal((await store.images.list()).length, 0, 'no record for a cancelled pull');
    const events: ImagePullEvent[] = [];
    const second = await logDuring(plain, () =>
      pullImage(name, { store, registry: c, auth: null, onProgress: (e) => events.push(e) }),
    );
    const start = events.find((e) => e.type === 'layer-start' && e.digest === layer.digest);
    assert.deepEqual(start, {
      type: 'layer-start',
      digest: layer.digest,
      size: layer.size,
      kind: 'layer',
      cached: false,
      resumedFrom: kept,
    });
    assert.deepEqual(
      {
        resumed: second.value.stats.blobsResumed,
        downloaded: second.value.stats.blobsDownloaded,
        bytes: second.value.stats.bytesDownloaded,
      },
      { resumed: 1, downloaded: 1, bytes: layer.size - kept },
    );
    assert.equal(layerGets(first.log) + layerGets(second.log), 2, 'one GET, then one ranged GET');
    assert.deepEqual(await store.content.listIngests(), []);
    assert.deepEqual((await store.verify()).problems, []);

    // Two pulls of one image: the second joins the first's download; the first is cancelled; the
    // second takes over (resuming the first's ingest) instead of failing.
    const store2 = await newStore();
    const eventsB: ImagePullEvent[] = [];
    const both = await logDuring(plain, async () => {
      c.hold();
      const ctl = new AbortController();
      const a = pullImage(name, { store: store2, registry: c, auth: null, signal: ctl.signal });
      await c.reached;
      let joined: () => void = () => {};
      const hasJoined = new Promise<void>((r) => (joined = r));
      const b = pullImage(name, {
        store: store2,
        registry: c,
        auth: null,
        onProgress: (e) => {
          eventsB.push(e);
          if (e.type === 'layer-start' && e.digest === layer.digest && e.cached) joined();
        },
      });
      await hasJoined;
      c.unhold();
      ctl.abort(new Error('cancelled by the test'));
      await assert.rejects(a, (e: unknown) => isKimgError(e, 'ABORTED'));
      return b;
    });
    const b = both.value;
    assert.equal(b.record.digest, cancel.digest);
    assert.equal(b.stats.blobsResumed, 1, "the second pull continued the first one's ingest");
    const starts = eventsB.filter(
      (e): e is Extract<ImagePullEvent, { type: 'layer-start' }> =>
        e.type === 'layer-start' && e.digest === layer.digest,
    );
    assert.deepEqual(
      starts.map((e) => [e.cached, e.resumedFrom > 0]),
      [
        [true, false],
        [false, true],
      ],
      'joined, then took over',
    );
    assert.equal(layerGets(both.log), 2);
    assert.deepEqual((await store2.verify()).problems, []);
  });

  test('progress events: callback and async iterator; error on failure', async () => {
    const plain = reg('plain');
    const c = client();
    const m = small.manifests[0]!;
    const blobs = [m.config.digest, ...m.layers.map((l) => l.digest)];
    const check = (events: ImagePullEvent[], result: ImagePullResult) => {
      const types = events.map((e) => e.type);
      assert.equal(types[0], 'resolved');
      assert.equal(types.at(-1), 'committed');
      assert.ok(!types.includes('error'));
      const resolved = events[0] as Extract<ImagePullEvent, { type: 'resolved' }>;
      assert.equal(resolved.digest, small.digest);
      assert.equal(resolved.manifestDigest, small.digest);
      assert.equal(resolved.image, `${plain.host}/small:1`);
      const committed = events.at(-1) as Extract<ImagePullEvent, { type: 'committed' }>;
      assert.deepEqual(committed, {
        type: 'committed',
        image: `${plain.host}/small:1`,
        id: m.config.digest,
        digest: small.digest,
        size: small.blobBytes,
      });
      for (const d of blobs) {
        const start = events.findIndex((e) => e.type === 'layer-start' && e.digest === d);
        const done = events.findIndex((e) => e.type === 'layer-done' && e.digest === d);
        assert.ok(start > 0 && done > start, `${d}: layer-start then layer-done`);
        const s = events[start] as Extract<ImagePullEvent, { type: 'layer-start' }>;
        assert.equal(s.kind, d === m.config.digest ? 'config' : 'layer');
        assert.equal(s.cached, false);
        assert.equal(s.resumedFrom, 0);
        const bytes = events.filter(
          (e): e is Extract<ImagePullEvent, { type: 'bytes' }> => e.type === 'bytes' && e.digest === d,
        );
        assert.ok(bytes.length >= 1, `${d}: bytes events`);
        assert.equal(bytes.at(-1)!.completed, bytes.at(-1)!.total);
        assert.equal(bytes.at(-1)!.total, s.size);
        const idx = events.indexOf(bytes.at(-1)!);
        assert.ok(idx > start && idx < done, `${d}: bytes between start and done`);
        assert.deepEqual(events[done], { type: 'layer-done', digest: d, size: s.size, downloaded: true });
      }
      assert.equal(result.stats.blobsDownloaded, 3);
      assert.equal(result.stats.bytesDownloaded, m.config.size + m.layers.reduce((a, l) => a + l.size, 0));
    };

    const viaCallback: ImagePullEvent[] = [];
    const r1 = await pullImage(`${plain.host}/small:1`, {
      store: await newStore(),
      registry: c,
      auth: null,
      onProgress: (e) => viaCallback.push(e),
    });
    check(viaCallback, r1);

    const viaIterator: ImagePullEvent[] = [];
    const it = pullImageEvents(`${plain.host}/small:1`, { store: await newStore(), registry: c, auth: null });
    let step = await it.next();
    while (!step.done) {
      viaIterator.push(step.value);
      step = await it.next();
    }
    check(viaIterator, step.value);

    // A second pull into the same store: every blob cached.
    const cached: ImagePullEvent[] = [];
    await pullImage(`${plain.host}/small:1`, {
      store: stores.at(-1)!,
      registry: c,
      onProgress: (e) => cached.push(e),
    });
    const starts = cached.filter((e) => e.type === 'layer-start');
    assert.equal(starts.length, 3);
    assert.ok(starts.every((e) => e.type === 'layer-start' && e.cached));
    assert.ok(!cached.some((e) => e.type === 'bytes'));

    const failing: ImagePullEvent[] = [];
    await assert.rejects(
      pullImage(`${plain.host}/does-not-exist:1`, {
        store: await newStore(),
        registry: c,
        onProgress: (e) => failing.push(e),
      }),
      (e: unknown) => isKimgError(e, 'NOT_FOUND'),
    );
    assert.equal(failing.at(-1)?.type, 'error');
    assert.equal((failing.at(-1) as { code: string }).code, 'NOT_FOUND');
    const it2 = pullImageEvents(`${plain.host}/does-not-exist:1`, { store: stores.at(-1)!, registry: c });
    await assert.rejects(
      (async () => {
        for await (const _ of it2) void _;
      })(),
      (e: unknown) => isKimgError(e, 'NOT_FOUND'),
    );
  });

  test('CLI: -o json shape, JSON-lines progress on a non-TTY stderr, several images at once', async () => {
    const plain = reg('plain');
    const root = (await newStore()).root;
    const r = await kimg('pull', ...plainFlags(), '--root', root, `${plain.host}/small:1`, '-o', 'json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(
      { name: out.name, digest: out.digest, id: out.id, size: out.size, platform: out.platform },
      {
        name: `${plain.host}/small:1`,
        digest: small.digest,
        id: small.manifests[0]!.config.digest,
        size: small.blobBytes,
        platform: 'linux/amd64',
      },
    );
    const stats = out.stats as Record<string, number>;
    assert.equal(stats.blobsDownloaded, 3);
    assert.equal(typeof stats.seconds, 'number');
    assert.ok(typeof out.maxRSS === 'number' && out.maxRSS > 0);

    const lines = r.stderr
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; image: string; time: string });
    const types = lines.map((l) => l.type);
    assert.equal(types[0], 'resolved');
    assert.deepEqual(types.slice(-2), ['committed', 'summary']);
    for (const t of ['layer-start', 'bytes', 'layer-done']) assert.ok(types.includes(t), `a ${t} line`);
    assert.ok(lines.every((l) => l.image === `${plain.host}/small:1` && !Number.isNaN(Date.parse(l.time))));

    const two = await kimg(
      'pull',
      ...plainFlags(),
      '--root',
      root,
      '--progress',
      'none',
      `${plain.host}/small:1`,
      `${plain.host}/shared-b:1`,
      '-o',
      'json',
    );
    assert.equal(two.status, 0, two.stderr);
    assert.equal(two.stderr, '', '--progress none prints nothing');
    const arr = JSON.parse(two.stdout) as { name: string; digest: string }[];
    assert.deepEqual(
      arr.map((x) => [x.name, x.digest]),
      [
        [`${plain.host}/small:1`, small.digest],
        [`${plain.host}/shared-b:1`, sharedB.digest],
      ],
    );
    // One image failing does not stop the others: the rest are pulled and printed, the status is the failure's.
    const partial = await kimg(
      'pull',
      ...plainFlags(),
      '--root',
      root,
      '--progress',
      'none',
      `${plain.host}/nope:1`,
      `${plain.host}/shared-a:1`,
      '-o',
      'json',
    );
    assert.equal(partial.status, 3, partial.stderr);
    assert.match(partial.stderr, /^error: .*nope.* \(NOT_FOUND\)\n$/);
    assert.deepEqual(
      (JSON.parse(partial.stdout) as { digest: string }[]).map((x) => x.digest),
      [sharedA.digest],
    );
    const table = await kimg(
      'pull',
      ...plainFlags(),
      '--root',
      root,
      '--progress',
      'none',
      `${plain.host}/small:1`,
    );
    assert.equal(table.status, 0);
    assert.match(table.stdout, /^IMAGE +DIGEST +IMAGE ID +SIZE +PLATFORM\n/);
    assert.ok(table.stdout.includes(small.digest.slice(7, 20)));
  });

  test('CLI: auth failures are UNAUTHORIZED (exit 4) naming the host, with no password in the output', async () => {
    const root = (await newStore()).root;
    for (const mode of ['basic', 'redirect'] as const) {
      const r = reg(mode);
      const missing = await kimg('pull', ...plainFlags(), '--root', root, `${r.host}/small:1`);
      assert.equal(missing.status, 4, missing.stderr);
      assert.match(missing.stderr, /\(UNAUTHORIZED\)/);
      assert.ok(missing.stderr.includes(r.host), `${mode}: the host is named: ${missing.stderr}`);
      const wrong = await kimg(
        'pull',
        ...plainFlags(),
        '--root',
        root,
        '--creds',
        `kimg:x${CANARY}`,
        `${r.host}/small:1`,
      );
      assert.equal(wrong.status, 4, wrong.stderr);
      assert.match(wrong.stderr, /\(UNAUTHORIZED\)/);
      assert.ok(wrong.stderr.includes(r.host), `${mode}: the host is named: ${wrong.stderr}`);
    }
    const tok = await kimg(
      'pull',
      ...plainFlags(),
      '--root',
      root,
      '--creds',
      `kimg:x${CANARY}`,
      `${reg('token').host}/small:1`,
    );
    assert.equal(tok.status, 4, tok.stderr);
    assert.ok(tok.stderr.includes(reg('token').host), tok.stderr);
    const ok = await kimg(
      'pull',
      ...plainFlags(),
      '--root',
      root,
      '--creds',
      `kimg:${CANARY}`,
      `${reg('basic').host}/small:1`,
      '-o',
      'json',
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { digest: string }).digest, small.digest);
  });

  test('CLI: a missing repository or tag is NOT_FOUND (exit 3)', async () => {
    const root = (await newStore()).root;
    const plain = reg('plain');
    for (const ref of [`${plain.host}/no-such-repo:1`, `${plain.host}/small:no-such-tag`]) {
      const r = await kimg('pull', ...plainFlags(), '--root', root, ref);
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, /\(NOT_FOUND\)/);
      assert.match(r.stderr, /"type":"error"/, 'the JSON progress ends with an error event');
    }
  });

  test('Docker schema2 manifest and manifest list are stored byte-for-byte under the registry digest', async () => {
    const plain = reg('plain');
    const store = await newStore();
    const c = client();
    const raw = Buffer.from(await skopeoInspectRaw('small-docker:1', plain));
    assert.equal((JSON.parse(raw.toString()) as { mediaType: string }).mediaType, MediaType.DockerManifest);
    const r = await pullImage(`${plain.host}/small-docker:1`, { store, registry: c, auth: null });
    assert.equal(r.record.digest, sha256(raw));
    assert.equal(r.record.mediaType, MediaType.DockerManifest);
    assert.deepEqual(
      await store.content.readBlob(r.record.digest),
      raw,
      'the manifest bytes are the registry bytes',
    );

    const rawList = Buffer.from(await skopeoInspectRaw('multi-docker:1', plain));
    const list = JSON.parse(rawList.toString()) as {
      mediaType: string;
      manifests: { digest: string; platform: { architecture: string } }[];
    };
    assert.equal(list.mediaType, MediaType.DockerManifestList);
    const l = await pullImage(`${plain.host}/multi-docker:1`, {
      store,
      registry: c,
      auth: null,
      platform: 'linux/arm/v7',
    });
    assert.equal(l.record.digest, sha256(rawList));
    assert.equal(l.record.mediaType, MediaType.DockerManifestList);
    assert.equal(
      l.record.manifestDigest,
      list.manifests.find((x) => x.platform.architecture === 'arm')?.digest,
    );
    assert.equal(l.record.manifestMediaType, MediaType.DockerManifest);
    assert.deepEqual(await store.content.readBlob(l.record.digest), rawList);
    assert.deepEqual((await store.verify()).problems, []);
  });

  test('TLS: pull with --ca-file; without it TLS_ERROR (exit 5)', async () => {
    const tls = reg('tls');
    const root = (await newStore()).root;
    // Loopback registries default to plain HTTP; a hosts directory asks for HTTPS without a CA.
    const hostsDir = join(root, '..', 'certs.d-https');
    await mkdir(join(hostsDir, tls.host), { recursive: true });
    await writeFile(join(hostsDir, tls.host, 'hosts.toml'), `server = "https://${tls.host}"\n`);
    const bad = await kimg('pull', '--root', root, '--hosts-dir', hostsDir, `${tls.host}/small:1`);
    assert.equal(bad.status, 5, bad.stderr);
    assert.match(bad.stderr, /\(TLS_ERROR\)/);
    const ok = await kimg(
      'pull',
      '--root',
      root,
      '--ca-file',
      tls.caFile!,
      `${tls.host}/small:1`,
      '-o',
      'json',
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { digest: string }).digest, small.digest);
    const v = await kimg('store', 'verify', '--root', root);
    assert.match(v.stdout, /no problems/);
  });
});
