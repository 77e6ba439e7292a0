/**
 * The README's main-job command must work: runs scripts/demo.mjs (what scripts/demo.sh execs after
 * installing and building) end to end against a real registry and checks that every step behaved.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

test('the demo (README quick start) runs end to end', () => {
  const script = new URL('../../../scripts/demo.mjs', import.meta.url).pathname;
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stdout.slice(-3000) + r.stderr.slice(-2000));
  assert.match(r.stdout, /demo: every step behaved as expected/);
  const all = r.stdout + r.stderr; // kimg's errors reach the demo's stderr
  assert.match(all, /UNAUTHORIZED/);
  assert.match(all, /NOT_FOUND/);
  assert.match(all, /no problems/);
  // the password of the demo registry never shows
  assert.doesNotMatch(r.stdout + r.stderr, /kimgpass/);
});
