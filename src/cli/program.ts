import type { Command } from 'commander';
import { KimgError } from '../errors/index.js';
import { COMMANDS } from './commands/index.js';
import type { CliContext } from './context.js';
import { buildProgramWith, runCliWith } from './run.js';

/** Builds the root `kimg` program with every command registered. */
export function buildProgram(ctx: CliContext): Command {
  return buildProgramWith(ctx, COMMANDS);
}

/**
 * Runs the CLI on `argv` (process.argv form) and returns the exit status. Never throws: every failure is
 * printed as `error: <message> (<CODE>)` on stderr and mapped to its documented exit status.
 */
export function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  return runCliWith(argv, ctx, COMMANDS);
}

export { KimgError };
