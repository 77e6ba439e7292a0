/**
 * Image config → OCI runtime config (`config.json` of a bundle), following image-spec `conversion.md`
 * on top of runc's default spec (`runc spec`: mounts, namespaces, capabilities, masked and read-only
 * paths), the way umoci builds its bundles (`oci/config/convert`). `--rootless` applies the changes of
 * umoci's `ToRootless`: a user namespace mapping container root to the caller, no network namespace,
 * no additional gids, `/sys` bind-mounted read-only instead of a new sysfs, no `uid=`/`gid=` mount
 * options, no cgroup resources.
 *
 * Image values are untrusted: WorkingDir is cleaned and refused under `/proc` (runc before 1.1.12 let
 * `/proc/self/fd/N` give a host cwd, CVE-2024-21626), Volumes become tmpfs mounts at cleaned absolute
 * paths (nothing is copied from the image into them, CVE-2022-23648), ids are range-checked.
 */
import { posix } from 'node:path';
import { KimgError, quote } from '../../errors/index.js';
import type { ResolvedUser } from './user.js';

/** The image config fields the conversion reads (image-spec `config.md`). */
export interface ImageConfigFile {
  architecture?: string;
  os?: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  author?: string;
  created?: string;
  config?: {
    User?: string;
    Env?: string[] | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
    ExposedPorts?: Record<string, unknown> | null;
    Volumes?: Record<string, unknown> | null;
  };
  rootfs?: { type?: string; diff_ids?: string[] };
}

/** The parts of the runtime-spec config kimg writes (runtime-spec `config.md`, `config-linux.md`). */
export interface RuntimeSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'permitted' | 'ambient', string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: { destination: string; type: string; source: string; options?: string[] }[];
  annotations?: Record<string, string>;
  linux: {
    uidMappings?: { containerID: number; hostID: number; size: number }[];
    gidMappings?: { containerID: number; hostID: number; size: number }[];
    resources?: { devices: { allow: boolean; access: string }[] };
    namespaces: { type: string }[];
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/** runc's default spec (`runc spec`), with a non-interactive process. */
function baseSpec(): RuntimeSpec {
  return {
    ociVersion: '1.0.2',
    process: {
      // No terminal: a bundle run from scripts and tests has none to give (runc would want a console socket).
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: [DEFAULT_PATH, 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: [...CAPS], effective: [...CAPS], permitted: [...CAPS], ambient: [...CAPS] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: 'kimg',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      {
        destination: '/sys/fs/cgroup',
        type: 'cgroup',
        source: 'cgroup',
        options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
      },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [
        { type: 'pid' },
        { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
      ],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** Cleans the image's WorkingDir into an absolute path, refusing `/proc` (CVE-2024-21626). */
export function sanitizeCwd(workingDir: string | undefined): string {
  if (workingDir === undefined || workingDir === '') return '/';
  if (workingDir.includes('\0')) {
    throw new KimgError('UNPACK_UNSAFE', `image WorkingDir ${quote(workingDir)} contains a NUL byte`, {
      input: workingDir,
    });
  }
  const cwd = posix.normalize('/' + workingDir);
  const clean = cwd.length > 1 && cwd.endsWith('/') ? cwd.slice(0, -1) : cwd;
  if (clean === '/proc' || clean.startsWith('/proc/')) {
    throw new KimgError('UNPACK_UNSAFE', `image WorkingDir ${quote(workingDir)} is inside /proc`, {
      input: workingDir,
    });
  }
  return clean;
}

function mergeEnv(base: string[], image: readonly string[]): string[] {
  const out = [...base];
  for (const kv of image) {
    const name = kv.split('=', 1)[0] as string;
    const i = out.findIndex((e) => e.split('=', 1)[0] === name);
    if (i === -1) out.push(kv);
    else out[i] = kv;
  }
  return out;
}

function annotationsOf(img: ImageConfigFile): Record<string, string> {
  const a: Record<string, string> = {};
  const set = (k: string, v: string | undefined) => {
    if (v !== undefined && v !== '') a[`org.opencontainers.image.${k}`] = v;
  };
  set('os', img.os);
  set('architecture', img.architecture);
  set('variant', img.variant);
  set('os.version', img['os.version']);
  if (img['os.features'] && img['os.features'].length > 0) set('os.features', img['os.features'].join(','));
  set('author', img.author);
  set('created', img.created);
  set('stopSignal', img.config?.StopSignal);
  const ports = Object.keys(img.config?.ExposedPorts ?? {});
  if (ports.length > 0) set('exposedPorts', ports.join(','));
  // Labels are copied last and win (conversion.md).
  for (const [k, v] of Object.entries(img.config?.Labels ?? {})) if (typeof v === 'string') a[k] = v;
  return a;
}

export interface ConvertOptions {
  user: ResolvedUser;
  rootless: boolean;
  /** Host ids container root maps to when rootless (default: the caller's). */
  hostUid: number;
  hostGid: number;
}

/** Builds the bundle's runtime config from an image config. */
export function toRuntimeSpec(img: ImageConfigFile, opts: ConvertOptions): RuntimeSpec {
  const spec = baseSpec();
  const c = img.config ?? {};
  const args = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  if (args.length > 0) spec.process.args = args;
  spec.process.env = mergeEnv(spec.process.env, c.Env ?? []);
  if (opts.user.home !== undefined && !spec.process.env.some((e) => e.startsWith('HOME='))) {
    spec.process.env.push(`HOME=${opts.user.home}`);
  }
  spec.process.cwd = sanitizeCwd(c.WorkingDir);
  spec.process.user = {
    uid: opts.user.uid,
    gid: opts.user.gid,
    ...(opts.user.additionalGids !== undefined ? { additionalGids: opts.user.additionalGids } : {}),
  };
  for (const v of Object.keys(c.Volumes ?? {})) {
    const dest = posix.normalize('/' + v);
    if (dest === '/' || v.includes('\0')) continue;
    spec.mounts.push({
      destination: dest.endsWith('/') ? dest.slice(0, -1) : dest,
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['rw', 'nosuid', 'nodev', 'noexec', 'relatime'],
    });
  }
  const annotations = annotationsOf(img);
  if (Object.keys(annotations).length > 0) spec.annotations = annotations;
  if (opts.rootless) toRootless(spec, opts.hostUid, opts.hostGid);
  return spec;
}

/** umoci's `ToRootless`: what a runtime started by an unprivileged user can set up. */
function toRootless(spec: RuntimeSpec, hostUid: number, hostGid: number): void {
  delete spec.process.user.additionalGids;
  spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== 'network' && n.type !== 'user');
  spec.linux.namespaces.push({ type: 'user' });
  spec.linux.uidMappings = [{ containerID: 0, hostID: hostUid, size: 1 }];
  spec.linux.gidMappings = [{ containerID: 0, hostID: hostGid, size: 1 }];
  spec.mounts = spec.mounts
    .filter((m) => m.destination !== '/sys' && !m.destination.startsWith('/sys/'))
    .map((m) =>
      m.options === undefined
        ? m
        : { ...m, options: m.options.filter((o) => !o.startsWith('uid=') && !o.startsWith('gid=')) },
    );
  spec.mounts.push({
    destination: '/sys',
    type: 'none',
    source: '/sys',
    options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
  });
  delete spec.linux.resources;
}
