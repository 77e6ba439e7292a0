#!/usr/bin/env node
// Architecture facts of src/, read with the TypeScript compiler API (no build needed):
// - the file-level import graph (static imports, `export ... from`, dynamic `import()` of a literal),
//   its cycles (strongly connected components of more than one file, or a file importing itself), and
//   the imports from one `src/<module>` into another;
// - functions (declarations, methods, accessors, constructors, function expressions, arrows) whose
//   body spans more than a limit of lines.
// `node scripts/check-imports.mjs [--max-lines N]` prints them; test/unit/architecture.test.ts asserts
// the layering rules with the same functions.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const repoRoot = resolve(new URL('..', import.meta.url).pathname);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function rel(p) {
  return relative(repoRoot, p).split(sep).join('/');
}

/** `src/<module>` of a repository-relative path (`src` itself for files directly in it). */
export function moduleOf(file) {
  const parts = file.split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0];
}

function parse(file) {
  return ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
}

/** Whether an import/export declaration brings in types only (erased from the emitted JavaScript). */
function typeOnly(node) {
  if (ts.isExportDeclaration(node)) {
    if (node.isTypeOnly) return true;
    const c = node.exportClause;
    return !!c && ts.isNamedExports(c) && c.elements.length > 0 && c.elements.every((e) => e.isTypeOnly);
  }
  const clause = node.importClause;
  if (!clause) return false;
  if (clause.isTypeOnly) return true;
  const b = clause.namedBindings;
  return (
    !clause.name &&
    !!b &&
    ts.isNamedImports(b) &&
    b.elements.length > 0 &&
    b.elements.every((e) => e.isTypeOnly)
  );
}

function importSpecifiers(sf, runtimeOnly) {
  const out = [];
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      if (ts.isStringLiteral(node.moduleSpecifier) && !(runtimeOnly && typeOnly(node))) {
        out.push(node.moduleSpecifier.text);
      }
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      out.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/**
 * The import graph of `dir` (default `src`): repository-relative file → files it imports. With
 * `runtimeOnly`, `import type` / `export type` edges are left out (what Node actually loads).
 */
export function importGraph(dir = 'src', { runtimeOnly = false } = {}) {
  const graph = new Map();
  for (const abs of walk(join(repoRoot, dir))) {
    const targets = new Set();
    for (const spec of importSpecifiers(parse(abs), runtimeOnly)) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(abs), spec.replace(/\.js$/, '.ts'));
      targets.add(rel(target));
    }
    graph.set(rel(abs), [...targets].sort());
  }
  return graph;
}

/** Cycles of the graph: its strongly connected components with more than one file, or a self-import. */
export function importCycles(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const out = [];
  const strong = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) strong(v);
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

/** Imports of files in module `from` (e.g. `src/store`) of files in module `to`: `file -> target`. */
export function importsBetween(graph, from, to) {
  const out = [];
  for (const [file, targets] of graph) {
    if (moduleOf(file) !== from) continue;
    for (const t of targets) if (moduleOf(t) === to) out.push(`${file} -> ${t}`);
  }
  return out.sort();
}

function functionName(node, sf) {
  if (node.name) return node.name.getText(sf);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const p = node.parent;
  if (p && (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p))) {
    return p.name.getText(sf);
  }
  return '<anonymous>';
}

/** Functions in `dir` whose body spans more than `maxLines` lines: `{ file, name, line, lines }`. */
export function longFunctions(maxLines = 200, dir = 'src') {
  const out = [];
  for (const abs of walk(join(repoRoot, dir))) {
    const sf = parse(abs);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && node.body) {
        const start = sf.getLineAndCharacterOfPosition(node.body.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(node.body.getEnd()).line;
        const lines = end - start + 1;
        if (lines > maxLines) {
          out.push({ file: rel(abs), name: functionName(node, sf), line: start + 1, lines });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out.sort((a, b) => b.lines - a.lines);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const i = process.argv.indexOf('--max-lines');
  const maxLines = i > 0 ? Number(process.argv[i + 1]) : 200;
  const graph = importGraph();
  const rules = [
    ['src/store', 'src/registry'],
    ['src/store', 'src/manager'],
    ['src/store', 'src/pull'],
    ['src/registry', 'src/config'],
    ['src/credentials', 'src/config'],
  ];
  for (const [from, to] of rules) {
    const hits = importsBetween(graph, from, to);
    console.log(`${from} imports ${to}: ${hits.length === 0 ? 'no' : `yes\n  ${hits.join('\n  ')}`}`);
  }
  const cycles = importCycles(graph);
  console.log(`file-level import cycles in src (type-only imports included): ${cycles.length}`);
  for (const c of cycles) console.log(`  ${c.join(' <-> ')}`);
  const runtime = importCycles(importGraph('src', { runtimeOnly: true }));
  console.log(`runtime import cycles in src (type-only imports left out): ${runtime.length}`);
  for (const c of runtime) console.log(`  ${c.join(' <-> ')}`);
  const long = longFunctions(maxLines);
  console.log(`functions over ${maxLines} lines in src: ${long.length}`);
  for (const f of long) console.log(`  ${f.file}:${f.line} ${f.name} (${f.lines} lines)`);
}
