/**
 * The CLI's root program and error handling for a given list of commands. `program.ts` runs it with
 * every command; `main.ts` runs it with only the command named on the command line when that is a
 * hot path (`pull`), so a pull does not load (and keep in memory) every other command's modules.
 */
import { Command, CommanderError } from 'commander';
import { isKimgError, toKimgError } from '../errors/index.js';
import type { RegisterCommand } from './commands/index.js';
import type { CliContext } from './context.js';
import { EXIT_STATUS_BY_CODE, EXIT_STATUS_MEANING, ExitStatus } from './exit-codes.js';
import { kimgVersion } from './version.js';
import { escapeTerminal, escapeTerminalBlock } from '../gotext/index.js';

/** Builds the root `kimg` program with `commands` registered. */
export function buildProgramWith(ctx: CliContext, commands: readonly RegisterCommand[]): Command {
  const program = new Command('kimg')
    .description(
      'kimg: the Kubernetes node image subsystem. Image names, pull policies, credentials, registry pulls into an OCI store, image GC, a CRI ImageService and a node agent.',
    )
    .version(kimgVersion(), '-v, --version', 'print the kimg version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      // Commander quotes the offending argument: escaped, as every other error line.
      writeErr: (s) => ctx.stderr.write(escapeTerminalBlock(s)),
    })
    .exitOverride();
  program.addHelpText(
    'after',
    '\nExit status:\n' +
      Object.entries(EXIT_STATUS_MEANING)
        .map(([k, v]) => `  ${k.padStart(3)}  ${v}`)
        .join('\n') +
      '\n\nError codes and their exit statuses: docs/errors.md',
  );
  for (const register of commands) register(program, ctx);
  return program;
}

/**
 * Runs the CLI on `argv` (process.argv form) and returns the exit status. Never throws: every failure is
 * printed as `error: <message> (<CODE>)` on stderr and mapped to its documented exit status.
 */
export async function runCliWith(
  argv: readonly string[],
  ctx: CliContext,
  commands: readonly RegisterCommand[],
): Promise<number> {
  const program = buildProgramWith(ctx, commands);
  try {
    await program.parseAsync([...argv]);
    return ctx.exitStatus;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      if (e.exitCode === 0) return ExitStatus.OK;
      return EXIT_STATUS_BY_CODE.USAGE;
    }
    const err = isKimgError(e) ? e : toKimgError(e);
    ctx.stderr.write(`error: ${escapeTerminal(err.message)} (${err.code})\n`);
    if (err.code === 'INTERNAL' && ctx.env.KIMG_DEBUG && e instanceof Error && e.stack) {
      ctx.stderr.write(e.stack + '\n');
    }
    return EXIT_STATUS_BY_CODE[err.code] ?? ExitStatus.FAILURE;
  }
}
