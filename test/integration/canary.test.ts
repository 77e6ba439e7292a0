/**
 * One canary password through every credential source kimg takes — the `--creds` flag,
 * a docker config.json, a docker-registry Secret (via `kimg ensure`), an exec credential plugin
 * response, the CRI AuthConfig of a PullImage (`kimg serve` + `kimg cri pull --creds`), and the
 * bearer tokens a token server returns — in real end-to-end runs against the Basic, token and redirect
 * registries, with `KIMG_DEBUG=1` (every request logged). Then every byte kimg wrote is searched:
 * stdout and stderr of every command, the `kimg serve` log, every file under the store roots and the
 * kubelet root dir (pull records live under `<root>/pull-records`, back-off under `<root>/manager`). The canary (plain, base64 of `user:password`, base64 of
 * the password), and any bearer token the token server issued (JWT), appear nowhere. Files kimg
 * created there (records, back-off, pull records, store metadata; the OCI layout's blobs are content
 * and exempt) are 0600 and directories 0700, and the redirect registry's blob host (127.0.0.2)
 * never received an Authorization header. The node agent (`kimg node`) runs two static pods (a Secret
 * from `--secrets-dir` that works, one that does not): its logs, events, metrics scrape, status page
 * HTML and JSON API are searched as well.
 * Summary: `$KIMG_RELIABILITY_DIR/canary.json`.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateImage } from '../helpers/images.js';
import {
  killProcess,
  runCommand,
  spawnTracked,
  waitFor,
  type CommandResult,
  type TrackedProcess,
} from '../helpers/proc.js';
import { startRegistry, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const CANARY = 'CanaryPw-J-4b7f19e2';
const USER = 'kimg';

let dir = '';
let regs: Record<'basic' | 'token' | 'redirect', StartedRegistry>;
let serve: TrackedProcess | undefined;
/** Every output to search: [label, text]. */
const outputs: [string, string][] = [];
const sources = new Set<string>();
const summary = {
  sources: [] as string[],
  commands: 0,
  filesSearched: 0,
  bytesSearched: 0,
  leaks: 0,
  modeViolations: 0,
  blobHostAuthorization: 0,
  recordFiles: [] as string[],
};

before(async () => {
  dir = await makeTempDir('canary-');
  const [basic, token, redirect] = await Promise.all([
    startRegistry({ mode: 'basic', password: CANARY }),
    startRegistry({ mode: 'token', password: CANARY, anonymousPull: false }),
    startRegistry({ mode: 'redirect', password: CANARY }),
  ]);
  regs = { basic, token, redirect };
  const img = await generateImage(join(dir, 'img'), {
    name: 'canary',
    layers: [{ size: 30_000 }, { size: 5000 }],
  });
  await Promise.all(
    Object.values(regs).flatMap((r) => ['a:1', 'b:1', 'c:1', 'd:1', 'e:1'].map((t) => skopeoPush(img, r, t))),
  );
});
after(async () => {
  const out = process.env.KIMG_RELIABILITY_DIR;
  if (out)
    writeFileSync(join(out, 'canary.json'), JSON.stringify({ ...summary, sources: [...sources] }, null, 2));
  if (serve) await killProcess(serve);
  if (regs) await stopRegistries(Object.values(regs));
  if (dir) await removeTempDir(dir);
});

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  HOME: dir,
  XDG_DATA_HOME: dir,
  KIMG_DEBUG: '1',
  DOCKER_CONFIG: join(dir, 'no-docker'),
});

async function kimg(label: string, args: string[]): Promise<CommandResult> {
  const r = await runCommand(process.execPath, [CLI, ...args], {
    env: env(),
    allowFailure: true,
    timeoutMs: 60_000,
  });
  outputs.push([`${label} stdout`, r.stdout], [`${label} stderr`, r.stderr]);
  summary.commands++;
  return r;
}

function plainFlags(): string[] {
  return Object.values(regs).flatMap((r) => ['--plain-http', r.host]);
}

async function walk(d: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(d, { withFileTypes: true });
  } catch {
    return { files: [], dirs: [] }; // not created (a command that failed before opening its store)
  }
  const dirs: string[] = [d];
  for (const e of entries) {
    const p = join(d, e.name);
    if (e.isDirectory()) {
      const sub = await walk(p);
      files.push(...sub.files);
      dirs.push(...sub.dirs);
    } else if (e.isFile()) files.push(p);
  }
  return { files, dirs };
}

test('a canary credential from every source never appears in anything kimg writes; 0600/0700; no Authorization across hosts', async () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const roots: string[] = [];
  const root = (name: string) => {
    const p = join(dir, 'roots', name);
    roots.push(p);
    return p;
  };
  const kubeletDir = join(dir, 'kubelet');

  // 1. --creds on kimg pull, against each registry kind
  for (const [kind, r] of Object.entries(regs)) {
    const p = await kimg(`pull --creds ${kind}`, [
      'pull',
      `${r.host}/a:1`,
      '--creds',
      `${USER}:${CANARY}`,
      ...plainFlags(),
      '--root',
      root(`creds-${kind}`),
      '--progress',
      'json',
      '-o',
      'json',
    ]);
    assert.equal(p.code, 0, `${kind}: ${p.stderr}`);
    sources.add('CLI --creds');
    if (kind === 'token') sources.add('token server response (bearer tokens)');
  }
  // a wrong password with the canary as prefix: the failure message must not echo it either
  const bad = await kimg('pull --creds wrong', [
    'pull',
    `${regs.basic.host}/a:1`,
    '--creds',
    `${USER}:${CANARY}-wrong`,
    ...plainFlags(),
    '--root',
    root('creds-wrong'),
  ]);
  assert.notEqual(bad.code, 0);

  // 2. docker config.json
  const cfg = join(dir, 'config.json');
  await writeFile(
    cfg,
    JSON.stringify({
      auths: Object.fromEntries(Object.values(regs).map((r) => [r.host, { auth: b64(`${USER}:${CANARY}`) }])),
    }),
    { mode: 0o600 },
  );
  for (const [kind, r] of Object.entries(regs)) {
    const p = await kimg(`pull --docker-config ${kind}`, [
      'pull',
      `${r.host}/b:1`,
      '--docker-config',
      cfg,
      ...plainFlags(),
      '--root',
      root(`cfg-${kind}`),
      '-o',
      'yaml',
    ]);
    assert.equal(p.code, 0, `${kind}: ${p.stderr}`);
    sources.add('docker config.json');
  }
  const match = await kimg('creds match', [
    'creds',
    'match',
    `${regs.basic.host}/b:1`,
    '--docker-config',
    cfg,
    '--no-node-config',
    '-o',
    'json',
  ]);
  assert.equal(match.code, 0, match.stderr);

  // 3. a docker-registry Secret, through kimg ensure (writes pull records under the kubelet root dir)
  const secretOut = await runCommand(
    process.execPath,
    [
      CLI,
      'create',
      'secret',
      'docker-registry',
      'regcred',
      `--docker-server=${regs.token.host}`,
      `--docker-username=${USER}`,
      `--docker-password=${CANARY}`,
    ],
    { env: env(), secrets: [CANARY] },
  );
  // (its stdout is the Secret itself, by design: it is input to the next step, not searched)
  assert.ok(!secretOut.stderr.includes(CANARY));
  const secretFile = join(dir, 'secret.yaml');
  await writeFile(secretFile, secretOut.stdout, { mode: 0o600 });
  const pod = (name: string, images: string[], secrets: string[]) =>
    [
      'apiVersion: v1',
      'kind: Pod',
      `metadata: {name: ${name}, namespace: default, uid: uid-${name}}`,
      'spec:',
      ...(secrets.length ? ['  imagePullSecrets:', ...secrets.map((s) => `    - name: ${s}`)] : []),
      '  containers:',
      ...images.map((image, i) => `    - {name: c${i}, image: "${image}", imagePullPolicy: Always}`),
      '',
    ].join('\n');
  const podFile = join(dir, 'pod-secret.yaml');
  await writeFile(podFile, pod('withsecret', [`${regs.token.host}/c:1`], ['regcred']));
  const ensureArgs = (files: string[], storeRoot: string, extra: string[] = []) => [
    'ensure',
    ...files.flatMap((f) => ['-f', f]),
    '--root',
    storeRoot,
    ...plainFlags(),
    '--no-node-config',
    '--kubelet-root-dir',
    kubeletDir,
    ...extra,
  ];
  const ens = await kimg('ensure Secret', ensureArgs([podFile, secretFile], root('ensure')));
  assert.equal(ens.code, 0, ens.stdout + ens.stderr);
  sources.add('Secret (kimg ensure)');
  // again: the image is present, so the credential is verified against the pull records (hashes)
  const ens2 = await kimg('ensure Secret again', ensureArgs([podFile, secretFile], root('ensure')));
  assert.equal(ens2.code, 0, ens2.stdout + ens2.stderr);
  // a pod with a wrong Secret: failure, back-off written — none of it may hold the password
  const badSecret = (
    await runCommand(
      process.execPath,
      [
        CLI,
        'create',
        'secret',
        'docker-registry',
        'badcred',
        `--docker-server=${regs.basic.host}`,
        `--docker-username=${USER}`,
        `--docker-password=${CANARY}x`,
      ],
      { env: env() },
    )
  ).stdout;
  const badSecretFile = join(dir, 'badsecret.yaml');
  await writeFile(badSecretFile, badSecret, { mode: 0o600 });
  const badPod = join(dir, 'pod-bad.yaml');
  await writeFile(badPod, pod('bad', [`${regs.basic.host}/c:1`], ['badcred']));
  const ensBad = await kimg('ensure bad Secret', ensureArgs([badPod, badSecretFile], root('ensure')));
  assert.notEqual(ensBad.code, 0);

  // 4. an exec credential plugin's response
  const binDir = join(dir, 'plugins');
  await mkdir(binDir, { recursive: true });
  const response = JSON.stringify({
    kind: 'CredentialProviderResponse',
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    cacheKeyType: 'Registry',
    cacheDuration: '1h',
    auth: Object.fromEntries(Object.values(regs).map((r) => [r.host, { username: USER, password: CANARY }])),
  });
  await writeFile(join(binDir, 'canary-plugin'), `#!/bin/sh\ncat >/dev/null\nprintf '%s' '${response}'\n`);
  await chmod(join(binDir, 'canary-plugin'), 0o755);
  const providerConfig = join(dir, 'providers.yaml');
  await writeFile(
    providerConfig,
    [
      'apiVersion: kubelet.config.k8s.io/v1',
      'kind: CredentialProviderConfig',
      'providers:',
      '  - name: canary-plugin',
      `    matchImages: [${Object.values(regs)
        .map((r) => `"${r.host}"`)
        .join(', ')}]`,
      '    defaultCacheDuration: "10m"',
      '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
      '',
    ].join('\n'),
  );
  const kubeletConfig = join(dir, 'kubelet.yaml');
  await writeFile(
    kubeletConfig,
    [
      'apiVersion: kubelet.config.k8s.io/v1beta1',
      'kind: KubeletConfiguration',
      'kimg:',
      `  imageCredentialProviderConfig: ${providerConfig}`,
      `  imageCredentialProviderBinDir: ${binDir}`,
      '',
    ].join('\n'),
  );
  const pluginPod = join(dir, 'pod-plugin.yaml');
  await writeFile(
    pluginPod,
    pod(
      'plugin',
      Object.values(regs).map((r) => `${r.host}/d:1`),
      [],
    ),
  );
  const ensPlugin = await kimg(
    'ensure plugin',
    ensureArgs([pluginPod], root('plugin'), ['--config', kubeletConfig]),
  );
  assert.equal(ensPlugin.code, 0, ensPlugin.stdout + ensPlugin.stderr);
  assert.equal((ensPlugin.stdout.match(/Successfully pulled image/g) ?? []).length, 3, ensPlugin.stdout);
  sources.add('exec plugin response');

  // 5. CRI AuthConfig: kimg serve + kimg cri pull --creds (and --auth)
  const sock = join(dir, 'run', 'kimg.sock');
  const serveErr = join(dir, 'serve.err');
  const serveOut = join(dir, 'serve.out');
  serve = spawnTracked(
    'kimg-serve',
    process.execPath,
    [CLI, 'serve', '--listen', `unix://${sock}`, '--root', root('serve'), ...plainFlags()],
    {
      stdoutFile: serveOut,
      stderrFile: serveErr,
      env: env(),
    },
  );
  await waitFor(
    'kimg serve socket',
    async () => ((await stat(sock).catch(() => undefined))?.isSocket() ? true : undefined),
    {
      watch: serve,
      timeoutMs: 20_000,
    },
  );
  for (const [kind, r] of Object.entries(regs)) {
    const c = await kimg(`cri pull --creds ${kind}`, [
      'cri',
      '--endpoint',
      `unix://${sock}`,
      'pull',
      `${r.host}/e:1`,
      '--creds',
      `${USER}:${CANARY}`,
    ]);
    assert.equal(c.code, 0, `${kind}: ${c.stderr}`);
    const a = await kimg(`cri pull --auth ${kind}`, [
      'cri',
      '--endpoint',
      `unix://${sock}`,
      'pull',
      `${r.host}/a:1`,
      '--auth',
      b64(`${USER}:${CANARY}`),
    ]);
    assert.equal(a.code, 0, `${kind}: ${a.stderr}`);
  }
  const criBad = await kimg('cri pull wrong', [
    'cri',
    '--endpoint',
    `unix://${sock}`,
    'pull',
    `${regs.basic.host}/b:1`,
    '--creds',
    `${USER}:${CANARY}-x`,
  ]);
  assert.notEqual(criBad.code, 0);
  sources.add('CRI AuthConfig (kimg serve)');
  const images = await kimg('cri images', ['cri', '--endpoint', `unix://${sock}`, 'images', '-o', 'json']);
  assert.equal(images.code, 0, images.stderr);
  process.kill(serve.pid, 'SIGTERM');
  const keepAlive = setInterval(() => undefined, 1000); // the tracked child does not hold the loop
  await serve.exited;
  clearInterval(keepAlive);
  serve = undefined;
  outputs.push(
    ['kimg serve stdout', await readFile(serveOut, 'utf8')],
    ['kimg serve stderr', await readFile(serveErr, 'utf8')],
  );

  // 6. the node agent (kimg node): static pods whose pull Secrets come from --secrets-dir; its logs,
  //    events, metrics scrape, status page HTML and JSON API are searched too
  const manifestsDir = join(dir, 'static-pods');
  const secretsDir = join(dir, 'node-secrets');
  await mkdir(manifestsDir, { recursive: true });
  await mkdir(secretsDir, { recursive: true });
  await writeFile(join(secretsDir, 'regcred.yaml'), secretOut.stdout, { mode: 0o600 });
  await writeFile(join(secretsDir, 'badcred.yaml'), badSecret, { mode: 0o600 });
  await writeFile(join(manifestsDir, 'good.yaml'), pod('good', [`${regs.token.host}/b:1`], ['regcred']));
  await writeFile(join(manifestsDir, 'bad.yaml'), pod('bad', [`${regs.basic.host}/e:1`], ['badcred']));
  const nodeConfig = join(dir, 'node-kubelet.yaml');
  await writeFile(
    nodeConfig,
    [
      'apiVersion: kubelet.config.k8s.io/v1beta1',
      'kind: KubeletConfiguration',
      `staticPodPath: ${manifestsDir}`,
      '',
    ].join('\n'),
  );
  const nodeErr = join(dir, 'node.err');
  const nodeOut = join(dir, 'node.out');
  const agent = spawnTracked(
    'kimg-node',
    process.execPath,
    [
      CLI,
      'node',
      '--config',
      nodeConfig,
      '--secrets-dir',
      secretsDir,
      '--metrics-addr',
      '127.0.0.1:0',
      '--root',
      root('node'),
      '--node-name',
      'n1',
      '--resync',
      '1',
      ...plainFlags(),
    ],
    { stdoutFile: nodeOut, stderrFile: nodeErr, env: env() },
  );
  try {
    const url = await waitFor(
      'kimg node status page URL',
      async () =>
        /status page (http:\/\/[^\s/]+)\//.exec(await readFile(nodeErr, 'utf8').catch(() => ''))?.[1],
      { watch: agent, timeoutMs: 20_000 },
    );
    type Pods = { pods: { name: string; containers: { state: string; reason: string }[] }[] };
    await waitFor(
      'static pods settled (good ready, bad failing)',
      async () => {
        const v = (await (await fetch(`${url}/api/pods`)).json()) as Pods;
        const good = v.pods.find((p) => p.name.startsWith('good'));
        const bad = v.pods.find((p) => p.name.startsWith('bad'));
        return good?.containers.every((c) => c.state === 'Ready') &&
          bad?.containers.some((c) => /ErrImagePull|ImagePullBackOff/.test(c.reason))
          ? true
          : undefined;
      },
      {
        watch: agent,
        timeoutMs: 30_000,
        intervalMs: 100,
        describe: async () =>
          `${await (await fetch(`${url}/api/pods`)).text()}\n${(await readFile(nodeErr, 'utf8')).slice(-3000)}`,
      },
    );
    for (const path of [
      '/metrics',
      '/',
      '/index.html',
      '/api/pods',
      '/api/events',
      '/api/store',
      '/healthz',
    ]) {
      const res = await fetch(`${url}${path}`);
      outputs.push([`kimg node GET ${path}`, await res.text()]);
    }
    const pods = (await (await fetch(`${url}/api/pods`)).json()) as {
      pods: { namespace: string; name: string }[];
    };
    for (const p of pods.pods) {
      outputs.push([
        `kimg node GET /api/pods/${p.name}`,
        await (await fetch(`${url}/api/pods/${p.namespace}/${p.name}`)).text(),
      ]);
    }
    sources.add('node agent (Secrets from --secrets-dir)');
  } finally {
    await killProcess(agent);
  }
  outputs.push(
    ['kimg node stdout', await readFile(nodeOut, 'utf8')],
    ['kimg node stderr', await readFile(nodeErr, 'utf8')],
  );

  // store tools over the roots: their output too
  for (const r of roots.slice(0, 3)) {
    await kimg('images', ['images', '--root', r, '-o', 'json']);
    await kimg('store verify', ['store', 'verify', '--root', r]);
  }

  // 6. search everything kimg wrote
  const needles = [
    CANARY,
    b64(`${USER}:${CANARY}`),
    b64(CANARY),
    b64(`${USER}:${CANARY}-wrong`).slice(0, 16),
  ];
  const jwt = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./;
  const leaks: string[] = [];
  const search = (label: string, text: string) => {
    summary.bytesSearched += Buffer.byteLength(text);
    for (const n of needles)
      if (text.includes(n))
        leaks.push(`${label}: contains ${n === CANARY ? 'the canary' : 'an encoding of the canary'}`);
    if (jwt.test(text)) leaks.push(`${label}: contains a bearer token (JWT)`);
  };
  // positive control: the search does find the canary and a JWT
  search('control', `x${b64(`${USER}:${CANARY}`)}x eyJhbGciOiJSUzI1.eyJpc3MiOiJ0b2tl.sig`);
  assert.ok(
    leaks.some((l) => l.includes('encoding')) && leaks.some((l) => l.includes('JWT')),
    'the search finds what it looks for',
  );
  leaks.length = 0;
  summary.bytesSearched = 0;
  for (const [label, text] of outputs) search(label, text);
  const modeProblems: string[] = [];
  // The OCI layout (`<root>/oci`: blobs 0444, index.json 0644, dirs 0755) is content meant to be read
  // by a runtime; it holds no credential or record (searched for the canary all the same).
  const isLayout = (p: string) => /\/roots\/[^/]+\/oci(\/|$)/.test(p);
  for (const top of [...new Set(roots), kubeletDir]) {
    const { files, dirs } = await walk(top);
    for (const f of files) {
      const buf = await readFile(f);
      summary.filesSearched++;
      search(f, buf.toString('latin1'));
      if (isLayout(f)) continue;
      const m = (await stat(f)).mode & 0o777;
      if (m !== 0o600) modeProblems.push(`${f}: ${m.toString(8)}`);
    }
    for (const d of dirs) {
      if (isLayout(d)) continue;
      const m = (await stat(d)).mode & 0o777;
      if (m !== 0o700) modeProblems.push(`${d}/: ${m.toString(8)}`);
    }
  }
  const managerFiles = (await walk(join(dir, 'roots', 'ensure'))).files.filter((f) =>
    /\/(manager|pull-records)\//.test(f),
  );
  assert.ok(
    managerFiles.some((f) => f.includes('/pull-records/')) &&
      managerFiles.some((f) => f.includes('/manager/')),
    `kimg ensure wrote pull records (<root>/pull-records) and back-off (<root>/manager): ${managerFiles.join(' ')}`,
  );
  summary.recordFiles = managerFiles.map((f) => f.slice(join(dir, 'roots', 'ensure').length + 1));
  summary.leaks = leaks.length;
  summary.modeViolations = modeProblems.length;
  const blobHostAuth = regs.redirect.blobHost!.requests().filter((r) => r.authorization);
  summary.blobHostAuthorization = blobHostAuth.length;
  console.error(
    `[canary] ${sources.size} sources, ${summary.commands} commands, ${summary.filesSearched} files, ${summary.bytesSearched} bytes searched; blob host requests ${regs.redirect.blobHost!.requests().length}`,
  );
  assert.deepEqual(leaks, [], 'the canary leaked');
  assert.deepEqual(modeProblems, [], 'files kimg created are 0600, directories 0700');
  assert.ok(regs.redirect.blobHost!.requests().length > 0, 'the redirect registry redirected blob fetches');
  assert.equal(blobHostAuth.length, 0, 'Authorization crossed to the blob host');
  assert.ok(sources.size >= 6, [...sources].join(', '));
});
