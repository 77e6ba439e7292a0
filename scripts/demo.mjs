#!/usr/bin/env node
// The demo's body (see scripts/demo.sh): kimg's main job, the node agent. It reuses the test harness's
// real-component helpers (compiled under dist/test/helpers) to start two local registries — a public
// one and a private one with htpasswd Basic auth — seeded with example images (one multi-arch), writes
// a node configuration (KubeletConfiguration + kimg section) and four static pods:
//   public   a public multi-arch image                      → ImagesReady
//   private  a private image, pull Secret in --secrets-dir   → ImagesReady
//   typo     a misspelled image                              → ErrImagePull, then ImagePullBackOff
//   never    imagePullPolicy: Never, image not on the node   → ErrImageNeverPull
// then runs `kimg node` and prints where to look (status page, kimg get pods, kimg describe, kimg explain).
// Ctrl-C stops everything it started (by PID) and removes its temp dir.
//   --ci    stop once the pods have settled, check their states, exit 0 (as expected) or 1
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startRegistry } from '../dist/test/helpers/registry.js';
import { generateImage } from '../dist/test/helpers/images.js';
import { skopeoPush } from '../dist/test/helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../dist/test/helpers/tmp.js';
import { buildDockerRegistrySecret } from '../dist/src/credentials/index.js';
import { toYaml } from '../dist/src/cli/output.js';

const ci = process.argv.includes('--ci');
const KIMG = new URL('../dist/bin/kimg.js', import.meta.url).pathname;
const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const work = await makeTempDir('kimg-demo-');
const registries = [];
let agent;
let stopping;
const stop = () =>
  (stopping ??= (async () => {
    if (agent !== undefined && agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      process.kill(agent.pid, 'SIGTERM');
      const t = setTimeout(() => agent.exitCode === null && process.kill(agent.pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    for (const r of registries) await r.stop();
    await removeTempDir(work);
  })());
process.on('SIGINT', () => void stop().then(() => process.exit(130)));
process.on('SIGTERM', () => void stop().then(() => process.exit(143)));

// Runs `kimg ARGS` as a child process without blocking the event loop: a synchronous spawn kept this
// process from reading for longer than the agent's keep-alive, so the next fetch reused a connection
// the agent had already closed (`other side closed`).
async function kimg(title, args) {
  console.log(`\n${bold('## ' + title)}\n$ kimg ${args.join(' ')}`);
  const child = spawn(process.execPath, [KIMG, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOME: work },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const status = await new Promise((resolve) => child.on('close', (code) => resolve(code)));
  process.stdout.write(stdout);
  process.stdout.write(stderr);
  return { status, stdout, stderr };
}

// Each request on its own connection: the demo polls slowly enough that a pooled one may have been
// closed by the agent's keep-alive timeout in between.
function agentFetch(url) {
  return fetch(url, { headers: { connection: 'close' } });
}

async function freePort(preferred) {
  const tryListen = (port) =>
    new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen(port, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0));
}

let failures = 0;
try {
  console.log(
    'Starting two local registries (public; private with htpasswd Basic auth) and example images ...',
  );
  const pub = await startRegistry({ mode: 'plain' });
  registries.push(pub);
  const priv = await startRegistry({ mode: 'basic' });
  registries.push(priv);
  const images = join(work, 'images');
  const multi = await generateImage(join(images, 'multi'), {
    name: 'multi',
    layers: [{ size: 2 * 1024 * 1024 }, { size: 64 * 1024, kind: 'text' }],
    platforms: [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ],
  });
  const app = await generateImage(join(images, 'app'), {
    name: 'app',
    layers: [{ size: 1024 * 1024 }, { size: 8192 }],
  });
  await skopeoPush(multi, pub, 'demo/multi:1');
  await skopeoPush(app, priv, 'team/app:1.0');
  console.log(`  public  ${pub.host}: demo/multi:1 (linux/amd64, linux/arm64/v8, linux/arm/v7)`);
  console.log(`  private ${priv.host}: team/app:1.0 (user ${priv.username})`);

  const manifests = join(work, 'manifests');
  const secrets = join(work, 'secrets');
  mkdirSync(manifests);
  mkdirSync(secrets);
  const secret = await buildDockerRegistrySecret({
    name: 'regcred',
    server: priv.host,
    username: priv.username,
    password: priv.password,
  });
  writeFileSync(join(secrets, 'regcred.yaml'), toYaml(secret), { mode: 0o600 });
  const pod = (name, image, extra = '') =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n${extra}  containers:\n  - name: main\n    image: ${image}\n`;
  writeFileSync(join(manifests, 'public.yaml'), pod('public', `${pub.host}/demo/multi:1`));
  writeFileSync(
    join(manifests, 'private.yaml'),
    pod('private', `${priv.host}/team/app:1.0`, '  imagePullSecrets:\n  - name: regcred\n'),
  );
  writeFileSync(join(manifests, 'typo.yaml'), pod('typo', `${pub.host}/demo/mutli:1`));
  writeFileSync(
    join(manifests, 'never.yaml'),
    pod('never', `${pub.host}/demo/absent:1`).replace(/(image: .*\n)$/, '$1    imagePullPolicy: Never\n'),
  );
  const port = await freePort(10259);
  const config = join(work, 'kubelet-config.yaml');
  writeFileSync(
    config,
    [
      'apiVersion: kubelet.config.k8s.io/v1beta1',
      'kind: KubeletConfiguration',
      `staticPodPath: ${manifests}`,
      'serializeImagePulls: false',
      'maxParallelImagePulls: 2',
      'imageGCHighThresholdPercent: 85',
      'imageGCLowThresholdPercent: 80',
      'kimg:',
      `  rootDir: ${join(work, 'store')}`,
      '  listen:',
      `    metrics: 127.0.0.1:${port}`,
      `    cri: unix://${join(work, 'kimg.sock')}`,
      '',
    ].join('\n'),
  );
  console.log(`\nNode configuration ${config}, static pods in ${manifests}, pull Secret in ${secrets}`);

  const nodeName = 'demo-node';
  const logFile = join(work, 'kimg-node.log');
  const logFd = openSync(logFile, 'a');
  const args = [
    'node',
    '--config',
    config,
    '--secrets-dir',
    secrets,
    '--plain-http',
    pub.host,
    '--plain-http',
    priv.host,
    '--node-name',
    nodeName,
    '--resync',
    '2',
  ];
  console.log(`\n${bold('## The node agent')}\n$ kimg ${args.join(' ')}   (JSON logs → ${logFile})`);
  agent = spawn(process.execPath, [KIMG, ...args], {
    stdio: ['ignore', 'inherit', logFd],
    env: { ...process.env, HOME: work },
  });
  closeSync(logFd);
  const url = `http://127.0.0.1:${port}`;
  // Ready when /healthz answers.
  for (let i = 0; ; i++) {
    if (agent.exitCode !== null) throw new Error(`kimg node exited (${agent.exitCode}); see ${logFile}`);
    const ok = await agentFetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 300) throw new Error('kimg node did not answer /healthz within 30 s');
    await sleep(100);
  }
  // Watch the pods settle: typo must show ErrImagePull, then ImagePullBackOff.
  const history = new Map();
  const statusOf = (p) => {
    for (const c of p.containers)
      if (c.state === 'Waiting' && c.reason && c.reason !== 'ContainerCreating') return c.reason;
    return p.containers.every((c) => c.state === 'Ready') ? 'ImagesReady' : 'ContainerCreating';
  };
  const expected = {
    public: 'ImagesReady',
    private: 'ImagesReady',
    typo: 'ImagePullBackOff',
    never: 'ErrImageNeverPull',
  };
  const deadline = Date.now() + 90_000;
  let last = {};
  for (;;) {
    const { pods } = await (await agentFetch(`${url}/api/pods`)).json();
    last = {};
    for (const p of pods) {
      const short = p.name.slice(0, -(nodeName.length + 1));
      const s = p.syncs > 0 ? statusOf(p) : 'Pending';
      last[short] = s;
      const h = history.get(short) ?? [];
      if (h[h.length - 1] !== s) h.push(s);
      history.set(short, h);
    }
    const done = Object.entries(expected).every(([k, v]) => last[k] === v);
    if (done || Date.now() > deadline || agent.exitCode !== null) break;
    await sleep(100);
  }
  console.log('\nPod status as it changed:');
  for (const [k, h] of history) console.log(`  ${k.padEnd(8)} ${h.join(' → ')}`);
  for (const [k, v] of Object.entries(expected)) {
    if (last[k] !== v) {
      failures++;
      console.log(`  ✗ ${k}: expected ${v}, got ${last[k] ?? 'nothing'}`);
    }
  }
  const typoHistory = history.get('typo') ?? [];
  if (
    !typoHistory.includes('ErrImagePull') ||
    typoHistory.indexOf('ErrImagePull') > typoHistory.indexOf('ImagePullBackOff')
  ) {
    failures++;
    console.log('  ✗ typo: expected ErrImagePull before ImagePullBackOff');
  }

  const server = ['--server', url];
  const g = await kimg('The pods, like kubectl get pods', ['get', 'pods', ...server]);
  if (g.status !== 0) failures++;
  const d = await kimg('Why the typo pod waits, like kubectl describe pod', [
    'describe',
    'pod',
    'typo',
    ...server,
  ]);
  if (d.status !== 0 || !/ImagePull/.test(d.stdout)) failures++;
  const e = await kimg("The kubelet's decision for the private image, step by step", [
    'explain',
    '-f',
    join(manifests, 'private.yaml'),
    '-f',
    join(secrets, 'regcred.yaml'),
    '--root',
    join(work, 'store'),
    '--no-node-config',
  ]);
  if (e.status !== 0) failures++;
  const metrics = await (await agentFetch(`${url}/metrics`)).text();
  const pulls = metrics
    .split('\n')
    .filter((l) => /^kubelet_image_pull_duration_seconds_count|^kimg_image_pull_errors_total/.test(l));
  console.log(`\n${bold('## Metrics')} (${url}/metrics)\n${pulls.join('\n')}`);

  console.log(`\n${bold('Look at:')}
  status page   ${url}/        (live: pods, pull progress, back-off, store, events)
  pods          node ${KIMG} get pods --server ${url}
  one pod       node ${KIMG} describe pod typo --server ${url}
  a decision    node ${KIMG} explain -f ${join(manifests, 'private.yaml')} -f ${join(secrets, 'regcred.yaml')} --root ${join(work, 'store')}
  metrics       curl -s ${url}/metrics | grep -E 'kubelet_|kimg_'
  logs          ${logFile}
  edit a manifest in ${manifests} (fix the typo: demo/multi:1) and watch the page.`);
  if (!ci) {
    console.log('\nkimg node keeps running. Ctrl-C stops everything.');
    await new Promise((resolve) => agent.once('exit', resolve));
  }
} catch (e) {
  failures++;
  console.error(`demo: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  await stop();
}
console.log(
  failures === 0
    ? '\ndemo: every step behaved as expected'
    : `\ndemo: ${failures} step(s) did not behave as expected`,
);
process.exitCode = failures === 0 ? 0 : 1;
