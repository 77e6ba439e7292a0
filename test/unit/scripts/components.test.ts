/**
 * The one list of system components (scripts/components.txt): the README's first command
 * (scripts/demo.sh), CI (.ci/run), the test runner's preflight and the test harness all read it, and
 * every component a test or benchmark requires is in it — so the demo installs what `npm test` needs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPONENT_PACKAGES } from '../../helpers/components.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

interface Component {
  component: string;
  pkg: string;
}
const { readComponents } = (await import(join(ROOT, 'scripts/lib/components.mjs'))) as {
  readComponents(): Component[];
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const p = join(dir, name);
    if (statSync(join(ROOT, p)).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('the list is well formed: `<executable or absolute path> <package>` per line, the usual components in it', () => {
  const list = readComponents();
  for (const { component, pkg } of list) {
    assert.match(component, /^(\/[\w./+-]+|[\w.+-]+)$/, `component ${component}`);
    assert.match(pkg, /^[a-z0-9][a-z0-9.+-]+$/, `package of ${component}`);
  }
  const names = list.map((c) => c.component);
  for (const c of [
    'docker-registry',
    'skopeo',
    'containerd',
    'runc',
    'umoci',
    'chromium',
    'busybox',
    'htpasswd',
  ]) {
    assert.ok(names.includes(c), `${c} is listed`);
  }
});

test('the demo and .ci/run install the shared list and name no packages of their own', () => {
  const installer = read('scripts/lib/components.sh');
  assert.match(installer, /components\.txt/);
  for (const script of ['scripts/demo.sh', '.ci/run']) {
    const text = read(script);
    assert.match(text, /^source scripts\/lib\/components\.sh$/m, `${script} sources the installer`);
    assert.match(text, /^kimg_install_components$/m, `${script} runs it`);
    assert.doesNotMatch(text, /apt-get install|PACKAGES=/, `${script} has no package list of its own`);
  }
});

test('the test harness and the runner preflight read the same list', () => {
  assert.deepEqual(COMPONENT_PACKAGES, Object.fromEntries(readComponents().map((c) => [c.component, c.pkg])));
  assert.match(read('scripts/run-tests.mjs'), /missingComponents\(\)/);
});

/** The components a test or benchmark source requires: direct requireBinary calls, loops over names, fixed paths. */
function requiredIn(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/requireBinary\('([^']+)'\)/g)) out.push(m[1]!);
  // A loop over names, however prettier wrapped it: `for (const b of [...])\n      requireBinary(b);`
  for (const m of text.matchAll(/for \(const \w+ of \[([^\]]+)\]\)\s*requireBinary/g)) {
    for (const n of m[1]!.matchAll(/'([^']+)'/g)) out.push(n[1]!);
  }
  for (const m of text.matchAll(/'\/usr\/s?bin\/([\w.+-]+)'/g)) out.push(m[1]!);
  return out;
}

test('the scan finds requireBinary calls, loops over names on one line or wrapped, and fixed paths', () => {
  // Spelled so that this file's own scan (the next test) does not find them.
  const rb = 'requireBinary';
  const src = [
    `${rb}('a');`,
    `for (const b of ['b1', 'b2']) ${rb}(b);`,
    `for (const b of ['c1', 'c2', 'c3'])\n      ${rb}(b);`,
    `const p = '${'/usr'}/sbin/d';`,
  ].join('\n');
  assert.deepEqual(requiredIn(src).sort(), ['a', 'b1', 'b2', 'c1', 'c2', 'c3', 'd']);
});

test('every component a test or benchmark requires is in the list', () => {
  const required = new Set<string>();
  for (const file of [...sources('test'), ...sources('bench')]) {
    for (const c of requiredIn(read(file))) required.add(c);
  }
  required.delete('kimg-no-such-component'); // the harness's own negative test
  const listed = new Set(readComponents().map((c) => c.component));
  const missing = [...required].filter((c) => !listed.has(c));
  assert.deepEqual(missing, [], 'add these to scripts/components.txt with their Debian package');
  assert.ok(required.size >= 8, `found ${required.size} required components`);
});

test('npm test without a component names it and the one command that installs it', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/run-tests.mjs'), 'integration/harness'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: '/nonexistent' },
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /skopeo \(Debian package skopeo\)/);
  assert.match(
    r.stderr,
    /apt-get update && sudo apt-get install -y --no-install-recommends [^\n]*\bskopeo\b/,
  );
  assert.match(r.stderr, /bash scripts\/demo\.sh/);
  assert.doesNotMatch(r.stdout, /^ok /m, 'no test ran');
});

test('the demo stops before installing anything when Node is older than 20, and says what to install', async () => {
  const dir = await makeTempDir('demo-node-');
  try {
    const node = join(dir, 'node');
    writeFileSync(node, '#!/bin/sh\necho v18.19.0\n');
    chmodSync(node, 0o755);
    const r = spawnSync('bash', [join(ROOT, 'scripts/demo.sh')], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${dir}:/usr/bin:/bin` },
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /Node\.js 20 or later with npm \(found: v18\.19\.0/);
    assert.match(r.stderr, /nodejs\.org/);
    assert.doesNotMatch(r.stdout + r.stderr, /installing|npm ci|building/);
  } finally {
    await removeTempDir(dir);
  }
});
