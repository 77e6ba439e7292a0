/**
 * Process helpers for tests that start real components. Every process started here is recorded by
 * PID; tests stop them with `killProcess` (SIGKILL + wait for the exit, so no zombie remains), and a
 * process 'exit' hook (plus SIGINT/SIGTERM/SIGHUP handlers) SIGKILLs whatever is still running, so a
 * crashed test leaves nothing behind. Long-running children are started through
 * `setpriv --pdeathsig KILL` (util-linux), so the kernel kills them even when the test process itself
 * is SIGKILLed (e.g. by a runner timeout), a case no exit hook can cover.
 *
 * Children are unref'd: a test that forgets to stop one does not hang the runner; the hook kills it.
 * All fixture servers run out of process, so a client the test runs synchronously (spawnSync) can
 * still talk to them; prefer `runCommand` anyway, it tracks the PID and enforces a timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { requireBinary } from './components.js';

/** How a process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A process started by `spawnTracked`. */
export interface TrackedProcess {
  /** Short label used in messages (e.g. `registry(token)`). */
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves once the process has exited and been reaped. */
  readonly exited: Promise<ExitInfo>;
  /** The exit, once it happened. */
  exitInfo(): ExitInfo | undefined;
}

export interface SpawnTrackedOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** File that receives stdout (appended); default: discarded. */
  stdoutFile?: string;
  /** File that receives stderr (appended); default: discarded. */
  stderrFile?: string;
  /** Start through `setpriv --pdeathsig KILL` (default true). */
  killWithParent?: boolean;
}

const tracked = new Map<number, TrackedProcess>();
const exitCallbacks: Array<() => void> = [];
let hooksInstalled = false;

function killAllNow(): void {
  for (const p of tracked.values()) {
    if (p.exitInfo() === undefined) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

function runExitCallbacks(): void {
  killAllNow();
  for (const cb of exitCallbacks.splice(0)) {
    try {
      cb();
    } catch {
      /* best effort at exit */
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', runExitCallbacks);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      runExitCallbacks();
      process.removeListener(sig, handler);
      // Re-raise with the default disposition unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Registers a synchronous cleanup to run when the process exits (or is interrupted). */
export function onProcessExit(cb: () => void): void {
  installHooks();
  exitCallbacks.push(cb);
}

/** True while `pid` exists (a zombie counts as existing; tracked processes are reaped on exit). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** PIDs of tracked processes that have not exited yet. */
export function trackedPids(): number[] {
  return [...tracked.values()].filter((p) => p.exitInfo() === undefined).map((p) => p.pid);
}

/**
 * Starts a long-running process, records its PID, and returns at once (the caller waits for
 * readiness). stdin is /dev/null; stdout/stderr go to the given files (written by the child directly,
 * so a log is complete as soon as the child wrote it). Throws if the process could not be started.
 */
export function spawnTracked(
  name: string,
  command: string,
  args: readonly string[],
  opts: SpawnTrackedOptions = {},
): TrackedProcess {
  installHooks();
  const fds: number[] = [];
  const out = opts.stdoutFile !== undefined ? openSync(opts.stdoutFile, 'a') : 'ignore';
  if (typeof out === 'number') fds.push(out);
  const err = opts.stderrFile !== undefined ? openSync(opts.stderrFile, 'a') : 'ignore';
  if (typeof err === 'number') fds.push(err);
  let cmd = command;
  let argv = [...args];
  if (opts.killWithParent !== false) {
    argv = ['--pdeathsig', 'KILL', '--', command, ...args];
    cmd = requireBinary('setpriv');
  }
  let child: ChildProcess;
  try {
    child = spawn(cmd, argv, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', out, err] });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(`could not start ${name} (${command}): spawn returned no PID`);
  }
  let info: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      info = { code, signal };
      resolve(info);
    });
    child.once('error', () => {
      if (info === undefined) {
        info = { code: null, signal: null };
        resolve(info);
      }
    });
  });
  child.unref();
  const p: TrackedProcess = { name, pid, child, exited, exitInfo: () => info };
  tracked.set(pid, p);
  return p;
}

/**
 * SIGKILLs a tracked process by PID and waits until it has exited and been reaped. Idempotent; a
 * process that already exited is fine.
 */
export async function killProcess(p: TrackedProcess): Promise<ExitInfo> {
  if (p.exitInfo() === undefined) {
    p.child.ref(); // an unref'd child would not keep the event loop alive until its exit is reaped
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone; 'exit' follows */
    }
  }
  const info = await p.exited;
  tracked.delete(p.pid);
  return info;
}

/** Result of `runCommand`. */
export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunCommandOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. */
  input?: string | Buffer;
  /** SIGKILL after this long (default 120 s) and reject. */
  timeoutMs?: number;
  /** Resolve with the result instead of rejecting when the exit status is not 0. */
  allowFailure?: boolean;
  /** Strings replaced by `<redacted>` in error messages (passwords passed as arguments). */
  secrets?: readonly string[];
}

function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s !== '') out = out.split(s).join('<redacted>');
  return out;
}

/**
 * Runs a short-lived command to completion (asynchronously: never blocks the event loop, so servers
 * in this process keep answering). Its PID is tracked while it runs. Rejects with an `Error` holding
 * the command line and stderr (secrets redacted) on a non-zero exit unless `allowFailure`.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  opts: RunCommandOptions = {},
): Promise<CommandResult> {
  installHooks();
  const secrets = opts.secrets ?? [];
  const shown = redact([command, ...args].join(' '), secrets);
  return new Promise<CommandResult>((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    let info: ExitInfo | undefined;
    const exited = new Promise<ExitInfo>((res) =>
      child.once('close', (code, signal) => res({ code, signal })),
    );
    if (child.pid !== undefined) {
      tracked.set(child.pid, {
        name: command,
        pid: child.pid,
        child,
        exited,
        exitInfo: () => info,
      });
    }
    child.once('error', (e) => {
      clearTimeout(timer);
      if (child.pid !== undefined) tracked.delete(child.pid);
      reject(new Error(`could not run ${shown}: ${e.message}`));
    });
    child.stdin.on('error', () => {
      /* the command may exit without reading its input */
    });
    child.stdin.end(opts.input ?? '');
    void exited.then(({ code, signal }) => {
      info = { code, signal };
      clearTimeout(timer);
      if (child.pid !== undefined) tracked.delete(child.pid);
      const result: CommandResult = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code,
        signal,
      };
      if (timedOut) {
        reject(new Error(`timed out after ${opts.timeoutMs ?? 120_000} ms: ${shown}`));
      } else if (code !== 0 && opts.allowFailure !== true) {
        reject(
          new Error(
            `command failed (exit ${code ?? signal}): ${shown}\n${redact(result.stderr.trim(), secrets).slice(-4000)}`,
          ),
        );
      } else {
        resolve(result);
      }
    });
  });
}

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined; rejects after
 * `timeoutMs` or as soon as `watch` (if given) has exited, with `describe()` appended to the message.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  opts: {
    timeoutMs?: number;
    intervalMs?: number;
    watch?: TrackedProcess;
    describe?: () => Promise<string>;
  } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const interval = opts.intervalMs ?? 5;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    const exit = opts.watch?.exitInfo();
    if (exit !== undefined || Date.now() > deadline) {
      const why =
        exit !== undefined
          ? `${opts.watch?.name ?? 'process'} exited (code ${exit.code}, signal ${exit.signal})`
          : `timed out after ${opts.timeoutMs ?? 10_000} ms`;
      const more = opts.describe ? `\n${await opts.describe()}` : '';
      throw new Error(`waiting for ${what}: ${why}${more}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
