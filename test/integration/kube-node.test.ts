/**
 * `kimg node --kubeconfig … --node-name node-a` (a real process) against the Kubernetes API double
 * and a real registry (Basic auth): a pod created after start is picked up and its image pulled with
 * its own Secret; a pod of another node is not; events `Pulling`/`Pulled`/`Failed`/`BackOff` and
 * `FailedToRetrieveImagePullSecret` arrive as `events.k8s.io/v1` Events with the kubelet's fields; a
 * watch broken mid-stream resumes without missing a pod; the informer's resync (`--informer-resync`)
 * costs no request; the agent never writes a Pod; and the
 * ClusterRole in `deploy/node-agent/` grants exactly the verbs and resources the agent used (the
 * agent runs with exactly those rules, gets no 403, and uses every one of them but the TokenRequest
 * rule, which only credential providers with tokenAttributes use: see kube-node-tokens.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { generateImage } from '../helpers/images.js';
import { startKubeApiServer, type KubeApiServer, type KubeRule } from '../helpers/kube-apiserver.js';
import { killProcess, spawnTracked, waitFor, type TrackedProcess } from '../helpers/proc.js';
import { startRegistry, stopRegistries, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const ROLE = new URL('../../../deploy/node-agent/clusterrole.yaml', import.meta.url).pathname;
const CANARY = 'Node-Canary-Pw-93ab';
const AGENT = 'system:serviceaccount:kimg-system:kimg-node-agent';

type Ev = Record<string, unknown> & { regarding: Record<string, unknown>; series?: { count: number } };

describe('kimg node in cluster mode (API double, real registry)', () => {
  let dir: string;
  let reg: StartedRegistry;
  let api: KubeApiServer;
  let agent: TrackedProcess | undefined;
  let rules: KubeRule[];

  const pod = (name: string, node: string, image: string, secrets: string[]): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: node,
      imagePullSecrets: secrets.map((s) => ({ name: s })),
      containers: [{ name: 'app', image, imagePullPolicy: 'IfNotPresent' }],
    },
  });
  const events = (podName?: string): Ev[] =>
    (api.objects('events.k8s.io/v1', 'Event', 'default') as Ev[]).filter(
      (e) => podName === undefined || e.regarding.name === podName,
    );
  const reasons = (podName: string): string[] => events(podName).map((e) => String(e.reason));
  const stderr = async (): Promise<string> => readFile(join(dir, 'agent.err'), 'utf8').catch(() => '');

  before(async () => {
    dir = await makeTempDir('kubenode-');
    rules = (parse(readFileSync(ROLE, 'utf8')) as { rules: KubeRule[] }).rules;
    [reg, api] = await Promise.all([
      startRegistry({ mode: 'basic', password: CANARY }),
      startKubeApiServer({ users: { 'agent-token': { name: AGENT, rules } } }),
    ]);
    const img = await generateImage(join(dir, 'img'), { name: 'kube-node', layers: [{ size: 30_000 }] });
    await skopeoPush(img, reg, 'app:1');
    api.create({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'regcred', namespace: 'default' },
      type: 'kubernetes.io/dockerconfigjson',
      data: {
        '.dockerconfigjson': Buffer.from(
          JSON.stringify({ auths: { [reg.host]: { username: reg.username, password: CANARY } } }),
        ).toString('base64'),
      },
    });
    const kubeconfig = await api.writeKubeconfig('agent-token');
    agent = spawnTracked(
      'kimg-node',
      process.execPath,
      [
        CLI,
        'node',
        '--kubeconfig',
        kubeconfig,
        '--node-name',
        'node-a',
        '--root',
        join(dir, 'root'),
        '--plain-http',
        reg.host,
        '--metrics-addr',
        '127.0.0.1:0',
        '--resync',
        '0.3',
        // The informer hands the cached pods over again every 0.2 s: costs no request (below).
        '--informer-resync',
        '0.2',
      ],
      { env: { ...process.env, HOME: dir, KUBECONFIG: '' }, stderrFile: join(dir, 'agent.err') },
    );
    // Up: its watch of the node's pods is open.
    await waitFor(
      'the agent to watch its pods',
      () => (api.requests().some((r) => r.verb === 'watch' && r.resource === 'pods') ? true : undefined),
      { timeoutMs: 60_000, watch: agent, describe: stderr },
    );
  });
  after(async () => {
    if (agent !== undefined) await killProcess(agent);
    await api?.close();
    if (reg !== undefined) await stopRegistries([reg]);
    if (dir) await removeTempDir(dir);
  });

  test('a pod created after start is pulled with its Secret; the kubelet events are recorded', async () => {
    api.create(pod('web', 'node-a', `${reg.host}/app:1`, ['regcred']));
    api.create(pod('broken', 'node-a', `${reg.host}/missing:1`, ['regcred']));
    api.create(pod('nosecret', 'node-a', `${reg.host}/app:1`, ['nope']));
    api.create(pod('elsewhere', 'node-b', `${reg.host}/other:1`, ['regcred']));
    api.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'builder', namespace: 'default' },
      imagePullSecrets: [{ name: 'regcred' }],
    });
    const viaSa = pod('via-sa', 'node-a', `${reg.host}/app:1`, []);
    (viaSa.spec as Record<string, unknown>).serviceAccountName = 'builder';
    api.create(viaSa);
    await waitFor(
      'Pulled for web and via-sa, a BackOff series for broken, FailedToRetrieveImagePullSecret for nosecret',
      () =>
        reasons('web').includes('Pulled') &&
        reasons('via-sa').includes('Pulled') &&
        (events('broken').find((e) => e.reason === 'BackOff')?.series?.count ?? 0) >= 2 &&
        reasons('nosecret').includes('FailedToRetrieveImagePullSecret')
          ? true
          : undefined,
      {
        timeoutMs: 60_000,
        watch: agent,
        describe: async () =>
          `${JSON.stringify(events().map((e) => [e.regarding.name, e.reason]))}\n${await stderr()}`,
      },
    );
    const web = api.object('v1', 'Pod', 'default', 'web')!;
    const uid = (web.metadata as { uid: string }).uid;
    const pulling = events('web').find((e) => e.reason === 'Pulling')!;
    assert.equal(pulling.type, 'Normal');
    assert.equal(pulling.note, `Pulling image "${reg.host}/app:1"`);
    assert.equal(pulling.action, 'Pull');
    assert.equal(pulling.reportingController, 'kimg.io/node-agent');
    assert.equal(pulling.reportingInstance, 'node-a');
    assert.deepEqual(pulling.regarding, {
      kind: 'Pod',
      apiVersion: 'v1',
      namespace: 'default',
      name: 'web',
      uid,
      fieldPath: 'spec.containers{app}',
    });
    assert.match(String(pulling.eventTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const pulled = events('web').find((e) => e.reason === 'Pulled')!;
    assert.match(
      String(pulled.note),
      new RegExp(
        `^Successfully pulled image "${reg.host}/app:1" in .+ \\(.+ including waiting\\)\\. Image size: \\d+ bytes\\.$`,
      ),
    );
    const failed = events('broken').find((e) => e.reason === 'Failed')!;
    assert.equal(failed.type, 'Warning');
    assert.match(String(failed.note), new RegExp(`^Failed to pull image "${reg.host}/missing:1"`));
    const backoff = events('broken').find((e) => e.reason === 'BackOff')!;
    assert.equal(backoff.type, 'Normal');
    assert.equal(backoff.note, `Back-off pulling image "${reg.host}/missing:1"`);
    const warn = events('nosecret').find((e) => e.reason === 'FailedToRetrieveImagePullSecret')!;
    assert.equal(warn.type, 'Warning');
    assert.equal(
      warn.note,
      'Unable to retrieve some image pull secrets (nope); attempting to pull the image may not succeed.',
    );
    assert.deepEqual(events('elsewhere'), [], 'a pod of another node is not touched');
    // The pull used the pod's Secret: the registry served the manifest to an authenticated client.
    const access = await reg.accessLog();
    assert.ok(access.some((a) => a.method === 'GET' && a.path === '/v2/app/manifests/1' && a.status === 200));
    assert.ok(!access.some((a) => a.path.startsWith('/v2/other/')));
    assert.doesNotMatch(JSON.stringify(events()) + (await stderr()), new RegExp(CANARY));
  });

  test('a watch broken mid-stream resumes without missing a pod', async () => {
    await waitFor('an open watch', () => (api.openWatches() > 0 ? true : undefined));
    const lists = api.requests().filter((r) => r.verb === 'list' && r.resource === 'pods').length;
    assert.ok(api.breakWatches() >= 1);
    api.create(pod('late', 'node-a', `${reg.host}/app:1`, ['regcred']));
    await waitFor(
      'the late pod to be served',
      () => (reasons('late').includes('Pulled') ? true : undefined),
      {
        timeoutMs: 60_000,
        watch: agent,
        describe: stderr,
      },
    );
    // Already present (pulled for web): the kubelet's "already present" Pulled event, no pull.
    assert.match(
      String(events('late').find((e) => e.reason === 'Pulled')!.note),
      /already present on machine/,
    );
    assert.equal(
      api.requests().filter((r) => r.verb === 'list' && r.resource === 'pods').length,
      lists,
      'resumed, not relisted',
    );
  });

  test('never writes a Pod; the ClusterRole grants exactly what the agent used', async () => {
    const log = api.requests().filter((r) => r.user === AGENT);
    assert.deepEqual(
      log.filter((r) => r.status === 403),
      [],
      'no request was denied',
    );
    assert.deepEqual(
      log.filter((r) => r.resource === 'pods' && r.verb !== 'list' && r.verb !== 'watch'),
      [],
    );
    assert.ok(
      log.filter((r) => r.resource === 'pods').every((r) => r.query.fieldSelector === 'spec.nodeName=node-a'),
    );
    assert.equal(
      log.filter((r) => r.resource === 'pods' && r.verb === 'list').length,
      1,
      'one pod list: neither the informer resync nor a broken watch relists',
    );
    assert.ok(
      log
        .filter((r) => r.resource === 'secrets')
        .every((r) => r.namespace === 'default' && /^metadata\.name=/.test(r.query.fieldSelector ?? '')),
      'Secrets are read one by one in the pod namespace',
    );
    const used = new Set(log.map((r) => `${r.apiGroup}|${r.resource}|${r.verb}`));
    const granted = new Set(
      rules.flatMap((rule) =>
        rule.apiGroups.flatMap((g) =>
          rule.resources.flatMap((res) => rule.verbs.map((v) => `${g}|${res}|${v}`)),
        ),
      ),
    );
    // `create serviceaccounts/token` serves only credential providers with tokenAttributes, which
    // this node has none of: kube-node-tokens.test.ts shows the agent using it.
    granted.delete('|serviceaccounts/token|create');
    assert.deepEqual([...used].sort(), [...granted].sort());
  });
});
