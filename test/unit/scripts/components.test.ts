/**
 * The one list of system components (scripts/components.txt): the README's first command
 * (scripts/demo.sh), CI (.ci/run), the test runner's preflight and the test harness all read it, and
 * every component a test or benchmark requires is in it — so the demo installs what `npm test` needs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPONENT_PACKAGES } from '../../helpers/components.js';

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

test('every component a test or benchmark requires is in the list', () => {
  const required = new Set<string>();
  for (const file of [...sources('test'), ...sources('bench')]) {
    const text = read(file);
    for (const m of text.matchAll(/requireBinary\('([^']+)'\)/g)) required.add(m[1]!);
    for (const m of text.matchAll(/for \(const \w+ of \[([^\]]+)\]\) requireBinary/g)) {
      for (const n of m[1]!.matchAll(/'([^']+)'/g)) required.add(n[1]!);
    }
    for (const m of text.matchAll(/'\/usr\/s?bin\/([\w.+-]+)'/g)) required.add(m[1]!);
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
  assert.match(r.stderr, /apt-get install -y --no-install-recommends [^\n]*\bskopeo\b/);
  assert.match(r.stderr, /bash scripts\/demo\.sh/);
  assert.doesNotMatch(r.stdout, /^ok /m, 'no test ran');
});
