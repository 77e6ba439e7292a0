/**
 * Exec credential provider plugins, as kubelet runs them (`pkg/credentialprovider/plugin/plugin.go`,
 * protocol `credentialprovider.kubelet.k8s.io/v1`):
 *
 * - a provider applies to an image when one of its `matchImages` globs matches the image's repository
 *   (keyring rules); the binary is `<binDir>/<name>`, run with the configured args and with the
 *   configured env appended to kimg's own environment (configured values win);
 * - the request goes to stdin: `{"kind":"CredentialProviderRequest","apiVersion":…,"image":REPO}` plus,
 *   in service-account token mode (`tokenAttributes`), `serviceAccountToken` and
 *   `serviceAccountAnnotations`; the response comes from stdout and is decoded strictly: same
 *   apiVersion, kind `CredentialProviderResponse`, `cacheKeyType` `Image` | `Registry` | `Global`,
 *   optional `cacheDuration`, and `auth`: a map of keyring globs to `{username, password}`;
 * - responses are cached per provider under the image, the registry (text before the first `/`) or a
 *   global key, as the response says, until `cacheDuration` (or the provider's `defaultCacheDuration`)
 *   passes; `0` means not cached. Lookups try image, registry, then global. Concurrent requests for the
 *   same image share one plugin run (single-flight). Expired entries are purged at most every 15 min;
 * - every run has a timeout (kubelet: a fixed minute); the plugin's whole process group is killed
 *   when it passes; its stdout and stderr are read within `PLUGIN_OUTPUT_LIMITS`.
 *
 * Failures (`CREDENTIAL_PROVIDER_FAILED`) name the plugin and the image. The plugin's stderr is included
 * only after redaction: the service-account token and every token-like run of characters are replaced
 * by `<redacted>` (kubelet echoes stderr verbatim; a plugin may print secrets there); then it is
 * escaped for a terminal and cut to `PLUGIN_STDERR_EXCERPT` characters. Decoding errors
 * never include the response (it carries passwords), exactly as kubelet's
 * `error decoding credential provider plugin response from stdout`.
 */
import { spawn as nodeSpawn } from 'node:child_process';
import { collectBounded } from '../bounded/index.js';
import { terminalExcerpt } from '../gotext/index.js';
import { createHash } from 'node:crypto';
import { access, constants as fsConstants, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KimgError, quote } from '../errors/index.js';
import { systemClock, type Clock } from '../clock/index.js';
import type { DockerConfigEntry } from './docker-config.js';
import { formatGoDuration, nsToMs, parseGoDuration } from './internal/go-duration.js';
import {
  GoJsonSyntaxError,
  goJsonMarshal,
  parseGoJson,
  type GoJsonValue,
  type GoJsonWritable,
} from './internal/go-json.js';
import { Keyring, matchKey, type CredentialMatch, type CredentialSource } from './keyring.js';
import {
  loadCredentialProviderConfig,
  type CredentialProviderConfigOptions,
  type CredentialProviderSpec,
} from './provider-config.js';
import { Secret } from './secret.js';
import type { ServiceAccountTokenRequest } from './token-source.js';

/** kubelet's fixed plugin timeout. */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 60_000;
/** How often expired cache entries are purged (kubelet `cachePurgeInterval`). */
export const CACHE_PURGE_INTERVAL_MS = 15 * 60 * 1000;
/** Cache key of `Global` responses (angle brackets cannot occur in an image name). */
const GLOBAL_CACHE_KEY = '<global>';

/** What a plugin run produced. */
export interface SpawnResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** True when the run was killed because it passed the timeout. */
  timedOut: boolean;
  /** True when the run was killed because stdout passed `PLUGIN_OUTPUT_LIMITS.maxStdoutBytes`. */
  stdoutOverflow?: boolean;
  /** Set when the process could not be started (missing binary, permission). */
  spawnError?: NodeJS.ErrnoException;
}

/** Runs a plugin binary; injectable for tests. Must kill the process when `timeoutMs` passes. */
export type SpawnPlugin = (
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; input: Buffer; timeoutMs: number },
) => Promise<SpawnResult>;

/**
 * Bounds of a plugin's output. A CredentialProviderResponse is a few KiB; 1 MiB of stdout is far
 * beyond any real one, and the process is killed at the first byte past it (its output would only be
 * refused). Of stderr, 64 KiB is kept (the message quotes at most `PLUGIN_STDERR_EXCERPT` characters).
 */
export const PLUGIN_OUTPUT_LIMITS = { maxStdoutBytes: 1024 * 1024, maxStderrBytes: 64 * 1024 } as const;
/** How many characters of a plugin's stderr an error message quotes (escaped, redacted). */
export const PLUGIN_STDERR_EXCERPT = 512;

/**
 * The default `SpawnPlugin`: `child_process.spawn` in a process group of its own, stdin written then
 * closed, stdout and stderr collected within `PLUGIN_OUTPUT_LIMITS`. On timeout or a stdout past its
 * cap the whole group gets SIGKILL: a grandchild the plugin started (a shell's background job, a
 * helper holding the pipes) dies with it instead of keeping kimg waiting and outliving the run.
 */
export const spawnPlugin: SpawnPlugin = (command, args, options) =>
  new Promise((resolve) => {
    let timedOut = false;
    let overflowed = false;
    let settled = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const child = nodeSpawn(command, [...args], {
      env: options.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL'); // the group is gone already; the child itself if still there
      }
    };
    const out = collectBounded(child.stdout, PLUGIN_OUTPUT_LIMITS.maxStdoutBytes, () => {
      overflowed = true;
      killGroup();
    });
    const err = collectBounded(child.stderr, PLUGIN_OUTPUT_LIMITS.maxStderrBytes);
    const finish = (r: Omit<SpawnResult, 'stdout' | 'stderr' | 'timedOut'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void Promise.all([out, err]).then(([o, e]) =>
        resolve({
          ...r,
          stdout: o.data,
          stderr: e.data,
          timedOut,
          ...(overflowed ? { stdoutOverflow: true } : {}),
        }),
      );
    };
    // After the deadline, do not wait for the pipes: a grandchild outside the group may hold them.
    const finishNow = (): void => {
      child.stdout.destroy();
      child.stderr.destroy();
      finish({ code: exited?.code ?? null, signal: exited?.signal ?? null });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
      if (exited !== undefined) finishNow();
    }, options.timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => finish({ code: null, signal: null, spawnError: e }));
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      if (timedOut) finishNow();
    });
    child.on('close', (code, signal) => finish({ code, signal }));
    child.stdin.on('error', () => undefined); // a plugin that exits without reading stdin
    child.stdin.end(options.input);
  });

/** A ServiceAccount as the plugin needs it (token mode). */
export interface ServiceAccountInfo {
  uid: string;
  annotations: Record<string, string>;
}

/** Per-pod context for plugins in service-account token mode. */
export interface PluginPodContext {
  podNamespace: string;
  podName: string;
  podUid: string;
  /** The pod's ServiceAccount name ('' for none). */
  serviceAccountName: string;
}

/** Options shared by the providers of one manager. */
export interface ExecProviderOptions {
  /** Directory holding the plugin binaries (`--image-credential-provider-bin-dir`). */
  binDir: string;
  clock?: Clock;
  /** Per-run timeout in ms (default 60 000, kubelet's fixed minute). */
  timeoutMs?: number;
  spawn?: SpawnPlugin;
  /** Base environment of plugin runs (default `process.env`). */
  environ?: NodeJS.ProcessEnv;
  /** Token mode: looks up the pod's ServiceAccount (uid, annotations); `podUid` is the pod asking. */
  getServiceAccount?: (namespace: string, name: string, podUid: string) => Promise<ServiceAccountInfo>;
  /** Token mode: issues a token for the ServiceAccount, bound to the pod, for `audience`. */
  getServiceAccountToken?: (request: ServiceAccountTokenRequest) => Promise<string>;
}

/** One provider's answer for an image. */
export interface ProvideResult {
  entries: DockerConfigEntry[];
  source: CredentialSource;
  /** Whether the answer came from the cache (no plugin run). */
  cached: boolean;
  /** Set when the provider did not apply or was skipped: why (no secret in it). */
  skipped?: string;
  /**
   * Set with `skipped` when the skip is a failure the kubelet logs as an error (a service-account token
   * that could not be obtained): the manager reports it as a problem too.
   */
  failed?: true;
  /** Set for a provider in service-account token mode (`tokenAttributes`): its audience. */
  serviceAccountToken?: { audience: string };
}

/** A decoded `CredentialProviderResponse`. */
export interface CredentialProviderResponse {
  cacheKeyType: 'Image' | 'Registry' | 'Global';
  /** Nanoseconds; undefined when the response has none (the provider default applies). */
  cacheDuration?: bigint;
  /** Keyring globs to credentials, in response order. */
  auth: DockerConfigEntry[];
}

interface CacheEntry {
  entries: DockerConfigEntry[];
  expiresAt: number;
}

/**
 * Decodes a plugin's stdout with kubelet's checks (apiVersion, kind, strict fields, cacheKeyType,
 * durations).
 *
 * @throws KimgError `CREDENTIAL_PROVIDER_FAILED` with kubelet's message; never includes the response.
 */
export function parseCredentialProviderResponse(
  stdout: string,
  expectedApiVersion: string,
  plugin = 'plugin',
): CredentialProviderResponse {
  const fail = (msg: string): KimgError =>
    new KimgError('CREDENTIAL_PROVIDER_FAILED', `credential provider plugin ${quote(plugin)}: ${msg}`);
  const decodeError = (): KimgError => fail('error decoding credential provider plugin response from stdout');
  let root: GoJsonValue;
  try {
    root = parseGoJson(stdout);
  } catch (e) {
    const why = e instanceof GoJsonSyntaxError ? `${e.reason} at offset ${e.offset}` : 'unreadable';
    throw fail(`error reading GVK from response: ${why}`);
  }
  if (root.kind !== 'object')
    throw fail('error reading GVK from response: the response is not a JSON object');
  // The type-meta read is lenient (last value wins, case-insensitive); the decode below is strict.
  let apiVersion = '';
  for (const [k, v] of root.members)
    if (k.toLowerCase() === 'apiversion' && v.kind === 'string') apiVersion = v.value;
  if (apiVersion !== expectedApiVersion) {
    const shown = /^[A-Za-z0-9.-]{0,100}(\/[A-Za-z0-9.-]{1,63})?$/.test(apiVersion)
      ? apiVersion
      : '(not an apiVersion)';
    throw fail(
      `apiVersion from credential plugin response did not match expected apiVersion:${expectedApiVersion}, actual apiVersion:${shown}`,
    );
  }
  const seen = new Set<string>();
  let kind = '';
  let cacheKeyType = '';
  let cacheDuration: bigint | undefined;
  const auth: DockerConfigEntry[] = [];
  for (const [k, v] of root.members) {
    if (seen.has(k)) throw decodeError();
    seen.add(k);
    switch (k) {
      case 'kind':
      case 'apiVersion':
        if (v.kind !== 'string' && v.kind !== 'null') throw decodeError();
        if (k === 'kind' && v.kind === 'string') kind = v.value;
        break;
      case 'cacheKeyType':
        if (v.kind === 'string') cacheKeyType = v.value;
        else if (v.kind !== 'null') throw decodeError();
        break;
      case 'cacheDuration':
        if (v.kind === 'string') {
          const ns = parseGoDuration(v.value);
          if (ns === undefined) throw decodeError();
          cacheDuration = ns;
        } else if (v.kind !== 'null') throw decodeError();
        break;
      case 'auth':
        if (v.kind === 'null') break;
        if (v.kind !== 'object') throw decodeError();
        {
          const keys = new Set<string>();
          for (const [glob, entry] of v.members) {
            if (keys.has(glob)) throw decodeError();
            keys.add(glob);
            auth.push({ key: glob, auth: decodeAuthEntry(entry, decodeError) });
          }
        }
        break;
      default:
        throw decodeError();
    }
  }
  if (kind !== 'CredentialProviderResponse') throw decodeError();
  if (cacheKeyType !== 'Image' && cacheKeyType !== 'Registry' && cacheKeyType !== 'Global') {
    const shown = /^[A-Za-z]{0,32}$/.test(cacheKeyType) ? quote(cacheKeyType) : '(invalid value)';
    throw fail(`credential provider plugin did not return a valid cacheKeyType: ${shown}`);
  }
  return { cacheKeyType, ...(cacheDuration !== undefined ? { cacheDuration } : {}), auth };
}

function decodeAuthEntry(v: GoJsonValue, decodeError: () => KimgError): DockerConfigEntry['auth'] {
  if (v.kind === 'null') return {};
  if (v.kind !== 'object') throw decodeError();
  let username = '';
  let password = '';
  const seen = new Set<string>();
  for (const [k, x] of v.members) {
    if (seen.has(k)) throw decodeError();
    seen.add(k);
    if (k !== 'username' && k !== 'password') throw decodeError();
    if (x.kind === 'null') continue;
    if (x.kind !== 'string') throw decodeError();
    if (k === 'username') username = x.value;
    else password = x.value;
  }
  return {
    ...(username !== '' ? { username } : {}),
    ...(password !== '' ? { password: new Secret(password) } : {}),
  };
}

/** The registry part of an image repository: the text before the first `/` (kubelet `parseRegistry`). */
function registryOf(image: string): string {
  const i = image.indexOf('/');
  return i < 0 ? image : image.slice(0, i);
}

/**
 * Replaces secrets in plugin stderr: the given exact values, then every token-like run of base64/URL
 * characters (20+ characters mixing letters and digits, or any 32+ run: base64, hex, JWT segments).
 * Host names and paths without digits survive. Caps the text at 512 characters, on one line.
 */
export function redactPluginStderr(stderr: string, secrets: readonly string[] = []): string {
  let s = stderr;
  for (const v of secrets) if (v.length > 0) s = s.split(v).join('<redacted>');
  s = s.replace(/[A-Za-z0-9+/=_.~-]{20,}/g, (run) =>
    run.length >= 32 || (/[0-9]/.test(run) && /[A-Za-z]/.test(run)) ? '<redacted>' : run,
  );
  s = Array.from(s, (ch) => {
    const c = ch.charCodeAt(0);
    return c < 0x20 || c === 0x7f ? ' ' : ch;
  })
    .join('')
    .replace(/ {2,}/g, ' ')
    .trim();
  return s.length > 512 ? s.slice(0, 512) + '…' : s;
}

/** One configured exec plugin with its cache. */
export class ExecCredentialProvider {
  readonly name: string;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<CredentialProviderResponse>>();
  private lastPurge: number;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly spawn: SpawnPlugin;
  /** Number of plugin runs started (for tests and metrics). */
  runs = 0;

  constructor(
    readonly spec: CredentialProviderSpec,
    private readonly options: ExecProviderOptions,
  ) {
    this.name = spec.name;
    this.clock = options.clock ?? systemClock;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS;
    this.spawn = options.spawn ?? spawnPlugin;
    this.lastPurge = this.clock.now();
  }

  /** Whether one of `matchImages` matches the repository (keyring glob rules). */
  isImageAllowed(repository: string): boolean {
    return this.spec.matchImages.some((m) => matchKey(m, repository) === undefined);
  }

  /**
   * Credentials for `repository` (the normalized image name without tag, as kubelet sends it): from
   * the cache, or by running the plugin.
   *
   * @throws KimgError `CREDENTIAL_PROVIDER_FAILED` naming the plugin when the run fails, times out or
   * answers invalid JSON. (The manager turns this into a reported problem and goes on, as kubelet does.)
   */
  async provide(repository: string, pod?: PluginPodContext): Promise<ProvideResult> {
    const source: CredentialSource = { kind: 'plugin', plugin: this.name };
    if (!this.isImageAllowed(repository))
      return { entries: [], source, cached: false, skipped: 'no matchImages entry matches the image' };

    let token = '';
    let annotations: Record<string, string> | undefined;
    let saKey = '';
    const ta = this.spec.tokenAttributes;
    const tokenMode =
      ta !== undefined && ta.serviceAccountTokenAudience !== ''
        ? { audience: ta.serviceAccountTokenAudience }
        : undefined;
    const mode = tokenMode !== undefined ? { serviceAccountToken: tokenMode } : {};
    if (ta !== undefined && tokenMode !== undefined) {
      const skip = (why: string): ProvideResult => ({
        entries: [],
        source,
        cached: false,
        skipped: why,
        serviceAccountToken: tokenMode,
      });
      const saName = pod?.serviceAccountName ?? '';
      if (saName === '' && ta.requireServiceAccount === true)
        return skip(
          pod === undefined
            ? 'the provider requires a ServiceAccount and the lookup is for no pod'
            : 'the provider requires a ServiceAccount and the pod has none',
        );
      if (saName !== '' && pod !== undefined) {
        const saRef = quote(`${pod.podNamespace}/${saName}`);
        if (this.options.getServiceAccountToken === undefined)
          return skip(
            `no service-account token source is configured (projected token files or TokenRequest) to get a token for ServiceAccount ${saRef}`,
          );
        if (this.options.getServiceAccount === undefined)
          return skip(`ServiceAccount ${saRef} cannot be looked up (no Kubernetes objects)`);
        let sa: ServiceAccountInfo;
        try {
          sa = await this.options.getServiceAccount(pod.podNamespace, saName, pod.podUid);
        } catch {
          return skip(`ServiceAccount ${saRef} is not available`);
        }
        annotations = {};
        for (const k of ta.requiredServiceAccountAnnotationKeys) {
          const v = sa.annotations[k];
          if (v === undefined) return skip(`required annotation ${k} not found on ServiceAccount ${saRef}`);
          annotations[k] = v;
        }
        for (const k of ta.optionalServiceAccountAnnotationKeys) {
          const v = sa.annotations[k];
          if (v !== undefined) annotations[k] = v;
        }
        try {
          token = await this.options.getServiceAccountToken({
            namespace: pod.podNamespace,
            name: saName,
            uid: sa.uid,
            audience: ta.serviceAccountTokenAudience,
            podName: pod.podName,
            podUid: pod.podUid,
          });
        } catch (e) {
          // A TokenSource's errors never hold the token (its contract): the message says which file
          // or which API request failed.
          return {
            ...skip(
              `the service account token for ServiceAccount ${saRef} could not be obtained: ${e instanceof Error ? e.message : String(e)}`,
            ),
            failed: true,
          };
        }
        const tokenHash = token === '' ? '' : 'sha256:' + createHash('sha256').update(token).digest('hex');
        const sorted = Object.keys(annotations).sort();
        saKey = JSON.stringify([
          pod.podNamespace,
          saName,
          sa.uid,
          sorted.map((k) => [k, annotations?.[k]]),
          ta.cacheType === 'Token' ? ['token', tokenHash] : [],
        ]);
        source.pluginServiceAccount = { namespace: pod.podNamespace, name: saName, uid: sa.uid };
      }
    }

    const cached = this.cacheLookup(repository, saKey);
    if (cached !== undefined) return { entries: cached, source, cached: true, ...mode };

    let flightKey = repository;
    if (saKey !== '') {
      const tokenHash = token === '' ? '' : createHash('sha256').update(token).digest('hex');
      flightKey = JSON.stringify([
        repository,
        tokenHash,
        Object.keys(annotations ?? {})
          .sort()
          .map((k) => [k, annotations?.[k]]),
      ]);
    }
    let flight = this.inflight.get(flightKey);
    if (flight === undefined) {
      flight = this.exec(repository, token, annotations).finally(() => this.inflight.delete(flightKey));
      this.inflight.set(flightKey, flight);
    }
    const response = await flight;

    if (
      token !== '' &&
      ta?.cacheType !== 'Token' &&
      response.auth.some((e) => e.auth.password?.reveal() === token)
    ) {
      throw new KimgError(
        'CREDENTIAL_PROVIDER_FAILED',
        `credential provider plugin ${quote(this.name)} returned the service account token as the password for image ${quote(repository)}, which is not allowed when the service account cache type is not "Token"`,
      );
    }
    const base =
      response.cacheKeyType === 'Image'
        ? repository
        : response.cacheKeyType === 'Registry'
          ? registryOf(repository)
          : GLOBAL_CACHE_KEY;
    const duration = response.cacheDuration ?? this.spec.defaultCacheDuration ?? 0n;
    if (duration !== 0n) {
      this.cache.set(cacheKey(base, saKey), {
        entries: response.auth,
        expiresAt: this.clock.now() + nsToMs(duration),
      });
    }
    return { entries: response.auth, source, cached: false, ...mode };
  }

  private cacheLookup(repository: string, saKey: string): DockerConfigEntry[] | undefined {
    const now = this.clock.now();
    if (now > this.lastPurge + CACHE_PURGE_INTERVAL_MS) {
      for (const [k, e] of this.cache) if (now > e.expiresAt) this.cache.delete(k);
      this.lastPurge = now;
    }
    for (const base of [repository, registryOf(repository), GLOBAL_CACHE_KEY]) {
      const key = cacheKey(base, saKey);
      const e = this.cache.get(key);
      if (e === undefined) continue;
      if (now > e.expiresAt) {
        this.cache.delete(key);
        continue;
      }
      return e.entries;
    }
    return undefined;
  }

  private async exec(
    repository: string,
    token: string,
    annotations: Record<string, string> | undefined,
  ): Promise<CredentialProviderResponse> {
    const request: GoJsonWritable = {
      kind: 'CredentialProviderRequest',
      apiVersion: this.spec.apiVersion,
      image: repository,
      serviceAccountToken: token === '' ? undefined : token,
      serviceAccountAnnotations:
        annotations === undefined || Object.keys(annotations).length === 0
          ? undefined
          : Object.fromEntries(
              Object.keys(annotations)
                .sort()
                .map((k) => [k, annotations[k] as string]),
            ),
    };
    const env: NodeJS.ProcessEnv = { ...(this.options.environ ?? process.env) };
    for (const e of this.spec.env) env[e.name] = e.value;
    const command = join(this.options.binDir, this.name);
    this.runs++;
    const r = await this.spawn(command, this.spec.args, {
      env,
      input: Buffer.from(goJsonMarshal(request) + '\n'),
      timeoutMs: this.timeoutMs,
    });
    const prefix = `error execing credential provider plugin ${this.name} for image ${repository}`;
    const secrets = [token, ...this.spec.env.map((e) => e.value).filter((v) => v.length >= 4)];
    // Redacted, then escaped and cut: the plugin's text must not drive a terminal or fill a log.
    const stderr = terminalExcerpt(
      redactPluginStderr(r.stderr.toString('utf8'), secrets).trimEnd(),
      PLUGIN_STDERR_EXCERPT,
    );
    const withStderr = (why: string): string =>
      stderr === '' ? `${prefix}: ${why}` : `${prefix}: ${why}: ${stderr}`;
    if (r.stdoutOverflow === true) {
      throw new KimgError(
        'CREDENTIAL_PROVIDER_FAILED',
        `${prefix}: the plugin printed more than ${PLUGIN_OUTPUT_LIMITS.maxStdoutBytes} bytes on stdout and was killed`,
      );
    }
    if (r.timedOut) {
      throw new KimgError(
        'CREDENTIAL_PROVIDER_FAILED',
        withStderr(
          `context deadline exceeded (timeout ${formatGoDuration(BigInt(this.timeoutMs) * 1_000_000n)})`,
        ),
        { retryable: true },
      );
    }
    if (r.spawnError !== undefined) {
      throw new KimgError(
        'CREDENTIAL_PROVIDER_FAILED',
        `${prefix}: fork/exec ${command}: ${r.spawnError.code ?? 'error'}`,
        { cause: r.spawnError },
      );
    }
    if (r.code !== 0) {
      throw new KimgError(
        'CREDENTIAL_PROVIDER_FAILED',
        withStderr(r.code === null ? `signal: ${r.signal ?? 'unknown'}` : `exit status ${r.code}`),
      );
    }
    return parseCredentialProviderResponse(r.stdout.toString('utf8'), this.spec.apiVersion, this.name);
  }
}

function cacheKey(base: string, saKey: string): string {
  return JSON.stringify([base, saKey]);
}

/** A plugin failure the manager reported instead of throwing (kubelet logs and goes on). */
export interface PluginProblem {
  plugin: string;
  code: 'CREDENTIAL_PROVIDER_FAILED';
  message: string;
}

/** `PluginManager.provide` result. */
export interface PluginLookup {
  /** The plugins' credentials that apply to the image, in keyring order. */
  matches: CredentialMatch[];
  /** Each provider's raw answer (including skipped ones). */
  results: ProvideResult[];
  problems: PluginProblem[];
}

/** Options of `PluginManager.load`. */
export interface PluginManagerLoadOptions
  extends Omit<ExecProviderOptions, 'binDir'>, CredentialProviderConfigOptions {
  /** `--image-credential-provider-config`: a file or a directory. */
  configPath: string;
  /** `--image-credential-provider-bin-dir`. */
  binDir: string;
}

/**
 * The configured plugins, asked in config order; their answers form the last keyring group
 * (`Union{secrets, Union{node, plugins}}`).
 */
export class PluginManager {
  constructor(readonly providers: readonly ExecCredentialProvider[]) {}

  /**
   * Loads and validates the config, checks the bin dir and every plugin binary, as kubelet does at
   * startup (`RegisterCredentialProviderPlugins`).
   *
   * @throws KimgError `CREDENTIAL_PROVIDER_CONFIG_INVALID` (config errors, `plugin binary directory <d>
   * did not exist`, `plugin binary executable <p> did not exist`, not executable) or `FILE_NOT_FOUND`.
   */
  static async load(options: PluginManagerLoadOptions): Promise<PluginManager> {
    try {
      await stat(options.binDir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new KimgError(
        'CREDENTIAL_PROVIDER_CONFIG_INVALID',
        code === 'ENOENT'
          ? `plugin binary directory ${options.binDir} did not exist`
          : `error inspecting binary directory ${options.binDir}: ${code ?? 'error'}`,
        { file: options.binDir, cause: e },
      );
    }
    const config = await loadCredentialProviderConfig(options.configPath, options);
    const providers: ExecCredentialProvider[] = [];
    for (const spec of config.providers) {
      const bin = join(options.binDir, spec.name);
      const isFile = await stat(bin).then(
        (st) => !st.isDirectory(),
        () => false,
      );
      if (!isFile)
        throw new KimgError(
          'CREDENTIAL_PROVIDER_CONFIG_INVALID',
          `plugin binary executable ${bin} did not exist`,
          { file: bin },
        );
      try {
        await access(bin, fsConstants.X_OK);
      } catch (e) {
        throw new KimgError(
          'CREDENTIAL_PROVIDER_CONFIG_INVALID',
          `error inspecting binary executable ${bin}: permission denied (make it executable)`,
          { file: bin, cause: e },
        );
      }
      providers.push(new ExecCredentialProvider(spec, options));
    }
    return new PluginManager(providers);
  }

  /**
   * Asks every provider about `repository` (in config order) and returns the matching credentials in
   * keyring order. Plugin failures are reported in `problems`, not thrown (kubelet logs them and pulls
   * with the other credentials).
   */
  async provide(repository: string, pod?: PluginPodContext): Promise<PluginLookup> {
    const keyring = new Keyring();
    const results: ProvideResult[] = [];
    const problems: PluginProblem[] = [];
    for (const p of this.providers) {
      try {
        const r = await p.provide(repository, pod);
        results.push(r);
        keyring.add(r.entries, r.source);
        if (r.failed === true && r.skipped !== undefined)
          problems.push({
            plugin: p.name,
            code: 'CREDENTIAL_PROVIDER_FAILED',
            message: `credential provider plugin ${quote(p.name)} skipped: ${r.skipped}`,
          });
      } catch (e) {
        problems.push({
          plugin: p.name,
          code: 'CREDENTIAL_PROVIDER_FAILED',
          message: e instanceof Error ? e.message : String(e),
        });
      }
    }
    return { matches: keyring.lookupRepository(repository), results, problems };
  }
}
