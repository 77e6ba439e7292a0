/**
 * The registry client against an in-process scripted server, for faults a real registry cannot
 * produce: truncated bodies, ignored Range, wrong bytes, 429 + Retry-After, 5xx bursts, stalls,
 * cross-origin redirects, token expiry. A canary password is used throughout and must never appear in
 * an error, a debug line or a diagnostics message.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspect } from 'node:util';
import { Secret, type AuthConfig } from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { MediaType } from '../../../src/oci/index.js';
import { REGISTRY_CHANNELS, RegistryClient, type RegistryEndpoint } from '../../../src/registry/index.js';
import {
  bytes,
  serveRange,
  serveTruncated,
  sha256,
  fakeClock,
  startFaultServer,
  type FaultServer,
} from '../../helpers/fault-server.js';

const CANARY = 'canary-PASSWORD-5f3c9e';
const TOKEN_CANARY = 'tok-SECRET-91ab';

/** Everything a leak could end up in. */
const seen: string[] = [];
const channelNames = Object.values(REGISTRY_CHANNELS);
const subscriber = (m: unknown): void => {
  seen.push(JSON.stringify(m));
};
for (const n of channelNames) diagnostics_channel.subscribe(n, subscriber);
after(() => {
  for (const n of channelNames) diagnostics_channel.unsubscribe(n, subscriber);
  const all = seen.join('\n');
  assert.ok(!all.includes(CANARY), 'the canary password leaked into a log, event or error');
  assert.ok(!all.includes(TOKEN_CANARY), 'a token leaked into a log, event or error');
  assert.ok(!all.includes(Buffer.from(`u:${CANARY}`).toString('base64')), 'Basic credentials leaked');
});

function record(e: unknown): unknown {
  seen.push(e instanceof Error ? `${e.message} ${inspect(e, { depth: 5 })} ${JSON.stringify(e)}` : String(e));
  return e;
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

const creds: AuthConfig = { username: 'u', password: new Secret(CANARY) };

describe('registry client: faults', () => {
  let srv: FaultServer;
  let client: RegistryClient;
  let clock: ReturnType<typeof fakeClock>;
  const data = bytes(200_000, 7);
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
      debug: (l) => seen.push(l),
      stallTimeoutMs: 2000,
    });
    repo = { domain: srv.host, path: 'app' };
  });
  afterEach(async () => {
    await client.close();
    await srv.close();
  });

  test('truncated body → resumed with Range from the byte reached', async () => {
    srv.route('GET', blobPath, (req, res, n) =>
      n === 1 ? serveTruncated(res, data, 70_000) : serveRange(req, res, data),
    );
    const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
    assert.ok(out.equals(data));
    const gets = srv.requests.filter((r) => r.path === blobPath);
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.headers.range, undefined);
    const m = /^bytes=(\d+)-$/.exec(String(gets[1]!.headers.range));
    assert.ok(
      m && Number(m[1]) > 0 && Number(m[1]) <= 70_000,
      `resume range ${String(gets[1]!.headers.range)}`,
    );
  });

  test('server ignoring Range → safe restart (prefix discarded, digest verified)', async () => {
    srv.route('GET', blobPath, (_req, res, n) => {
      if (n === 1) return serveTruncated(res, data, 50_000);
      res.writeHead(200, { 'content-length': String(data.length) }).end(data);
    });
    const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
    assert.ok(out.equals(data));
    assert.match(String(srv.requests.at(-1)!.headers.range), /^bytes=\d+-$/);
  });

  test('raw mode from an offset; a 200 answer is skipped to the offset', async () => {
    srv.route('GET', blobPath, (req, res, n) =>
      n === 1
        ? serveRange(req, res, data)
        : res.writeHead(200, { 'content-length': String(data.length) }).end(data),
    );
    const a = await drain(
      await client.openBlob(repo, { digest, size: data.length }, { verify: false, offset: 123_456 }),
    );
    assert.ok(a.equals(data.subarray(123_456)));
    assert.equal(srv.requests.at(-1)!.headers.range, 'bytes=123456-');
    const b = await drain(
      await client.openBlob(repo, { digest, size: data.length }, { verify: false, offset: 1000 }),
    );
    assert.ok(b.equals(data.subarray(1000)));
    await assert.rejects(client.openBlob(repo, { digest, size: data.length }, { offset: 5 }), (e: unknown) =>
      isKimgError(e, 'INVALID_ARGUMENT'),
    );
  });

  test('wrong bytes → DIGEST_MISMATCH with expected and actual; more bytes → SIZE_MISMATCH', async () => {
    const wrong = bytes(data.length, 8);
    srv.route('GET', blobPath, (_req, res) =>
      res.writeHead(200, { 'content-length': String(wrong.length) }).end(wrong),
    );
    const err = await drain(await client.openBlob(repo, { digest, size: data.length })).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    assert.ok(isKimgError(err, 'DIGEST_MISMATCH'), String(err));
    assert.equal(err.details.expected, digest);
    assert.equal(err.details.actual, sha256(wrong));
    assert.equal(err.details.bytesRead, data.length);

    const longer = Buffer.concat([data, Buffer.from('extra')]);
    srv.route('GET', '/v2/app/blobs/' + sha256(longer), (_req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      res.end(longer);
    });
    const err2 = await drain(await client.openBlob(repo, { digest: sha256(longer), size: data.length })).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    assert.ok(isKimgError(err2, 'SIZE_MISMATCH'), String(err2));
    assert.equal(err2.details.expected, data.length);
  });

  test('429 with Retry-After: 1 → one wait of 1 s, then success', async () => {
    srv.route('GET', blobPath, (req, res, n) => {
      if (n === 1)
        return void res
          .writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' })
          .end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
      serveRange(req, res, data);
    });
    const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
    assert.ok(out.equals(data));
    assert.deepEqual(clock.sleeps, [1000]);
  });

  test('429 asking for longer than the policy allows → TOO_MANY_REQUESTS with Retry-After and rate-limit headers', async () => {
    srv.route(
      'HEAD',
      '/v2/app/manifests/v1',
      (_req, res) =>
        void res
          .writeHead(429, {
            'retry-after': '3600',
            'ratelimit-limit': '100;w=21600',
            'ratelimit-remaining': '0',
          })
          .end(),
    );
    const err = await client.resolve({ ...repo, tag: 'v1' }).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    assert.ok(isKimgError(err, 'TOO_MANY_REQUESTS'), String(err));
    assert.equal(err.details.retryAfterSeconds, 3600);
    assert.deepEqual(err.details.items, [
      'retry-after: 3600',
      'ratelimit-limit: 100;w=21600',
      'ratelimit-remaining: 0',
    ]);
    assert.equal(err.details.retryable, true);
    assert.deepEqual(clock.sleeps, []);
  });

  test('503 three times → retried with back-off, then success', async () => {
    srv.route('GET', blobPath, (req, res, n) =>
      n <= 3 ? void res.writeHead(503).end() : serveRange(req, res, data),
    );
    const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
    assert.ok(out.equals(data));
    assert.equal(srv.requests.filter((r) => r.path === blobPath).length, 4);
    assert.deepEqual(clock.sleeps, [150, 300, 600]);
  });

  test('503 forever → REGISTRY_UNAVAILABLE after the policy attempts, naming the attempts', async () => {
    srv.route('GET', '/v2/app/manifests/v1', (_req, res) => void res.writeHead(503).end());
    const err = await client.getManifest({ ...repo, tag: 'v1' }).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    assert.ok(isKimgError(err, 'REGISTRY_UNAVAILABLE'), String(err));
    assert.match(err.message, /after 5 attempts/);
    assert.equal(err.details.retryable, true);
  });

  test('stall → aborted after the stall window, naming bytes received and host', async () => {
    const stallClient = new RegistryClient({
      plainHttp: [srv.host],
      clock,
      stallTimeoutMs: 400,
      credentials: () => creds,
      debug: (l) => seen.push(l),
    });
    srv.route('GET', blobPath, (_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.write(data.subarray(0, 1000));
      // then nothing
    });
    const err = await drain(await stallClient.openBlob(repo, { digest, size: data.length })).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    await stallClient.close();
    assert.ok(isKimgError(err, 'STALLED'), String(err));
    assert.equal(err.details.bytesRead, 1000);
    assert.match(
      err.message,
      new RegExp(
        `no bytes from ${srv.host.replace(/\./g, '\\.')} for 0\\.4s .*received 1000 of ${data.length} bytes`,
      ),
    );
  });

  test('no response headers within the stall window → STALLED', async () => {
    const stallClient = new RegistryClient({
      plainHttp: [srv.host],
      clock,
      stallTimeoutMs: 300,
      retry: { maxAttempts: 1 },
    });
    srv.route('GET', '/v2/app/manifests/v1', () => undefined);
    const err = await stallClient.getManifest({ ...repo, tag: 'v1' }).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    await stallClient.close();
    assert.ok(isKimgError(err, 'STALLED'), String(err));
    assert.match(err.message, /sent no response/);
  });

  test('AbortSignal cancels a download in flight → ABORTED', async () => {
    srv.route('GET', blobPath, (_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.write(data.subarray(0, 1000));
    });
    const ac = new AbortController();
    const s = await client.openBlob(repo, { digest, size: data.length }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    const err = await drain(s).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    assert.ok(isKimgError(err, 'ABORTED'), String(err));
    const ac2 = new AbortController();
    ac2.abort();
    await assert.rejects(client.getManifest({ ...repo, tag: 'x' }, { signal: ac2.signal }), (e: unknown) =>
      isKimgError(e, 'ABORTED'),
    );
  });

  test('unreachable host → REGISTRY_UNAVAILABLE with what to check', async () => {
    const dead = await startFaultServer();
    const host = dead.host;
    await dead.close();
    const c = new RegistryClient({ plainHttp: [host], clock, retry: { maxAttempts: 2 } });
    const err = await c.resolve({ domain: host, path: 'x', tag: '1' }).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    await c.close();
    assert.ok(isKimgError(err, 'REGISTRY_UNAVAILABLE'), String(err));
    assert.match(
      err.message,
      new RegExp(
        `cannot reach registry host ${host.replace(/\./g, '\\.')} .*ECONNREFUSED.*check that the registry is running`,
      ),
    );
  });

  test('redirect to another host: Authorization is sent to the registry and dropped on the other host', async () => {
    const other = await startFaultServer('127.0.0.2');
    try {
      srv.route('GET', '/v2/', (req, res) => {
        if (req.headers.authorization === `Basic ${Buffer.from(`u:${CANARY}`).toString('base64')}`)
          return void res.writeHead(200).end('{}');
        res.writeHead(401, { 'www-authenticate': 'Basic realm="fault"' }).end();
      });
      srv.route('GET', blobPath, (req, res) => {
        if (!req.headers.authorization)
          return void res.writeHead(401, { 'www-authenticate': 'Basic realm="fault"' }).end();
        res.writeHead(307, { location: `${other.url}/cdn/blob?X-Amz-Signature=${TOKEN_CANARY}` }).end();
      });
      other.route('GET', '/cdn/blob', (req, res) => serveRange(req, res, data));
      const out = await drain(await client.openBlob(repo, { digest, size: data.length }));
      assert.ok(out.equals(data));
      assert.ok(
        srv.requests.some((r) => r.path === blobPath && r.headers.authorization),
        'registry got credentials',
      );
      assert.equal(other.requests.length, 1);
      assert.equal(
        other.requests[0]!.headers.authorization,
        undefined,
        'credentials leaked to the redirect host',
      );
    } finally {
      await other.close();
    }
  });

  test('Basic auth: wrong password → UNAUTHORIZED telling to check the pull secret, without the password', async () => {
    srv.route(
      'GET',
      '/v2/',
      (_req, res) => void res.writeHead(401, { 'www-authenticate': 'Basic realm="fault"' }).end(),
    );
    srv.route(
      'HEAD',
      '/v2/app/manifests/v1',
      (_req, res) => void res.writeHead(401, { 'www-authenticate': 'Basic realm="fault"' }).end(),
    );
    const err = await client.resolve({ ...repo, tag: 'v1' }).then(
      () => undefined,
      (e: unknown) => record(e),
    );
    assert.ok(isKimgError(err, 'UNAUTHORIZED'), String(err));
    assert.match(
      err.message,
      new RegExp(`check the pull secret .*for host ${srv.host.replace(/\./g, '\\.')}`),
    );
  });

  describe('token auth', () => {
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest, size: 1 },
        layers: [],
      }),
    );
    let tokens = 0;
    let tokenLog: { method: string; body: string; auth: boolean; query: string }[];
    function script(expiresIn: number | undefined, postStatus = 200): void {
      tokens = 0;
      tokenLog = [];
      const challenge = `Bearer realm="${srv.url}/token",service="fault-svc"`;
      srv.route(
        'GET',
        '/v2/',
        (_req, res) => void res.writeHead(401, { 'www-authenticate': challenge }).end(),
      );
      const handleToken =
        (method: string) =>
        (
          req: import('node:http').IncomingMessage,
          res: import('node:http').ServerResponse,
          _n: number,
          body: Buffer,
        ) => {
          tokenLog.push({
            method,
            body: body.toString(),
            auth: Boolean(req.headers.authorization),
            query: (req.url ?? '').split('?')[1] ?? '',
          });
          if (method === 'POST' && postStatus !== 200) return void res.writeHead(postStatus).end();
          tokens++;
          const t = `${TOKEN_CANARY}-${tokens}`;
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(
              JSON.stringify(
                expiresIn === undefined ? { token: t } : { access_token: t, token: t, expires_in: expiresIn },
              ),
            );
        };
      srv.route('POST', '/token', handleToken('POST'));
      srv.route('GET', '/token', handleToken('GET'));
      srv.route('GET', '/v2/app/manifests/v1', (req, res) => {
        const auth = req.headers.authorization ?? '';
        if (!auth.startsWith(`Bearer ${TOKEN_CANARY}-`))
          return void res
            .writeHead(401, { 'www-authenticate': `${challenge},scope="repository:app:pull"` })
            .end();
        if (auth === `Bearer ${TOKEN_CANARY}-revoked`)
          return void res.writeHead(401, { 'www-authenticate': challenge }).end();
        res
          .writeHead(200, {
            'content-type': MediaType.OciManifest,
            'docker-content-digest': sha256(manifest),
          })
          .end(manifest);
      });
    }

    test('OAuth2 POST with grant_type=password, token reused, refreshed before expiry', async () => {
      script(100);
      const ref = { ...repo, tag: 'v1' };
      await client.getManifest(ref);
      await client.getManifest(ref);
      assert.equal(tokens, 1, 'token reused');
      const post = new URLSearchParams(tokenLog[0]!.body);
      assert.equal(tokenLog[0]!.method, 'POST');
      assert.equal(post.get('grant_type'), 'password');
      assert.equal(post.get('username'), 'u');
      assert.equal(post.get('service'), 'fault-svc');
      assert.equal(post.get('scope'), 'repository:app:pull');
      await clock.sleep(89_000);
      await client.getManifest(ref);
      assert.equal(tokens, 1, 'still fresh at 89 s of 100');
      await clock.sleep(2_000);
      await client.getManifest(ref);
      assert.equal(tokens, 2, 'refreshed shortly before expiry');
    });

    test('missing expires_in means 60 s (token spec)', async () => {
      script(undefined);
      const ref = { ...repo, tag: 'v1' };
      await client.getManifest(ref);
      await clock.sleep(50_000);
      await client.getManifest(ref);
      assert.equal(tokens, 1);
      await clock.sleep(10_000);
      await client.getManifest(ref);
      assert.equal(tokens, 2);
    });

    test('POST refused with 404 → GET with Basic credentials and one scope parameter per scope', async () => {
      script(300, 404);
      await client.getManifest({ ...repo, tag: 'v1' });
      assert.deepEqual(
        tokenLog.map((t) => t.method),
        ['POST', 'GET'],
      );
      assert.equal(tokenLog[1]!.auth, true);
      assert.equal(new URLSearchParams(tokenLog[1]!.query).getAll('scope').join(' '), 'repository:app:pull');
    });

    test('anonymous: GET without Authorization', async () => {
      script(300);
      await client.getManifest({ ...repo, tag: 'v1' }, { auth: null });
      assert.deepEqual(
        tokenLog.map((t) => [t.method, t.auth]),
        [['GET', false]],
      );
    });

    test('token server refusing the credentials → TOKEN_REFUSED', async () => {
      script(300, 401);
      srv.route(
        'GET',
        '/token',
        (_req, res) =>
          void res
            .writeHead(401, { 'content-type': 'application/json' })
            .end('{"errors":[{"code":"UNAUTHORIZED","message":"bad"}]}'),
      );
      const err = await client
        .getManifest({ ...repo, tag: 'v1' }, { auth: { username: 'u', password: new Secret(CANARY + 'x') } })
        .then(
          () => undefined,
          (e: unknown) => record(e),
        );
      assert.ok(isKimgError(err, 'TOKEN_REFUSED'), String(err));
      assert.match(err.message, /refused the credentials .*check the pull secret/);
    });
  });

  test('manifests: Content-Type checks, digest checks, size cap, HEAD→GET fallback', async () => {
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifest,
        config: { mediaType: MediaType.DockerConfig, digest, size: 3 },
        layers: [],
      }),
    );
    const d = sha256(body);
    srv.route('HEAD', '/v2/app/manifests/v1', (_req, res) => void res.writeHead(405).end());
    srv.route(
      'GET',
      '/v2/app/manifests/v1',
      (_req, res) =>
        void res
          .writeHead(200, { 'content-type': MediaType.DockerManifest, 'docker-content-digest': d })
          .end(body),
    );
    assert.deepEqual(await client.resolve({ ...repo, tag: 'v1' }), {
      mediaType: MediaType.DockerManifest,
      digest: d,
      size: body.length,
    });

    srv.route(
      'GET',
      '/v2/app/manifests/weird',
      (_req, res) =>
        void res.writeHead(200, { 'content-type': 'application/vnd.example.thing+json' }).end(body),
    );
    const e1 = await client.getManifest({ ...repo, tag: 'weird' }).catch((e: unknown) => record(e));
    assert.ok(isKimgError(e1, 'UNSUPPORTED_MEDIA_TYPE'));
    assert.match(e1.message, /application\/vnd\.example\.thing\+json/);

    srv.route(
      'GET',
      '/v2/app/manifests/liar',
      (_req, res) =>
        void res
          .writeHead(200, {
            'content-type': MediaType.DockerManifest,
            'docker-content-digest': sha256(Buffer.from('x')),
          })
          .end(body),
    );
    const e2 = await client.getManifest({ ...repo, tag: 'liar' }).catch((e: unknown) => record(e));
    assert.ok(isKimgError(e2, 'DIGEST_MISMATCH'));

    srv.route(
      'GET',
      `/v2/app/manifests/${sha256(Buffer.from('other'))}`,
      (_req, res) => void res.writeHead(200, { 'content-type': MediaType.DockerManifest }).end(body),
    );
    const e3 = await client
      .getManifest({ ...repo, digest: sha256(Buffer.from('other')) })
      .catch((e: unknown) => record(e));
    assert.ok(isKimgError(e3, 'DIGEST_MISMATCH'));
    assert.equal(e3.details.expected, sha256(Buffer.from('other')));

    srv.route('GET', '/v2/app/manifests/huge', (_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.OciManifest, 'transfer-encoding': 'chunked' });
      res.end(Buffer.alloc(5 * 1024 * 1024, 0x20));
    });
    const e4 = await client.getManifest({ ...repo, tag: 'huge' }).catch((e: unknown) => record(e));
    assert.ok(isKimgError(e4, 'MANIFEST_TOO_LARGE'));

    srv.route(
      'GET',
      '/v2/app/manifests/old',
      (_req, res) =>
        void res.writeHead(200, { 'content-type': MediaType.DockerSchema1Signed }).end('{"schemaVersion":1}'),
    );
    const e5 = await client.getManifest({ ...repo, tag: 'old' }).catch((e: unknown) => record(e));
    assert.ok(isKimgError(e5, 'UNSUPPORTED_MEDIA_TYPE'));
    assert.match(e5.message, /schema 1/);

    srv.route(
      'GET',
      '/v2/app/manifests/missing',
      (_req, res) =>
        void res
          .writeHead(404, { 'content-type': 'application/json' })
          .end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'),
    );
    const e6 = await client.getManifest({ ...repo, tag: 'missing' }).catch((e: unknown) => record(e));
    assert.ok(isKimgError(e6, 'NOT_FOUND'));
    assert.match(e6.message, /says the tag "missing" in repository "app" does not exist/);
  });

  test('tags: pagination through Link headers', async () => {
    srv.route('GET', '/v2/app/tags/list', (req, res) => {
      const q = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
      const all = ['a', 'b', 'c', 'd', 'e'];
      const start = q.get('last') ? all.indexOf(q.get('last')!) + 1 : 0;
      const page = all.slice(start, start + Number(q.get('n') ?? 100));
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (start + page.length < all.length)
        headers.link = `</v2/app/tags/list?n=${q.get('n')}&last=${page.at(-1)}>; rel="next"`;
      res.writeHead(200, headers).end(JSON.stringify({ name: 'app', tags: page }));
    });
    assert.deepEqual(await client.listTags(repo, { pageSize: 2 }), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(srv.requests.filter((r) => r.path.startsWith('/v2/app/tags/list')).length, 3);
  });

  test('mirrors: tried in order with ?ns=, falling back to the upstream server', async () => {
    const mirror = await startFaultServer();
    try {
      const endpoint = (host: string, isMirror: boolean): RegistryEndpoint => ({
        scheme: 'http',
        host,
        path: '/v2',
        capabilities: ['pull', 'resolve'],
        tls: { caFiles: [], clientPairs: [] },
        headers: isMirror ? { 'x-mirror-token': ['m'] } : {},
        mirror: isMirror,
      });
      const c = new RegistryClient({
        endpoints: () => [endpoint(mirror.host, true), endpoint(srv.host, false)],
        clock,
      });
      mirror.route('GET', blobPath, (_req, res) => void res.writeHead(500).end());
      srv.route('GET', blobPath, (req, res) => serveRange(req, res, data));
      const out = await drain(
        await c.openBlob({ domain: 'upstream.example', path: 'app' }, { digest, size: data.length }),
      );
      await c.close();
      assert.ok(out.equals(data));
      const m = mirror.requests.filter((r) => r.path.startsWith(blobPath));
      assert.equal(m.length, 1, 'a failing mirror is not retried (containerd): the server is next');
      assert.match(m[0]!.path, /\?ns=upstream\.example$/);
      assert.equal(m[0]!.headers['x-mirror-token'], 'm');
      assert.equal(srv.requests.filter((r) => r.path.startsWith(blobPath))[0]!.path, blobPath);
    } finally {
      await mirror.close();
    }
  });

  test('hosts.toml mirrors: capabilities respected, mirror 404 falls back to the server', async () => {
    const mirror = await startFaultServer();
    const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'kimg-faults-hosts-'));
    try {
      await mkdir(join(dir, 'upstream.example'));
      await writeFile(
        join(dir, 'upstream.example', 'hosts.toml'),
        [
          `server = "http://${srv.host}"`,
          `[host."http://${mirror.host}"]`,
          '  capabilities = ["pull"]',
          '  header.x-mirror = "yes"',
        ].join('\n'),
      );
      const c = new RegistryClient({ hostsDir: dir, clock });
      const body = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          config: { mediaType: MediaType.OciConfig, digest, size: 1 },
          layers: [],
        }),
      );
      srv.route(
        'HEAD',
        '/v2/app/manifests/v1',
        (_req, res) =>
          void res
            .writeHead(200, {
              'content-type': MediaType.OciManifest,
              'docker-content-digest': sha256(body),
              'content-length': String(body.length),
            })
            .end(),
      );
      srv.route(
        'GET',
        `/v2/app/manifests/${sha256(body)}`,
        (_req, res) => void res.writeHead(200, { 'content-type': MediaType.OciManifest }).end(body),
      );
      const ref = { domain: 'upstream.example', path: 'app', tag: 'v1' };
      const desc = await c.resolve(ref);
      assert.equal(desc.digest, sha256(body));
      assert.equal(
        mirror.requests.filter((r) => r.path.includes('/manifests/')).length,
        0,
        'resolving a tag skips a pull-only mirror',
      );
      const m = await c.getManifest({ ...ref, tag: undefined, digest: desc.digest });
      assert.equal(m.digest, desc.digest);
      const mreq = mirror.requests.filter((r) => r.path.includes('/manifests/'));
      assert.equal(mreq.length, 1, 'pull by digest tried the mirror first');
      assert.match(mreq[0]!.path, /\?ns=upstream\.example$/);
      assert.equal(mreq[0]!.headers['x-mirror'], 'yes');
      await c.close();
    } finally {
      await mirror.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('push: monolithic PUT, chunked PATCH, stream, mount, manifest by digest', async () => {
    const uploads = new Map<string, Buffer[]>();
    let id = 0;
    srv.route('HEAD', /^\/v2\/app\/blobs\//, (_req, res) => void res.writeHead(404).end());
    srv.route('POST', '/v2/app/blobs/uploads/', (req, res) => {
      const q = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
      if (q.get('mount') && q.get('from') === 'base')
        return void res.writeHead(201, { location: `/v2/app/blobs/${q.get('mount')}` }).end();
      const u = `u${++id}`;
      uploads.set(u, []);
      res.writeHead(202, { location: `/v2/app/blobs/uploads/${u}?_state=${TOKEN_CANARY}` }).end();
    });
    srv.route('PATCH', /^\/v2\/app\/blobs\/uploads\//, (req, res, _n, body) => {
      const u = (req.url ?? '').split('?')[0]!.split('/').pop()!;
      uploads.get(u)!.push(body);
      res.writeHead(202, { location: `/v2/app/blobs/uploads/${u}?_state=next` }).end();
    });
    srv.route('PUT', /^\/v2\/app\/blobs\/uploads\//, (req, res, _n, body) => {
      const u = (req.url ?? '').split('?')[0]!.split('/').pop()!;
      const all = Buffer.concat([...uploads.get(u)!, body]);
      const q = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
      if (sha256(all) !== q.get('digest'))
        return void res.writeHead(400).end('{"errors":[{"code":"DIGEST_INVALID"}]}');
      res
        .writeHead(201, { 'docker-content-digest': sha256(all), location: `/v2/app/blobs/${sha256(all)}` })
        .end();
    });
    const small = bytes(1000, 3);
    assert.deepEqual(await client.pushBlob(repo, { digest: sha256(small), size: small.length }, small), {
      status: 'uploaded',
    });
    assert.deepEqual(
      await client.pushBlob(repo, { digest, size: data.length }, data, { chunkSize: 64 * 1024 }),
      { status: 'uploaded' },
    );
    const patches = srv.requests.filter((r) => r.method === 'PATCH');
    assert.deepEqual(
      patches.map((p) => p.headers['content-range']),
      ['0-65535', '65536-131071', '131072-196607', '196608-199999'],
    );
    const { Readable } = await import('node:stream');
    assert.deepEqual(
      await client.pushBlob(repo, { digest, size: data.length }, () =>
        Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
      ),
      { status: 'uploaded' },
    );
    assert.deepEqual(
      await client.pushBlob(repo, { digest, size: data.length }, data, { mountFrom: ['base'] }),
      { status: 'mounted', from: 'base' },
    );
    await assert.rejects(client.pushBlob(repo, { digest, size: data.length }, small), (e: unknown) =>
      isKimgError(e, 'SIZE_MISMATCH'),
    );
    // a stream that is shorter than the descriptor, or that fails, ends the upload with that error
    await assert.rejects(
      client.pushBlob(repo, { digest, size: data.length }, () => Readable.from([data.subarray(0, 1000)])),
      (e: unknown) => isKimgError(e, 'SIZE_MISMATCH'),
    );
    await assert.rejects(
      client.pushBlob(
        repo,
        { digest, size: data.length },
        () =>
          new Readable({
            read() {
              this.destroy(new Error('disk read failed'));
            },
          }),
      ),
      (e: unknown) =>
        isKimgError(e, 'INTERNAL') &&
        /reading the content of blob .* failed: disk read failed/.test(e.message),
    );

    const m = Buffer.from(
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"' +
        digest +
        '","size":1},"layers":[]}',
    );
    srv.route(
      'PUT',
      /^\/v2\/app\/manifests\//,
      (_req, res, _n, b) => void res.writeHead(201, { 'docker-content-digest': sha256(b) }).end(),
    );
    assert.equal(await client.putManifest({ ...repo, tag: 'v1' }, m, MediaType.OciManifest), sha256(m));
    assert.equal(
      await client.putManifest({ ...repo, digest: sha256(m) }, m, MediaType.OciManifest),
      sha256(m),
    );
    await assert.rejects(client.putManifest({ ...repo, digest }, m, MediaType.OciManifest), (e: unknown) =>
      isKimgError(e, 'DIGEST_MISMATCH'),
    );
    const put = srv.requests.filter((r) => r.method === 'PUT' && r.path.startsWith('/v2/app/manifests/'));
    assert.ok(put.every((p) => p.body.equals(m) && p.headers['content-type'] === MediaType.OciManifest));
  });
});
