/**
 * `PodCredentials`: the per-pod lookup finds a pod's Secrets by uid (the image manager's resolver is
 * called with the uid only), problems reach the callback, and the ServiceAccount lookup of the plugins'
 * token mode reads the objects current at the lookup.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  PodCredentials,
  parseKubernetesObjects,
  resolvePodPullSecrets,
  serviceAccountFromObjects,
} from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';

const AUTH = Buffer.from('alice:pw').toString('base64');
const DOCKERCONFIG = Buffer.from(JSON.stringify({ auths: { 'r.io': { auth: AUTH } } })).toString('base64');

const OBJECTS = parseKubernetesObjects(`
apiVersion: v1
kind: Secret
metadata: {name: regcred, namespace: default}
type: kubernetes.io/dockerconfigjson
data: {.dockerconfigjson: ${DOCKERCONFIG}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, uid: uid-1}
spec:
  imagePullSecrets: [{name: regcred}, {name: missing}]
  containers: [{name: app, image: r.io/app:1}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: default, uid: sa-1, annotations: {a: b}}
`);

describe('PodCredentials', () => {
  test('the resolver finds a pod Secrets by uid; problems go to the callback', async () => {
    const creds = await PodCredentials.open({ nodeDockerConfig: false, objects: OBJECTS, env: {} });
    const pod = OBJECTS.find((o) => o.kind === 'Pod')!;
    creds.setPodSecrets('uid-1', resolvePodPullSecrets(pod, OBJECTS));
    const problems: string[] = [];
    const resolve = creds.resolver((p) => problems.push(p.message));
    const found = await resolve('r.io/app:1', { namespace: 'default', name: 'web', uid: 'uid-1' });
    assert.deepEqual(
      found.map((c) => [c.key, c.auth.username, c.source.kind, c.source.name]),
      [['r.io', 'alice', 'secret', 'regcred']],
    );
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /missing/);
    assert.deepEqual(await resolve('r.io/app:1', { namespace: 'default', name: 'other', uid: 'uid-2' }), []);
    creds.forgetPod('uid-1');
    assert.deepEqual(await resolve('r.io/app:1', { namespace: 'default', name: 'web', uid: 'uid-1' }), []);
  });

  test('a lookup without a pod uses the Secrets it is given', async () => {
    const creds = await PodCredentials.open({ nodeDockerConfig: false, env: {} });
    const secrets = resolvePodPullSecrets(
      OBJECTS.find((o) => o.kind === 'Pod')!,
      OBJECTS,
    );
    const lookup = await creds.lookup('r.io/app:1', undefined, { secrets, explain: true });
    assert.deepEqual(
      lookup.matches.map((m) => m.key),
      ['r.io'],
    );
  });

  test('the ServiceAccount lookup reads the current objects', async () => {
    let objects = OBJECTS;
    const lookupSa = serviceAccountFromObjects(() => objects, 'the secrets directory');
    assert.deepEqual(await lookupSa('default', 'builder'), { uid: 'sa-1', annotations: { a: 'b' } });
    objects = [];
    await assert.rejects(
      lookupSa('default', 'builder'),
      (e: unknown) =>
        isKimgError(e, 'SECRET_NOT_FOUND') &&
        e.message === 'ServiceAccount default/builder is not in the secrets directory',
    );
  });
});
