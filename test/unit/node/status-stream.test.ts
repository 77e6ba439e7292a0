/**
 * The status page's bounds: the live-update stream takes a capped number of clients (the next gets
 * 503) and ends each after its lifetime; the page's script is a served file and the CSP forbids inline
 * scripts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import {
  NodeMetrics,
  PodStateStore,
  STATUS_PAGE_HTML,
  startAgentHttpServer,
  type AgentHttpServer,
} from '../../../src/node/index.js';

let server: AgentHttpServer;
before(async () => {
  server = await startAgentHttpServer({
    address: '127.0.0.1:0',
    agent: {
      state: new PodStateStore(),
      metrics: new NodeMetrics({ processMetrics: false }),
      nodeName: 'n1',
      storeSummary: async () => ({}) as never,
    },
    log: () => undefined,
    streamLimits: { maxClients: 3, lifetimeMs: 400 },
  });
});
after(async () => {
  await server.close();
});

/** Opens `/events` and resolves with the response once headers arrive. */
function openStream(): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}/events`, (res) => resolve(res));
    req.on('error', reject);
    req.end();
  });
}

test('the stream takes at most maxClients; the next is told to come back later', async () => {
  const open = await Promise.all([openStream(), openStream(), openStream()]);
  assert.deepEqual(
    open.map((r) => r.statusCode),
    [200, 200, 200],
  );
  const extra = await openStream();
  assert.equal(extra.statusCode, 503);
  assert.equal(extra.headers['retry-after'], '10');
  extra.resume();
  // Each stream ends after its lifetime; then there is room again.
  await Promise.all(open.map((r) => new Promise((resolve) => r.on('end', resolve).resume())));
  const again = await openStream();
  assert.equal(again.statusCode, 200);
  again.destroy();
});

test("the page's script is served apart and the CSP refuses inline scripts", async () => {
  const page = await fetch(`${server.url}/`);
  const csp = page.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /script-src[^;]*'unsafe-inline'/);
  const html = await page.text();
  assert.equal(html, STATUS_PAGE_HTML);
  assert.match(html, /<script src="\/status\.js"><\/script>/);
  assert.doesNotMatch(html, /<script>/);
  const js = await fetch(`${server.url}/status.js`);
  assert.match(js.headers.get('content-type') ?? '', /javascript/);
  assert.match(await js.text(), /new EventSource\('\/events'\)/);
});
