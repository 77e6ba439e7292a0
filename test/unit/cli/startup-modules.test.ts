/**
 * What the executable loads: the store commands (`images`, `pull`, `rmi`, `inspect` into kimg's store)
 * and the read-only runtime faces (`gc --dry-run`, `explain IMAGE`) start without gRPC, the protos,
 * prom-client or the Kubernetes client; they are loaded only when a command needs them (`--containerd`,
 * `kimg serve`, cluster mode). Checked with a preloaded script that lists, at exit, the packages of
 * node_modules the process required.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const BIN = new URL('../../../bin/kimg.js', import.meta.url).pathname;
const HEAVY = /[/\\]node_modules[/\\](@grpc[/\\]|protobufjs[/\\]|prom-client[/\\]|@kubernetes[/\\])/;

test('store commands and read-only runtime faces load no gRPC, prom-client or Kubernetes client', async () => {
  const dir = await makeTempDir('kimg-modules-');
  try {
    const report = join(dir, 'loaded.json');
    const preload = join(dir, 'preload.cjs');
    writeFileSync(
      preload,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify(Object.keys(require.cache))));\n`,
    );
    const root = join(dir, 'root');
    const heavyLoaded = (args: string[]): string[] => {
      rmSync(report, { force: true });
      const r = spawnSync(process.execPath, ['-r', preload, BIN, ...args, '--root', root], {
        encoding: 'utf8',
        env: { ...process.env, HOME: dir },
      });
      const loaded = JSON.parse(readFileSync(report, 'utf8')) as string[];
      assert.ok(loaded.length > 0, `kimg ${args.join(' ')} (exit ${r.status}): the preload reported`);
      return loaded.filter((f) => HEAVY.test(f));
    };
    for (const args of [
      ['images', '-o', 'json'],
      ['rmi', 'busybox'],
      ['inspect', 'busybox'],
      // Port 1 refuses at once: the pull fails after loading everything a pull loads.
      ['pull', '127.0.0.1:1/app:1', '--progress', 'none'],
      ['gc', '--dry-run'],
      ['explain', 'busybox', '-o', 'json'],
    ]) {
      assert.deepEqual(heavyLoaded(args), [], `kimg ${args.join(' ')}`);
    }
    // The check sees them when they are loaded: --containerd loads containerd's gRPC client.
    const withContainerd = heavyLoaded(['images', '--containerd', join(dir, 'no.sock')]);
    assert.ok(
      withContainerd.some((f) => /@grpc/.test(f)),
      'kimg images --containerd loads gRPC',
    );
  } finally {
    await removeTempDir(dir);
  }
});
