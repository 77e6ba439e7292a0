#!/usr/bin/env node
/** The `kimg` executable: a thin face over the library (see src/cli/program.ts). */
import { runCli } from './program.js';

const status = await runCli(process.argv, {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  exitStatus: 0,
});
process.exitCode = status;
