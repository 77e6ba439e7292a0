/**
 * The cluster face of `kimg explain` (also `kubectl kimg explain`): `pod/NAME`, `deployment/NAME`
 * and `pods` read from the API server (`--kubeconfig`, `--context`, `-n`, as kubectl). The library
 * (`src/kube`: `readPodContext`, `explainClusterPod`, `listStuckContainers`; src/runtime
 * `podExplainInputs`) reads and decides; this file opens the runtime, calls it and renders. Presence
 * comes from this machine's runtime (kimg's store, or containerd's with `--containerd` or the
 * configuration's `kimg.containerd`) only with `--node-name` equal to the pod's node (kimg runs there),
 * else from `Node.status.images`.
 * Text from the API server is escaped before it reaches the terminal.
 */
import { KimgError, toKimgError } from '../../errors/index.js';
import {
  KubeClient,
  explainClusterPod,
  listStuckContainers,
  loadKubeClientConfig,
  readDeploymentContext,
  readPodContext,
  tokenRequestCredentials,
  type ClusterPodExplanation,
  type KubeTarget,
  type PodContext,
} from '../../kube/index.js';
import { podExplainInputs, type NodeRuntime } from '../../runtime/index.js';
import type { CliContext } from '../context.js';
import { formatExplanation } from '../explain-format.js';
import { openExplainRuntime, type ExplainRuntimeCliOptions } from '../explain-runtime.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { loadCliNodeConfig, podCredentialOptions, type PodCliOptions } from '../pod-options.js';

/** The options of `kimg explain` the cluster face reads. */
export interface ClusterExplainCliOptions extends PodCliOptions, ExplainRuntimeCliOptions {
  container?: string;
  output: string;
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  nodeName?: string;
  /** Tokens of credential providers with `tokenAttributes` from the TokenRequest API. */
  tokenRequest?: boolean;
}

/** Escapes control characters (API text is untrusted on a terminal). */
function safe(s: string): string {
  return s.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function renderPod(x: ClusterPodExplanation): string {
  const lines: string[] = [];
  const what =
    x.target.kind === 'deployment'
      ? `Deployment ${x.target.namespace}/${x.target.name} (pod template)`
      : `Pod ${x.pod.namespace}/${x.pod.name} (uid ${x.pod.uid})`;
  lines.push(
    safe(
      `${what}${x.pod.node !== undefined ? ` on node ${x.pod.node}` : ''}, serviceaccount ${x.pod.serviceAccount}`,
    ),
  );
  lines.push('Facts from:');
  lines.push(safe(`  pod:          ${x.sources.pod}`));
  lines.push(safe(`  credentials:  ${x.sources.credentials}`));
  lines.push(safe(`  presence:     ${x.sources.presence}`));
  lines.push(safe(`  registry:     ${x.sources.registry}`));
  if (x.secrets.length === 0) lines.push('Pull Secrets: none referenced');
  else {
    lines.push('Pull Secrets:');
    for (const s of x.secrets) {
      const via = s.via === 'pod' ? 'listed by the pod' : `from serviceaccount ${x.pod.serviceAccount}`;
      lines.push(
        safe(
          `  ${s.namespace}/${s.name} (${via}): ${s.found ? (s.problem !== undefined ? `ignored: ${s.problem}` : 'found') : 'not found'}`,
        ),
      );
    }
  }
  for (const w of x.warnings) lines.push(safe(`Warning  ${w.reason}  ${w.message}`));
  if (x.reported.length > 0) {
    lines.push('Kubelet reports:');
    for (const r of x.reported)
      lines.push(safe(`  ${r.container}: ${r.reason}${r.message !== '' ? `: ${r.message}` : ''}`));
  }
  return lines.join('\n') + '\n\n' + x.containers.map((c) => safe(formatExplanation(c))).join('\n');
}

/** Runs `kimg explain pod/NAME | deployment/NAME | pods` (see the module comment). */
export async function runClusterExplain(
  target: KubeTarget,
  options: ClusterExplainCliOptions,
  ctx: CliContext,
): Promise<void> {
  const format = parseOutputFormat(options.output, ['table', 'wide', 'json', 'yaml']);
  if (options.filename.length > 0)
    throw new KimgError(
      'USAGE',
      `give either ${target.kind === 'pods' ? 'pods' : `${target.kind}/${target.name}`} or -f POD.yaml (not both)`,
    );
  if (options.tokenRequest === true && options.serviceAccountTokenDir !== undefined)
    throw new KimgError('USAGE', 'give either --token-request or --service-account-token-dir (not both)');
  const kube = await loadKubeClientConfig({
    env: ctx.env,
    ...(options.kubeconfig !== undefined ? { kubeconfig: options.kubeconfig } : {}),
    ...(options.context !== undefined ? { context: options.context } : {}),
    ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
  });
  const client = new KubeClient(kube);
  const namespace = kube.namespace;
  const contexts: PodContext[] = [];
  let stuck: Awaited<ReturnType<typeof listStuckContainers>> | undefined;
  if (target.kind === 'pod') contexts.push(await readPodContext(client, namespace, target.name));
  else if (target.kind === 'deployment')
    contexts.push(await readDeploymentContext(client, namespace, target.name));
  else {
    stuck = await listStuckContainers(client, namespace);
    const names = [...new Set(stuck.stuck.map((s) => s.pod))];
    for (const n of names) {
      try {
        contexts.push(await readPodContext(client, namespace, n));
      } catch (e) {
        if (!(e instanceof KimgError && e.code === 'KUBE_NOT_FOUND')) throw e;
      }
    }
  }
  const onNode = options.nodeName !== undefined && options.nodeName !== '';
  const config = await loadCliNodeConfig(options.config);
  // Off the node, this machine's docker config says nothing about the node's pulls.
  const runtime: NodeRuntime = await openExplainRuntime(config, options, ctx, {
    ...(await podCredentialOptions({ ...options, nodeConfig: onNode && options.nodeConfig }, [], () => {})),
    ...(options.tokenRequest === true
      ? tokenRequestCredentials(client, { known: contexts.map((c) => c.serviceAccount) })
      : {}),
  });
  try {
    const results: ClusterPodExplanation[] = [];
    for (const c of contexts) {
      const podNode = ((c.pod.spec ?? {}) as Record<string, unknown>).nodeName;
      const here = onNode && podNode === options.nodeName;
      const inputs = await podExplainInputs(runtime, {
        ...(options.resolve !== undefined ? { resolve: options.resolve } : {}),
        ...(here ? { node: options.nodeName } : {}),
      });
      results.push(
        await explainClusterPod(c, {
          ...inputs,
          ...(options.container !== undefined ? { container: options.container } : {}),
        }),
      );
    }
    if (stuck !== undefined) renderStuck(namespace, stuck, results, format, ctx);
    else if (format === 'json') ctx.stdout.write(toJson(results[0]));
    else if (format === 'yaml') ctx.stdout.write(toYaml(results[0]));
    else ctx.stdout.write(renderPod(results[0]!));
  } catch (e) {
    throw toKimgError(e);
  } finally {
    await runtime.close();
  }
}

function renderStuck(
  namespace: string,
  stuck: Awaited<ReturnType<typeof listStuckContainers>>,
  results: ClusterPodExplanation[],
  format: string,
  ctx: CliContext,
): void {
  const rows = stuck.stuck.map((s) => {
    const x = results.find((r) => r.pod.name === s.pod)?.containers.find((c) => c.container === s.container);
    const why = results.find((r) => r.pod.name === s.pod)?.warnings.map((w) => w.message) ?? [];
    return {
      ...s,
      next: x?.next ?? '',
      credentials: x?.credentials.matches.map((m) => m.source) ?? [],
      warnings: why,
    };
  });
  if (format === 'json' || format === 'yaml') {
    const data = { namespace, pods: stuck.pods, stuck: rows, explanations: results };
    ctx.stdout.write(format === 'json' ? toJson(data) : toYaml(data));
    return;
  }
  if (rows.length === 0) {
    ctx.stdout.write(
      `No pod of namespace ${safe(namespace)} is waiting on its image (${stuck.pods} pods).\n`,
    );
    return;
  }
  const wide = format === 'wide';
  ctx.stdout.write(
    toTable(
      wide
        ? ['POD', 'CONTAINER', 'IMAGE', 'REASON', 'NODE', 'MESSAGE', 'WHY']
        : ['POD', 'CONTAINER', 'IMAGE', 'REASON', 'WHY'],
      rows.map((r) =>
        (wide
          ? [r.pod, r.container, r.image, r.reason, r.node, r.message, [...r.warnings, r.next].join(' ')]
          : [r.pod, r.container, r.image, r.reason, [...r.warnings, r.next].join(' ')]
        ).map((c) => safe(c)),
      ),
    ),
  );
  ctx.stdout.write(
    `${rows.length} of ${stuck.pods} pods' containers wait on their image in namespace ${safe(namespace)}.\n`,
  );
}
