import type { Readable, Writable } from 'node:stream';

/** What a command needs from its process: streams and environment, injectable for tests. */
export interface CliContext {
  /** Standard input (for `-` arguments); defaults to process.stdin when absent. */
  stdin?: Readable;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** Set by a command to the exit status it wants when it returns normally (e.g. some inputs invalid). */
  exitStatus: number;
}
