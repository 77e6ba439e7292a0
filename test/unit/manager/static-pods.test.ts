/**
 * The static-pod decision (`isStaticPod`: declared, or the file is `staticPodPath` or beneath it) and
 * the kimg extensions a static pod uses (`staticPodExtensions`), shared by `kimg explain` and the node
 * agent's pod views.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isStaticPod, staticPodExtensions } from '../../../src/manager/index.js';

describe('isStaticPod', () => {
  const cases: [string, Parameters<typeof isStaticPod>[0], boolean][] = [
    ['beneath the directory', { file: '/etc/k/manifests/a.yaml', staticPodPath: '/etc/k/manifests' }, true],
    ['in a subdirectory', { file: '/etc/k/manifests/x/a.yaml', staticPodPath: '/etc/k/manifests/' }, true],
    ['staticPodPath is the file', { file: '/etc/k/pod.yaml', staticPodPath: '/etc/k/pod.yaml' }, true],
    [
      'a sibling with the same prefix',
      { file: '/etc/k/manifests2/a.yaml', staticPodPath: '/etc/k/manifests' },
      false,
    ],
    ['outside via ..', { file: '/etc/k/manifests/../a.yaml', staticPodPath: '/etc/k/manifests' }, false],
    ['no staticPodPath', { file: '/etc/k/manifests/a.yaml', staticPodPath: '' }, false],
    ['unset staticPodPath', { file: '/etc/k/manifests/a.yaml' }, false],
    ['declared', { file: '/tmp/a.yaml', declared: true }, true],
    ['relative paths resolve alike', { file: 'manifests/a.yaml', staticPodPath: './manifests' }, true],
  ];
  for (const [name, source, want] of cases) test(name, () => assert.equal(isStaticPod(source), want));
});

describe('staticPodExtensions', () => {
  test('pull Secrets and a ServiceAccount other than default are extensions; nothing else is', () => {
    assert.deepEqual(
      staticPodExtensions({
        spec: { imagePullSecrets: [{ name: 'a' }, { name: 'b' }, {}], serviceAccountName: 'builder' },
      }),
      [
        'imagePullSecrets a, b resolved from the secrets directory (kimg extension: the kubelet refuses static pods that reference Secrets)',
        'ServiceAccount builder resolved from the secrets directory (kimg extension: the kubelet refuses static pods that reference ServiceAccounts)',
      ],
    );
    assert.deepEqual(staticPodExtensions({ spec: { serviceAccountName: 'default' } }), []);
    assert.deepEqual(staticPodExtensions({ spec: { serviceAccount: 'legacy' } }).length, 1);
    assert.deepEqual(staticPodExtensions({}), []);
  });
});
