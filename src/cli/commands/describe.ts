/**
 * `kimg describe pod NAME [-n NAMESPACE] [--server URL]`: one of the node agent's pods the way
 * `kubectl describe pod` prints it — name, namespace, node, manifest file, status, then per container
 * its image, image id, pull policy, state (`Waiting` with the reason and message, or the image ready),
 * back-off (next retry, last error), and the pod's events with kubectl's aggregation
 * (`12s (x3 over 40s)`).
 *
 * Source: kubectl `pkg/describe/describe.go` (describePod, describeContainerState, DescribeEvents).
 */
import type { Command } from 'commander';
import { KimgError } from '../../errors/index.js';
import { fetchAgentPod, fetchAgentPods, podStatus, type NodeEvent, type PodView } from '../../node/index.js';
import type { CliContext } from '../context.js';
import { describeImageVolumes } from './describe-volumes.js';
import { humanDuration } from './ensure.js';
import { agentServer } from './get.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

/** kubectl's events table with aggregated ages. */
export function describeEvents(events: readonly NodeEvent[], nowMs: number): string {
  if (events.length === 0) return 'Events:  <none>\n';
  const age = (e: NodeEvent): string =>
    e.count > 1
      ? `${humanDuration(nowMs - e.lastTimestamp)} (x${e.count} over ${humanDuration(nowMs - e.firstTimestamp)})`
      : humanDuration(nowMs - e.firstTimestamp);
  const rows = [
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    ['----', '------', '----', '----', '-------'],
    ...events.map((e) => [e.type, e.reason, age(e), 'kubelet', e.message].map(escapeTerminal)),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    'Events:\n' +
    rows
      .map((r) => '  ' + r.map((c, i) => (i < 4 ? c.padEnd((widths[i] ?? 0) + 2) : c)).join(''))
      .join('\n') +
    '\n'
  );
}

/** The `kubectl describe pod` text of a pod view. */
export function describePod(pod: PodView, events: readonly NodeEvent[], node: string, nowMs: number): string {
  const kv = (k: string, v: string, indent = ''): string =>
    `${indent}${(k === '' ? '' : k + ':').padEnd(Math.max(20 - indent.length, k.length + 2))}${escapeTerminal(v)}\n`;
  let out = '';
  out += kv('Name', pod.name);
  out += kv('Namespace', pod.namespace);
  out += kv('Node', node);
  out += kv('Start Time', new Date(pod.createdAt).toUTCString());
  out += kv('Annotations', `kubernetes.io/config.source: file`);
  out += kv('', `kubernetes.io/config.hash: ${pod.uid}`);
  out += kv('File', pod.file);
  for (const [i, e] of (pod.extensions ?? []).entries()) out += kv(i === 0 ? 'Kimg Extension' : '', e);
  out += kv('Status', podStatus(pod));
  for (const [title, list] of [
    ['Init Containers', 'initContainers'],
    ['Containers', 'containers'],
    ['Ephemeral Containers', 'ephemeralContainers'],
  ] as const) {
    const cs = pod.containers.filter((c) => c.list === list);
    if (cs.length === 0) continue;
    out += `${title}:\n`;
    for (const c of cs) {
      out += `  ${escapeTerminal(c.name)}:\n`;
      out += kv('Image', c.image, '    ');
      out += kv('Image ID', c.imageRef, '    ');
      out += kv('Image Pull Policy', c.imagePullPolicy, '    ');
      if (c.state === 'Ready') {
        out += kv('State', 'ImagePresent', '    ');
      } else {
        out += kv('State', 'Waiting', '    ');
        out += kv('Reason', c.pulling !== undefined ? 'ContainerCreating' : c.reason || 'Pending', '      ');
        if (c.message !== '') out += kv('Message', c.message, '      ');
      }
      if (c.pulling !== undefined) {
        const done = c.pulling.layers.reduce((a, l) => a + l.completed, 0);
        const total = c.pulling.layers.reduce((a, l) => a + l.size, 0);
        out += kv(
          'Pulling',
          `${c.pulling.layers.filter((l) => l.done).length}/${c.pulling.layers.length} blobs, ${done}/${total} bytes`,
          '    ',
        );
      }
      if (c.nextRetryAt !== undefined)
        out += kv(
          'Next Retry',
          `${new Date(c.nextRetryAt).toISOString()} (in ${humanDuration(Math.max(0, c.nextRetryAt - nowMs))})`,
          '    ',
        );
      if (c.lastError !== undefined) out += kv('Last Error', c.lastError, '    ');
      out += kv('Ready', c.state === 'Ready' ? 'True' : 'False', '    ');
    }
  }
  out += describeImageVolumes(pod.volumes, nowMs);
  out += describeEvents(events, nowMs);
  return out;
}

export const registerDescribe: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('describe')
    .description("show one of the node agent's pods like kubectl describe pod (image states, events)")
    .argument('<resource>', 'pod (po, pods)')
    .argument(
      '<name>',
      'the pod name (static pods: <manifest name>-<node name>; the manifest name also works)',
    )
    .option('--server <url>', 'the node agent (kimg node) HTTP address (env KIMG_NODE_SERVER)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .action(async (resource: string, name: string, opts: { server?: string; namespace: string }) => {
      if (!['pods', 'pod', 'po'].includes(resource))
        throw new KimgError(
          'USAGE',
          `the server doesn't have a resource type "${resource}": kimg describe knows pod`,
          {
            input: resource,
          },
        );
      const server = agentServer(opts.server, ctx);
      const { node } = await fetchAgentPods(server);
      let found;
      try {
        found = await fetchAgentPod(server, opts.namespace, name);
      } catch (e) {
        // A static pod's manifest name without the node suffix.
        if (!(e instanceof KimgError && e.code === 'POD_NOT_FOUND') || node === '') throw e;
        found = await fetchAgentPod(server, opts.namespace, `${name}-${node}`).catch(() => {
          throw e;
        });
      }
      ctx.stdout.write(describePod(found.pod, found.events, node, Date.now()));
    });
};
