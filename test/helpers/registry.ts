/**
 * Real OCI registries for tests: one CNCF distribution registry process (Debian's `docker-registry`
 * 2.8) per `startRegistry` call, configured by a file this helper writes into a fresh temp dir,
 * listening on 127.0.0.1 port 0 (the real port is read from its `listening on 127.0.0.1:NNNNN` log
 * line), storage in the temp dir, deletes enabled, access log on.
 *
 * Modes:
 * - `plain`    no auth, plain HTTP.
 * - `basic`    htpasswd (bcrypt, `htpasswd -Bbn`) Basic auth.
 * - `token`    Bearer tokens from our own token server (`servers/token-server.ts`, a child process on
 *              127.0.0.1 port 0, started first because the registry config names its realm).
 * - `redirect` Basic auth + distribution's `redirect` storage middleware: blob GET/HEAD answer 307 to a
 *              blob host on **127.0.0.2** (`servers/blob-server.ts`, serving the registry's storage dir
 *              and logging whether `Authorization` reached it).
 * - `tls`      no auth, HTTPS with a throw-away CA (`caFile`) and a server cert for IP:127.0.0.1 and
 *              DNS:localhost; `certsDir` is laid out for skopeo `--cert-dir`.
 *
 * `stop()` SIGKILLs every process of the fixture by PID (SIGTERM costs the registry 1.3-1.8 s; its
 * storage is thrown away anyway), waits for the exits and removes the temp dir.
 */
import { Buffer } from 'node:buffer';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch, Headers, type Dispatcher, type RequestInit, type Response } from 'undici';
import { stringify as toYaml } from 'yaml';
import { requireBinary } from './components.js';
import { makeTlsFiles, tokenSigningKey } from './certs.js';
import { killProcess, runCommand, spawnTracked, waitFor, type TrackedProcess } from './proc.js';
import { makeTempDir, removeTempDir } from './tmp.js';

export type RegistryMode = 'plain' | 'basic' | 'token' | 'redirect' | 'tls';

/** Every mode, in the order tests usually list them. */
export const REGISTRY_MODES: readonly RegistryMode[] = ['plain', 'basic', 'token', 'redirect', 'tls'];

/** Default account of the auth modes (basic, token, redirect). */
export const DEFAULT_USERNAME = 'kimg';
export const DEFAULT_PASSWORD = 'kimgpass';
/** `auth.token` settings of the token mode. */
export const TOKEN_SERVICE = 'kimg-registry';
export const TOKEN_ISSUER = 'kimg-token-issuer';

export interface RegistryOptions {
  mode: RegistryMode;
  /** Account of the auth modes; default 'kimg'. */
  username?: string;
  /** Default 'kimgpass'. */
  password?: string;
  /** token mode: anonymous requests get pull-only tokens (true, the default) or 401 (false). */
  anonymousPull?: boolean;
  /** Extra accounts (user → password) for the auth modes. */
  users?: Record<string, string>;
  /** token mode: lifetime of issued tokens (expires_in, JWT exp); default 300 s. */
  tokenTtlSeconds?: number;
}

/** One request seen by the token server (never a password or token). */
export interface TokenRequestLog {
  method: 'GET' | 'POST';
  /** Authenticated user (or the user named by wrong credentials); undefined when anonymous. */
  user?: string;
  grantType?: string;
  service?: string;
  /** Raw scope strings as asked for, e.g. `repository:small:pull,push`. */
  scopes: string[];
  /** A token was issued and it carries every action asked for. */
  granted: boolean;
  status: number;
  /** What the issued token allows. */
  grantedAccess?: Array<{ type: string; name: string; actions: string[] }>;
  /** A refresh token was issued. */
  refreshToken?: boolean;
  /** Why a request was refused. */
  reason?: string;
}

/** One request seen by the redirect mode's blob host. */
export interface BlobHostRequestLog {
  method: string;
  path: string;
  /** An `Authorization` header arrived (a leak: the redirect went to another host). */
  authorization: boolean;
  status: number;
  range?: string;
  bytes?: number;
}

/** One line of the registry's HTTP access log. */
export interface AccessLogEntry {
  method: string;
  path: string;
  status: number;
  bytes?: number;
  userAgent?: string;
}

export interface StartedRegistry {
  mode: RegistryMode;
  /** '127.0.0.1:PORT' */
  host: string;
  /** 'http://127.0.0.1:PORT' or, for tls, 'https://127.0.0.1:PORT' */
  url: string;
  /** Set for the auth modes (basic, token, redirect). */
  username?: string;
  password?: string;
  /** Every account (user → password) of the auth modes. */
  users: Record<string, string>;
  /** The fixture's temp dir (config, logs, keys); removed by stop(). */
  rootDir: string;
  /** The registry's storage root (`storage.filesystem.rootdirectory`). */
  dataDir: string;
  configFile: string;
  /** tls: PEM of the throw-away CA. */
  caFile?: string;
  /** tls: directory with `ca.crt`, for skopeo `--cert-dir` / `--dest-cert-dir`. */
  certsDir?: string;
  token?: {
    /** 'http://127.0.0.1:PORT' of the token server. */
    url: string;
    /** `url + '/token'`, as in the registry's `Www-Authenticate: Bearer realm=...`. */
    realm: string;
    service: string;
    issuer: string;
    requests(): TokenRequestLog[];
  };
  blobHost?: {
    /** 'http://127.0.0.2:PORT' */
    url: string;
    requests(): BlobHostRequestLog[];
  };
  /** PID of the registry process. */
  pid: number;
  /** PIDs of every process of this fixture (registry, token server, blob host). */
  pids: number[];
  /** Milliseconds startRegistry took. */
  startMs: number;
  /** The registry's own log (stderr). */
  log(): Promise<string>;
  /** The registry's HTTP access log, parsed (waits briefly for lines still being written). */
  accessLog(): Promise<AccessLogEntry[]>;
  /** SIGKILL by PID (registry + token/blob servers), wait for exit, rm -rf rootDir. Idempotent. */
  stop(): Promise<void>;
}

const AUTH_MODES: ReadonlySet<RegistryMode> = new Set(['basic', 'token', 'redirect']);

/** Internal per-registry state used by the fetch helpers. */
const dispatchers = new WeakMap<StartedRegistry, Agent>();

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // REGISTRY_* would override our config file; NODE_* of the test runner must not leak into servers.
    if (k.startsWith('REGISTRY_') || k === 'NODE_TEST_CONTEXT' || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return env;
}

function serverScript(name: string): string {
  return fileURLToPath(new URL(`./servers/${name}.js`, import.meta.url));
}

function readJsonLines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

async function readIfExists(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return '';
  }
}

/** Starts a fixture server (token server, blob host) as a child node process; returns it and its port. */
async function startChildServer(
  name: 'token-server' | 'blob-server',
  rootDir: string,
  config: Record<string, unknown>,
): Promise<{ proc: TrackedProcess; port: number; logFile: string }> {
  const configFile = join(rootDir, `${name}.json`);
  const readyFile = join(rootDir, `${name}.ready`);
  const logFile = join(rootDir, `${name}.requests.jsonl`);
  const stderrFile = join(rootDir, `${name}.log`);
  await writeFile(configFile, JSON.stringify({ ...config, readyFile, logFile }), { mode: 0o600 });
  const proc = spawnTracked(name, process.execPath, [serverScript(name), configFile], {
    env: childEnv(),
    stdoutFile: stderrFile,
    stderrFile,
  });
  const port = await waitFor(
    `${name} to listen`,
    async () => {
      if (!existsSync(readyFile)) return undefined;
      return (JSON.parse(await readFile(readyFile, 'utf8')) as { port: number }).port;
    },
    { watch: proc, describe: async () => (await readIfExists(stderrFile)).slice(-3000) },
  );
  return { proc, port, logFile };
}

async function htpasswdFile(file: string, users: Record<string, string>): Promise<void> {
  const htpasswd = requireBinary('htpasswd');
  const lines = await Promise.all(
    Object.entries(users).map(async ([u, p]) => {
      // distribution accepts bcrypt entries only (-B)
      const r = await runCommand(htpasswd, ['-Bbn', u, p], { secrets: [p] });
      return r.stdout.trim();
    }),
  );
  await writeFile(file, lines.join('\n') + '\n', { mode: 0o600 });
}

function probeV2(url: string, ca: string | undefined): Promise<number | undefined> {
  return new Promise((resolve) => {
    const u = new URL('/v2/', url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      { method: 'GET', agent: false, timeout: 1000, ...(ca !== undefined ? { ca } : {}) },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Parses combined-log-format lines (`host - - [time] "METHOD PATH PROTO" STATUS BYTES "ref" "ua"`). */
export function parseAccessLog(text: string): AccessLogEntry[] {
  const out: AccessLogEntry[] = [];
  const re = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+|-)(?: "[^"]*" "([^"]*)")?/;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const e: AccessLogEntry = { method: m[1] ?? '', path: m[2] ?? '', status: Number(m[3]) };
    if (m[4] !== undefined && m[4] !== '-') e.bytes = Number(m[4]);
    if (m[5] !== undefined) e.userAgent = m[5];
    out.push(e);
  }
  return out;
}

/**
 * Starts one registry of the given mode (plus its token server or blob host) and resolves once
 * `GET /v2/` answers 200 or 401. Throws an `Error` with the registry log on failure, after stopping
 * whatever it started; throws (never skips) when a component is missing.
 */
export async function startRegistry(opts: RegistryOptions): Promise<StartedRegistry> {
  const t0 = Date.now();
  const mode = opts.mode;
  const registryBin = requireBinary('docker-registry');
  requireBinary('setpriv');
  const auth = AUTH_MODES.has(mode);
  const username = opts.username ?? DEFAULT_USERNAME;
  const password = opts.password ?? DEFAULT_PASSWORD;
  const users: Record<string, string> = auth ? { ...opts.users, [username]: password } : {};

  const rootDir = await makeTempDir(`reg-${mode}-`);
  const dataDir = join(rootDir, 'data');
  const configFile = join(rootDir, 'config.yml');
  const stderrFile = join(rootDir, 'registry.log');
  const stdoutFile = join(rootDir, 'access.log');
  const procs: TrackedProcess[] = [];
  const killAll = async (): Promise<void> => {
    await Promise.all(procs.map((p) => killProcess(p)));
  };

  try {
    await mkdir(dataDir);
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: dataDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: {
        addr: '127.0.0.1:0',
        secret: `kimg-test-${Math.random().toString(36).slice(2)}`,
        headers: { 'X-Content-Type-Options': ['nosniff'] },
      },
      health: { storagedriver: { enabled: false } },
    };
    let token: StartedRegistry['token'];
    let blobHost: StartedRegistry['blobHost'];
    let tls: Awaited<ReturnType<typeof makeTlsFiles>> | undefined;

    if (mode === 'basic' || mode === 'redirect') {
      const file = join(rootDir, 'htpasswd');
      const prep: Array<Promise<unknown>> = [htpasswdFile(file, users)];
      config.auth = { htpasswd: { realm: 'kimg-basic-realm', path: file } };
      if (mode === 'redirect') {
        prep.push(
          startChildServer('blob-server', rootDir, { host: '127.0.0.2', root: dataDir }).then((s) => {
            procs.push(s.proc);
            const url = `http://127.0.0.2:${s.port}`;
            blobHost = {
              url,
              requests: cachedLines<BlobHostRequestLog>(s.logFile, toBlobLog),
            };
            config.middleware = { storage: [{ name: 'redirect', options: { baseurl: `${url}/` } }] };
          }),
        );
      }
      await Promise.all(prep);
    } else if (mode === 'token') {
      const key = await tokenSigningKey();
      const certFile = join(rootDir, 'token.crt');
      await writeFile(certFile, key.certPem);
      const s = await startChildServer('token-server', rootDir, {
        host: '127.0.0.1',
        issuer: TOKEN_ISSUER,
        service: TOKEN_SERVICE,
        keyPem: key.keyPem,
        kid: key.kid,
        users,
        anonymousPull: opts.anonymousPull ?? true,
        ttlSeconds: opts.tokenTtlSeconds ?? 300,
      });
      procs.push(s.proc);
      const url = `http://127.0.0.1:${s.port}`;
      token = {
        url,
        realm: `${url}/token`,
        service: TOKEN_SERVICE,
        issuer: TOKEN_ISSUER,
        requests: cachedLines<TokenRequestLog>(s.logFile, toTokenLog),
      };
      config.auth = {
        token: { realm: token.realm, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER, rootcertbundle: certFile },
      };
    } else if (mode === 'tls') {
      tls = await makeTlsFiles(join(rootDir, 'tls'));
      (config.http as Record<string, unknown>).tls = { certificate: tls.certFile, key: tls.keyFile };
    }

    await writeFile(configFile, toYaml(config));
    const proc = spawnTracked(`registry(${mode})`, registryBin, ['serve', configFile], {
      env: childEnv(),
      stdoutFile,
      stderrFile,
    });
    procs.unshift(proc);
    const describe = async (): Promise<string> =>
      `registry log (${stderrFile}):\n${(await readIfExists(stderrFile)).slice(-4000)}`;
    const port = await waitFor(
      `registry(${mode}) to listen`,
      async () => {
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(await readIfExists(stderrFile));
        return m ? Number(m[1]) : undefined;
      },
      { watch: proc, describe },
    );
    const scheme = mode === 'tls' ? 'https' : 'http';
    const host = `127.0.0.1:${port}`;
    const url = `${scheme}://${host}`;
    const ca = tls ? await readFile(tls.caFile, 'utf8') : undefined;
    await waitFor(
      `registry(${mode}) GET /v2/ to answer 200/401`,
      async () => {
        const status = await probeV2(url, ca);
        return status === 200 || status === 401 ? status : undefined;
      },
      { watch: proc, describe },
    );

    let logCache: string | undefined;
    let accessCache: string | undefined;
    let stopping: Promise<void> | undefined;
    const reg: StartedRegistry = {
      mode,
      host,
      url,
      ...(auth ? { username, password } : {}),
      users,
      rootDir,
      dataDir,
      configFile,
      ...(tls ? { caFile: tls.caFile, certsDir: tls.certsDir } : {}),
      ...(token ? { token } : {}),
      ...(blobHost ? { blobHost } : {}),
      pid: proc.pid,
      pids: procs.map((p) => p.pid),
      startMs: 0,
      log: async () => logCache ?? (await readIfExists(stderrFile)),
      accessLog: async () => {
        if (accessCache !== undefined) return parseAccessLog(accessCache);
        // The access line is written after the response went out: wait until the file stops growing.
        let text = await readIfExists(stdoutFile);
        for (let i = 0; i < 20; i++) {
          await new Promise((r) => setTimeout(r, 15));
          const again = await readIfExists(stdoutFile);
          if (again === text) break;
          text = again;
        }
        return parseAccessLog(text);
      },
      stop: () => {
        stopping ??= (async () => {
          const agent = dispatchers.get(reg);
          dispatchers.delete(reg);
          await killAll();
          logCache = await readIfExists(stderrFile);
          accessCache = await readIfExists(stdoutFile);
          token?.requests();
          blobHost?.requests();
          await agent?.destroy().catch(() => undefined);
          await removeTempDir(rootDir);
        })();
        return stopping;
      },
    };
    reg.startMs = Date.now() - t0;
    return reg;
  } catch (e) {
    await killAll();
    await removeTempDir(rootDir);
    throw e;
  }
}

/** A `requests()` reader that keeps its last result once the log file is gone (after stop). */
function cachedLines<T>(file: string, map: (raw: Record<string, unknown>) => T): () => T[] {
  let last: T[] = [];
  return () => {
    if (existsSync(file)) last = readJsonLines<Record<string, unknown>>(file).map(map);
    return [...last];
  };
}

function toTokenLog(r: Record<string, unknown>): TokenRequestLog {
  const out: TokenRequestLog = {
    method: r.method === 'POST' ? 'POST' : 'GET',
    scopes: Array.isArray(r.scopes) ? (r.scopes as string[]) : [],
    granted: r.granted === true,
    status: Number(r.status),
  };
  if (typeof r.user === 'string') out.user = r.user;
  if (typeof r.grantType === 'string') out.grantType = r.grantType;
  if (typeof r.service === 'string') out.service = r.service;
  if (Array.isArray(r.grantedAccess)) out.grantedAccess = r.grantedAccess as TokenRequestLog['grantedAccess'];
  if (typeof r.refreshToken === 'boolean') out.refreshToken = r.refreshToken;
  if (typeof r.reason === 'string') out.reason = r.reason;
  return out;
}

function toBlobLog(r: Record<string, unknown>): BlobHostRequestLog {
  const out: BlobHostRequestLog = {
    method: String(r.method),
    path: String(r.path),
    authorization: r.authorization === true,
    status: Number(r.status),
  };
  if (typeof r.range === 'string') out.range = r.range;
  if (typeof r.bytes === 'number') out.bytes = r.bytes;
  return out;
}

/**
 * Starts several registries concurrently, one per mode. If any fails, the others are stopped and the
 * first error is thrown.
 */
export async function startRegistries<M extends RegistryMode>(
  modes: readonly M[],
  opts: Omit<RegistryOptions, 'mode'> = {},
): Promise<Record<M, StartedRegistry>> {
  const results = await Promise.allSettled(modes.map((mode) => startRegistry({ ...opts, mode })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw failed.reason;
  }
  const out = {} as Record<M, StartedRegistry>;
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') out[modes[i] as M] = r.value;
  });
  return out;
}

/** Stops every given registry (idempotent, never throws for an already stopped one). */
export async function stopRegistries(regs: Iterable<StartedRegistry | undefined>): Promise<void> {
  await Promise.all([...regs].map((r) => r?.stop()));
}

// ---- talking to a fixture directly (undici) ------------------------------------------------------

/** The undici dispatcher for `reg` (trusts its CA in tls mode); closed by reg.stop(). */
export function registryDispatcher(reg: StartedRegistry): Dispatcher {
  let agent = dispatchers.get(reg);
  if (agent === undefined) {
    const ca = reg.caFile !== undefined ? readFileSync(reg.caFile, 'utf8') : undefined;
    agent = new Agent(ca !== undefined ? { connect: { ca } } : {});
    dispatchers.set(reg, agent);
  }
  return agent;
}

/**
 * Credentials for `registryAuthorization`: an account; `'anonymous'` (no credentials, but in token
 * mode still an anonymous token); or `'none'` (no Authorization header at all).
 */
export type FixtureCredentials = { username: string; password: string } | 'anonymous' | 'none';

/**
 * The `Authorization` header value for requests to `reg`: Basic for basic/redirect, a Bearer token
 * fetched from the token server for `scopes` (e.g. `repository:small:pull`) in token mode (anonymous: a
 * token asked for without credentials), undefined for plain/tls, anonymous Basic or `'none'`. Default credentials: the registry's own account. Throws when the
 * token server refuses.
 */
export async function registryAuthorization(
  reg: StartedRegistry,
  scopes: readonly string[],
  creds?: FixtureCredentials,
): Promise<string | undefined> {
  const c =
    creds ??
    (reg.username !== undefined ? { username: reg.username, password: reg.password ?? '' } : 'anonymous');
  if (c === 'none') return undefined;
  const basic =
    c === 'anonymous' ? undefined : `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  if (reg.mode !== 'token' || reg.token === undefined) return basic;
  const u = new URL(reg.token.realm);
  u.searchParams.set('service', reg.token.service);
  for (const s of scopes) u.searchParams.append('scope', s);
  const res = await fetch(u, basic !== undefined ? { headers: { authorization: basic } } : {});
  const body = await res.text();
  if (res.status !== 200)
    throw new Error(`token server answered ${res.status} for scopes ${scopes.join(' ')}`);
  return `Bearer ${(JSON.parse(body) as { token: string }).token}`;
}

/** Scope a request to `path` needs: `repository:<name>:pull` (+push for writes, +delete for DELETE). */
export function scopeForPath(path: string, method = 'GET'): string[] {
  const m = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(path);
  if (!m) return path.startsWith('/v2/_catalog') ? ['registry:catalog:*'] : [];
  const actions =
    method === 'DELETE'
      ? 'pull,push,delete'
      : ['PUT', 'POST', 'PATCH'].includes(method)
        ? 'pull,push'
        : 'pull';
  return [`repository:${m[1]}:${actions}`];
}

export interface RegistryFetchInit extends Omit<RequestInit, 'dispatcher'> {
  /** Token scopes; default derived from the path and method. */
  scopes?: string[];
  /** Credentials; default the registry's account (see FixtureCredentials). */
  auth?: FixtureCredentials;
}

/**
 * `fetch(reg.url + path)` through undici with the registry's CA and the right Authorization header
 * for its mode (see registryAuthorization). Redirects are NOT followed unless `redirect: 'follow'`.
 */
export async function registryFetch(
  reg: StartedRegistry,
  path: string,
  init: RegistryFetchInit = {},
): Promise<Response> {
  const { scopes, auth, headers, ...rest } = init;
  const method = (rest.method ?? 'GET').toUpperCase();
  const h = new Headers(headers);
  if (!h.has('authorization')) {
    const a = await registryAuthorization(reg, scopes ?? scopeForPath(path, method), auth);
    if (a !== undefined) h.set('authorization', a);
  }
  return fetch(new URL(path, reg.url), {
    redirect: 'manual',
    ...rest,
    method,
    headers: Object.fromEntries(h.entries()),
    dispatcher: registryDispatcher(reg),
  });
}
