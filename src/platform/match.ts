/**
 * Platform matching and ranking: which entries of an image index a node can run, and which it prefers.
 *
 * A single matcher accepts a candidate whose normalized OS, architecture and variant equal its own,
 * whose OS features are a subset of its own, and — for Windows — whose `os.version` the Windows
 * compatibility rules accept (an index entry's `win32k` feature is ignored on Windows, as older
 * containerd did not consider it).
 *
 * `platformMatcher(p)` is containerd's `platforms.Only(p)`: an ordered list of single matchers, the
 * platform itself first, then what it can also run, best first:
 * - `amd64/vN`: vN, vN−1 … v1, then `386` (plain `amd64`: `amd64`, `386`);
 * - `arm/vN` (N > 5): vN down to v5;
 * - `arm64/v8.x`: v8.x down to v8; `arm64/v9.x`: v9.x down to v9, then v8.(x+5, at most 9) down to v8;
 *   every arm64 then also runs `arm/v8`, `arm/v7`, `arm/v6`, `arm/v5`; an arm64 variant outside
 *   v8…v8.9 / v9…v9.7 matches nothing;
 * - any other architecture: itself only.
 * Candidates rank by the position of the first matcher they pass; at equal rank the one with more OS
 * features wins; a candidate no matcher accepts is compared again without its OS features.
 *
 * `strictMatcher(p)` is `OnlyStrict`: the platform itself only. `defaultMatcher(host)` is what
 * containerd uses when no platform is asked for (`platforms.Default()`): `Only(host)` on Linux and other
 * Unixes; on Windows the exact architecture plus the OS-version check, preferring the higher
 * `os.version` (compared as a string, like upstream); on macOS the host platform, then Linux on the same
 * architecture.
 *
 * Source: containerd/platforms `compare.go`, `platforms.go` (NewMatcher), `defaults_*.go`,
 * `platform_windows_compat.go` @ 09756f59.
 */
import { hostOS, hostPlatform } from './host.js';
import { parseWindowsVersion, windowsVersionMatches, type WindowsVersion } from './windows.js';
import { normalizePlatform } from './parse.js';
import { compareCodePoints, makePlatform, toPlatform, type Platform, type PlatformLike } from './types.js';

/**
 * Decides whether an index entry's platform can run here and orders candidates, best first.
 * Pair `match` with `compare` (or `less`) on the same candidates: `compare` orders matching
 * candidates before non-matching ones.
 */
export interface PlatformMatcher {
  /** The platform asked for, normalized. */
  readonly platform: Platform;
  /** Whether a candidate (an index entry's platform) is acceptable. */
  match(candidate: PlatformLike): boolean;
  /** Whether `a` is preferred over `b` (containerd's `MatchComparer.Less`). */
  less(a: PlatformLike, b: PlatformLike): boolean;
  /** A comparator for `Array.prototype.sort`: negative when `a` is preferred over `b`. */
  compare(a: PlatformLike, b: PlatformLike): number;
  /**
   * The candidate's position in the fallback order (0 = the platform itself), or -1 when it does not
   * match. Windows default matchers rank every match 0 (they prefer by `os.version` instead).
   */
  rank(candidate: PlatformLike): number;
}

/** Options of the matcher constructors. */
export interface MatcherOptions {
  /** The host, used only to normalize a candidate with an empty OS. Default: the running host. */
  host?: Platform;
}

interface Single {
  readonly normalized: Platform;
  readonly windows: WindowsVersion | undefined;
}

function newSingle(p: Platform, hostOs: string): Single {
  const normalized = normalizePlatform(p, { host: { os: hostOs, architecture: '' } });
  return {
    normalized,
    windows: normalized.os === 'windows' ? parseWindowsVersion(p.osVersion ?? '') : undefined,
  };
}

/** Whether sorted, unique `sub` is a subset of sorted, unique `sup`. */
function isSortedSubset(sub: readonly string[], sup: readonly string[]): boolean {
  if (sub.length > sup.length) return false;
  let j = 0;
  for (const f of sub) {
    let found = false;
    for (; j < sup.length; j++) {
      const s = sup[j] ?? '';
      if (f === s) {
        found = true;
        j++;
        break;
      }
      if (compareCodePoints(f, s) < 0) return false;
    }
    if (!found) return false;
  }
  return true;
}

function singleMatch(m: Single, raw: Platform, hostOs: string): boolean {
  let candidate = raw;
  if (m.windows !== undefined && raw.osFeatures) {
    const i = raw.osFeatures.indexOf('win32k');
    if (i >= 0) candidate = { ...raw, osFeatures: raw.osFeatures.filter((_, k) => k !== i) };
  }
  const n = normalizePlatform(candidate, { host: { os: hostOs, architecture: '' } });
  const want = m.normalized;
  if (n.os !== want.os || n.architecture !== want.architecture || (n.variant ?? '') !== (want.variant ?? ''))
    return false;
  if (m.windows !== undefined && !windowsVersionMatches(m.windows, candidate.osVersion ?? '')) return false;
  return isSortedSubset(n.osFeatures ?? [], want.osFeatures ?? []);
}

function featureCount(p: Platform): number {
  return p.osFeatures?.length ?? 0;
}

function withoutFeatures(p: Platform): Platform {
  const { osFeatures: _dropped, ...rest } = p;
  return rest;
}

function comparatorOf(less: (a: PlatformLike, b: PlatformLike) => boolean) {
  return (a: PlatformLike, b: PlatformLike): number => (less(a, b) ? -1 : less(b, a) ? 1 : 0);
}

/** containerd's `Ordered(...)`: matches any of the platforms, preferring earlier ones. */
function orderedMatcher(requested: Platform, vector: readonly Platform[], hostOs: string): PlatformMatcher {
  const singles = vector.map((p) => newSingle(p, hostOs));
  const rank = (c: PlatformLike): number => {
    const p = toPlatform(c);
    return singles.findIndex((m) => singleMatch(m, p, hostOs));
  };
  const lessRaw = (a: Platform, b: Platform): boolean => {
    for (const m of singles) {
      const am = singleMatch(m, a, hostOs);
      const bm = singleMatch(m, b, hostOs);
      if (am && !bm) return true;
      if (am || bm) {
        if (am && bm && featureCount(a) !== featureCount(b)) return featureCount(a) > featureCount(b);
        return false;
      }
    }
    if (featureCount(a) > 0 || featureCount(b) > 0) return lessRaw(withoutFeatures(a), withoutFeatures(b));
    return false;
  };
  const less = (a: PlatformLike, b: PlatformLike): boolean => lessRaw(toPlatform(a), toPlatform(b));
  return {
    platform: requested,
    match: (c) => rank(c) >= 0,
    less,
    compare: comparatorOf(less),
    rank,
  };
}

/** containerd's `platformVector`: the platform (normalized) followed by what it can also run. */
export function platformVector(platform: Platform): Platform[] {
  const { os, architecture, osVersion = '', osFeatures } = platform;
  const variant = platform.variant ?? '';
  const same = (arch: string, v: string) => makePlatform(os, arch, v, osVersion, osFeatures);
  const vector: Platform[] = [same(architecture, variant)];
  switch (architecture) {
    case 'amd64': {
      const level = goAtoi(variant.replace(/^v/, ''));
      if (level !== undefined && level > 1)
        for (let n = level - 1; n >= 1; n--) vector.push(same('amd64', 'v' + n));
      vector.push(same('386', ''));
      return vector;
    }
    case 'arm': {
      const level = goAtoi(variant.replace(/^v/, ''));
      if (level !== undefined && level > 5)
        for (let n = level - 1; n >= 5; n--) vector.push(same('arm', 'v' + n));
      return vector;
    }
    case 'arm64': {
      const v = variant === '' ? 'v8' : variant;
      const versions = arm64Versions(v);
      if (versions === undefined) return [];
      const out: Platform[] = [];
      for (const [major, topMinor] of versions) {
        for (let minor = topMinor; minor >= 0; minor--)
          out.push(same('arm64', minor === 0 ? `v${major}` : `v${major}.${minor}`));
      }
      // Every arm64 CPU runs 32-bit ARM up to v8.
      out.push(...platformVector(same('arm', 'v8')));
      return out;
    }
    default:
      return vector;
  }
}

/** Go's `strconv.Atoi` for small numbers: optional sign, decimal digits. */
function goAtoi(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The (major, highest minor) pairs an arm64 variant runs: `v8.x` → [(8, x)] for x ≤ 9; `v9.x` →
 * [(9, x), (8, min(x + 5, 9))] for x ≤ 7. `v8`/`v9` mean minor 0. Undefined for anything else.
 */
function arm64Versions(variant: string): Array<[number, number]> | undefined {
  const m = /^v([89])(?:\.([0-9]))?$/.exec(variant);
  if (m === null) return undefined;
  const major = Number(m[1]);
  const minor = m[2] === undefined ? 0 : Number(m[2]);
  if (major === 8) return [[8, minor]];
  if (minor > 7) return undefined;
  return [
    [9, minor],
    [8, Math.min(minor + 5, 9)],
  ];
}

/**
 * The matcher containerd's `platforms.Only(p)` builds (see the module comment): `p` and the platforms
 * it can also run, best first, with Windows OS-version rules and OS-feature subsets. Never throws.
 */
export function platformMatcher(p: PlatformLike, options: MatcherOptions = {}): PlatformMatcher {
  const hostOs = options.host?.os ?? hostOS();
  const normalized = normalizePlatform(p, { host: { os: hostOs, architecture: '' } });
  return orderedMatcher(normalized, platformVector(normalized), hostOs);
}

/** containerd's `platforms.OnlyStrict(p)`: the platform itself only (normalized), no fallbacks. */
export function strictMatcher(p: PlatformLike, options: MatcherOptions = {}): PlatformMatcher {
  const hostOs = options.host?.os ?? hostOS();
  const normalized = normalizePlatform(p, { host: { os: hostOs, architecture: '' } });
  return orderedMatcher(normalized, [normalized], hostOs);
}

/**
 * The Windows host matcher (containerd `Default()` on Windows): exact OS/architecture/variant, the
 * OS-version rules, `win32k` ignored, and among matches the higher `os.version` string first.
 */
function windowsHostMatcher(host: Platform, hostOs: string): PlatformMatcher {
  const single = newSingle(host, hostOs);
  const match = (c: PlatformLike) => singleMatch(single, toPlatform(c), hostOs);
  const less = (a: PlatformLike, b: PlatformLike): boolean => {
    const am = match(a);
    const bm = match(b);
    if (am && bm) return compareCodePoints(toPlatform(a).osVersion ?? '', toPlatform(b).osVersion ?? '') > 0;
    return am && !bm;
  };
  return {
    platform: single.normalized,
    match,
    less,
    compare: comparatorOf(less),
    rank: (c) => (match(c) ? 0 : -1),
  };
}

/**
 * The matcher containerd uses when no platform is requested (`platforms.Default()`), for a host with
 * the given platform (default: this host, see `hostPlatform`): Windows hosts get the Windows host
 * matcher, macOS hosts prefer themselves then `linux/<arch>`, everything else gets `platformMatcher`.
 */
export function defaultMatcher(
  host: Platform = hostPlatform(),
  options: MatcherOptions = {},
): PlatformMatcher {
  const hostOs = options.host?.os ?? host.os;
  const normalized = normalizePlatform(host, { host: { os: hostOs, architecture: '' } });
  if (normalized.os === 'windows') return windowsHostMatcher(host, hostOs);
  if (normalized.os === 'darwin') {
    return orderedMatcher(normalized, [host, makePlatform('linux', host.architecture)], hostOs);
  }
  return platformMatcher(host, { host: options.host ?? host });
}

/** Whether a value is a `PlatformMatcher` (as opposed to a platform). */
export function isPlatformMatcher(v: unknown): v is PlatformMatcher {
  return typeof v === 'object' && v !== null && typeof (v as { match?: unknown }).match === 'function';
}
