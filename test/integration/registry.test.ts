/**
 * The registry client against real distribution registries (docker-registry 2.8) in every auth mode,
 * with images pushed by skopeo (OCI and Docker schema2 / manifest list) and by kimg itself (read
 * back with skopeo). A canary password is used for every account; it must never appear in an error,
 * a debug line or a diagnostics message.
 */
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Secret, type AuthConfig } from '../../src/credentials/index.js';
import { isKimgError } from '../../src/errors/index.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../../src/oci/index.js';
import { parsePlatform, selectManifest } from '../../src/platform/index.js';
import { REGISTRY_CHANNELS, RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import {
  registryAuthorization,
  startRegistries,
  stopRegistries,
  type RegistryMode,
  type StartedRegistry,
} from '../helpers/registry.js';
import { skopeoInspectRaw, skopeoPull, skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { createHash } from 'node:crypto';

const CANARY = 'Canary-Pw-7d1e0b55';
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const PLATFORMS = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
  { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.5458' },
];

const seen: string[] = [];
const channels = Object.values(REGISTRY_CHANNELS);
const onMessage = (m: unknown): void => {
  seen.push(JSON.stringify(m));
};

function record(e: unknown): unknown {
  seen.push(
    e instanceof Error ? `${e.message}\n${inspect(e, { depth: 6 })}\n${JSON.stringify(e)}` : String(e),
  );
  return e;
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail('expected a failure'),
    (e: unknown) => record(e),
  );
}

async function drain(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(
    s,
    new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(chunks);
}

describe('registry client against real registries', () => {
  let work = '';
  let regs: Record<RegistryMode, StartedRegistry> | undefined;
  let small: GeneratedImage;
  let multi: GeneratedImage;
  let pushed: GeneratedImage;
  const clients: RegistryClient[] = [];
  const reg = (m: RegistryMode): StartedRegistry => {
    assert.ok(regs, 'registries were not started');
    return regs[m];
  };
  const creds = (): AuthConfig => ({ username: 'kimg', password: new Secret(CANARY) });
  const client = (o: RegistryClientOptions = {}): RegistryClient => {
    const r = regs!;
    const c = new RegistryClient({
      plainHttp: [r.plain.host, r.basic.host, r.token.host, r.redirect.host],
      debug: (l) => seen.push(l),
      ...o,
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    for (const n of channels) diagnostics_channel.subscribe(n, onMessage);
    work = await makeTempDir('registry-it-');
    regs = await startRegistries(['plain', 'basic', 'token', 'redirect', 'tls'], { password: CANARY });
    small = await generateImage(join(work, 'small'), {
      name: 'small',
      layers: [{ size: 4096 }, { size: 300_000, kind: 'text' }],
    });
    multi = await generateImage(join(work, 'multi'), {
      name: 'multi',
      layers: [{ size: 65536 }],
      platforms: PLATFORMS,
    });
    pushed = await generateImage(join(work, 'pushed'), {
      name: 'pushed',
      layers: [{ size: 70_000 }, { size: 1000 }],
      platforms: PLATFORMS.slice(0, 2),
    });
    await Promise.all([
      skopeoPush(small, reg('plain'), 'small:1'),
      skopeoPush(small, reg('plain'), 'small-docker:1', { format: 'v2s2' }),
      skopeoPush(multi, reg('plain'), 'multi:1'),
      skopeoPush(multi, reg('plain'), 'multi-docker:1', { format: 'v2s2' }),
      skopeoPush(small, reg('basic'), 'small:1'),
      skopeoPush(small, reg('token'), 'small:1'),
      skopeoPush(small, reg('token'), 'base:1'),
      skopeoPush(small, reg('redirect'), 'small:1'),
      skopeoPush(small, reg('tls'), 'small:1'),
    ]);
  });

  after(async () => {
    for (const c of clients) await c.close();
    await stopRegistries(Object.values(regs ?? {}));
    if (work) await removeTempDir(work);
    for (const n of channels) diagnostics_channel.unsubscribe(n, onMessage);
    const all = seen.join('\n');
    assert.ok(seen.length > 50, 'diagnostics and debug lines were recorded');
    assert.ok(
      !all.includes(CANARY),
      'the canary password leaked into an error, a log line or a diagnostics event',
    );
    assert.ok(!all.includes(Buffer.from(`kimg:${CANARY}`).toString('base64')), 'Basic credentials leaked');
  });

  async function pullAll(
    c: RegistryClient,
    host: string,
    repo: string,
    tag: string,
    auth?: AuthConfig | null,
  ): Promise<{ manifest: ImageManifest; digest: string }> {
    const ref = { domain: host, path: repo, tag };
    const call = auth === undefined ? {} : { auth };
    const desc = await c.resolve(ref, call);
    const m = await c.getManifest(ref, call);
    assert.equal(m.digest, desc.digest);
    assert.equal(m.bytes.length, desc.size);
    const manifest = m.manifest as ImageManifest;
    const config = await c.fetchBlob(ref, manifest.config, call);
    assert.equal(sha256(config), manifest.config.digest);
    for (const l of manifest.layers) {
      const data = await drain(await c.openBlob(ref, l, call));
      assert.equal(data.length, l.size);
    }
    return { manifest, digest: m.digest };
  }

  describe('plain', () => {
    test('resolve, manifest, config and layers of an OCI image (digests as pushed)', async () => {
      const c = client();
      const { digest, manifest } = await pullAll(c, reg('plain').host, 'small', '1');
      assert.equal(digest, small.digest);
      assert.deepEqual(
        manifest.layers.map((l) => l.digest),
        small.manifests[0]!.layers.map((l) => l.digest),
      );
      assert.deepEqual(await c.listTags({ domain: reg('plain').host, path: 'small' }), ['1']);
      assert.ok((await c.listRepositories(reg('plain').host)).includes('multi-docker'));
    });

    test('Docker schema2 manifest pushed by skopeo --format v2s2', async () => {
      const c = client();
      const { manifest } = await pullAll(c, reg('plain').host, 'small-docker', '1');
      assert.equal(manifest.mediaType, MediaType.DockerManifest);
      assert.equal(manifest.config.mediaType, MediaType.DockerConfig);
      const desc = await c.resolve({ domain: reg('plain').host, path: 'small-docker', tag: '1' });
      assert.equal(desc.mediaType, MediaType.DockerManifest);
    });

    for (const [repo, indexType] of [
      ['multi', MediaType.OciIndex],
      ['multi-docker', MediaType.DockerManifestList],
    ] as const) {
      test(`multi-arch selection in ${repo} (${indexType})`, async () => {
        const c = client();
        const ref = { domain: reg('plain').host, path: repo, tag: '1' };
        for (const [i, p] of ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7', 'windows/amd64'].entries()) {
          const platform = parsePlatform(p);
          const r = await c.getImageManifest(ref, {
            select: (index: ImageIndex) => selectManifest(index.manifests, platform),
          });
          assert.equal(r.index?.mediaType, indexType);
          const entry = (r.index!.manifest as ImageIndex).manifests.find(
            (d: Descriptor) => d.digest === r.manifest.digest,
          );
          assert.ok(entry, 'the child is an entry of the index');
          assert.equal(entry.platform?.os, PLATFORMS[i]!.os);
          assert.equal(entry.platform?.architecture, PLATFORMS[i]!.architecture);
          assert.equal(entry.platform?.variant, PLATFORMS[i]!.variant);
          if (repo === 'multi') assert.equal(r.manifest.digest, multi.manifests[i]!.digest);
          const layer = (r.manifest.manifest as ImageManifest).layers[0]!;
          assert.equal((await drain(await c.openBlob(ref, layer))).length, layer.size);
        }
        const err = await failure(
          c.getImageManifest(ref, {
            select: (index: ImageIndex) => selectManifest(index.manifests, parsePlatform('linux/s390x')),
          }),
        );
        assert.ok(isKimgError(err, 'PLATFORM_NOT_FOUND'), String(err));
      });
    }

    test('unknown tag and unknown repository → NOT_FOUND saying so', async () => {
      const c = client();
      const e1 = await failure(c.getManifest({ domain: reg('plain').host, path: 'small', tag: 'nope' }));
      assert.ok(isKimgError(e1, 'NOT_FOUND'), String(e1));
      assert.match(e1.message, /says the tag "nope" in repository "small" does not exist/);
      const e2 = await failure(c.resolve({ domain: reg('plain').host, path: 'nothing-here', tag: '1' }));
      assert.ok(isKimgError(e2, 'NOT_FOUND'), String(e2));
      const missing = `sha256:${'0'.repeat(64)}`;
      const e3 = await failure(
        c.openBlob({ domain: reg('plain').host, path: 'small' }, { digest: missing, size: 3 }),
      );
      assert.ok(isKimgError(e3, 'NOT_FOUND'), String(e3));
      assert.match(e3.message, new RegExp(`blob ${missing} in repository "small" does not exist`));
    });

    test('push of a generated image (blobs, children, index) then pull by skopeo gives the same digests', async () => {
      const c = client();
      const host = reg('plain').host;
      const repo = { domain: host, path: 'kimg-pushed' };
      const blob = (d: string): Promise<Buffer> =>
        readFile(join(pushed.layoutDir, 'blobs', 'sha256', d.slice('sha256:'.length)));
      for (const m of pushed.manifests) {
        for (const d of [m.config, ...m.layers]) {
          const r = await c.pushBlob(repo, d, await blob(d.digest));
          assert.ok(r.status === 'uploaded' || r.status === 'exists');
        }
        assert.equal(
          await c.putManifest({ ...repo, digest: m.digest }, await blob(m.digest), m.mediaType),
          m.digest,
        );
      }
      assert.equal(
        await c.putManifest({ ...repo, tag: 'v1' }, await blob(pushed.digest), pushed.mediaType),
        pushed.digest,
      );
      // again: everything exists now
      assert.deepEqual(
        await c.pushBlob(
          repo,
          pushed.manifests[0]!.layers[0]!,
          await blob(pushed.manifests[0]!.layers[0]!.digest),
        ),
        { status: 'exists' },
      );
      // skopeo reads it back byte for byte
      const raw = await skopeoInspectRaw('kimg-pushed:v1', reg('plain'));
      assert.equal(sha256(Buffer.from(raw)), pushed.digest);
      const out = join(work, 'skopeo-pulled');
      await skopeoPull(reg('plain'), 'kimg-pushed:v1', out, 'v1', { all: true });
      const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as ImageIndex;
      assert.equal(index.manifests[0]!.digest, pushed.digest);
      for (const m of pushed.manifests) {
        for (const d of [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
          const b = await readFile(join(out, 'blobs', 'sha256', d.slice(7)));
          assert.equal(sha256(b), d);
        }
      }
      // chunked upload and streamed upload of a new blob
      const extra = Buffer.alloc(200_000, 7);
      assert.deepEqual(
        await c.pushBlob(repo, { digest: sha256(extra), size: extra.length }, extra, { chunkSize: 65_536 }),
        { status: 'uploaded' },
      );
      const extra2 = Buffer.alloc(100_000, 9);
      const { Readable } = await import('node:stream');
      assert.deepEqual(
        await c.pushBlob(repo, { digest: sha256(extra2), size: extra2.length }, () =>
          Readable.from([extra2]),
        ),
        { status: 'uploaded' },
      );
      assert.ok(
        (await drain(await c.openBlob(repo, { digest: sha256(extra), size: extra.length }))).equals(extra),
      );
    });
  });

  describe('basic', () => {
    test('good credentials pull', async () => {
      await pullAll(client({ credentials: () => creds() }), reg('basic').host, 'small', '1');
    });
    test('missing credentials → UNAUTHORIZED asking for credentials', async () => {
      const e = await failure(client().resolve({ domain: reg('basic').host, path: 'small', tag: '1' }));
      assert.ok(isKimgError(e, 'UNAUTHORIZED'), String(e));
      assert.match(e.message, new RegExp(`no credentials were found for host ${reg('basic').host}`));
    });
    test('wrong password → UNAUTHORIZED naming the host to check', async () => {
      const e = await failure(
        client().resolve(
          { domain: reg('basic').host, path: 'small', tag: '1' },
          { auth: { username: 'kimg', password: new Secret(CANARY + '-wrong') } },
        ),
      );
      assert.ok(isKimgError(e, 'UNAUTHORIZED'), String(e));
      assert.match(
        e.message,
        new RegExp(`rejected the credentials .*check the pull secret .*for host ${reg('basic').host}`),
      );
      assert.equal(e.details.status, 401);
    });
  });

  describe('token', () => {
    test('anonymous pull', async () => {
      const before = reg('token').token!.requests().length;
      await pullAll(client(), reg('token').host, 'small', '1', null);
      const reqs = reg('token').token!.requests().slice(before);
      assert.ok(reqs.length >= 1);
      assert.ok(reqs.every((r) => r.user === undefined && r.method === 'GET' && r.status === 200));
      assert.ok(reqs.some((r) => r.scopes.includes('repository:small:pull')));
    });

    test('pull with credentials (OAuth2 POST, one token reused)', async () => {
      const before = reg('token').token!.requests().length;
      await pullAll(client({ credentials: () => creds() }), reg('token').host, 'small', '1');
      const reqs = reg('token').token!.requests().slice(before);
      assert.equal(reqs.length, 1, 'one token for the whole pull');
      assert.equal(reqs[0]!.method, 'POST');
      assert.equal(reqs[0]!.grantType, 'password');
      assert.equal(reqs[0]!.user, 'kimg');
    });

    test('push with credentials, cross-repository mount with a mount scope', async () => {
      const c = client({ credentials: () => creds() });
      const repo = { domain: reg('token').host, path: 'derived' };
      const layer = small.manifests[0]!.layers[1]!;
      const before = reg('token').token!.requests().length;
      const r = await c.pushBlob(
        repo,
        layer,
        await readFile(join(small.layoutDir, 'blobs', 'sha256', layer.digest.slice(7))),
        { mountFrom: ['base'] },
      );
      assert.deepEqual(r, { status: 'mounted', from: 'base' });
      const scopes = reg('token')
        .token!.requests()
        .slice(before)
        .flatMap((q) => q.scopes);
      assert.ok(scopes.includes('repository:base:pull'), scopes.join(' '));
      assert.ok(scopes.includes('repository:derived:pull,push'), scopes.join(' '));
      const m = small.manifests[0]!;
      const blob = (d: string): Promise<Buffer> =>
        readFile(join(small.layoutDir, 'blobs', 'sha256', d.slice(7)));
      for (const d of [m.config, ...m.layers])
        await c.pushBlob(repo, d, await blob(d.digest), { mountFrom: ['base'] });
      assert.equal(await c.putManifest({ ...repo, tag: '1' }, await blob(m.digest), m.mediaType), m.digest);
      assert.equal((await c.resolve({ ...repo, tag: '1' })).digest, m.digest);
    });

    test('identity token (OAuth2 refresh token) pulls with grant_type=refresh_token', async () => {
      const form = new URLSearchParams({
        grant_type: 'password',
        username: 'kimg',
        password: CANARY,
        service: reg('token').token!.service,
        scope: 'repository:small:pull',
        client_id: 'test',
        access_type: 'offline',
      });
      const { request } = await import('undici');
      const res = await request(reg('token').token!.realm, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
      const body = (await res.body.json()) as { refresh_token?: string };
      assert.ok(body.refresh_token, 'the token server issued a refresh token');
      const before = reg('token').token!.requests().length;
      await pullAll(client(), reg('token').host, 'small', '1', {
        identityToken: new Secret(body.refresh_token),
      });
      const reqs = reg('token').token!.requests().slice(before);
      assert.deepEqual(
        reqs.map((r) => [r.method, r.grantType, r.user, r.status]),
        [['POST', 'refresh_token', 'kimg', 200]],
      );
    });

    test('wrong credentials → TOKEN_REFUSED', async () => {
      const e = await failure(
        client().getManifest(
          { domain: reg('token').host, path: 'small', tag: '1' },
          { auth: { username: 'kimg', password: new Secret(CANARY + '-wrong') } },
        ),
      );
      assert.ok(isKimgError(e, 'TOKEN_REFUSED'), String(e));
      assert.match(
        e.message,
        new RegExp(`token server .* refused the credentials .*for host ${reg('token').host}`),
      );
    });

    test('anonymous push → UNAUTHORIZED: credentials needed to push', async () => {
      const data = Buffer.from('anonymous push');
      const e = await failure(
        client().pushBlob(
          { domain: reg('token').host, path: 'small' },
          { digest: sha256(data), size: data.length },
          data,
          { auth: null },
        ),
      );
      assert.ok(isKimgError(e, 'UNAUTHORIZED'), String(e));
    });

    test('a token scoped for another repository is refused → DENIED', async () => {
      const header = await registryAuthorization(reg('token'), ['repository:base:pull'], {
        username: 'kimg',
        password: CANARY,
      });
      assert.ok(header, 'the fixture issued a token');
      const token = header.replace(/^Bearer /, '');
      const e = await failure(
        client().resolve(
          { domain: reg('token').host, path: 'small', tag: '1' },
          { auth: { registryToken: new Secret(token) } },
        ),
      );
      assert.ok(isKimgError(e, 'DENIED'), String(e));
      assert.match(e.message, /denied pull access to repository "small"/);
      // the same token works for its own repository
      const ok = await client().resolve(
        { domain: reg('token').host, path: 'base', tag: '1' },
        { auth: { registryToken: new Secret(token) } },
      );
      assert.equal(ok.digest, small.digest);
    });
  });

  describe('redirect', () => {
    test('blobs come from 127.0.0.2 with no Authorization there', async () => {
      const c = client({ credentials: () => creds() });
      await pullAll(c, reg('redirect').host, 'small', '1');
      const blobReqs = reg('redirect')
        .blobHost!.requests()
        .filter((r) => r.method === 'GET');
      assert.ok(blobReqs.length >= 3, `the blob host served the blobs (${blobReqs.length} requests)`);
      assert.ok(
        blobReqs.every((r) => !r.authorization),
        'Authorization reached the blob host',
      );
      const access = await reg('redirect').accessLog();
      assert.ok(access.some((a) => a.path.includes('/blobs/') && a.status === 307));
    });
  });

  describe('tls', () => {
    test('with the CA (--ca-file) the pull works', async () => {
      await pullAll(client({ caFiles: [reg('tls').caFile!] }), reg('tls').host, 'small', '1');
    });
    test('with the CA from a hosts.toml directory', async () => {
      const dir = join(work, 'certs.d');
      const hostDir = join(dir, reg('tls').host.replace(/:(\d+)$/, '_$1_'));
      await mkdir(hostDir, { recursive: true });
      await writeFile(
        join(hostDir, 'hosts.toml'),
        `server = "https://${reg('tls').host}"\nca = "${reg('tls').caFile!}"\n`,
      );
      const c = client({ hostsDir: dir, caFiles: [] });
      await pullAll(c, reg('tls').host, 'small', '1');
    });
    test('skip_verify in hosts.toml (and only there) skips verification', async () => {
      const dir = join(work, 'certs.d-skip');
      const hostDir = join(dir, reg('tls').host);
      await mkdir(hostDir, { recursive: true });
      await writeFile(
        join(hostDir, 'hosts.toml'),
        `server = "https://${reg('tls').host}"\nskip_verify = true\n`,
      );
      await pullAll(client({ hostsDir: dir }), reg('tls').host, 'small', '1');
    });
    /** A hosts directory whose server entry for `host` says HTTPS (loopback registries default to HTTP). */
    async function httpsHosts(name: string, host: string): Promise<string> {
      const dir = join(work, name);
      await mkdir(join(dir, host), { recursive: true });
      await writeFile(join(dir, host, 'hosts.toml'), `server = "https://${host}"\n`);
      return dir;
    }
    test('a loopback registry on a port defaults to plain HTTP, like containerd', async () => {
      const c = client({ plainHttp: [], retry: { maxAttempts: 1 } });
      const d = await c.resolve({ domain: reg('plain').host, path: 'small', tag: '1' });
      assert.match(d.digest, /^sha256:/);
    });
    test('without the CA → TLS_ERROR saying to add the CA', async () => {
      const hostsDir = await httpsHosts('certs.d-https', reg('tls').host);
      const e = await failure(
        client({ hostsDir }).resolve({ domain: reg('tls').host, path: 'small', tag: '1' }),
      );
      assert.ok(isKimgError(e, 'TLS_ERROR'), String(e));
      assert.match(
        e.message,
        /TLS handshake with 127\.0\.0\.1:\d+ failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE.*--ca-file/,
      );
    });
    test('an HTTPS client against a plain-HTTP registry → TLS_ERROR suggesting --plain-http', async () => {
      const hostsDir = await httpsHosts('certs.d-https-plain', reg('plain').host);
      const e = await failure(
        client({ plainHttp: [], hostsDir, retry: { maxAttempts: 1 } }).resolve({
          domain: reg('plain').host,
          path: 'small',
          tag: '1',
        }),
      );
      assert.ok(isKimgError(e, 'TLS_ERROR'), String(e));
      assert.match(e.message, /--plain-http/);
    });
  });
});
