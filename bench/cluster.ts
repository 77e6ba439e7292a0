/**
 * Cluster mode at scale: N node agents (in-process, `startNodeAgent` in cluster mode, one API client
 * each with its own bearer token) over one Kubernetes API double and one registry (Basic auth), each
 * node with the same 5-pod workload — 4 pods on 3 images through a pull Secret (2 listed by the pod,
 * 1 through its ServiceAccount, 1 referencing a missing Secret) and 1 pod whose image does not exist
 * (pull failures, back-off, event series). For N = 1, 10, 50:
 *
 * - start-up: API requests per agent until every pod settled (all pulled, the failing one in
 *   back-off), registry requests per node;
 * - steady state: API requests per agent per minute over a `--window` (default 60 s) while nothing
 *   changes — the watches stay open, unchanged Secrets are never fetched again, the only writes are
 *   event series patches. Counted as the agents send them by themselves: a series' second occurrence
 *   is patched at once, later ones only every 6 minutes (client-go's series refresh), so a window
 *   shorter than that sees few. The updates such a refresh would send are counted apart, by flushing
 *   after the window (`pending series updates/agent`), and are not in the per-minute figures;
 * - Secret reads per agent (lists of one named Secret / ServiceAccount, then watches), open watches.
 *
 * Flat per-agent and per-node figures across N mean no list storms and no re-fetching. Nothing is
 * asserted; the table goes to stdout, the figures to `bench-results/cluster-<date>.json` (`--out`).
 * Options: `--agents 1,10,50` · `--window SECONDS` (60) · `--quick` (agents 1,10, window 15 s).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadCliNodeConfig } from '../src/cli/pod-options.js';
import { KubeClient, loadKubeClientConfig } from '../src/kube/index.js';
import { startNodeAgent, type NodeAgent } from '../src/node/index.js';
import { generateImage } from '../test/helpers/images.js';
import { startKubeApiServer, type KubeApiServer, type KubeRule } from '../test/helpers/kube-apiserver.js';
import { startRegistry, type StartedRegistry } from '../test/helpers/registry.js';
import { skopeoPush } from '../test/helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../test/helpers/tmp.js';

const PODS_PER_NODE = 5;
const RULES: KubeRule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
  { apiGroups: [''], resources: ['secrets', 'serviceaccounts'], verbs: ['list', 'watch'] },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
];

function progress(msg: string): void {
  process.stderr.write(`[bench:cluster] ${msg}\n`);
}

interface Row {
  agents: number;
  pods: number;
  settleS: number;
  startupApiPerAgent: number;
  startupRegistryPerNode: number;
  steadyApiPerAgentPerMin: number;
  steadyRegistryPerNodePerMin: number;
  secretReadsPerAgent: number;
  podListsPerAgent: number;
  openWatches: number;
  events: number;
  eventPatchesPerAgentPerMin: number;
  /** Series updates held for the next 6-min refresh at the window's end (patched by a flush after it). */
  pendingSeriesPerAgent: number;
}

function podsFor(node: string, host: string): Record<string, unknown>[] {
  const pod = (name: string, image: string, spec: Record<string, unknown>): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${node}-${name}`, namespace: 'default' },
    spec: {
      nodeName: node,
      containers: [{ name: 'app', image: `${host}/${image}`, imagePullPolicy: 'IfNotPresent' }],
      ...spec,
    },
  });
  return [
    pod('web', 'app:1', { imagePullSecrets: [{ name: 'regcred' }] }),
    pod('api', 'app:2', { imagePullSecrets: [{ name: 'regcred' }] }),
    pod('worker', 'app:3', { serviceAccountName: 'builder' }),
    pod('cache', 'app:1', { imagePullSecrets: [{ name: 'regcred' }, { name: 'absent' }] }),
    pod('broken', 'missing:1', { imagePullSecrets: [{ name: 'regcred' }] }),
  ];
}

function settled(agent: NodeAgent): boolean {
  const pods = agent.state.list();
  if (pods.length < PODS_PER_NODE) return false;
  return pods.every((p) =>
    p.containers.every(
      (c) =>
        c.state === 'Ready' ||
        (p.syncs >= 2 && (c.reason === 'ImagePullBackOff' || c.reason === 'ErrImagePull')),
    ),
  );
}

async function runScale(
  n: number,
  windowS: number,
  api: KubeApiServer,
  reg: StartedRegistry,
  work: string,
): Promise<Row> {
  const dir = await makeTempDir(`bench-cluster-${n}-`);
  const agents: NodeAgent[] = [];
  try {
    const config = await loadCliNodeConfig(undefined);
    const clients: KubeClient[] = [];
    for (let i = 0; i < n; i++) {
      const token = `bench-${n}-${i}`;
      api.setUser(token, { name: `agent-${n}-${i}`, rules: RULES });
      clients.push(
        new KubeClient(await loadKubeClientConfig({ kubeconfig: await api.writeKubeconfig(token) })),
      );
    }
    api.clearRequests();
    const regBefore = (await reg.accessLog()).length;
    const t0 = Date.now();
    for (let i = 0; i < n; i++) {
      agents.push(
        await startNodeAgent({
          config,
          env: { HOME: work },
          nodeName: `n${n}-node-${i}`,
          root: join(dir, `root-${i}`),
          metricsAddr: null,
          criListen: null,
          nodeDockerConfig: false,
          resyncMs: 1000,
          gcPeriodMs: 3_600_000,
          registry: { plainHttp: [reg.host] },
          log: () => undefined,
          cluster: { client: clients[i]! },
        }),
      );
    }
    for (let i = 0; i < n; i++) for (const p of podsFor(`n${n}-node-${i}`, reg.host)) api.create(p);
    const deadline = Date.now() + 300_000;
    while (!agents.every(settled)) {
      if (Date.now() > deadline) throw new Error(`N=${n}: the pods did not settle within 300 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await Promise.all(agents.map((a) => a.kube?.flushEvents()));
    const settleS = (Date.now() - t0) / 1000;
    const startup = api.requests();
    const regStartup = (await reg.accessLog()).length - regBefore;
    progress(`N=${n}: settled in ${settleS.toFixed(1)} s; steady window ${windowS} s`);
    const mark = startup.length;
    const regMark = regBefore + regStartup;
    await new Promise((r) => setTimeout(r, windowS * 1000));
    const steady = api.requests().slice(mark);
    const regSteady = (await reg.accessLog()).length - regMark;
    // What the next series refresh would patch: flushed now, outside the window's figures.
    const flushMark = api.requests().length;
    await Promise.all(agents.map((a) => a.kube?.flushEvents()));
    const all = api.requests();
    const pending = all.slice(flushMark).filter((r) => r.verb === 'patch').length;
    const perMin = (x: number): number => (x / n / windowS) * 60;
    const secretReads = all.filter(
      (r) => (r.resource === 'secrets' || r.resource === 'serviceaccounts') && r.verb === 'list',
    ).length;
    return {
      agents: n,
      pods: n * PODS_PER_NODE,
      settleS,
      startupApiPerAgent: startup.length / n,
      startupRegistryPerNode: regStartup / n,
      steadyApiPerAgentPerMin: perMin(steady.length),
      steadyRegistryPerNodePerMin: perMin(regSteady),
      secretReadsPerAgent: secretReads / n,
      podListsPerAgent: all.filter((r) => r.resource === 'pods' && r.verb === 'list').length / n,
      openWatches: api.openWatches(),
      events: api
        .objects('events.k8s.io/v1', 'Event')
        .filter((e) => String((e.regarding as { name?: string }).name ?? '').startsWith(`n${n}-`)).length,
      eventPatchesPerAgentPerMin: perMin(steady.filter((r) => r.verb === 'patch').length),
      pendingSeriesPerAgent: pending / n,
    };
  } finally {
    await Promise.all(agents.map((a) => a.close()));
    await removeTempDir(dir);
  }
}

function table(rows: Row[]): string {
  const head =
    '| agents | pods | settle s | API req/agent (start-up) | registry req/node (start-up) | API req/agent/min (steady) | event patches/agent/min | pending series updates/agent | registry req/node/min (steady) | Secret/SA lists per agent | pod lists per agent | open watches |';
  const sep =
    '|' +
    head
      .split('|')
      .slice(1, -1)
      .map(() => '---:')
      .join('|') +
    '|';
  const lines = rows.map(
    (r) =>
      `| ${r.agents} | ${r.pods} | ${r.settleS.toFixed(1)} | ${r.startupApiPerAgent.toFixed(1)} | ${r.startupRegistryPerNode.toFixed(1)} | ${r.steadyApiPerAgentPerMin.toFixed(2)} | ${r.eventPatchesPerAgentPerMin.toFixed(2)} | ${r.pendingSeriesPerAgent.toFixed(1)} | ${r.steadyRegistryPerNodePerMin.toFixed(2)} | ${r.secretReadsPerAgent.toFixed(1)} | ${r.podListsPerAgent.toFixed(1)} | ${r.openWatches} |`,
  );
  return [head, sep, ...lines].join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      agents: { type: 'string' },
      window: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const counts = (values.agents ?? (quick ? '1,10' : '1,10,50')).split(',').map(Number);
  const windowS = Number(values.window ?? (quick ? '15' : '60'));
  if (counts.some((c) => !(c >= 1)) || !(windowS > 0)) {
    process.stderr.write(
      '--agents takes positive integers (1,10,50), --window a positive number of seconds\n',
    );
    process.exit(2);
  }
  const work = await makeTempDir('bench-cluster-');
  let api: KubeApiServer | undefined;
  let reg: StartedRegistry | undefined;
  try {
    [api, reg] = await Promise.all([startKubeApiServer(), startRegistry({ mode: 'basic' })]);
    for (const tag of ['1', '2', '3']) {
      const img = await generateImage(join(work, `img-${tag}`), {
        name: `bench-cluster-${tag}`,
        tag,
        layers: [{ size: 64 * 1024 }],
      });
      await skopeoPush(img, reg, `app:${tag}`);
    }
    api.create({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'regcred', namespace: 'default' },
      type: 'kubernetes.io/dockerconfigjson',
      data: {
        '.dockerconfigjson': Buffer.from(
          JSON.stringify({ auths: { [reg.host]: { username: reg.username, password: reg.password } } }),
        ).toString('base64'),
      },
    });
    api.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'builder', namespace: 'default' },
      imagePullSecrets: [{ name: 'regcred' }],
    });
    const rows: Row[] = [];
    for (const n of counts) {
      progress(`N=${n}: starting ${n} agents, ${n * PODS_PER_NODE} pods`);
      rows.push(await runScale(n, windowS, api, reg, work));
    }
    process.stdout.write(
      `\n## Cluster mode: ${PODS_PER_NODE} pods per node, steady window ${windowS} s\n\n${table(rows)}`,
    );
    const out = values.out ?? join('bench-results', `cluster-${new Date().toISOString().slice(0, 10)}.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify({ podsPerNode: PODS_PER_NODE, windowS, rows }, null, 2) + '\n');
    progress(`wrote ${out}`);
  } finally {
    await api?.close();
    await reg?.stop();
    await removeTempDir(work);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:cluster failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(2);
});
