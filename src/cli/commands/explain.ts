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
  imageExplainTarget,
  isStaticPod,
  podExplainTargets,
  type ExplainTarget,
} from '../../manager/index.js';
import { explainImages } from '../../runtime/index.js';
import type { CliContext } from '../context.js';
import { formatExplanation } from '../explain-format.js';
import { openExplainRuntime } from '../explain-runtime.js';
import { parseOutputFormat, toJson, toYaml } from '../output.js';
import {
  addPodOptions,
  loadCliNodeConfig,
  loadPods,
  podCredentialContext,
  podCredentialOptions,
  type LoadedPod,
} from '../pod-options.js';
import { addRegistryOptions, hideCredsOptions } from '../registry-options.js';
import { addStoreOptions } from '../store-options.js';
import { addContainerdOption } from '../containerd-options.js';
import { parseKubeTarget } from '../../kube/index.js';
import { runClusterExplain, type ClusterExplainCliOptions } from './explain-cluster.js';
import type { RegisterCommand } from './register.js';

export type { ImageExplanation, PolicyOrigin } from '../../manager/index.js';

interface ExplainCliOptions extends ClusterExplainCliOptions {
  pullPolicy?: string;
  staticPod?: boolean;
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
  if (target !== undefined) return runClusterExplain(target, options, ctx);
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
  const runtime = await openExplainRuntime(
    config,
    options,
    ctx,
    await podCredentialOptions(options, objects, () => {}),
  );
  try {
    const byUid = new Map(pods.map((p) => [p.uid, p]));
    const results = await explainImages(runtime, targets, {
      ...(options.resolve !== undefined ? { resolve: options.resolve } : {}),
      podContext: (pod) => {
        const loaded = byUid.get(pod.uid);
        return loaded !== undefined ? podCredentialContext(loaded) : undefined;
      },
    });
    if (format === 'json') ctx.stdout.write(toJson(image !== undefined ? results[0] : results));
    else if (format === 'yaml') ctx.stdout.write(toYaml(image !== undefined ? results[0] : results));
    else ctx.stdout.write(results.map(formatExplanation).join('\n'));
  } finally {
    await runtime.close();
  }
}
