/**
 * `RegistryClient.copyBlob`: a blob download straight into a synchronous sink (the pull path), against
 * an in-process scripted server for the faults a real registry cannot produce. The sink copies the
 * borrowed chunks and pushes back (returns false, drains later) so that resumption, Range handling,
 * verification and cancellation are all exercised under backpressure.
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isKimgError } from '../../../src/errors/index.js';
import { RegistryClient, type BlobSink } from '../../../src/registry/index.js';
import {
  bytes,
  serveRange,
  serveTruncated,
  sha256,
  fakeClock,
  startFaultServer,
  type FaultServer,
} from '../../helpers/fault-server.js';

/**
 * A sink that copies what it is given and reports itself full every `every`-th chunk, draining on a
 * later turn of the event loop. `chunks` counts the calls; `data()` is everything taken.
 */
class CollectingSink implements BlobSink {
  private parts: Buffer[] = [];
  chunks = 0;
  pauses = 0;
  /** When set, `onDrain` never calls back (a consumer stuck behind a slow disk). */
  stuck = false;
  /** When set, `write` throws this. */
  failWith: Error | undefined;
  /** When set, `onDrain` reports this error. */
  drainError: Error | undefined;

  constructor(private readonly every = 3) {}

  write(chunk: Uint8Array): boolean {
    if (this.failWith) throw this.failWith;
    this.parts.push(Buffer.from(chunk));
    this.chunks++;
    if (this.chunks % this.every === 0) {
      this.pauses++;
      return false;
    }
    return true;
  }

  onDrain(cb: (err?: Error) => void): void {
    if (this.stuck) return;
    setImmediate(() => cb(this.drainError));
  }

  data(): Buffer {
    return Buffer.concat(this.parts);
  }
}

describe('registry client: copyBlob into a sink', () => {
  let srv: FaultServer;
  let client: RegistryClient;
  let clock: ReturnType<typeof fakeClock>;
  const data = bytes(3_000_000, 11);
  const digest = sha256(data);
  const blobPath = `/v2/app/blobs/${digest}`;
  let repo: { domain: string; path: string };

  beforeEach(async () => {
    srv = await startFaultServer();
    clock = fakeClock();
    client = new RegistryClient({ plainHttp: [srv.host], clock, random: () => 0.5, stallTimeoutMs: 2000 });
    repo = { domain: srv.host, path: 'app' };
  });
  afterEach(async () => {
    await client.close();
    await srv.close();
  });

  test('the whole blob arrives byte-exact through a sink that pushes back, with progress to the end', async () => {
    srv.route('GET', blobPath, (req, res) => serveRange(req, res, data));
    const sink = new CollectingSink(2);
    const progress: number[] = [];
    await client.copyBlob(repo, { digest, size: data.length }, sink, {
      onProgress: (p, total) => {
        assert.equal(total, data.length);
        progress.push(p);
      },
    });
    assert.ok(sink.data().equals(data));
    assert.ok(sink.pauses > 0, 'the sink paused the download at least once');
    assert.equal(progress.at(-1), data.length);
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
      'progress never goes back',
    );
  });

  test('a truncated body is resumed with Range from the byte reached; nothing is duplicated', async () => {
    srv.route('GET', blobPath, (req, res, n) =>
      n === 1 ? serveTruncated(res, data, 1_000_000) : serveRange(req, res, data),
    );
    const sink = new CollectingSink();
    await client.copyBlob(repo, { digest, size: data.length }, sink);
    assert.ok(sink.data().equals(data));
    const gets = srv.requests.filter((r) => r.path === blobPath);
    assert.equal(gets.length, 2);
    assert.match(String(gets[1]!.headers.range), /^bytes=\d+-$/);
  });

  test('a server that ignores Range: the prefix already taken is skipped, the digest still verified', async () => {
    srv.route('GET', blobPath, (_req, res, n) => {
      if (n === 1) return serveTruncated(res, data, 700_000);
      res.writeHead(200, { 'content-length': String(data.length) }).end(data);
    });
    const sink = new CollectingSink();
    await client.copyBlob(repo, { digest, size: data.length }, sink);
    assert.ok(sink.data().equals(data));
  });

  test('raw mode from an offset (resuming an ingest) takes only the rest', async () => {
    srv.route('GET', blobPath, (req, res) => serveRange(req, res, data));
    const sink = new CollectingSink();
    await client.copyBlob(repo, { digest, size: data.length }, sink, { verify: false, offset: 1_234_567 });
    assert.ok(sink.data().equals(data.subarray(1_234_567)));
    assert.equal(srv.requests.at(-1)!.headers.range, 'bytes=1234567-');
  });

  test('a chunked response (no Content-Length) is decoded byte-exact', async () => {
    srv.route('GET', blobPath, (_req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      for (let i = 0; i < data.length; i += 333_333) res.write(data.subarray(i, i + 333_333));
      res.end();
    });
    const sink = new CollectingSink();
    await client.copyBlob(repo, { digest, size: data.length }, sink);
    assert.ok(sink.data().equals(data));
  });

  test('wrong bytes → DIGEST_MISMATCH; more bytes than the descriptor → SIZE_MISMATCH', async () => {
    const wrong = bytes(data.length, 12);
    srv.route('GET', blobPath, (_req, res) =>
      res.writeHead(200, { 'content-length': String(wrong.length) }).end(wrong),
    );
    await assert.rejects(
      client.copyBlob(repo, { digest, size: data.length }, new CollectingSink()),
      (e: unknown) => isKimgError(e, 'DIGEST_MISMATCH') && e.details.actual === sha256(wrong),
    );
    const longer = Buffer.concat([data, Buffer.from('extra')]);
    srv.route('GET', `/v2/app/blobs/${sha256(longer)}`, (_req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      res.end(longer);
    });
    await assert.rejects(
      client.copyBlob(repo, { digest: sha256(longer), size: data.length }, new CollectingSink()),
      (e: unknown) => isKimgError(e, 'SIZE_MISMATCH') && e.details.expected === data.length,
    );
  });

  test('a sink that throws fails the download with its error; one whose drain fails, likewise', async () => {
    srv.route('GET', blobPath, (req, res) => serveRange(req, res, data));
    const boom = new Error('disk on fire');
    const throwing = new CollectingSink();
    throwing.failWith = boom;
    await assert.rejects(
      client.copyBlob(repo, { digest, size: data.length }, throwing),
      (e: unknown) => e === boom,
    );
    const draining = new CollectingSink(1);
    const full = new Error('no space left');
    draining.drainError = full;
    await assert.rejects(
      client.copyBlob(repo, { digest, size: data.length }, draining),
      (e: unknown) => e === full,
    );
    // the client still works afterwards (the broken connections were not pooled)
    const ok = new CollectingSink();
    await client.copyBlob(repo, { digest, size: data.length }, ok);
    assert.ok(ok.data().equals(data));
  });

  test('time spent paused by the sink is not a stall; a registry that stops sending is', async () => {
    const stallClient = new RegistryClient({ plainHttp: [srv.host], clock, stallTimeoutMs: 200 });
    try {
      srv.route('GET', blobPath, (req, res) => serveRange(req, res, data));
      const slow: BlobSink & { parts: Buffer[] } = {
        parts: [],
        write(chunk) {
          this.parts.push(Buffer.from(chunk));
          return this.parts.length !== 1;
        },
        onDrain(cb) {
          setTimeout(() => cb(), 600); // three stall windows
        },
      };
      await stallClient.copyBlob(repo, { digest, size: data.length }, slow);
      assert.ok(Buffer.concat(slow.parts).equals(data));

      srv.route('GET', blobPath, (_req, res) => {
        res.writeHead(200, { 'content-length': String(data.length) });
        res.write(data.subarray(0, 1000));
      });
      await assert.rejects(
        stallClient.copyBlob(repo, { digest, size: data.length }, new CollectingSink()),
        (e: unknown) => isKimgError(e, 'STALLED') && e.details.bytesRead === 1000,
      );
    } finally {
      await stallClient.close();
    }
  });

  test('AbortSignal cancels a download whose sink is stuck → ABORTED', async () => {
    srv.route('GET', blobPath, (req, res) => serveRange(req, res, data));
    const ac = new AbortController();
    const sink = new CollectingSink(1);
    sink.stuck = true;
    const p = client.copyBlob(repo, { digest, size: data.length }, sink, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('cancelled by the test')), 50);
    await assert.rejects(p, (e: unknown) => isKimgError(e, 'ABORTED'));
    assert.ok(sink.data().length < data.length);
  });

  test('redirect to another host: the sink gets the bytes, Authorization stays on the registry', async () => {
    const other = await startFaultServer('127.0.0.2');
    try {
      srv.route(
        'GET',
        blobPath,
        (_req, res) => void res.writeHead(307, { location: `${other.url}/cdn/blob?sig=x` }).end('moved'),
      );
      other.route('GET', '/cdn/blob', (req, res) => serveRange(req, res, data));
      const sink = new CollectingSink();
      await client.copyBlob(repo, { digest, size: data.length }, sink);
      assert.ok(sink.data().equals(data));
      assert.equal(other.requests[0]!.headers.authorization, undefined);
    } finally {
      await other.close();
    }
  });

  test('a zero-byte blob never calls the sink', async () => {
    const empty = Buffer.alloc(0);
    srv.route('GET', `/v2/app/blobs/${sha256(empty)}`, (_req, res) =>
      res.writeHead(200, { 'content-length': '0' }).end(),
    );
    const sink = new CollectingSink();
    await client.copyBlob(repo, { digest: sha256(empty), size: 0 }, sink);
    assert.equal(sink.chunks, 0);
  });
});
