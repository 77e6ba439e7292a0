#!/usr/bin/env node
/**
 * The `kimg` executable: a thin face over the library (see src/cli/program.ts).
 *
 * `kimg pull` is the hot path (peak RSS ≤ 96 MiB, flat in the image size; docs/design/performance.md): it loads only the
 * pull command's modules, not every command's (the whole CLI costs ~10 MiB more resident memory before
 * the first byte is fetched). Everything else goes through the full program.
 */
import type { CliContext } from './context.js';

const ctx: CliContext = {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  exitStatus: 0,
};

async function main(argv: readonly string[]): Promise<number> {
  if (argv[2] === 'pull') {
    const [{ runCliWith }, { registerPull }] = await Promise.all([
      import('./run.js'),
      import('./commands/pull.js'),
    ]);
    return runCliWith(argv, ctx, [registerPull]);
  }
  if (argv[2] === 'unpack') {
    // The same for `kimg unpack` (peak RSS ≤ 96 MiB for a 1 GiB image, docs/design/unpack.md).
    const [{ runCliWith }, { registerUnpack }] = await Promise.all([
      import('./run.js'),
      import('./commands/unpack.js'),
    ]);
    return runCliWith(argv, ctx, [registerUnpack]);
  }
  const { runCli } = await import('./program.js');
  return runCli(argv, ctx);
}

process.exitCode = await main(process.argv);
