/**
 * The test harness itself, against the real components: five distribution registries (plain, basic,
 * token, redirect, tls), generated OCI images pushed with skopeo, digests read back over HTTP, the
 * token server's and blob host's request logs, umoci's verdict on the generated layouts, and cleanup
 * by PID.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Agent, fetch } from 'undici';
import { requireBinary } from '../helpers/components.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { isProcessAlive, runCommand, trackedPids } from '../helpers/proc.js';
import {
  REGISTRY_MODES,
  registryAuthorization,
  registryFetch,
  startRegistries,
  stopRegistries,
  type RegistryMode,
  type StartedRegistry,
} from '../helpers/registry.js';
import { skopeoInspectRaw, skopeoPull, skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const ACCEPT_ALL = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(', ');

const PLATFORMS = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
  { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.5458' },
];

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Names of the entries of an uncompressed tar (ustar headers only). */
function tarNames(tar: Buffer): string[] {
  const names: string[] = [];
  for (let off = 0; off + 512 <= tar.length;) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    names.push(header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, ''));
    const size = parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

async function manifestDigest(reg: StartedRegistry, repo: string, ref: string): Promise<string | null> {
  const res = await registryFetch(reg, `/v2/${repo}/manifests/${ref}`, {
    method: 'HEAD',
    headers: { accept: ACCEPT_ALL },
  });
  assert.equal(res.status, 200, `HEAD ${reg.mode} ${repo}:${ref}`);
  return res.headers.get('docker-content-digest');
}

describe('test harness with real components', () => {
  let work = '';
  let regs: Record<RegistryMode, StartedRegistry> | undefined;
  let small: GeneratedImage;
  let multi: GeneratedImage;
  const pids: number[] = [];
  const rootDirs: string[] = [];
  const reg = (m: RegistryMode): StartedRegistry => {
    assert.ok(regs, 'registries were not started');
    return regs[m];
  };

  before(async () => {
    work = await makeTempDir('harness-');
    [regs, small, multi] = await Promise.all([
      startRegistries(REGISTRY_MODES),
      generateImage(join(work, 'small'), {
        name: 'small',
        layers: [{ size: 4096 }, { size: 6000, kind: 'text' }, { size: 100, kind: 'zero' }],
        user: '1000:1000',
      }),
      generateImage(join(work, 'multi'), {
        name: 'multi',
        platforms: PLATFORMS,
        layers: [{ size: 64 * 1024 }],
      }),
    ]);
    for (const r of Object.values(regs)) {
      pids.push(...r.pids);
      rootDirs.push(r.rootDir);
    }
  });

  after(async () => {
    await stopRegistries(Object.values(regs ?? {}));
    await removeTempDir(work);
  });

  test('requireBinary returns absolute paths and fails (never skips) naming the apt package', () => {
    assert.match(requireBinary('docker-registry'), /^\/.*docker-registry$/);
    assert.throws(
      () => requireBinary('kimg-no-such-component'),
      /"kimg-no-such-component" was not found.*does not skip/,
    );
    const saved = process.env.PATH;
    try {
      process.env.PATH = '/nonexistent';
      // a name not resolved before in this process, so the cache does not answer
      assert.throws(() => requireBinary('ctr'), /apt-get install -y --no-install-recommends containerd/);
    } finally {
      process.env.PATH = saved;
    }
  });

  test('generated images are deterministic real gzip tars that umoci accepts', async () => {
    const again = await generateImage(join(work, 'again'), {
      name: 'small',
      layers: [{ size: 4096 }, { size: 6000, kind: 'text' }, { size: 100, kind: 'zero' }],
      user: '1000:1000',
    });
    assert.equal(again.digest, small.digest);
    assert.deepEqual(again.manifests, small.manifests);
    assert.equal(small.mediaType, OCI_MANIFEST);
    assert.equal(multi.mediaType, OCI_INDEX);
    assert.equal(multi.manifests.length, 4);
    assert.equal(
      new Set(multi.manifests.map((m) => m.layers[0]?.digest)).size,
      4,
      'content is seeded per platform',
    );

    const m0 = small.manifests[0];
    assert.ok(m0);
    for (const [i, layer] of m0.layers.entries()) {
      const gz = await readFile(join(small.layoutDir, 'blobs', 'sha256', layer.digest.slice(7)));
      assert.equal(sha256(gz), layer.digest);
      assert.equal(gz.length, layer.size);
      const tar = gunzipSync(gz);
      assert.equal(sha256(tar), layer.diffId);
      assert.deepEqual(tarNames(tar), [`layer${i}/`, `layer${i}/info.txt`, `layer${i}/data.bin`]);
    }
    const config = JSON.parse(
      await readFile(join(small.layoutDir, 'blobs', 'sha256', m0.config.digest.slice(7)), 'utf8'),
    ) as { config: { User?: string }; rootfs: { diff_ids: string[] }; os: string; architecture: string };
    assert.equal(config.config.User, '1000:1000');
    assert.deepEqual(
      config.rootfs.diff_ids,
      m0.layers.map((l) => l.diffId),
    );
    const index = JSON.parse(
      await readFile(join(multi.layoutDir, 'blobs', 'sha256', multi.digest.slice(7)), 'utf8'),
    ) as {
      manifests: Array<{ platform: unknown }>;
    };
    assert.deepEqual(
      index.manifests.map((m) => m.platform),
      PLATFORMS,
    );

    const umoci = requireBinary('umoci');
    const stat = await runCommand(umoci, ['stat', '--image', `${small.layoutDir}:${small.tag}`]);
    assert.match(stat.stdout, /kimg test helper: layer 2/);
    // unpacking verifies every layer against its diff_id
    await runCommand(umoci, [
      'raw',
      'unpack',
      '--rootless',
      '--image',
      `${small.layoutDir}:${small.tag}`,
      join(work, 'rootfs'),
    ]);
    assert.equal((await readFile(join(work, 'rootfs', 'layer0', 'data.bin'))).length, 4096);
  });

  test('layers with the same explicit seed are byte-identical across differently named images', async () => {
    const a = await generateImage(join(work, 'seed-a'), {
      name: 'seed-a',
      layers: [{ size: 1000, seed: 'shared' }, { size: 10 }],
    });
    const b = await generateImage(join(work, 'seed-b'), {
      name: 'seed-b',
      layers: [{ size: 1000, seed: 'shared' }, { size: 10 }],
    });
    assert.equal(a.manifests[0]!.layers[0]!.digest, b.manifests[0]!.layers[0]!.digest);
    assert.notEqual(a.manifests[0]!.layers[1]!.digest, b.manifests[0]!.layers[1]!.digest);
  });

  test('plain: an OCI push keeps the digest; v2s2 and multi-platform --all pushes', async () => {
    const r = reg('plain');
    assert.equal(r.url, `http://${r.host}`);
    await skopeoPush(small, r, 'small:1');
    assert.equal(await manifestDigest(r, 'small', '1'), small.digest);

    await skopeoPush(small, r, 'small-docker:1', { format: 'v2s2' });
    const docker = JSON.parse(await skopeoInspectRaw('small-docker:1', r)) as {
      mediaType: string;
      layers: Array<{ digest: string }>;
    };
    assert.equal(docker.mediaType, DOCKER_MANIFEST);
    assert.deepEqual(
      docker.layers.map((l) => l.digest),
      small.manifests[0]?.layers.map((l) => l.digest),
    );

    await skopeoPush(multi, r, 'multi:1', { all: true });
    assert.equal(await manifestDigest(r, 'multi', '1'), multi.digest);
    for (const m of multi.manifests) assert.equal(await manifestDigest(r, 'multi', m.digest), m.digest);

    await skopeoPush(multi, r, 'multi-docker:1', { all: true, format: 'v2s2' });
    const list = JSON.parse(await skopeoInspectRaw('multi-docker:1', r)) as {
      mediaType: string;
      manifests: unknown[];
    };
    assert.equal(list.mediaType, DOCKER_LIST);
    assert.equal(list.manifests.length, PLATFORMS.length);

    // the access log shows what was served: a manifest HEAD, and no blob GET so far
    const log = await r.accessLog();
    assert.ok(log.some((e) => e.method === 'HEAD' && e.path === '/v2/small/manifests/1' && e.status === 200));
    assert.ok(!log.some((e) => e.method === 'GET' && e.path.includes('/blobs/sha256:')));
    assert.match(await r.log(), /listening on 127\.0\.0\.1:\d+/);
  });

  test('basic: 401 without or with wrong credentials, the digest with them', async () => {
    const r = reg('basic');
    assert.equal(r.username, 'kimg');
    const anon = await registryFetch(r, '/v2/', { auth: 'anonymous' });
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    const wrong = await registryFetch(r, '/v2/', { auth: { username: 'kimg', password: 'wrong' } });
    assert.equal(wrong.status, 401);
    assert.equal((await registryFetch(r, '/v2/')).status, 200);

    await skopeoPush(small, r, 'small:1');
    assert.equal(await manifestDigest(r, 'small', '1'), small.digest);
    const denied = await registryFetch(r, '/v2/small/manifests/1', { auth: 'anonymous' });
    assert.equal(denied.status, 401);
    await assert.rejects(
      skopeoPush(small, r, 'small:2', { anonymous: true }),
      /unauthorized|authentication required/i,
    );
  });

  test('token: Bearer challenge, scopes in the token server log, anonymous pull only, OAuth2 POST', async () => {
    const r = reg('token');
    assert.ok(r.token);
    const challenge = await registryFetch(r, '/v2/', { auth: 'none' });
    assert.equal(challenge.status, 401);
    assert.equal(
      challenge.headers.get('www-authenticate'),
      `Bearer realm="${r.token.realm}",service="${r.token.service}"`,
    );

    await skopeoPush(small, r, 'small:1');
    const pushLog = r.token.requests();
    assert.ok(
      pushLog.some(
        (e) =>
          e.method === 'GET' &&
          e.user === 'kimg' &&
          e.service === 'kimg-registry' &&
          e.scopes.includes('repository:small:pull,push') &&
          e.granted &&
          e.status === 200,
      ),
      JSON.stringify(pushLog),
    );
    assert.equal(await manifestDigest(r, 'small', '1'), small.digest);

    // anonymous: pull is granted, push is not
    const pulled = await registryFetch(r, '/v2/small/manifests/1', {
      auth: 'anonymous',
      headers: { accept: OCI_MANIFEST },
    });
    assert.equal(pulled.status, 200);
    assert.equal(sha256(new Uint8Array(await pulled.arrayBuffer())), small.digest);
    await assert.rejects(skopeoPush(small, r, 'small:2', { anonymous: true }), /denied|unauthorized/i);
    assert.ok(
      r.token
        .requests()
        .some((e) => e.user === undefined && e.scopes.includes('repository:small:pull,push') && !e.granted),
    );

    // wrong credentials: the token server refuses
    await assert.rejects(
      registryAuthorization(r, ['repository:small:pull'], { username: 'kimg', password: 'nope' }),
      /token server answered 401/,
    );
    // a token for one repository does not open another
    const tokenA = await registryAuthorization(r, ['repository:small:pull']);
    const other = await registryFetch(r, '/v2/multi/manifests/1', {
      headers: { authorization: tokenA ?? '' },
    });
    assert.equal(other.status, 401);

    // containerd-style OAuth2 POST with a refresh token
    const form = (
      o: Record<string, string>,
    ): { method: string; body: string; headers: Record<string, string> } => ({
      method: 'POST',
      body: new URLSearchParams(o).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const first = await fetch(
      r.token.realm,
      form({
        grant_type: 'password',
        username: 'kimg',
        password: 'kimgpass',
        service: 'kimg-registry',
        scope: 'repository:small:pull',
        client_id: 'kimg-test',
        access_type: 'offline',
      }),
    );
    assert.equal(first.status, 200);
    const body = (await first.json()) as { access_token: string; refresh_token?: string; expires_in: number };
    assert.ok(body.refresh_token);
    const second = await fetch(
      r.token.realm,
      form({
        grant_type: 'refresh_token',
        refresh_token: body.refresh_token,
        service: 'kimg-registry',
        scope: 'repository:small:pull',
        client_id: 'kimg-test',
      }),
    );
    assert.equal(second.status, 200);
    const { access_token } = (await second.json()) as { access_token: string };
    const viaRefresh = await registryFetch(r, '/v2/small/manifests/1', {
      method: 'HEAD',
      headers: { authorization: `Bearer ${access_token}`, accept: OCI_MANIFEST },
    });
    assert.equal(viaRefresh.status, 200);
    const posts = r.token.requests().filter((e) => e.method === 'POST');
    assert.deepEqual(
      posts.map((e) => [e.grantType, e.user, e.refreshToken, e.status]),
      [
        ['password', 'kimg', true, 200],
        ['refresh_token', 'kimg', false, 200],
      ],
    );
    const bad = await fetch(r.token.realm, form({ grant_type: 'refresh_token', refresh_token: 'forged' }));
    assert.equal(bad.status, 401);
    assert.ok(!JSON.stringify(r.token.requests()).includes('kimgpass'), 'the log never holds a password');
  });

  test('redirect: blob GETs answer 307 to 127.0.0.2 and the blob host serves them without Authorization', async () => {
    const r = reg('redirect');
    assert.ok(r.blobHost);
    assert.match(r.blobHost.url, /^http:\/\/127\.0\.0\.2:\d+$/);
    await skopeoPush(small, r, 'small:1');
    const layer = small.manifests[0]?.layers[0];
    assert.ok(layer);
    const res = await registryFetch(r, `/v2/small/blobs/${layer.digest}`);
    assert.equal(res.status, 307);
    const location = res.headers.get('location') ?? '';
    assert.ok(location.startsWith(`${r.blobHost.url}/docker/registry/v2/blobs/sha256/`), location);
    const blob = await fetch(location);
    assert.equal(blob.status, 200);
    assert.equal(sha256(new Uint8Array(await blob.arrayBuffer())), layer.digest);

    // skopeo follows the redirect and does not leak credentials to the other host
    await skopeoPull(r, 'small:1', join(work, 'pulled'), '1');
    const served = r.blobHost.requests();
    assert.ok(served.length >= 2, JSON.stringify(served));
    assert.ok(
      served.some(
        (e) => e.method === 'GET' && e.status === 200 && e.path.endsWith(`/${layer.digest.slice(7)}/data`),
      ),
    );
    assert.ok(
      served.every((e) => !e.authorization),
      'no Authorization reached the blob host',
    );
  });

  test('tls: fetch fails without the CA and works with it; skopeo uses the cert dir', async () => {
    const r = reg('tls');
    assert.ok(r.caFile && r.certsDir);
    assert.ok(r.url.startsWith('https://127.0.0.1:'));
    assert.ok(existsSync(join(r.certsDir, 'ca.crt')));
    const noCa = new Agent();
    try {
      await assert.rejects(fetch(`${r.url}/v2/`, { dispatcher: noCa }), (e: unknown) => {
        const code = String((e as { cause?: { code?: string } }).cause?.code ?? '');
        return /CERT|VERIFY|SIGNATURE/.test(code);
      });
    } finally {
      await noCa.close();
    }
    assert.equal((await registryFetch(r, '/v2/')).status, 200);
    await skopeoPush(small, r, 'small:1');
    assert.equal(await manifestDigest(r, 'small', '1'), small.digest);
  });

  test('stop() kills every process by PID, removes its directory, and is idempotent', async () => {
    assert.equal(pids.length, 7, 'five registries, one token server, one blob host');
    const all = Object.values(regs ?? {});
    await stopRegistries(all);
    await stopRegistries(all);
    for (const pid of pids) assert.equal(isProcessAlive(pid), false, `pid ${pid} still alive`);
    for (const dir of rootDirs) assert.equal(existsSync(dir), false, `${dir} still exists`);
    assert.deepEqual(trackedPids(), []);
    // logs stay readable after stop
    assert.match(await reg('plain').log(), /listening on/);
    assert.ok((await reg('plain').accessLog()).length > 0);
    assert.ok((reg('token').token?.requests().length ?? 0) > 0);
  });
});
