/**
 * Start-up without the whole CLI: `kimg` loads only the module of the command it runs.
 *
 * Every command module imports the library parts it needs, and some of those are heavy (gRPC and its
 * protobuf loader for `cri`/`serve`, prom-client for `node`, YAML for `-o yaml`); loading all of them
 * for `kimg --version` cost four times Node's own start-up. The build writes `commands.json` next to
 * this file (scripts/build-cli.mjs): for each top-level command its name, its root-help term and
 * description, and the module and function that register it. The executable registers the command
 * named on the command line for real and a stub for every other one, so `kimg --help`, "did you mean"
 * suggestions and `kimg help CMD` behave exactly as with every command loaded (a unit test compares the
 * two programs' help). Without `commands.json` (a plain `tsc` build) it loads every command.
 */
import { readFileSync } from 'node:fs';
import type { RegisterCommand } from './commands/index.js';
import { GLOBAL_OPTIONS, STUB_TERMS } from './run.js';

/** One top-level command as recorded by the build. */
export interface CommandEntry {
  /** `pull` */
  name: string;
  /** The root help's term for it: `pull [options] <image...>`. */
  term: string;
  /** The root help's description. */
  description: string;
  /** Its module under `commands/`, without extension: `pull`. */
  module: string;
  /** The module's exported register function: `registerPull`. */
  register: string;
}

/** The file name of the command index, next to this module (and next to the bundled executable). */
export const COMMAND_INDEX_FILE = 'commands.json';

/** The command index written by the build, or `undefined` when this build has none. */
export function readCommandIndex(): CommandEntry[] | undefined {
  try {
    return JSON.parse(
      readFileSync(new URL(`./${COMMAND_INDEX_FILE}`, import.meta.url), 'utf8'),
    ) as CommandEntry[];
  } catch {
    return undefined;
  }
}

const GLOBAL_WITH_VALUE = new Set(Object.values(GLOBAL_OPTIONS).map(([flags]) => flags.split(' ')[0]!));

/**
 * The top-level command `args` (process.argv without node and script) runs: the first operand after the
 * global options; for `help CMD`, CMD. `undefined` for `kimg`, `kimg --help`, `kimg --version`.
 */
export function commandNamed(args: readonly string[]): string | undefined {
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return undefined;
    if (GLOBAL_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    if (a === 'help' && !help) {
      help = true;
      continue;
    }
    return a;
  }
  return undefined;
}

/** A stand-in for a command that is not loaded: its name, description and root-help term. */
function stub(entry: CommandEntry): RegisterCommand {
  return (program) => {
    const cmd = program.command(entry.name).description(entry.description);
    STUB_TERMS.set(cmd, entry.term);
  };
}

/**
 * The commands to register for `args`: the named command's real register function (its module loaded
 * by `load`) and stubs for the rest, in the index's (help) order.
 */
export async function commandsFor(
  args: readonly string[],
  index: readonly CommandEntry[],
  load: (module: string) => Promise<Record<string, unknown>>,
): Promise<RegisterCommand[]> {
  const name = commandNamed(args);
  const out: RegisterCommand[] = [];
  for (const entry of index) {
    if (entry.name !== name) {
      out.push(stub(entry));
      continue;
    }
    const register = (await load(entry.module))[entry.register];
    if (typeof register !== 'function') {
      throw new Error(`commands/${entry.module} has no ${entry.register}: rebuild kimg (npm run build)`);
    }
    out.push(register as RegisterCommand);
  }
  return out;
}
