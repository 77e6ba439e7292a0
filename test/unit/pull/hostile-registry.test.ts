/**
 * A hostile registry against the pull: a config claiming 1 GiB is refused before any byte of it is
 * fetched (the registry's fault: `MANIFEST_INVALID`, never a local `STORE_CORRUPT`), and a manifest
 * dripped a byte at a time is cut off by the whole-body deadline even though it never stalls, and so is
 * a dripped token response; a token response past its cap is refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { isKimgError } from '../../../src/errors/index.js';
import { MAX_CONFIG_BYTES, MediaType } from '../../../src/oci/index.js';
import { pullImage } from '../../../src/pull/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { openStore, type Store } from '../../../src/store/index.js';
import { sha256, startFaultServer, type FaultServer } from '../../helpers/fault-server.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

let dir: string;
let store: Store;
let fault: FaultServer;
before(async () => {
  dir = await makeTempDir('hostile-pull-');
  store = await openStore({ root: dir });
  fault = await startFaultServer();
});
after(async () => {
  await store.close();
  await fault.close();
  await removeTempDir(dir);
});

function manifestWithConfigSize(size: number): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: sha256(Buffer.from('config')), size },
    layers: [],
  });
}

for (const [tag, size] of [
  ['gib', 1024 * 1024 * 1024],
  ['just-over', MAX_CONFIG_BYTES + 1],
] as const) {
  test(`a config claiming ${size} bytes is refused before download (MANIFEST_INVALID)`, async () => {
    fault.route('GET', `/v2/big/manifests/${tag}`, (_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.OciManifest }).end(manifestWithConfigSize(size));
    });
    const registry = new RegistryClient({ plainHttp: [fault.host] });
    try {
      await assert.rejects(pullImage(`${fault.host}/big:${tag}`, { store, registry }), (e) => {
        assert.ok(isKimgError(e, 'MANIFEST_INVALID'), String(e));
        assert.match(e.message, /limit for image configs/);
        return true;
      });
      assert.ok(!fault.requests.some((r) => r.path.includes('/blobs/')), 'no blob was requested');
    } finally {
      await registry.close();
    }
  });
}

test('a manifest dripped a byte at a time is cut off by the deadline (STALLED), not read forever', async () => {
  const text = manifestWithConfigSize(10);
  fault.route('GET', '/v2/drip/manifests/1', (_req, res) => {
    res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': String(text.length) });
    let i = 0;
    const t = setInterval(() => {
      if (res.destroyed || i >= text.length) return clearInterval(t);
      res.write(text[i++]);
    }, 100);
    res.on('close', () => clearInterval(t));
  });
  // The stall window (5 s) never trips: a byte arrives every 100 ms. The deadline (1 s) does.
  const registry = new RegistryClient({
    plainHttp: [fault.host],
    stallTimeoutMs: 5000,
    metadataDeadlineMs: 1000,
  });
  try {
    await assert.rejects(registry.getManifest({ domain: fault.host, path: 'drip', tag: '1' }), (e) => {
      assert.ok(isKimgError(e, 'STALLED'), String(e));
      assert.match(e.message, /did not arrive within 1s/);
      return true;
    });
  } finally {
    await registry.close();
  }
});

/** A registry on its own fault server whose `/v2/` asks for a bearer token from `/token`. */
async function tokenRegistry(token: (res: import('node:http').ServerResponse) => void): Promise<FaultServer> {
  const reg = await startFaultServer();
  reg.route('GET', '/v2/', (_req, res) => {
    res
      .writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="${reg.url}/token",service="reg",scope="repository:app:pull"`,
      })
      .end('{}');
  });
  reg.route('GET', '/token', (_req, res) => token(res));
  return reg;
}

test('a token response dripped a byte at a time is cut off by the deadline (STALLED)', async () => {
  const body = JSON.stringify({ token: 'x'.repeat(200) });
  const reg = await tokenRegistry((res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    let i = 0;
    const t = setInterval(() => {
      if (res.destroyed || i >= body.length) return clearInterval(t);
      res.write(body[i++]);
    }, 100);
    res.on('close', () => clearInterval(t));
  });
  // A byte every 100 ms never trips the 5 s stall window; the 1 s whole-body deadline does.
  const registry = new RegistryClient({
    plainHttp: [reg.host],
    stallTimeoutMs: 5000,
    metadataDeadlineMs: 1000,
  });
  try {
    await assert.rejects(registry.getManifest({ domain: reg.host, path: 'app', tag: '1' }), (e) => {
      assert.ok(isKimgError(e, 'STALLED'), String(e));
      assert.match(e.message, /token server .* did not send its response within 1s/);
      return true;
    });
    assert.ok(
      !reg.requests.some((r) => r.path.includes('/manifests/')),
      'no manifest request without a token',
    );
  } finally {
    await registry.close();
    await reg.close();
  }
});

test('a token response past its 1 MiB cap is refused, not kept (REGISTRY_PROTOCOL_ERROR)', async () => {
  const reg = await tokenRegistry((res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"token":"');
    const chunk = 'x'.repeat(64 * 1024);
    let sent = 0;
    const more = (): void => {
      while (!res.destroyed && sent < 64 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      if (!res.destroyed) res.end('"}');
    };
    more();
  });
  const registry = new RegistryClient({ plainHttp: [reg.host], stallTimeoutMs: 5000 });
  try {
    await assert.rejects(registry.getManifest({ domain: reg.host, path: 'app', tag: '1' }), (e) => {
      assert.ok(isKimgError(e, 'REGISTRY_PROTOCOL_ERROR'), String(e));
      assert.match(e.message, /token response larger than 1 MiB/);
      return true;
    });
  } finally {
    await registry.close();
    await reg.close();
  }
});

/** Serves `data` at `path`, `chunk` bytes every `everyMs`. */
function drip(path: string, data: Buffer, chunk: number, everyMs: number): void {
  fault.route('GET', path, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(data.length) });
    let at = 0;
    const t = setInterval(() => {
      if (res.destroyed || at >= data.length) {
        clearInterval(t);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(data.subarray(at, at + chunk));
      at += chunk;
    }, everyMs);
    res.on('close', () => clearInterval(t));
  });
}

test('a blob dripped below the minimum throughput is cut off (STALLED) although it never stalls', async () => {
  const data = Buffer.alloc(256 * 1024, 7);
  const digest = sha256(data);
  drip(`/v2/slow/blobs/${digest}`, data, 10, 50); // 200 bytes/s, a byte well within every stall window
  const registry = new RegistryClient({
    plainHttp: [fault.host],
    stallTimeoutMs: 1000,
    minBlobBytesPerSecond: 1024,
  });
  try {
    await assert.rejects(
      registry.fetchBlob({ domain: fault.host, path: 'slow' }, { digest, size: data.length }),
      (e) => {
        assert.ok(isKimgError(e, 'STALLED'), String(e));
        assert.match(e.message, /below the minimum of 1024 bytes\/s/);
        return true;
      },
    );
  } finally {
    await registry.close();
  }
});

test('a slow blob above the minimum completes; 0 turns the rule off', async () => {
  const data = Buffer.alloc(128 * 1024, 9);
  const digest = sha256(data);
  drip(`/v2/steady/blobs/${digest}`, data, 2048, 50); // 40 KiB/s
  const steady = new RegistryClient({
    plainHttp: [fault.host],
    stallTimeoutMs: 1500,
    minBlobBytesPerSecond: 1024,
  });
  try {
    const got = await steady.fetchBlob({ domain: fault.host, path: 'steady' }, { digest, size: data.length });
    assert.equal(sha256(got), digest);
  } finally {
    await steady.close();
  }
  // 200 bytes/s for 2 s: slower than the 1024 minimum over a whole 1.5 s window, completes with 0.
  const small = Buffer.alloc(400, 3);
  const smallDigest = sha256(small);
  drip(`/v2/off/blobs/${smallDigest}`, small, 20, 100);
  const off = new RegistryClient({ plainHttp: [fault.host], stallTimeoutMs: 1500, minBlobBytesPerSecond: 0 });
  try {
    const got = await off.fetchBlob(
      { domain: fault.host, path: 'off' },
      { digest: smallDigest, size: small.length },
    );
    assert.equal(got.length, small.length);
  } finally {
    await off.close();
  }
});
