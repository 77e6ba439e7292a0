/**
 * Temporary directories for tests: created under os.tmpdir() with a `kimg-` prefix, removed by the
 * test (`removeTempDir` in after()) and, as a safety net, by a process exit hook for any a crashed or
 * careless test left behind.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { onProcessExit } from './proc.js';

const live = new Set<string>();
let hooked = false;

/**
 * Creates a fresh directory `<os.tmpdir()>/kimg-<prefix>XXXXXX` and returns its absolute path.
 * Short paths on purpose: unix socket paths inside it are limited to 108 bytes.
 */
export async function makeTempDir(prefix = ''): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `kimg-${prefix}`));
  live.add(resolve(dir));
  if (!hooked) {
    hooked = true;
    onProcessExit(() => {
      for (const d of live) rmSync(d, { recursive: true, force: true });
      live.clear();
    });
  }
  return dir;
}

/** Removes `dir` recursively (rm -rf); missing is fine. */
export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  live.delete(resolve(dir));
}
