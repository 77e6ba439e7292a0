/**
 * Windows container compatibility: which image `os.version` a Windows host can run.
 *
 * Windows containers share the host kernel, so the image's build must fit the host's. Only
 * major.minor.build are compared (the fourth number, the revision/UBR, never matters). Hosts older
 * than Windows Server 2022 (build 20348) need the exact build. From 2022 on, Microsoft's "stable ABI"
 * lets a host run images from the newest LTSC release *below* its own build up to its own build: a
 * 2022 host runs 20348 only, a Windows 11 22H2 host (22621) runs 20348–22621, a 2025 host (26100)
 * runs 20348–26100, and a host newer than 26100 runs 26100 up to itself.
 *
 * Source: containerd/platforms `platform_windows_compat.go` @ 09756f59; Microsoft "Windows container
 * version compatibility".
 */

/** Windows Server 2022 (21H2 server): the first LTSC release with the stable container ABI. */
export const LTSC2022 = 20348;
/** Windows Server 2025. */
export const LTSC2025 = 26100;
/** Windows Server 2019 / Windows 10 1809 (RS5). */
export const LTSC2019 = 17763;

/** LTSC builds with the stable ABI, ascending. */
const COMPAT_LTSC_RELEASES = [LTSC2022, LTSC2025] as const;

/** A parsed Windows version; all zero means "unknown" (empty or unparsable). */
export interface WindowsVersion {
  major: number;
  minor: number;
  build: number;
}

const ZERO: WindowsVersion = { major: 0, minor: 0, build: 0 };

/** Parses an unsigned decimal like Go's `strconv.ParseUint(s, 10, bits)`: digits only, within range. */
function parseUint(s: string, max: number): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const digits = s.replace(/^0+(?=.)/, '');
  if (digits.length > 6) return undefined;
  const n = Number(digits);
  return n <= max ? n : undefined;
}

/**
 * Parses the first three dot-separated numbers of an `os.version` (`10.0.20348.3091` → 10, 0, 20348).
 * Fewer than two dots, or any number out of range (major/minor > 255, build > 65535), gives all zero.
 */
export function parseWindowsVersion(osVersion: string): WindowsVersion {
  const parts = osVersion.split('.');
  if (parts.length < 3) return ZERO;
  const major = parseUint(parts[0] ?? '', 0xff);
  const minor = parseUint(parts[1] ?? '', 0xff);
  const build = parseUint(parts[2] ?? '', 0xffff);
  if (major === undefined || minor === undefined || build === undefined) return ZERO;
  return { major, minor, build };
}

/** Whether the version is all zero (empty or unparsable). */
export function isZeroVersion(v: WindowsVersion): boolean {
  return v.major === 0 && v.minor === 0 && v.build === 0;
}

/** Whether a host at `host` can run a container image built for `ctr` (see the module comment). */
export function windowsHostCanRun(host: WindowsVersion, ctr: WindowsVersion): boolean {
  if (host.major !== ctr.major || host.minor !== ctr.minor) return false;
  if (host.build < LTSC2022) return host.build === ctr.build;
  // The oldest image build the host accepts: the newest stable-ABI LTSC strictly below the host's
  // build, or 2022 itself when the host is exactly 2022.
  let oldest: number = LTSC2022;
  for (let i = COMPAT_LTSC_RELEASES.length - 1; i >= 0; i--) {
    const ltsc = COMPAT_LTSC_RELEASES[i] ?? LTSC2022;
    if (host.build > ltsc) {
      oldest = ltsc;
      break;
    }
  }
  return oldest <= ctr.build && ctr.build <= host.build;
}

/**
 * The OS-version test a Windows matcher applies to a candidate's raw `os.version`: true when either
 * side is empty/unknown, else the compatibility rule above.
 */
export function windowsVersionMatches(host: WindowsVersion, candidateOsVersion: string): boolean {
  if (isZeroVersion(host) || candidateOsVersion === '') return true;
  return windowsHostCanRun(host, parseWindowsVersion(candidateOsVersion));
}
