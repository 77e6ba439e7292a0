/**
 * The README's main-job command must work: runs scripts/demo.mjs --ci (what scripts/demo.sh execs
 * after installing and building) end to end — two real registries, a node configuration, four static
 * pods, `kimg node` — and checks that the pods settled as the demo says (public and private images
 * ready, the typo ErrImagePull then ImagePullBackOff, Never with an absent image ErrImageNeverPull),
 * that get/describe/explain ran, and that the registry password never shows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

test('the demo (README quick start) runs end to end with --ci', async () => {
  const script = new URL('../../../scripts/demo.mjs', import.meta.url).pathname;
  const child = spawn(process.execPath, [script, '--ci'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 170_000);
  const status = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  clearTimeout(timer);
  assert.equal(status, 0, stdout.slice(-4000) + stderr.slice(-2000));
  assert.match(stdout, /demo: every step behaved as expected/);
  assert.match(stdout, /typo\s+.*ErrImagePull → ImagePullBackOff/);
  assert.match(stdout, /never\s+.*ErrImageNeverPull/);
  assert.match(stdout, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/m);
  assert.match(stdout, /^public-demo-node\s+1\/1\s+ImagesReady/m);
  assert.match(stdout, /^private-demo-node\s+1\/1\s+ImagesReady/m);
  assert.match(stdout, /status page\s+http:\/\/127\.0\.0\.1:\d+\//);
  // the password of the demo registry never shows
  assert.doesNotMatch(stdout + stderr, /kimgpass/);
});
