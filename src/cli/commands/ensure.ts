/**
 * `kimg ensure -f POD.yaml [-f SECRETS.yaml]... [--config KUBELETCONFIG] [--pod NAME | --all]`: runs the
 * kubelet's image manager for a pod against the real registries and the local store, and prints the
 * events the way `kubectl describe pod` shows them, then each container's image state.
 *
 * The pod is defaulted as the API server stores it (`imagePullPolicy`), its pull Secrets come from the
 * same files (pod `imagePullSecrets`, else its ServiceAccount's, namespace rules as upstream), then the
 * node-wide docker config and `--docker-config` files, then exec plugins the configuration names. The
 * image back-off and the last error persist under the store root (`<root>/manager/backoff.json`), so
 * successive runs for the same pod see it exactly as a long-running kubelet would: a second run within
 * the window reports `BackOff` / `ImagePullBackOff` without asking the registry (`kimg backoff clear`
 * resets it). Images used or pulled get their `lastUsed` set (image GC reads it).
 *
 * `-o json|yaml` prints `{pod, ready, containers: [{name, image, ready, reason, message, imageRef}],
 * events: [{type, reason, message, timestamp, object}]}` ({@link EnsureOutput}); with `--all` a list of
 * them, one per Pod. Several Pods in the files need `--pod NAME` or `--all`.
 *
 * The events' From column says `kubelet` (what kubectl shows for these events and what users grep for).
 * Exit status: 0 when every container's image is ready, else the status of the first failure's code
 * (ErrImageNeverPull and ImagePullBackOff → 8, authentication → 4, not found → 3, …); the events are
 * printed in either case.
 *
 * Source: kubernetes `pkg/kubelet/images/image_manager.go`, kubectl `describe` (events table,
 * apimachinery `util/duration.HumanDuration` for Age).
 */
import type { Command } from 'commander';
import { KimgError } from '../../errors/index.js';
import { failedPullSecretNames } from '../../credentials/index.js';
import {
  humanDuration,
  systemClock,
  type ManagerEvent,
  type EventRecorder,
  type PodImagesResult,
} from '../../manager/index.js';
import { openNodeRuntime } from '../../runtime/index.js';
import type { CliContext } from '../context.js';
import { EXIT_STATUS_BY_CODE, ExitStatus } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import {
  addPodOptions,
  loadCliNodeConfig,
  loadPods,
  podCredentialOptions,
  type LoadedPod,
  type PodCliOptions,
} from '../pod-options.js';
import {
  addRegistryOptions,
  hideCredsOptions,
  registryClientOptions,
  type RegistryCliOptions,
} from '../registry-options.js';
import { addStoreOptions, type StoreCliOptions } from '../store-options.js';
import { addContainerdOption, containerdBackend, type ContainerdCliOptions } from '../containerd-options.js';

import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

interface EnsureCliOptions extends PodCliOptions, RegistryCliOptions, StoreCliOptions, ContainerdCliOptions {
  all?: boolean;
  platform?: string;
  defaultRegistry?: string;
  imageService?: string;
  output: string;
}

/** One container in `-o json`. */
export interface EnsureContainerOutput {
  name: string;
  image: string;
  ready: boolean;
  reason: string;
  message: string;
  imageRef: string;
}

/** One event in `-o json`. */
export interface EnsureEventOutput {
  type: string;
  reason: string;
  message: string;
  /** ISO 8601. */
  timestamp: string;
  object: ManagerEvent['object'];
}

/** What `-o json` prints for one pod (`--all`: a list of these). */
export interface EnsureOutput {
  pod: { name: string; namespace: string; uid: string };
  ready: boolean;
  containers: EnsureContainerOutput[];
  events: EnsureEventOutput[];
}

/** apimachinery `HumanDuration` (the manager's), re-exported for the events table's callers. */
export { humanDuration };

/**
 * The `Events:` block of `kubectl describe`: two-space indent, tab-aligned columns padded by two
 * spaces (Go tabwriter, padding 2), `Events:  <none>` when empty. Every cell is escaped
 * (`escapeTerminal`): an event's message carries a registry's error text and the image string.
 */
export function formatEvents(events: readonly ManagerEvent[], nowMs: number): string {
  if (events.length === 0) return 'Events:  <none>\n';
  const rows = [
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    ['----', '------', '----', '----', '-------'],
    ...events.map((e) =>
      [e.type, e.reason, humanDuration(nowMs - e.timestamp), 'kubelet', e.message].map(escapeTerminal),
    ),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const lines = rows.map(
    (r) => '  ' + r.map((c, i) => (i < 4 ? c.padEnd((widths[i] ?? 0) + 2) : c)).join(''),
  );
  return 'Events:\n' + lines.join('\n') + '\n';
}

function stateText(line: PodImagesResult['results'][number]): string {
  if (line.skipped !== undefined) return 'Skipped (init container failed)';
  const r = line.result;
  if (r === undefined) return 'Unknown';
  if (r.ok) return r.action === 'pulled' ? 'Ready (pulled)' : 'Ready (present)';
  return `Waiting: ${r.reason ?? 'Error'}`;
}

/** The `-o json` form of one pod's result. */
export function ensureOutput(result: PodImagesResult, events: readonly ManagerEvent[]): EnsureOutput {
  return {
    pod: { name: result.pod.name, namespace: result.pod.namespace, uid: result.pod.uid },
    ready: result.ok,
    containers: result.results.map((l) => ({
      name: l.container,
      image: l.image,
      ready: l.result?.ok === true,
      reason: l.skipped !== undefined ? 'InitContainerFailed' : l.result?.ok ? '' : (l.result?.reason ?? ''),
      message:
        l.skipped !== undefined ? 'skipped: an init container image is not ready' : (l.result?.message ?? ''),
      imageRef: l.result?.imageRef ?? '',
    })),
    events: events.map((e) => ({
      type: e.type,
      reason: e.reason,
      message: e.message,
      timestamp: new Date(e.timestamp).toISOString(),
      object: e.object,
    })),
  };
}

/** The exit status for a pod result: 0 when ready, else the first failure's code's status. */
export function ensureExitStatus(results: readonly PodImagesResult[]): number {
  for (const r of results) {
    for (const l of r.results) {
      const code = l.result?.error?.code;
      if (l.result !== undefined && !l.result.ok) {
        return code !== undefined
          ? (EXIT_STATUS_BY_CODE[code as keyof typeof EXIT_STATUS_BY_CODE] ?? ExitStatus.FAILURE)
          : ExitStatus.FAILURE;
      }
    }
  }
  return results.every((r) => r.ok) ? ExitStatus.OK : ExitStatus.FAILURE;
}

export const registerEnsure: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('ensure')
    .description(
      "run the kubelet's image manager for a pod (pull policy, credentials, back-off) and print its events like kubectl describe",
    )
    .option(
      '--all',
      'ensure every Pod in the manifests (pods in parallel, pulls limited by the puller settings)',
    )
    .option('--platform <os/arch[/variant]>', 'platform to pull (default: this host)')
    .option(
      '--default-registry <host>',
      'registry for names without one (default: the configuration, else docker.io)',
    )
    .option(
      '--image-service <endpoint>',
      "pull through a CRI runtime's ImageService (unix:///run/containerd/containerd.sock, or a kimg serve socket) instead of kimg's own store; back-off and pull records stay under --root",
    )
    .option('-o, --output <format>', 'output format: table, json or yaml', 'table');
  addPodOptions(cmd, { fileRequired: true });
  addStoreOptions(cmd);
  addContainerdOption(cmd);
  hideCredsOptions(addRegistryOptions(cmd)).action(async (options: EnsureCliOptions) => {
    await run(options, ctx);
  });
};

async function run(options: EnsureCliOptions, ctx: CliContext): Promise<void> {
  const format = parseOutputFormat(options.output, ['table', 'json', 'yaml']);
  if (options.creds !== undefined) {
    throw new KimgError(
      'USAGE',
      'kimg ensure takes credentials the way the kubelet does: pull Secrets in -f files, the node docker config, or --docker-config (not --creds)',
    );
  }
  const config = await loadCliNodeConfig(options.config);
  for (const n of config.notices) ctx.stderr.write(`notice: ${n}\n`);
  const { pods, objects } = await loadPods(options, { all: options.all === true });
  // Secrets that could not be retrieved show as the pod's FailedToRetrieveImagePullSecret event, not
  // as a warning too; the other problems (wrong type, missing key, ServiceAccount) are warnings.
  const inEvent = new Set(['not-found', 'wrong-namespace', 'undecodable']);
  for (const p of pods)
    for (const problem of p.secrets.problems)
      if (!inEvent.has(problem.kind)) ctx.stderr.write(`warning: ${escapeTerminal(problem.message)}\n`);
  const warn = (m: string): void => void ctx.stderr.write(`warning: ${escapeTerminal(m)}\n`);
  // The events this run records, printed with the results (like `kubectl describe`).
  const events: ManagerEvent[] = [];
  const recorder: EventRecorder = { record: (e) => void events.push(e) };
  // The image service: kimg's own store, or a CRI runtime's — the manager is the same. Present images
  // are used only when this pod's credentials are verified for them
  // (imagePullCredentialsVerificationPolicy); pull records and back-off persist under the root.
  const runtime = await openNodeRuntime(config, {
    env: ctx.env,
    imageService:
      options.imageService !== undefined
        ? { kind: 'cri', endpoint: options.imageService }
        : (containerdBackend(options.containerd, config.kimg, { platform: options.platform }) ?? {
            kind: 'local',
            ...(options.platform !== undefined ? { platform: options.platform } : {}),
          }),
    registry: registryClientOptions(
      {
        ...options,
        ...(options.hostsDir === undefined && config.kimg.hostsDir !== undefined
          ? { hostsDir: config.kimg.hostsDir }
          : {}),
      },
      ctx,
    ),
    ...(options.root !== undefined ? { root: options.root } : {}),
    ...(options.defaultRegistry !== undefined ? { defaultRegistry: options.defaultRegistry } : {}),
    credentials: await podCredentialOptions(options, objects, warn),
    onNotice: warn,
    recorder,
  });
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const p of pods) runtime.credentials.setPodSecrets(p.uid, p.secrets);
    const results = await Promise.all(
      pods.map((p: LoadedPod) =>
        runtime.manager.ensurePodImages(p.manifest, {
          signal: controller.signal,
          failedPullSecrets: failedPullSecretNames(p.secrets),
          ...(p.runtimeHandler !== undefined ? { runtimeHandler: p.runtimeHandler } : {}),
        }),
      ),
    );
    // Images the pod will run are in use now (image GC reads lastUsed; a CRI runtime tracks its own).
    const now = new Date(systemClock.now());
    for (const r of results)
      for (const l of r.results)
        if (l.result?.ok === true && l.result.spec !== undefined)
          await runtime.markUsed(l.result.spec, now).catch(() => false);
    const outcome = { results, events };
    const nowMs = systemClock.now();
    const outputs = outcome.results.map((r) =>
      ensureOutput(
        r,
        outcome.events.filter((e) => e.object.pod.uid === r.pod.uid),
      ),
    );
    if (format === 'json' || format === 'yaml') {
      const data = outputs.length === 1 && options.all !== true ? outputs[0] : outputs;
      ctx.stdout.write(format === 'json' ? toJson(data) : toYaml(data));
    } else {
      outcome.results.forEach((r, i) => {
        const events = outcome.events.filter((e) => e.object.pod.uid === r.pod.uid);
        if (outcome.results.length > 1 || options.all === true) {
          ctx.stdout.write(
            `${i > 0 ? '\n' : ''}Pod: ${escapeTerminal(`${r.pod.namespace}/${r.pod.name}`)}\n`,
          );
        }
        ctx.stdout.write(formatEvents(events, nowMs));
        ctx.stdout.write('\n');
        ctx.stdout.write(
          toTable(
            ['CONTAINER', 'IMAGE', 'STATE', 'IMAGE ID'],
            r.results.map((l) => [l.container, l.image, stateText(l), l.result?.imageRef ?? '']),
          ),
        );
      });
    }
    ctx.exitStatus = ensureExitStatus(outcome.results);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await runtime.close();
  }
}
