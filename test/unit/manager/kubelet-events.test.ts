/**
 * The events the kubelet emits around image pulls that are not the image manager's own:
 * - Warning `FailedToRetrieveImagePullSecret` on the pod, once per sync (kubelet `getPullSecretsForPod`),
 *   for a missing, foreign-namespace or undecodable pull Secret;
 * - the runtime's container event Warning `Failed` `Error: <reason>` after a failed ensure;
 * - an undecodable pull Secret fails only its own pod's pulls (the kubelet's keyring error).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  PodCredentials,
  failedPullSecretNames,
  parseKubernetesObjects,
  resolvePodPullSecrets,
} from '../../../src/credentials/index.js';
import { ImageManager, type PodManifest } from '../../../src/manager/index.js';
import { MemoryEventRecorder } from '../../../src/testing/index.js';
import { FakeClock } from '../../helpers/clock.js';
import { FakeImageService } from './fake-image-service.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function secret(name: string, ns: string, payload: string): string {
  return [
    'apiVersion: v1',
    'kind: Secret',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${ns}`,
    'type: kubernetes.io/dockerconfigjson',
    'data:',
    `  .dockerconfigjson: ${b64(payload)}`,
  ].join('\n');
}

const GOOD = JSON.stringify({ auths: { 'reg.io': { auth: b64('u:p') } } });

function podManifest(name: string, uid: string, secrets: string[]): PodManifest {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'team', uid },
    spec: {
      imagePullSecrets: secrets.map((n) => ({ name: n })),
      containers: [{ name: 'app', image: 'reg.io/app:1', imagePullPolicy: 'IfNotPresent' }],
    },
  } as PodManifest;
}

describe('kubelet events around pulls', () => {
  test('FailedToRetrieveImagePullSecret: once per sync, naming the Secrets; an undecodable Secret fails only its pod', async () => {
    const objects = parseKubernetesObjects(
      [
        secret('good', 'team', GOOD),
        secret('bad', 'team', '{"auths": {"reg.io": {"auth": 5}}}'),
        secret('elsewhere', 'other', GOOD),
      ].join('\n---\n'),
    );
    const creds = await PodCredentials.open({ nodeDockerConfig: false, objects, env: {} });
    const clock = new FakeClock(1_000_000);
    const service = new FakeImageService(clock);
    const recorder = new MemoryEventRecorder();
    const manager = new ImageManager({
      imageService: service,
      clock,
      recorder,
      credentials: creds.resolver(),
    });
    const broken = podManifest('broken', 'uid-broken', ['bad', 'missing', 'elsewhere']);
    const fine = podManifest('fine', 'uid-fine', ['good', 'missing']);
    const results = [];
    for (const m of [broken, fine]) {
      const secrets = resolvePodPullSecrets(m as Record<string, unknown>, objects);
      creds.setPodSecrets(String(m.metadata?.uid), secrets);
      results.push(await manager.ensurePodImages(m, { failedPullSecrets: failedPullSecretNames(secrets) }));
    }
    const [b, f] = results;
    assert.equal(b!.ok, false);
    assert.equal(b!.results[0]!.result?.error?.code, 'SECRET_INVALID');
    assert.equal(b!.results[0]!.result?.reason, 'ErrImagePull');
    assert.equal(f!.ok, true, 'the other pod pulls');
    const podEvents = (uid: string) =>
      recorder.events
        .filter((e) => e.object.pod.uid === uid)
        .map((e) => [e.type, e.reason, e.object.container, e.message]);
    assert.deepEqual(podEvents('uid-broken'), [
      [
        'Warning',
        'FailedToRetrieveImagePullSecret',
        '',
        'Unable to retrieve some image pull secrets (bad, missing, elsewhere); attempting to pull the image may not succeed.',
      ],
      ['Warning', 'Failed', 'app', 'Error: ErrImagePull'],
    ]);
    assert.deepEqual(podEvents('uid-fine').slice(0, 2), [
      [
        'Warning',
        'FailedToRetrieveImagePullSecret',
        '',
        'Unable to retrieve some image pull secrets (missing); attempting to pull the image may not succeed.',
      ],
      ['Normal', 'Pulling', 'app', 'Pulling image "reg.io/app:1"'],
    ]);
    // No Secret problem: no event.
    const before = recorder.events.length;
    await manager.ensurePodImages(podManifest('ok', 'uid-ok', []), { failedPullSecrets: [] });
    assert.ok(!recorder.events.slice(before).some((e) => e.reason === 'FailedToRetrieveImagePullSecret'));
  });

  test('the container events: `Error: ErrImagePull` after the pull failure, `Error: ImagePullBackOff` in back-off', async () => {
    const clock = new FakeClock(1_000_000);
    const service = new FakeImageService(clock);
    const { KimgError } = await import('../../../src/errors/index.js');
    service.outcomes = [new KimgError('NOT_FOUND', 'manifest unknown')];
    const manager = new ImageManager({ imageService: service, clock });
    const pod = { name: 'p', namespace: 'default', uid: 'u1' };
    const container = { name: 'app', image: 'reg.io/app:1', imagePullPolicy: 'Always' };
    const first = await manager.ensureImageExists({ pod, container });
    const second = await manager.ensureImageExists({ pod, container });
    assert.deepEqual(
      first.events.map((e) => [e.type, e.reason, e.message]),
      [
        ['Normal', 'Pulling', 'Pulling image "reg.io/app:1"'],
        ['Warning', 'Failed', 'Failed to pull image "reg.io/app:1": manifest unknown'],
        ['Warning', 'Failed', 'Error: ErrImagePull'],
      ],
    );
    assert.deepEqual(
      second.events.map((e) => [e.type, e.reason, e.message]),
      [
        ['Normal', 'BackOff', 'Back-off pulling image "reg.io/app:1"'],
        ['Warning', 'Failed', 'Error: ImagePullBackOff'],
      ],
    );
  });
});
