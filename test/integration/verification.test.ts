/**
 * Credential verification of present images (KEP-2535) against a real Basic-auth
 * registry, with the image manager over kimg's own store (LocalImageService) and file pull records:
 * - pod A with a valid pull Secret pulls a private image; pod B without Secrets asking for the same
 *   present image with IfNotPresent is refused under NeverVerifyPreloadedImages (a pull is attempted
 *   and the registry answers 401) and allowed under NeverVerify; pod C with A's Secret uses it without
 *   any registry request;
 * - an image loaded from an OCI layout with `kimg load` is used by a Secret-less pod under the default
 *   policy and refused under AlwaysVerify;
 * - an agent killed between the pull intent and the result leaves records the next start reconciles
 *   (the image is then pulled-by-the-node with no credentials: pods must verify).
 * Needs docker-registry and skopeo (fails, never skips).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CliContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/program.js';
import { Secret, credentialHash } from '../../src/credentials/index.js';
import {
  FilePullRecords,
  ImageManager,
  LocalImageService,
  openNodeVerifier,
  type CredentialCandidate,
  type EnsureImageResult,
  type PodInfo,
} from '../../src/manager/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { killProcess, spawnTracked, waitFor } from '../helpers/proc.js';
import { startRegistry, type AccessLogEntry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { Sink } from '../helpers/output.js';

function cliContext(env: NodeJS.ProcessEnv): CliContext & { out: Sink; err: Sink } {
  const out = new Sink();
  const err = new Sink();
  return { stdout: out, stderr: err, env, exitStatus: 0, out, err };
}

const POD_A: PodInfo = { name: 'a', namespace: 'default', uid: 'uid-a' };
const POD_B: PodInfo = { name: 'b', namespace: 'default', uid: 'uid-b' };
const POD_C: PodInfo = { name: 'c', namespace: 'default', uid: 'uid-c' };

describe('credential verification against a real Basic-auth registry', () => {
  let dir: string;
  let reg: StartedRegistry;
  let img: GeneratedImage;
  let loadedImg: GeneratedImage;
  let registry: RegistryClient;
  const stores: Store[] = [];
  let secret: CredentialCandidate;

  before(async () => {
    dir = await makeTempDir('verification-');
    reg = await startRegistry({ mode: 'basic' });
    img = await generateImage(join(dir, 'layout-private'), {
      name: 'private-app',
      layers: [{ size: 30_000 }],
    });
    loadedImg = await generateImage(join(dir, 'layout-loaded'), {
      name: 'loaded-app',
      layers: [{ size: 20_000 }],
    });
    await skopeoPush(img, reg, 'private:v1');
    registry = new RegistryClient({ plainHttp: [reg.host] });
    secret = {
      key: reg.host,
      auth: { username: reg.username as string, password: new Secret(reg.password as string) },
      source: { kind: 'secret', namespace: 'default', name: 'regcred', uid: 'secret-uid-1' },
    };
  });
  after(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await registry?.close();
    await reg?.stop();
    if (dir) await removeTempDir(dir);
  });

  async function node(root: string, policy: string) {
    const store = await openStore({ root });
    stores.push(store);
    const service = new LocalImageService({ store, registry });
    const { verifier, report } = await openNodeVerifier({
      root: store.root,
      config: {
        imagePullCredentialsVerificationPolicy: policy as never,
        preloadedImagesVerificationAllowlist: [],
      },
      imageService: service,
    });
    const manager = new ImageManager({ imageService: service, verifier });
    const ensure = (
      pod: PodInfo,
      image: string,
      credentials: CredentialCandidate[],
    ): Promise<EnsureImageResult> =>
      manager.ensureImageExists({
        pod,
        container: { name: 'app', image, imagePullPolicy: 'IfNotPresent' },
        credentials,
      });
    return { store, service, verifier, report, manager, ensure };
  }

  async function logSince(n: number): Promise<AccessLogEntry[]> {
    return (await reg.accessLog()).slice(n);
  }

  test('A pulls with its Secret; B without Secrets is refused (401) under the default policy and allowed under NeverVerify; C uses it without the registry', async () => {
    const root = join(dir, 'root-abc');
    const image = `${reg.host}/private:v1`;
    const n = await node(root, 'NeverVerifyPreloadedImages');

    const a = await n.ensure(POD_A, image, [secret]);
    assert.equal(a.ok, true, a.message);
    assert.equal(a.action, 'pulled');
    assert.equal(a.imageRef, img.manifests[0]!.config.digest);
    const rec = await new FilePullRecords(root).getImagePulledRecord(a.imageRef);
    assert.deepEqual(rec?.credentialMapping[`${reg.host}/private`], {
      kubernetesSecrets: [
        {
          namespace: 'default',
          name: 'regcred',
          uid: 'secret-uid-1',
          credentialHash: credentialHash(secret.auth),
        },
      ],
    });
    assert.equal(await new FilePullRecords(root).imagePullIntentExists(image), false);

    // B: no Secrets → must pull → anonymous request → 401.
    let mark = (await reg.accessLog()).length;
    const b = await n.ensure(POD_B, image, []);
    assert.equal(b.ok, false);
    assert.equal(b.reason, 'ErrImagePull');
    assert.equal(b.error?.code, 'CREDENTIALS_NOT_VERIFIED');
    assert.match(b.message, /is present on the node, but this pod's credentials were not verified for it/);
    const bLog = await logSince(mark);
    assert.ok(bLog.length > 0, 'B made a registry request');
    assert.ok(
      bLog.some((e) => e.status === 401),
      `a 401 answer: ${JSON.stringify(bLog)}`,
    );
    assert.ok(!bLog.some((e) => e.status === 200 && /\/blobs\//.test(e.path)), 'no blob served to B');
    assert.deepEqual(
      b.events.map((e) => e.reason),
      ['Pulling', 'Failed', 'Failed'],
    );
    assert.equal(b.events[2]?.message, 'Error: ErrImagePull');

    // C: A's Secret → used without any registry request.
    mark = (await reg.accessLog()).length;
    const c = await n.ensure(POD_C, image, [secret]);
    assert.equal(c.ok, true, c.message);
    assert.equal(c.action, 'used');
    assert.equal(
      c.message,
      `Container image "${image}" already present on machine and can be accessed by the pod`,
    );
    assert.deepEqual(await logSince(mark), []);

    // The same node under NeverVerify: B uses the image, no registry request.
    const nv = await node(root, 'NeverVerify');
    mark = (await reg.accessLog()).length;
    const b2 = await nv.ensure({ ...POD_B, uid: 'uid-b2' }, image, []);
    assert.equal(b2.ok, true, b2.message);
    assert.equal(b2.action, 'used');
    assert.deepEqual(await logSince(mark), []);
  });

  test('an image loaded with `kimg load` is preloaded: used without Secrets by default, refused under AlwaysVerify', async () => {
    const root = join(dir, 'root-load');
    const image = `${reg.host}/loaded:v1`;
    const ctx = cliContext({ ...process.env, KIMG_ROOT: root });
    await runCli(['node', 'kimg', 'load', loadedImg.ociRef, '--name', image, '--root', root], ctx);
    assert.equal(ctx.exitStatus, 0, ctx.err.text);
    assert.match(ctx.out.text, /Loaded image: /);

    const d = await node(root, 'NeverVerifyPreloadedImages');
    let mark = (await reg.accessLog()).length;
    const used = await d.ensure(POD_B, image, []);
    assert.equal(used.ok, true, used.message);
    assert.equal(used.action, 'used');
    assert.equal(used.imageRef, loadedImg.manifests[0]!.config.digest);
    assert.deepEqual(await logSince(mark), []);
    const ex = await d.verifier.explain(image, used.imageRef);
    assert.deepEqual([ex.verdict.reason, ex.verdict.preloaded], ['policy-allows', true]);

    const always = await node(root, 'AlwaysVerify');
    mark = (await reg.accessLog()).length;
    const refused = await always.ensure({ ...POD_B, uid: 'uid-b3' }, image, []);
    assert.equal(refused.ok, false);
    assert.equal(refused.error?.code, 'CREDENTIALS_NOT_VERIFIED');
    assert.equal(refused.reason, 'ErrImagePull');
    assert.ok((await logSince(mark)).some((e) => e.status === 401));
  });

  test('an agent killed between the pull intent and its result: the next start reconciles the records', async () => {
    const root = join(dir, 'root-crash');
    const image = `${reg.host}/private:v1`;
    const dist = new URL('../../', import.meta.url);
    const script = join(dir, 'agent.mjs');
    const outFile = join(dir, 'agent.out');
    await writeFile(
      script,
      `
import { ImageManager, LocalImageService, openNodeVerifier } from ${JSON.stringify(new URL('src/manager/index.js', dist).href)};
import { RegistryClient } from ${JSON.stringify(new URL('src/registry/index.js', dist).href)};
import { openStore } from ${JSON.stringify(new URL('src/store/index.js', dist).href)};
import { Secret } from ${JSON.stringify(new URL('src/credentials/index.js', dist).href)};
const [root, host, user, pass, image] = process.argv.slice(2);
const store = await openStore({ root });
const registry = new RegistryClient({ plainHttp: [host] });
class Stalling extends LocalImageService {
  async pullImage(...args) {
    const ref = await super.pullImage(...args);
    process.stdout.write('pulled ' + ref + '\\n');
    await new Promise(() => {}); // never returns: killed here, before the result is recorded
    return ref;
  }
}
const service = new Stalling({ store, registry });
const { verifier } = await openNodeVerifier({ root, imageService: service });
const manager = new ImageManager({ imageService: service, verifier });
const credentials = [{ key: host, auth: { username: user, password: new Secret(pass) },
  source: { kind: 'secret', namespace: 'default', name: 'regcred', uid: 'secret-uid-1' } }];
await manager.ensureImageExists({ pod: { name: 'a', namespace: 'default', uid: 'uid-a' },
  container: { name: 'app', image, imagePullPolicy: 'IfNotPresent' }, credentials });
`,
    );
    const agent = spawnTracked(
      'agent',
      process.execPath,
      [script, root, reg.host, reg.username as string, reg.password as string, image],
      { stdoutFile: outFile, stderrFile: join(dir, 'agent.err') },
    );
    try {
      await waitFor(
        'the agent to pull',
        async () =>
          (await readFile(outFile, 'utf8').catch(() => '')).includes('pulled ') ? true : undefined,
        { timeoutMs: 60_000, intervalMs: 20, watch: agent },
      );
    } catch (e) {
      const err = await readFile(join(dir, 'agent.err'), 'utf8').catch(() => '');
      throw new Error(`${String(e)}\nagent stderr: ${err}`, { cause: e });
    } finally {
      await killProcess(agent);
    }
    const records = new FilePullRecords(root);
    assert.equal(await records.imagePullIntentExists(image), true, 'the intent survived the kill');
    assert.deepEqual((await records.listImagePulledRecords()).items, []);

    // The next start.
    const n = await node(root, 'NeverVerifyPreloadedImages');
    assert.deepEqual(n.report.reconciled, [{ image, imageRef: img.manifests[0]!.config.digest }]);
    assert.equal(await records.imagePullIntentExists(image), false);
    const rec = await records.getImagePulledRecord(img.manifests[0]!.config.digest);
    assert.deepEqual(rec?.credentialMapping, {});
    // The image counts as pulled by the node with unknown credentials: even A's Secret must verify
    // (a pull that succeeds and records it), and then C with the same Secret uses it locally.
    let mark = (await reg.accessLog()).length;
    const a = await n.ensure(POD_A, image, [secret]);
    assert.equal(a.action, 'pulled', a.message);
    assert.ok((await logSince(mark)).length > 0);
    assert.ok(
      !(await logSince(mark)).some((e) => e.method === 'GET' && /\/blobs\//.test(e.path)),
      'no blob downloaded again',
    );
    mark = (await reg.accessLog()).length;
    const c = await n.ensure(POD_C, image, [secret]);
    assert.equal(c.action, 'used');
    assert.deepEqual(await logSince(mark), []);
    // Records CLI shows the record with the hash shortened, never the password.
    const ctx = cliContext({ ...process.env, KIMG_ROOT: root });
    await runCli(['node', 'kimg', 'records', 'ls', '--root', root, '-o', 'json'], ctx);
    const listed = JSON.parse(ctx.out.text) as { pulled: { imageRef: string }[]; intents: string[] };
    assert.deepEqual(listed.intents, []);
    assert.deepEqual(
      listed.pulled.map((p) => p.imageRef),
      [img.manifests[0]!.config.digest],
    );
    assert.ok(!ctx.out.text.includes(reg.password as string));
    assert.ok(!ctx.out.text.includes(credentialHash(secret.auth)));
  });

  test('`kimg records prune` repairs junk and removes records of images no longer stored', async () => {
    const root = join(dir, 'root-prune');
    const records = new FilePullRecords(root);
    await records.writeImagePulledRecord({
      imageRef: 'sha256:' + 'f'.repeat(64),
      lastUpdatedTime: '2026-01-01T00:00:00Z',
      credentialMapping: { 'registry.example/gone': { nodePodsAccessible: true } },
    });
    await records.writeImagePullIntent('registry.example/gone:1');
    await writeFile(join(records.pulledDir, 'junk.txt'), 'x');
    const ctx = cliContext({ ...process.env, KIMG_ROOT: root });
    await runCli(['node', 'kimg', 'records', 'prune', '--root', root, '-o', 'json'], ctx);
    assert.equal(ctx.exitStatus, 0, ctx.err.text);
    const out = JSON.parse(ctx.out.text) as {
      removedRecords: string[];
      kept: string[];
      repairs: { action: string }[];
    };
    assert.deepEqual(out.removedRecords, ['sha256:' + 'f'.repeat(64)]);
    assert.deepEqual(out.kept, ['registry.example/gone:1']);
    assert.deepEqual(
      out.repairs.map((r) => r.action),
      ['removed'],
    );
    assert.deepEqual((await records.listImagePulledRecords()).problems, []);
  });
});
