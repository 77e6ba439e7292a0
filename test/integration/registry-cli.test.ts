/**
 * `kimg manifest`, `kimg tags` and `kimg blob get` with the shared registry options, against real
 * registries (plain, basic, tls). The canary password must not appear on stdout or stderr.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import type { CliContext } from '../../src/cli/context.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { startRegistries, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { Sink } from '../helpers/output.js';

const CANARY = 'Cli-Canary-Pw-41c2';
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function kimg(...args: string[]): Promise<{ status: number; stdout: Sink; stderr: Sink }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const ctx: CliContext = { stdout, stderr, env: {}, exitStatus: 0 };
  const status = await runCli(['node', 'kimg', ...args], ctx);
  const all = stdout.text + stderr.text;
  assert.ok(!all.includes(CANARY), `the password leaked into the output of kimg ${args.join(' ')}`);
  return { status, stdout, stderr };
}

describe('registry CLI commands', () => {
  let work = '';
  let regs: Record<'plain' | 'basic' | 'tls', StartedRegistry> | undefined;
  let multi: GeneratedImage;

  before(async () => {
    work = await makeTempDir('registry-cli-');
    regs = await startRegistries(['plain', 'basic', 'tls'], { password: CANARY });
    multi = await generateImage(join(work, 'multi'), {
      name: 'multi',
      layers: [{ size: 10_000 }],
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
      ],
    });
    // Two concurrent pushes of the same blobs into one repository race inside docker-registry 2.8
    // ("digest invalid / blob unknown" on the manifest PUT, seen in CI): push those one after another.
    const plain = regs.plain;
    await Promise.all([
      skopeoPush(multi, plain, 'multi:1').then(() => skopeoPush(multi, plain, 'multi:2')),
      skopeoPush(multi, regs.basic, 'multi:1'),
      skopeoPush(multi, regs.tls, 'multi:1'),
    ]);
  });
  after(async () => {
    await stopRegistries(Object.values(regs ?? {}));
    if (work) await removeTempDir(work);
  });

  test('manifest: index, --platform selection, -o json and raw', async () => {
    const plain = regs!.plain;
    const idx = await kimg('manifest', '--plain-http', plain.host, `${plain.host}/multi:1`, '-o', 'json');
    assert.equal(idx.status, 0, idx.stderr.text);
    const j = JSON.parse(idx.stdout.text) as {
      digest: string;
      mediaType: string;
      manifest: { manifests: unknown[] };
    };
    assert.equal(j.digest, multi.digest);
    assert.equal(j.manifest.manifests.length, 2);

    const arm = await kimg(
      'manifest',
      '--plain-http',
      '127.0.0.1',
      `${plain.host}/multi:1`,
      '--platform',
      'linux/arm64/v8',
      '-o',
      'json',
    );
    assert.equal(arm.status, 0, arm.stderr.text);
    const a = JSON.parse(arm.stdout.text) as { digest: string; platform: string; index: { digest: string } };
    assert.equal(a.digest, multi.manifests[1]!.digest);
    assert.equal(a.index.digest, multi.digest);
    assert.equal(a.platform, 'linux/arm64/v8');

    const raw = await kimg(
      'manifest',
      '--plain-http',
      plain.host,
      `${plain.host}/multi@${multi.manifests[0]!.digest}`,
      '-o',
      'raw',
    );
    assert.equal(sha256(raw.stdout.buffer), multi.manifests[0]!.digest);

    const table = await kimg(
      'manifest',
      '--plain-http',
      plain.host,
      `${plain.host}/multi:1`,
      '--platform',
      'linux/amd64',
    );
    assert.match(
      table.stdout.text,
      new RegExp(
        `^Name: +${plain.host.replace(/\./g, '\\.')}/multi:1\\nMediaType: +application/vnd\\.oci\\.image\\.manifest\\.v1\\+json\\nDigest: +${multi.manifests[0]!.digest}`,
      ),
    );
  });

  test('tags lists every tag', async () => {
    const r = await kimg('tags', '--plain-http', regs!.plain.host, `${regs!.plain.host}/multi`);
    assert.equal(r.status, 0, r.stderr.text);
    assert.deepEqual(r.stdout.text.split('\n').sort(), ['', '1', '2']);
    const bad = await kimg('tags', '--plain-http', regs!.plain.host, `${regs!.plain.host}/multi:1`);
    assert.equal(bad.status, 2);
  });

  test('blob get streams the verified blob to stdout', async () => {
    const layer = multi.manifests[0]!.layers[0]!;
    const r = await kimg(
      'blob',
      'get',
      '--plain-http',
      regs!.plain.host,
      `${regs!.plain.host}/multi@${layer.digest}`,
    );
    assert.equal(r.status, 0, r.stderr.text);
    assert.equal(sha256(r.stdout.buffer), layer.digest);
    const wrongSize = await kimg(
      'blob',
      'get',
      '--plain-http',
      regs!.plain.host,
      '--size',
      String(layer.size + 1),
      `${regs!.plain.host}/multi@${layer.digest}`,
    );
    assert.equal(wrongSize.status, 6);
    assert.match(wrongSize.stderr.text, /SIZE_MISMATCH/);
    const noDigest = await kimg('blob', 'get', `${regs!.plain.host}/multi:1`);
    assert.equal(noDigest.status, 2);
  });

  test('--creds and --docker-config on a Basic registry; wrong and missing credentials', async () => {
    const basic = regs!.basic;
    const ok = await kimg(
      'manifest',
      '--plain-http',
      basic.host,
      '--creds',
      `kimg:${CANARY}`,
      `${basic.host}/multi:1`,
      '-o',
      'json',
    );
    assert.equal(ok.status, 0, ok.stderr.text);
    const missing = await kimg('manifest', '--plain-http', basic.host, `${basic.host}/multi:1`);
    assert.equal(missing.status, 4);
    assert.match(missing.stderr.text, /requires authentication .*\(UNAUTHORIZED\)/);
    const wrong = await kimg(
      'manifest',
      '--plain-http',
      basic.host,
      '--creds',
      `kimg:${CANARY}x`,
      `${basic.host}/multi:1`,
    );
    assert.equal(wrong.status, 4);
    assert.match(
      wrong.stderr.text,
      new RegExp(`check the pull secret .*for host ${basic.host.replace(/\./g, '\\.')}`),
    );

    const cfg = join(work, 'config.json');
    await writeFile(
      cfg,
      JSON.stringify({
        auths: {
          [`${basic.host}/other`]: { auth: Buffer.from(`kimg:wrong-${CANARY}`).toString('base64') },
          [`http://${basic.host}`]: { auth: Buffer.from(`kimg:${CANARY}`).toString('base64') },
        },
      }),
    );
    const viaConfig = await kimg(
      'manifest',
      '--plain-http',
      basic.host,
      '--docker-config',
      cfg,
      `${basic.host}/multi:1`,
      '-o',
      'json',
    );
    assert.equal(viaConfig.status, 0, viaConfig.stderr.text);
    const both = await kimg('manifest', '--creds', 'a:b', '--docker-config', cfg, `${basic.host}/multi:1`);
    assert.equal(both.status, 2);
  });

  test('TLS: --ca-file and --hosts-dir work; without them a TLS error with a hint', async () => {
    const tls = regs!.tls;
    const withCa = await kimg('manifest', '--ca-file', tls.caFile!, `${tls.host}/multi:1`, '-o', 'json');
    assert.equal(withCa.status, 0, withCa.stderr.text);
    const dir = join(work, 'certs.d', tls.host.replace(/:(\d+)$/, '_$1_'));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'hosts.toml'), `server = "https://${tls.host}"\nca = "${tls.caFile!}"\n`);
    const withHosts = await kimg(
      'manifest',
      '--hosts-dir',
      join(work, 'certs.d'),
      `${tls.host}/multi:1`,
      '-o',
      'json',
    );
    assert.equal(withHosts.status, 0, withHosts.stderr.text);
    // A loopback registry is plain HTTP unless configured otherwise (containerd's default): HTTPS
    // without the CA comes from a hosts.toml that names https and no CA.
    const noCa = join(work, 'certs-no-ca.d', tls.host.replace(/:(\d+)$/, '_$1_'));
    await mkdir(noCa, { recursive: true });
    await writeFile(join(noCa, 'hosts.toml'), `server = "https://${tls.host}"\n`);
    const without = await kimg('manifest', '--hosts-dir', join(work, 'certs-no-ca.d'), `${tls.host}/multi:1`);
    assert.equal(without.status, 5);
    assert.match(without.stderr.text, /TLS handshake with .* failed .*--ca-file.*\(TLS_ERROR\)/);
  });

  test('not found → exit 3 with the registry saying so', async () => {
    const r = await kimg('manifest', '--plain-http', regs!.plain.host, `${regs!.plain.host}/multi:9`);
    assert.equal(r.status, 3);
    assert.match(r.stderr.text, /says the tag "9" in repository "multi" does not exist/);
  });
});
