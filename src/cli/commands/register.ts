import type { Command } from 'commander';
import type { CliContext } from '../context.js';

/**
 * A command module registers its subcommand(s) on the root program. In its own file so the command
 * modules and the list of them (`index.ts`) do not import each other.
 */
export type RegisterCommand = (program: Command, ctx: CliContext) => void;
