/**
 * The registry faults `faults.test.ts` does not already cover, against the in-process
 * scripted server: connection reset mid-blob, wrong `Content-Length` (both ways), 206 with a wrong
 * `Content-Range`, 500/502, slow drip, an endless body, a 10 MB manifest, a gzip bomb (and an endless
 * stream) as an error body, malformed manifests and token responses, garbage `WWW-Authenticate`,
 * looping redirects and a redirect to another host. Each ends in a documented code or a correct retry
 * (byte-exact output), with bounded memory (the server counts what it managed to send) and bounded
 * time (small stall windows, a fake clock for back-off sleeps). The kinds are counted into
 * `$KIMG_RELIABILITY_DIR/faults-more.json` for docs/reliability.md.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Secret, type AuthConfig } from '../../../src/credentials/index.js';
import { ERROR_CODES, isKimgError } from '../../../src/errors/index.js';
import { MediaType } from '../../../src/oci/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import {
  bytes,
  fakeClock,
  serveRange,
  sha256,
  startFaultServer,
  type FaultServer,
} from '../../helpers/fault-server.js';

const CANARY = 'canary-PASSWORD-faults-more-77d1';
const MiB = 1024 * 1024;
const kinds: { kind: string; outcome: string }[] = [];
after(() => {
  const dir = process.env.KIMG_RELIABILITY_DIR;
  if (dir) writeFileSync(join(dir, 'faults-more.json'), JSON.stringify({ kinds }, null, 2));
});

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

/** The error a promise rejects with (fails when it resolves). */
async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  const r = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(r !== undefined, 'expected a failure, the call succeeded');
  assert.ok(r instanceof Error, `expected an Error, got ${String(r)}`);
  return r as Error & { code?: string };
}

/** Asserts a coded, documented error with `code` among `codes`, and no credential in it. */
function assertCoded(kind: string, e: unknown, codes: string[]): void {
  assert.ok(isKimgError(e), `${kind}: not a KimgError: ${String(e)}`);
  assert.ok(e.code in ERROR_CODES, `${kind}: code ${e.code} is not documented`);
  assert.ok(
    codes.includes(e.code),
    `${kind}: got ${e.code} (${e.message}), wanted one of ${codes.join(', ')}`,
  );
  assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(CANARY), `${kind}: canary in error`);
  kinds.push({ kind, outcome: e.code });
}

/** Writes `chunk` repeatedly with back-pressure until the client goes away; counts bytes accepted. */
function endless(res: ServerResponse, chunk: Buffer, sent: { bytes: number }, maxBytes = 256 * MiB): void {
  const pump = (): void => {
    while (!res.destroyed && sent.bytes < maxBytes) {
      sent.bytes += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    if (!res.destroyed) res.end();
  };
  res.on('error', () => undefined);
  pump();
}

const creds: AuthConfig = { username: 'u', password: new Secret(CANARY) };

describe('registry client: more faults', () => {
  let srv: FaultServer;
  let client: RegistryClient;
  let clock: ReturnType<typeof fakeClock>;
  const data = bytes(300_000, 11);
  const digest = sha256(data);
  const blobPath = `/v2/app/blobs/${digest}`;
  let repo: { domain: string; path: string };

  beforeEach(async () => {
    srv = await startFaultServer();
    clock = fakeClock();
    client = new RegistryClient({
      plainHttp: [srv.host],
      clock,
      random: () => 0.5,
      credentials: () => creds,
      stallTimeoutMs: 1500,
    });
    repo = { domain: srv.host, path: 'app' };
  });
  afterEach(async () => {
    await client.close();
    await srv.close();
  });

  test('connection reset mid-blob → resumed with Range, byte-exact', async () => {
    srv.route('GET', blobPath, (req, res, n) => {
      if (n > 1) return serveRange(req, res, data);
      res.writeHead(200, { 'content-length': String(data.length) });
      res.write(data.subarray(0, 100_000), () => setTimeout(() => req.socket.resetAndDestroy(), 10));
    });
    const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
    assert.ok(out.equals(data));
    const gets = srv.requests.filter((r) => r.path === blobPath);
    assert.equal(gets.length, 2);
    assert.match(String(gets[1]!.headers.range), /^bytes=\d+-$/);
    kinds.push({ kind: 'connection reset mid-blob', outcome: 'resumed' });
  });

  test('Content-Length differing from the descriptor (shorter or longer) → SIZE_MISMATCH before reading', async () => {
    const dShort = sha256(Buffer.from('cl-short'));
    srv.route('GET', '/v2/app/blobs/' + dShort, (_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length - 1000) });
      res.end(data.subarray(0, data.length - 1000));
    });
    const e0 = await failure(
      client.openBlob(repo, { digest: dShort, size: data.length }).then((s) => drain(s)),
    );
    assertCoded('wrong Content-Length (short)', e0, ['SIZE_MISMATCH']);

    // A Content-Length larger than the descriptor: refused (or failed on size), never accepted.
    const big = Buffer.concat([data, bytes(5000, 3)]);
    srv.route('GET', '/v2/app/blobs/' + sha256(Buffer.from('cl-long')), (_req, res) => {
      res.writeHead(200, { 'content-length': String(big.length) });
      res.end(big);
    });
    const e = await failure(
      client
        .openBlob(repo, { digest: sha256(Buffer.from('cl-long')), size: data.length })
        .then((s) => drain(s)),
    );
    assertCoded('wrong Content-Length (long)', e, ['SIZE_MISMATCH']);
  });

  test('206 with a wrong Content-Range → whole blob re-requested, byte-exact', async () => {
    srv.route('GET', blobPath, (req, res, n) => {
      if (n === 1) {
        res.writeHead(200, { 'content-length': String(data.length) });
        res.write(data.subarray(0, 120_000), () => setTimeout(() => res.socket?.destroy(), 10));
        return;
      }
      if (req.headers.range) {
        // claims to start 1000 bytes earlier than asked (and sends those bytes)
        const m = /^bytes=(\d+)-$/.exec(req.headers.range);
        const start = Math.max(0, Number(m?.[1] ?? 0) - 1000);
        res.writeHead(206, {
          'content-length': String(data.length - start),
          'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
        });
        return void res.end(data.subarray(start));
      }
      res.writeHead(200, { 'content-length': String(data.length) }).end(data);
    });
    const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
    assert.ok(out.equals(data));
    assert.equal(srv.requests.filter((r) => r.path === blobPath).at(-1)!.headers.range, undefined);
    kinds.push({ kind: '206 with wrong Content-Range', outcome: 'restarted from 0, verified' });

    // 206 for a request of the whole blob → protocol error
    const d2 = sha256(Buffer.from('partial'));
    srv.route('GET', '/v2/app/blobs/' + d2, (_req, res) => {
      res.writeHead(206, { 'content-range': `bytes 0-9/${data.length}`, 'content-length': '10' });
      res.end(data.subarray(0, 10));
    });
    const e = await failure(client.openBlob(repo, { digest: d2, size: data.length }).then((s) => drain(s)));
    assertCoded('206 for a whole-blob request', e, ['REGISTRY_PROTOCOL_ERROR']);
  });

  test('500 and 502 → retried with back-off, then success', async () => {
    srv.route('GET', blobPath, (req, res, n) => {
      if (n === 1) return void res.writeHead(500).end('boom');
      if (n === 2) return void res.writeHead(502).end('<html>bad gateway</html>');
      serveRange(req, res, data);
    });
    const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
    assert.ok(out.equals(data));
    assert.equal(srv.requests.filter((r) => r.path === blobPath).length, 3);
    assert.equal(clock.sleeps.length, 2);
    kinds.push({ kind: '500 / 502', outcome: 'retried' });
  });

  test('slow drip that stops → STALLED within the stall window', async () => {
    const c = new RegistryClient({ plainHttp: [srv.host], clock, stallTimeoutMs: 300 });
    const timers: NodeJS.Timeout[] = [];
    srv.route('GET', blobPath, (_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      // 20 bytes every 50 ms for 0.5 s (slower than any useful download, faster than the window)
      for (let i = 0; i < 10; i++) {
        timers.push(setTimeout(() => res.write(data.subarray(i * 20, i * 20 + 20)), i * 50));
      }
    });
    const t0 = Date.now();
    const e = await failure(c.openBlob(repo, { digest, size: data.length }).then((s) => drain(s)));
    for (const t of timers) clearTimeout(t);
    await c.close();
    assertCoded('slow drip then stall', e, ['STALLED']);
    assert.equal((e as unknown as { details: { bytesRead: number } }).details.bytesRead, 200);
    assert.ok(Date.now() - t0 < 10_000, 'bounded time');
  });

  test('endless body beyond the descriptor size → SIZE_MISMATCH, stops reading', async () => {
    const d = sha256(Buffer.from('endless'));
    const sent = { bytes: 0 };
    srv.route('GET', '/v2/app/blobs/' + d, (_req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      endless(res, bytes(64 * 1024, 5), sent);
    });
    const e = await failure(client.openBlob(repo, { digest: d, size: 1 * MiB }).then((s) => drain(s)));
    assertCoded('endless blob body', e, ['SIZE_MISMATCH']);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(sent.bytes < 64 * MiB, `the client stopped reading (server sent ${sent.bytes} bytes)`);
  });

  test('10 MB manifest → MANIFEST_TOO_LARGE without reading it whole', async () => {
    srv.route('GET', '/v2/app/manifests/ten', (_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': String(10 * MiB) });
      res.end(Buffer.alloc(10 * MiB, 0x20));
    });
    const e = await failure(client.getManifest({ ...repo, tag: 'ten' }));
    assertCoded('10 MB manifest (Content-Length)', e, ['MANIFEST_TOO_LARGE']);

    const sent = { bytes: 0 };
    srv.route('GET', '/v2/app/manifests/endless', (_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.OciManifest, 'transfer-encoding': 'chunked' });
      endless(res, Buffer.alloc(64 * 1024, 0x20), sent, 64 * MiB);
    });
    const rss0 = process.memoryUsage().rss;
    const e2 = await failure(client.getManifest({ ...repo, tag: 'endless' }));
    assertCoded('endless chunked manifest', e2, ['MANIFEST_TOO_LARGE']);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(
      sent.bytes < 32 * MiB,
      `stopped reading past the 4 MiB cap (server sent ${sent.bytes} of 64 MiB)`,
    );
    assert.ok(process.memoryUsage().rss - rss0 < 64 * MiB, 'bounded memory');
  });

  test('gzip bomb and endless stream as error bodies → coded error, body capped at 64 KiB', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * MiB, 0x41), { level: 9 });
    srv.route('GET', '/v2/app/manifests/bomb', (_req, res) => {
      res.writeHead(404, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': String(bomb.length),
      });
      res.end(bomb);
    });
    const rss0 = process.memoryUsage().rss;
    const e = await failure(client.getManifest({ ...repo, tag: 'bomb' }));
    assertCoded('gzip bomb error body', e, ['NOT_FOUND', 'REGISTRY_ERROR', 'REGISTRY_PROTOCOL_ERROR']);
    assert.ok(e.message.length < 70 * 1024, `message bounded (${e.message.length})`);
    assert.ok(process.memoryUsage().rss - rss0 < 48 * MiB, 'the bomb was not inflated');

    const sent = { bytes: 0 };
    srv.route('GET', '/v2/app/manifests/chatty', (_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      endless(res, Buffer.alloc(64 * 1024, 0x7b), sent, 64 * MiB);
    });
    const e2 = await failure(client.getManifest({ ...repo, tag: 'chatty' }));
    assertCoded('endless error body', e2, ['REGISTRY_ERROR', 'REGISTRY_PROTOCOL_ERROR', 'NOT_FOUND']);
    assert.ok(e2.message.length < 70 * 1024);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(sent.bytes < 32 * MiB, `stopped reading the error body (server sent ${sent.bytes})`);
  });

  test('malformed JSON manifests → MANIFEST_INVALID', async () => {
    const bodies: Record<string, string> = {
      truncated: '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{',
      notjson: '<html>hello</html>',
      array: '[1,2,3]',
      nul: 'null',
      badlayers:
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:zz","size":-1},"layers":"nope"}',
      badindex: '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{}}',
      proto: '{"__proto__":{"x":1},"schemaVersion":2}',
    };
    for (const [tag, body] of Object.entries(bodies)) {
      const type = tag === 'badindex' ? MediaType.OciIndex : MediaType.OciManifest;
      srv.route(
        'GET',
        `/v2/app/manifests/${tag}`,
        (_req, res) => void res.writeHead(200, { 'content-type': type }).end(body),
      );
      const e = await failure(client.getImageManifest({ ...repo, tag }));
      assertCoded(`malformed manifest (${tag})`, e, ['MANIFEST_INVALID', 'UNSUPPORTED_MEDIA_TYPE']);
    }
  });

  describe('token and challenge faults', () => {
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest, size: 1 },
        layers: [],
      }),
    );
    function challengeWith(value: string | string[]): void {
      srv.route('GET', '/v2/', (_req, res) => void res.writeHead(401, { 'www-authenticate': value }).end());
      srv.route('GET', '/v2/app/manifests/v1', (req, res) => {
        if (req.headers.authorization === 'Bearer good')
          return void res
            .writeHead(200, {
              'content-type': MediaType.OciManifest,
              'docker-content-digest': sha256(manifest),
            })
            .end(manifest);
        res.writeHead(401, { 'www-authenticate': value }).end();
      });
    }

    test('malformed token responses → coded errors', async () => {
      const responses: Record<string, (res: ServerResponse) => void> = {
        'not JSON': (res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{tok'),
        'HTML page': (res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>login</h1>'),
        'empty body': (res) => void res.writeHead(200).end(),
        'token not a string': (res) => void res.writeHead(200).end('{"token":5,"expires_in":"x"}'),
        'no token': (res) => void res.writeHead(200).end('{"expires_in":300}'),
        'JSON null': (res) => void res.writeHead(200).end('null'),
        'huge body': (res) => void res.writeHead(200).end(`{"token":"${'a'.repeat(3 * MiB)}"}`),
      };
      for (const [kind, respond] of Object.entries(responses)) {
        challengeWith(`Bearer realm="${srv.url}/token",service="svc"`);
        srv.route('POST', '/token', (_req, res) => respond(res));
        srv.route('GET', '/token', (_req, res) => respond(res));
        const c = new RegistryClient({
          plainHttp: [srv.host],
          clock,
          credentials: () => creds,
          retry: { maxAttempts: 2 },
          stallTimeoutMs: 1500,
        });
        try {
          const r = await c.getManifest({ ...repo, tag: 'v1' }).then(
            () => undefined,
            (e: unknown) => e,
          );
          // a "token" the registry then refuses is fine too, as long as the end is a coded error
          assertCoded(`malformed token response (${kind})`, r, [
            'REGISTRY_PROTOCOL_ERROR',
            'TOKEN_REFUSED',
            'UNAUTHORIZED',
            'REGISTRY_ERROR',
          ]);
        } finally {
          await c.close();
        }
      }
    });

    test('garbage WWW-Authenticate → coded errors', async () => {
      const garbage = [
        'Bearer',
        'Bearer realm=',
        'Bearer realm="',
        'Bearer realm="ftp://example.invalid/token"',
        'Bearer realm="not a url"',
        'Bearer realm=http://[::1',
        'Negotiate abc==',
        '\tgarbage\t==, \u00ff\u00fe',
        'Bearer realm="http://127.0.0.1:1/t",realm="http://127.0.0.1:2/t",scope=,,',
        'Basic, Bearer, ,,, =',
        `Bearer realm="${'x'.repeat(20_000)}"`,
        'Bearer service="svc"',
      ];
      for (const value of garbage) {
        challengeWith(value);
        srv.route('GET', '/token', (_req, res) => void res.writeHead(200).end('{"token":"good"}'));
        srv.route('POST', '/token', (_req, res) => void res.writeHead(200).end('{"token":"good"}'));
        const c = new RegistryClient({
          plainHttp: [srv.host],
          clock,
          credentials: () => creds,
          retry: { maxAttempts: 2 },
          stallTimeoutMs: 1500,
        });
        try {
          const r = await c.getManifest({ ...repo, tag: 'v1' }).then(
            () => undefined,
            (e: unknown) => e,
          );
          assertCoded(`garbage WWW-Authenticate ${JSON.stringify(value.slice(0, 40))}`, r, [
            'UNAUTHORIZED',
            'REGISTRY_PROTOCOL_ERROR',
            'TOKEN_REFUSED',
            'REGISTRY_UNAVAILABLE',
          ]);
        } finally {
          await c.close();
        }
      }
    });
  });

  test('redirect loops → coded error after a bounded number of hops', async () => {
    srv.route('GET', blobPath, (_req, res) => void res.writeHead(307, { location: blobPath }).end());
    const e = await failure(client.openBlob(repo, { digest, size: data.length }).then((s) => drain(s)));
    assertCoded('redirect loop (self)', e, ['REGISTRY_PROTOCOL_ERROR']);
    assert.ok(srv.requests.filter((r) => r.path === blobPath).length <= 12 * 5, 'bounded hops');

    const other = await startFaultServer('127.0.0.2');
    try {
      const d = sha256(Buffer.from('pingpong'));
      srv.route(
        'GET',
        `/v2/app/blobs/${d}`,
        (_req, res) => void res.writeHead(302, { location: `${other.url}/b` }).end(),
      );
      other.route(
        'GET',
        '/b',
        (_req, res) => void res.writeHead(302, { location: `${srv.url}/v2/app/blobs/${d}` }).end(),
      );
      const e2 = await failure(client.openBlob(repo, { digest: d, size: 10 }).then((s) => drain(s)));
      assertCoded('redirect loop (two hosts)', e2, ['REGISTRY_PROTOCOL_ERROR']);
      assert.ok(
        other.requests.every((r) => r.headers.authorization === undefined),
        'no Authorization on the other host',
      );

      // redirect to another host that serves the blob: followed, credentials dropped
      srv.route('GET', '/v2/', (req, res) => {
        if (req.headers.authorization) return void res.writeHead(200).end('{}');
        res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
      });
      srv.route('GET', blobPath, (req, res) => {
        if (!req.headers.authorization)
          return void res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
        res.writeHead(307, { location: `${other.url}/cdn` }).end();
      });
      other.route('GET', '/cdn', (req: IncomingMessage, res) => serveRange(req, res, data));
      const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
      assert.ok(out.equals(data));
      assert.ok(other.requests.every((r) => r.headers.authorization === undefined));
      kinds.push({ kind: 'redirect to another host', outcome: 'followed without Authorization' });
    } finally {
      await other.close();
    }
  });
});
