/**
 * `kimg explain -f` says "kimg extension" for a static pod that references pull Secrets or a
 * ServiceAccount, with the notes `kimg describe pod` prints (naming the manifests, where `-f` resolves them from): a pod is a static pod when its file lies
 * inside the `--config`'s `staticPodPath`, or with `--static-pod`. The same pod from any other file is
 * not a static pod (the kubelet allows its Secrets) and gets no note. Table: `Kimg Extension:` lines;
 * `-o json|yaml`: an `extensions` array.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CliContext } from '../../../src/cli/context.js';
import { runCli } from '../../../src/cli/program.js';
import { Sink } from '../../helpers/output.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const SECRET_NOTE =
  'imagePullSecrets regcred resolved from the manifests (kimg extension: the kubelet refuses static pods that reference Secrets)';
const SA_NOTE =
  'ServiceAccount builder resolved from the manifests (kimg extension: the kubelet refuses static pods that reference ServiceAccounts)';

describe('kimg explain: static pods say which of their references are kimg extensions', () => {
  let dir = '';
  let inside = '';
  let outside = '';
  let plainStatic = '';
  let config = '';
  before(async () => {
    dir = await makeTempDir('explain-static-');
    await mkdir(join(dir, 'manifests'));
    const pod = (extra: string) =>
      `apiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: default, uid: uid-app}\nspec:\n${extra}  containers:\n    - {name: c, image: "registry.example/app:1"}\n    - {name: d, image: "registry.example/sidecar:1"}\n`;
    const refs = '  imagePullSecrets: [{name: regcred}]\n  serviceAccountName: builder\n';
    inside = join(dir, 'manifests', 'app.yaml');
    await writeFile(inside, pod(refs));
    plainStatic = join(dir, 'manifests', 'plain.yaml');
    await writeFile(plainStatic, pod(''));
    outside = join(dir, 'app.yaml');
    await writeFile(outside, pod(refs));
    config = join(dir, 'kubelet.yaml');
    await writeFile(
      config,
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: manifests\n',
    );
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  async function explain(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const stdout = new Sink();
    const stderr = new Sink();
    const ctx: CliContext = { stdout, stderr, env: { HOME: dir }, exitStatus: 0 };
    const code = await runCli(
      ['node', 'kimg', 'explain', ...args, '--root', join(dir, 'root'), '--no-node-config'],
      ctx,
    );
    return { code, out: stdout.text, err: stderr.text };
  }
  const extensionsOf = async (args: string[]): Promise<(string[] | undefined)[]> => {
    const r = await explain([...args, '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    return (JSON.parse(r.out) as { extensions?: string[] }[]).map((x) => x.extensions);
  };

  test("a manifest inside the configuration's staticPodPath: Kimg Extension lines and extensions", async () => {
    const r = await explain(['-f', inside, '--config', config]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n').filter((l) => l.includes('Kimg Extension:'));
    assert.deepEqual(lines, [
      `  Kimg Extension: ${SECRET_NOTE}`,
      `  Kimg Extension: ${SA_NOTE}`,
      `  Kimg Extension: ${SECRET_NOTE}`,
      `  Kimg Extension: ${SA_NOTE}`,
    ]);
    assert.match(
      r.out,
      /^Container c: registry\.example\/app:1 .*\n {2}Kimg Extension: imagePullSecrets regcred/,
    );
    assert.deepEqual(await extensionsOf(['-f', inside, '--config', config]), [
      [SECRET_NOTE, SA_NOTE],
      [SECRET_NOTE, SA_NOTE],
    ]);
    const yaml = await explain(['-f', inside, '--config', config, '-o', 'yaml']);
    assert.match(yaml.out, /extensions:\n +- "imagePullSecrets regcred resolved from the manifests/);
  });

  test('the same pod from a file outside staticPodPath, or without --config, is no static pod', async () => {
    for (const args of [
      ['-f', outside, '--config', config],
      ['-f', inside],
    ]) {
      const r = await explain(args);
      assert.equal(r.code, 0, r.err);
      assert.doesNotMatch(r.out, /Kimg Extension/);
      assert.deepEqual(await extensionsOf(args), [undefined, undefined]);
    }
  });

  test('--static-pod declares it; a static pod without Secrets or ServiceAccount has no extension', async () => {
    assert.deepEqual(await extensionsOf(['-f', outside, '--static-pod']), [
      [SECRET_NOTE, SA_NOTE],
      [SECRET_NOTE, SA_NOTE],
    ]);
    assert.deepEqual(await extensionsOf(['-f', outside, '--static-pod', '--container', 'd']), [
      [SECRET_NOTE, SA_NOTE],
    ]);
    assert.deepEqual(await extensionsOf(['-f', plainStatic, '--config', config]), [undefined, undefined]);
    const image = await explain(['registry.example/app:1', '--static-pod']);
    assert.equal(image.code, 2);
    assert.match(image.err, /--static-pod goes with -f/);
  });
});
