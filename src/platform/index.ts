/**
 * Platforms: parsing `os/arch[/variant]` specifiers, normalizing them, and choosing the manifest of an
 * image index that fits a node.
 *
 * An image index (Docker "manifest list") points at one manifest per platform. A node picks the entry
 * its platform matches best: `linux/amd64` also runs `linux/386`; an arm64 node also runs 32-bit ARM
 * v8…v5; a Windows node runs images whose `os.version` its kernel supports. Spellings are normalized
 * first (`x86_64` = `amd64`, `aarch64` = `arm64` = `arm64/v8`, `armhf` = `arm` = `arm/v7`).
 *
 * Follows containerd/platforms v1.0.0-rc.4 (`platforms.go`, `database.go`, `compare.go`,
 * `defaults*.go`, `cpuinfo*.go`, `platform_windows_compat.go`) and containerd's
 * `core/images/image.go` for index selection; see docs/design/upstream-parity.md.
 */
export { makePlatform, toPlatform, toOciPlatform, type Platform, type PlatformLike } from './types.js';
export {
  parsePlatform,
  normalizePlatform,
  formatPlatform,
  formatPlatformAll,
  type PlatformOptions,
} from './parse.js';
export { hostPlatform, type HostProbe } from './host.js';
export {
  platformMatcher,
  strictMatcher,
  defaultMatcher,
  platformVector,
  isPlatformMatcher,
  type PlatformMatcher,
  type MatcherOptions,
} from './match.js';
export { selectManifest, orderManifests, type PlatformEntry, type SelectManifestOptions } from './select.js';
export { windowsHostCanRun, parseWindowsVersion, type WindowsVersion } from './windows.js';
