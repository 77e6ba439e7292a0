/**
 * `kimg explain IMAGE | -f POD.yaml [--container NAME] [--resolve]`: the kubelet's decision chain for
 * each container's image without pulling anything (reference, policy and its origin, presence,
 * credentials and near misses, back-off, verification, decision, next step). The chain is the
 * manager's (`explainImage`); this command only renders it.
 *
 * No registry request unless `--resolve`: then the tag is resolved now (HEAD, with the first matching
 * credential) and compared with the present image (what `Always` would do: an unchanged digest costs
 * one manifest request and no blob).
 *
 * Static pods (`-f` files inside the `--config`'s `staticPodPath`, or `--static-pod`): each container
 * gets the pod's `Kimg Extension:` lines (pull Secrets and ServiceAccounts the kubelet would refuse), as
 * `kimg describe pod` prints them; `-o json|yaml` has them as `extensions`. The decision is the
 * library's (`isStaticPod`); other `-f` pods are not static pods.
 *
 * `-o json|yaml`: one {@link ImageExplanation} for IMAGE, a list (one per container, every Pod of the
 * files) for `-f`. An invalid image name is explained (reference.valid false), not an error.
 *
 * `pod/NAME`, `deployment/NAME` and `pods` read from the API server instead (`explain-cluster.ts`);
 * an image spelled like one of those (a Docker Hub user `pod`) is written `docker.io/pod/NAME`.
 */
import type { Command } from 'commander';
import type { KubeObject } from '../../credentials/index.js';
import { KimgError } from '../../errors/index.js';
import {
  explainImage,
  imageExplainTarget,
  isStaticPod,
  podExplainTargets,
  type ExplainTarget,
  type ImageExplanation,
} from '../../manager/index.js';
import { openNodeRuntime } from '../../runtime/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toYaml } from '../output.js';
import {
  addPodOptions,
  loadCliNodeConfig,
  loadPods,
  podCredentialContext,
  podCredentialOptions,
  type LoadedPod,
} from '../pod-options.js';
import { addRegistryOptions, hideCredsOptions, registryClientOptions } from '../registry-options.js';
import { addStoreOptions } from '../store-options.js';
import { addContainerdOption, containerdBackend, type ContainerdCliOptions } from '../containerd-options.js';
import { parseKubeTarget } from '../../kube/index.js';
import { runClusterExplain, type ClusterExplainCliOptions } from './explain-cluster.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

export type { ImageExplanation, PolicyOrigin } from '../../manager/index.js';

interface ExplainCliOptions extends ClusterExplainCliOptions, ContainerdCliOptions {
  pullPolicy?: string;
  staticPod?: boolean;
}

function formatText(x: ImageExplanation): string {
  const lines: string[] = [];
  const head = x.container !== undefined ? `Container ${x.container}` : 'Image';
  lines.push(
    `${head}: ${x.image}${x.pod !== undefined ? `  (pod ${x.pod.namespace}/${x.pod.name}, uid ${x.pod.uid})` : ''}`,
  );
  for (const e of x.extensions ?? []) lines.push(`  Kimg Extension: ${e}`);
  if (x.reference.valid) {
    lines.push(`  Reference:    ${x.reference.canonical ?? ''}`);
    lines.push(
      `    kubelet sends ${JSON.stringify(x.reference.kubeletImage ?? '')}; stored as ${x.reference.pullRef ?? ''}`,
    );
  } else {
    lines.push(`  Reference:    invalid: ${x.reference.error?.message ?? ''}`);
  }
  lines.push(`  Policy:       ${x.policy.value} (${x.policy.origin}: ${x.policy.why})`);
  const p = x.presence;
  lines.push(
    `  Present:      ${p.error !== undefined ? `error: ${p.error}` : p.present ? `yes, ${p.imageId ?? ''}${p.names?.length ? ` (${p.names.join(', ')})` : ''}` : 'no'}${p.checked ? '' : ' (the kubelet does not check for this policy)'}`,
  );
  if (x.credentials.matches.length === 0) lines.push('  Credentials:  none match (the pull is anonymous)');
  else {
    lines.push('  Credentials:  tried in this order:');
    x.credentials.matches.forEach((m, i) =>
      lines.push(`    ${i + 1}. ${m.key} user ${JSON.stringify(m.username)} from ${m.source}`),
    );
  }
  for (const n of x.credentials.nearMisses)
    lines.push(`    near miss: ${n.key} from ${n.source}: ${n.reason}`);
  for (const pr of x.credentials.problems) lines.push(`    problem: ${pr}`);
  if (x.backoff.length === 0) lines.push('  Back-off:     none');
  for (const b of x.backoff) {
    lines.push(
      `  Back-off:     ${b.inBackOff ? `in back-off until ${b.retryAt} (window ${b.backoffSeconds}s)` : 'window passed (the next attempt pulls)'} [${b.key}]`,
    );
    if (b.lastError !== undefined) lines.push(`    last error: ${b.lastError}`);
  }
  if (x.resolved !== undefined) {
    lines.push(
      `  Resolved:     ${x.resolved.error !== undefined ? `error: ${x.resolved.error.message}` : `${x.resolved.digest ?? ''}${x.resolved.unchanged ? ' (same as the present image)' : ''}`}`,
    );
  }
  if (x.verification !== undefined)
    lines.push(`  Verification: ${x.verification.summary} [policy ${x.verification.policy}]`);
  if (x.decision !== undefined) lines.push(`  Decision:     ${x.decision.action} (${x.decision.reason})`);
  lines.push(`  Next:         ${x.next}`);
  // Each line carries images, registry errors and pod names: escaped so none drives the terminal.
  return lines.map(escapeTerminal).join('\n') + '\n';
}

export const registerExplain: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('explain')
    .description(
      "explain the kubelet's decision for an image or each container of a pod: reference, policy, presence, credentials, back-off, next step",
    )
    .argument(
      '[image]',
      'an image as written in a pod spec (instead of -f), or pod/NAME, deployment/NAME, pods (from the API server)',
    )
    .option('--container <name>', 'only this container of the pod')
    .option(
      '--pull-policy <policy>',
      'the imagePullPolicy for IMAGE (default: as the API server defaults it)',
    )
    .option(
      '--static-pod',
      "-f: the pods are static pods (as for a manifest inside the --config's staticPodPath): say which pull Secrets and ServiceAccounts are kimg extensions",
    )
    .option('--resolve', 'ask the registry what the tag resolves to now and compare with the present image')
    .option('-o, --output <format>', 'output format: table, json or yaml (wide for pods)', 'table')
    .option(
      '--kubeconfig <file>',
      'pod/NAME, deployment/NAME, pods: the kubeconfig (default KUBECONFIG, ~/.kube/config, in-cluster)',
    )
    .option('--context <name>', 'pod/NAME, deployment/NAME, pods: the kubeconfig context')
    .option(
      '-n, --namespace <namespace>',
      "pod/NAME, deployment/NAME, pods: the namespace (default the context's)",
    )
    .option(
      '--node-name <name>',
      "this machine is that node: presence of its pods' images from this runtime, not Node.status.images",
    )
    .option(
      '--token-request',
      'pod/NAME, deployment/NAME, pods: tokens for credential provider plugins with tokenAttributes from the API server (TokenRequest, bound to the pod; needs create on serviceaccounts/token)',
    );
  addPodOptions(cmd, { fileRequired: false });
  addStoreOptions(cmd);
  addContainerdOption(cmd);
  hideCredsOptions(addRegistryOptions(cmd)).action(
    async (image: string | undefined, options: ExplainCliOptions) => {
      await run(image, options, ctx);
    },
  );
};

/**
 * The targets of `-f` manifests: every container of every Pod (or `--container`); a pod is a static pod
 * when `--static-pod` says so or its file lies inside `staticPodPath`.
 */
async function podTargets(
  options: ExplainCliOptions,
  staticPodPath: string,
): Promise<{ targets: ExplainTarget[]; objects: KubeObject[]; pods: LoadedPod[] }> {
  const { pods, objects } = await loadPods(options, { all: true });
  const rawPods = objects.filter((o) => o.kind === 'Pod');
  const targets = pods.flatMap((pod) =>
    podExplainTargets(
      pod,
      pod.object,
      rawPods.find((o) => o.name === pod.name && (o.namespace ?? 'default') === pod.namespace)?.object,
      {
        ...(options.container !== undefined ? { container: options.container } : {}),
        alwaysPullImages: options.alwaysPullImages === true,
        staticPod: isStaticPod({ file: pod.file, staticPodPath, declared: options.staticPod === true }),
        objectsOrigin: 'the manifests',
      },
    ),
  );
  if (targets.length === 0) {
    throw new KimgError(
      'CONFIG_INVALID',
      options.container !== undefined
        ? `no container ${JSON.stringify(options.container)} in the pod`
        : 'the pod has no containers',
      { input: options.container ?? '' },
    );
  }
  return { targets, objects, pods };
}

async function run(image: string | undefined, options: ExplainCliOptions, ctx: CliContext): Promise<void> {
  const target = image !== undefined ? parseKubeTarget(image) : undefined;
  if (target !== undefined) return runClusterExplain(target, options, ctx, formatText);
  const format = parseOutputFormat(options.output, ['table', 'json', 'yaml']);
  if ((image === undefined) === (options.filename.length === 0)) {
    throw new KimgError('USAGE', 'give either an IMAGE or -f POD.yaml (not both)');
  }
  if (options.staticPod === true && image !== undefined) {
    throw new KimgError('USAGE', '--static-pod goes with -f POD.yaml (an IMAGE has no pod)');
  }
  if (options.creds !== undefined) {
    throw new KimgError(
      'USAGE',
      'kimg explain takes credentials from -f Secrets, the node docker config or --docker-config (not --creds)',
    );
  }
  const config = await loadCliNodeConfig(options.config);
  const { targets, objects, pods } =
    image !== undefined
      ? { targets: [imageExplainTarget(image, options)], objects: [], pods: [] }
      : await podTargets(options, config.kubelet.staticPodPath);
  const hostsDir = options.hostsDir ?? config.kimg.hostsDir;
  // Read-only: no start-up reconciliation (that is the agent's and `kimg ensure`'s job).
  const runtime = await openNodeRuntime(config, {
    env: ctx.env,
    ...(options.root !== undefined ? { root: options.root } : {}),
    ...(options.resolve === true
      ? { registry: registryClientOptions({ ...options, ...(hostsDir ? { hostsDir } : {}) }, ctx) }
      : {}),
    credentials: await podCredentialOptions(options, objects, () => {}),
    verification: 'read-only',
    ...((backend) => (backend !== undefined ? { imageService: backend } : {}))(
      containerdBackend(options.containerd, config.kimg),
    ),
  });
  try {
    const byUid = new Map(pods.map((p) => [p.uid, p]));
    const deps = {
      imageService: runtime.imageService,
      backoff: await runtime.backoff.list(),
      credentials: (img: string, pod: { uid: string } | undefined) => {
        const loaded = pod !== undefined ? byUid.get(pod.uid) : undefined;
        const ctxPod = loaded !== undefined ? podCredentialContext(loaded) : undefined;
        return runtime.credentials.lookup(img, ctxPod, { explain: true });
      },
      verifying: runtime.manager.gates['KubeletEnsureSecretPulledImages'] === true,
      verifier: runtime.verifier,
      ...(options.resolve === true ? { registry: runtime.registry, records: runtime.store.images } : {}),
      nowMs: Date.now(),
    };
    const results: ImageExplanation[] = [];
    for (const t of targets) results.push(await explainImage(t, deps));
    if (format === 'json') ctx.stdout.write(toJson(image !== undefined ? results[0] : results));
    else if (format === 'yaml') ctx.stdout.write(toYaml(image !== undefined ? results[0] : results));
    else ctx.stdout.write(results.map(formatText).join('\n'));
  } finally {
    await runtime.close();
  }
}
