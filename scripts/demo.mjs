#!/usr/bin/env node
// The demo's body (see scripts/demo.sh). It reuses the test harness's real-component helpers (compiled
// under dist/test/helpers) to start a docker-registry with Basic auth and to generate example images,
// then runs the kimg CLI the way a user would and shows its output.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry } from '../dist/test/helpers/registry.js';
import { generateImage } from '../dist/test/helpers/images.js';
import { skopeoPush } from '../dist/test/helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../dist/test/helpers/tmp.js';

const keep = process.argv.includes('--keep');
const KIMG = new URL('../dist/src/cli/main.js', import.meta.url).pathname;
const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
let failures = 0;

function kimg(title, args, { expectFail = false } = {}) {
  console.log(`\n${bold('## ' + title)}\n$ kimg ${args.join(' ')}`);
  // Inherit the terminal: pulls draw per-layer progress bars on a TTY.
  const r = spawnSync(process.execPath, [KIMG, ...args], {
    stdio: 'inherit',
    env: { ...process.env, HOME: work },
  });
  const ok = expectFail ? r.status !== 0 : r.status === 0;
  console.log(`(exit status ${r.status}${expectFail ? ', expected to fail' : ''})`);
  if (!ok) failures++;
  return r;
}

const work = await makeTempDir('kimg-demo-');
let reg;
const stop = async () => {
  await reg?.stop();
  await removeTempDir(work);
};
process.on('SIGINT', () => void stop().then(() => process.exit(130)));

try {
  console.log(
    'Starting a local registry (docker-registry, htpasswd Basic auth) and generating example images ...',
  );
  reg = await startRegistry({ mode: 'basic' });
  const H = reg.host;
  const images = join(work, 'images');
  const hello = await generateImage(join(images, 'hello'), {
    name: 'hello',
    layers: [{ size: 8192 }, { size: 256 * 1024, kind: 'text' }],
  });
  const multi = await generateImage(join(images, 'multi'), {
    name: 'multi',
    layers: [{ size: 64 * 1024 }],
    platforms: [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
      { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.5458' },
    ],
  });
  const app = await generateImage(join(images, 'app'), {
    name: 'app',
    layers: [{ size: 2 * 1024 * 1024 }, { size: 8192 }],
  });
  await skopeoPush(hello, reg, 'demo/hello:1');
  await skopeoPush(hello, reg, 'demo/hello-docker:1', { format: 'v2s2' });
  await skopeoPush(multi, reg, 'demo/multi:1');
  await skopeoPush(app, reg, 'team/app:1.0');
  console.log(
    `Registry ${H} (user ${reg.username}) holds demo/hello:1, demo/hello-docker:1 (Docker schema 2), demo/multi:1 (4 platforms), team/app:1.0`,
  );

  const root = join(work, 'store');
  const cfgDir = join(work, '.docker');
  mkdirSync(cfgDir, { recursive: true });
  const dockerConfig = join(cfgDir, 'config.json');
  writeFileSync(
    dockerConfig,
    JSON.stringify(
      { auths: { [H]: { auth: Buffer.from(`${reg.username}:${reg.password}`).toString('base64') } } },
      null,
      2,
    ),
    { mode: 0o600 },
  );
  const podFile = join(work, 'pod.yaml');
  writeFileSync(
    podFile,
    `apiVersion: v1
kind: Pod
metadata: {name: demo, namespace: default}
spec:
  imagePullSecrets: [{name: regcred}]
  initContainers:
    - {name: init, image: ${H}/demo/hello:1}
  containers:
    - {name: app, image: ${H}/team/app:1.0}
    - {name: tools, image: ${H}/demo/multi}
    - {name: typo, image: ${H}/demo/helo:1}
`,
  );
  const reg_ = ['--plain-http', H, '--root', root, ...(process.stderr.isTTY ? [] : ['--progress', 'none'])];

  kimg('How Kubernetes reads image names (seed-page examples)', [
    'ref',
    'parse',
    'busybox',
    'busybox:1.32.0',
    'registry.k8s.io/pause:3.5',
    'registry.k8s.io/pause:3.5@sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07',
    `${H}/team/app:1.0`,
  ]);
  kimg('An invalid name gets a coded error', ['ref', 'parse', 'Team/App:1.0'], { expectFail: true });
  kimg('imagePullPolicy as the API server defaults it', ['pod', 'defaults', '-f', podFile]);
  kimg('Which credentials kubelet would try for an image', [
    'creds',
    'match',
    `${H}/team/app:1.0`,
    '--docker-config',
    dockerConfig,
    '--no-node-config',
  ]);
  kimg('Pulling a private image without credentials: why it fails', ['pull', `${H}/team/app:1.0`, ...reg_], {
    expectFail: true,
  });
  kimg('The same pull with the docker config (credentials tried in kubelet order)', [
    'pull',
    `${H}/team/app:1.0`,
    `${H}/demo/hello:1`,
    `${H}/demo/hello-docker:1`,
    '--docker-config',
    dockerConfig,
    ...reg_,
  ]);
  kimg('A multi-platform image: the host platform, then linux/arm64', [
    'pull',
    `${H}/demo/multi:1`,
    '--docker-config',
    dockerConfig,
    ...reg_,
  ]);
  kimg('The manifest an index selects for linux/arm64', [
    'manifest',
    `${H}/demo/multi:1`,
    '--platform',
    'linux/arm64',
    '--docker-config',
    dockerConfig,
    '--plain-http',
    H,
  ]);
  kimg('A typo in the image name', ['pull', `${H}/demo/helo:1`, '--docker-config', dockerConfig, ...reg_], {
    expectFail: true,
  });
  kimg('Pulling again (imagePullPolicy: Always) downloads no blob: they are all present', [
    'pull',
    `${H}/team/app:1.0`,
    '--docker-config',
    dockerConfig,
    ...reg_,
    '-o',
    'json',
  ]);
  kimg('The images in the store (like crictl images)', ['images', '--root', root]);
  kimg('The store is a valid OCI layout, re-hashed and verified', ['store', 'verify', '--root', root]);
  kimg('Disk usage', ['store', 'df', '--root', root]);
  const skopeo = spawnSync(
    'skopeo',
    ['inspect', '--format', '{{.Digest}}', `oci:${root}/oci:${H}/demo/hello:1`],
    { encoding: 'utf8' },
  );
  console.log(
    `\n${bold("## skopeo reads kimg's store")}\n$ skopeo inspect oci:${root}/oci:${H}/demo/hello:1 → ${skopeo.stdout.trim()} (registry digest ${hello.digest})`,
  );
  if (skopeo.stdout.trim() !== hello.digest) failures++;

  if (keep) {
    console.log(
      `\nThe registry stays up at http://${H} (user ${reg.username}, password in ${dockerConfig}); store at ${root}.`,
    );
    console.log(`Try: node ${KIMG} images --root ${root}    Ctrl-C stops everything.`);
    await new Promise(() => {});
  }
} finally {
  if (!keep) await stop();
}
console.log(
  failures === 0
    ? '\ndemo: every step behaved as expected'
    : `\ndemo: ${failures} step(s) did not behave as expected`,
);
process.exitCode = failures === 0 ? 0 : 1;
