/**
 * kimg's CRI server and client over a real unix socket with a scripted ImageService: socket directory
 * and file permissions, stale-socket replacement, refusing a live socket or a non-socket path, the
 * empty-status / idempotent-remove semantics, AuthConfig delivery, error codes on the wire, client
 * cancellation reaching the service, and graceful drain on close (in-flight pulls finish, new calls
 * are refused; after the drain timeout they are cancelled).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CriImageService, startCriServer, type CriServer } from '../../../src/cri/index.js';
import type { AuthConfig } from '../../../src/credentials/index.js';
import { KimgError, isKimgError } from '../../../src/errors/index.js';
import type {
  ImageInfo,
  ImageService,
  ImageServiceCallOptions,
  ImageSpec,
} from '../../../src/manager/index.js';

const ID = 'sha256:' + 'c'.repeat(64);
const INFO: ImageInfo = {
  id: ID,
  repoTags: ['r.io/app:1'],
  repoDigests: ['r.io/app@sha256:' + 'd'.repeat(64)],
  size: 1234,
  pinned: false,
  uid: 0,
  spec: { image: ID },
};

/** A scripted image service: one image `r.io/app:1`, hooks for pulls. */
class FakeService implements ImageService {
  present = true;
  lastAuth: AuthConfig | undefined;
  lastSpec: ImageSpec | undefined;
  pull: (spec: ImageSpec, signal: AbortSignal | undefined) => Promise<string> = async () => ID;
  removed: string[] = [];
  async imageStatus(spec: ImageSpec): Promise<ImageInfo | undefined> {
    this.lastSpec = spec;
    return this.present && (spec.image === 'r.io/app:1' || spec.image === ID) ? INFO : undefined;
  }
  async pullImage(
    spec: ImageSpec,
    auth: AuthConfig | undefined,
    _s?: unknown,
    o?: ImageServiceCallOptions,
  ): Promise<string> {
    this.lastAuth = auth;
    this.lastSpec = spec;
    return this.pull(spec, o?.signal);
  }
  async listImages(): Promise<ImageInfo[]> {
    return this.present ? [INFO] : [];
  }
  async removeImage(spec: ImageSpec): Promise<void> {
    this.removed.push(spec.image);
  }
  async imageFsInfo() {
    return [
      { timestamp: 1_700_000_000_000_000_000, mountpoint: '/var/lib/kimg', usedBytes: 42, inodesUsed: 3 },
    ];
  }
}

/** Waits until `p` settles or `ms` pass; true when it settled. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((res) => (t = setTimeout(() => res(false), ms))),
  ]);
  clearTimeout(t);
  return r;
}

describe('cri server + client (unix socket, scripted service)', () => {
  let dir = '';
  let fake: FakeService;
  let server: CriServer;
  let client: CriImageService;
  const extraServers: CriServer[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kimg-cri-'));
    fake = new FakeService();
    server = await startCriServer({
      listen: `unix://${dir}/run/sub/kimg.sock`,
      imageService: fake,
      version: { runtimeVersion: '9.9.9' },
    });
    client = new CriImageService({ endpoint: server.address });
  });
  after(async () => {
    client?.close();
    await server?.close({ drainTimeoutMs: 100 });
    for (const s of extraServers) await s.close({ drainTimeoutMs: 100 });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the socket directory is 0700 and the socket 0600; Version answers', async () => {
    assert.equal((await stat(join(dir, 'run', 'sub'))).mode & 0o777, 0o700);
    const st = await stat(server.socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(await client.version(), {
      version: '0.1.0',
      runtimeName: 'kimg',
      runtimeVersion: '9.9.9',
      runtimeApiVersion: 'v1',
    });
  });

  test('ImageStatus: present → Image with every field; absent → undefined (not an error)', async () => {
    assert.deepEqual(await client.imageStatus({ image: 'r.io/app:1' }), INFO);
    assert.equal(await client.imageStatus({ image: 'r.io/nope:1' }), undefined);
    const v = await client.imageStatusVerbose({ image: 'r.io/nope:1' });
    assert.deepEqual(v, { image: undefined, info: {} });
  });

  test('runtime_handler and annotations travel to the service', async () => {
    await client.imageStatus({ image: 'r.io/app:1', runtimeHandler: 'kata', annotations: { a: 'b' } });
    assert.deepEqual(fake.lastSpec, { image: 'r.io/app:1', runtimeHandler: 'kata', annotations: { a: 'b' } });
  });

  test('ListImages, RemoveImage (absent succeeds), ImageFsInfo', async () => {
    assert.deepEqual(await client.listImages(), [INFO]);
    await client.removeImage({ image: 'r.io/gone:1' });
    assert.deepEqual(fake.removed, ['r.io/gone:1']);
    const fs = await client.imageFsInfo();
    assert.equal(fs.length, 1);
    assert.equal(fs[0]!.mountpoint, '/var/lib/kimg');
    assert.equal(fs[0]!.usedBytes, 42);
    assert.equal(fs[0]!.inodesUsed, 3);
  });

  test('PullImage: credentials arrive as Secrets; the ref comes back', async () => {
    const { Secret } = await import('../../../src/credentials/index.js');
    const ref = await client.pullImage(
      { image: 'r.io/app:1' },
      { username: 'u', password: new Secret('pw-canary') },
    );
    assert.equal(ref, ID);
    assert.equal(fake.lastAuth?.username, 'u');
    assert.equal(fake.lastAuth?.password?.reveal(), 'pw-canary');
    assert.equal(String(fake.lastAuth?.password), '<redacted>');
    await client.pullImage({ image: 'r.io/app:1' }, undefined);
    assert.equal(fake.lastAuth, undefined);
  });

  test("errors: containerd's codes and message shape on the wire, RegistryUnavailable prefix with code Unknown, empty image refused", async () => {
    const shaped = (m: string) => `failed to pull and unpack image "r.io/app:1": ${m}`;
    const cases: Array<[KimgError, string, string, string]> = [
      [
        new KimgError('REGISTRY_UNAVAILABLE', 'cannot reach r.io'),
        'REGISTRY_UNAVAILABLE',
        'Unknown',
        `RegistryUnavailable: ${shaped('cannot reach r.io')}`,
      ],
      [
        new KimgError('NOT_FOUND', 'no such tag'),
        'NOT_FOUND',
        'NotFound',
        'rpc error: code = NotFound desc = ' + shaped('no such tag'),
      ],
      [new KimgError('UNAUTHORIZED', 'refused'), 'UNAUTHORIZED', 'Unknown', shaped('refused')],
      [new KimgError('DENIED', 'no access'), 'DENIED', 'Unknown', shaped('no access')],
      [new KimgError('TOO_MANY_REQUESTS', 'slow down'), 'TOO_MANY_REQUESTS', 'Unknown', shaped('slow down')],
    ];
    for (const [err, code, grpcName, message] of cases) {
      fake.pull = async () => {
        throw err;
      };
      await assert.rejects(client.pullImage({ image: 'r.io/app:1' }, undefined), (e: unknown) => {
        assert.ok(isKimgError(e, code as never), `${code}: got ${String(e)}`);
        assert.equal((e as unknown as KimgError).details.actual, grpcName);
        assert.equal((e as Error).message, message);
        return true;
      });
    }
    // A reference that does not parse: containerd's `failed to parse image reference`, code Unknown.
    fake.pull = async () => {
      throw new KimgError('NAME_CONTAINS_UPPERCASE', 'repository name must be lowercase');
    };
    await assert.rejects(client.pullImage({ image: 'r.io/App:1' }, undefined), (e: unknown) => {
      assert.equal((e as unknown as KimgError).details.actual, 'Unknown');
      assert.match((e as Error).message, /^failed to parse image reference "r\.io\/App:1": /);
      return true;
    });
    fake.pull = async () => ID;
    await assert.rejects(client.pullImage({ image: '' }, undefined), (e: unknown) =>
      isKimgError(e, 'INVALID_ARGUMENT'),
    );
  });

  test('a raw grpc client sees code Unknown + the prefix (what cri-client unwraps for the kubelet)', async () => {
    fake.pull = async () => {
      throw new KimgError('REGISTRY_UNAVAILABLE', 'down');
    };
    const { loadCriPackage } = await import('../../../src/cri/proto.js');
    const pkg = loadCriPackage();
    const raw = new pkg.ImageService(server.address, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) =>
        raw.PullImage({ image: { image: 'r.io/app:1' } as never }, new grpc.Metadata(), {}, (e) =>
          resolve(e!),
        ),
      );
      assert.equal(err.code, grpc.status.UNKNOWN);
      assert.equal(err.details, 'RegistryUnavailable: failed to pull and unpack image "r.io/app:1": down');
    } finally {
      raw.close();
      fake.pull = async () => ID;
    }
  });

  test('client cancellation aborts the service call', async () => {
    let seen: AbortSignal | undefined;
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    fake.pull = (_spec, signal) =>
      new Promise((_res, rej) => {
        seen = signal;
        started();
        signal?.addEventListener('abort', () => rej(new KimgError('ABORTED', 'cancelled')));
      });
    const ac = new AbortController();
    const p = client.pullImage({ image: 'r.io/app:1' }, undefined, undefined, { signal: ac.signal });
    await running;
    ac.abort();
    await assert.rejects(p, (e: unknown) => isKimgError(e, 'ABORTED'));
    for (let i = 0; i < 50 && !seen?.aborted; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen?.aborted, true);
    fake.pull = async () => ID;
  });

  test('a live socket is refused, a non-socket path is refused and left alone', async () => {
    await assert.rejects(
      startCriServer({ listen: server.address, imageService: fake }),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT') && /already listening/.test((e as Error).message),
    );
    const file = join(dir, 'not-a-socket');
    await writeFile(file, 'keep me');
    await assert.rejects(startCriServer({ listen: file, imageService: fake }), (e: unknown) =>
      isKimgError(e, 'INVALID_ARGUMENT'),
    );
    assert.equal(await readFile(file, 'utf8'), 'keep me');
  });

  test('a stale socket left by a killed process is replaced', async () => {
    const path = join(dir, 'stale.sock');
    // A process that binds the socket and dies by SIGKILL leaves the file behind.
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    await new Promise((r) => child.once('exit', r));
    assert.ok((await stat(path)).isSocket(), 'the killed process left its socket');
    const s = await startCriServer({ listen: path, imageService: fake });
    extraServers.push(s);
    const c = new CriImageService({ endpoint: path });
    try {
      assert.equal((await c.version()).runtimeName, 'kimg');
    } finally {
      c.close();
    }
  });

  test('close() drains: an in-flight pull finishes, new calls are refused, the socket is removed', async () => {
    const path = join(dir, 'drain.sock');
    const svc = new FakeService();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    svc.pull = async () => {
      started();
      await gate;
      return ID;
    };
    const s = await startCriServer({ listen: path, imageService: svc });
    const c = new CriImageService({ endpoint: path });
    try {
      const pull = c.pullImage({ image: 'r.io/app:1' }, undefined);
      await running;
      assert.equal(s.inFlight(), 1);
      const closing = s.close({ drainTimeoutMs: 60_000 });
      assert.equal(await settlesWithin(closing, 200), false, 'close waits for the in-flight pull');
      const c2 = new CriImageService({ endpoint: path });
      await assert.rejects(c2.version(), (e: unknown) => isKimgError(e, 'RUNTIME_UNAVAILABLE'));
      c2.close();
      release();
      assert.equal(await pull, ID);
      await closing;
      await assert.rejects(stat(path), /ENOENT/);
    } finally {
      c.close();
    }
  });

  test('close() cancels what is still running after the drain timeout', async () => {
    const path = join(dir, 'force.sock');
    const svc = new FakeService();
    let aborted = false;
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    svc.pull = (_spec, signal) =>
      new Promise((_res, rej) => {
        started();
        signal?.addEventListener('abort', () => {
          aborted = true;
          rej(new KimgError('ABORTED', 'cancelled'));
        });
      });
    const s = await startCriServer({ listen: path, imageService: svc });
    const c = new CriImageService({ endpoint: path });
    try {
      const pull = c.pullImage({ image: 'r.io/app:1' }, undefined).then(
        () => undefined,
        (e: unknown) => e,
      );
      await running;
      await s.close({ drainTimeoutMs: 100 });
      assert.equal(aborted, true);
      assert.ok(isKimgError(await pull), 'the pull failed with a KimgError');
    } finally {
      c.close();
    }
  });

  test('a client to a socket nobody serves fails with RUNTIME_UNAVAILABLE naming the endpoint', async () => {
    const c = new CriImageService({ endpoint: join(dir, 'nobody.sock'), timeoutMs: 2000 });
    try {
      await assert.rejects(
        c.listImages(),
        (e: unknown) => isKimgError(e, 'RUNTIME_UNAVAILABLE') && (e as Error).message.includes('nobody.sock'),
      );
    } finally {
      c.close();
    }
  });
});
