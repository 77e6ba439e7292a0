/**
 * The platform value kimg works with, and conversions from and to the OCI `platform` object found on
 * image-index entries and image configs.
 *
 * A platform names what a binary image runs on: operating system, CPU architecture, an optional
 * architecture variant (`v7` for 32-bit ARM, `v8.2` for arm64, `v3` for amd64 micro-architecture
 * levels), and for Windows the OS version (`10.0.20348.3091`). The OCI image spec spells the last two
 * fields `os.version` / `os.features`; kimg's `Platform` uses camelCase like containerd's Go struct
 * (image-spec `specs-go/v1/descriptor.go`, used by containerd/platforms).
 */
import type { OciPlatform } from '../oci/index.js';

/**
 * A platform: `os` and `architecture` as Go spells them (`GOOS`/`GOARCH`: `linux`, `amd64`, `arm64`),
 * optional `variant`, `osVersion` and `osFeatures`. Empty optional fields are omitted, never `''`.
 */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
}

/** Anything kimg accepts where a platform is expected: its own `Platform` or an OCI `platform` object. */
export type PlatformLike = Platform | OciPlatform;

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/**
 * Builds a Platform, omitting empty optional fields so that two equal platforms are deep-equal.
 * Feature lists are copied; an empty list is omitted.
 */
export function makePlatform(
  os: string,
  architecture: string,
  variant = '',
  osVersion = '',
  osFeatures?: readonly string[],
): Platform {
  const p: Platform = { os, architecture };
  if (variant !== '') p.variant = variant;
  if (osVersion !== '') p.osVersion = osVersion;
  if (osFeatures !== undefined && osFeatures.length > 0) p.osFeatures = [...osFeatures];
  return p;
}

/**
 * Reads a `Platform` or an OCI `platform` object (from JSON: wrong-typed fields read as empty) into a
 * `Platform`. Never throws.
 */
export function toPlatform(p: PlatformLike): Platform {
  const r = p as unknown as Record<string, unknown>;
  const osVersion = typeof r['osVersion'] === 'string' ? r['osVersion'] : str(r['os.version']);
  const rawFeatures = Array.isArray(r['osFeatures']) ? r['osFeatures'] : r['os.features'];
  const features = Array.isArray(rawFeatures)
    ? rawFeatures.filter((f): f is string => typeof f === 'string')
    : undefined;
  return makePlatform(str(r['os']), str(r['architecture']), str(r['variant']), osVersion, features);
}

/** Converts a `Platform` to the OCI `platform` object written into index entries (`os.version`, `os.features`). */
export function toOciPlatform(p: Platform): OciPlatform {
  const o: OciPlatform = { architecture: p.architecture, os: p.os };
  if (p.osVersion) o['os.version'] = p.osVersion;
  if (p.osFeatures && p.osFeatures.length > 0) o['os.features'] = [...p.osFeatures];
  if (p.variant) o.variant = p.variant;
  return o;
}

/**
 * Orders strings by Unicode code point, which is the byte order of their UTF-8 encodings: the order
 * Go's `<` on strings and `slices.Sort` use (JavaScript's default sort compares UTF-16 units instead).
 */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) ?? 0;
    const y = b.codePointAt(i) ?? 0;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length - b.length < 0 ? -1 : a.length === b.length ? 0 : 1;
}
