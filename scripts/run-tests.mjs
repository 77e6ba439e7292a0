#!/usr/bin/env node
// Runs the compiled test suite with Node's test runner. Node 20 takes no globs, so this finds the
// files: `node scripts/run-tests.mjs [unit|integration|PATH-SUBSTRING...]`.
// Concurrency 2: test files that start registries are I/O bound; the machine has 2 cores.
// Before running anything but unit tests it checks the system components of scripts/components.txt, so a
// fresh machine gets one message naming what is missing and the one command that installs it instead of
// dozens of failed and cancelled tests.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { missingComponents } from './lib/components.mjs';

const root = new URL('../dist/test/', import.meta.url).pathname;
function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = walk(root)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files matched ${JSON.stringify(filters)} under ${root}`);
  process.exit(1);
}
if (files.some((f) => !f.includes('/unit/'))) {
  const { missing, install } = missingComponents();
  if (missing.length > 0) {
    console.error(
      `npm test needs system components that are missing: ${missing
        .map((c) => `${c.component} (Debian package ${c.pkg})`)
        .join(
          ', ',
        )}.\nInstall them with:\n  ${install}\nor run the README's first command, which installs every component: bash scripts/demo.sh`,
    );
    process.exit(1);
  }
}
const concurrency = process.env.KIMG_TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  ['--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
