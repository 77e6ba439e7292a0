#!/usr/bin/env node
/**
 * The `kimg` executable: a thin face over the library (see src/cli/program.ts).
 *
 * It loads only the module of the command it runs (lazy.ts): start-up stays near Node's own for quick
 * commands, and `kimg pull`, the hot path with a peak-RSS budget, does not keep every other command's
 * modules in memory. `npm run build` also bundles this file into dist/bin/kimg.js (the package's `bin`),
 * one chunk per command, which saves resolving and reading hundreds of files on every call.
 */
import type { CliContext } from './context.js';
import { kimgVersion } from './version.js';

/**
 * A reader that goes away (`kimg --help | head -1`, `kimg images | less` quit early) turns the next write
 * into EPIPE, which Node raises as an unhandled 'error' event with a stack trace. C and Go programs die
 * quietly of SIGPIPE there; kimg ends the same way, with the status a shell reports for that signal
 * (128 + 13). A pull cut short this way leaves the store as a kill would: consistent, its ingest resumable.
 */
const SIGPIPE_STATUS = 141;
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(SIGPIPE_STATUS);
    throw e;
  });
}

const ctx: CliContext = {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  exitStatus: 0,
};

async function main(argv: readonly string[]): Promise<number> {
  // `kimg --version` prints what the full program would, without loading the argument parser at all.
  const args = argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
    ctx.stdout.write(`${kimgVersion()}\n`);
    return 0;
  }
  const [{ commandNamed, commandsFor, readCommandIndex }, { runCliWith }] = await Promise.all([
    import('./lazy.js'),
    import('./run.js'),
  ]);
  const index = readCommandIndex();
  const named = commandNamed(args);
  // No index (a plain tsc build), or a command it does not know (a typo, or an index older than the
  // build): the full program, which knows every command and suggests the nearest.
  if (index === undefined || (named !== undefined && !index.some((e) => e.name === named))) {
    const { runCli } = await import('./program.js');
    return runCli(argv, ctx);
  }
  // A template literal the bundler expands to every module under commands/ (one chunk each).
  const commands = await commandsFor(
    args,
    index,
    (module) => import(`./commands/${module}.js`) as Promise<Record<string, unknown>>,
  );
  return runCliWith(argv, ctx, commands);
}

process.exitCode = await main(process.argv);
