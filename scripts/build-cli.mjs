#!/usr/bin/env node
// The second half of `npm run build`, after tsc:
//  1. dist/src/cli/commands.json — the command index the executable uses to load only the command it
//     runs (src/cli/lazy.ts): for each top-level command of the full program, its root-help term and
//     description and the commands/ module and function that register it.
//  2. dist/bin/kimg.js — the `kimg` executable bundled by esbuild from tsc's output: kimg's own code,
//     commander, yaml, smol-toml and fzstd in one entry file plus one chunk per command module, so a call
//     reads a handful of files instead of hundreds. Packages that load files relative to themselves or
//     are large and used by few commands (gRPC, protobuf, prom-client, the Kubernetes client) stay
//     ordinary imports from node_modules. The worker threads' scripts (the hash worker, local apply's
//     extraction thread) are further entries at the path their modules expect relative to the chunk.
import {
  readdirSync,
  readFileSync,
  writeFileSync,
  mkdirSync,
  rmSync,
  copyFileSync,
  chmodSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { Command } from 'commander';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const cliDir = join(dist, 'src/cli');
const binDir = join(dist, 'bin');

// 1. The command index.
const ctx = { stdout: process.stdout, stderr: process.stderr, env: {}, exitStatus: 0 };
const { buildProgram } = await import(pathToFileURL(join(cliDir, 'program.js')).href);
const full = buildProgram(ctx);
const help = full.createHelp();
const owner = new Map(); // top-level command name → { module, register }
for (const file of readdirSync(join(cliDir, 'commands')).sort()) {
  if (!file.endsWith('.js') || file === 'index.js') continue;
  const mod = await import(pathToFileURL(join(cliDir, 'commands', file)).href);
  for (const [exp, fn] of Object.entries(mod)) {
    if (!exp.startsWith('register') || typeof fn !== 'function') continue;
    const probe = new Command('kimg');
    fn(probe, ctx);
    for (const c of probe.commands) owner.set(c.name(), { module: file.slice(0, -3), register: exp });
  }
}
const index = full.commands.map((c) => {
  const o = owner.get(c.name());
  if (!o) throw new Error(`no module under src/cli/commands registers "${c.name()}"`);
  return { name: c.name(), term: help.subcommandTerm(c), description: help.subcommandDescription(c), ...o };
});
const json = JSON.stringify(index, null, 1) + '\n';
writeFileSync(join(cliDir, 'commands.json'), json);

// 2. The bundle.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const bundled = new Set(['commander', 'yaml', 'smol-toml', 'fzstd']);
const external = Object.keys(pkg.dependencies ?? {}).filter((d) => !bundled.has(d));
const workers = readdirSync(join(dist, 'src'), { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('internal/hash-worker.js') || f.endsWith('internal/extract-worker.js'));
rmSync(binDir, { recursive: true, force: true });
mkdirSync(binDir, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: [
    { in: join(cliDir, 'main.js'), out: 'kimg' },
    ...workers.map((f) => ({ in: join(dist, 'src', f), out: `internal/${f.split('/').pop().slice(0, -3)}` })),
  ],
  outdir: binDir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: [...external, ...external.map((d) => `${d}/*`)],
  chunkNames: '[name]-[hash]',
  // commander and yaml are CommonJS: give their require() of Node built-ins a real require.
  banner: {
    js: "import { createRequire as __kimgCreateRequire } from 'node:module'; const require = __kimgCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
  legalComments: 'none',
  // Less to scan at every start-up; identifiers keep their names (error and class names show in output).
  minifyWhitespace: true,
  minifySyntax: true,
});
copyFileSync(join(cliDir, 'commands.json'), join(binDir, 'commands.json'));

// The interpreter line: node with a 2 MiB young generation (`--max-semi-space-size`, MiB). V8 grows it to
// 16 MiB per semi-space by default, which a long-running `kimg serve` or `kimg node` reaches under pulls
// and keeps: measured with `node dist/bench/containerd.js`, peak RSS of `kimg serve --containerd` 98-110
// MiB without it, 88 MiB with it, pull times unchanged (blob bytes live outside the JS heap; `kimg pull`
// of 1 GiB took the same time either way). A flag on a `#!/usr/bin/env` line needs `env -S`, which
// busybox lacks, so the file starts as a shell script that execs node on itself; for JavaScript the
// second line is a string and a comment. Only the long-running commands (`serve`, `node`) get the flag:
// a short command's start-up pays for the small young generation in scavenges (`kimg --help` 143 → 159
// ms, `kimg images` 193 → 214 ms with hyperfine, against 107 ms for `node -e 0`) and never grows one.
const binFile = join(binDir, 'kimg.js');
const bundle = readFileSync(binFile, 'utf8').replace(/^#![^\n]*\n/, '');
const launcher =
  `':' //; case " $* " in *" serve "* | *" node "*) exec node --max-semi-space-size=2 "$0" "$@" ;; esac; ` +
  `exec node "$0" "$@"`;
writeFileSync(binFile, `#!/bin/sh\n${launcher}\n${bundle}`);
chmodSync(binFile, 0o755);
console.log(`kimg: ${index.length} commands indexed; bundle in ${relative(root, binDir)}/kimg.js`);
