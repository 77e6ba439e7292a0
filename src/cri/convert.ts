/**
 * CRI wire messages ↔ kimg's domain types (`src/manager/image-service.ts`). Pure functions, no I/O:
 * the server and the client are thin loops around these.
 *
 * AuthConfig follows containerd's `ParseAuth` (internal/cri/server/images/image_pull.go), the
 * behaviour a CRI client can expect from a runtime:
 * - `server_address` set and its host ≠ the image's registry host → no credentials (anonymous);
 * - else `username` (+ `password`);
 * - else `identity_token` (an OAuth2 refresh token);
 * - else `auth` = base64(`user:password`), decoded; malformed → `INVALID_ARGUMENT`.
 * - `registry_token`: containerd ignores it ("TODO: support RegistryToken"); kimg's registry client
 *   supports a pre-issued bearer token, so kimg passes it on (a deliberate superset).
 * An AuthConfig with every field empty is anonymous.
 */
import { Secret, type AuthConfig } from '../credentials/index.js';
import { KimgError } from '../errors/index.js';
import type { ImageFsUsage, ImageInfo, ImageSpec, PodSandboxInfo } from '../manager/index.js';
import { DEFAULT_REGISTRY, LEGACY_DEFAULT_REGISTRY, tryParseReference } from '../reference/index.js';
import type {
  WireAuthConfig,
  WireFilesystemUsage,
  WireImage,
  WireImageSpec,
  WirePodSandboxConfig,
} from './proto.js';

/** Wire ImageSpec → domain. An absent spec or empty `image` is `INVALID_ARGUMENT` (containerd: same). */
export function specFromWire(spec: WireImageSpec | null | undefined, rpc: string): ImageSpec {
  const image = spec?.image ?? '';
  if (image === '') {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `${rpc}: ImageSpec.image is empty; name the image to ${rpc === 'PullImage' ? 'pull' : 'address'}`,
    );
  }
  return imageSpecFieldsFromWire({ ...spec, image } as WireImageSpec);
}

/**
 * Wire ImageSpec → domain, as it came (an empty `image` stays empty): for specs the runtime reports,
 * which nothing validates; {@link specFromWire} for specs a caller sends.
 */
export function imageSpecFieldsFromWire(spec: WireImageSpec): ImageSpec {
  const out: ImageSpec = { image: spec.image ?? '' };
  if (spec.runtime_handler) out.runtimeHandler = spec.runtime_handler;
  if (spec.annotations && Object.keys(spec.annotations).length > 0) out.annotations = { ...spec.annotations };
  return out;
}

/** Domain ImageSpec → wire (fields left empty are simply not set). */
export function specToWire(spec: ImageSpec): Partial<WireImageSpec> {
  const out: Partial<WireImageSpec> = { image: spec.image };
  if (spec.runtimeHandler) out.runtime_handler = spec.runtimeHandler;
  if (spec.annotations) out.annotations = { ...spec.annotations };
  return out;
}

/** Domain ImageInfo → wire Image, as containerd fills it. */
export function imageToWire(info: ImageInfo): Partial<WireImage> {
  const out: Partial<WireImage> = {
    id: info.id,
    repo_tags: [...info.repoTags],
    repo_digests: [...info.repoDigests],
    size: info.size,
    pinned: info.pinned,
  };
  if (info.uid !== undefined) out.uid = { value: info.uid };
  if (info.username !== undefined && info.username !== '') out.username = info.username;
  if (info.spec) out.spec = specToWire(info.spec) as WireImageSpec;
  return out;
}

/** Wire Image → domain ImageInfo (the client side). */
export function imageFromWire(img: WireImage): ImageInfo {
  const out: ImageInfo = {
    id: img.id,
    repoTags: [...(img.repo_tags ?? [])],
    repoDigests: [...(img.repo_digests ?? [])],
    size: Number(img.size ?? 0),
    pinned: img.pinned === true,
  };
  if (img.uid) out.uid = Number(img.uid.value);
  if (img.username) out.username = img.username;
  if (img.spec && img.spec.image) {
    const spec: ImageSpec = { image: img.spec.image };
    if (img.spec.runtime_handler) spec.runtimeHandler = img.spec.runtime_handler;
    if (img.spec.annotations && Object.keys(img.spec.annotations).length > 0)
      spec.annotations = { ...img.spec.annotations };
    out.spec = spec;
  }
  return out;
}

/** Wire PodSandboxConfig → domain (undefined without metadata). */
export function sandboxFromWire(cfg: WirePodSandboxConfig | null | undefined): PodSandboxInfo | undefined {
  if (!cfg?.metadata) return undefined;
  const m = cfg.metadata;
  const out: PodSandboxInfo = { name: m.name, namespace: m.namespace, uid: m.uid };
  if (m.attempt) out.attempt = m.attempt;
  if (cfg.labels && Object.keys(cfg.labels).length > 0) out.labels = { ...cfg.labels };
  if (cfg.annotations && Object.keys(cfg.annotations).length > 0) out.annotations = { ...cfg.annotations };
  return out;
}

/** Domain PodSandboxInfo → wire. */
export function sandboxToWire(s: PodSandboxInfo): Partial<WirePodSandboxConfig> {
  return {
    metadata: { name: s.name, namespace: s.namespace, uid: s.uid, attempt: s.attempt ?? 0 },
    labels: { ...(s.labels ?? {}) },
    annotations: { ...(s.annotations ?? {}) },
  };
}

/** Registry host names that mean Docker Hub (CRI clients send any of them as `server_address`). */
const DOCKER_HUB_HOSTS = new Set([DEFAULT_REGISTRY, LEGACY_DEFAULT_REGISTRY, 'registry-1.docker.io']);

function hostOfServerAddress(address: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `https://${address}`;
  try {
    return new URL(withScheme).host;
  } catch {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `AuthConfig.server_address ${JSON.stringify(address)} is not a host or URL`,
      {
        input: address,
      },
    );
  }
}

function sameRegistry(a: string, b: string): boolean {
  if (a === b) return true;
  return DOCKER_HUB_HOSTS.has(a) && DOCKER_HUB_HOSTS.has(b);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Wire AuthConfig → kimg AuthConfig for pulling `image` (see the module comment for the rules).
 * Returns undefined for "anonymous".
 * @throws KimgError `INVALID_ARGUMENT` for a malformed `auth` or `server_address` (never quoting secrets).
 */
export function authFromWire(auth: WireAuthConfig | null | undefined, image: string): AuthConfig | undefined {
  if (!auth) return undefined;
  if (auth.server_address) {
    const want = hostOfServerAddress(auth.server_address);
    const parsed = tryParseReference(image);
    const host = parsed.ok ? parsed.reference.domain : undefined;
    if (host === undefined || !sameRegistry(want, host)) return undefined;
  }
  const base: AuthConfig = auth.server_address ? { serverAddress: auth.server_address } : {};
  if (auth.username) return { ...base, username: auth.username, password: new Secret(auth.password ?? '') };
  if (auth.identity_token) return { ...base, identityToken: new Secret(auth.identity_token) };
  if (auth.auth) {
    const text = auth.auth.trim();
    const decoded =
      BASE64.test(text) && text.length % 4 === 0 ? Buffer.from(text, 'base64').toString('utf8') : undefined;
    const colon = decoded?.indexOf(':') ?? -1;
    if (decoded === undefined || colon < 0) {
      throw new KimgError(
        'INVALID_ARGUMENT',
        'AuthConfig.auth is not base64 of "username:password"; send username/password instead or fix the encoding',
      );
    }
    return { ...base, username: decoded.slice(0, colon), password: new Secret(decoded.slice(colon + 1)) };
  }
  if (auth.registry_token) return { ...base, registryToken: new Secret(auth.registry_token) };
  return undefined;
}

/** kimg AuthConfig → wire (the client side; secrets revealed only here, onto the wire). */
export function authToWire(auth: AuthConfig): Partial<WireAuthConfig> {
  const out: Partial<WireAuthConfig> = {};
  if (auth.username !== undefined) out.username = auth.username;
  if (auth.password !== undefined) out.password = auth.password.reveal();
  if (auth.identityToken !== undefined) out.identity_token = auth.identityToken.reveal();
  if (auth.registryToken !== undefined) out.registry_token = auth.registryToken.reveal();
  if (auth.serverAddress !== undefined) out.server_address = auth.serverAddress;
  return out;
}

/** Domain ImageFsUsage → wire FilesystemUsage. */
export function fsUsageToWire(u: ImageFsUsage): Partial<WireFilesystemUsage> {
  const out: Partial<WireFilesystemUsage> = {
    timestamp: u.timestamp,
    fs_id: { mountpoint: u.mountpoint },
    used_bytes: { value: u.usedBytes },
  };
  if (u.inodesUsed !== undefined) out.inodes_used = { value: u.inodesUsed };
  return out;
}

/** Wire FilesystemUsage → domain. */
export function fsUsageFromWire(u: WireFilesystemUsage): ImageFsUsage {
  const out: ImageFsUsage = {
    timestamp: Number(u.timestamp ?? 0),
    mountpoint: u.fs_id?.mountpoint ?? '',
    usedBytes: Number(u.used_bytes?.value ?? 0),
  };
  if (u.inodes_used) out.inodesUsed = Number(u.inodes_used.value);
  return out;
}
