/**
 * Registry options shared by every command that talks to a registry (`manifest`, `tags`, `blob get`,
 * and later `pull`/`push`), and turning them into a `RegistryClient` plus a credential loop.
 *
 *   --creds user:pass        credentials for the image's registry (the password never prints)
 *   --creds-host HOST        the one registry host --creds belong to; images elsewhere get none
 *   --docker-config FILE     docker config.json / .dockercfg; matching entries are tried in kubelet
 *                            order until one works (repeatable)
 *   --plain-http HOST        reach HOST (host:port, or a host name for all its ports) over plain HTTP
 *                            (repeatable; like containerd's `--plain-http`, localhost included only when
 *                            listed)
 *   --ca-file FILE           extra CA certificate (PEM) trusted for HTTPS registries (repeatable)
 *   --hosts-dir DIR          containerd-style hosts directory (mirrors, per-host CA, skip_verify)
 *   --stall-timeout SECONDS  fail a request when no bytes arrive for this long (default 60)
 *   --min-throughput BYTES   fail a blob download slower than this many bytes/s over a stall window
 *                            (default 1024; 0 = off)
 *
 * `KIMG_DEBUG=registry` (or `1`) logs every request (redacted) on stderr.
 */
import type { Command } from 'commander';
import {
  Keyring,
  Secret,
  credentialsBindTo,
  loadDockerConfigFile,
  tryEachCredential,
  type AuthConfig,
  type CredentialMatch,
} from '../credentials/index.js';
import { KimgError } from '../errors/index.js';
import { parseDockerRef } from '../reference/index.js';
import { RegistryClient, debugFromEnv, type RegistryClientOptions } from '../registry/index.js';
import type { CliContext } from './context.js';
import { kimgVersion } from './version.js';
import { collect } from './collect.js';
import { escapeTerminal } from '../gotext/index.js';

/** Parsed values of the registry options (commander camel-cases the flags). */
export interface RegistryCliOptions {
  creds?: string;
  credsHost?: string;
  dockerConfig?: string[];
  plainHttp?: string[];
  caFile?: string[];
  hostsDir?: string;
  stallTimeout?: string;
  minThroughput?: string;
}

/** Adds the shared registry options to `cmd`: credentials, then the transport options. */
export function addRegistryOptions(cmd: Command): Command {
  cmd
    .option('--creds <user:password>', "credentials for the image's registry (never printed)")
    .option(
      '--creds-host <host>',
      'the registry host (host[:port]) --creds belong to: images on other hosts get no --creds',
    )
    .option(
      '--docker-config <file>',
      'docker config.json or .dockercfg; matching credentials are tried in order (repeatable)',
      collect,
    );
  return addRegistryTransportOptions(cmd);
}

/**
 * Hides `--creds` and `--creds-host` from a command's help: for the commands that take credentials the
 * way the kubelet does (pull Secrets, docker configs) and refuse the flags with a USAGE error saying so.
 * The flags stay parsed, so the refusal names the right place instead of commander's "unknown option".
 */
export function hideCredsOptions(cmd: Command): Command {
  for (const o of cmd.options) if (o.long === '--creds' || o.long === '--creds-host') o.hideHelp();
  return cmd;
}

/**
 * Adds how registries are reached — `--plain-http`, `--ca-file`, `--hosts-dir`, `--stall-timeout` —
 * without credential options (for `kimg serve`, whose credentials come with each CRI PullImage).
 */
export function addRegistryTransportOptions(cmd: Command): Command {
  return cmd
    .option(
      '--plain-http <host>',
      'reach this registry host (host:port, or host for every port) over plain HTTP (repeatable)',
      collect,
    )
    .option(
      '--ca-file <file>',
      'extra CA certificate (PEM) to trust for HTTPS registries (repeatable)',
      collect,
    )
    .option(
      '--hosts-dir <dir>',
      'containerd-style hosts directory, e.g. /etc/containerd/certs.d (mirrors, CAs, skip_verify)',
    )
    .option('--stall-timeout <seconds>', 'fail when a registry sends no bytes for this long', '60')
    .option(
      '--min-throughput <bytes-per-second>',
      'fail a blob download slower than this, averaged over each stall window (0 = off)',
      '1024',
    );
}

/**
 * Parses `--creds user:password`.
 * @throws KimgError `USAGE` when there is no `:` or no user (the message never contains the password).
 */
export function parseCredsFlag(value: string): AuthConfig {
  const i = value.indexOf(':');
  if (i <= 0) throw new KimgError('USAGE', '--creds must be user:password (the user may not be empty)');
  return { username: value.slice(0, i), password: new Secret(value.slice(i + 1)) };
}

/**
 * Checks `--creds-host`: a host (no scheme, no path), and only with `--creds`.
 * @throws KimgError `USAGE`.
 */
export function checkCredsHost(opts: RegistryCliOptions): void {
  if (opts.credsHost === undefined) return;
  if (opts.creds === undefined) throw new KimgError('USAGE', '--creds-host is only meaningful with --creds');
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(opts.credsHost)) {
    throw new KimgError(
      'USAGE',
      `--creds-host must be a registry host[:port] such as registry.example:5000, got ${JSON.stringify(opts.credsHost)}`,
      { input: opts.credsHost },
    );
  }
}

/**
 * Turns parsed options into `RegistryClient` options (no credentials: see {@link registrySession}).
 * @throws KimgError `USAGE` for an invalid `--stall-timeout`.
 */
export function registryClientOptions(opts: RegistryCliOptions, ctx: CliContext): RegistryClientOptions {
  const stall = Number(opts.stallTimeout ?? '60');
  if (!Number.isFinite(stall) || stall <= 0)
    throw new KimgError(
      'USAGE',
      `--stall-timeout must be a positive number of seconds, got ${JSON.stringify(opts.stallTimeout)}`,
      { input: opts.stallTimeout ?? '' },
    );
  const minThroughput = Number(opts.minThroughput ?? '1024');
  if (!Number.isFinite(minThroughput) || minThroughput < 0)
    throw new KimgError(
      'USAGE',
      `--min-throughput must be a number of bytes per second (0 = off), got ${JSON.stringify(opts.minThroughput)}`,
      { input: opts.minThroughput ?? '' },
    );
  const out: RegistryClientOptions = {
    stallTimeoutMs: Math.round(stall * 1000),
    minBlobBytesPerSecond: minThroughput,
    userAgent: `kimg/${kimgVersion()}`,
    warn: (m) => void ctx.stderr.write(`warning: ${escapeTerminal(m)}\n`),
  };
  if (opts.plainHttp?.length) out.plainHttp = opts.plainHttp;
  if (opts.caFile?.length) out.caFiles = opts.caFile;
  if (opts.hostsDir) out.hostsDir = opts.hostsDir;
  const debug = debugFromEnv(ctx.env, (t) => void ctx.stderr.write(t));
  if (debug) out.debug = debug;
  return out;
}

/** A client plus the credential loop for one CLI invocation. */
export interface RegistrySession {
  client: RegistryClient;
  /**
   * Runs `attempt` with the credentials to use for `image`: `--creds` once; else each matching
   * `--docker-config` credential in kubelet order until one works (`NO_CREDENTIALS_ACCEPTED` naming
   * the keys when all are refused); else anonymously once.
   */
  withCredentials<T>(image: string, attempt: (auth: AuthConfig | null) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Builds the session for parsed options.
 * @throws KimgError `USAGE`, `FILE_NOT_FOUND`, `DOCKER_CONFIG_INVALID`.
 */
export async function registrySession(opts: RegistryCliOptions, ctx: CliContext): Promise<RegistrySession> {
  const clientOptions = registryClientOptions(opts, ctx);
  const flagCreds = opts.creds !== undefined ? parseCredsFlag(opts.creds) : undefined;
  checkCredsHost(opts);
  if (flagCreds && opts.dockerConfig?.length)
    throw new KimgError('USAGE', 'use either --creds or --docker-config, not both');
  let keyring: Keyring | undefined;
  if (opts.dockerConfig?.length) {
    keyring = new Keyring();
    for (const file of opts.dockerConfig) {
      const cfg = await loadDockerConfigFile(file);
      keyring.add(cfg.entries, { kind: 'flag', file });
    }
  }
  const client = new RegistryClient(clientOptions);
  return {
    client,
    async withCredentials<T>(image: string, attempt: (auth: AuthConfig | null) => Promise<T>): Promise<T> {
      if (flagCreds) {
        const host = parseDockerRef(image).domain;
        return attempt(credentialsBindTo(opts.credsHost, host) ? flagCreds : null);
      }
      if (!keyring) return attempt(null);
      const matches: CredentialMatch[] = keyring.lookup(image);
      const { result } = await tryEachCredential(matches, (m) => attempt(m ? m.auth : null));
      return result;
    },
    close: () => client.close(),
  };
}
