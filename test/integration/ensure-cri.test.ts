/**
 * `kimg ensure -f pod.yaml --image-service unix:///…/containerd.sock` pulls through
 * a real containerd (its CRI plugin) with the pull-policy, back-off and credential semantics of issues
 * D–F: the image lands in containerd's k8s.io namespace under the config digest, a second run finds it
 * present without a pull, a pull Secret opens the Basic registry (no Secret: UNAUTHORIZED), and a
 * missing repository gives ErrImagePull and then, in a new process, ImagePullBackOff without asking.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { runCommand, type CommandResult } from '../helpers/proc.js';
import { startRegistries, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const CANARY = 'Ensure-Cri-Canary-4410';

interface EnsureJson {
  ready: boolean;
  containers: { name: string; ready: boolean; reason: string; imageRef: string }[];
  events: { type: string; reason: string; message: string }[];
}

describe('kimg ensure --image-service: the manager over containerd', () => {
  let dir = '';
  let regs: Record<'plain' | 'basic', StartedRegistry>;
  let ctrd: StartedContainerd;
  let img: GeneratedImage;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    dir = await makeTempDir('ensure-cri-');
    const r = startRegistries(['plain', 'basic'], { password: CANARY });
    const c = startContainerd();
    img = await generateImage(join(dir, 'img'), { name: 'ensure-cri', layers: [{ size: 12_000 }] });
    regs = await r;
    ctrd = await c;
    for (const reg of Object.values(regs)) await ctrd.addPlainHttpRegistry(reg.host);
    await Promise.all([skopeoPush(img, regs.plain, 'app:1'), skopeoPush(img, regs.basic, 'private:1')]);
    env = { ...process.env, HOME: dir, XDG_DATA_HOME: dir };
  });
  after(async () => {
    await ctrd?.stop();
    await stopRegistries(Object.values(regs ?? {}));
    if (dir) await removeTempDir(dir);
  });

  async function write(name: string, text: string): Promise<string> {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  }

  function pod(name: string, image: string, secrets: string[] = []): string {
    return [
      'apiVersion: v1',
      'kind: Pod',
      `metadata: {name: ${name}, namespace: default, uid: uid-${name}}`,
      'spec:',
      ...(secrets.length ? ['  imagePullSecrets:', ...secrets.map((s) => `    - name: ${s}`)] : []),
      '  containers:',
      `    - {name: app, image: "${image}", imagePullPolicy: IfNotPresent}`,
      '',
    ].join('\n');
  }

  async function ensure(files: string[]): Promise<CommandResult & { json: EnsureJson }> {
    const r = await runCommand(
      'node',
      [
        CLI,
        'ensure',
        ...files.flatMap((f) => ['-f', f]),
        '--image-service',
        ctrd.address,
        '--root',
        join(dir, 'state'),
        '--no-node-config',
        '--kubelet-root-dir',
        join(dir, 'kubelet'),
        '-o',
        'json',
      ],
      { env, allowFailure: true, secrets: [CANARY] },
    );
    assert.ok(!(r.stdout + r.stderr).includes(CANARY), 'no password in the output');
    return { ...r, json: JSON.parse(r.stdout) as EnsureJson };
  }

  test('pulls into containerd, then finds the image present', async () => {
    const podFile = await write('app.yaml', pod('app', `${regs.plain.host}/app:1`));
    const first = await ensure([podFile]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.json.containers[0]?.imageRef, img.manifests[0]!.config.digest);
    assert.deepEqual(
      first.json.events.map((e) => e.reason),
      ['Pulling', 'Pulled'],
    );
    const listed = await ctrd.ctr(['images', 'ls', '-q'], { namespace: 'k8s.io' });
    assert.match(listed.stdout, new RegExp(`${regs.plain.host}/app:1`));
    const second = await ensure([podFile]);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(
      second.json.events.map((e) => e.reason),
      ['Pulled'],
    );
    assert.match(second.json.events[0]?.message ?? '', /already present on machine/);
  });

  test('a pull Secret reaches containerd as CRI AuthConfig; without it UNAUTHORIZED', async () => {
    const image = `${regs.basic.host}/private:1`;
    const secret = await runCommand(
      'node',
      [
        CLI,
        'create',
        'secret',
        'docker-registry',
        'regcred',
        `--docker-server=${regs.basic.host}`,
        `--docker-username=${regs.basic.username ?? ''}`,
        `--docker-password=${CANARY}`,
      ],
      { env, secrets: [CANARY] },
    );
    const secretFile = await write('regcred.yaml', secret.stdout);
    const denied = await ensure([await write('nosecret.yaml', pod('nosecret', image))]);
    assert.equal(denied.code, 4, denied.stderr);
    assert.equal(denied.json.containers[0]?.reason, 'ErrImagePull');
    const ok = await ensure([
      await write('withsecret.yaml', pod('withsecret', image, ['regcred'])),
      secretFile,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json.containers[0]?.imageRef, img.manifests[0]!.config.digest);
  });

  test('a missing repository: ErrImagePull, then ImagePullBackOff from the persisted back-off', async () => {
    const podFile = await write('missing.yaml', pod('missing', `${regs.plain.host}/nope:1`));
    const first = await ensure([podFile]);
    assert.notEqual(first.code, 0);
    assert.equal(first.json.containers[0]?.reason, 'ErrImagePull');
    const mark = (await regs.plain.accessLog()).length;
    const second = await ensure([podFile]);
    assert.equal(second.code, 8, second.stderr);
    assert.equal(second.json.containers[0]?.reason, 'ImagePullBackOff');
    assert.ok(second.json.events.some((e) => e.reason === 'BackOff'));
    assert.equal((await regs.plain.accessLog()).length, mark, 'no registry request while in back-off');
  });
});
