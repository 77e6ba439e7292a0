/**
 * Image volumes (`volumes[].image`): pull policy defaulting like a container's, decoding from a pod
 * object (never throws), the pod STATUS a waiting volume gives, and the `Volumes:` block of
 * `kimg describe pod`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { describeImageVolumes } from '../../../src/cli/commands/describe-volumes.js';
import { applyPodDefaults, applyUpdateDefaults } from '../../../src/manager/index.js';
import { initialVolumeStates, podImageVolumes } from '../../../src/node/internal/image-volumes.js';
import { newPodView, type AgentPod } from '../../../src/node/internal/static-pods.js';
import { podStatus, type ImageVolumeState, type PodView } from '../../../src/node/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

const pod = (volumes: unknown[]): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p' },
  spec: { containers: [{ name: 'c', image: 'busybox:1' }], volumes },
});

describe('image volume pull policy defaulting', () => {
  test('Always for :latest or no tag, IfNotPresent for another tag or a digest; a set policy is kept', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const out = applyPodDefaults(
      pod([
        { name: 'a', image: { reference: 'example.com/data' } },
        { name: 'b', image: { reference: 'example.com/data:latest' } },
        { name: 'c', image: { reference: 'example.com/data:1' } },
        { name: 'd', image: { reference: `example.com/data@${digest}` } },
        { name: 'e', image: { reference: 'example.com/data', pullPolicy: 'Never' } },
        { name: 'f', emptyDir: {} },
      ]),
    );
    assert.deepEqual(
      podImageVolumes(out).map((v) => [v.name, v.pullPolicy]),
      [
        ['a', 'Always'],
        ['b', 'Always'],
        ['c', 'IfNotPresent'],
        ['d', 'IfNotPresent'],
        ['e', 'Never'],
      ],
    );
    assert.deepEqual((out.spec as { volumes: unknown[] }).volumes[5], { name: 'f', emptyDir: {} });
  });

  test('update defaulting and AlwaysPullImages cover image volumes; workloads too', () => {
    const updated = applyUpdateDefaults(pod([]), pod([{ name: 'a', image: { reference: 'x.io/d:1' } }]));
    assert.equal(podImageVolumes(updated)[0]?.pullPolicy, 'IfNotPresent');
    const always = applyPodDefaults(pod([{ name: 'a', image: { reference: 'x.io/d:1' } }]), {
      alwaysPullImages: true,
    });
    assert.equal(podImageVolumes(always)[0]?.pullPolicy, 'Always');
    const deploy = applyPodDefaults({
      kind: 'Deployment',
      spec: { template: { spec: { volumes: [{ name: 'a', image: { reference: 'x.io/d' } }] } } },
    });
    assert.equal(podImageVolumes({ spec: deploy.spec.template.spec })[0]?.pullPolicy, 'Always');
  });
});

describe('podImageVolumes', () => {
  test('decodes name, reference and policy in spec order, skipping other volume types', () => {
    assert.deepEqual(
      podImageVolumes(
        pod([
          { name: 'cfg', configMap: { name: 'x' } },
          { name: 'm', image: { reference: 'r:1', pullPolicy: 'IfNotPresent' } },
          { name: 'n', image: {} },
        ]),
      ),
      [
        { name: 'm', reference: 'r:1', pullPolicy: 'IfNotPresent' },
        { name: 'n', reference: '', pullPolicy: '' },
      ],
    );
    assert.deepEqual(podImageVolumes({}), []);
    assert.deepEqual(podImageVolumes(null), []);
    assert.deepEqual(podImageVolumes({ spec: { volumes: 'x' } }), []);
  });

  test('never throws and yields one entry per volume with an image object (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.anything(), fc.record({ name: fc.anything(), image: fc.object() }))),
        (vs) => {
          const out = podImageVolumes({ spec: { volumes: vs } });
          const want = vs.filter(
            (v) =>
              typeof v === 'object' &&
              v !== null &&
              typeof (v as { image?: unknown }).image === 'object' &&
              (v as { image?: unknown }).image !== null,
          ).length;
          assert.equal(out.length, want);
          for (const v of out) {
            assert.equal(typeof v.name, 'string');
            assert.equal(typeof v.reference, 'string');
          }
        },
      ),
      fuzzParams(),
    );
  });
});

describe('pod status with image volumes', () => {
  const agentPod: AgentPod = {
    key: 'default/p-n',
    manifestKey: 'p',
    name: 'p-n',
    namespace: 'default',
    uid: 'u1',
    file: '/m/p.yaml',
    hash: 'h',
    object: applyPodDefaults(pod([{ name: 'm', image: { reference: 'x.io/d:1' } }])),
  };

  test('a new pod view lists its image volumes waiting', () => {
    const view = newPodView(agentPod, 0);
    assert.deepEqual(view.volumes, initialVolumeStates(agentPod.object));
    assert.equal(view.volumes?.[0]?.pullPolicy, 'IfNotPresent');
    assert.equal(podStatus(view), 'Pending');
    assert.equal(newPodView({ ...agentPod, object: pod([]) }, 0).volumes, undefined);
  });

  test("a waiting volume's reason is the pod's status; all ready is ImagesReady", () => {
    const view: PodView = newPodView(agentPod, 0);
    view.syncs = 1;
    const c = view.containers[0];
    const v = view.volumes?.[0];
    assert.ok(c !== undefined && v !== undefined);
    c.state = 'Ready';
    v.reason = 'ErrImagePull';
    assert.equal(podStatus(view), 'ErrImagePull');
    v.reason = 'ImagePullBackOff';
    assert.equal(podStatus(view), 'ImagePullBackOff');
    v.state = 'Ready';
    v.reason = '';
    assert.equal(podStatus(view), 'ImagesReady');
  });
});

describe('describeImageVolumes', () => {
  const ready: ImageVolumeState = {
    name: 'bundle',
    reference: 'x.io/b:v1',
    pullPolicy: 'IfNotPresent',
    state: 'Ready',
    reason: '',
    message: '',
    imageRef: 'sha256:c',
    digest: 'sha256:d',
    kind: 'artifact',
    path: '/root/volumes/u1/bundle',
    files: ['a.yaml', 'b/c.bin'],
  };

  test('kubectl layout plus digest, path and files; a waiting one with reason and last error', () => {
    assert.equal(describeImageVolumes(undefined, 0), '');
    assert.equal(
      describeImageVolumes([ready], 0),
      [
        'Volumes:',
        '  bundle:',
        '    Type:       Image (a container image or OCI artifact)',
        '    Reference:  x.io/b:v1',
        '    PullPolicy: IfNotPresent',
        '    Digest:     sha256:d',
        '    State:      Materialized (artifact)',
        '    Path:       /root/volumes/u1/bundle (read-only)',
        '    Files:      a.yaml, b/c.bin',
        '',
      ].join('\n'),
    );
    const waiting = describeImageVolumes(
      [
        {
          ...ready,
          state: 'Waiting',
          reason: 'ErrImagePull',
          message: 'not found',
          digest: '',
          lastError: 'ErrImagePull: not found',
        },
      ],
      0,
    );
    assert.match(waiting, /Digest: +<none>\n/);
    assert.match(waiting, /Reason: +ErrImagePull\n/);
    assert.match(waiting, /Last Error: +ErrImagePull: not found\n/);
  });
});
