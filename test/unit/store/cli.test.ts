import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../../src/cli/program.js';
import type { CliContext } from '../../../src/cli/context.js';
import { parseDurationMs } from '../../../src/cli/commands/store.js';
import { isKimgError } from '../../../src/errors/index.js';
import { humanSize } from '../../../src/store/index.js';
import { generateImage, type GeneratedImage } from '../../helpers/images.js';
import { Sink } from '../../helpers/output.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

async function kimg(
  env: NodeJS.ProcessEnv,
  ...args: string[]
): Promise<{ status: number; stdout: string; stderr: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const ctx: CliContext = { stdout, stderr, env, exitStatus: 0 };
  const status = await runCli(['node', 'kimg', ...args], ctx);
  return { status, stdout: stdout.text, stderr: stderr.text };
}

test('--ingest-max-age takes Go durations (gotext), not negative ones', () => {
  for (const [text, ms] of [
    ['24h', 86_400_000],
    ['1h30m', 5_400_000],
    ['90s', 90_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['0', 0],
  ] as const)
    assert.equal(parseDurationMs(text), ms, text);
  for (const bad of ['', '10 minutes', '24', '-1h', 'h'])
    assert.throws(
      () => parseDurationMs(bad),
      (e: unknown) => isKimgError(e, 'USAGE'),
      bad,
    );
});

describe('store CLI commands', () => {
  let dir: string;
  let img: GeneratedImage;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    dir = await makeTempDir('cli-');
    img = await generateImage(join(dir, 'layout'), {
      name: 'small',
      layers: [{ size: 4096 }, { size: 4096 }],
    });
    env = { KIMG_ROOT: join(dir, 'root') };
  });
  after(async () => removeTempDir(dir));

  test('load, images (table, wide, json), inspect, save, rmi, store gc/verify/df', async () => {
    let r = await kimg(env, 'load', `oci:${join(dir, 'layout')}:1`, '--name', '127.0.0.1:5000/small:1');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'Loaded image: 127.0.0.1:5000/small:1\n');

    r = await kimg(env, 'images');
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^IMAGE\s+TAG\s+DIGEST\s+IMAGE ID\s+SIZE$/);
    const cols = (lines[1] ?? '').split(/\s{3,}/);
    const m = img.manifests[0];
    assert.deepEqual(cols, [
      '127.0.0.1:5000/small',
      '1',
      img.digest.slice(7, 20),
      m?.config.digest.slice(7, 20),
      humanSize(img.blobBytes),
    ]);

    r = await kimg(env, 'images', '-o', 'wide');
    assert.match(r.stdout, /PLATFORM\s+HANDLER\s+SOURCE\s+PINNED\s+LAST USED/);
    assert.match(r.stdout, /linux\/amd64\s+<default>\s+load\s+false/);

    r = await kimg(env, 'images', '-o', 'json');
    const json = JSON.parse(r.stdout) as {
      images: { name: string; digest: string; imageId: string; size: number }[];
    };
    assert.equal(json.images[0]?.digest, img.digest);
    assert.equal(json.images[0]?.imageId, m?.config.digest);
    assert.equal(json.images[0]?.size, img.blobBytes);

    r = await kimg(env, 'inspect', '127.0.0.1:5000/small:1');
    const ins = JSON.parse(r.stdout) as {
      record: { name: string };
      manifest: { layers: unknown[] };
      config: { os: string };
    };
    assert.equal(ins.record.name, '127.0.0.1:5000/small:1');
    assert.equal(ins.manifest.layers.length, 2);
    assert.equal(ins.config.os, 'linux');
    r = await kimg(env, 'inspect', (m?.config.digest ?? '').slice(7, 19), '-o', 'yaml');
    assert.match(r.stdout, /^record:\n {2}name: 127\.0\.0\.1:5000\/small:1/);
    r = await kimg(env, 'inspect', 'nope');
    assert.equal(r.status, 3);
    assert.match(r.stderr, /no such image "nope".*\(IMAGE_NOT_PRESENT\)/);

    r = await kimg(env, 'save', '127.0.0.1:5000/small:1', `oci:${join(dir, 'out')}:saved`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Saved 127\.0\.0\.1:5000\/small:1 to oci:.*:saved\n$/);

    r = await kimg(env, 'store', 'df', '-o', 'json');
    assert.equal((JSON.parse(r.stdout) as { images: number }).images, 1);

    r = await kimg(env, 'rmi', '127.0.0.1:5000/small:1', 'missing:1');
    assert.equal(r.status, 3, 'one image was missing');
    assert.equal(r.stdout, 'Deleted: 127.0.0.1:5000/small:1\n');
    assert.match(r.stderr, /no such image "missing:1"/);

    r = await kimg(env, 'store', 'gc', '--dry-run');
    assert.match(r.stdout, /Would remove 4 blob\(s\)/);
    r = await kimg(env, 'store', 'gc', '-o', 'json');
    assert.equal((JSON.parse(r.stdout) as { removed: unknown[] }).removed.length, 4);

    r = await kimg(env, 'store', 'verify');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /no problems/);

    r = await kimg(env, 'load', `oci:${join(dir, 'out')}:saved`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout,
      'Loaded image: 127.0.0.1:5000/small:1\n',
      'the saved layout remembers the full name',
    );
  });

  test('a corrupt index.json fails commands with exit 7 naming the file; verify reports it, --repair fixes it', async () => {
    const e2 = { KIMG_ROOT: join(dir, 'root2') };
    let r = await kimg(e2, 'load', `oci:${join(dir, 'layout')}:1`, '--name', 'example.com/a:1');
    assert.equal(r.status, 0, r.stderr);
    const indexFile = join(dir, 'root2', 'oci', 'index.json');
    await fsp.writeFile(indexFile, 'garbage');
    r = await kimg(e2, 'images');
    assert.equal(r.status, 7);
    assert.ok(r.stderr.includes(indexFile), r.stderr);
    assert.match(r.stderr, /\(STORE_CORRUPT\)/);
    r = await kimg(e2, 'store', 'verify');
    assert.equal(r.status, 7);
    assert.match(r.stdout, /index-json/);
    r = await kimg(e2, 'store', 'verify', '--repair', '-o', 'json');
    assert.equal(r.status, 0);
    assert.equal((JSON.parse(r.stdout) as { ok: boolean }).ok, true);
    r = await kimg(e2, 'images', '-o', 'json');
    assert.equal((JSON.parse(r.stdout) as { images: unknown[] }).images.length, 1);
  });

  test('--root beats KIMG_ROOT; bad flags are usage errors', async () => {
    const r = await kimg(
      { KIMG_ROOT: '/nonexistent/should/not/be/used' },
      'images',
      '--root',
      join(dir, 'root3'),
      '-o',
      'json',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { images: [] });
    assert.equal((await kimg(env, 'images', '-o', 'xml')).status, 2);
    assert.equal((await kimg(env, 'store', 'gc', '--ingest-max-age', 'soon')).status, 2);
    assert.equal((await kimg(env, 'load', join(dir, 'layout'))).status, 2, 'missing oci: transport');
  });
});
