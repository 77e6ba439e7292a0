import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAIN = new URL('../../../src/cli/main.js', import.meta.url).pathname;
const PKG = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function kimg(...args: string[]) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
}

test('kimg --version prints the package version', () => {
  const r = kimg('--version');
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), PKG.version);
});

test('kimg --help lists commands and the exit statuses', () => {
  const r = kimg('--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Usage: kimg/);
  assert.match(r.stdout, /Exit status:/);
  assert.match(r.stdout, /130 {2}interrupted/);
});

test('an unknown command is a usage error with status 2 and no stack trace', () => {
  const r = kimg('no-such-command');
  assert.equal(r.status, 2);
  assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
});

test('docs/cli.md is generated from the current --help of every command', () => {
  const script = new URL('../../../../scripts/gen-cli-docs.mjs', import.meta.url).pathname;
  const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
