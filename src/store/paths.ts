/**
 * Where things live under a store root, and how the root is chosen.
 *
 * ```
 * <root>/kimg-store.json        {"version":1}  on-disk format version (newer versions are refused)
 * <root>/oci/oci-layout         OCI image layout: skopeo `oci:<root>/oci:<ref>` and umoci read it
 * <root>/oci/index.json         one entry per image, annotated org.opencontainers.image.ref.name
 * <root>/oci/blobs/sha256/<hex> committed blobs, read-only, byte-for-byte as the registry served them
 * <root>/images/<sha256>.json   image records (0600), the source of truth for which images exist
 * <root>/ingest/<sha256(ref)>/  in-progress downloads: data, ref, expected, total, startedat, updatedat, lock
 * <root>/leases/                live leases protecting fresh blobs from GC (one file per holder)
 * <root>/quarantine/            files moved aside by `kimg store verify --repair`
 * <root>/store.lock             metadata lock (records + index.json), holder + PID + since
 * ```
 *
 * Default root: `--root`, else `$KIMG_ROOT`, else `/var/lib/kimg` for root, else
 * `$XDG_DATA_HOME/kimg` (XDG base directory spec; `~/.local/share/kimg` when unset).
 */
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/** The store's format version written to `kimg-store.json`. */
export const STORE_FORMAT_VERSION = 1;

/** Absolute paths of a store root's parts. */
export interface StorePaths {
  root: string;
  versionFile: string;
  oci: string;
  layoutFile: string;
  indexFile: string;
  blobs: string;
  images: string;
  ingest: string;
  leases: string;
  quarantine: string;
  lockFile: string;
}

/** The paths under `root`. */
export function storePaths(root: string): StorePaths {
  const oci = join(root, 'oci');
  return {
    root,
    versionFile: join(root, 'kimg-store.json'),
    oci,
    layoutFile: join(oci, 'oci-layout'),
    indexFile: join(oci, 'index.json'),
    blobs: join(oci, 'blobs'),
    images: join(root, 'images'),
    ingest: join(root, 'ingest'),
    leases: join(root, 'leases'),
    quarantine: join(root, 'quarantine'),
    lockFile: join(root, 'store.lock'),
  };
}

/** Inputs of `resolveStoreRoot` (all injectable for tests). */
export interface RootResolution {
  /** An explicit `--root`. */
  root?: string | undefined;
  /** Environment (`KIMG_ROOT`, `XDG_DATA_HOME`, `HOME`); default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Effective uid; default `process.getuid()` (0 = root). */
  uid?: number;
}

/** The root used when running as uid 0. */
export const SYSTEM_ROOT = '/var/lib/kimg';

/** Resolves the store root: `--root` > `$KIMG_ROOT` > `/var/lib/kimg` (uid 0) > `$XDG_DATA_HOME/kimg`. */
export function resolveStoreRoot(options: RootResolution = {}): string {
  const env = options.env ?? process.env;
  if (options.root !== undefined && options.root !== '') return resolve(options.root);
  if (env.KIMG_ROOT) return resolve(env.KIMG_ROOT);
  const uid = options.uid ?? (typeof process.getuid === 'function' ? process.getuid() : -1);
  if (uid === 0) return SYSTEM_ROOT;
  const xdg = env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'kimg');
  return join(env.HOME || homedir(), '.local', 'share', 'kimg');
}
