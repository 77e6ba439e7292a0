/**
 * kimg's CRI ImageService against real registries (plain, Basic, token), called through kimg's own CRI
 * client over a unix socket: PullImage (anonymous, AuthConfig username/password, `auth` base64,
 * token), the Image fields as containerd fills them (id = config digest, tags, digests, size, uid /
 * username from the config's User), verbose ImageStatus (`info` with chainID + imageSpec),
 * ListImages, RemoveImage by tag (removes every tag), empty-status and idempotent-remove semantics,
 * runtime handlers, error codes (containerd's: NotFound, Unknown for auth failures and bad names,
 * RegistryUnavailable prefix with Unknown),
 * concurrent PullImage of one image fetching each blob once, and `kimg serve` + `kimg cri` as
 * processes (socket permissions, SIGTERM drain of an in-flight pull and exit, stale socket replaced).
 * Needs docker-registry and skopeo.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CriImageService, startCriServer, storeVerboseInfo, type CriServer } from '../../src/cri/index.js';
import { loadCriPackage } from '../../src/cri/proto.js';
import { Secret } from '../../src/credentials/index.js';
import { isKimgError, type KimgError } from '../../src/errors/index.js';
import { LocalImageService } from '../../src/manager/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { requireBinary } from '../helpers/components.js';
import { startFaultServer } from '../helpers/fault-server.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, runCommand, spawnTracked, waitFor, type TrackedProcess } from '../helpers/proc.js';
import {
  startRegistries,
  stopRegistries,
  type AccessLogEntry,
  type StartedRegistry,
} from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CANARY = 'Cri-Canary-Pw-5521';
const MAIN = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');

function blobGets(entries: AccessLogEntry[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of entries) {
    const m = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(e.path);
    if (e.method === 'GET' && m?.[1]) out.set(m[1], (out.get(m[1]) ?? 0) + 1);
  }
  return out;
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('cri: kimg serve (in-process) over real registries', () => {
  let work = '';
  let regs: Record<'plain' | 'basic' | 'token', StartedRegistry>;
  let small: GeneratedImage;
  let named: GeneratedImage;
  let multi: GeneratedImage;
  let conc: GeneratedImage;
  let store: Store;
  let registry: RegistryClient;
  let server: CriServer;
  let cri: CriImageService;
  let downPort = 0;
  let proc: TrackedProcess | undefined;

  const creds = () => ({ username: 'kimg', password: new Secret(CANARY) });
  const configDigest = (img: GeneratedImage, i = 0) => img.manifests[i]!.config.digest;

  before(async () => {
    requireBinary('skopeo');
    work = await makeTempDir('cri-');
    const started = startRegistries(['plain', 'basic', 'token'], { password: CANARY });
    [small, named, multi, conc] = await Promise.all([
      generateImage(join(work, 'small'), {
        name: 'small',
        layers: [{ size: 4096 }, { size: 9000, kind: 'text' }],
        user: '1000:1000',
      }),
      generateImage(join(work, 'named'), { name: 'named', layers: [{ size: 2048 }], user: 'nobody' }),
      generateImage(join(work, 'multi'), {
        name: 'multi',
        layers: [{ size: 3000 }],
        platforms: [
          { os: 'linux', architecture: 'amd64' },
          { os: 'linux', architecture: 'arm64', variant: 'v8' },
        ],
      }),
      generateImage(join(work, 'conc'), {
        name: 'conc',
        layers: [{ size: 600_000 }, { size: 300_000 }, { size: 1000 }],
      }),
    ]);
    regs = await started;
    await Promise.all([
      skopeoPush(small, regs.plain, 'small:1'),
      skopeoPush(small, regs.plain, 'small:2'),
      skopeoPush(small, regs.plain, 'small-docker:1', { format: 'v2s2' }),
      skopeoPush(named, regs.plain, 'named:1'),
      skopeoPush(multi, regs.plain, 'multi:1'),
      skopeoPush(conc, regs.plain, 'conc:1'),
      skopeoPush(small, regs.basic, 'small:1'),
      skopeoPush(small, regs.token, 'small:1'),
    ]);
    downPort = await closedPort();
    store = await openStore({ root: join(work, 'root') });
    registry = new RegistryClient({
      plainHttp: [regs.plain.host, regs.basic.host, regs.token.host, `127.0.0.1:${downPort}`],
    });
    server = await startCriServer({
      listen: `unix://${work}/run/kimg.sock`,
      imageService: new LocalImageService({ store, registry, platform: 'linux/amd64' }),
      verboseInfo: storeVerboseInfo(store),
    });
    cri = new CriImageService({ endpoint: server.address });
  });

  after(async () => {
    cri?.close();
    await server?.close({ drainTimeoutMs: 1000 });
    await store?.close().catch(() => undefined);
    await registry?.close().catch(() => undefined);
    if (proc) await killProcess(proc);
    await stopRegistries(Object.values(regs ?? {}));
    if (work) await removeTempDir(work);
  });

  test('PullImage (plain, OCI): image_ref = config digest = Image.id; fields as containerd fills them', async () => {
    const name = `${regs.plain.host}/small:1`;
    const ref = await cri.pullImage({ image: name }, undefined);
    assert.equal(ref, configDigest(small));
    const img = await cri.imageStatus({ image: name });
    assert.ok(img);
    assert.equal(img.id, ref);
    assert.deepEqual(img.repoTags, [name]);
    assert.deepEqual(img.repoDigests, [`${regs.plain.host}/small@${small.digest}`]);
    assert.ok(img.size > 0);
    assert.equal(img.uid, 1000, 'User 1000:1000 → uid 1000');
    assert.equal(img.username, undefined);
    assert.equal(img.pinned, false);
    // by id and by id prefix, too
    assert.equal((await cri.imageStatus({ image: ref }))?.id, ref);
  });

  test('a named User gives username, not uid', async () => {
    const name = `${regs.plain.host}/named:1`;
    await cri.pullImage({ image: name }, undefined);
    const img = await cri.imageStatus({ image: name });
    assert.equal(img?.username, 'nobody');
    assert.equal(img?.uid, undefined);
  });

  test('Docker media types and a multi-arch index give the same kind of id (the config digest)', async () => {
    const docker = await cri.pullImage({ image: `${regs.plain.host}/small-docker:1` }, undefined);
    assert.equal(docker, configDigest(small), 'skopeo v2s2 keeps the config bytes');
    const m = await cri.pullImage({ image: `${regs.plain.host}/multi:1` }, undefined);
    const amd64 = multi.manifests.findIndex((x) => x.platform?.architecture === 'amd64');
    assert.equal(m, configDigest(multi, amd64));
    const img = await cri.imageStatus({ image: `${regs.plain.host}/multi:1` });
    assert.deepEqual(
      img?.repoDigests,
      [`${regs.plain.host}/multi@${multi.digest}`],
      'repo digest is the index digest',
    );
  });

  test('verbose ImageStatus: info.info is JSON with chainID and the OCI config (imageSpec)', async () => {
    const v = await cri.imageStatusVerbose({ image: `${regs.plain.host}/small:1` });
    const info = JSON.parse(v.info.info ?? '{}') as {
      chainID: string;
      imageSpec: { config: { User: string }; rootfs: { diff_ids: string[] } };
    };
    assert.equal(info.imageSpec.config.User, '1000:1000');
    assert.deepEqual(
      info.imageSpec.rootfs.diff_ids,
      small.manifests[0]!.layers.map((l) => l.diffId),
    );
    assert.match(info.chainID, /^sha256:[0-9a-f]{64}$/);
  });

  test('Basic auth: AuthConfig username/password and `auth` base64 work; none or wrong → UNAUTHORIZED', async () => {
    const name = `${regs.basic.host}/small:1`;
    await assert.rejects(cri.pullImage({ image: name }, undefined), (e: unknown) => {
      assert.ok(isKimgError(e, ['UNAUTHORIZED', 'TOKEN_REFUSED']), String(e));
      // containerd's code: Unknown, so the kubelet shows the registry's message itself.
      assert.equal((e as unknown as KimgError).details.actual, 'Unknown');
      assert.match((e as Error).message, /^failed to pull and unpack image "/);
      return true;
    });
    await assert.rejects(
      cri.pullImage({ image: name }, { username: 'kimg', password: new Secret('wrong-pw') }),
      (e: unknown) =>
        isKimgError(e, ['UNAUTHORIZED', 'TOKEN_REFUSED']) && !(e as Error).message.includes(CANARY),
    );
    assert.equal(await cri.pullImage({ image: name }, creds()), configDigest(small));
    await cri.removeImage({ image: name });
    // `auth` (base64 user:pass), sent by a raw client since kimg's client sends username/password
    const pkg = loadCriPackage();
    const raw = new pkg.ImageService(server.address, grpc.credentials.createInsecure());
    try {
      const res = await new Promise<{ image_ref: string }>((resolve, reject) =>
        raw.PullImage(
          {
            image: { image: name } as never,
            auth: { auth: Buffer.from(`kimg:${CANARY}`).toString('base64') } as never,
          },
          new grpc.Metadata(),
          {},
          (e, r) => (e ? reject(e) : resolve(r!)),
        ),
      );
      assert.equal(res.image_ref, configDigest(small));
      // server_address of another registry: containerd drops the credentials → anonymous → refused
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        raw.PullImage(
          {
            image: { image: `${regs.basic.host}/small:1` } as never,
            auth: { username: 'kimg', password: CANARY, server_address: 'elsewhere.example' } as never,
          },
          new grpc.Metadata(),
          {},
          (e) => resolve(e),
        ),
      );
      // the image is present now, but PullImage always goes to the registry
      assert.equal(err?.code, grpc.status.UNKNOWN);
    } finally {
      raw.close();
    }
  });

  test('token auth: with credentials and anonymously (pull-only tokens)', async () => {
    const name = `${regs.token.host}/small:1`;
    assert.equal(await cri.pullImage({ image: name }, creds()), configDigest(small));
    assert.equal(await cri.pullImage({ image: name }, undefined), configDigest(small));
    await assert.rejects(
      cri.pullImage({ image: name }, { username: 'kimg', password: new Secret('nope') }),
      (e: unknown) => isKimgError(e, ['UNAUTHORIZED', 'TOKEN_REFUSED']),
    );
  });

  test('ListImages lists each image once with all its tags; RemoveImage by one tag removes all tags', async () => {
    const t1 = `${regs.plain.host}/small:1`;
    const t2 = `${regs.plain.host}/small:2`;
    await cri.pullImage({ image: t1 }, undefined);
    await cri.pullImage({ image: t2 }, undefined);
    const listed = (await cri.listImages()).filter((i) => i.id === configDigest(small));
    assert.equal(listed.length, 1, 'one entry per image id');
    for (const t of [t1, t2])
      assert.ok(listed[0]!.repoTags.includes(t), `${t} in ${listed[0]!.repoTags.join(',')}`);
    await cri.removeImage({ image: t1 });
    assert.equal(await cri.imageStatus({ image: t1 }), undefined);
    assert.equal(
      await cri.imageStatus({ image: t2 }),
      undefined,
      'removing by one tag removes the image with all its tags',
    );
    assert.ok(!(await cri.listImages()).some((i) => i.id === configDigest(small)));
    // absent: status is empty, remove succeeds
    assert.equal(await cri.imageStatus({ image: t1 }), undefined);
    await cri.removeImage({ image: t1 });
  });

  test('runtime_handler is part of the identity', async () => {
    const name = `${regs.plain.host}/named:1`;
    await cri.removeImage({ image: name });
    await cri.pullImage({ image: name, runtimeHandler: 'kata' }, undefined);
    assert.equal(await cri.imageStatus({ image: name }), undefined, 'not present for the default handler');
    const k = await cri.imageStatus({ image: name, runtimeHandler: 'kata' });
    assert.equal(k?.spec?.runtimeHandler, 'kata');
    await cri.removeImage({ image: name, runtimeHandler: 'kata' });
    assert.equal(await cri.imageStatus({ image: name, runtimeHandler: 'kata' }), undefined);
  });

  test('errors: missing tag → NotFound; registry down → Unknown + RegistryUnavailable prefix; bad name → Unknown', async () => {
    await assert.rejects(
      cri.pullImage({ image: `${regs.plain.host}/small:nope` }, undefined),
      (e: unknown) => {
        assert.ok(isKimgError(e, 'NOT_FOUND'), String(e));
        assert.equal((e as unknown as KimgError).details.actual, 'NotFound');
        return true;
      },
    );
    await assert.rejects(cri.pullImage({ image: `127.0.0.1:${downPort}/x:1` }, undefined), (e: unknown) => {
      assert.ok(isKimgError(e, 'REGISTRY_UNAVAILABLE'), String(e));
      assert.equal((e as unknown as KimgError).details.actual, 'Unknown');
      assert.match((e as Error).message, /^RegistryUnavailable: /);
      return true;
    });
    await assert.rejects(cri.pullImage({ image: 'UPPER/Case:1' }, undefined), (e: unknown) => {
      assert.equal((e as unknown as KimgError).details.actual, 'Unknown');
      assert.match((e as Error).message, /^failed to parse image reference "UPPER\/Case:1": /);
      return true;
    });
  });

  test('ImageFsInfo: the store root, used bytes > 0, timestamp in ns', async () => {
    const fs = await cri.imageFsInfo();
    assert.equal(fs[0]?.mountpoint, store.root);
    assert.ok((fs[0]?.usedBytes ?? 0) > 0);
    assert.ok((fs[0]?.timestamp ?? 0) > 1e18);
  });

  test('concurrent PullImage of one image: every blob is fetched from the registry once', async () => {
    const name = `${regs.plain.host}/conc:1`;
    const before = (await regs.plain.accessLog()).length;
    const refs = await Promise.all(
      Array.from({ length: 4 }, () => cri.pullImage({ image: name }, undefined)),
    );
    assert.deepEqual(new Set(refs), new Set([configDigest(conc)]));
    const gets = blobGets((await regs.plain.accessLog()).slice(before));
    const m = conc.manifests[0]!;
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)])
      assert.equal(gets.get(d), 1, `${d} fetched ${gets.get(d)} times`);
  });

  test('kimg serve + kimg cri as processes: 0700/0600, version/pull/images/inspecti/rmi/imagefsinfo, SIGTERM exits 0', async () => {
    const sock = join(work, 'srv', 'kimg.sock');
    const endpoint = `unix://${sock}`;
    const errFile = join(work, 'serve.err');
    proc = spawnTracked(
      'kimg-serve',
      process.execPath,
      [MAIN, 'serve', '--listen', endpoint, '--root', join(work, 'root2'), '--plain-http', regs.plain.host],
      {
        stderrFile: errFile,
      },
    );
    // Ready = the "listening" line, printed once the socket is bound and chmod 0600 (the socket file
    // appears at bind time, a moment before its chmod; the 0700 directory keeps others out meanwhile).
    await waitFor(
      'kimg serve listening',
      async () =>
        (await readFile(errFile, 'utf8').catch(() => '')).includes('kimg serve: listening on')
          ? true
          : undefined,
      {
        watch: proc,
        timeoutMs: 20_000,
      },
    );
    assert.ok((await stat(sock)).isSocket());
    assert.equal((await stat(join(work, 'srv'))).mode & 0o777, 0o700);
    assert.equal((await stat(sock)).mode & 0o777, 0o600);
    const kimg = (...args: string[]) =>
      runCommand(process.execPath, [MAIN, 'cri', '--endpoint', endpoint, ...args], { allowFailure: true });
    const v = await kimg('version', '-o', 'json');
    assert.equal(v.code, 0, v.stderr);
    assert.equal(JSON.parse(v.stdout).runtimeName, 'kimg');
    const name = `${regs.plain.host}/small:1`;
    const p = await kimg('pull', name);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout, `Image is up to date for ${configDigest(small)}\n`);
    const imgs = await kimg('images');
    assert.match(imgs.stdout, /^IMAGE\s+TAG\s+IMAGE ID\s+SIZE/);
    assert.ok(imgs.stdout.includes(`${regs.plain.host}/small`), imgs.stdout);
    assert.ok(imgs.stdout.includes(configDigest(small).slice(7, 20)), imgs.stdout);
    const js = JSON.parse((await kimg('images', '-o', 'json')).stdout) as { images: Array<{ id: string }> };
    assert.equal(js.images[0]?.id, configDigest(small));
    const insp = JSON.parse((await kimg('inspecti', name)).stdout) as {
      status: { id: string };
      info: { info: { chainID: string } };
    };
    assert.equal(insp.status.id, configDigest(small));
    assert.match(insp.info.info.chainID, /^sha256:/);
    const fsi = JSON.parse((await kimg('imagefsinfo')).stdout) as {
      imageFilesystems: Array<{ mountpoint: string }>;
    };
    assert.equal(fsi.imageFilesystems[0]?.mountpoint, join(work, 'root2'));
    const rm = await kimg('rmi', name);
    assert.equal(rm.stdout, `Deleted: ${name}\n`);
    const missing = await kimg('inspecti', name);
    assert.equal(missing.code, 3);
    const down = await kimg('pull', `${regs.plain.host}/small:nope`);
    assert.equal(down.code, 3, down.stderr);
    process.kill(proc.pid, 'SIGTERM');
    const exit = await proc.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    await assert.rejects(stat(sock), /ENOENT/, 'the socket is removed on exit');
  });

  test('kimg serve replaces the stale socket of a SIGKILLed run', async () => {
    const sock = join(work, 'srv2', 'kimg.sock');
    const args = [MAIN, 'serve', '--listen', `unix://${sock}`, '--root', join(work, 'root3')];
    const first = spawnTracked('kimg-serve-1', process.execPath, args);
    await waitFor(
      'first socket',
      async () => ((await stat(sock).catch(() => undefined))?.isSocket() ? true : undefined),
      {
        watch: first,
        timeoutMs: 20_000,
      },
    );
    await killProcess(first); // SIGKILL: the socket file stays
    assert.ok((await stat(sock)).isSocket());
    proc = spawnTracked('kimg-serve-2', process.execPath, args);
    const c = new CriImageService({ endpoint: sock, timeoutMs: 2000 });
    try {
      const v = await waitFor('second server answers', async () => c.version().catch(() => undefined), {
        watch: proc,
        timeoutMs: 20_000,
      });
      assert.equal(v.runtimeName, 'kimg');
    } finally {
      c.close();
    }
    await killProcess(proc);
  });
  test('kimg serve on SIGTERM drains: an in-flight PullImage finishes, then the process exits 0', async () => {
    // A scripted registry serving `small` whose layer download is held until the test releases it.
    const fault = await startFaultServer();
    const blob = (d: string) => readFile(join(small.layoutDir, 'blobs', 'sha256', d.replace('sha256:', '')));
    const manifest = await blob(small.digest);
    const m = small.manifests[0]!;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let layerRequested!: () => void;
    const requested = new Promise<void>((r) => (layerRequested = r));
    const manifestRoute = (req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, {
        'content-type': small.mediaType,
        'content-length': manifest.length,
        'docker-content-digest': small.digest,
      });
      res.end(req.method === 'HEAD' ? undefined : manifest);
    };
    fault.route('HEAD', '/v2/small/manifests/1', manifestRoute);
    fault.route('GET', '/v2/small/manifests/1', manifestRoute);
    fault.route('GET', /^\/v2\/small\/blobs\//, async (req, res) => {
      const digest = (req.url ?? '').split('/').pop()!.split('?')[0]!;
      const data = await blob(digest);
      if (digest !== m.config.digest) {
        layerRequested();
        await gate;
      }
      res
        .writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length })
        .end(data);
    });
    const sock = join(work, 'drain', 'kimg.sock');
    const errFile = join(work, 'drain.err');
    const p = spawnTracked(
      'kimg-serve-drain',
      process.execPath,
      [
        MAIN,
        'serve',
        '--listen',
        `unix://${sock}`,
        '--root',
        join(work, 'root-drain'),
        '--plain-http',
        fault.host,
      ],
      { stderrFile: errFile },
    );
    const c = new CriImageService({ endpoint: sock, timeoutMs: 5000 });
    try {
      await waitFor('kimg serve answers', async () => c.version().catch(() => undefined), {
        watch: p,
        timeoutMs: 20_000,
      });
      const pull = c.pullImage({ image: `${fault.host}/small:1` }, undefined);
      await requested;
      process.kill(p.pid, 'SIGTERM');
      await waitFor(
        'drain message',
        async () => ((await readFile(errFile, 'utf8')).includes('draining 1 in-flight') ? true : undefined),
        {
          watch: p,
          timeoutMs: 20_000,
        },
      );
      assert.equal(p.exitInfo(), undefined, 'still running while the pull is in flight');
      release();
      assert.equal(await pull, m.config.digest, 'the in-flight pull completed');
      assert.deepEqual(await p.exited, { code: 0, signal: null });
    } finally {
      release();
      c.close();
      await killProcess(p);
      await fault.close();
    }
  });
});
