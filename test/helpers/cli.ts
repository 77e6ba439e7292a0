/**
 * Running kimg's CLI in the test process, as `kimg ARGS` with an empty environment: its exit status and
 * what it wrote. (Tests of the installed executable spawn `dist/bin/kimg.js` instead.)
 */
import type { CliContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/program.js';
import { Sink } from './output.js';

/** What a `kimg` run printed, and its exit status. */
export interface KimgRun {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `kimg ...args` in-process. */
export async function kimgInProcess(...args: string[]): Promise<KimgRun> {
  const stdout = new Sink();
  const stderr = new Sink();
  const ctx: CliContext = { stdout, stderr, env: {}, exitStatus: 0 };
  const status = await runCli(['node', 'kimg', ...args], ctx);
  return { status, stdout: stdout.text, stderr: stderr.text };
}
