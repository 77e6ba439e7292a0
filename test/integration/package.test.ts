/**
 * The package as `npm pack` builds it, installed into a temporary directory the way a TypeScript agent
 * would depend on it: a consumer file type-checks against the published .d.ts (every one of them, with
 * skipLibCheck off) through the root entry and every subpath export, the bundled `kimg` bin runs, and `kimg/reference` loads neither gRPC nor
 * prom-client (the root entry loads both, which is what the subpaths are for).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
};
let dir: string;
let app: string;

before(async () => {
  dir = await makeTempDir('kimg-package-');
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [{ filename }] = JSON.parse(out) as [{ filename: string }];
  app = join(dir, 'app');
  const installed = join(app, 'node_modules', 'kimg');
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', join(dir, filename), '-C', installed, '--strip-components=1']);
  // The package's dependencies (and TypeScript's Node types) from this checkout: no registry access.
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (name.startsWith('.') || name === 'kimg') continue;
    symlinkSync(join(ROOT, 'node_modules', name), join(app, 'node_modules', name));
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
});

after(async () => {
  if (dir) await removeTempDir(dir);
});

test('every module index is a subpath export, and nothing else is', () => {
  const modules = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && readdirSync(join(ROOT, 'src', d.name)).includes('index.ts'))
    .map((d) => `./${d.name}`)
    .sort();
  const subpaths = Object.keys(PKG.exports)
    .filter((k) => k !== '.' && k !== './package.json')
    .sort();
  assert.deepEqual(subpaths, modules);
});

test("a consumer type-checks against the packed .d.ts: every subpath, kimg's own .d.ts checked in full", () => {
  // One namespace import per export, so every published .d.ts (and what it imports) is compiled.
  const specifiers = Object.keys(PKG.exports)
    .filter((k) => k !== './package.json')
    .map((k) => (k === '.' ? 'kimg' : `kimg/${k.slice(2)}`));
  const everySubpath =
    specifiers.map((s, i) => `import * as sub${i} from '${s}';`).join('\n') +
    `\nvoid [${specifiers.map((_, i) => `sub${i}`).join(', ')}];\n`;
  writeFileSync(
    join(app, 'consumer.ts'),
    `import { parseReference, type Reference } from 'kimg/reference';
import { parsePlatform } from 'kimg/platform';
import { isKimgError, KimgError } from 'kimg/errors';
import { openStore, type Store } from 'kimg/store';
import { RegistryClient } from 'kimg/registry';
import { ImageManager } from 'kimg/manager';
import { openNodeRuntime } from 'kimg/runtime';
import { FakeUsageSource, MemoryEventRecorder } from 'kimg/testing';
import * as root from 'kimg';
${everySubpath}
const ref: Reference = parseReference('busybox:1.36');
const canonical: string = ref.canonical;
const same: typeof root.parseReference = parseReference;
const platform = parsePlatform('linux/arm64');
const opened: Promise<Store> = openStore({ root: '/tmp/x' });
void [canonical, same, platform, opened, RegistryClient, ImageManager, openNodeRuntime];
const usage: root.FsUsageSource = new FakeUsageSource(100, 50);
const events: root.EventRecorder = new MemoryEventRecorder();
void [usage, events];
// @ts-expect-error test doubles are not in the main entry
void root.FakeUsageSource;
const e: unknown = new KimgError('USAGE', 'x');
if (isKimgError(e, 'USAGE')) console.log(e.code);
// @ts-expect-error internals are not exported
import('kimg/dist/src/store/internal/hash-worker.js');
`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      files: ['consumer.ts'],
    }),
  );
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], { encoding: 'utf8' });
  const diagnostics = (r.stdout + r.stderr).split('\n').filter((l) => /^\S+\(\d+,\d+\): error /.test(l));
  // kimg's own .d.ts and the consumer must check clean. The one known problem elsewhere: the Kubernetes
  // client's .d.ts use the 'ws' module's types (through isomorphic-ws) without depending on @types/ws,
  // which a consumer with skipLibCheck off installs or declares; it is not kimg's API.
  const dependencyOwn = (l: string) =>
    /node_modules\/(isomorphic-ws|@kubernetes\/client-node)\//.test(l) && /'"?ws"?'|"ws"/.test(l);
  assert.deepEqual(
    diagnostics.filter((l) => !dependencyOwn(l)),
    [],
    r.stdout + r.stderr,
  );
  assert.ok(r.status === 0 || diagnostics.length > 0, r.stdout + r.stderr);
  assert.ok(specifiers.length >= 23, `${specifiers.length} entries imported`);
});

test('kimg/reference loads neither gRPC nor prom-client; the root entry loads both', () => {
  const probe = (specifier: string) => {
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { createRequire } from 'node:module';
const m = await import(${JSON.stringify(specifier)});
if (typeof m.parseReference !== 'function') throw new Error('no parseReference');
const loaded = Object.keys(createRequire(import.meta.url).cache);
console.log(JSON.stringify({
  grpc: loaded.some((k) => k.includes('/@grpc/')),
  prom: loaded.some((k) => k.includes('/prom-client/')),
}));`,
      ],
      { cwd: app, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { grpc: boolean; prom: boolean };
  };
  assert.deepEqual(probe('kimg/reference'), { grpc: false, prom: false });
  assert.deepEqual(probe('kimg'), { grpc: true, prom: true });
});

test('test doubles are published as kimg/testing, not from the main entry', () => {
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const root = await import('kimg');
const testing = await import('kimg/testing');
console.log(JSON.stringify({
  root: ['FakeUsageSource', 'MemoryEventRecorder', 'MemoryImageGCEventRecorder', 'FakeClock'].filter((n) => n in root),
  testing: Object.keys(testing).sort(),
}));`,
    ],
    { cwd: app, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    root: [],
    testing: ['FakeUsageSource', 'MemoryEventRecorder', 'MemoryImageGCEventRecorder'],
  });
});

test('the installed bins run from the package: kimg, and kubectl-kimg (the kubectl plugin)', () => {
  const installed = JSON.parse(readFileSync(join(app, 'node_modules', 'kimg', 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
  };
  assert.deepEqual(Object.keys(installed.bin).sort(), ['kimg', 'kubectl-kimg']);
  for (const target of Object.values(installed.bin)) {
    const bin = join(app, 'node_modules', 'kimg', target);
    const r = spawnSync(process.execPath, [bin, 'ref', 'parse', 'busybox', '-o', 'json'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /docker\.io\/library\/busybox:latest/);
  }
});
