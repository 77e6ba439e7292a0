/**
 * The node agent's status page in a real headless Chromium (Debian `chromium`, driven by
 * playwright-core pointed at /usr/bin/chromium; nothing downloads a browser): the page loads, shows a
 * pull in progress with per-layer progress (the registry — a scripted in-process server serving a
 * generated image — holds the layer half-sent until the test has seen it), then the image present, and
 * a pod with a missing image going to ImagePullBackOff with its next retry time and last error, all by
 * server-sent events; a pod's image volumes are rows of their own, with the manifest digest once
 * materialised and the failure reason of one that cannot be pulled. No credential or registry password
 * is on the page. Fails (never skips) when chromium is missing.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext } from 'playwright-core';
import { parseNodeConfig } from '../../src/config/index.js';
import { startNodeAgent, type NodeAgent } from '../../src/node/index.js';
import { startFaultServer, type FaultServer } from '../helpers/fault-server.js';
import { generateImage } from '../helpers/images.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CHROMIUM = '/usr/bin/chromium';

let work: string;
let server: FaultServer;
let agent: NodeAgent | undefined;
let browser: BrowserContext | undefined;
let release: () => void = () => undefined;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install the Debian package "chromium" (apt-get install chromium)`,
    );
  }
  work = await makeTempDir('status-page-');
  const layout = join(work, 'layout');
  const img = await generateImage(layout, { name: 'slow', layers: [{ size: 512 * 1024 }] });
  const blob = (digest: string): Promise<Buffer> =>
    readFile(join(layout, 'blobs', 'sha256', digest.slice(7)));
  const manifest = await blob(img.digest);
  const layerDigest = img.manifests[0]?.layers[0]?.digest ?? '';
  const released = new Promise<void>((resolve) => (release = resolve));
  server = await startFaultServer();
  for (const method of ['HEAD', 'GET']) {
    server.route(method, /^\/v2\/slow\/manifests\/(1|sha256:[0-9a-f]{64})$/, (_req, res) => {
      res.writeHead(200, {
        'content-type': img.mediaType,
        'content-length': String(manifest.length),
        'docker-content-digest': img.digest,
      });
      res.end(method === 'GET' ? manifest : undefined);
    });
  }
  server.route('GET', /^\/v2\/slow\/blobs\/sha256:[0-9a-f]{64}$/, async (req, res) => {
    const digest = (req.url ?? '').split('/').pop()?.split('?')[0] ?? '';
    const data = await blob(digest);
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(data.length),
      'docker-content-digest': digest,
    });
    if (digest !== layerDigest) {
      res.end(data);
      return;
    }
    // Half the layer now, the rest once the test has seen the progress on the page.
    const half = Math.floor(data.length / 2);
    res.write(data.subarray(0, half));
    await released;
    res.end(data.subarray(half));
  });
  const manifests = join(work, 'manifests');
  await mkdir(manifests);
  const pod = (name: string, image: string): string =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n  - name: main\n    image: ${image}\n`;
  await writeFile(join(manifests, 'slow.yaml'), pod('slow', `${server.host}/slow:1`));
  await writeFile(join(manifests, 'missing.yaml'), pod('missing', `${server.host}/missing:1`));
  // Image volumes (KEP-4639): one of the image being pulled, one of an image the registry lacks.
  await writeFile(
    join(manifests, 'withvol.yaml'),
    pod('withvol', `${server.host}/slow:1`) +
      `  volumes:\n  - name: data\n    image:\n      reference: ${server.host}/slow:1\n      pullPolicy: IfNotPresent\n` +
      `  - name: gone\n    image:\n      reference: ${server.host}/missing:2\n`,
  );
  const config = parseNodeConfig(
    `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: ${manifests}\nserializeImagePulls: false\nkimg:\n  rootDir: ${join(work, 'root')}\n`,
  );
  agent = await startNodeAgent({
    config,
    metricsAddr: '127.0.0.1:0',
    registry: { plainHttp: [server.host] },
    nodeName: 'node1',
    resyncMs: 300,
    nodeDockerConfig: false,
    log: () => undefined,
  });
  browser = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  release();
  await browser?.close();
  await agent?.close();
  await server?.close();
  if (work !== undefined) await removeTempDir(work);
});

test('the status page shows live pull progress, then the image present, and a back-off', async () => {
  const page = await (browser as BrowserContext).newPage();
  await page.goto(agent?.url ?? '');
  assert.equal(await page.title(), 'kimg node');
  // A pull in progress with per-layer progress (the layer is held half-sent).
  const slow = page.locator('tr[data-pod="default/slow-node1"]');
  await slow.locator('.layer .progress').first().waitFor({ timeout: 20_000 });
  // The layer (not the config) in progress, not complete (the figure depends on the progress throttle).
  // Locators, not waitForFunction: a string predicate that is not true at once is polled with eval
  // inside the page, which the page's CSP (script-src 'self', no 'unsafe-eval') refuses.
  await slow
    .locator('.layer', { hasText: /^layer [^]*\((?:\d|[1-9]\d)%\)/ })
    .first()
    .waitFor({ timeout: 20_000 });
  assert.equal(await slow.getAttribute('data-reason'), 'Pulling');
  assert.match((await slow.locator('.state').textContent()) ?? '', /Pulling/);
  // The missing image: ErrImagePull, then ImagePullBackOff with the next retry and the last error.
  const missing = page.locator('tr[data-pod="default/missing-node1"][data-reason="ImagePullBackOff"]');
  await missing.waitFor({ timeout: 20_000 });
  assert.match((await missing.locator('.retry').textContent()) ?? '', /next retry in \d+s/);
  assert.match((await missing.locator('.lasterror').textContent()) ?? '', /ErrImagePull/);
  assert.match(
    (await page.locator('td.podstatus.ImagePullBackOff').first().textContent()) ?? '',
    /ImagePullBackOff/,
  );
  // Events table: Pulling and the failure show up too.
  await page.locator('#events tr[data-reason="BackOff"]').first().waitFor({ timeout: 10_000 });
  // Let the layer finish: the image is present, the store lists it.
  release();
  await page.locator('tr[data-pod="default/slow-node1"][data-reason="Ready"]').waitFor({ timeout: 20_000 });
  await page.locator('#images tbody', { hasText: 'slow:1' }).waitFor({ timeout: 10_000 });
  const text = (await page.locator('body').textContent()) ?? '';
  assert.match(text, /ImagesReady/);
  assert.doesNotMatch(text, /password|Authorization/i);
  await page.close();
});

test("the status page shows a pod's image volumes: the digest once materialised, a failure's reason", async () => {
  release();
  const page = await (browser as BrowserContext).newPage();
  await page.goto(agent?.url ?? '');
  const data = page.locator(
    'tr[data-pod="default/withvol-node1"][data-container="data"][data-reason="Ready"]',
  );
  await data.waitFor({ timeout: 30_000 });
  const text = (await data.textContent()) ?? '';
  assert.match(text, /data \(image volume\)/);
  assert.match(text, /slow:1/);
  assert.match(text, /IfNotPresent/);
  assert.match(text, /Present/);
  assert.match(text, /sha256:[0-9a-f]{64} · image/);
  const gone = page.locator(
    'tr[data-pod="default/withvol-node1"][data-container="gone"]:is([data-reason="ErrImagePull"], [data-reason="ImagePullBackOff"])',
  );
  await gone.waitFor({ timeout: 30_000 });
  assert.match((await gone.textContent()) ?? '', /gone \(image volume\).*missing:2/);
  // The pod is not ready while a volume's image is missing; its status names the reason.
  assert.match(
    (await page.locator('tr[data-pod="default/withvol-node1"] td.podstatus').textContent()) ?? '',
    /ErrImagePull|ImagePullBackOff/,
  );
  await page.close();
});
