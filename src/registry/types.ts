/**
 * The public shapes of the registry client: what names an image on a registry, the client's options
 * and defaults, per-call options, and what manifest, blob and push calls return. Shared by the
 * `RegistryClient` façade and the request, manifest, blob, push and listing parts behind it.
 */
import type { Readable } from 'node:stream';
import type { AuthConfig } from '../credentials/index.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/index.js';
import type { PlatformLike, PlatformMatcher } from '../platform/index.js';
import type { RegistryEndpoint } from './hosts.js';
import type { Clock, RetryPolicy, RetryPolicyOptions } from './retry.js';

/**
 * Largest manifest accepted: containerd's `4*1048*1048` (4,393,984 bytes; note 1048, not 1024),
 * which is at least the 4 MiB the distribution spec asks registries and clients to support.
 */
export const MAX_MANIFEST_BYTES = 4 * 1048 * 1048;

/** Where an image lives: the reference's domain and repository path (src/reference `Reference`). */
export interface RepositoryRef {
  /** Registry host as in the reference (`docker.io`, `127.0.0.1:5000`). */
  domain: string;
  /** Repository path (`library/busybox`). */
  path: string;
}

/** A repository plus a tag and/or digest (the digest wins when both are present). */
export interface ImageRef extends RepositoryRef {
  tag?: string | undefined;
  digest?: string | undefined;
}

/** Looks up credentials for a host (the registry's domain, or a mirror's host). */
export type CredentialLookup = (host: string) => AuthConfig | undefined | Promise<AuthConfig | undefined>;

/** Options of {@link RegistryClient}. Defaults in {@link DEFAULT_REGISTRY_CLIENT_OPTIONS}. */
export interface RegistryClientOptions {
  /** Credentials per host; called with the registry domain (or a mirror host). Default: none. */
  credentials?: CredentialLookup;
  /** containerd-style hosts directory (`/etc/containerd/certs.d`). */
  hostsDir?: string;
  /** Hosts reached over plain HTTP (`host:port`, or a host name for all its ports). */
  plainHttp?: readonly string[];
  /** Extra CA files trusted for every HTTPS endpoint. */
  caFiles?: readonly string[];
  /** Replaces hosts resolution entirely (tests, embedding). */
  endpoints?: (registry: string) => RegistryEndpoint[] | Promise<RegistryEndpoint[]>;
  /** No bytes (or no response) for this long fails a request with `STALLED`. Default 60 s. */
  stallTimeoutMs?: number;
  /** Retry policy or its options. */
  retry?: RetryPolicy | Partial<RetryPolicyOptions>;
  /** Time source (tests). */
  clock?: Clock;
  /** Random source for jitter (tests). */
  random?: () => number;
  userAgent?: string;
  /** Debug line sink; default: stderr when `KIMG_DEBUG` is set. */
  debug?: (line: string) => void;
  /** Non-fatal configuration warnings (a hosts.toml that does not parse). Default: debug log. */
  warn?: (message: string) => void;
  /** Max connections per origin. Default 16. */
  connectionsPerHost?: number;
  /** How long resolved endpoints (hosts.toml) are reused before re-reading. Default 10 s. */
  hostsCacheMs?: number;
}

/** Defaults of {@link RegistryClientOptions}. */
export const DEFAULT_REGISTRY_CLIENT_OPTIONS = Object.freeze({
  /**
   * A stall window per request, where containerd's `image_pull_progress_timeout` (default 5m) covers a
   * whole pull: 60 s without a byte on one request means the registry has stalled.
   */
  stallTimeoutMs: 60_000,
  connectionsPerHost: 16,
  hostsCacheMs: 10_000,
  userAgent: 'kimg',
});

/** Options every call takes. */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  /**
   * Credentials for this call, overriding the `credentials` option; `null` = anonymous. Applied to
   * every endpoint of the registry unless `serverAddress` names another host (containerd CRI).
   */
  auth?: AuthConfig | null | undefined;
  /** Stall window for this call. */
  stallTimeoutMs?: number | undefined;
}

/** A fetched manifest or index: the exact bytes and what they are. */
export interface FetchedManifest {
  /** `mediaType`, `digest` (of `bytes`) and `size` (= bytes.length). */
  descriptor: Descriptor;
  mediaType: string;
  digest: string;
  bytes: Buffer;
  /** Parsed JSON. */
  manifest: ImageManifest | ImageIndex;
  /** True for an OCI index / Docker manifest list. */
  isIndex: boolean;
}

/** A platform as `selectManifest` understands it: a string (`linux/arm64/v8`) or an object. */
export type PlatformSelector = (index: ImageIndex, indexDescriptor: Descriptor) => Descriptor;

/** Options of {@link RegistryClient.getImageManifest}. */
export interface ImageManifestOptions extends CallOptions {
  /**
   * The platform to select from an index (src/platform `selectManifest`): a platform, a matcher, or
   * omitted for this host's platform (containerd's default).
   */
  platform?: PlatformLike | PlatformMatcher;
  /** A custom chooser of the index entry; overrides `platform`. */
  select?: PlatformSelector;
}

/** Result of {@link RegistryClient.getImageManifest}. */
export interface ImageManifestResult {
  /** The index the reference named, if it named one. */
  index?: FetchedManifest;
  /** The image manifest (selected from the index, or named directly). */
  manifest: FetchedManifest;
}

/** Options of {@link RegistryClient.openBlob}. */
export interface OpenBlobOptions extends CallOptions {
  /** Verify digest and size while streaming (default true). False = size-bounded raw stream. */
  verify?: boolean;
  /** Start at this byte (raw mode only; sends `Range`). Default 0. */
  offset?: number;
  /** Called per chunk with the position reached. */
  onProgress?: (position: number, size: number) => void;
}

/** Options of {@link RegistryClient.pushBlob}. */
export interface PushBlobOptions extends CallOptions {
  /** Repositories (on the same registry) to try to mount the blob from before uploading. */
  mountFrom?: readonly string[];
  /** Upload a Buffer in PATCH chunks of this size instead of one PUT. */
  chunkSize?: number;
  /** Skip the existence check. */
  skipExistsCheck?: boolean;
}

/** What {@link RegistryClient.pushBlob} did. */
export type PushBlobResult =
  { status: 'exists' } | { status: 'mounted'; from: string } | { status: 'uploaded' };

/** Content to upload: bytes, or a factory for a fresh stream per attempt. */
export type BlobContent = Buffer | Uint8Array | (() => Readable);
