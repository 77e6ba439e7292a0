/**
 * The executable loads only the command it runs (src/cli/lazy.ts) and is bundled (dist/bin/kimg.js, the
 * package's `bin`); global options sit before the command. These tests hold the lazy and bundled forms
 * to the full program's behaviour: same help, same suggestions, same per-command options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram, runCli } from '../../../src/cli/index.js';
import { commandNamed, readCommandIndex } from '../../../src/cli/lazy.js';
import { Sink } from '../../helpers/output.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const BIN = new URL('../../../bin/kimg.js', import.meta.url).pathname;
const MAIN = new URL('../../../src/cli/main.js', import.meta.url).pathname;
const PKG = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as {
  bin: Record<string, string>;
};

function run(entry: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [entry, ...args], {
    encoding: 'utf8',
    env: { ...process.env, COLUMNS: '100', ...env },
  });
}

async function fullProgram(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const status = await runCli(['node', 'kimg', ...args], { stdout, stderr, env: {}, exitStatus: 0 });
  return { status, stdout: stdout.text, stderr: stderr.text };
}

test('the package bin is the bundle, and the build indexed every command of the full program', () => {
  assert.equal(PKG.bin.kimg, 'dist/bin/kimg.js');
  assert.ok(existsSync(BIN), `${BIN} exists (npm run build)`);
  const index = readCommandIndex();
  assert.ok(index, 'dist/src/cli/commands.json exists (npm run build)');
  const names = buildProgram({
    stdout: process.stdout,
    stderr: process.stderr,
    env: {},
    exitStatus: 0,
  }).commands.map((c) => c.name());
  assert.deepEqual(
    index.map((e) => e.name),
    names,
  );
});

test('commandNamed finds the command after global options and in `help CMD`', () => {
  const cases: [string[], string | undefined][] = [
    [[], undefined],
    [['--help'], undefined],
    [['-v'], undefined],
    [['pull', 'busybox'], 'pull'],
    [['--root', '/x', 'pull', 'busybox'], 'pull'],
    [['--config', 'f.yaml', '--root', '/x', 'gc'], 'gc'],
    [['help', 'pull'], 'pull'],
    [['--', 'pull'], undefined],
    [['nosuch'], 'nosuch'],
  ];
  for (const [args, want] of cases) assert.equal(commandNamed(args), want, args.join(' '));
});

test('lazy and bundled executables print the full program help, the command help and suggestions', async () => {
  for (const args of [
    ['--version'],
    ['-v'],
    ['--help'],
    ['pull', '--help'],
    ['help', 'store'],
    ['store', 'verify', '--help'],
  ]) {
    const full = await fullProgram(args);
    for (const entry of [BIN, MAIN]) {
      const r = run(entry, args);
      assert.equal(r.status, 0, `${entry} ${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, full.stdout, `${entry} ${args.join(' ')}`);
    }
  }
  const typo = run(BIN, ['pul']);
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /unknown command 'pul'[\s\S]*Did you mean pull\?/);
});

test('the bundle runs commands of every weight: version, ref parse, images, a config error', async () => {
  const dir = await makeTempDir('kimg-startup-');
  try {
    const v = run(BIN, ['--version']);
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
    const ref = run(BIN, ['ref', 'parse', 'busybox', '-o', 'yaml']);
    assert.equal(ref.status, 0, ref.stderr);
    assert.match(ref.stdout, /canonical: docker\.io\/library\/busybox:latest/);
    const images = run(BIN, ['images', '-o', 'json'], { KIMG_ROOT: join(dir, 'env-root') });
    assert.equal(images.status, 0, images.stderr);
    assert.ok(existsSync(join(dir, 'env-root')), 'the store was opened under KIMG_ROOT');
  } finally {
    await removeTempDir(dir);
  }
});

test('global --root and --config reach the command; the per-command form keeps working and wins', async () => {
  const dir = await makeTempDir('kimg-globals-');
  try {
    const env = { KIMG_ROOT: join(dir, 'env-root') };
    const g = run(BIN, ['--root', join(dir, 'global'), 'images', '-o', 'json'], env);
    assert.equal(g.status, 0, g.stderr);
    assert.ok(existsSync(join(dir, 'global')), 'kimg --root DIR images opens DIR');
    const c = run(BIN, ['images', '--root', join(dir, 'per-command'), '-o', 'json'], env);
    assert.equal(c.status, 0, c.stderr);
    assert.ok(existsSync(join(dir, 'per-command')), 'kimg images --root DIR opens DIR');
    const both = run(BIN, ['--root', join(dir, 'loser'), 'images', '--root', join(dir, 'winner')], env);
    assert.equal(both.status, 0, both.stderr);
    assert.ok(existsSync(join(dir, 'winner')) && !existsSync(join(dir, 'loser')), 'the command option wins');
    assert.ok(!existsSync(join(dir, 'env-root')), 'KIMG_ROOT was not used');

    const config = join(dir, 'kubelet.yaml');
    writeFileSync(
      config,
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nimageGCHighThresholdPercent: 101\n',
    );
    const root = join(dir, 'gc-root');
    const viaGlobal = run(BIN, ['--config', config, '--root', root, 'gc', '--dry-run']);
    const viaCommand = run(BIN, ['gc', '--config', config, '--root', root, '--dry-run']);
    assert.equal(viaGlobal.status, 2, viaGlobal.stderr);
    assert.match(viaGlobal.stderr, /imageGCHighThresholdPercent/);
    assert.equal(viaGlobal.stderr, viaCommand.stderr);
    assert.equal(viaGlobal.status, viaCommand.status);
  } finally {
    await removeTempDir(dir);
  }
});
