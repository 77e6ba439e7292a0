/**
 * The host's own platform: what containerd calls `platforms.DefaultSpec()`.
 *
 * OS and architecture come from Node (`process.platform`/`process.arch`, mapped to Go's names). On ARM
 * the variant comes from the kernel: Linux reads "CPU architecture" from `/proc/cpuinfo` (falling back to
 * `uname -m` when the field is missing, as under emulation), and an ARMv6 Raspberry Pi that the kernel
 * reports as architecture 7 is recognised by its "ARMv6-compatible" model name. On Windows the OS
 * version is the kernel's `major.minor.build`, which the Windows image matcher compares.
 *
 * Source: containerd/platforms `defaults_unix.go`, `defaults_windows.go`, `cpuinfo.go`,
 * `cpuinfo_linux.go`, `cpuinfo_other.go` @ 09756f59.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { isArmArch } from './internal/database.js';
import { makePlatform, type Platform } from './types.js';

/**
 * Where `hostPlatform` looks. Every field is optional; tests inject them to describe another machine.
 */
export interface HostProbe {
  /** Node's `process.platform` (`linux`, `win32`, `darwin`, …). */
  platform?: string;
  /** Node's `process.arch` (`x64`, `arm64`, `arm`, `ia32`, …). */
  arch?: string;
  /** Byte order, to tell `ppc64le` from `ppc64` (Node calls both `ppc64`). */
  endianness?: 'BE' | 'LE';
  /** Returns the text of `/proc/cpuinfo`; throws when it cannot be read. */
  readCpuInfo?: () => string;
  /** Returns `uname -m` (`armv7l`, `aarch64`). */
  machine?: () => string;
  /** Returns the kernel release; on Windows `major.minor.build`. */
  osRelease?: () => string;
}

const NODE_TO_GOOS: Record<string, string> = { win32: 'windows', sunos: 'solaris', cygwin: 'windows' };

const NODE_TO_GOARCH: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  mipsel: 'mipsle',
  x32: 'amd64p32',
};

/** Go's GOOS for a Node `process.platform` value. */
export function goOS(nodePlatform: string): string {
  return NODE_TO_GOOS[nodePlatform] ?? nodePlatform;
}

/** Go's GOARCH for a Node `process.arch` value. */
export function goArch(nodeArch: string, endianness: 'BE' | 'LE' = 'LE'): string {
  if (nodeArch === 'ppc64') return endianness === 'LE' ? 'ppc64le' : 'ppc64';
  return NODE_TO_GOARCH[nodeArch] ?? nodeArch;
}

/** The host OS in Go's spelling, without probing anything else (used to normalize an empty OS). */
export function hostOS(): string {
  return goOS(process.platform);
}

class FieldNotFound extends Error {}

/** First `/proc/cpuinfo` line whose key (text before the first `:`) equals `field` ignoring case. */
function cpuInfoField(text: string, field: string): string {
  const want = field.toLowerCase();
  for (const line of text.split('\n')) {
    const parts = line.split(':');
    if (parts.length > 1 && (parts[0] ?? '').trim().toLowerCase() === want) return (parts[1] ?? '').trim();
  }
  throw new FieldNotFound(field);
}

/**
 * The variant number from a `uname -m` machine name: `aarch64` → `8`, `armv7l` → `7`, … `armv3*` → `3`,
 * other `armvN…` → `unknown`. Undefined for names that are not ARM.
 */
export function cpuVariantFromMachine(machine: string): string | undefined {
  const m = machine.toLowerCase();
  if (m === 'aarch64') return '8';
  if (m.startsWith('armv') && m.length >= 5) {
    const n = m.slice(3, 5);
    return (
      ({ v8: '8', v7: '7', v6: '6', v5: '5', v4: '4', v3: '3' } as Record<string, string>)[n] ?? 'unknown'
    );
  }
  return undefined;
}

/** Maps the kernel's "CPU architecture" value to a variant: `7` → `v7`, `6TEJ` → `v6`, … else `unknown`. */
function variantFromCpuArchitecture(value: string): string {
  switch (value.toLowerCase()) {
    case '8':
    case 'aarch64':
      return 'v8';
    case '7':
    case '7m':
    case '?(12)':
    case '?(13)':
    case '?(14)':
    case '?(15)':
    case '?(16)':
    case '?(17)':
      return 'v7';
    case '6':
    case '6tej':
      return 'v6';
    case '5':
    case '5t':
    case '5te':
    case '5tej':
      return 'v5';
    case '4':
    case '4t':
      return 'v4';
    case '3':
      return 'v3';
    default:
      return 'unknown';
  }
}

/** The Linux ARM variant, or '' when it cannot be determined (upstream logs and leaves it empty). */
function linuxCpuVariant(goarch: string, readCpuInfo: () => string, machine: () => string): string {
  let text: string;
  try {
    text = readCpuInfo();
  } catch {
    return '';
  }
  let raw: string;
  try {
    raw = cpuInfoField(text, 'Cpu architecture');
  } catch {
    let m: string;
    try {
      m = machine();
    } catch {
      return '';
    }
    const v = cpuVariantFromMachine(m);
    if (v === undefined) return '';
    raw = v;
  }
  // Raspberry Pi ARMv6 boards report "CPU architecture: 7" (a kernel quirk); the model name tells.
  if (goarch === 'arm' && raw === '7') {
    try {
      if (cpuInfoField(text, 'model name').toLowerCase().startsWith('armv6-compatible')) raw = '6';
    } catch {
      // no model name: keep 7
    }
  }
  return variantFromCpuArchitecture(raw);
}

function cpuVariant(goos: string, goarch: string, probe: HostProbe): string {
  if (!isArmArch(goarch)) return '';
  switch (goos) {
    case 'linux':
    case 'android':
      return linuxCpuVariant(
        goarch,
        probe.readCpuInfo ?? (() => readFileSync('/proc/cpuinfo', 'utf8')),
        probe.machine ?? (() => os.machine()),
      );
    case 'windows':
    case 'darwin':
      return goarch === 'arm64' ? 'v8' : 'v7';
    case 'freebsd':
      return goarch === 'arm64' ? 'v8' : 'unknown';
    default:
      return '';
  }
}

/** `major.minor.build` of a Windows kernel release string, or '' when it does not have that shape. */
function windowsOsVersion(release: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(release);
  return m ? `${Number(m[1])}.${Number(m[2])}.${Number(m[3])}` : '';
}

let cachedHost: Platform | undefined;

/**
 * The host's platform as containerd's `DefaultSpec()` reports it: `os`/`architecture` in Go's names,
 * `variant` on ARM only (`v7`, `v6`, `v8` — not normalized, so arm64 hosts say `v8`), `osVersion` on
 * Windows only. Without a probe the result is computed once and cached; with a probe nothing is cached
 * and only the probe's functions are consulted for what it provides. Never throws: an unreadable
 * `/proc/cpuinfo` leaves the variant empty, like upstream.
 */
export function hostPlatform(probe?: HostProbe): Platform {
  if (probe === undefined && cachedHost !== undefined) return { ...cachedHost };
  const p = probe ?? {};
  const goos = goOS(p.platform ?? process.platform);
  const goarch = goArch(p.arch ?? process.arch, p.endianness ?? os.endianness());
  const variant = cpuVariant(goos, goarch, p);
  const osVersion = goos === 'windows' ? windowsOsVersion((p.osRelease ?? (() => os.release()))()) : '';
  const result = makePlatform(goos, goarch, variant, osVersion);
  if (probe === undefined) cachedHost = result;
  return { ...result };
}
