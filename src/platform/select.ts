/**
 * Choosing the child manifest of an image index (a "multi-arch image") for a platform.
 *
 * The index lists one manifest per platform. The entries whose platform the matcher accepts are
 * ordered best first (see `platformMatcher`); entries that declare no platform at all are kept as
 * last-resort candidates, because their image config may still say they fit — the caller then checks
 * the config's `os`/`architecture` with the same matcher, as containerd does. When nothing fits, the
 * error lists what the index offers.
 *
 * Source: containerd `core/images/image.go` (`Manifest`: filter with `Match`, entries without a
 * platform kept and sorted last, `SliceStable` with `Less`) and `core/images/handlers.go`.
 */
import { KimgError } from '../errors/index.js';
import type { OciPlatform } from '../oci/index.js';
import { hostPlatform } from './host.js';
import {
  defaultMatcher,
  isPlatformMatcher,
  platformMatcher,
  type MatcherOptions,
  type PlatformMatcher,
} from './match.js';
import { formatPlatformAll } from './parse.js';
import { toPlatform, type PlatformLike } from './types.js';

/** An index entry: anything with an optional OCI `platform` (a `Descriptor`, typically). */
export interface PlatformEntry {
  platform?: OciPlatform | undefined;
}

/** Options of `selectManifest` / `orderManifests`. */
export interface SelectManifestOptions extends MatcherOptions {
  /** How to name the index in the error message: its digest or reference. */
  index?: string;
}

function hasPlatform(e: PlatformEntry): e is PlatformEntry & { platform: OciPlatform } {
  return e.platform !== undefined && e.platform !== null;
}

function resolveMatcher(
  platform: PlatformLike | PlatformMatcher | undefined,
  options: SelectManifestOptions,
): { matcher: PlatformMatcher; requested: string; isHost: boolean } {
  if (platform === undefined) {
    const host = options.host ?? hostPlatform();
    return { matcher: defaultMatcher(host, options), requested: formatPlatformAll(host), isHost: true };
  }
  if (isPlatformMatcher(platform)) {
    return { matcher: platform, requested: formatPlatformAll(platform.platform), isHost: false };
  }
  const matcher = platformMatcher(platform, options);
  // As given (`linux/arm64/v8` stays v8), unless the OS was left empty for the host's.
  const shown = toPlatform(platform).os === '' ? matcher.platform : platform;
  return { matcher, requested: formatPlatformAll(shown), isHost: false };
}

function candidates<T extends PlatformEntry>(entries: readonly T[], matcher: PlatformMatcher): T[] {
  const kept = entries.filter((e) => !hasPlatform(e) || matcher.match(e.platform));
  // Array.prototype.sort is stable, like Go's sort.SliceStable.
  return kept.sort((a, b) => {
    if (!hasPlatform(a)) return hasPlatform(b) ? 1 : 0;
    if (!hasPlatform(b)) return -1;
    return matcher.compare(a.platform, b.platform);
  });
}

/**
 * The entries of an index that can run on `platform`, best first; entries without a platform come
 * last (check their image config before using one). `platform` may be a platform (matched with
 * `platformMatcher`), a ready matcher, or omitted for the host's default matcher. Returns a new
 * array, possibly empty. Never throws.
 */
export function orderManifests<T extends PlatformEntry>(
  entries: readonly T[],
  platform?: PlatformLike | PlatformMatcher,
  options: SelectManifestOptions = {},
): T[] {
  return candidates(entries, resolveMatcher(platform, options).matcher);
}

/**
 * The best entry of an index for `platform` (see `orderManifests`). If the result has no `platform`,
 * the caller must check its image config's `os`/`architecture` with the same matcher.
 *
 * @throws KimgError `PLATFORM_NOT_FOUND` when no entry fits; the message starts with containerd's
 *   `no match for platform in manifest` and names the platform requested and every platform the index
 *   offers (`details.input` = requested, `details.items` = offered, formatted with `formatPlatformAll`).
 */
export function selectManifest<T extends PlatformEntry>(
  entries: readonly T[],
  platform?: PlatformLike | PlatformMatcher,
  options: SelectManifestOptions = {},
): T {
  const { matcher, requested, isHost } = resolveMatcher(platform, options);
  const best = candidates(entries, matcher)[0];
  if (best !== undefined) return best;
  const offered: string[] = [];
  for (const e of entries) {
    if (!hasPlatform(e)) continue;
    const f = formatPlatformAll(e.platform);
    if (!offered.includes(f)) offered.push(f);
  }
  const where = options.index ? ` ${options.index}` : '';
  const offers =
    offered.length === 0
      ? 'the image index lists no manifests'
      : `the image index offers only ${offered.join(', ')}`;
  throw new KimgError(
    'PLATFORM_NOT_FOUND',
    `no match for platform in manifest${where}: not found: ${requested}${isHost ? " (this host's platform)" : ''} ` +
      `was requested but ${offers}; request one of the offered platforms or use an image built for ${requested}`,
    { input: requested, items: offered },
  );
}
