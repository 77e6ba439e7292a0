/**
 * The agent's pod bookkeeping without a registry: manager events and progress events applied to the
 * pods' views through the pull-progress tracker (several containers on one image, a replaced pod not
 * matched, a stopped pod dropped), and the static pod reconciler (added, unchanged, edited, renamed,
 * removed manifests; names, UIDs and defaulting of static pods).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ManagerEvent } from '../../../src/manager/index.js';
import { describePod } from '../../../src/cli/commands/describe.js';
import { PodStateStore, type ManifestPod } from '../../../src/node/index.js';
import { PodImageStatus } from '../../../src/node/internal/pod-status.js';
import { PullProgressTracker, progressImageKey } from '../../../src/node/internal/pull-progress.js';
import {
  StaticPodReconciler,
  newPodView,
  staticPodUid,
  toAgentPod,
  type AgentPod,
} from '../../../src/node/internal/static-pods.js';

const D1 = 'sha256:' + 'a'.repeat(64);

function manifest(name: string, images: string[], over: Partial<ManifestPod> = {}): ManifestPod {
  const object = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
  };
  return {
    key: `default/${name}`,
    name,
    namespace: 'default',
    file: `/m/${name}.yaml`,
    object,
    hash: JSON.stringify(object),
    ...over,
  };
}

function managerEvent(pod: AgentPod, container: string, reason: ManagerEvent['reason']): ManagerEvent {
  return {
    type: reason === 'Failed' ? 'Warning' : 'Normal',
    reason,
    message: `${reason} ${container}`,
    object: { pod: { name: pod.name, namespace: pod.namespace, uid: pod.uid }, container },
    timestamp: 1000,
  };
}

describe('PullProgressTracker', () => {
  test('targets by image (default tag applied), idempotent start, stop per container and per pod', () => {
    const t = new PullProgressTracker();
    const a = { podKey: 'default/p', uid: 'u1', container: 'a' };
    const b = { podKey: 'default/p', uid: 'u1', container: 'b' };
    const q = { podKey: 'default/q', uid: 'u2', container: 'a' };
    t.start('busybox', a);
    t.start('busybox', a);
    t.start('docker.io/library/busybox:latest', b);
    t.start('busybox', q);
    const key = progressImageKey('busybox');
    assert.equal(key, 'busybox:latest');
    assert.deepEqual(t.targets(key), [a, q]);
    assert.deepEqual(
      t.targets('docker.io/library/busybox:latest'),
      [b],
      'the spelling is kept, only the tag added',
    );
    t.stop(b);
    assert.deepEqual(t.targets('docker.io/library/busybox:latest'), []);
    t.stopPod('default/p', 'u1');
    assert.deepEqual(t.targets(key), [q]);
    t.stopPod('default/q', 'other-uid');
    assert.deepEqual(t.targets(key), [q], 'another uid is another pod');
    t.start('Not A Valid Name', q);
    assert.deepEqual(t.targets('Not A Valid Name'), [q], 'an invalid name keeps its spelling');
  });
});

describe('PodImageStatus', () => {
  test('Pulling → progress on every container pulling the image → Pulled; events recorded', () => {
    const state = new PodStateStore();
    const status = new PodImageStatus(state);
    const pod = toAgentPod(manifest('web', ['busybox', 'busybox:latest']), 'node1', []);
    // Progress events name the image as the pod spells it, with the default tag.
    status.podStarted(pod, 5);
    status.onManagerEvent(managerEvent(pod, 'c0', 'Pulling'));
    status.onManagerEvent(managerEvent(pod, 'c1', 'Pulling'));
    const image = 'busybox:latest';
    status.onProgress(image, {
      type: 'layer-start',
      digest: D1,
      size: 10,
      kind: 'layer',
      cached: false,
      resumedFrom: 0,
    });
    status.onProgress(image, { type: 'bytes', digest: D1, completed: 4, total: 10 });
    status.onProgress('other.example/x:1', { type: 'bytes', digest: D1, completed: 9, total: 10 });
    for (const c of state.get(pod.key)!.containers) {
      assert.equal(c.reason, 'ContainerCreating');
      assert.deepEqual(c.pulling?.layers, [
        { digest: D1, size: 10, completed: 4, kind: 'layer', cached: false, done: false },
      ]);
    }
    status.onManagerEvent(managerEvent(pod, 'c0', 'Pulled'));
    status.onManagerEvent(managerEvent(pod, 'c1', 'Failed'));
    status.onProgress(image, { type: 'bytes', digest: D1, completed: 10, total: 10 });
    const [c0, c1] = state.get(pod.key)!.containers;
    assert.equal(c0?.pulling, undefined);
    assert.equal(c1?.pulling, undefined);
    assert.equal(c1?.reason, 'ErrImagePull');
    assert.deepEqual(
      state.events().map((e) => e.reason),
      ['Pulling', 'Pulling', 'Pulled', 'Failed'],
    );
  });

  test('a stopped or replaced pod gets no more updates; its events are still recorded', () => {
    const state = new PodStateStore();
    const status = new PodImageStatus(state);
    const m = manifest('web', ['busybox']);
    const old = toAgentPod(m, 'node1', []);
    status.podStarted(old, 1);
    status.onManagerEvent(managerEvent(old, 'c0', 'Pulling'));
    status.podStopped(old);
    const edited = toAgentPod(manifest('web', ['busybox:1.36']), 'node1', []);
    assert.notEqual(edited.uid, old.uid);
    status.podStarted(edited, 2);
    status.onManagerEvent(managerEvent(old, 'c0', 'Failed'));
    status.onProgress('busybox:latest', {
      type: 'layer-start',
      digest: D1,
      size: 1,
      kind: 'layer',
      cached: false,
      resumedFrom: 0,
    });
    const c = state.get(edited.key)!.containers[0]!;
    assert.equal(c.reason, '');
    assert.equal(c.pulling, undefined);
    assert.equal(c.image, 'busybox:1.36');
    assert.equal(state.events().length, 2);
  });
});

describe('static pods', () => {
  test('name gets the node suffix, uid is a hash of manifest, file and node; defaults applied', () => {
    const m = manifest('web', ['busybox']);
    const pod = toAgentPod(m, 'node1', []);
    assert.equal(pod.key, 'default/web-node1');
    assert.equal(pod.name, 'web-node1');
    assert.equal(pod.uid, staticPodUid(m.object, m.file, 'node1'));
    assert.notEqual(pod.uid, staticPodUid(m.object, m.file, 'node2'));
    const c = (pod.object.spec as { containers: { imagePullPolicy?: string }[] }).containers[0];
    assert.equal(c?.imagePullPolicy, 'Always', 'busybox has no tag: :latest → Always');
    assert.equal((m.object.metadata as { uid?: string }).uid, undefined, 'the manifest is not changed');
  });

  test('an edit is decoded and defaulted afresh (kubelet file source): x:1 → x makes the policy Always', async () => {
    const before = manifest('web', ['busybox:1.36']);
    const after = manifest('web', ['busybox']);
    const pods: AgentPod[] = [];
    const calls: string[] = [];
    const r = new StaticPodReconciler({
      toPod: (m) => toAgentPod(m, 'n', []),
      start: (p) => {
        pods.push(p);
        calls.push(`start ${p.uid}`);
      },
      drop: async (p, why) => {
        calls.push(`drop ${p.uid} ${why}`);
      },
      forget: () => undefined,
      added: (p) => calls.push(`added ${p.uid}`),
    });
    r.onPods(new Map([[before.key, before]]));
    await r.settled();
    r.onPods(new Map([[after.key, { ...after, key: before.key }]]));
    await r.settled();
    const policy = (p: AgentPod) =>
      (p.object.spec as { containers: { imagePullPolicy?: string }[] }).containers[0]?.imagePullPolicy;
    assert.deepEqual(pods.map(policy), ['IfNotPresent', 'Always']);
    // One identity per manifest version: the old pod is dropped, the new one started, never both "added".
    const [a, b] = pods;
    assert.notEqual(a!.uid, b!.uid);
    assert.deepEqual(calls, [
      `added ${a!.uid}`,
      `start ${a!.uid}`,
      `drop ${a!.uid} changed`,
      `start ${b!.uid}`,
    ]);
  });

  test('Secrets and ServiceAccounts in a static pod: accepted as the kimg extension, and describe says so', () => {
    const m = manifest('web', ['busybox']);
    const spec = m.object.spec as Record<string, unknown>;
    spec.imagePullSecrets = [{ name: 'regcred' }];
    spec.serviceAccountName = 'builder';
    const view = newPodView(toAgentPod(m, 'n', []), 0);
    assert.equal(view.extensions?.length, 2);
    const text = describePod(view, [], 'n', 0);
    assert.match(
      text,
      /Kimg Extension: +imagePullSecrets regcred resolved from the secrets directory \(kimg extension: the kubelet refuses static pods that reference Secrets\)/,
    );
    assert.match(text, /ServiceAccount builder resolved from the secrets directory/);
    assert.equal(newPodView(toAgentPod(manifest('plain', ['busybox']), 'n', []), 0).extensions, undefined);
    assert.doesNotMatch(
      describePod(newPodView(toAgentPod(manifest('plain', ['busybox']), 'n', []), 0), [], 'n', 0),
      /Kimg Extension/,
    );
  });

  test('a uid in the manifest is kept', () => {
    const m = manifest('web', ['busybox']);
    (m.object.metadata as Record<string, unknown>).uid = 'fixed-uid';
    assert.equal(toAgentPod(m, 'n', []).uid, 'fixed-uid');
  });

  test('reconciler: added, unchanged, edited (dropped then started), renamed, removed', async () => {
    const calls: string[] = [];
    const r = new StaticPodReconciler({
      toPod: (m) => toAgentPod(m, 'n', []),
      start: (p) => calls.push(`start ${p.key}`),
      drop: async (p, why) => {
        await Promise.resolve();
        calls.push(`drop ${p.key} ${why}`);
      },
      forget: (key) => calls.push(`forget ${key}`),
      added: (p) => calls.push(`added ${p.key}`),
    });
    const a = manifest('a', ['x:1']);
    const b = manifest('b', ['y:1']);
    r.onPods(
      new Map([
        [a.key, a],
        [b.key, b],
      ]),
    );
    await r.settled();
    assert.deepEqual(calls.splice(0), [
      'added default/a-n',
      'start default/a-n',
      'added default/b-n',
      'start default/b-n',
    ]);
    r.onPods(
      new Map([
        [a.key, a],
        [b.key, b],
      ]),
    );
    await r.settled();
    assert.deepEqual(calls.splice(0), [], 'unchanged manifests keep their pods');
    const a2 = manifest('a', ['x:2']);
    const bMoved = { ...b, file: '/m/other.yaml' };
    r.onPods(
      new Map([
        [a.key, a2],
        [b.key, bMoved],
      ]),
    );
    await r.settled();
    assert.deepEqual(calls.splice(0), [
      'drop default/a-n changed',
      'start default/a-n',
      'drop default/b-n changed',
      'start default/b-n',
    ]);
    const renamed = manifest('a2', ['x:2'], { key: a.key });
    r.onPods(new Map([[a.key, renamed]]));
    await r.settled();
    assert.deepEqual(calls.splice(0), [
      'drop default/b-n removed',
      'forget default/b-n',
      'drop default/a-n changed',
      'forget default/a-n',
      'start default/a2-n',
    ]);
    r.onPods(new Map());
    await r.settled();
    assert.deepEqual(calls.splice(0), ['drop default/a2-n removed', 'forget default/a2-n']);
  });
});
