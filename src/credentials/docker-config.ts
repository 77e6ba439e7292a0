/**
 * Docker credential files as kubelet reads them (`pkg/credentialprovider/config.go` @ 78fc8e44):
 *
 * - `config.json` (`{"auths": {KEY: ENTRY}, "HttpHeaders": {...}}`, what `docker login` writes) and the
 *   legacy `.dockercfg` (a flat `{KEY: ENTRY}` map). Kubernetes Secrets carry the same two formats in
 *   `.dockerconfigjson` and `.dockercfg`.
 * - An ENTRY has `username`, `password`, `email` and `auth` = base64(`user:password`). `auth`, when not
 *   empty, replaces username and password; it is decoded padded when it ends in `=`, raw otherwise, and
 *   split at the first `:`. kimg also keeps `identitytoken` / `registrytoken` (kubelet ignores them and
 *   never sends them to the runtime; kimg's own registry client can use them).
 * - Go's `encoding/json` semantics apply: keys match struct fields case-insensitively, a later duplicate
 *   overrides an earlier one, `null` leaves a field empty, any wrongly typed field fails the whole file.
 * - Node-wide files are searched in kubelet's order: `config.json` in the kubelet root dir
 *   (`/var/lib/kubelet`), the working directory, `$HOME/.docker`, `/.docker`; then `.dockercfg` in the
 *   root dir, the working directory, `$HOME`, `/`. The first file that exists and parses wins; invalid
 *   files are skipped, as kubelet does (`ReadDockerConfigFile`).
 *
 * Errors (`DOCKER_CONFIG_INVALID`) name the file and the entry key, never a credential value.
 */
import { readFile } from 'node:fs/promises';
import { basename, join, resolve as resolvePath } from 'node:path';
import { systemClock, type Clock } from '../clock/index.js';
import { KimgError, quote } from '../errors/index.js';
import { decodeDockerAuthField } from './internal/go-base64.js';
import { goFoldKey, GoJsonSyntaxError, parseGoJson, type GoJsonValue } from './internal/go-json.js';
import { Secret, type AuthConfig } from './secret.js';

/** The two docker credential file formats. */
export type DockerConfigFormat = 'config.json' | 'dockercfg';

/** One credential entry of a docker config: the key as written plus the decoded credential. */
export interface DockerConfigEntry {
  /** The registry key exactly as written (`https://index.docker.io/v1/`, `*.example.com`, `reg:5000/team`). */
  key: string;
  /** Decoded credential: username, password (a `Secret`), email, identity/registry tokens. */
  auth: AuthConfig;
}

/** A parsed docker config file (or Secret payload). */
export interface DockerConfig {
  format: DockerConfigFormat;
  /** Entries in file order; a key repeated in the file keeps its first position and its last value. */
  entries: DockerConfigEntry[];
  /** The file it came from, when known (for messages and credential sources). */
  file?: string;
}

/** Options of `parseDockerConfig`. */
export interface ParseDockerConfigOptions {
  /** File name used in error messages and recorded on the result. */
  file?: string;
  /**
   * `config.json`, `dockercfg`, or `auto` (the default): `dockercfg` when the file is named
   * `.dockercfg`, `config.json` when the top level has an `auths` member, legacy when every top-level
   * value is an object (a flat map of entries), `config.json` otherwise.
   */
  format?: DockerConfigFormat | 'auto';
}

/**
 * Parses a docker `config.json` or legacy `.dockercfg` document with kubelet's semantics.
 *
 * @throws KimgError `DOCKER_CONFIG_INVALID` naming the file and entry key: invalid JSON (with the offset
 * only), wrongly typed members, or an `auth` field that is not base64(`user:password`). Never includes a
 * credential in the message.
 */
export function parseDockerConfig(text: string, options: ParseDockerConfigOptions = {}): DockerConfig {
  const file = options.file;
  const where = file === undefined ? 'docker config' : `docker config ${quote(file)}`;
  let root: GoJsonValue;
  try {
    root = parseGoJson(text);
  } catch (e) {
    const why = e instanceof GoJsonSyntaxError ? `${e.reason} at offset ${e.offset}` : 'unreadable';
    throw new KimgError(
      'DOCKER_CONFIG_INVALID',
      `${where} is not valid JSON: ${why}; fix the file or point kimg at another one`,
      {
        ...(file !== undefined ? { file } : {}),
      },
    );
  }
  const format =
    options.format === undefined || options.format === 'auto' ? detectFormat(root, file) : options.format;
  const result: DockerConfig = { format, entries: [], ...(file !== undefined ? { file } : {}) };
  if (root.kind === 'null') return result;
  if (root.kind !== 'object') {
    throw invalid(where, file, undefined, `the top level must be a JSON object, not ${article(root.kind)}`);
  }
  const entries = new Map<string, DockerConfigEntry>();
  if (format === 'dockercfg') {
    decodeEntryMap(root, entries, where, file);
  } else {
    for (const [k, v] of root.members) {
      const f = goFoldKey(k);
      if (f === 'auths') {
        if (v.kind === 'null') entries.clear();
        else if (v.kind === 'object') decodeEntryMap(v, entries, where, file);
        else throw invalid(where, file, undefined, `"auths" must be an object, not ${article(v.kind)}`);
      } else if (f === 'httpheaders') {
        if (v.kind === 'null') continue;
        if (v.kind !== 'object')
          throw invalid(where, file, undefined, `"HttpHeaders" must be an object, not ${article(v.kind)}`);
        for (const [hk, hv] of v.members) {
          if (hv.kind !== 'string' && hv.kind !== 'null') {
            throw invalid(
              where,
              file,
              undefined,
              `"HttpHeaders" value ${quote(hk, 100)} must be a string, not ${article(hv.kind)}`,
            );
          }
        }
      }
      // Other members (credsStore, credHelpers, psFormat, ...) are ignored, as kubelet ignores them.
    }
  }
  result.entries = [...entries.values()];
  return result;
}

function detectFormat(root: GoJsonValue, file: string | undefined): DockerConfigFormat {
  if (file !== undefined && basename(file) === '.dockercfg') return 'dockercfg';
  if (root.kind !== 'object') return 'config.json';
  if (root.members.some(([k]) => goFoldKey(k) === 'auths')) return 'config.json';
  if (root.members.length > 0 && root.members.every(([, v]) => v.kind === 'object' || v.kind === 'null'))
    return 'dockercfg';
  return 'config.json';
}

function article(kind: string): string {
  return kind === 'object' || kind === 'array' ? `an ${kind}` : kind === 'null' ? 'null' : `a ${kind}`;
}

function invalid(where: string, file: string | undefined, key: string | undefined, why: string): KimgError {
  const entry = key === undefined ? '' : ` entry ${quote(key, 200)}:`;
  return new KimgError('DOCKER_CONFIG_INVALID', `${where}:${entry} ${why}`, {
    ...(file !== undefined ? { file } : {}),
    ...(key !== undefined ? { key } : {}),
  });
}

const ENTRY_FIELDS = ['username', 'password', 'email', 'auth', 'identitytoken', 'registrytoken'] as const;
type EntryField = (typeof ENTRY_FIELDS)[number];

function decodeEntryMap(
  obj: GoJsonValue & { kind: 'object' },
  into: Map<string, DockerConfigEntry>,
  where: string,
  file: string | undefined,
): void {
  for (const [key, value] of obj.members) {
    const entry: DockerConfigEntry = { key, auth: decodeEntry(value, key, where, file) };
    // Go map semantics: a repeated key replaces the value (the position is kimg's choice: the first).
    into.set(key, entry);
  }
}

function decodeEntry(value: GoJsonValue, key: string, where: string, file: string | undefined): AuthConfig {
  if (value.kind === 'null') return {};
  if (value.kind !== 'object')
    throw invalid(where, file, key, `the entry must be an object, not ${article(value.kind)}`);
  const fields: Partial<Record<EntryField, string>> = {};
  for (const [k, v] of value.members) {
    const f = goFoldKey(k) as EntryField;
    if (!(ENTRY_FIELDS as readonly string[]).includes(f)) continue;
    if (v.kind === 'null') continue;
    if (v.kind !== 'string')
      throw invalid(where, file, key, `field ${quote(f)} must be a string, not ${article(v.kind)}`);
    fields[f] = v.value;
  }
  let username = fields.username ?? '';
  let password = fields.password ?? '';
  const auth = fields.auth ?? '';
  if (auth.length > 0) {
    const decoded = decodeDockerAuthField(auth);
    if (decoded === undefined) {
      throw invalid(
        where,
        file,
        key,
        'the "auth" field is not valid base64; it must be base64(username:password)',
      );
    }
    const text = decoded.toString('utf8');
    const colon = text.indexOf(':');
    if (colon < 0)
      throw invalid(
        where,
        file,
        key,
        'unable to parse auth field, must be formatted as base64(username:password)',
      );
    username = text.slice(0, colon);
    password = text.slice(colon + 1);
  }
  const out: AuthConfig = {};
  if (username !== '') out.username = username;
  if (password !== '') out.password = new Secret(password);
  if (fields.email !== undefined && fields.email !== '') out.email = fields.email;
  if (fields.identitytoken !== undefined && fields.identitytoken !== '')
    out.identityToken = new Secret(fields.identitytoken);
  if (fields.registrytoken !== undefined && fields.registrytoken !== '')
    out.registryToken = new Secret(fields.registrytoken);
  return out;
}

/**
 * Reads and parses one docker config file (`--docker-config FILE`). The format is detected as in
 * `parseDockerConfig` (`.dockercfg` by name, `auths` by content).
 *
 * @throws KimgError `FILE_NOT_FOUND` when the file does not exist; `DOCKER_CONFIG_INVALID` when it cannot
 * be read or parsed (names the file and key, never a credential).
 */
export async function loadDockerConfigFile(
  path: string,
  options: { format?: DockerConfigFormat | 'auto' } = {},
): Promise<DockerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new KimgError('FILE_NOT_FOUND', `docker config file ${quote(path)} does not exist`, {
        file: path,
        cause: e,
      });
    }
    throw new KimgError(
      'DOCKER_CONFIG_INVALID',
      `docker config file ${quote(path)} cannot be read (${code ?? 'error'}); check its permissions`,
      {
        file: path,
        cause: e,
      },
    );
  }
  return parseDockerConfig(text, { file: path, format: options.format ?? 'auto' });
}

// --- node-wide search ---------------------------------------------------------------------------------

/** kubelet's default root directory, which it sets as the preferred docker config path. */
export const DEFAULT_KUBELET_ROOT_DIR = '/var/lib/kubelet';

/** One place kubelet looks for a node-wide docker config. */
export interface DockerConfigSearchPath {
  path: string;
  format: DockerConfigFormat;
}

/** Options of `nodeDockerConfigSearchPaths`. */
export interface NodeDockerConfigSearchOptions {
  /** The kubelet root directory (default `/var/lib/kubelet`, kubelet's `--root-dir`). */
  rootDir?: string;
  /** The working directory (default `process.cwd()`). */
  cwd?: string;
}

/**
 * kubelet's search order for node-wide docker credentials: `config.json` in the root dir, the working
 * directory, `$HOME/.docker` and `/.docker`, then `.dockercfg` in the root dir, the working directory,
 * `$HOME` and `/`. `$HOME` comes from `env.HOME`; when unset, Go's empty home makes the paths relative
 * to the working directory, and so does kimg.
 */
export function nodeDockerConfigSearchPaths(
  env: NodeJS.ProcessEnv = process.env,
  options: NodeDockerConfigSearchOptions = {},
): DockerConfigSearchPath[] {
  const cwd = options.cwd ?? process.cwd();
  const root = options.rootDir ?? DEFAULT_KUBELET_ROOT_DIR;
  const home = env.HOME ?? '';
  const abs = (...parts: string[]): string => resolvePath(cwd, join(...parts));
  return [
    { path: abs(root, 'config.json'), format: 'config.json' },
    { path: abs(cwd, 'config.json'), format: 'config.json' },
    { path: abs(home, '.docker', 'config.json'), format: 'config.json' },
    { path: abs('/', '.docker', 'config.json'), format: 'config.json' },
    { path: abs(root, '.dockercfg'), format: 'dockercfg' },
    { path: abs(cwd, '.dockercfg'), format: 'dockercfg' },
    { path: abs(home, '.dockercfg'), format: 'dockercfg' },
    { path: abs('/', '.dockercfg'), format: 'dockercfg' },
  ];
}

/** What happened at one search path. */
export interface DockerConfigSearchOutcome {
  path: string;
  format: DockerConfigFormat;
  outcome: 'used' | 'missing' | 'unreadable' | 'invalid' | 'not-reached';
  /** For `invalid` / `unreadable`: why (credential-free). */
  reason?: string;
}

/** The result of the node-wide search. */
export interface NodeDockerConfig {
  /** The config that won, or undefined when no file exists or parses. */
  config?: DockerConfig;
  /** Every path in order with its outcome (for `kimg creds explain`). */
  searched: DockerConfigSearchOutcome[];
}

/** Options of `loadNodeDockerConfig`. */
export interface LoadNodeDockerConfigOptions extends NodeDockerConfigSearchOptions {
  env?: NodeJS.ProcessEnv;
  /** Explicit search list (default `nodeDockerConfigSearchPaths(env, options)`). */
  searchPaths?: readonly DockerConfigSearchPath[];
}

/**
 * Finds the node-wide docker config the way kubelet does: the first file in the search order that
 * exists and parses wins; missing, unreadable and invalid files are skipped. Never throws for file
 * problems (they are reported in `searched`).
 */
export async function loadNodeDockerConfig(
  options: LoadNodeDockerConfigOptions = {},
): Promise<NodeDockerConfig> {
  const paths = options.searchPaths ?? nodeDockerConfigSearchPaths(options.env ?? process.env, options);
  const searched: DockerConfigSearchOutcome[] = [];
  let config: DockerConfig | undefined;
  for (const p of paths) {
    if (config !== undefined) {
      searched.push({ ...p, outcome: 'not-reached' });
      continue;
    }
    let text: string;
    try {
      text = await readFile(p.path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') searched.push({ ...p, outcome: 'missing' });
      else searched.push({ ...p, outcome: 'unreadable', reason: `cannot be read (${code ?? 'error'})` });
      continue;
    }
    try {
      config = parseDockerConfig(text, { file: p.path, format: p.format });
      searched.push({ ...p, outcome: 'used' });
    } catch (e) {
      searched.push({ ...p, outcome: 'invalid', reason: e instanceof Error ? e.message : 'invalid' });
    }
  }
  return { ...(config !== undefined ? { config } : {}), searched };
}

export type { Clock };

/**
 * kubelet caches the node-wide docker config for 5 minutes (`CachingDockerConfigProvider`): a file
 * written later is picked up within that window.
 */
export const NODE_DOCKER_CONFIG_CACHE_MS = 5 * 60 * 1000;

/**
 * The node-wide docker config with kubelet's 5-minute cache: `get()` re-runs the search only after the
 * cached result expired.
 */
export class CachedNodeDockerConfig {
  private cached: NodeDockerConfig | undefined;
  private expiresAt = 0;
  private readonly clock: Clock;
  private readonly lifetimeMs: number;

  constructor(
    private readonly options: LoadNodeDockerConfigOptions & { clock?: Clock; lifetimeMs?: number } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.lifetimeMs = options.lifetimeMs ?? NODE_DOCKER_CONFIG_CACHE_MS;
  }

  /** The cached search result, refreshed when older than the lifetime. */
  async get(): Promise<NodeDockerConfig> {
    if (this.cached !== undefined && this.clock.now() < this.expiresAt) return this.cached;
    this.cached = await loadNodeDockerConfig(this.options);
    this.expiresAt = this.clock.now() + this.lifetimeMs;
    return this.cached;
  }
}
