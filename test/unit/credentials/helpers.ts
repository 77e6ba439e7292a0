/**
 * Shared helpers of the credentials tests: an in-memory CLI runner, docker config builders, plugin
 * scripts written to temp dirs, and a fake clock.
 */
import { FakeClock as SharedFakeClock } from '../../helpers/clock.js';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CliContext } from '../../../src/cli/context.js';
import { runCli } from '../../../src/cli/program.js';
import { Sink } from '../../helpers/output.js';

/** Runs `kimg ARGS` in-process with the given environment. */
export async function kimg(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ status: number; stdout: string; stderr: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const ctx: CliContext = { stdout, stderr, env, exitStatus: 0 };
  const status = await runCli(['node', 'kimg', ...args], ctx);
  return { status, stdout: stdout.text, stderr: stderr.text };
}

/** base64(`user:pass`), as docker writes the `auth` field. */
export function authField(user: string, pass: string): string {
  return Buffer.from(`${user}:${pass}`, 'utf8').toString('base64');
}

/** A config.json text with the given keys, each `{"auth": base64(user:pass)}`. */
export function configJson(entries: Record<string, [string, string]>): string {
  return JSON.stringify({
    auths: Object.fromEntries(Object.entries(entries).map(([k, [u, p]]) => [k, { auth: authField(u, p) }])),
  });
}

/** Writes an executable `sh` script and returns its path. */
export async function writeScript(dir: string, name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** The shared fake clock, starting at 1,000,000 ms unless told otherwise. */
export class FakeClock extends SharedFakeClock {
  constructor(startMs = 1_000_000) {
    super(startMs);
  }
}
