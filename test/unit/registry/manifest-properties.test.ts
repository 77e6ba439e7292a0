/**
 * Property tests for the registry client's manifest / index parsing and token-response
 * parsing, end to end through HTTP (the parsing is inside `RegistryClient`, as in containerd's
 * `remotes/docker` fetcher, so the bytes go through the real response path): any body with any
 * Content-Type answers with a manifest or a documented, coded KimgError — never another exception —
 * and a token response that is not a token never leaks into an error. FUZZ_RUNS cases each
 * (`npm run fuzz`: 10⁵). Counts go to `$KIMG_RELIABILITY_DIR/fuzz-manifest.json`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Secret } from '../../../src/credentials/index.js';
import { ERROR_CODES, isKimgError } from '../../../src/errors/index.js';
import { MediaType } from '../../../src/oci/index.js';
import { RegistryClient, type RegistryClock } from '../../../src/registry/index.js';
import { sha256, startFaultServer, type FaultServer } from '../../helpers/fault-server.js';
import { FUZZ_RUNS, fuzzParams } from '../../helpers/fuzz.js';

const CANARY = 'canary-PASSWORD-manifest-prop-3e1';
const counts: Record<string, number> = {};
after(() => {
  const dir = process.env.KIMG_RELIABILITY_DIR;
  if (dir) writeFileSync(join(dir, 'fuzz-manifest.json'), JSON.stringify({ runs: counts }, null, 2));
});

const clock: RegistryClock = { now: () => 1_000_000, sleep: async () => undefined };

/** What the server answers for the current case. */
let current: { status: number; type: string; body: Buffer; digestHeader?: string } = {
  status: 200,
  type: MediaType.OciManifest,
  body: Buffer.from('{}'),
};
let tokenBody: Buffer = Buffer.from('{}');

const hexDigest = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((b) => `sha256:${Buffer.from(b).toString('hex')}`);
const digestLike = fc.oneof(
  hexDigest,
  fc.string(),
  fc.constantFrom('sha256:', 'sha512:ab', 'md5:00', 'sha256:' + 'A'.repeat(64)),
);
const sizeLike = fc.oneof(
  fc.nat(),
  fc.integer(),
  fc.double(),
  fc.constant(-1),
  fc.string(),
  fc.constant(null),
);
const mediaTypes = fc.constantFrom(
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
  MediaType.OciConfig,
  MediaType.DockerConfig,
  MediaType.OciLayerGzip,
  'application/json',
  'application/octet-stream',
  'text/plain',
  '',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
);
const descriptor = fc.record(
  {
    mediaType: fc.oneof(mediaTypes, fc.string()),
    digest: digestLike,
    size: sizeLike,
    platform: fc.oneof(
      fc.record({
        os: fc.constantFrom('linux', 'windows', ''),
        architecture: fc.constantFrom('amd64', 'arm64', ''),
      }),
      fc.jsonValue(),
    ),
    annotations: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.jsonValue()),
    urls: fc.oneof(fc.array(fc.webUrl()), fc.jsonValue()),
  },
  { requiredKeys: [] },
);
const manifestLike = fc.record(
  {
    schemaVersion: fc.oneof(fc.constant(2), fc.constant(1), fc.jsonValue()),
    mediaType: fc.oneof(mediaTypes, fc.string()),
    config: fc.oneof(descriptor, fc.jsonValue()),
    layers: fc.oneof(fc.array(descriptor, { maxLength: 4 }), fc.jsonValue()),
    manifests: fc.oneof(fc.array(descriptor, { maxLength: 4 }), fc.jsonValue()),
    subject: descriptor,
    annotations: fc.jsonValue(),
  },
  { requiredKeys: [] },
);
const validDescriptor = fc.record({
  mediaType: fc.constantFrom(MediaType.OciLayerGzip, MediaType.OciConfig, MediaType.DockerConfig),
  digest: hexDigest,
  size: fc.nat(),
});
const validManifest = fc.record({
  schemaVersion: fc.constant(2),
  mediaType: fc.constantFrom(MediaType.OciManifest, MediaType.DockerManifest),
  config: validDescriptor,
  layers: fc.array(validDescriptor, { maxLength: 5 }),
  annotations: fc.option(fc.dictionary(fc.string(), fc.string()), { nil: undefined }),
});
const bodyText = fc.oneof(
  { weight: 3, arbitrary: validManifest.map((m) => JSON.stringify(m)) },
  { weight: 5, arbitrary: manifestLike.map((m) => JSON.stringify(m)) },
  { weight: 2, arbitrary: fc.json() },
  { weight: 2, arbitrary: fc.string() },
  { weight: 1, arbitrary: manifestLike.map((m) => JSON.stringify(m).slice(0, -3)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('latin1')) },
);

function assertCoded(input: unknown, e: unknown): void {
  if (isKimgError(e)) {
    assert.ok(e.code in ERROR_CODES, `undocumented code ${e.code}`);
    assert.ok(!e.message.includes(CANARY), 'canary in an error message');
    return;
  }
  throw new Error(`uncoded error for ${JSON.stringify(input).slice(0, 400)}: ${String(e)}`, { cause: e });
}

describe('registry manifest and token parsing: properties', () => {
  let srv: FaultServer;
  let client: RegistryClient;
  before(async () => {
    srv = await startFaultServer();
    srv.route('GET', /^\/v2\/app\/manifests\//, (_req, res) => {
      const h: Record<string, string> = { 'content-length': String(current.body.length) };
      if (current.type) h['content-type'] = current.type;
      if (current.digestHeader) h['docker-content-digest'] = current.digestHeader;
      res.writeHead(current.status, h).end(current.body);
    });
    srv.route('HEAD', /^\/v2\/app\/manifests\//, (_req, res) => {
      res
        .writeHead(current.status, {
          'content-type': current.type,
          'content-length': String(current.body.length),
        })
        .end();
    });
    client = new RegistryClient({
      plainHttp: [srv.host],
      clock,
      retry: { maxAttempts: 1 },
      stallTimeoutMs: 5000,
    });
  });
  after(async () => {
    await client.close();
    await srv.close();
    srv.requests.length = 0;
  });

  test('any manifest body and Content-Type: a parsed manifest or a coded error', async () => {
    let ok = 0;
    await fc.assert(
      fc.asyncProperty(
        bodyText,
        fc.oneof(mediaTypes, fc.constantFrom('application/vnd.oci.image.manifest.v1+json; charset=utf-8')),
        fc.constantFrom(200, 200, 200, 404, 401, 400),
        fc.boolean(),
        async (text, type, status, withDigest) => {
          const body = Buffer.from(text);
          current = { status, type, body, ...(withDigest ? { digestHeader: sha256(body) } : {}) };
          srv.requests.length = 0;
          try {
            const r = await client.getImageManifest({ domain: srv.host, path: 'app', tag: 't' });
            ok++;
            assert.equal(typeof r.manifest.digest, 'string');
          } catch (e) {
            assertCoded({ text, type, status }, e);
          }
        },
      ),
      fuzzParams(),
    );
    counts['registry manifest/index parsing'] = FUZZ_RUNS;
    console.error(`[manifest-properties] ${ok} of ${FUZZ_RUNS} bodies accepted`);
  });

  test('any token-server response: a coded error, never the password or the body', async () => {
    const tsrv = await startFaultServer();
    tsrv.route(
      'GET',
      '/v2/',
      (_req, res) =>
        void res.writeHead(401, { 'www-authenticate': `Bearer realm="${tsrv.url}/token",service="s"` }).end(),
    );
    tsrv.route(
      'GET',
      /^\/v2\/app\/manifests\//,
      (_req, res) =>
        void res
          .writeHead(401, {
            'www-authenticate': `Bearer realm="${tsrv.url}/token",service="s",scope="repository:app:pull"`,
          })
          .end(),
    );
    let status = 200;
    const answer = (_req: unknown, res: import('node:http').ServerResponse): void =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(tokenBody);
    tsrv.route('GET', '/token', answer);
    tsrv.route('POST', '/token', answer);
    const c = new RegistryClient({
      plainHttp: [tsrv.host],
      clock,
      retry: { maxAttempts: 1 },
      credentials: () => ({ username: 'u', password: new Secret(CANARY) }),
    });
    const tokenLike = fc.record(
      {
        token: fc.oneof(fc.string(), fc.jsonValue()),
        access_token: fc.oneof(fc.string(), fc.jsonValue()),
        expires_in: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.jsonValue()),
        issued_at: fc.oneof(
          fc.date({ noInvalidDate: false }).map((d) => String(d)),
          fc.jsonValue(),
        ),
        refresh_token: fc.oneof(fc.string(), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    let tokenRequests = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            tokenLike.map((t) => JSON.stringify(t)),
            fc.json(),
            fc.string(),
          ),
          fc.constantFrom(200, 200, 200, 401, 403, 400),
          async (text, st) => {
            tokenBody = Buffer.from(text);
            status = st;
            tokenRequests += tsrv.requests.filter((r) => r.path.startsWith('/token')).length;
            tsrv.requests.length = 0;
            try {
              await c.getManifest({ domain: tsrv.host, path: 'app', tag: 't' });
              assert.fail('the registry never accepts a token, so this cannot succeed');
            } catch (e) {
              assertCoded({ text, st }, e);
              if (isKimgError(e)) {
                const tok = (() => {
                  try {
                    const v = JSON.parse(text) as { token?: unknown; access_token?: unknown };
                    return [v?.token, v?.access_token].filter(
                      (x): x is string => typeof x === 'string' && x.length > 8,
                    );
                  } catch {
                    return [];
                  }
                })();
                for (const t of tok) assert.ok(!e.message.includes(t), 'a token appears in an error message');
              }
            }
          },
        ),
        fuzzParams(),
      );
      counts['token responses'] = FUZZ_RUNS;
      console.error(`[manifest-properties] ${tokenRequests} token requests for ${FUZZ_RUNS} cases`);
    } finally {
      await c.close();
      await tsrv.close();
    }
  });
});
