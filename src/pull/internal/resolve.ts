/**
 * Resolving what a pull fetches: the reference's manifest (selected from an index by platform), its
 * shape, the image config and, for a single-platform image, the check that it suits the platform
 * asked for — before any layer is fetched (containerd `images.Manifest`).
 */
import { KimgError } from '../../errors/index.js';
import {
  MediaType,
  isIndexMediaType,
  isManifestMediaType,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  type OciPlatform,
} from '../../oci/index.js';
import {
  defaultMatcher,
  formatPlatform,
  hostPlatform,
  parsePlatform,
  platformMatcher,
  selectManifest,
  type Platform,
  type PlatformMatcher,
} from '../../platform/index.js';
import type { Reference } from '../../reference/index.js';
import type { CallOptions, FetchedManifest, RegistryClient } from '../../registry/index.js';
import type { ImagePullOptions } from '../types.js';

/** The platform a pull asked for (undefined = the host's) and the matcher derived from it. */
export interface PlatformChoice {
  requested: Platform | undefined;
  matcher: PlatformMatcher;
}

/** Parses the `platform` option; without one, the host's platform with containerd's default matcher. */
export function choosePlatform(platform: ImagePullOptions['platform']): PlatformChoice {
  const requested =
    platform === undefined ? undefined : typeof platform === 'string' ? parsePlatform(platform) : platform;
  return {
    requested,
    matcher: requested ? platformMatcher(requested) : defaultMatcher(hostPlatform()),
  };
}

/** The manifests a reference resolved to. */
export interface ResolvedImage {
  /** The index the reference named, if it named one. */
  index: FetchedManifest | undefined;
  /** The image manifest document (selected from the index, or named directly). */
  manifestDoc: FetchedManifest;
  manifest: ImageManifest;
  /** What the reference names: the index when there is one, else the manifest. */
  root: FetchedManifest;
  /** The platform of the index entry that was selected. */
  selectedPlatform: OciPlatform | undefined;
}

/**
 * Fetches the reference's manifest (one GET; an index is followed to the entry for the platform) and
 * checks it is an image manifest. `UNSUPPORTED_MEDIA_TYPE` for anything else, `MANIFEST_INVALID` for a
 * malformed one; the registry client's codes otherwise.
 */
export async function resolveImage(
  registry: RegistryClient,
  ref: Reference,
  input: string,
  choice: PlatformChoice,
  call: CallOptions,
): Promise<ResolvedImage> {
  const top = await registry.getImageManifest(
    { domain: ref.domain, path: ref.path, tag: ref.tag, digest: ref.digest },
    {
      ...call,
      select: (index, desc) =>
        selectManifest(index.manifests, choice.requested ?? choice.matcher, { index: desc.digest }),
    },
  );
  const manifestDoc = top.manifest;
  if (!isManifestMediaType(manifestDoc.mediaType) || manifestDoc.isIndex) {
    throw new KimgError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${ref.pullRef} resolved to ${manifestDoc.mediaType}, which is not an image manifest kimg can pull`,
      { input, actual: manifestDoc.mediaType },
    );
  }
  const manifest = manifestDoc.manifest as ImageManifest;
  checkManifestShape(manifest, ref.pullRef, manifestDoc.digest);
  const index = top.index;
  const selectedPlatform =
    index?.manifest && 'manifests' in index.manifest
      ? index.manifest.manifests.find((d) => d.digest === manifestDoc.digest)?.platform
      : undefined;
  return { index, manifestDoc, manifest, root: index ?? manifestDoc, selectedPlatform };
}

/** The platform a `resolved` event shows: the selected entry's, else the one asked for, else ''. */
export function resolvedPlatformText(resolved: ResolvedImage, choice: PlatformChoice): string {
  if (resolved.selectedPlatform) return formatPlatform(asPlatform(resolved.selectedPlatform));
  return choice.requested ? formatPlatform(choice.requested) : '';
}

/**
 * Parses the committed config. An image config must be a JSON object (`MANIFEST_INVALID` otherwise);
 * an artifact's config (another media type) may carry anything and parses to `{}`.
 */
export function parseConfig(bytes: Buffer, desc: Descriptor, image: string, input: string): ImageConfig {
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('not a JSON object');
    return parsed as ImageConfig;
  } catch (e) {
    if (!isImageConfigType(desc.mediaType)) return {};
    throw new KimgError(
      'MANIFEST_INVALID',
      `the image config ${desc.digest} of ${image} is not a valid JSON object`,
      { input, cause: e },
    );
  }
}

/**
 * containerd `images.Manifest`: a single-platform image (no index) must match the platform too.
 * `PLATFORM_NOT_FOUND` naming the image's platform otherwise.
 */
export function checkSinglePlatform(
  resolved: ResolvedImage,
  config: ImageConfig,
  choice: PlatformChoice,
  image: string,
  input: string,
): void {
  const configPlatform = platformOfConfig(config);
  if (
    resolved.index ||
    !configPlatform ||
    !isImageConfigType(resolved.manifest.config.mediaType) ||
    choice.matcher.match(asPlatform(configPlatform))
  )
    return;
  const wanted = choice.requested
    ? formatPlatform(choice.requested)
    : 'this host (' + formatPlatform(hostPlatform()) + ')';
  throw new KimgError(
    'PLATFORM_NOT_FOUND',
    `no match for platform in manifest ${resolved.manifestDoc.digest}: not found: ${image} is a single-platform image for ${formatPlatform(asPlatform(configPlatform))}, not ${wanted}; pass --platform to choose`,
    { input, items: [formatPlatform(asPlatform(configPlatform))] },
  );
}

/** The platform a record stores: the selected entry's, the config's, the one asked for, or the host's. */
export function recordPlatform(
  resolved: ResolvedImage,
  config: ImageConfig,
  choice: PlatformChoice,
): OciPlatform {
  return toPlatformObject(
    resolved.selectedPlatform ?? platformOfConfig(config) ?? choice.requested ?? hostPlatform(),
  );
}

function isImageConfigType(t: string): boolean {
  return t === MediaType.OciConfig || t === MediaType.DockerConfig;
}

function checkManifestShape(m: ImageManifest, image: string, digest: string): void {
  const bad = (what: string) =>
    new KimgError(
      'MANIFEST_INVALID',
      `the manifest ${digest} of ${image} is not a valid image manifest: ${what}`,
      {
        input: image,
      },
    );
  if (typeof m !== 'object' || m === null) throw bad('not an object');
  const checkDesc = (d: unknown, where: string): void => {
    const x = d as Partial<Descriptor> | undefined;
    if (
      !x ||
      typeof x.digest !== 'string' ||
      typeof x.size !== 'number' ||
      !Number.isSafeInteger(x.size) ||
      x.size < 0
    ) {
      throw bad(`${where} is not a descriptor with a digest and a size`);
    }
    if (typeof x.mediaType !== 'string') throw bad(`${where} has no mediaType`);
  };
  checkDesc(m.config, 'config');
  if (!Array.isArray(m.layers)) throw bad('layers is not a list');
  m.layers.forEach((l, i) => checkDesc(l, `layers[${i}]`));
  if (isIndexMediaType(m.config.mediaType)) throw bad('the config is an index');
}

function toPlatformObject(p: OciPlatform | Platform): OciPlatform {
  const o = p as Platform & OciPlatform;
  const out: OciPlatform = { architecture: o.architecture, os: o.os };
  if (o.variant) out.variant = o.variant;
  const osVersion = o.osVersion ?? o['os.version'];
  if (osVersion) out['os.version'] = osVersion;
  const features = o.osFeatures ?? o['os.features'];
  if (features?.length) out['os.features'] = [...features];
  return out;
}

function platformOfConfig(config: ImageConfig): OciPlatform | undefined {
  const str = (v: unknown): v is string => typeof v === 'string' && v !== '';
  if (!str(config.os) || !str(config.architecture)) return undefined;
  const p: OciPlatform = { os: config.os, architecture: config.architecture };
  if (str(config.variant)) p.variant = config.variant;
  if (str(config['os.version'])) p['os.version'] = config['os.version'];
  return p;
}

function asPlatform(p: OciPlatform): Platform {
  const out: Platform = { os: p.os, architecture: p.architecture };
  if (p.variant) out.variant = p.variant;
  if (p['os.version']) out.osVersion = p['os.version'];
  if (p['os.features']) out.osFeatures = [...p['os.features']];
  return out;
}
