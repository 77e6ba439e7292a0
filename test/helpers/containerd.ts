/**
 * A private containerd (Debian's 1.6 package) for tests and the bench: its own root, state, config,
 * sockets and `certs.d` under one SHORT temp dir (`/tmp/kimg-ctrd-XXXXXX`; a unix socket path is limited
 * to 108 bytes by `sockaddr_un.sun_path`), never /etc/containerd or /run/containerd. The CRI plugin
 * (`io.containerd.grpc.v1.cri`, built into the daemon) is enabled, so a test can talk CRI to it over
 * `unix://<dir>/containerd.sock` with @grpc/grpc-js.
 *
 * Registries: the CRI plugin resolves hosts through `registry.config_path` = `<dir>/certs.d`, one
 * `<host>/hosts.toml` per registry (containerd docs/hosts.md). Registries listen on port 0, so the
 * port is known only once they are up: `addPlainHttpRegistry('127.0.0.1:PORT')` writes the file then
 * (the daemon reads it on each pull; no restart). `ctr` resolves client-side and ignores the daemon's
 * config: give it `--plain-http` or `--hosts-dir <certsDir>`.
 *
 * Lifecycle: started through `spawnTracked` (setpriv --pdeathsig KILL: it dies with the test process),
 * ready when `ctr version` answers and, with CRI, `ctr plugins ls` lists the CRI plugin as `ok`.
 * `stop()` SIGKILLs it by PID (SIGTERM costs ~1.8 s and the data is thrown away), unmounts anything
 * left mounted under its dir (deepest first) and removes the dir.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { requireBinary } from './components.js';
import { killProcess, runCommand, spawnTracked, waitFor, type CommandResult } from './proc.js';
import { makeTempDir, removeTempDir } from './tmp.js';

/** `sockaddr_un.sun_path` is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/** The CRI plugin's `sandbox_image` when the caller runs no pods: no registry serves it. */
const NO_SANDBOX_IMAGE = '127.0.0.1:1/kimg-no-sandbox:1';

/**
 * Where containerd 1.6's shims put their own sockets whatever the daemon's `state` is
 * (containerd/containerd runtime/v2/shim/util_unix.go: `/run/containerd/s/<sha256>`).
 */
const SHIM_SOCKET_DIR = '/run/containerd/s/';

export interface ContainerdOptions {
  /** Default 'overlayfs'; falls back to 'native' when an overlay mount is not permitted here. */
  snapshotter?: 'overlayfs' | 'native';
  /** Enable the CRI plugin (default true). Without it the daemon starts faster and has no CRI socket. */
  cri?: boolean;
  /** Namespace `ctr()` uses unless told otherwise; default 'default' (CRI uses 'k8s.io'). */
  namespace?: string;
  /** Registries ('127.0.0.1:PORT') to mark as plain HTTP right away. */
  plainHttpRegistries?: string[];
  /** Log level of the daemon; default 'info'. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** How long to wait for readiness; default 20 s. */
  startTimeoutMs?: number;
  /**
   * The CRI plugin's `sandbox_image` (pulled by RunPodSandbox when absent, pinned). Default: a
   * reference no registry serves, for fixtures that never run pods. Pods need a local image here
   * (nothing outside loopback is reachable), e.g. the `pause:1` of `pushRunnableImages`.
   */
  sandboxImage?: string;
  /**
   * Let the CRI plugin put pods and containers into cgroups (`disable_cgroup = false`), as on a node.
   * Default false. Pods should then name a `linux.cgroup_parent` under {@link StartedContainerd.cgroupParent},
   * so stop() removes what they leave.
   */
  podCgroups?: boolean;
  /**
   * The metadata store's `content_sharing_policy` (default containerd's `shared`): with `isolated` a
   * namespace sees only blobs written into it, even when the content directory holds them.
   */
  contentSharingPolicy?: 'shared' | 'isolated';
}

export interface CtrOptions {
  /** Default: the namespace given to startContainerd ('default'). */
  namespace?: string;
  /** Resolve instead of rejecting on a non-zero exit (inspect `code`). */
  allowFailure?: boolean;
  /** Default 120 s. */
  timeoutMs?: number;
}

export interface StartedContainerd {
  /** Absolute path of the gRPC socket (≤ 107 bytes). */
  socket: string;
  /** `unix://<socket>`: the CRI endpoint for @grpc/grpc-js. */
  address: string;
  /** The fixture's temp dir (config, log, root, state, certs.d); removed by stop(). */
  baseDir: string;
  /** containerd `root` (content store, metadata, snapshots). */
  root: string;
  /** containerd `state` (sockets of shims, runtime state). */
  state: string;
  /** runc's state root for this daemon's containers (CRI runtime option `Root`; `ctr run --runc-root`). */
  runcRoot: string;
  /** The CRI plugin's `sandbox_image`. */
  sandboxImage: string;
  /**
   * The cgroup (v1: one directory per controller under /sys/fs/cgroup) under which `ctrRun` puts its
   * containers, `/kimg-ctrd-XXXXXX`; removed by stop(). CRI pods get cgroups only with `podCgroups`
   * (and should then use a `linux.cgroup_parent` below this one); by default the CRI plugin runs with
   * `disable_cgroup = true`.
   */
  cgroupParent: string;
  configFile: string;
  /** `registry.config_path` of the CRI plugin; also usable as `ctr --hosts-dir`. */
  certsDir: string;
  /** The snapshotter actually configured (after the overlay probe). */
  snapshotter: 'overlayfs' | 'native';
  /** PID of the containerd process. */
  pid: number;
  /** Milliseconds startContainerd took. */
  startMs: number;
  /** The daemon's log (stdout + stderr). */
  log(): Promise<string>;
  /**
   * Runs `ctr -a <socket> -n <namespace> ...args`. Rejects with stderr on a non-zero exit unless
   * `allowFailure`.
   */
  ctr(args: readonly string[], opts?: CtrOptions): Promise<CommandResult>;
  /**
   * `ctr run --rm` of `ref` as container `id` (in `opts.namespace`), with this daemon's runc root and
   * a cgroup under {@link cgroupParent}, so nothing is left outside the fixture; resolves with the
   * container's output once it exited.
   */
  ctrRun(ref: string, id: string, opts?: CtrOptions & { args?: readonly string[] }): Promise<CommandResult>;
  /**
   * Writes `<certsDir>/<host>/hosts.toml` marking `http://<endpoint>` (default: `host` itself) as the
   * plain-HTTP server of registry `host`, with pull, resolve and push capabilities. `host` is what
   * appears in image references (`'127.0.0.1:PORT'`); a different `endpoint` makes `host` an alias
   * served by another registry (e.g. `addPlainHttpRegistry('kimg.invalid', reg.host)`).
   */
  addPlainHttpRegistry(host: string, endpoint?: string): Promise<void>;
  /**
   * SIGKILL by PID, wait for the exit; then SIGKILL what the daemon started and left running (the
   * runc shims of its containers and their processes, by PID), unmount leftovers under baseDir,
   * rm -rf baseDir. Idempotent.
   */
  stop(): Promise<void>;
}

async function readIfExists(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return '';
  }
}

/** TOML basic string (paths and hosts here never hold quotes, but escape anyway). */
function tomlString(s: string): string {
  return JSON.stringify(s);
}

/** True when this kernel/namespace lets us mount an overlay (the overlayfs snapshotter needs it). */
async function overlayMountPermitted(dir: string): Promise<boolean> {
  const mount = requireBinary('mount');
  const umount = requireBinary('umount');
  const [l, u, w, m] = ['l', 'u', 'w', 'm'].map((d) => join(dir, d)) as [string, string, string, string];
  await Promise.all([l, u, w, m].map((d) => mkdir(d, { recursive: true })));
  const r = await runCommand(
    mount,
    ['-t', 'overlay', 'overlay', '-o', `lowerdir=${l},upperdir=${u},workdir=${w}`, m],
    { allowFailure: true, timeoutMs: 10_000 },
  );
  if (r.code !== 0) return false;
  await runCommand(umount, [m], { allowFailure: true, timeoutMs: 10_000 });
  return true;
}

function procEntries(): number[] {
  try {
    return readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  } catch {
    return [];
  }
}

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
}

/**
 * True once `pid` has exited: gone, or a zombie waiting for its parent. The shims are reparented away
 * from the test process, so their zombies are reaped by whoever adopted them, not by us.
 */
export function hasExited(pid: number): boolean {
  const stat = readProc(pid, 'stat');
  return stat === undefined || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

/**
 * The runc shims this daemon started (their command line names its socket: `-address <socket>`) and
 * every process below them (the containers), children listed before their parents.
 */
export function shimProcessTree(socket: string): { shims: number[]; descendants: number[] } {
  const parentOf = new Map<number, number>();
  const shims: number[] = [];
  for (const pid of procEntries()) {
    const stat = readProc(pid, 'stat');
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = stat === undefined ? NaN : Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (Number.isInteger(ppid)) parentOf.set(pid, ppid);
    const argv = (readProc(pid, 'cmdline') ?? '').split('\0');
    if (basename(argv[0] ?? '').startsWith('containerd-shim') && argv.includes(socket)) shims.push(pid);
  }
  const descendants: number[] = [];
  const visit = (parent: number): void => {
    for (const [pid, ppid] of parentOf) {
      if (ppid === parent) {
        visit(pid);
        descendants.push(pid);
      }
    }
  };
  for (const s of shims) visit(s);
  return { shims, descendants };
}

/** The shim socket addresses recorded in the daemon's task bundles (`<state>/…task/<ns>/<id>/address`). */
function shimSocketFiles(state: string): string[] {
  const out: string[] = [];
  const tasks = join(state, 'io.containerd.runtime.v2.task');
  const list = (d: string): string[] => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  for (const ns of list(tasks)) {
    for (const id of list(join(tasks, ns))) {
      let addr: string;
      try {
        addr = readFileSync(join(tasks, ns, id, 'address'), 'utf8').trim();
      } catch {
        continue;
      }
      const path = addr.replace(/^unix:\/\//, '');
      if (path.startsWith(SHIM_SOCKET_DIR) && !path.slice(SHIM_SOCKET_DIR.length).includes('/'))
        out.push(path);
    }
  }
  return out;
}

/**
 * SIGKILLs, by PID, the shims of the daemon on `socket` and everything below them (children first),
 * and removes the shim sockets its task bundles recorded. The daemon starts the shims detached, so
 * they outlive it (and the test process's pdeathsig) unless killed here.
 */
export async function killShims(socket: string, state: string): Promise<number> {
  const sockets = shimSocketFiles(state);
  const { shims, descendants } = shimProcessTree(socket);
  for (const pid of [...descendants, ...shims]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (shims.length + descendants.length > 0) {
    await waitFor(
      'killed shims and containers to exit',
      () => ([...descendants, ...shims].every(hasExited) ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 20 },
    );
  }
  for (const f of sockets) await rm(f, { force: true });
  return shims.length + descendants.length;
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/** Removes the (empty) cgroup directories `parent` and below in every mounted hierarchy, deepest first. */
async function removeCgroupTree(parent: string): Promise<void> {
  let hierarchies: string[];
  try {
    hierarchies = readdirSync(CGROUP_ROOT);
  } catch {
    return;
  }
  const rmdirTree = async (dir: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // not there in this hierarchy
    }
    for (const e of entries) if (e.isDirectory()) await rmdirTree(join(dir, e.name));
    await rmdir(dir).catch(() => undefined); // busy: a process is still in it; leave it
  };
  for (const h of hierarchies) await rmdirTree(join(CGROUP_ROOT, h, parent));
}

/** Mount points under `dir` (from /proc/mounts, octal escapes decoded), deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  let text: string;
  try {
    text = readFileSync('/proc/mounts', 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

function configToml(o: {
  baseDir: string;
  root: string;
  state: string;
  socket: string;
  certsDir: string;
  snapshotter: string;
  cri: boolean;
  logLevel: string;
  sandboxImage: string;
  runcRoot: string;
  podCgroups: boolean;
  contentSharingPolicy: 'shared' | 'isolated';
}): string {
  const lines = [
    'version = 2',
    `root = ${tomlString(o.root)}`,
    `state = ${tomlString(o.state)}`,
    // A top-level key: it must come before the first table.
    ...(o.cri ? [] : ['disabled_plugins = ["io.containerd.grpc.v1.cri"]']),
    '[grpc]',
    `  address = ${tomlString(o.socket)}`,
    '[ttrpc]',
    `  address = ${tomlString(`${o.socket}.ttrpc`)}`,
    '[debug]',
    `  address = ${tomlString(join(o.baseDir, 'debug.sock'))}`,
    `  level = ${tomlString(o.logLevel)}`,
    '[metrics]',
    '  address = ""',
    '[plugins]',
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = ${tomlString(join(o.baseDir, 'opt'))}`,
    '  [plugins."io.containerd.metadata.v1.bolt"]',
    `    content_sharing_policy = ${tomlString(o.contentSharingPolicy)}`,
  ];
  if (o.cri) {
    lines.push(
      '  [plugins."io.containerd.grpc.v1.cri"]',
      `    sandbox_image = ${tomlString(o.sandboxImage)}`,
      `    disable_cgroup = ${o.podCgroups ? 'false' : 'true'}`,
      '    disable_apparmor = true',
      '    restrict_oom_score_adj = true',
      '    [plugins."io.containerd.grpc.v1.cri".containerd]',
      `      snapshotter = ${tomlString(o.snapshotter)}`,
      '      default_runtime_name = "runc"',
      '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '        runtime_type = "io.containerd.runc.v2"',
      '        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      // runc keeps its container state here instead of /run/containerd/runc.
      `          Root = ${tomlString(o.runcRoot)}`,
      '    [plugins."io.containerd.grpc.v1.cri".cni]',
      '      bin_dir = "/usr/lib/cni"',
      `      conf_dir = ${tomlString(join(o.baseDir, 'cni'))}`,
      '    [plugins."io.containerd.grpc.v1.cri".registry]',
      `      config_path = ${tomlString(o.certsDir)}`,
    );
  }
  // Plugins needing what this fixture lacks (btrfs/zfs/devmapper/aufs snapshotters, tracing) fail
  // their own init quietly; images do not need them.
  return lines.join('\n') + '\n';
}

/**
 * Starts a private containerd and resolves once it serves (and, with CRI, once the CRI plugin is
 * loaded). Throws an `Error` with the daemon log when it exits or does not become ready, after
 * cleaning up; throws (never skips) when containerd, ctr or setpriv is missing.
 */
export async function startContainerd(opts: ContainerdOptions = {}): Promise<StartedContainerd> {
  const t0 = Date.now();
  const containerdBin = requireBinary('containerd');
  const ctrBin = requireBinary('ctr');
  requireBinary('setpriv');
  const cri = opts.cri ?? true;
  const namespace = opts.namespace ?? 'default';

  const baseDir = await makeTempDir('ctrd-');
  const root = join(baseDir, 'root');
  const state = join(baseDir, 'state');
  const certsDir = join(baseDir, 'certs.d');
  const configFile = join(baseDir, 'config.toml');
  const logFile = join(baseDir, 'containerd.log');
  const socket = join(baseDir, 'containerd.sock');
  const runcRoot = join(baseDir, 'runc');
  const sandboxImage = opts.sandboxImage ?? NO_SANDBOX_IMAGE;
  const cgroupParent = `/${basename(baseDir)}`;
  const cleanupDir = async (): Promise<void> => {
    await killShims(socket, state);
    await removeCgroupTree(cgroupParent);
    const umount = requireBinary('umount');
    for (const m of mountsUnder(baseDir)) {
      const r = await runCommand(umount, [m], { allowFailure: true, timeoutMs: 30_000 });
      if (r.code !== 0) await runCommand(umount, ['-l', m], { allowFailure: true, timeoutMs: 30_000 });
    }
    await removeTempDir(baseDir);
  };
  if (Buffer.byteLength(`${socket}.ttrpc`) > MAX_SOCKET_PATH) {
    await cleanupDir();
    throw new Error(
      `containerd socket path ${socket}.ttrpc is longer than ${MAX_SOCKET_PATH} bytes (unix socket limit); set TMPDIR to a shorter directory`,
    );
  }

  let proc: ReturnType<typeof spawnTracked> | undefined;
  try {
    await Promise.all(
      [root, state, runcRoot, certsDir, join(baseDir, 'cni'), join(baseDir, 'opt')].map((d) => mkdir(d)),
    );
    let snapshotter = opts.snapshotter ?? 'overlayfs';
    if (snapshotter === 'overlayfs' && !(await overlayMountPermitted(join(baseDir, 'probe'))))
      snapshotter = 'native';
    await writeFile(
      configFile,
      configToml({
        baseDir,
        root,
        state,
        socket,
        certsDir,
        snapshotter,
        cri,
        logLevel: opts.logLevel ?? 'info',
        sandboxImage,
        runcRoot,
        podCgroups: opts.podCgroups === true,
        contentSharingPolicy: opts.contentSharingPolicy ?? 'shared',
      }),
    );
    const addPlainHttpRegistry = async (host: string, endpoint = host): Promise<void> => {
      for (const h of [host, endpoint]) {
        if (!/^[A-Za-z0-9.-]+(?::\d+)?$/.test(h)) {
          throw new Error(`addPlainHttpRegistry: "${h}" is not a host[:port]`);
        }
      }
      const dir = join(certsDir, host);
      await mkdir(dir, { recursive: true });
      const server = `http://${endpoint}`;
      await writeFile(
        join(dir, 'hosts.toml'),
        [
          `server = ${tomlString(server)}`,
          '',
          `[host.${tomlString(server)}]`,
          '  capabilities = ["pull", "resolve", "push"]',
          '',
        ].join('\n'),
      );
    };
    for (const h of opts.plainHttpRegistries ?? []) await addPlainHttpRegistry(h);

    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (k === 'NODE_TEST_CONTEXT' || k === 'NODE_OPTIONS' || k === 'CONTAINERD_ADDRESS') continue;
      env[k] = v;
    }
    const started = spawnTracked('containerd', containerdBin, ['--config', configFile], {
      env,
      stdoutFile: logFile,
      stderrFile: logFile,
    });
    proc = started;
    const describe = async (): Promise<string> =>
      `containerd log (${logFile}):\n${(await readIfExists(logFile)).slice(-4000)}`;
    const ctr = (args: readonly string[], o: CtrOptions = {}): Promise<CommandResult> =>
      runCommand(ctrBin, ['-a', socket, '-n', o.namespace ?? namespace, ...args], {
        env,
        timeoutMs: o.timeoutMs ?? 120_000,
        allowFailure: o.allowFailure === true,
      });
    const ctrRun = (
      ref: string,
      id: string,
      o: CtrOptions & { args?: readonly string[] } = {},
    ): Promise<CommandResult> =>
      ctr(
        [
          'run',
          '--rm',
          '--runc-root',
          runcRoot,
          '--cgroup',
          `${cgroupParent}/${id}`,
          ref,
          id,
          ...(o.args ?? []),
        ],
        o,
      );
    const timeoutMs = opts.startTimeoutMs ?? 20_000;
    await waitFor(
      'containerd to serve (ctr version)',
      async () =>
        (await ctr(['version'], { allowFailure: true, timeoutMs: 5_000 })).code === 0 ? true : undefined,
      { watch: started, describe, timeoutMs, intervalMs: 50 },
    );
    if (cri) {
      await waitFor(
        'the CRI plugin (io.containerd.grpc.v1.cri) to load',
        async () => {
          const r = await ctr(['plugins', 'ls'], { allowFailure: true, timeoutMs: 5_000 });
          const line = r.stdout.split('\n').find((l) => /\bio\.containerd\.grpc\.v1\s+cri\b/.test(l));
          if (line === undefined) return undefined;
          if (/\bok\s*$/.test(line)) return true;
          throw new Error(`the CRI plugin did not load: ${line.trim()}\n${await describe()}`);
        },
        { watch: started, describe, timeoutMs, intervalMs: 50 },
      );
    }

    let stopping: Promise<void> | undefined;
    let logCache: string | undefined;
    return {
      socket,
      address: `unix://${socket}`,
      baseDir,
      root,
      state,
      runcRoot,
      sandboxImage,
      cgroupParent,
      configFile,
      certsDir,
      snapshotter,
      pid: started.pid,
      startMs: Date.now() - t0,
      log: async () => logCache ?? (await readIfExists(logFile)),
      ctr,
      ctrRun,
      addPlainHttpRegistry,
      stop: () => {
        stopping ??= (async () => {
          await killProcess(started);
          logCache = await readIfExists(logFile);
          await cleanupDir();
        })();
        return stopping;
      },
    };
  } catch (e) {
    if (proc !== undefined) await killProcess(proc);
    await cleanupDir();
    throw e;
  }
}
