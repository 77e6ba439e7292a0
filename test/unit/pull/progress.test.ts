/**
 * The pull progress hub: pipeline event sequences become image and layer lines, a failed pull's
 * final line carries its error, completed pulls leave the snapshot, concurrent pulls of one image
 * share one entry until the last ends; the NDJSON stream sends the snapshot then updates, honours
 * `watch=false`, the client cap and the idle timeout.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { PullProgressStreams, registerPullProgressMetrics } from '../../../src/node/index.js';
import { PullProgressHub, type PullProgressLine } from '../../../src/pull/index.js';

const IMG = 'registry.test/app:1';
const L1 = `sha256:${'1'.repeat(64)}`;
const L2 = `sha256:${'2'.repeat(64)}`;

function collect(hub: PullProgressHub): PullProgressLine[] {
  const lines: PullProgressLine[] = [];
  hub.subscribe((l) => lines.push(l));
  return lines;
}

/** A pull of two layers: L1 downloaded in two steps, L2 already present. */
function feedPull(hub: PullProgressHub, image = IMG): void {
  hub.event(image, {
    type: 'resolved',
    image,
    digest: 'sha256:m',
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    manifestDigest: 'sha256:m',
    platform: 'linux/amd64',
  });
  hub.event(image, {
    type: 'layer-start',
    digest: L1,
    size: 100,
    kind: 'layer',
    cached: false,
    resumedFrom: 0,
  });
  hub.event(image, {
    type: 'layer-start',
    digest: L2,
    size: 50,
    kind: 'layer',
    cached: true,
    resumedFrom: 0,
  });
  hub.event(image, { type: 'bytes', digest: L1, completed: 40, total: 100 });
  hub.event(image, { type: 'bytes', digest: L1, completed: 100, total: 100 });
  hub.event(image, { type: 'layer-done', digest: L1, size: 100, downloaded: true });
}

test('a pull becomes image and layer lines; its final line says done and it leaves', () => {
  const hub = new PullProgressHub();
  const lines = collect(hub);
  hub.begin(IMG);
  feedPull(hub);
  assert.deepEqual(hub.inFlight(), [{ image: IMG, progress: 150, total: 150, layers: 2, layersDone: 2 }]);
  const snap = hub.snapshot();
  assert.deepEqual(snap[0], { name: IMG, image: IMG, progress: 150, total: 150 });
  assert.deepEqual(
    snap.slice(1).map((l) => [l.layer, l.name, l.progress, l.total]),
    [
      [L1, L1, 100, 100],
      [L2, L2, 50, 50],
    ],
  );
  hub.event(IMG, { type: 'committed', image: IMG, id: 'sha256:c', digest: 'sha256:m', size: 150 });
  assert.equal(hub.snapshot().length, 2 + 1, 'committed alone does not end a pull its service call holds');
  hub.end(IMG);
  assert.deepEqual(hub.snapshot(), []);
  assert.deepEqual(
    lines.map((l) => [l.name, l.progress, l.total, l.error, l.done]),
    [
      [IMG, 0, 0, undefined, undefined], // begin
      [IMG, 0, 0, undefined, undefined], // resolved
      [L1, 0, 100, undefined, undefined],
      [L2, 50, 50, undefined, undefined],
      [L1, 40, 100, undefined, undefined],
      [L1, 100, 100, undefined, undefined],
      [L1, 100, 100, undefined, undefined], // layer-done
      [IMG, 150, 150, undefined, undefined],
      [IMG, 150, 150, undefined, true],
    ],
  );
});

test('a failed pull ends with an error line carrying code and message, then leaves', () => {
  const hub = new PullProgressHub();
  const lines = collect(hub);
  hub.begin(IMG);
  hub.event(IMG, {
    type: 'layer-start',
    digest: L1,
    size: 100,
    kind: 'layer',
    cached: false,
    resumedFrom: 30,
  });
  hub.event(IMG, { type: 'error', code: 'REGISTRY_UNAVAILABLE', message: 'connection reset' });
  hub.end(IMG, { code: 'REGISTRY_UNAVAILABLE', message: 'connection reset' });
  const last = lines.at(-1)!;
  assert.deepEqual(last, {
    name: IMG,
    image: IMG,
    progress: 30,
    total: 100,
    error: 'REGISTRY_UNAVAILABLE: connection reset',
  });
  assert.deepEqual(hub.snapshot(), []);
});

test('a backend without layer events (CRI) shows an image line until its end', () => {
  const hub = new PullProgressHub();
  const lines = collect(hub);
  hub.begin(IMG);
  assert.deepEqual(hub.snapshot(), [{ name: IMG, image: IMG, progress: 0, total: 0 }]);
  hub.end(IMG, { code: 'NOT_FOUND', message: 'manifest unknown' });
  assert.equal(lines.at(-1)?.error, 'NOT_FOUND: manifest unknown');
  assert.deepEqual(hub.snapshot(), []);
});

test('events without begin end with their own committed or error event', () => {
  const hub = new PullProgressHub();
  const lines = collect(hub);
  feedPull(hub);
  hub.event(IMG, { type: 'committed', image: IMG, id: 'sha256:c', digest: 'sha256:m', size: 150 });
  assert.equal(lines.at(-1)?.done, true);
  assert.deepEqual(hub.snapshot(), []);
});

test('concurrent pulls of one image share it until the last ends; other images are separate', () => {
  const hub = new PullProgressHub();
  hub.begin(IMG);
  hub.begin(IMG);
  hub.begin('other:1');
  feedPull(hub);
  hub.end(IMG);
  assert.deepEqual(
    hub.inFlight().map((p) => p.image),
    [IMG, 'other:1'],
  );
  hub.end(IMG);
  hub.end('other:1');
  hub.end('never-begun:1');
  assert.deepEqual(hub.inFlight(), []);
});

test('a throwing listener does not break the hub or other listeners', () => {
  const hub = new PullProgressHub();
  hub.subscribe(() => {
    throw new Error('broken writer');
  });
  const lines = collect(hub);
  hub.begin(IMG);
  hub.end(IMG);
  assert.equal(lines.length, 2);
});

test('progress gauges sum the in-flight pulls and carry no label', async () => {
  const hub = new PullProgressHub();
  const registry = new Registry();
  registerPullProgressMetrics(registry, hub);
  hub.begin(IMG);
  feedPull(hub);
  hub.begin('other:1');
  hub.event('other:1', { type: 'bytes', digest: L2, completed: 7, total: 9 });
  const text = await registry.metrics();
  assert.match(text, /^kimg_image_pull_progress_bytes 157$/m);
  assert.match(text, /^kimg_image_pull_progress_total_bytes 159$/m);
  hub.end(IMG);
  hub.end('other:1');
  assert.match(await registry.metrics(), /^kimg_image_pull_progress_bytes 0$/m);
});

async function serve(streams: PullProgressStreams): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => streams.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/pulls/progress` };
}

/** Opens a stream and returns its lines as they come, and its status. */
function open(url: string): Promise<{ status: number; lines: PullProgressLine[]; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      const lines: PullProgressLine[] = [];
      let buf = '';
      const ended = new Promise<void>((r) => res.on('end', r).on('close', r));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          lines.push(JSON.parse(buf.slice(0, i)) as PullProgressLine);
          buf = buf.slice(i + 1);
        }
      });
      resolve({ status: res.statusCode ?? 0, lines, ended });
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

test('the stream sends the snapshot, then updates; watch=false ends after the snapshot', async () => {
  const hub = new PullProgressHub();
  const streams = new PullProgressStreams(hub, { maxClients: 1 });
  const { server, url } = await serve(streams);
  try {
    hub.begin(IMG);
    feedPull(hub);
    const once = await open(`${url}?watch=false`);
    await once.ended;
    assert.equal(once.status, 200);
    assert.deepEqual(once.lines, hub.snapshot());

    const live = await open(url);
    await until(() => live.lines.length === 3);
    assert.equal(streams.size, 1);
    const refused = await open(url);
    assert.equal(refused.status, 503, 'the client cap holds');
    await refused.ended;

    hub.end(IMG);
    await until(() => live.lines.length === 4);
    assert.deepEqual(live.lines[3], { name: IMG, image: IMG, progress: 150, total: 150, done: true });
    streams.close();
    await live.ended;
    assert.equal(streams.size, 0);
    assert.equal(hub.listenerCount, 0);
  } finally {
    streams.close();
    await new Promise((r) => server.close(r));
  }
});

test('an idle stream is ended and unsubscribed', async () => {
  const hub = new PullProgressHub();
  const streams = new PullProgressStreams(hub, { idleTimeoutMs: 1 });
  const { server, url } = await serve(streams);
  try {
    const live = await open(url);
    await live.ended;
    await until(() => hub.listenerCount === 0);
    assert.equal(streams.size, 0);
  } finally {
    await new Promise((r) => server.close(r));
  }
});
