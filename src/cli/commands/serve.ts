/**
 * `kimg serve [--listen unix:///run/kimg/kimg.sock] [--config FILE] [--root DIR] [registry options]`:
 * serves the CRI ImageService (plus RuntimeService.Version) over kimg's store on a unix socket, so a
 * kubelet (`--image-service-endpoint`) or `kimg cri` / crictl can pull, list, inspect and remove
 * images through kimg. Credentials come with each PullImage (`AuthConfig`), as from the kubelet, so
 * there is no `--creds` / `--docker-config` here.
 *
 * Runs until SIGTERM or SIGINT, then drains: no new calls, in-flight pulls finish (up to
 * `--drain-timeout`, then they are cancelled), the socket is removed, the store closed.
 * `--http 127.0.0.1:PORT` adds a loopback HTTP endpoint: `/metrics` (pull progress gauges),
 * `/healthz` and `/api/pulls/progress` (per-layer progress of every in-flight PullImage as
 * newline-delimited JSON, docs/design/pull-progress.md).
 * A thin face over `startCriServer` and the node runtime's `local` image service.
 */
import type { Command } from 'commander';
import { Registry } from 'prom-client';
import { configVerboseInfo, startCriServer, storeVerboseInfo } from '../../cri/index.js';
import { KimgError } from '../../errors/index.js';
import {
  parseHostPort,
  registerPullProgressMetrics,
  startPullProgressServer,
  type PullProgressServer,
} from '../../node/index.js';
import { imageServiceBackend, openNodeRuntime } from '../../runtime/index.js';
import type { CliContext } from '../context.js';
import { loadCliNodeConfig } from '../pod-options.js';
import {
  addRegistryTransportOptions,
  registryClientOptions,
  type RegistryCliOptions,
} from '../registry-options.js';
import { addStoreOptions, type StoreCliOptions } from '../store-options.js';
import { addContainerdOption, type ContainerdCliOptions } from '../containerd-options.js';

import { kimgVersion } from '../version.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

/** Where `kimg serve` listens without `--listen` or a configured `listen.cri`. */
export const DEFAULT_CRI_LISTEN = 'unix:///run/kimg/kimg.sock';

interface ServeCliOptions
  extends Omit<RegistryCliOptions, 'creds' | 'dockerConfig'>, StoreCliOptions, ContainerdCliOptions {
  listen?: string;
  http?: string;
  config?: string;
  platform?: string;
  defaultRegistry?: string;
  concurrency: string;
  drainTimeout: string;
}

export const registerServe: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('serve')
    .description('serve the CRI ImageService over the local store on a unix socket (until SIGTERM)')
    .option(
      '--listen <address>',
      `unix socket to serve on (default: the config's listen.cri, else ${DEFAULT_CRI_LISTEN})`,
    )
    .option(
      '--http <host:port>',
      'also serve /metrics and /api/pulls/progress (pull progress, JSON lines) on this loopback address',
    )
    .option(
      '--config <file>',
      'KubeletConfiguration / KimgConfiguration file (root, hosts dir, default registry, listen)',
    )
    .option('--platform <os/arch[/variant]>', 'platform to pull (default: this host)')
    .option(
      '--default-registry <host>',
      'registry for names without one (default: the configuration, else docker.io)',
    )
    .option('--concurrency <n>', 'blobs downloaded at once per pull', '3')
    .option(
      '--drain-timeout <seconds>',
      'on SIGTERM, how long in-flight pulls may run before they are cancelled',
      '60',
    );
  addStoreOptions(cmd);
  addContainerdOption(cmd);
  // The registry options of the pulling commands minus --creds / --docker-config: credentials come
  // with each PullImage (CRI AuthConfig), as the kubelet sends them.
  addRegistryTransportOptions(cmd).action(async (options: ServeCliOptions) => {
    await run(options, ctx);
  });
};

function positive(flag: string, value: string, integer: boolean): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isSafeInteger(n))) {
    throw new KimgError(
      'USAGE',
      `${flag} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}`,
      {
        input: value,
      },
    );
  }
  return n;
}

async function run(options: ServeCliOptions, ctx: CliContext): Promise<void> {
  const concurrency = positive('--concurrency', options.concurrency, true);
  const drainTimeoutMs = Math.round(positive('--drain-timeout', options.drainTimeout, false) * 1000);
  const config = await loadCliNodeConfig(options.config);
  for (const n of config.notices) ctx.stderr.write(`notice: ${n}\n`);
  const listen = options.listen ?? config.kimg.listen.cri ?? DEFAULT_CRI_LISTEN;
  const httpAddress = options.http !== undefined ? parseHostPort(options.http) : undefined;
  const hostsDir = options.hostsDir ?? config.kimg.hostsDir;
  // Credentials come with each PullImage: no credential sources; the kubelet verifies its own pulls.
  const runtime = await openNodeRuntime(config, {
    env: ctx.env,
    // --containerd: PullImage runs kimg's pipeline into containerd's store; the other RPCs answer
    // from containerd's store (a kubelet's imageServiceEndpoint beside containerd's runtime endpoint).
    imageService: imageServiceBackend(config.kimg, {
      containerd: options.containerd,
      platform: options.platform,
      concurrency,
    }),
    registry: registryClientOptions({ ...options, ...(hostsDir !== undefined ? { hostsDir } : {}) }, ctx),
    ...(options.root !== undefined ? { root: options.root } : {}),
    ...(options.defaultRegistry !== undefined ? { defaultRegistry: options.defaultRegistry } : {}),
    credentials: false,
    verification: 'read-only',
  });
  let http: PullProgressServer | undefined;
  try {
    const { store, imageService, containerd } = runtime;
    if (httpAddress !== undefined) {
      const registry = new Registry();
      registerPullProgressMetrics(registry, runtime.progress);
      http = await startPullProgressServer({
        ...httpAddress,
        hub: runtime.progress,
        metrics: async () => ({ contentType: registry.contentType, text: await registry.metrics() }),
      });
      ctx.stderr.write(`kimg serve: http on ${http.url}\n`);
    }
    const server = await startCriServer({
      listen,
      imageService,
      version: { runtimeName: 'kimg', runtimeVersion: kimgVersion() },
      // Verbose ImageStatus renders the image's config from the store the image is in.
      verboseInfo:
        containerd !== undefined
          ? configVerboseInfo((id) => containerd.readImageConfig(id))
          : storeVerboseInfo(store),
      drainTimeoutMs,
      log: (line) => void ctx.stderr.write(`${new Date().toISOString()} ${escapeTerminal(line)}\n`),
    });
    ctx.stderr.write(
      `kimg serve: listening on ${server.address} (${runtime.containerd ? `containerd ${runtime.containerd.client.address}, namespace ${runtime.containerd.client.namespace}` : `store ${store.root}`})\n`,
    );
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      const on = (s: NodeJS.Signals) => {
        process.removeListener('SIGTERM', on);
        process.removeListener('SIGINT', on);
        resolve(s);
      };
      process.on('SIGTERM', on);
      process.on('SIGINT', on);
    });
    ctx.stderr.write(`kimg serve: ${signal}: draining ${server.inFlight()} in-flight call(s)\n`);
    await server.close();
    ctx.stderr.write('kimg serve: stopped\n');
  } finally {
    await http?.close();
    await runtime.close();
  }
}
