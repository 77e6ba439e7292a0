/**
 * Image volumes in the node agent: a static pod's `volumes[].image` is pulled from a real registry
 * with the containers' rules and materialised read-only under the agent's root — an image as its
 * applied layers, an OCI artifact as its titled blobs — shown in `kimg describe pod` and
 * `kimg get pods -o json` with its digest; a missing volume image puts the pod in
 * `ErrImagePull`/`ImagePullBackOff`; removing the pod removes its volumes; a volume on a registry that
 * needs a login is pulled with the pod's pull Secret (and without one it backs off; the password is
 * never shown). Needs docker-registry and skopeo (fails, never skips).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import type { CliContext } from '../../src/cli/context.js';
import { parseNodeConfig } from '../../src/config/index.js';
import { buildDockerRegistrySecret } from '../../src/credentials/index.js';
import { toYaml } from '../../src/cli/output.js';
import { startNodeAgent, podStatus, type NodeAgent, type PodView } from '../../src/node/index.js';
import { Sink } from '../helpers/output.js';
import { waitFor } from '../helpers/proc.js';
import { startRegistry, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeo, skopeoRegistryFlags } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { buildImage, type BuiltImage } from '../helpers/unpack-images.js';

async function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const ctx: CliContext = { stdout, stderr, env: { ...process.env }, exitStatus: 0 };
  const status = await runCli(['node', 'kimg', ...args], ctx);
  return { status, stdout: stdout.text, stderr: stderr.text };
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes a blob to a plain-HTTP docker-registry (monolithic upload). */
async function pushBlob(reg: StartedRegistry, repo: string, data: Buffer): Promise<string> {
  const digest = sha(data);
  const start = await fetch(`http://${reg.host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202);
  const loc = new URL(start.headers.get('location') ?? '', `http://${reg.host}`);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, {
    method: 'PUT',
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
  });
  assert.equal(put.status, 201, await put.text());
  return digest;
}

/** Pushes an OCI artifact (empty config, custom layer media types) as ORAS would; returns its digest. */
async function pushArtifact(
  reg: StartedRegistry,
  repo: string,
  tag: string,
  files: { title?: string; data: string }[],
): Promise<string> {
  const config = Buffer.from('{}');
  const layers = [];
  for (const f of files) {
    const data = Buffer.from(f.data);
    layers.push({
      mediaType: 'application/vnd.example.data',
      digest: await pushBlob(reg, repo, data),
      size: data.length,
      ...(f.title !== undefined ? { annotations: { 'org.opencontainers.image.title': f.title } } : {}),
    });
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.bundle',
      config: {
        mediaType: 'application/vnd.oci.empty.v1+json',
        digest: await pushBlob(reg, repo, config),
        size: config.length,
      },
      layers,
    }),
  );
  const put = await fetch(`http://${reg.host}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: manifest,
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  assert.equal(put.status, 201, await put.text());
  return sha(manifest);
}

function podYaml(
  name: string,
  image: string,
  volumes: { name: string; reference: string }[],
  secret?: string,
): string {
  const lines = ['apiVersion: v1', 'kind: Pod', 'metadata:', `  name: ${name}`, 'spec:'];
  if (secret !== undefined) lines.push('  imagePullSecrets:', `  - name: ${secret}`);
  lines.push('  containers:', '  - name: main', `    image: ${image}`, '    volumeMounts:');
  for (const v of volumes) lines.push(`    - name: ${v.name}`, `      mountPath: /mnt/${v.name}`);
  lines.push('  volumes:');
  for (const v of volumes) lines.push(`  - name: ${v.name}`, '    image:', `      reference: ${v.reference}`);
  return lines.join('\n') + '\n';
}

describe('kimg node: image volumes', () => {
  let reg: StartedRegistry | undefined;
  let basic: StartedRegistry | undefined;
  let work: string;
  let manifests: string;
  let agent: NodeAgent | undefined;
  let image: BuiltImage;
  let artifactDigest: string;

  before(async () => {
    reg = await startRegistry({ mode: 'plain' });
    basic = await startRegistry({ mode: 'basic', password: 'vol-canary-pw-51c2' });
    work = await makeTempDir('node-volumes-');
    manifests = join(work, 'manifests');
    await mkdir(manifests);
    const layout = join(work, 'layout');
    image = buildImage(layout, {
      tag: 'data',
      layers: [
        {
          entries: [
            { type: 'dir', name: 'models/' },
            { type: 'file', name: 'models/a.bin', data: 'A' },
          ],
        },
        { entries: [{ type: 'file', name: 'models/b.bin', data: 'B' }] },
      ],
    });
    const flags = skopeoRegistryFlags(reg, 'dest-');
    await skopeo(['copy', ...flags.args, `oci:${layout}:data`, `docker://${reg.host}/data:1`]);
    const basicFlags = skopeoRegistryFlags(basic, 'dest-');
    await skopeo(['copy', ...basicFlags.args, `oci:${layout}:data`, `docker://${basic.host}/private:1`], {
      secrets: basicFlags.secrets,
    });
    await mkdir(join(work, 'secrets'));
    const secret = await buildDockerRegistrySecret({
      name: 'regcred',
      server: basic.host,
      username: basic.username ?? '',
      password: basic.password ?? '',
    });
    await writeFile(join(work, 'secrets', 'regcred.yaml'), toYaml(secret));
    artifactDigest = await pushArtifact(reg, 'bundle', 'v1', [
      { title: 'config.yaml', data: 'key: value\n' },
      { title: 'sub/data.bin', data: 'data' },
      { data: 'untitled' },
    ]);
    const config = parseNodeConfig(
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        `staticPodPath: ${manifests}`,
        'kimg:',
        `  rootDir: ${join(work, 'root')}`,
      ].join('\n'),
    );
    agent = await startNodeAgent({
      config,
      metricsAddr: '127.0.0.1:0',
      registry: { plainHttp: [reg.host, basic.host] },
      secretsDir: join(work, 'secrets'),
      nodeName: 'node1',
      resyncMs: 300,
      rescanMs: 300,
      nodeDockerConfig: false,
      log: () => undefined,
    });
  });

  after(async () => {
    await agent?.close();
    await stopRegistries([reg, basic].filter((r) => r !== undefined));
    if (work !== undefined) await removeTempDir(work);
  });

  const pod = (name: string): PodView | undefined => agent?.state.get(`default/${name}-node1`);
  const waitStatus = (name: string, want: string): Promise<true> =>
    waitFor(
      `pod ${name} ${want}`,
      () => {
        const p = pod(name);
        return p !== undefined && podStatus(p) === want ? true : undefined;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 20,
        describe: async () => JSON.stringify(agent?.state.list(), null, 1),
      },
    );

  test('an image volume and an artifact volume are pulled and materialised read-only', async () => {
    const host = reg?.host ?? '';
    await writeFile(
      join(manifests, 'vol.yaml'),
      podYaml('vol', `${host}/data:1`, [
        { name: 'models', reference: `${host}/data:1` },
        { name: 'bundle', reference: `${host}/bundle:v1` },
      ]),
    );
    await waitStatus('vol', 'ImagesReady');
    const p = pod('vol');
    const [models, bundle] = p?.volumes ?? [];
    assert.equal(models?.name, 'models');
    assert.equal(models?.pullPolicy, 'IfNotPresent');
    assert.equal(models?.digest, image.manifestDigest);
    assert.equal(models?.kind, 'image');
    assert.equal(bundle?.digest, artifactDigest);
    assert.equal(bundle?.kind, 'artifact');
    assert.deepEqual(bundle?.files, ['config.yaml', 'sub/data.bin']);
    const mdir = models?.path ?? '';
    assert.equal(mdir, join(work, 'root', 'volumes', p?.uid ?? '', 'models'));
    assert.equal(readFileSync(join(mdir, 'models', 'a.bin'), 'utf8'), 'A');
    assert.equal(readFileSync(join(mdir, 'models', 'b.bin'), 'utf8'), 'B');
    assert.equal(statSync(join(mdir, 'models', 'a.bin')).mode & 0o222, 0);
    assert.equal(statSync(join(mdir, 'models')).mode & 0o777, 0o555);
    const bdir = bundle?.path ?? '';
    assert.equal(readFileSync(join(bdir, 'config.yaml'), 'utf8'), 'key: value\n');
    assert.equal(readFileSync(join(bdir, 'sub', 'data.bin'), 'utf8'), 'data');
    assert.equal(statSync(join(bdir, 'config.yaml')).mode & 0o777, 0o444);

    const d = await cli(['describe', 'pod', 'vol', '--server', agent?.url ?? '']);
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /Volumes:\n {2}models:\n {4}Type: +Image \(a container image or OCI artifact\)\n/);
    assert.match(d.stdout, new RegExp(`Reference: +${host}/bundle:v1\\n`));
    assert.match(d.stdout, new RegExp(`Digest: +${image.manifestDigest}\\n`));
    assert.match(d.stdout, new RegExp(`Digest: +${artifactDigest}\\n`));
    const j = await cli(['get', 'pods', '--server', agent?.url ?? '', '-o', 'json']);
    assert.equal(j.status, 0, j.stderr);
    assert.ok(j.stdout.includes(artifactDigest));

    // Removing the pod removes its volumes.
    await rm(join(manifests, 'vol.yaml'));
    await waitFor(
      'volumes removed',
      () => (existsSync(join(work, 'root', 'volumes', p?.uid ?? '')) ? undefined : true),
      {
        timeoutMs: 10_000,
        intervalMs: 20,
      },
    );
  });

  test('a missing volume image shows ErrImagePull, then ImagePullBackOff', async () => {
    const host = reg?.host ?? '';
    await writeFile(
      join(manifests, 'missing.yaml'),
      podYaml('missing', `${host}/data:1`, [
        { name: 'gone', reference: `${host}/absent:1` },
        { name: 'models', reference: `${host}/data:1` },
      ]),
    );
    await waitStatus('missing', 'ImagePullBackOff');
    const [v, models] = pod('missing')?.volumes ?? [];
    assert.equal(v?.state, 'Waiting');
    assert.match(v?.lastError ?? '', /ErrImagePull/);
    assert.equal(pod('missing')?.containers[0]?.state, 'Ready');
    const d = await cli(['describe', 'pod', 'missing', '--server', agent?.url ?? '']);
    assert.match(d.stdout, /Status: +ImagePullBackOff\n/);
    assert.match(d.stdout, /gone:\n {4}Type: +Image/);
    assert.match(d.stdout, /Digest: +<none>\n/);
    const events = agent?.state.events({ name: 'missing-node1' }) ?? [];
    assert.ok(events.some((e) => e.reason === 'Failed' && e.message.includes('absent:1')));

    // The pod is synced again while a volume waits; the ready volume is not materialised again
    // (same digest: its directory stays as it is).
    assert.equal(models?.state, 'Ready');
    const dir = models?.path ?? '';
    const inode = statSync(dir).ino;
    const syncs = pod('missing')?.syncs ?? 0;
    await waitFor('two more syncs', () => ((pod('missing')?.syncs ?? 0) >= syncs + 2 ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    assert.equal(statSync(dir).ino, inode);
    assert.equal(readFileSync(join(dir, 'models', 'b.bin'), 'utf8'), 'B');
  });

  test("a volume on a registry that needs a login is pulled with the pod's pull Secret", async () => {
    const host = reg?.host ?? '';
    const private1 = `${basic?.host ?? ''}/private:1`;
    await writeFile(
      join(manifests, 'authvol.yaml'),
      podYaml('authvol', `${host}/data:1`, [{ name: 'models', reference: private1 }], 'regcred'),
    );
    // The same volume without the Secret: the registry answers 401, the volume backs off.
    await writeFile(
      join(manifests, 'nocreds.yaml'),
      podYaml('nocreds', `${host}/data:1`, [{ name: 'models', reference: private1 }]),
    );
    await waitStatus('authvol', 'ImagesReady');
    const [models] = pod('authvol')?.volumes ?? [];
    assert.equal(models?.digest, image.manifestDigest);
    assert.equal(readFileSync(join(models?.path ?? '', 'models', 'b.bin'), 'utf8'), 'B');
    await waitStatus('nocreds', 'ImagePullBackOff');
    const [denied] = pod('nocreds')?.volumes ?? [];
    assert.equal(denied?.state, 'Waiting');
    assert.match(denied?.lastError ?? '', /ErrImagePull/);
    for (const name of ['authvol', 'nocreds']) {
      const d = await cli(['describe', 'pod', name, '--server', agent?.url ?? '']);
      assert.equal(d.status, 0, d.stderr);
      assert.doesNotMatch(d.stdout, /vol-canary-pw-51c2/);
    }
    const events = agent?.state.events({ name: 'nocreds-node1' }) ?? [];
    assert.ok(events.some((e) => e.reason === 'Failed' && e.message.includes('private:1')));
    assert.ok(!JSON.stringify(agent?.state.list()).includes('vol-canary-pw-51c2'));
  });
});
