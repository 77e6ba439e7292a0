import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { registerRef } from './ref.js';

/** A command module registers its subcommand(s) on the root program. */
export type RegisterCommand = (program: Command, ctx: CliContext) => void;

/** Every command of the CLI, in `--help` order. Add one line per command module. */
export const COMMANDS: RegisterCommand[] = [registerRef];
