/**
 * `kimg node --config FILE [--secrets-dir DIR] [--service-account-token-dir DIR]
 * [--metrics-addr 127.0.0.1:10259] [--cri-listen ADDR]
 * [--once | --exit-after-settle]`: the node agent. Watches the configuration's `staticPodPath`, runs
 * the kubelet's image manager for every static pod (pull Secrets and ServiceAccounts from
 * `--secrets-dir`), image GC on its period, serves the CRI ImageService (`--cri-listen` or the config's
 * `listen.cri`) and the HTTP endpoint (metrics, `/healthz`, status page, JSON API for `kimg get pods`
 * and `kimg describe pod`). Logs are JSON lines on stderr. Runs until SIGINT/SIGTERM.
 *
 * `--once`: sync every pod once, print the pods like `kimg get pods`, exit 0 when every image is
 * ready, else fail with `PODS_NOT_READY` (exit status 9) and an `error:` line naming each pod,
 * container and reason. `--exit-after-settle`: run until every pod has settled (images ready, or
 * failing and synced at least twice so the back-off shows), then print and exit the same way.
 *
 * Cluster mode (`--kubeconfig FILE` or `--in-cluster`, with `--node-name N`; `--config` optional):
 * the pods bound to N come from the API server, their pull Secrets too (only those referenced), and
 * Events go to the API server (`events.k8s.io/v1`); Pod status is never written. This is what the
 * DaemonSet in `deploy/node-agent/` runs.
 */
import type { ContainerdCliOptions } from '../containerd-options.js';
import type { Command } from 'commander';
import { KimgError } from '../../errors/index.js';
import { KubeClient, loadKubeClientConfig } from '../../kube/index.js';
import {
  loadPrepullList,
  podReady,
  podStatus,
  startNodeAgent,
  type NodeAgent,
  type PodView,
} from '../../node/index.js';
import type { CliContext } from '../context.js';
import { toTable } from '../output.js';
import { loadCliNodeConfig } from '../pod-options.js';
import type { RegisterCommand } from './register.js';
import { collect } from '../collect.js';

interface NodeCliOptions extends ContainerdCliOptions {
  config?: string;
  kubeconfig?: string;
  context?: string;
  inCluster?: boolean;
  secretsDir?: string;
  serviceAccountTokenDir?: string;
  metricsAddr?: string;
  criListen?: string;
  root?: string;
  plainHttp?: string[];
  caFile?: string[];
  nodeName?: string;
  platform?: string;
  resync: string;
  informerResync: string;
  gcPeriod?: string;
  once?: boolean;
  exitAfterSettle?: boolean;
  settleTimeout: string;
  prepull?: string;
  imageServiceEndpoint?: string;
}

function seconds(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new KimgError('USAGE', `${flag} must be a positive number of seconds, got ${JSON.stringify(v)}`, {
      input: v,
    });
  return Math.round(n * 1000);
}

/** Settled: every pod synced, nothing pulling, failing pods synced at least twice. */
export function podsSettled(pods: readonly PodView[]): boolean {
  return pods.every((p) => {
    if (p.syncs === 0) return false;
    if (p.containers.some((c) => c.pulling !== undefined)) return false;
    const ready = p.containers.every((c) => c.state === 'Ready');
    return ready || p.syncs >= 2;
  });
}

function podTable(agent: NodeAgent): string {
  const pods = agent.state.list();
  return toTable(
    ['NAMESPACE', 'NAME', 'READY', 'STATUS'],
    pods.map((p) => [p.namespace, p.name, podReady(p), podStatus(p)]),
  );
}

export const registerNode: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('node')
    .description(
      'run the node agent: static pods from staticPodPath, image pulls, GC, CRI socket, metrics and status page',
    )
    .option(
      '--config <file>',
      'KubeletConfiguration file (staticPodPath, puller and GC settings, kimg section); required without --kubeconfig/--in-cluster',
    )
    .option(
      '--kubeconfig <file>',
      'cluster mode: the pods bound to --node-name, their pull Secrets and Events through the API server of this kubeconfig',
    )
    .option('--context <name>', 'cluster mode: the kubeconfig context')
    .option(
      '--in-cluster',
      "cluster mode with kubectl's resolution: KUBECONFIG, ~/.kube/config, else the pod's service account (a DaemonSet)",
    )
    .option(
      '--secrets-dir <dir>',
      "directory of Kubernetes YAML with the pods' pull Secrets and ServiceAccounts",
    )
    .option(
      '--service-account-token-dir <dir>',
      "standalone mode: projected service-account tokens for credential provider plugins with tokenAttributes, <dir>/<namespace>/<serviceaccount>/token (default: the config's serviceAccountTokenDir; refused with --kubeconfig/--in-cluster)",
    )
    .option(
      '--metrics-addr <host:port>',
      "HTTP address of metrics, /healthz and the status page (default: the config's listen.metrics, else 127.0.0.1:10259)",
    )
    .option(
      '--cri-listen <address>',
      "serve the CRI ImageService here (default: the config's listen.cri; none when unset)",
    )
    .option(
      '--image-service-endpoint <address>',
      "pull into this CRI runtime (e.g. unix:///run/containerd/containerd.sock) instead of kimg's store",
    )
    .option('--root <dir>', "store root (default: the config's rootDir, else KIMG_ROOT / the default)")
    .option(
      '--containerd <address>',
      "pull into containerd's image store at this socket (/run/containerd/containerd.sock or unix://…; namespace k8s.io) instead of kimg's own",
    )
    .option('--plain-http <host>', 'reach this registry host over plain HTTP (repeatable)', collect)
    .option('--ca-file <file>', 'extra CA certificate (PEM) for HTTPS registries (repeatable)', collect)
    .option('--node-name <name>', 'node name (static pod name suffix); default the host name')
    .option('--platform <os/arch[/variant]>', 'platform to pull (default: this host)')
    .option('--resync <seconds>', 'how often pods whose images are not ready are synced again', '5')
    .option(
      '--informer-resync <seconds>',
      "cluster mode: hand every cached pod to the agent again this often, without any API request (client-go's informer resync); 0 = never, as the kubelet's API pod source",
      '0',
    )
    .option('--gc-period <seconds>', "image GC period (default 300, the kubelet's)")
    .option(
      '--prepull <file>',
      "images to pre-pull after the pods' pulls (list of images or {image, platform, secret})",
    )
    .option('--once', 'sync every pod once, print the pods and exit')
    .option(
      '--exit-after-settle',
      'exit once every pod has settled (ready, or failing and retried), printing the pods',
    )
    .option('--settle-timeout <seconds>', 'with --exit-after-settle: give up after this long', '120')
    .action(async (opts: NodeCliOptions) => {
      await run(opts, ctx);
    });
};

async function run(opts: NodeCliOptions, ctx: CliContext): Promise<void> {
  const clusterMode = opts.kubeconfig !== undefined || opts.inCluster === true;
  if (opts.config === undefined && !clusterMode) {
    throw new KimgError(
      'USAGE',
      'kimg node needs --config FILE (static pods) or --kubeconfig FILE / --in-cluster (cluster mode)',
    );
  }
  if (clusterMode && (opts.nodeName === undefined || opts.nodeName === '')) {
    throw new KimgError(
      'USAGE',
      'cluster mode needs --node-name: the node whose pods to serve (in a DaemonSet: from the downward API, spec.nodeName)',
    );
  }
  if (clusterMode && opts.serviceAccountTokenDir !== undefined) {
    throw new KimgError(
      'USAGE',
      "--service-account-token-dir is for standalone mode: in cluster mode the tokens of credential provider plugins with tokenAttributes are the API server's",
    );
  }
  const informerResync = Number(opts.informerResync);
  if (!Number.isFinite(informerResync) || informerResync < 0)
    throw new KimgError(
      'USAGE',
      `--informer-resync must be 0 or a positive number of seconds, got ${JSON.stringify(opts.informerResync)}`,
      { input: opts.informerResync },
    );
  if (!clusterMode && informerResync > 0)
    throw new KimgError('USAGE', '--informer-resync is for cluster mode (--kubeconfig or --in-cluster)');
  const cluster = clusterMode
    ? {
        ...(informerResync > 0 ? { resyncMs: Math.round(informerResync * 1000) } : {}),
        client: new KubeClient(
          await loadKubeClientConfig({
            env: ctx.env,
            ...(opts.kubeconfig !== undefined ? { kubeconfig: opts.kubeconfig } : {}),
            ...(opts.context !== undefined ? { context: opts.context } : {}),
          }),
        ),
      }
    : undefined;
  const config = await loadCliNodeConfig(opts.config);
  const log = (entry: Record<string, unknown>): void =>
    void ctx.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
  for (const n of config.notices) log({ level: 'info', msg: `notice: ${n}` });
  const resyncMs = seconds('--resync', opts.resync);
  // The node config's kimg.prepull list, then a --prepull file's.
  const fromFile = opts.prepull !== undefined ? await loadPrepullList(opts.prepull) : [];
  const all = [...config.kimg.prepull, ...fromFile];
  const prepull = all.length > 0 ? all : undefined;
  const agent = await startNodeAgent({
    config,
    env: ctx.env,
    log,
    resyncMs,
    ...(opts.secretsDir !== undefined ? { secretsDir: opts.secretsDir } : {}),
    ...(opts.serviceAccountTokenDir !== undefined
      ? { serviceAccountTokenDir: opts.serviceAccountTokenDir }
      : {}),
    ...(cluster !== undefined ? { cluster } : {}),
    ...(prepull !== undefined ? { prepull } : {}),
    ...(opts.imageServiceEndpoint !== undefined ? { imageServiceEndpoint: opts.imageServiceEndpoint } : {}),
    ...(opts.containerd !== undefined ? { containerd: opts.containerd } : {}),
    ...(opts.metricsAddr !== undefined ? { metricsAddr: opts.metricsAddr } : {}),
    ...(opts.criListen !== undefined ? { criListen: opts.criListen } : {}),
    ...(opts.root !== undefined ? { root: opts.root } : {}),
    ...(opts.nodeName !== undefined ? { nodeName: opts.nodeName } : {}),
    ...(opts.platform !== undefined ? { platform: opts.platform } : {}),
    ...(opts.gcPeriod !== undefined ? { gcPeriodMs: seconds('--gc-period', opts.gcPeriod) } : {}),
    registry: {
      ...(opts.plainHttp?.length ? { plainHttp: opts.plainHttp } : {}),
      ...(opts.caFile?.length ? { caFiles: opts.caFile } : {}),
    },
  });
  try {
    if (agent.url !== undefined)
      ctx.stderr.write(`kimg node: status page ${agent.url}/  (metrics ${agent.url}/metrics)\n`);
    if (opts.once === true) {
      await agent.syncAll();
    } else {
      let timedOut = 0;
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.removeListener('SIGINT', stop);
          process.removeListener('SIGTERM', stop);
          if (timer !== undefined) clearInterval(timer);
          if (deadline !== undefined) clearTimeout(deadline);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        let timer: NodeJS.Timeout | undefined;
        let deadline: NodeJS.Timeout | undefined;
        if (opts.exitAfterSettle === true) {
          timer = setInterval(() => {
            if (podsSettled(agent.state.list())) stop();
          }, 200);
          const ms = seconds('--settle-timeout', opts.settleTimeout);
          deadline = setTimeout(() => {
            timedOut = ms;
            stop();
          }, ms);
        }
      });
      if (timedOut > 0) {
        ctx.stdout.write(podTable(agent));
        throw notReady(agent.state.list(), `the pods did not settle within ${timedOut / 1000}s`);
      }
    }
    if (opts.once === true || opts.exitAfterSettle === true) {
      ctx.stdout.write(podTable(agent));
      const all = agent.state.list();
      if (!all.every((p) => podStatus(p) === 'ImagesReady'))
        throw notReady(all, 'some pods did not become ready');
    }
  } finally {
    await agent.close();
  }
}

/**
 * The `PODS_NOT_READY` error of `--once` / `--exit-after-settle`: each pod whose images are not ready,
 * with each waiting container's reason and message (the same words as `kimg describe pod`).
 */
function notReady(pods: readonly PodView[], headline: string): KimgError {
  const why = pods
    .filter((p) => podStatus(p) !== 'ImagesReady')
    .map((p) => {
      const waiting = p.containers
        .filter((c) => c.state !== 'Ready')
        .map((c) => {
          const reason = c.pulling !== undefined ? 'ContainerCreating' : c.reason || 'Pending';
          // `lastError` is `<reason>: <message>` of the last failed pull (the reason may since have
          // become ImagePullBackOff).
          if (c.lastError !== undefined && c.lastError.startsWith(`${reason}: `))
            return `container ${c.name}: ${c.lastError}`;
          if (c.lastError !== undefined) return `container ${c.name}: ${reason} (last error: ${c.lastError})`;
          return `container ${c.name}: ${reason}${c.message !== '' ? `: ${c.message}` : ''}`;
        });
      return `pod ${p.namespace}/${p.name} (${waiting.join('; ')})`;
    });
  return new KimgError('PODS_NOT_READY', `${headline}: ${why.join(', ')}`);
}
