/**
 * Timing one command the way the bench needs it: wall time (measured here with hrtime around the
 * whole child), and the child's own peak RSS and CPU time from the kernel's rusage of that child.
 *
 * Node has no per-child getrusage (RUSAGE_CHILDREN covers every child ever reaped), so the command
 * runs under GNU time (`/usr/bin/time -f '%e %M %U %S' -o FILE`, Debian package `time`, 1.9: `%M` is
 * the maximum resident set size in KiB; 1.7 reported 4x too much). Without it, a three-line python3
 * wrapper reads `resource.getrusage(RUSAGE_CHILDREN)` after waiting for its only child, which is the
 * same number. Both were checked against a Node process allocating 200 MB (235,908 KiB both ways).
 *
 * A daemon that does the work for its client (containerd for `ctr`) is measured from /proc: CPU from
 * `/proc/PID/stat` before/after, peak RSS from `VmHWM` after resetting it with `echo 5 >
 * /proc/PID/clear_refs` (Linux ≥ 4.0; the bench owns the daemon it started).
 */
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { requireBinary } from '../../test/helpers/components.js';
import { runCommand, type CommandResult } from '../../test/helpers/proc.js';

/** One timed execution of a command. */
export interface RunSample {
  /** Wall seconds, measured around the child process. */
  wallS: number;
  /** Peak RSS of the child in KiB (0 when the wrapper could not tell). */
  maxRssKiB: number;
  userS: number;
  sysS: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

export type RusageWrapper = { kind: 'gnu-time'; path: string } | { kind: 'python3'; path: string };

const PY_WRAPPER = [
  'import resource, subprocess, sys',
  'rc = subprocess.call(sys.argv[2:])',
  'u = resource.getrusage(resource.RUSAGE_CHILDREN)',
  "open(sys.argv[1], 'w').write('0 %d %.3f %.3f\\n' % (u.ru_maxrss, u.ru_utime, u.ru_stime))",
  'sys.exit(rc if rc >= 0 else 128 - rc)',
].join('\n');

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The rusage wrapper of this machine, or an Error saying what to install. */
export function findRusageWrapper(): RusageWrapper {
  if (executable('/usr/bin/time')) return { kind: 'gnu-time', path: '/usr/bin/time' };
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = join(dir, 'python3');
    if (dir !== '' && executable(p)) return { kind: 'python3', path: p };
  }
  throw new Error(
    'cannot measure peak RSS of child processes: install GNU time (apt-get install -y --no-install-recommends time) or python3',
  );
}

let seq = 0;

/**
 * Runs `cmd args` under the rusage wrapper and returns its wall time, peak RSS and CPU. Never rejects
 * for a non-zero exit (see `code`); rejects if the command cannot be started or exceeds `timeoutMs`.
 */
export async function timedRun(
  wrapper: RusageWrapper,
  scratchDir: string,
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunSample> {
  const out = join(scratchDir, `rusage-${process.pid}-${++seq}.txt`);
  // Both the wrapper and the measured command die with their parent (setpriv execs, so no extra
  // process stays around and the rusage is the command's own): a bench killed mid-run leaves no puller
  // writing into a removed temp dir.
  const setpriv = requireBinary('setpriv');
  const dying = (c: string, a: readonly string[]): string[] => ['--pdeathsig', 'KILL', '--', c, ...a];
  const inner = [setpriv, ...dying(cmd, args)];
  const argv = dying(
    wrapper.path,
    wrapper.kind === 'gnu-time'
      ? ['-f', '%e %M %U %S', '-o', out, ...inner]
      : ['-c', PY_WRAPPER, out, ...inner],
  );
  const t0 = process.hrtime.bigint();
  const r: CommandResult = await runCommand(setpriv, argv, {
    ...(opts.env ? { env: opts.env } : {}),
    timeoutMs: opts.timeoutMs ?? 30 * 60_000,
    allowFailure: true,
  });
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  let maxRssKiB = 0;
  let userS = 0;
  let sysS = 0;
  try {
    // GNU time prefixes "Command exited with non-zero status N" lines; the numbers are the last line.
    const lines = (await readFile(out, 'utf8')).trim().split('\n');
    const f = (lines[lines.length - 1] ?? '').trim().split(/\s+/).map(Number);
    maxRssKiB = f[1] ?? 0;
    userS = f[2] ?? 0;
    sysS = f[3] ?? 0;
  } catch {
    /* the wrapper did not get to write it: leave zeros */
  }
  await rm(out, { force: true });
  return { wallS, maxRssKiB, userS, sysS, code: r.code, stdout: r.stdout, stderr: r.stderr };
}

let clkTck = 100;

/** Sets the clock tick rate used to read /proc/PID/stat (`getconf CLK_TCK`). */
export async function initClockTicks(): Promise<void> {
  const r = await runCommand('getconf', ['CLK_TCK'], { allowFailure: true });
  const n = Number(r.stdout.trim());
  if (r.code === 0 && Number.isFinite(n) && n > 0) clkTck = n;
}

/** CPU seconds (user + system) a live process used so far. */
export function processCpuS(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / clkTck;
}

/** Resets a live process's peak RSS (VmHWM) to its current RSS; false if the kernel refused. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS (VmHWM) of a live process in KiB. */
export function peakRssKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
