/**
 * The names kimg knows and the normalization table: which operating systems and architectures exist
 * (Go's `syslist.go`, as containerd/platforms `database.go` lists them) and how common aliases map to
 * the Go spelling (`x86_64` → `amd64`, `aarch64` → `arm64`, `armhf` → `arm/v7`, `macos` → `darwin`).
 *
 * Source: containerd/platforms `database.go` @ 09756f59 (v1.0.0-rc.4).
 */

const KNOWN_OS = new Set([
  'aix',
  'android',
  'darwin',
  'dragonfly',
  'freebsd',
  'hurd',
  'illumos',
  'ios',
  'js',
  'linux',
  'nacl',
  'netbsd',
  'openbsd',
  'plan9',
  'solaris',
  'windows',
  'zos',
]);

const KNOWN_ARCH = new Set([
  '386',
  'amd64',
  'amd64p32',
  'arm',
  'armbe',
  'arm64',
  'arm64be',
  'ppc64',
  'ppc64le',
  'loong64',
  'mips',
  'mipsle',
  'mips64',
  'mips64le',
  'mips64p32',
  'mips64p32le',
  'ppc',
  'riscv',
  'riscv64',
  's390',
  's390x',
  'sparc',
  'sparc64',
  'wasm',
]);

/** Whether `os` (already normalized) is an operating system Go knows. */
export function isKnownOS(os: string): boolean {
  return KNOWN_OS.has(os);
}

/** Whether `arch` (already normalized) is an architecture Go knows. */
export function isKnownArch(arch: string): boolean {
  return KNOWN_ARCH.has(arch);
}

/** Whether `arch` (already normalized) is 32- or 64-bit ARM, the architectures that carry a CPU variant. */
export function isArmArch(arch: string): boolean {
  return arch === 'arm' || arch === 'arm64';
}

/** Normalizes an OS name: empty means the host's OS; lowercase; `macos` → `darwin`. */
export function normalizeOS(os: string, hostOS: string): string {
  if (os === '') return hostOS;
  const lower = os.toLowerCase();
  return lower === 'macos' ? 'darwin' : lower;
}

/**
 * Normalizes an architecture and its variant (both lowercased first). The table:
 * `i386` → `386` (variant cleared); `x86_64`/`x86-64`/`amd64` → `amd64` with `v1` → empty;
 * `aarch64`/`arm64` → `arm64` with `8`/`v8`/`v8.0` → empty and `9`/`9.0`/`v9.0` → `v9`;
 * `armhf` → `arm/v7`; `armel` → `arm/v6`; `arm` with empty or `7` → `v7`, `5`/`6`/`8` → `v5`/`v6`/`v8`.
 * Anything else passes through lowercased.
 */
export function normalizeArch(arch: string, variant: string): [string, string] {
  let a = arch.toLowerCase();
  let v = variant.toLowerCase();
  switch (a) {
    case 'i386':
      a = '386';
      v = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      a = 'amd64';
      if (v === 'v1') v = '';
      break;
    case 'aarch64':
    case 'arm64':
      a = 'arm64';
      if (v === '8' || v === 'v8' || v === 'v8.0') v = '';
      else if (v === '9' || v === '9.0' || v === 'v9.0') v = 'v9';
      break;
    case 'armhf':
      a = 'arm';
      v = 'v7';
      break;
    case 'armel':
      a = 'arm';
      v = 'v6';
      break;
    case 'arm':
      if (v === '' || v === '7') v = 'v7';
      else if (v === '5' || v === '6' || v === '8') v = 'v' + v;
      break;
    default:
      break;
  }
  return [a, v];
}
