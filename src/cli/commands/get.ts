/**
 * `kimg get pods [--server URL] [-n NAMESPACE | -A] [-o wide|json|yaml]`: the node agent's pods the
 * way `kubectl get pods` prints them — NAME, READY (containers whose image is ready / containers),
 * STATUS (the first waiting reason: `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`, …;
 * `ContainerCreating` while pulling; `ImagesReady` when every image is on the node), RESTARTS, AGE.
 * `-o wide` adds the node and the images; `-A` the NAMESPACE column.
 *
 * Source: kubectl `pkg/printers/internalversion/printers.go` (printPod), apimachinery HumanDuration.
 */
import type { Command } from 'commander';
import { KimgError } from '../../errors/index.js';
import { DEFAULT_AGENT_SERVER, fetchAgentPods, podReady, podStatus } from '../../node/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { humanDuration } from './ensure.js';
import type { RegisterCommand } from './register.js';

interface GetCliOptions {
  server?: string;
  namespace: string;
  allNamespaces?: boolean;
  output: string;
}

/** `--server`, else `$KIMG_NODE_SERVER`, else the agent's default address. */
export function agentServer(flag: string | undefined, ctx: CliContext): string {
  return flag ?? ctx.env.KIMG_NODE_SERVER ?? DEFAULT_AGENT_SERVER;
}

export const registerGet: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('get')
    .description("list the node agent's pods like kubectl get pods (image states)")
    .argument('<resource>', 'pods (po, pod)')
    .option(
      '--server <url>',
      `the node agent (kimg node) HTTP address (env KIMG_NODE_SERVER; default ${DEFAULT_AGENT_SERVER})`,
    )
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'pods of every namespace')
    .option('-o, --output <format>', 'output format: table, wide, json or yaml', 'table')
    .action(async (resource: string, opts: GetCliOptions) => {
      if (!['pods', 'pod', 'po'].includes(resource)) {
        throw new KimgError(
          'USAGE',
          `the server doesn't have a resource type "${resource}": kimg get knows pods`,
          {
            input: resource,
          },
        );
      }
      const format = parseOutputFormat(opts.output, ['table', 'wide', 'json', 'yaml']);
      const { node, pods: all } = await fetchAgentPods(agentServer(opts.server, ctx));
      const pods = opts.allNamespaces === true ? all : all.filter((p) => p.namespace === opts.namespace);
      if (format === 'json' || format === 'yaml') {
        const doc = { apiVersion: 'v1', kind: 'List', items: pods };
        ctx.stdout.write(format === 'json' ? toJson(doc) : toYaml(doc));
        return;
      }
      if (pods.length === 0) {
        ctx.stderr.write(
          opts.allNamespaces === true
            ? 'No resources found\n'
            : `No resources found in ${opts.namespace} namespace.\n`,
        );
        return;
      }
      const now = Date.now();
      const headers = [
        ...(opts.allNamespaces === true ? ['NAMESPACE'] : []),
        'NAME',
        'READY',
        'STATUS',
        'RESTARTS',
        'AGE',
        ...(format === 'wide' ? ['NODE', 'IMAGES'] : []),
      ];
      const rows = pods.map((p) => [
        ...(opts.allNamespaces === true ? [p.namespace] : []),
        p.name,
        podReady(p),
        podStatus(p),
        '0',
        humanDuration(now - p.createdAt),
        ...(format === 'wide' ? [node, p.containers.map((c) => c.image).join(',')] : []),
      ]);
      ctx.stdout.write(toTable(headers, rows));
    });
};
