/**
 * Registry hosts: which endpoints serve a registry, in which order, with which TLS settings.
 *
 * kimg reads containerd's `hosts.toml` directories (containerd `docs/hosts.md`,
 * `core/remotes/docker/config/hosts.go`), the same files a node's containerd uses under
 * `/etc/containerd/certs.d`:
 *
 * - For registry `host:port` the directory `<root>/host_port_/`, then `<root>/host:port/`, then
 *   `<root>/_default/` is used (the first that exists).
 * - `[host."<url>"]` entries are mirrors, tried in **file order**; the top-level `server` (default: the
 *   registry itself) is always appended last, so pulls fall back to upstream.
 * - A URL without a scheme gets `https://`; `/v2` is appended to the path unless it already ends in
 *   `/v2` or `override_path = true`.
 * - Keys, per host and at top level for the server: `capabilities` ⊆ pull, resolve, push, referrers
 *   (omitted = pull, resolve, push), `ca` (file or list, relative to the directory), `client` (file,
 *   list, or `[cert, key]` pairs), `skip_verify`, `header` (table of string or list), `override_path`,
 *   `dial_timeout` (Go duration).
 * - A directory without `hosts.toml` uses Docker's cert layout: `*.crt` CAs, `*.cert` + `*.key`
 *   client pairs. A `hosts.toml` that does not parse also falls back to that layout (containerd logs
 *   and continues); kimg reports the problem through the `warn` callback.
 *
 * Defaults for the registry itself, as containerd's `ConfigureHosts`: `docker.io` maps to
 * `registry-1.docker.io` over HTTPS; a loopback registry (`localhost`, `127.0.0.0/8`, `::1`) uses plain
 * HTTP unless its port is empty or 443; every other registry is HTTPS with verification. Plain HTTP for
 * other hosts only when the caller lists them (`plainHttp`, the CLI's `--plain-http HOST`, where
 * `localhost` or an IP without a port matches that host on any port).
 *
 * Deliberate differences (docs/deliberate-differences.md): containerd tries HTTPS first on such a
 * loopback port and falls back to HTTP, skipping certificate verification; kimg uses HTTPS there only
 * when TLS is configured for it (a CA file or a hosts directory entry with `ca`/`client`), and then
 * verifies, and never falls back from HTTPS to HTTP.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { KimgError, isKimgError } from '../errors/index.js';
import { goParseDuration } from '../gotext/index.js';
import {
  isTomlTable as isTable,
  parseTomlFile,
  tableKeysInFileOrder,
  type TomlTable,
} from './internal/toml-file.js';

/** What an endpoint may be used for (containerd `HostCapabilities`). */
export type HostCapability = 'pull' | 'resolve' | 'push' | 'referrers';

const ALL_DEFAULT_CAPABILITIES: readonly HostCapability[] = ['pull', 'resolve', 'push'];

/** TLS settings of one endpoint. File paths are absolute. */
export interface EndpointTls {
  /** Extra CA certificate files (PEM), added to the system roots. */
  caFiles: string[];
  /** Client certificate pairs: [certFile, keyFile]; an empty key file means the key is in the cert file. */
  clientPairs: [string, string][];
  /** Skip server certificate verification. Only ever true when configured. */
  skipVerify?: boolean;
}

/** One endpoint serving a registry. */
export interface RegistryEndpoint {
  scheme: 'http' | 'https';
  /** `host[:port]` of the endpoint. */
  host: string;
  /** API root path, usually `/v2`. */
  path: string;
  capabilities: readonly HostCapability[];
  tls: EndpointTls;
  /** Extra request headers from configuration (may hold secrets: never logged). */
  headers: Record<string, string[]>;
  /** True for `[host."…"]` mirrors; their requests carry `?ns=<registry>`. */
  mirror: boolean;
  /** TCP connect timeout in ms (hosts.toml `dial_timeout`), if configured. */
  dialTimeoutMs?: number;
}

/** A parsed hosts.toml entry before defaults are applied (`host` empty = "the registry itself"). */
interface HostEntry {
  scheme: 'http' | 'https' | '';
  host: string;
  path: string;
  capabilities: HostCapability[];
  caFiles?: string[];
  clientPairs?: [string, string][];
  skipVerify?: boolean;
  headers?: Record<string, string[]>;
  dialTimeoutMs?: number;
  mirror: boolean;
  /** The URL was written with an explicit `http://` or `https://`. */
  schemeExplicit: boolean;
}

/**
 * Parses the text of a `hosts.toml` file into ordered endpoint entries (mirrors in file order, the
 * server last). Relative `ca`/`client` paths resolve against `dir`.
 * @throws KimgError `HOSTS_CONFIG_INVALID` naming the file and the problem.
 */
export function parseHostsToml(text: string, dir: string, file = join(dir, 'hosts.toml')): HostEntry[] {
  const root = parseTomlFile(text, file);
  const hostTable = root.host;
  if (hostTable !== undefined && !isTable(hostTable))
    fail(file, '"host" must be a table of [host."<url>"] entries');
  // Mirrors in the order they first appear, whether as [host."…"] headers, dotted keys or inline tables.
  const order = hostTable ? tableKeysInFileOrder(text, 'host', hostTable) : [];

  const entries: HostEntry[] = [];
  for (const h of order) {
    const cfg = hostTable?.[h];
    if (!isTable(cfg)) fail(file, `[host.${JSON.stringify(h)}] must be a table`);
    if (h === '') fail(file, 'a [host."…"] entry has an empty URL');
    entries.push(parseEntry(h, dir, cfg, file, `host.${JSON.stringify(h)}`, true));
  }
  const server = root.server;
  if (server !== undefined && typeof server !== 'string') fail(file, '"server" must be a string');
  entries.push(parseEntry(server ?? '', dir, root, file, 'top level', false));
  return entries;
}

function fail(file: string, msg: string): never {
  throw new KimgError('HOSTS_CONFIG_INVALID', `${file}: ${msg}`, { file });
}

function parseEntry(
  server: string,
  dir: string,
  cfg: TomlTable,
  file: string,
  where: string,
  mirror: boolean,
): HostEntry {
  // containerd ignores unknown keys (go-toml non-strict decoding); kimg does too.
  const overridePath = cfg.override_path;
  if (overridePath !== undefined && typeof overridePath !== 'boolean')
    fail(file, `${where}: override_path must be true or false`);
  const entry: HostEntry = {
    scheme: '',
    host: '',
    path: '',
    capabilities: [...ALL_DEFAULT_CAPABILITIES],
    mirror,
    schemeExplicit: false,
  };
  if (server !== '') {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(server)?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== 'http' && scheme !== 'https')
      fail(file, `${where}: unsupported URL scheme in ${JSON.stringify(server)}: use http or https`);
    entry.schemeExplicit = scheme !== undefined;
    const withScheme = entry.schemeExplicit ? server : `https://${server}`;
    let u: URL;
    try {
      u = new URL(withScheme);
    } catch {
      fail(file, `${where}: cannot parse server URL ${JSON.stringify(server)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      fail(file, `${where}: unsupported URL scheme in ${JSON.stringify(server)}: use http or https`);
    if (u.host === '') fail(file, `${where}: URL ${JSON.stringify(server)} has no host`);
    entry.scheme = u.protocol === 'http:' ? 'http' : 'https';
    entry.host = u.host;
    let p = u.pathname === '/' ? '' : cleanPath(u.pathname);
    if (p.length > 0) {
      if (!p.endsWith('/v2') && overridePath !== true) p += '/v2';
    } else if (overridePath !== true) p = '/v2';
    entry.path = p;
  }
  const caps = cfg.capabilities;
  if (caps !== undefined) {
    if (!Array.isArray(caps) || caps.some((c) => typeof c !== 'string'))
      fail(file, `${where}: capabilities must be a list of strings`);
    if (caps.length > 0) {
      const set: HostCapability[] = [];
      for (const c of caps as string[]) {
        const lc = c.toLowerCase();
        if (lc !== 'pull' && lc !== 'resolve' && lc !== 'push' && lc !== 'referrers')
          fail(file, `${where}: unknown capability ${c}`);
        if (!set.includes(lc)) set.push(lc);
      }
      entry.capabilities = set;
    }
  }
  const ca = cfg.ca;
  if (ca !== undefined) {
    if (typeof ca === 'string') entry.caFiles = [absPath(ca, dir)];
    else if (Array.isArray(ca) && ca.every((x) => typeof x === 'string'))
      entry.caFiles = (ca as string[]).map((p) => absPath(p, dir));
    else fail(file, `${where}: "ca" must be a file path or a list of file paths`);
  }
  const client = cfg.client;
  if (client !== undefined) {
    const pairs: [string, string][] = [];
    if (typeof client === 'string') pairs.push([absPath(client, dir), '']);
    else if (Array.isArray(client)) {
      for (const p of client) {
        if (typeof p === 'string') pairs.push([absPath(p, dir), '']);
        else if (Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'string')) {
          pairs.push([absPath(p[0] as string, dir), absPath(p[1] as string, dir)]);
        } else fail(file, `${where}: "client" entries must be a file path or a [cert, key] pair`);
      }
    } else
      fail(file, `${where}: "client" must be a file path, a list of paths or a list of [cert, key] pairs`);
    entry.clientPairs = pairs;
  }
  const sv = cfg.skip_verify;
  if (sv !== undefined) {
    if (typeof sv !== 'boolean') fail(file, `${where}: skip_verify must be true or false`);
    entry.skipVerify = sv;
  }
  const header = cfg.header;
  if (header !== undefined) {
    if (!isTable(header)) fail(file, `${where}: "header" must be a table`);
    const h: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(header)) {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(k))
        fail(file, `${where}: invalid header name ${JSON.stringify(k)}`);
      const values =
        typeof v === 'string'
          ? [v]
          : Array.isArray(v) && v.every((x) => typeof x === 'string')
            ? (v as string[])
            : undefined;
      if (values === undefined)
        fail(file, `${where}: header ${JSON.stringify(k)} must be a string or a list of strings`);
      if (values.some((x) => /[\r\n\0]/.test(x)))
        fail(file, `${where}: header ${JSON.stringify(k)} contains a line break`);
      Object.defineProperty(h, k, { value: values, enumerable: true, writable: true, configurable: true });
    }
    entry.headers = h;
  }
  const dt = cfg.dial_timeout;
  if (dt !== undefined) {
    if (typeof dt !== 'string') fail(file, `${where}: dial_timeout must be a duration string like "30s"`);
    const ms = parseGoDuration(dt);
    if (ms === undefined)
      fail(
        file,
        `${where}: invalid dial_timeout ${JSON.stringify(dt)}: use a duration like "500ms" or "30s"`,
      );
    entry.dialTimeoutMs = ms;
  }
  return entry;
}

function cleanPath(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return parts.length === 0 ? '' : '/' + parts.join('/');
}

function absPath(p: string, base: string): string {
  return isAbsolute(p) ? p : join(base, p);
}

/**
 * Parses a Go `time.Duration` string (`1h2m3.5s`, `300ms`) into milliseconds, with Go's own grammar
 * (`goParseDuration` of src/gotext); negative durations are rejected (a timeout cannot be negative).
 */
export function parseGoDuration(s: string): number | undefined {
  const r = goParseDuration(s);
  if (!r.ok || r.ns < 0n) return undefined;
  return Number(r.ns) / 1e6;
}

/** The directories containerd searches for `host` under `root`, in order (containerd `hostPaths`). */
export function hostDirectories(root: string, host: string): string[] {
  const out: string[] = [];
  const idx = host.lastIndexOf(':');
  if (idx > 0) out.push(join(root, `${host.slice(0, idx)}_${host.slice(idx + 1)}_`));
  out.push(join(root, host), join(root, '_default'));
  return out;
}

/** Options of {@link resolveRegistryEndpoints}. */
export interface HostsOptions {
  /** A containerd-style hosts directory (`/etc/containerd/certs.d`). */
  hostsDir?: string;
  /**
   * Hosts to reach over plain HTTP (`host:port`, or `host` = any port of that host). Only these;
   * localhost is no exception unless listed.
   */
  plainHttp?: readonly string[];
  /** Extra CA files for every HTTPS endpoint (CLI `--ca-file`). */
  caFiles?: readonly string[];
  /** Receives non-fatal configuration problems (a hosts.toml that fails to parse). */
  warn?: (message: string) => void;
}

/**
 * True when `host` (`host[:port]`) is listed in `plainHttp`, exactly or by host name without port.
 */
export function isPlainHttpHost(host: string, plainHttp: readonly string[] | undefined): boolean {
  if (!plainHttp || plainHttp.length === 0) return false;
  const lc = host.toLowerCase();
  const name = hostName(lc);
  for (const p of plainHttp) {
    const e = p
      .trim()
      .toLowerCase()
      .replace(/^https?:\/\//, '')
      .replace(/\/+$/, '');
    if (e === lc) return true;
    if (!hasPort(e) && e === name) return true;
  }
  return false;
}

/**
 * containerd's default for a loopback registry without configuration: plain HTTP, unless the port is
 * empty or 443 (`localhost`, `127.0.0.0/8`, `::1`; containerd `core/remotes/docker/config/hosts.go`).
 */
export function isLoopbackPlainHttp(host: string): boolean {
  const lc = host.toLowerCase();
  if (!hasPort(lc)) return false;
  const port = lc.slice(lc.lastIndexOf(':') + 1);
  if (port === '443') return false;
  const name = hostName(lc);
  return (
    name === 'localhost' ||
    name === '[::1]' ||
    /^127\.(?:25[0-5]|2[0-4]\d|1?\d?\d)\.(?:25[0-5]|2[0-4]\d|1?\d?\d)\.(?:25[0-5]|2[0-4]\d|1?\d?\d)$/.test(
      name,
    )
  );
}

function hasPort(h: string): boolean {
  if (h.startsWith('[')) return /\]:\d+$/.test(h);
  return /:\d+$/.test(h);
}
function hostName(h: string): string {
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(0, end + 1) : h;
  }
  const idx = h.lastIndexOf(':');
  return idx > 0 && /^\d+$/.test(h.slice(idx + 1)) ? h.slice(0, idx) : h;
}

/**
 * The endpoints that serve `registry` (a reference's domain, `host[:port]`), in the order to try
 * them: configured mirrors first, then the server.
 * @throws KimgError `HOSTS_CONFIG_INVALID` only for a directory that cannot be read at all.
 */
export async function resolveRegistryEndpoints(
  registry: string,
  opts: HostsOptions = {},
): Promise<RegistryEndpoint[]> {
  let entries: HostEntry[] | undefined;
  if (opts.hostsDir) entries = await loadHostDirEntries(opts.hostsDir, registry, opts.warn);
  if (entries === undefined) entries = [defaultEntry()];
  const out: RegistryEndpoint[] = [];
  for (const e of entries) {
    let { scheme, host, path } = e;
    let capabilities = e.capabilities;
    if (host === '') {
      // the registry itself (containerd ConfigureHosts defaults)
      host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
      const tlsConfigured =
        (opts.caFiles ?? []).length > 0 || (e.caFiles ?? []).length > 0 || (e.clientPairs ?? []).length > 0;
      scheme =
        registry !== 'docker.io' &&
        (isPlainHttpHost(registry, opts.plainHttp) || (isLoopbackPlainHttp(registry) && !tlsConfigured))
          ? 'http'
          : 'https';
      path = '/v2';
      capabilities = [...ALL_DEFAULT_CAPABILITIES];
    } else if (!e.schemeExplicit && isPlainHttpHost(host, opts.plainHttp)) {
      // `server = "host:port"` without a scheme defaults to https, unless the caller listed the host
      scheme = 'http';
    }
    const tls: EndpointTls = {
      caFiles: [...(opts.caFiles ?? []), ...(e.caFiles ?? [])],
      clientPairs: e.clientPairs ?? [],
    };
    if (e.skipVerify !== undefined) tls.skipVerify = e.skipVerify;
    const ep: RegistryEndpoint = {
      scheme: scheme === '' ? 'https' : scheme,
      host,
      path,
      capabilities,
      tls,
      headers: e.headers ?? {},
      mirror: e.mirror && host.toLowerCase() !== registry.toLowerCase(),
    };
    if (e.dialTimeoutMs !== undefined) ep.dialTimeoutMs = e.dialTimeoutMs;
    out.push(ep);
  }
  return out;
}

function defaultEntry(): HostEntry {
  return {
    scheme: '',
    host: '',
    path: '',
    capabilities: [...ALL_DEFAULT_CAPABILITIES],
    mirror: false,
    schemeExplicit: false,
  };
}

async function loadHostDirEntries(
  root: string,
  registry: string,
  warn: ((m: string) => void) | undefined,
): Promise<HostEntry[] | undefined> {
  let dir: string | undefined;
  for (const p of hostDirectories(root, registry)) {
    try {
      const st = await stat(p);
      if (st.isDirectory()) {
        dir = p;
        break;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && (e as NodeJS.ErrnoException).code !== 'ENOTDIR') {
        throw new KimgError(
          'HOSTS_CONFIG_INVALID',
          `cannot read hosts directory ${p}: ${(e as Error).message}`,
          { file: p, cause: e },
        );
      }
    }
  }
  if (dir === undefined) return undefined;
  const file = join(dir, 'hosts.toml');
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new KimgError('HOSTS_CONFIG_INVALID', `cannot read ${file}: ${(e as Error).message}`, {
        file,
        cause: e,
      });
    }
  }
  if (text !== undefined && text.length > 0) {
    try {
      return parseHostsToml(text, dir, file);
    } catch (e) {
      if (!isKimgError(e, 'HOSTS_CONFIG_INVALID')) throw e;
      warn?.(`${e.message}; using the certificate files in ${dir} instead (as containerd does)`);
    }
  }
  return loadCertFiles(dir);
}

/** Docker's certs.d layout: `*.crt` = CA, `*.cert` + same-name `*.key` = client pair. */
async function loadCertFiles(dir: string): Promise<HostEntry[]> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((d) => !d.isDirectory())
    .map((d) => d.name)
    .sort();
  const entry = defaultEntry();
  for (const n of names) {
    if (n.endsWith('.crt')) (entry.caFiles ??= []).push(join(dir, n));
    if (n.endsWith('.cert')) {
      const key = n.slice(0, -5) + '.key';
      (entry.clientPairs ??= []).push([join(dir, n), names.includes(key) ? join(dir, key) : '']);
    }
  }
  return [entry];
}

export type { HostEntry };
