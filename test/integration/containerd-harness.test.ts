/**
 * The private-containerd fixture (`test/helpers/containerd.ts`) against the real components: a
 * containerd 1.6 with its CRI plugin under a short temp dir, a plain registry holding a generated image
 * pushed by skopeo, `ctr content fetch` through the fixture (with `--plain-http`, and through the
 * fixture's `hosts.toml` for an alias host only that file maps to the registry), a CRI `RuntimeService/Version` call over the unix socket with
 * @grpc/grpc-js, and cleanup by PID (process gone, no mounts left, dir removed).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mountsUnder, startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { isProcessAlive } from '../helpers/proc.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * The smallest wire-compatible subset of k8s.io/cri-api `runtime/v1/api.proto` for one call:
 * `RuntimeService/Version`. Field numbers and the package name are what make it compatible; the full
 * proto lives under proto/ once the CRI module lands.
 */
const VERSION_PROTO = `syntax = "proto3";
package runtime.v1;
service RuntimeService {
  rpc Version(VersionRequest) returns (VersionResponse) {}
}
message VersionRequest {
  string version = 1;
}
message VersionResponse {
  string version = 1;
  string runtime_name = 2;
  string runtime_version = 3;
  string runtime_api_version = 4;
}
`;

interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}

type VersionClient = grpc.Client & {
  Version(
    req: { version: string },
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: VersionResponse) => void,
  ): void;
};

async function criVersion(address: string, protoDir: string): Promise<VersionResponse> {
  const file = join(protoDir, 'cri-version.proto');
  await writeFile(file, VERSION_PROTO);
  const def = await protoLoader.load(file, { keepCase: true, longs: String, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: new (addr: string, creds: grpc.ChannelCredentials) => VersionClient } };
  };
  const client = new pkg.runtime.v1.RuntimeService(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<VersionResponse>((resolve, reject) => {
      client.Version({ version: 'v1' }, { deadline: Date.now() + 10_000 }, (err, res) => {
        if (err) reject(err);
        else if (res === undefined) reject(new Error('empty Version response'));
        else resolve(res);
      });
    });
  } finally {
    client.close();
  }
}

describe('containerd fixture', () => {
  let ctrd: StartedContainerd;
  let reg: StartedRegistry;
  let img: GeneratedImage;
  let work: string;

  before(async () => {
    work = await makeTempDir('ctrd-test-');
    [ctrd, reg, img] = await Promise.all([
      startContainerd({ namespace: 'kimgtest' }),
      startRegistry({ mode: 'plain' }),
      generateImage(join(work, 'layout'), {
        name: 'ctrd-small',
        layers: [{ size: 4096 }, { size: 8192, kind: 'text' }],
      }),
    ]);
    await skopeoPush(img, reg, 'small:1');
    await ctrd.addPlainHttpRegistry(reg.host);
  });
  after(async () => {
    await Promise.all([ctrd?.stop(), reg?.stop()]);
    if (work !== undefined) await removeTempDir(work);
  });

  test('runs privately under a short temp dir with the CRI plugin', async () => {
    assert.ok(isProcessAlive(ctrd.pid));
    assert.ok(ctrd.socket.startsWith(ctrd.baseDir + '/'));
    assert.ok(Buffer.byteLength(ctrd.socket) <= 107, ctrd.socket);
    assert.equal(ctrd.address, `unix://${ctrd.socket}`);
    assert.ok(existsSync(ctrd.socket));
    const config = await readFile(ctrd.configFile, 'utf8');
    assert.match(config, new RegExp(`root = "${ctrd.root}"`));
    assert.match(config, new RegExp(`config_path = "${ctrd.certsDir}"`));
    const plugins = (await ctrd.ctr(['plugins', 'ls'])).stdout;
    assert.match(plugins, /io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/);
    const hosts = await readFile(join(ctrd.certsDir, reg.host, 'hosts.toml'), 'utf8');
    assert.match(hosts, new RegExp(`server = "http://${reg.host}"`));
    assert.match(hosts, /capabilities = \["pull", "resolve", "push"\]/);
  });

  test('ctr content fetch --plain-http stores every blob of the pushed image', async () => {
    await ctrd.ctr(['content', 'fetch', '--plain-http', `${reg.host}/small:1`]);
    const listed = (await ctrd.ctr(['content', 'ls', '-q'])).stdout.split('\n').filter((l) => l !== '');
    const m = img.manifests[0];
    assert.ok(m);
    for (const d of [img.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
      assert.ok(listed.includes(d), `${d} missing from ctr content ls: ${listed.join(' ')}`);
    }
    const images = (await ctrd.ctr(['images', 'ls', '-q'])).stdout;
    assert.match(images, new RegExp(`${reg.host}/small:1`));
  });

  test("ctr content fetch --hosts-dir resolves through the fixture's hosts.toml", async () => {
    // ctr treats 127.0.0.1 as plain HTTP by itself, so prove the file is read with an alias that only
    // hosts.toml maps to the registry.
    await ctrd.addPlainHttpRegistry('kimg-alias.invalid:5000', reg.host);
    const alias = await readFile(join(ctrd.certsDir, 'kimg-alias.invalid:5000', 'hosts.toml'), 'utf8');
    assert.match(alias, new RegExp(`server = "http://${reg.host}"`));
    const ref = 'kimg-alias.invalid:5000/small:1';
    const without = await ctrd.ctr(['content', 'fetch', ref], { namespace: 'kimgtest2', allowFailure: true });
    assert.notEqual(without.code, 0, 'the alias must not resolve without the hosts dir');
    await ctrd.ctr(['content', 'fetch', '--hosts-dir', ctrd.certsDir, ref], { namespace: 'kimgtest2' });
    const images = (await ctrd.ctr(['images', 'ls', '-q'], { namespace: 'kimgtest2' })).stdout;
    assert.match(images, /kimg-alias\.invalid:5000\/small:1/);
  });

  test('CRI RuntimeService/Version answers over the unix socket', async () => {
    const v = await criVersion(ctrd.address, work);
    assert.equal(v.runtime_name, 'containerd');
    assert.equal(v.runtime_api_version, 'v1');
    assert.equal(v.version, '0.1.0');
    assert.match(v.runtime_version, /^1\.6\./);
  });

  test('stop() kills by PID, leaves no mounts and removes the dir (idempotent)', async () => {
    const other = await startContainerd({ cri: false });
    assert.ok(isProcessAlive(other.pid));
    assert.equal((await other.ctr(['version'])).code, 0);
    await other.stop();
    await other.stop();
    assert.equal(isProcessAlive(other.pid), false);
    assert.deepEqual(mountsUnder(other.baseDir), []);
    assert.equal(existsSync(other.baseDir), false);
    assert.match(await other.log(), /containerd successfully booted/);
  });
});
