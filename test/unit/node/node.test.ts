/**
 * The node agent's pure parts: the kubelet's image size buckets, kubectl's STATUS/READY columns, event
 * aggregation, the pre-pull list, host:port parsing, and the static pod directory watcher (added,
 * changed, removed manifests; dot files ignored; a broken file keeps its pods).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isKimgError } from '../../../src/errors/index.js';
import {
  ManifestWatcher,
  PodStateStore,
  imageSizeBucket,
  parseHostPort,
  parsePrepullList,
  podReady,
  podStatus,
  type ContainerImageState,
  type ManifestPod,
  type PodView,
} from '../../../src/node/index.js';

const MB = 1024 * 1024;

test('imageSizeBucket follows the kubelet (lower bound exclusive)', () => {
  const table: [number, string][] = [
    [0, 'N/A'],
    [1, '0-10MB'],
    [10 * MB, '0-10MB'],
    [10 * MB + 1, '10MB-100MB'],
    [100 * MB + 1, '100MB-500MB'],
    [600 * MB, '500MB-1GB'],
    [2 * 1024 * MB, '1GB-5GB'],
    [200 * 1024 * MB, 'GT100GB'],
  ];
  for (const [bytes, label] of table) assert.equal(imageSizeBucket(bytes), label, String(bytes));
});

function container(over: Partial<ContainerImageState>): ContainerImageState {
  return {
    name: 'c',
    list: 'containers',
    image: 'x:1',
    imagePullPolicy: 'IfNotPresent',
    state: 'Waiting',
    reason: '',
    message: '',
    imageRef: '',
    ...over,
  };
}

function view(containers: ContainerImageState[], syncs = 1): PodView {
  return {
    key: 'default/p',
    name: 'p',
    namespace: 'default',
    uid: 'u',
    file: 'f',
    createdAt: 0,
    syncs,
    containers,
  };
}

describe('kubectl columns', () => {
  test('STATUS is the first waiting reason, init containers prefixed', () => {
    assert.equal(podStatus(view([container({})], 0)), 'Pending');
    assert.equal(
      podStatus(view([container({ reason: 'ContainerCreating', pulling: { startedAt: 0, layers: [] } })])),
      'ContainerCreating',
    );
    assert.equal(
      podStatus(
        view([
          container({ name: 'a', state: 'Ready' }),
          container({ name: 'b', reason: 'ImagePullBackOff' }),
        ]),
      ),
      'ImagePullBackOff',
    );
    assert.equal(
      podStatus(view([container({ list: 'initContainers', reason: 'ErrImagePull' }), container({})])),
      'Init:ErrImagePull',
    );
    assert.equal(
      podStatus(view([container({ state: 'Ready' }), container({ name: 'd', state: 'Ready' })])),
      'ImagesReady',
    );
  });
  test('READY counts regular containers whose image is ready', () => {
    const p = view([
      container({ list: 'initContainers', state: 'Ready' }),
      container({ name: 'a', state: 'Ready' }),
      container({ name: 'b', reason: 'ErrImagePull' }),
    ]);
    assert.equal(podReady(p), '1/2');
  });
});

test('events aggregate like client-go (count, first and last timestamps), per object', () => {
  let now = 1000;
  const s = new PodStateStore({ now: () => now });
  const object = { kind: 'Pod' as const, namespace: 'default', name: 'p', uid: 'u', container: 'c' };
  s.recordEvent({ type: 'Normal', reason: 'BackOff', message: 'Back-off pulling image "x"', object });
  now = 5000;
  s.recordEvent({ type: 'Warning', reason: 'Failed', message: 'boom', object });
  now = 9000;
  s.recordEvent({ type: 'Normal', reason: 'BackOff', message: 'Back-off pulling image "x"', object });
  s.recordEvent({
    type: 'Normal',
    reason: 'BackOff',
    message: 'Back-off pulling image "x"',
    object: { ...object, name: 'q' },
  });
  const evs = s.events({ name: 'p' });
  assert.deepEqual(
    evs.map((e) => [e.reason, e.count, e.firstTimestamp, e.lastTimestamp]),
    [
      ['Failed', 1, 5000, 5000],
      ['BackOff', 2, 1000, 9000],
    ],
  );
  assert.equal(s.events().length, 3);
});

describe('parsePrepullList', () => {
  test('a list of strings, or {images: [{image, platform, secret}]}', () => {
    assert.deepEqual(parsePrepullList('- busybox\n- registry.k8s.io/pause:3.9\n'), [
      { image: 'busybox' },
      { image: 'registry.k8s.io/pause:3.9' },
    ]);
    assert.deepEqual(
      parsePrepullList(
        '{"images": [{"image": "r.example/a:1", "platform": "linux/arm64", "secret": "regcred"}]}',
      ),
      [{ image: 'r.example/a:1', platform: 'linux/arm64', secret: 'regcred' }],
    );
  });
  test('every problem at once, CONFIG_INVALID', () => {
    try {
      parsePrepullList(
        '- image: ""\n- image: UPPER/Case\n- image: ok:1\n  platform: 3\n  extra: 1\n',
        'list.yaml',
      );
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(isKimgError(e, 'CONFIG_INVALID'));
      const items = (e.details.items ?? []) as string[];
      assert.equal(items.length, 4, items.join('\n'));
      assert.match(e.message, /list\.yaml: images\[1\]: "UPPER\/Case" is not a valid image name/);
    }
    assert.throws(
      () => parsePrepullList('images: 3'),
      (e: unknown) => isKimgError(e, 'CONFIG_INVALID'),
    );
  });
});

test('parseHostPort', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:10259'), { host: '127.0.0.1', port: 10259 });
  assert.deepEqual(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseHostPort(':8080'), { host: '127.0.0.1', port: 8080 });
  for (const bad of ['localhost', '1.2.3.4:70000', '::1:80'])
    assert.throws(
      () => parseHostPort(bad),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
      bad,
    );
});

test('ManifestWatcher: added, changed, removed; dot files ignored; a broken file keeps its pods', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kimg-watch-'));
  const seen: Map<string, ManifestPod>[] = [];
  const problems: string[] = [];
  const w = new ManifestWatcher({
    path: dir,
    onPods: (p) => seen.push(p),
    onProblem: (_f, m) => problems.push(m),
    rescanMs: 3_600_000,
  });
  const pod = (name: string, image: string, ns = ''): string =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n${ns}spec:\n  containers:\n  - name: c\n    image: ${image}\n`;
  try {
    await writeFile(join(dir, 'a.yaml'), pod('a', 'x:1'));
    await writeFile(join(dir, '.hidden.yaml'), pod('h', 'x:1'));
    await writeFile(
      join(dir, 'b.json'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'b', namespace: 'kube-system' },
        spec: { containers: [] },
      }),
    );
    await w.start();
    assert.deepEqual([...(seen.at(-1)?.keys() ?? [])].sort(), ['default/a', 'kube-system/b']);
    const hashA = seen.at(-1)?.get('default/a')?.hash;
    await writeFile(join(dir, 'a.yaml'), pod('a', 'x:2'));
    await w.scan();
    assert.notEqual(seen.at(-1)?.get('default/a')?.hash, hashA);
    const n = seen.length;
    await w.scan();
    assert.equal(seen.length, n, 'no change, no callback');
    await writeFile(join(dir, 'a.yaml'), 'kind: Pod\nmetadata: [broken');
    await w.scan();
    assert.equal(seen.length, n, 'a broken file keeps its pods');
    assert.ok(problems.some((m) => /a\.yaml/.test(m)));
    await rm(join(dir, 'b.json'));
    await w.scan();
    assert.deepEqual([...(seen.at(-1)?.keys() ?? [])], ['default/a']);
    await writeFile(join(dir, 'dup.yaml'), pod('a', 'y:1'));
    await w.scan();
    assert.ok(problems.some((m) => /also defined/.test(m)));
  } finally {
    w.close();
    await rm(dir, { recursive: true, force: true });
  }
});
