/**
 * Platform specifiers: the short strings users type (`linux/amd64`, `arm64`, `linux/arm/v7`,
 * `windows(10.0.20348)/amd64`), their normalization and their formatting.
 *
 * Grammar: `<os>[(<os options>)] | <arch> | <os>[(<os options>)]/<arch>[/<variant>]`, where the OS
 * options are `<os.version>[+<feature>…]` with `%`, `+`, `(`, `)` and `/` percent-escaped. A single
 * token is an OS when Go knows it (the architecture is then the host's), otherwise an architecture
 * (the OS is then the host's). Wildcards (`*`) are refused, as upstream has not defined them.
 *
 * Source: containerd/platforms `platforms.go` (Parse, Format, FormatAll, Normalize) and `database.go`
 * @ 09756f59. Two deliberate differences, both only where upstream's output cannot be parsed back:
 * formatting joins the parts with `/` without `path.Clean` (upstream turns `linux/..` into `.`), and
 * OS options escape every character outside `[A-Za-z0-9_.-]` (upstream escapes only `% + ( ) /` and
 * writes e.g. a space raw, which its own parser then rejects). For every specifier upstream can
 * round-trip, the output is the same.
 */
import { KimgError, quote } from '../errors/index.js';
import { isKnownArch, isKnownOS, normalizeArch, normalizeOS } from './internal/database.js';
import { hostOS, hostPlatform } from './host.js';
import { compareCodePoints, makePlatform, toPlatform, type Platform, type PlatformLike } from './types.js';

/** Options of `parsePlatform` and `normalizePlatform`. */
export interface PlatformOptions {
  /**
   * The host platform used to fill in what a specifier leaves out (the OS of `arm64`, the architecture
   * of `linux`, an empty OS when normalizing). Default: `hostPlatform()`.
   */
  host?: Platform;
}

const SPECIFIER_RE = /^[A-Za-z0-9_.-]+$/;
const OS_RE = /^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$/;
const SPECIFIER_HINT =
  'expected <os>, <arch> or <os>/<arch>[/<variant>], optionally <os>(<os.version>[+<feature>...]), for example linux/amd64, linux/arm64/v8 or windows(10.0.20348)/amd64';

function invalid(specifier: string, message: string): KimgError<'PLATFORM_INVALID'> {
  return new KimgError('PLATFORM_INVALID', `${message}; ${SPECIFIER_HINT}`, { input: specifier });
}

/** Splits on `sep` into at most `n` parts, the last holding the rest (Go's `strings.SplitN`). */
function splitN(s: string, sep: string, n: number): string[] {
  const out: string[] = [];
  let rest = s;
  while (out.length < n - 1) {
    const i = rest.indexOf(sep);
    if (i < 0) break;
    out.push(rest.slice(0, i));
    rest = rest.slice(i + sep.length);
  }
  out.push(rest);
  return out;
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/**
 * Decodes `%XX` escapes (Go's `url.PathUnescape`). Throws a message like Go's `invalid URL escape "%zz"`
 * for a `%` not followed by two hex digits. Decoded bytes are read as UTF-8 (invalid sequences become
 * U+FFFD).
 */
function decodeOSOption(v: string): string {
  if (!v.includes('%')) return v;
  const bytes: number[] = [];
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 0x25) {
      const hex = v.slice(i + 1, i + 3);
      if (!HEX.test(hex)) throw new Error(`invalid URL escape ${JSON.stringify(v.slice(i, i + 3))}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      // Only [A-Za-z0-9_.-] reach here (the OS regex), all single-byte.
      bytes.push(c);
    }
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(Uint8Array.from(bytes));
}

const OPTION_SAFE = /[A-Za-z0-9_.-]/;

/** Percent-escapes an OS option value so that it re-parses (see the module comment). */
function encodeOSOption(v: string): string {
  let out = '';
  for (const ch of v) {
    if (OPTION_SAFE.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function parseOSFeatures(specifier: string, s: string): string[] {
  const features: string[] = [];
  for (const raw of s.split('+')) {
    const t = raw.trim();
    if (t === '')
      throw invalid(
        specifier,
        `${quote(specifier)} has invalid OS features: empty os feature: invalid argument`,
      );
    let f: string;
    try {
      f = decodeOSOption(t);
    } catch (e) {
      throw invalid(
        specifier,
        `${quote(specifier)} has invalid OS features: invalid os feature ${quote(t)}: ${(e as Error).message}`,
      );
    }
    if (f !== '') features.push(f);
  }
  return features;
}

/**
 * Parses a platform specifier (see the module comment) into a `Platform`. The OS and architecture are
 * normalized (`Linux/x86_64` → `linux/amd64`), but like upstream the result keeps a few spellings
 * that matchers later normalize: `linux/arm` and `linux/arm/v7` differ (`variant` absent vs `v7`), and
 * `linux/arm64/v8` keeps `v8`. OS features stay in the order given.
 *
 * @throws KimgError `PLATFORM_INVALID` (with `input`) for an empty string, a wildcard, a component with
 *   characters outside `[A-Za-z0-9_.-]`, a bad `%` escape or empty `+` feature, more than three parts,
 *   or a single token that is neither a known OS nor a known architecture.
 */
export function parsePlatform(specifier: string, options: PlatformOptions = {}): Platform {
  if (typeof specifier !== 'string') {
    throw new KimgError(
      'PLATFORM_INVALID',
      `a platform specifier must be a string, got ${typeof specifier}; ${SPECIFIER_HINT}`,
      {
        input: String(specifier),
      },
    );
  }
  if (specifier.includes('*')) {
    throw invalid(specifier, `${quote(specifier)}: wildcards not yet supported: invalid argument`);
  }
  const parts = splitN(specifier, '/', 4);
  const first = parts[0] ?? '';
  const osMatch = OS_RE.exec(first);
  if (osMatch === null) {
    throw invalid(
      specifier,
      `${quote(first)} is an invalid OS component of ${quote(specifier)}: OSAndVersion specifier component must match ${quote(OS_RE.source)}: invalid argument`,
    );
  }
  const host = () => options.host ?? hostPlatform();
  const os = normalizeOS(osMatch[1] ?? '', hostOS());
  let osVersion: string;
  try {
    osVersion = decodeOSOption(osMatch[2] ?? '');
  } catch (e) {
    throw invalid(
      specifier,
      `${quote(specifier)} has an invalid OS version ${quote(osMatch[2] ?? '')}: ${(e as Error).message}`,
    );
  }
  const featureText = osMatch[3] ?? '';
  const osFeatures = featureText === '' ? [] : parseOSFeatures(specifier, featureText.slice(1));
  for (const part of parts.slice(1)) {
    if (!SPECIFIER_RE.test(part)) {
      throw invalid(
        specifier,
        `${quote(part)} is an invalid component of ${quote(specifier)}: platform specifier component must match ${quote(SPECIFIER_RE.source)}: invalid argument`,
      );
    }
  }

  switch (parts.length) {
    case 1: {
      if (isKnownOS(os)) {
        // Known OS: the architecture is the host's; an ARM host other than v7 adds its variant.
        const h = host();
        const variant = h.architecture === 'arm' && (h.variant ?? '') !== 'v7' ? (h.variant ?? '') : '';
        return makePlatform(os, h.architecture, variant, osVersion, osFeatures);
      }
      const [arch, v] = normalizeArch(first, '');
      const variant = arch === 'arm' && v === 'v7' ? '' : v;
      if (isKnownArch(arch)) return makePlatform(host().os, arch, variant);
      throw invalid(
        specifier,
        `${quote(specifier)}: unknown operating system or architecture: invalid argument`,
      );
    }
    case 2: {
      const [arch, v] = normalizeArch(parts[1] ?? '', '');
      const variant = arch === 'arm' && v === 'v7' ? '' : v;
      return makePlatform(os, arch, variant, osVersion, osFeatures);
    }
    case 3: {
      const [arch, v] = normalizeArch(parts[1] ?? '', parts[2] ?? '');
      const variant = arch === 'arm64' && v === '' ? 'v8' : v;
      return makePlatform(os, arch, variant, osVersion, osFeatures);
    }
    default:
      throw invalid(specifier, `${quote(specifier)}: cannot parse platform specifier: invalid argument`);
  }
}

/** Sorts and de-duplicates a feature list in Go's byte order. */
function sortUnique(features: readonly string[]): string[] {
  const sorted = [...features].sort(compareCodePoints);
  return sorted.filter((f, i) => i === 0 || f !== sorted[i - 1]);
}

/**
 * Normalizes a platform to the canonical spelling matchers compare: OS lowercased (`macos` → `darwin`,
 * empty → the host's OS), architecture and variant per the table (`aarch64` → `arm64`, `arm64/v8` →
 * `arm64`, `arm` → `arm/v7`, `amd64/v1` → `amd64`, `armel` → `arm/v6`, `i386` → `386`), OS features
 * sorted and de-duplicated; `osVersion` untouched. Idempotent. Never throws.
 */
export function normalizePlatform(p: PlatformLike, options: PlatformOptions = {}): Platform {
  const q = toPlatform(p);
  const os = normalizeOS(q.os, options.host?.os ?? hostOS());
  const [arch, variant] = normalizeArch(q.architecture, q.variant ?? '');
  return makePlatform(
    os,
    arch,
    variant,
    q.osVersion ?? '',
    q.osFeatures ? sortUnique(q.osFeatures) : undefined,
  );
}

function join(...parts: string[]): string {
  return parts.filter((s) => s !== '').join('/');
}

/**
 * Formats `os/arch[/variant]` (containerd `platforms.Format`): empty parts are left out; a platform
 * without an OS formats as `unknown`. The OS version and features are not shown (see
 * `formatPlatformAll`).
 */
export function formatPlatform(p: PlatformLike): string {
  const q = toPlatform(p);
  if (q.os === '') return 'unknown';
  return join(q.os, q.architecture, q.variant ?? '');
}

/**
 * Formats a platform with its OS options (containerd `platforms.FormatAll`):
 * `windows(10.0.17763.5458)/amd64`, `linux(+gpu+simd)/amd64`. Features are sorted, de-duplicated and
 * empty ones skipped; option values are `%`-escaped so the result always parses back to the same
 * platform. Without OS version and features this equals `formatPlatform`.
 */
export function formatPlatformAll(p: PlatformLike): string {
  const q = toPlatform(p);
  if (q.os === '') return 'unknown';
  const osVersion = q.osVersion ?? '';
  const features = q.osFeatures ? sortUnique(q.osFeatures).filter((f) => f !== '') : [];
  if (osVersion === '' && features.length === 0) return join(q.os, q.architecture, q.variant ?? '');
  let osPart = q.os + '(' + encodeOSOption(osVersion);
  if (features.length > 0) osPart += '+' + features.map(encodeOSOption).join('+');
  osPart += ')';
  return join(osPart, q.architecture, q.variant ?? '');
}
