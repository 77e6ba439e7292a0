import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MAIN = new URL('../../../src/cli/main.js', import.meta.url).pathname;
const EXAMPLE = new URL('../../../../examples/pods/web.yaml', import.meta.url).pathname;

function kimg(...args: string[]) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
}

interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
}

test('kimg pod defaults prints the objects with imagePullPolicy defaulted as the API server does', () => {
  const r = kimg('pod', 'defaults', '-f', EXAMPLE, '-o', 'json');
  assert.equal(r.status, 0, r.stderr);
  const list = JSON.parse(r.stdout) as { kind: string; items: Record<string, any>[] };
  assert.equal(list.kind, 'List');
  const pod = list.items[0]!;
  const policies = Object.fromEntries(
    [...pod.spec.initContainers, ...pod.spec.containers].map((c: Container) => [c.name, c.imagePullPolicy]),
  );
  assert.deepEqual(policies, {
    init: 'IfNotPresent', // busybox:1.32.0
    app: 'IfNotPresent', // registry.k8s.io/pause:3.5
    sidecar: 'Always', // busybox (no tag → latest)
    pinned: 'IfNotPresent', // tag + digest, tag is not latest
    explicit: 'Never', // explicit policies are kept
  });
  const deploy = list.items[1]!;
  assert.equal(deploy.spec.template.spec.containers[0].imagePullPolicy, 'Always');
});

test('kimg pod defaults --always-pull-images sets Always everywhere, including explicit Never', () => {
  const r = kimg('pod', 'defaults', '-f', EXAMPLE, '--always-pull-images', '-o', 'json');
  assert.equal(r.status, 0, r.stderr);
  const pod = (JSON.parse(r.stdout) as { items: Record<string, any>[] }).items[0]!;
  for (const c of [...pod.spec.initContainers, ...pod.spec.containers] as Container[]) {
    assert.equal(c.imagePullPolicy, 'Always', c.name);
  }
});

test('kimg pod defaults reports a missing file and invalid YAML with coded errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kimg-pod-'));
  try {
    const missing = kimg('pod', 'defaults', '-f', join(dir, 'nope.yaml'));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /FILE_NOT_FOUND/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: v1\nkind: Pod\nspec: [\n');
    const invalid = kimg('pod', 'defaults', '-f', bad);
    assert.equal(invalid.status, 2);
    assert.match(invalid.stderr, /CONFIG_INVALID/);
    assert.doesNotMatch(invalid.stderr, /\bat .*\.js:\d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
