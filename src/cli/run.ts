/**
 * The CLI's root program and error handling for a given list of commands. `program.ts` runs it with
 * every command; `main.ts` runs it with the command named on the command line and a stub for every
 * other one (see lazy.ts), so a call loads only its own command's modules.
 *
 * Global options sit before the command, where podman (`--root`), ctr (`--address`) and crictl
 * (`--runtime-endpoint`) put theirs: `kimg --root DIR pull IMAGE`. Each is copied down to the command
 * that runs when that command declares the same option and was not given it itself, so the
 * per-command form (`kimg pull --root DIR IMAGE`) keeps working and wins when both are given.
 */
import { Command, CommanderError, Help } from 'commander';
import { isKimgError, toKimgError } from '../errors/index.js';
import type { RegisterCommand } from './commands/index.js';
import type { CliContext } from './context.js';
import { EXIT_STATUS_BY_CODE, EXIT_STATUS_MEANING, ExitStatus } from './exit-codes.js';
import { kimgVersion } from './version.js';
import { escapeTerminal, escapeTerminalBlock } from '../gotext/index.js';

/** The global options: attribute name → flags and help. Commands declare the same flags to receive them. */
export const GLOBAL_OPTIONS = {
  root: [
    '--root <dir>',
    'store root directory for every command that uses the local store (env KIMG_ROOT; default /var/lib/kimg as root, $XDG_DATA_HOME/kimg otherwise)',
  ],
  config: ['--config <file>', 'KubeletConfiguration file for every command that reads one'],
} as const satisfies Record<string, readonly [string, string]>;

/**
 * Root-help terms of stub commands (lazy.ts): a stub stands in for a command whose module is not loaded
 * and shows the term the real command would (`pull [options] <image...>`).
 */
export const STUB_TERMS = new WeakMap<Command, string>();

/** Copies the global option values into `sub` (and, through the same hook, into its subcommands). */
function propagateGlobals(program: Command, cmd: Command): void {
  cmd.hook('preSubcommand', (_parent, sub) => {
    for (const name of Object.keys(GLOBAL_OPTIONS)) {
      const value: unknown = program.getOptionValue(name);
      if (value === undefined) continue;
      const declared = sub.options.some((o) => o.attributeName() === name);
      if (declared && sub.getOptionValueSource(name) !== 'cli') {
        sub.setOptionValueWithSource(name, value, 'cli');
      }
    }
    propagateGlobals(program, sub);
  });
}

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
    .exitOverride()
    .configureHelp({
      subcommandTerm(cmd: Command): string {
        return STUB_TERMS.get(cmd) ?? Help.prototype.subcommandTerm.call(this, cmd);
      },
    });
  for (const [flags, help] of Object.values(GLOBAL_OPTIONS)) program.option(flags, help);
  program.addHelpText(
    'after',
    '\nExit status:\n' +
      Object.entries(EXIT_STATUS_MEANING)
        .map(([k, v]) => `  ${k.padStart(3)}  ${v}`)
        .join('\n') +
      '\n\nError codes and their exit statuses: docs/errors.md',
  );
  for (const register of commands) register(program, ctx);
  // After registering, so the commands keep parsing their own options anywhere on their command line;
  // the root's options are taken only before the command name.
  program.enablePositionalOptions();
  propagateGlobals(program, program);
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
