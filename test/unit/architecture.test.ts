/**
 * The layering rules of src/, checked on the sources with scripts/check-imports.mjs (the TypeScript
 * compiler API): data flows one way (the store knows nothing of the registry, the pull pipeline or the
 * manager; the registry client and credentials need no kimg configuration), no file-level import
 * cycles in the node agent, none at run time anywhere, faces get their services from the composition
 * root, and no function grows past 200 lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface LongFunction {
  file: string;
  name: string;
  line: number;
  lines: number;
}
interface CheckImports {
  importGraph(dir?: string, opts?: { runtimeOnly?: boolean }): Map<string, string[]>;
  importCycles(graph: Map<string, string[]>): string[][];
  importsBetween(graph: Map<string, string[]>, from: string, to: string): string[];
  longFunctions(maxLines?: number, dir?: string): LongFunction[];
}

const repoRoot = new URL('../../../', import.meta.url).pathname;
const script = new URL('scripts/check-imports.mjs', `file://${repoRoot}`).href;
const check = (await import(script)) as CheckImports;
const graph = check.importGraph('src');

test('layering: store, registry and credentials import nothing above them', () => {
  for (const [from, to] of [
    ['src/store', 'src/registry'],
    ['src/store', 'src/manager'],
    ['src/store', 'src/pull'],
    ['src/registry', 'src/config'],
    ['src/credentials', 'src/config'],
  ] as const) {
    assert.deepEqual(check.importsBetween(graph, from, to), [], `${from} must not import ${to}`);
  }
});

test('no file-level import cycle in src/node, no runtime import cycle in src', () => {
  const inNode = check.importCycles(graph).filter((c) => c.some((f) => f.startsWith('src/node/')));
  assert.deepEqual(inNode, []);
  assert.deepEqual(check.importCycles(check.importGraph('src', { runtimeOnly: true })), []);
});

test('faces construct no image service, image manager or image GC themselves', () => {
  const faces = ['src/cli', 'src/cri', 'src/node', 'src/admission'];
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
    });
  const hits = faces
    .flatMap((d) => walk(join(repoRoot, d)))
    .filter((f) => /new (LocalImageService|ImageManager|ImageGCManager)\b/.test(readFileSync(f, 'utf8')))
    .map((f) => f.slice(repoRoot.length));
  assert.deepEqual(hits, []);
});

// Known offenders being split; this list may only shrink.
const LONG_FUNCTIONS_BEING_SPLIT = ['src/containerd/pull.ts pullInner'];

test('no function in src is over 200 lines', () => {
  const long = check
    .longFunctions(200, 'src')
    .map((f) => `${f.file} ${f.name}`)
    .filter((f) => !LONG_FUNCTIONS_BEING_SPLIT.includes(f));
  assert.deepEqual(long, []);
});
