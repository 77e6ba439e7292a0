/**
 * The cluster-mode library against the Kubernetes API server double: client configuration as kubectl
 * resolves it, coded errors (RBAC denial naming verb and resource, 404), the node pod informer (a pod
 * created after start, a watch broken mid-stream resumes without missing a pod, a compacted resource
 * version relists), the watch-based secret manager (only referenced objects, never re-fetched while
 * unchanged, other namespaces refused without a request) and the events.k8s.io recorder (create, then
 * series patches that the double validates) and TokenRequest (the `serviceaccounts/token`
 * subresource: pod-bound tokens, RBAC, 404/409/400 as the API server answers, the source's cache).
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isKimgError } from '../../src/errors/index.js';
import * as k8s from '@kubernetes/client-node';
import {
  KubeClient,
  KubeEventRecorder,
  KubeInformer,
  PodSecretManager,
  TokenRequestSource,
  loadKubeClientConfig,
  nodePodInformer,
  type KubeJson,
} from '../../src/kube/index.js';
import {
  ALLOW_ALL,
  decodeKubeToken,
  startKubeApiServer,
  type KubeApiServer,
} from '../helpers/kube-apiserver.js';
import { waitFor } from '../helpers/proc.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const pod = (name: string, node: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default' },
  spec: { nodeName: node, containers: [{ name: 'app', image: 'registry.example/app:1' }], ...extra },
});

const dockerSecret = (name: string, namespace: string, host: string): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace },
  type: 'kubernetes.io/dockerconfigjson',
  data: {
    '.dockerconfigjson': Buffer.from(
      JSON.stringify({ auths: { [host]: { username: 'u', password: 'p' } } }),
    ).toString('base64'),
  },
});

describe('kube client library against the API double', () => {
  let api: KubeApiServer;
  let dir: string;
  let client: KubeClient;

  before(async () => {
    dir = await makeTempDir('kubelib-');
    api = await startKubeApiServer({
      users: {
        'admin-token': { name: 'admin', rules: ALLOW_ALL },
        'no-secrets': {
          name: 'system:serviceaccount:kimg:reader',
          rules: [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] }],
        },
      },
    });
    client = new KubeClient(
      await loadKubeClientConfig({ kubeconfig: await api.writeKubeconfig('admin-token') }),
    );
  });
  after(async () => {
    await api.close();
    await removeTempDir(dir);
  });

  test('configuration: --kubeconfig, KUBECONFIG merge, --context, in-cluster, errors', async () => {
    const a = await api.writeKubeconfig('admin-token', { context: 'alpha', namespace: 'team-a' });
    const b = await api.writeKubeconfig('no-secrets', { context: 'beta' });
    const env = { KUBECONFIG: [join(dir, 'missing'), a, b].join(':'), HOME: dir };
    const merged = await loadKubeClientConfig({ env });
    assert.equal(merged.context, 'alpha');
    assert.equal(merged.namespace, 'team-a');
    assert.deepEqual(merged.source, { kind: 'kubeconfig', files: [a, b] });
    const beta = await loadKubeClientConfig({ env, context: 'beta' });
    assert.equal(beta.context, 'beta');
    assert.equal(beta.namespace, 'default');
    await assert.rejects(
      () => loadKubeClientConfig({ env, context: 'gamma' }),
      (e: unknown) =>
        isKimgError(e, 'KUBE_CONFIG_INVALID') && /"gamma"/.test(e.message) && /"alpha"/.test(e.message),
    );
    await assert.rejects(
      () => loadKubeClientConfig({ kubeconfig: join(dir, 'nope') }),
      (e: unknown) => isKimgError(e, 'KUBE_CONFIG_INVALID'),
    );
    await assert.rejects(
      () => loadKubeClientConfig({ env: { HOME: dir }, serviceAccountDir: join(dir, 'sa') }),
      (e: unknown) => isKimgError(e, 'KUBE_CONFIG_INVALID') && /--kubeconfig/.test(e.message),
    );
    // ~/.kube/config
    await mkdir(join(dir, '.kube'));
    await writeFile(join(dir, '.kube', 'config'), await (await import('node:fs/promises')).readFile(b));
    assert.equal((await loadKubeClientConfig({ env: { HOME: dir } })).context, 'beta');
    // In-cluster: service host/port + token, CA and namespace files; the token is sent as a bearer.
    const sa = join(dir, 'sa');
    await mkdir(sa);
    await writeFile(join(sa, 'token'), 'admin-token');
    await writeFile(join(sa, 'ca.crt'), await (await import('node:fs/promises')).readFile(api.caFile));
    await writeFile(join(sa, 'namespace'), 'kimg-system');
    const port = new URL(api.url).port;
    const inCluster = await loadKubeClientConfig({
      env: { HOME: join(dir, 'nohome'), KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port },
      serviceAccountDir: sa,
    });
    assert.equal(inCluster.source.kind, 'in-cluster');
    assert.equal(inCluster.namespace, 'kimg-system');
    api.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'incluster-node' } });
    const node = await new KubeClient(inCluster).getNode('incluster-node');
    assert.equal(node.metadata?.name, 'incluster-node');
    assert.equal(api.requests().at(-1)?.user, 'admin');
  });

  test('errors: 404 and RBAC 403 are coded and name verb, resource and namespace; no token in them', async () => {
    await assert.rejects(client.getPod('default', 'absent'), (e: unknown) => {
      assert.ok(isKimgError(e, 'KUBE_NOT_FOUND'));
      assert.match(e.message, /pods "absent" not found in namespace "default"/);
      return true;
    });
    api.create(dockerSecret('regcred', 'default', 'registry.example'));
    const reader = new KubeClient(
      await loadKubeClientConfig({ kubeconfig: await api.writeKubeconfig('no-secrets') }),
    );
    await assert.rejects(reader.getSecret('default', 'regcred'), (e: unknown) => {
      assert.ok(isKimgError(e, 'KUBE_FORBIDDEN'));
      assert.equal(e.details.kube?.verb, 'get');
      assert.equal(e.details.kube?.resource, 'secrets');
      assert.equal(e.details.kube?.namespace, 'default');
      assert.equal(e.details.status, 403);
      assert.match(e.message, /RBAC denies get secrets "regcred" in namespace "default"/);
      assert.match(e.message, /cannot get resource "secrets"/);
      assert.doesNotMatch(JSON.stringify(e.details) + e.message, /no-secrets/);
      return true;
    });
    const stranger = new KubeClient(
      await loadKubeClientConfig({ kubeconfig: await api.writeKubeconfig('wrong-token') }),
    );
    await assert.rejects(stranger.getNode('x'), (e: unknown) => isKimgError(e, 'KUBE_UNAUTHORIZED'));
  });

  test('pod informer: picks up later pods, resumes a broken watch without missing a pod, relists after 410', async () => {
    api.create(pod('early', 'node-a'));
    api.create(pod('elsewhere', 'node-b'));
    const seen = new Set<string>();
    const deleted = new Set<string>();
    const informer = nodePodInformer({
      client,
      nodeName: 'node-a',
      initialBackoffMs: 20,
      onAdd: (o) => seen.add(String(o.metadata?.name)),
      onDelete: (o) => deleted.add(String(o.metadata?.name)),
    });
    informer.start();
    await informer.waitForSync();
    assert.deepEqual([...seen], ['early']);
    api.create(pod('later', 'node-a'));
    await waitFor('the later pod', () => (seen.has('later') ? true : undefined));

    // Break every watch mid-stream, then create a pod before the informer reconnects.
    const listsBefore = informer.stats().lists;
    await waitFor('an open watch', () => (api.openWatches() > 0 ? true : undefined));
    assert.ok(api.breakWatches() >= 1);
    api.create(pod('while-broken', 'node-a'));
    api.remove('v1', 'Pod', 'default', 'early');
    await waitFor('the pod created while the watch was down', () =>
      seen.has('while-broken') && deleted.has('early') ? true : undefined,
    );
    assert.equal(informer.stats().lists, listsBefore, 'resumed from the last resource version: no relist');
    const watches = api.requests().filter((r) => r.verb === 'watch' && r.resource === 'pods');
    assert.ok(watches.length >= 2);
    assert.ok(
      watches.every(
        (r) => r.query.fieldSelector === 'spec.nodeName=node-a' && r.query.allowWatchBookmarks === 'true',
      ),
    );
    assert.notEqual(watches.at(-1)?.query.resourceVersion, undefined);

    // A bookmark advances the resource version; after compaction a reconnect gets 410 and relists.
    api.create(pod('unrelated', 'node-b'));
    api.bookmark();
    await waitFor('the bookmark', () =>
      informer.stats().resourceVersion === api.resourceVersion() ? true : undefined,
    );
    api.create(pod('after-compaction', 'node-b'));
    api.compact();
    api.breakWatches();
    api.create(pod('after-410', 'node-a'));
    await waitFor('the relist after 410', () => (seen.has('after-410') ? true : undefined));
    assert.equal(informer.stats().lists, listsBefore + 1);
    assert.deepEqual(
      informer
        .list()
        .map((o) => o.metadata?.name)
        .sort(),
      ['after-410', 'later', 'while-broken'],
    );
    await informer.stop();
    assert.equal(api.openWatches(), 0);
  });

  test('informer resync: the cached objects are handed over again without any request', async () => {
    api.create({ ...pod('resync-a', 'node-r'), metadata: { name: 'resync-a', namespace: 'resync' } });
    let resyncs = 0;
    let last: string[] = [];
    const informer = nodePodInformer({
      client,
      nodeName: 'node-r',
      resyncMs: 20,
      onResync: (objects) => {
        resyncs++;
        last = objects.map((o) => String(o.metadata?.name));
      },
    });
    informer.start();
    await informer.waitForSync();
    await waitFor('its watch', () =>
      api.requests().some((r) => r.verb === 'watch' && r.query.fieldSelector === 'spec.nodeName=node-r')
        ? true
        : undefined,
    );
    const requestsBefore = api.requests().length;
    const seen = resyncs;
    await waitFor('three resyncs', () => (resyncs >= seen + 3 ? true : undefined));
    assert.deepEqual(last, ['resync-a']);
    assert.deepEqual(api.requests().slice(requestsBefore), [], 'a resync asks the API server nothing');
    await informer.stop();
  });

  test('watch semantics of the double: label selectors, objects leaving a selector are DELETED, bookmarks, sendInitialEvents; the library informer works', async () => {
    const ns = 'sel';
    const SELECTOR = 'app=web,tier in (front,back),!canary';
    const labelled = (name: string, labels: Record<string, string>): Record<string, unknown> => ({
      ...pod(name, 'node-s'),
      metadata: { name, namespace: ns, labels },
    });
    const relabel = (name: string, labels: Record<string, string>): void => {
      const cur = api.object('v1', 'Pod', ns, name)!;
      api.update({ ...cur, metadata: { ...(cur.metadata as object), labels } });
    };
    api.create(labelled('a', { app: 'web', tier: 'front' }));
    api.create(labelled('b', { app: 'web', tier: 'db' }));
    api.create(labelled('c', { app: 'api', tier: 'front' }));
    api.create(labelled('d', { app: 'web', tier: 'back', canary: 'yes' }));

    // The client library's own informer (list + watch) with a set-based label selector.
    const kc = client.config.kubeConfig;
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const lib = k8s.makeInformer(
      kc,
      `/api/v1/namespaces/${ns}/pods`,
      () => core.listNamespacedPod({ namespace: ns, labelSelector: SELECTOR }),
      SELECTOR,
    );
    const libLog: string[] = [];
    for (const verb of ['add', 'update', 'delete'] as const)
      lib.on(verb, (o: k8s.V1Pod) => libLog.push(`${verb} ${o.metadata?.name ?? ''}`));
    await lib.start();
    await waitFor('the library informer to list', () => (libLog.includes('add a') ? true : undefined));
    assert.deepEqual(libLog, ['add a'], 'only the pod the selector matches');
    relabel('b', { app: 'web', tier: 'back' }); // enters the selector: ADDED
    relabel('a', { app: 'web', tier: 'front', canary: 'yes' }); // leaves it: DELETED
    relabel('c', { app: 'api', tier: 'back' }); // never matches: nothing
    relabel('b', { app: 'web', tier: 'front' }); // stays: MODIFIED
    await waitFor('the library informer to see b modified', () =>
      libLog.includes('update b') ? true : undefined,
    );
    assert.deepEqual(libLog, ['add a', 'add b', 'delete a', 'update b']);
    assert.deepEqual(
      lib
        .list(ns)
        .map((o) => o.metadata?.name)
        .sort(),
      ['b'],
    );
    await lib.stop();
    const watchQueries = api
      .requests()
      .filter((r) => r.namespace === ns && (r.verb === 'list' || r.verb === 'watch'));
    assert.ok(watchQueries.length >= 2 && watchQueries.every((r) => r.query.labelSelector === SELECTOR));

    // kimg's informer: a change that makes an object leave the selector while the watch is down is
    // replayed as DELETED on resume (no relist).
    const present = new Set<string>();
    const mine = new KubeInformer({
      client,
      resource: 'pods',
      namespace: ns,
      labelSelector: SELECTOR,
      initialBackoffMs: 20,
      onAdd: (o) => present.add(String(o.metadata?.name)),
      onUpdate: (o) => present.add(String(o.metadata?.name)),
      onDelete: (o) => present.delete(String(o.metadata?.name)),
    });
    mine.start();
    await mine.waitForSync();
    assert.deepEqual([...present], ['b']);
    await waitFor('an open watch', () => (api.openWatches() > 0 ? true : undefined));
    const lists = mine.stats().lists;
    assert.ok(api.breakWatches() >= 1);
    relabel('b', { app: 'web', tier: 'db' }); // leaves
    relabel('c', { app: 'web', tier: 'back' }); // enters
    await waitFor('the replay', () => (!present.has('b') && present.has('c') ? true : undefined));
    assert.equal(mine.stats().lists, lists, 'resumed from its resource version');
    await mine.stop();

    // Raw watches: a bookmark carries no annotation; sendInitialEvents ends the current state with the
    // one bookmark annotated k8s.io/initial-events-end, and needs resourceVersionMatch=NotOlderThan.
    const watch = new k8s.Watch(kc);
    const rawWatch = async (
      query: Record<string, string | boolean>,
      until: (events: { type: string; object: KubeJson }[]) => boolean,
    ): Promise<{ type: string; object: KubeJson }[]> => {
      const events: { type: string; object: KubeJson }[] = [];
      let failed: unknown;
      const ctl = await watch.watch(
        `/api/v1/namespaces/${ns}/pods`,
        { labelSelector: SELECTOR, allowWatchBookmarks: true, ...query },
        (type, object) => events.push({ type, object: object as KubeJson }),
        (err) => (failed = err),
      );
      await waitFor('the watch events', () =>
        failed !== undefined && failed !== null ? true : until(events) ? true : undefined,
      );
      const error = failed;
      ctl.abort();
      if (error !== undefined && error !== null) throw error;
      return events;
    };
    let asked = false;
    const plain = await rawWatch({ resourceVersion: api.resourceVersion() }, (evs) => {
      if (!asked) api.bookmark();
      asked = true;
      return evs.some((e) => e.type === 'BOOKMARK');
    });
    assert.deepEqual(
      plain.map((e) => e.type),
      ['BOOKMARK'],
    );
    assert.deepEqual(plain[0]!.object.metadata, { resourceVersion: api.resourceVersion() });
    const streamed = await rawWatch(
      { sendInitialEvents: true, resourceVersionMatch: 'NotOlderThan', resourceVersion: '' },
      (evs) => evs.some((e) => e.type === 'BOOKMARK'),
    );
    assert.deepEqual(
      streamed.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`),
      ['ADDED c', 'BOOKMARK '],
    );
    assert.deepEqual(streamed[1]!.object.metadata, {
      resourceVersion: api.resourceVersion(),
      annotations: { 'k8s.io/initial-events-end': 'true' },
    });
    await assert.rejects(
      rawWatch({ sendInitialEvents: true }, () => false),
      (e: unknown) => (e as { statusCode?: number }).statusCode === 422,
    );
    const refused = api.requests().at(-1)!;
    assert.equal(refused.status, 422);
  });

  test('secret manager: only referenced objects, own namespace only, never re-fetched while unchanged', async () => {
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b' } });
    api.create(dockerSecret('team-cred', 'team-b', 'registry.example'));
    api.create(dockerSecret('sa-cred', 'default', 'registry.example'));
    api.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'builder', namespace: 'default' },
      imagePullSecrets: [{ name: 'sa-cred' }],
    });
    api.clearRequests();
    const changes: string[] = [];
    const mgr = new PodSecretManager({ client, onChange: (k, ns, n) => changes.push(`${k}/${ns}/${n}`) });
    const p1 = api.create(
      pod('with-secret', 'node-a', { imagePullSecrets: [{ name: 'regcred' }, { name: 'team-cred' }] }),
    ) as KubeJson;
    const r1 = await mgr.pullSecrets(p1);
    assert.deepEqual(
      r1.secrets.map((s) => `${s.namespace}/${s.name}/${s.via}`),
      ['default/regcred/pod'],
    );
    assert.deepEqual(
      r1.problems.map((p) => `${p.kind} ${p.name}`),
      ['not-found team-cred'],
    );
    const p2 = api.create(pod('via-sa', 'node-a', { serviceAccountName: 'builder' })) as KubeJson;
    const r2 = await mgr.pullSecrets(p2);
    assert.deepEqual(
      r2.secrets.map((s) => `${s.name}/${s.via}/${s.serviceAccount ?? ''}`),
      ['sa-cred/service-account/builder'],
    );
    await assert.rejects(
      mgr.secretFor(p1, 'team-b', 'team-cred'),
      (e: unknown) => isKimgError(e, 'SECRET_NOT_FOUND') && /own namespace/.test(e.message),
    );
    assert.deepEqual(mgr.watchedObjects(), [
      'Secret/default/regcred',
      'Secret/default/sa-cred',
      'Secret/default/team-cred',
      'ServiceAccount/default/builder',
    ]);
    const reads = (): string[] =>
      api
        .requests()
        .filter((r) => r.resource === 'secrets' || r.resource === 'serviceaccounts')
        .map((r) => `${r.verb} ${r.resource} ${r.namespace ?? ''} ${r.query.fieldSelector ?? ''}`);
    const first = reads();
    assert.ok(
      first.every((r) => !r.includes('team-b')),
      'nothing read in another namespace',
    );
    assert.equal(first.filter((r) => r.startsWith('list')).length, 4, 'one list per referenced object');
    // Re-registration and repeated lookups cost no request.
    for (let i = 0; i < 5; i++) {
      mgr.registerPod(p1);
      mgr.registerPod(p2);
      await mgr.pullSecrets(p1);
      await mgr.pullSecrets(p2);
    }
    assert.deepEqual(
      reads().filter((r) => !r.startsWith('watch')),
      first.filter((r) => !r.startsWith('watch')),
    );
    // A change arrives through the watch.
    const cur = api.object('v1', 'Secret', 'default', 'regcred')!;
    api.update({ ...cur, data: dockerSecret('regcred', 'default', 'other.example').data });
    await waitFor('the Secret change', () => (changes.includes('Secret/default/regcred') ? true : undefined));
    const r3 = await mgr.pullSecrets(p1);
    assert.deepEqual(Object.keys(r3.secrets[0]!.config.entries ?? {}).length >= 0, true);
    assert.match(JSON.stringify(r3.secrets[0]!.config.entries.map((e) => e.key)), /other\.example/);
    // A reader without Secret rules: the lookup fails at once with the coded denial (and keeps retrying).
    const denied = new PodSecretManager({
      client: new KubeClient(
        await loadKubeClientConfig({ kubeconfig: await api.writeKubeconfig('no-secrets') }),
      ),
      initialBackoffMs: 50,
    });
    await assert.rejects(denied.pullSecrets(p1), (e: unknown) => {
      assert.ok(isKimgError(e, 'KUBE_FORBIDDEN'));
      assert.equal(e.details.kube?.verb, 'list');
      assert.equal(e.details.kube?.resource, 'secrets');
      assert.match(e.message, /RBAC denies list secrets in namespace "default"/);
      return true;
    });
    await denied.close();
    mgr.unregisterPod(p1);
    assert.deepEqual(mgr.watchedObjects(), ['Secret/default/sa-cred', 'ServiceAccount/default/builder']);
    await mgr.close();
  });

  test('TokenRequest: pod-bound tokens for an audience, coded failures, one request per cached token', async () => {
    const sa = api.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'puller', namespace: 'tok' },
    }) as KubeJson;
    const bound = api.create({
      ...pod('bound', 'node-t', { serviceAccountName: 'puller' }),
      metadata: { name: 'bound', namespace: 'tok' },
    }) as KubeJson;
    const uid = String(bound.metadata?.uid);
    api.clearRequests();
    const before = api.tokenRequests().length;
    const t = await client.createServiceAccountToken('tok', 'puller', {
      audiences: ['registry.example'],
      expirationSeconds: 3600,
      boundPod: { name: 'bound', uid },
    });
    const claims = decodeKubeToken(t.token);
    assert.deepEqual(claims?.aud, ['registry.example']);
    assert.equal(claims?.sub, 'system:serviceaccount:tok:puller');
    assert.deepEqual(claims?.['kubernetes.io'].pod, { name: 'bound', uid });
    assert.equal(claims?.['kubernetes.io'].serviceaccount.uid, sa.metadata?.uid);
    assert.equal(t.expirationSeconds, 3600);
    assert.equal(t.expiresAt, claims!.exp * 1000);
    const req = api.requests().find((r) => r.resource === 'serviceaccounts/token');
    assert.equal(req?.verb, 'create');
    assert.equal(req?.path, '/api/v1/namespaces/tok/serviceaccounts/puller/token');
    assert.equal(req?.status, 201);
    assert.ok(!JSON.stringify(api.requests()).includes(t.token), 'no token in the request log');
    assert.ok(!JSON.stringify(api.tokenRequests()).includes(t.token));
    assert.deepEqual(api.tokenRequests().slice(before), [
      {
        namespace: 'tok',
        serviceAccount: 'puller',
        audiences: ['registry.example'],
        expirationSeconds: 3600,
        boundPod: { name: 'bound', uid },
        user: 'admin',
      },
    ]);

    // Failures as the API server answers them, coded.
    await assert.rejects(
      client.createServiceAccountToken('tok', 'nobody', { audiences: ['a'], expirationSeconds: 3600 }),
      (e: unknown) =>
        isKimgError(e, 'KUBE_NOT_FOUND') && /serviceaccounts\/token "nobody"|nobody/.test(e.message),
    );
    await assert.rejects(
      client.createServiceAccountToken('tok', 'puller', {
        audiences: ['a'],
        expirationSeconds: 3600,
        boundPod: { name: 'bound', uid: 'another-uid' },
      }),
      (e: unknown) => isKimgError(e, 'KUBE_API_ERROR') && /does not match the UID/.test(e.message),
    );
    await assert.rejects(
      client.createServiceAccountToken('tok', 'puller', { audiences: ['a'], expirationSeconds: 60 }),
      (e: unknown) => isKimgError(e, 'KUBE_API_ERROR') && /less than 10 minutes/.test(e.message),
    );
    const denied = new KubeClient(
      await loadKubeClientConfig({ kubeconfig: await api.writeKubeconfig('no-secrets') }),
    );
    await assert.rejects(
      denied.createServiceAccountToken('tok', 'puller', { audiences: ['a'], expirationSeconds: 3600 }),
      (e: unknown) =>
        isKimgError(e, 'KUBE_FORBIDDEN') &&
        /grant verb "create" on resource "serviceaccounts\/token"/.test(e.message) &&
        /cannot create resource "serviceaccounts\/token"/.test(e.message),
    );

    // The source asks once per ServiceAccount, audience and pod while the token is fresh.
    const source = new TokenRequestSource({ client });
    const ask = {
      namespace: 'tok',
      name: 'puller',
      uid: String(sa.metadata?.uid),
      audience: 'aud-1',
      podName: 'bound',
      podUid: uid,
    };
    const n = api.tokenRequests().length;
    const [a1, a2] = await Promise.all([source.token(ask), source.token(ask)]);
    assert.equal(a1, a2);
    assert.equal(await source.token(ask), a1);
    assert.equal(api.tokenRequests().length, n + 1);
    await source.token({ ...ask, audience: 'aud-2' });
    assert.equal(api.tokenRequests().length, n + 2);
  });

  test('event recorder: kubelet reasons as events.k8s.io/v1 Events, second occurrence becomes a series', async () => {
    const p = api.create(
      pod('evented', 'node-a', { initContainers: [{ name: 'init', image: 'x' }] }),
    ) as KubeJson;
    const errors: string[] = [];
    const rec = new KubeEventRecorder({
      client,
      reportingInstance: 'node-a',
      refreshMs: 0,
      podFor: (k) => (k === 'default/evented' ? p : undefined),
      onError: (e) => errors.push(e.message),
    });
    const object = {
      pod: { name: 'evented', namespace: 'default', uid: String(p.metadata?.uid) },
      container: 'init',
    };
    rec.record({
      type: 'Normal',
      reason: 'BackOff',
      message: 'Back-off pulling image "x"',
      object,
      timestamp: 0,
    });
    await rec.flush();
    rec.record({
      type: 'Normal',
      reason: 'BackOff',
      message: 'Back-off pulling image "x"',
      object,
      timestamp: 0,
    });
    await rec.flush();
    rec.record({
      type: 'Normal',
      reason: 'BackOff',
      message: 'Back-off pulling image "x"',
      object,
      timestamp: 0,
    });
    rec.record({
      type: 'Normal',
      reason: 'BackOff',
      message: 'Back-off pulling image "x"',
      object,
      timestamp: 0,
    });
    await rec.flush();
    assert.deepEqual(errors, []);
    const events = api
      .objects('events.k8s.io/v1', 'Event', 'default')
      .filter((e) => (e.regarding as { name?: string }).name === 'evented');
    assert.equal(events.length, 1);
    const ev = events[0]! as Record<string, unknown> & {
      regarding: Record<string, unknown>;
      series: Record<string, unknown>;
    };
    assert.equal(ev.reason, 'BackOff');
    assert.equal(ev.note, 'Back-off pulling image "x"');
    assert.equal(ev.type, 'Normal');
    assert.equal(ev.reportingController, 'kimg.io/node-agent');
    assert.equal(ev.reportingInstance, 'node-a');
    assert.equal(ev.regarding.fieldPath, 'spec.initContainers{init}');
    assert.equal(ev.regarding.uid, p.metadata?.uid);
    assert.equal(ev.series.count, 4);
    const verbs = api
      .requests()
      .filter((r) => r.apiGroup === 'events.k8s.io')
      .map((r) => `${r.verb}:${r.status}`);
    assert.deepEqual(verbs, ['create:201', 'patch:200', 'patch:200']);
    await rec.close();
  });
});
