/**
 * The executable loads only the command it runs (src/cli/lazy.ts) and is bundled (dist/bin/kimg.js, the
 * package's `bin`); global options sit before the command. These tests hold the lazy and bundled forms
 * to the full program's behaviour: same help, same suggestions, same per-command options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
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

test('a reader that goes away ends kimg quietly with the SIGPIPE status, no stack trace', async () => {
  for (const args of [['--help'], ['--version'], ['ref', 'parse', 'busybox']]) {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Closed before the child has started: its first write to stdout fails with EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [status] = (await once(child, 'exit')) as [number | null];
    assert.equal(status, 141, `${args.join(' ')}: ${stderr}`);
    assert.equal(stderr, '', args.join(' '));
  }
});

/**
 * Runs the bundled executable with a preload that records every module it loads: ES modules through a
 * resolve hook (module.register), CommonJS ones from the require cache at exit.
 */
async function loadedModules(
  dir: string,
  args: string[],
): Promise<{ status: number | null; loaded: string[] }> {
  const log = join(dir, 'loaded.log');
  writeFileSync(log, '');
  const hooks = join(dir, 'hooks.mjs');
  const preload = join(dir, 'preload.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, r.url + '\\n');
  return r;
}
`,
  );
  writeFileSync(
    preload,
    `import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
register(${JSON.stringify(pathToFileURL(hooks).href)});
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => appendFileSync(${JSON.stringify(log)}, Object.keys(cache).join('\\n') + '\\n'));
`,
  );
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(preload).href, BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, KIMG_ROOT: join(dir, 'root') },
  });
  return {
    status: r.status,
    loaded: readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l !== ''),
  };
}

test('quick commands load neither gRPC, prom-client nor the Kubernetes client; serve does', async () => {
  const dir = await makeTempDir('loaded-');
  try {
    const heavy = /node_modules\/(@grpc|protobufjs|prom-client|@kubernetes)\//;
    for (const args of [
      ['--version'],
      ['--help'],
      ['ref', 'parse', 'busybox'],
      ['images'],
      ['images', '-o', 'yaml'],
      ['pull', '--help'],
      // A pull that fails at once (nothing listens on port 1) still loads the whole pull path.
      ['pull', '127.0.0.1:1/nothing:1'],
      // The other store commands and the read-only runtime faces.
      ['rmi', 'busybox'],
      ['inspect', 'busybox'],
      ['gc', '--dry-run'],
      ['explain', 'busybox', '-o', 'json'],
    ]) {
      const { loaded } = await loadedModules(dir, args);
      assert.ok(loaded.length > 0, `${args.join(' ')}: the probe recorded modules`);
      assert.deepEqual(
        loaded.filter((m) => heavy.test(m)),
        [],
        `kimg ${args.join(' ')} loads none of them`,
      );
    }
    // The probe does see them when a command needs them.
    const serve = await loadedModules(dir, ['serve', '--help']);
    assert.equal(serve.status, 0);
    assert.ok(
      serve.loaded.some((m) => /node_modules\/@grpc\//.test(m)),
      'kimg serve loads gRPC',
    );
    // --containerd loads containerd's gRPC client.
    const withContainerd = await loadedModules(dir, ['images', '--containerd', join(dir, 'no.sock')]);
    assert.ok(
      withContainerd.loaded.some((m) => /node_modules\/@grpc\//.test(m)),
      'kimg images --containerd loads gRPC',
    );
  } finally {
    await removeTempDir(dir);
  }
});

test('the executable gives node a small young generation for serve and node only', async () => {
  const dir = await makeTempDir('launcher-');
  try {
    // A stand-in `node` that prints how it was called.
    writeFileSync(join(dir, 'node'), '#!/bin/sh\necho "$@"\n', { mode: 0o755 });
    const run = (...args: string[]) =>
      spawnSync('sh', [BIN, ...args], {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${dir}:${process.env['PATH'] ?? ''}` },
      }).stdout.trim();
    assert.equal(run('serve', '--listen', 'x'), `--max-semi-space-size=2 ${BIN} serve --listen x`);
    assert.equal(
      run('--root', '/r', 'node', '--once'),
      `--max-semi-space-size=2 ${BIN} --root /r node --once`,
    );
    assert.equal(run('images'), `${BIN} images`);
    assert.equal(run('--help'), `${BIN} --help`);
  } finally {
    await removeTempDir(dir);
  }
});
