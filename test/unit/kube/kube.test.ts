/**
 * The pure parts of `src/kube`: kubectl-style targets (property: any input is a target, undefined or a
 * coded USAGE error), Status parsing (property: never throws), the one error translation table, the
 * pod references the secret manager watches, `Node.status.images` presence, the kubelet's missing-Secret
 * warning, and which API pods the agent works on.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import {
  kubeStatusError,
  missingSecretsMessage,
  nodeImagePresence,
  parseKubeTarget,
  parseStatus,
  podReferences,
  toKubeError,
} from '../../../src/kube/index.js';
import { apiPodManifest } from '../../../src/node/internal/cluster-pods.js';
import { fuzzParams, onlyCodedErrors } from '../../helpers/fuzz.js';

describe('kube targets', () => {
  test('pod/NAME, deployment/NAME, pods; anything else is an image (undefined)', () => {
    assert.deepEqual(parseKubeTarget('pod/web-7d9'), { kind: 'pod', name: 'web-7d9' });
    assert.deepEqual(parseKubeTarget('pods/web'), { kind: 'pod', name: 'web' });
    assert.deepEqual(parseKubeTarget('po/web'), { kind: 'pod', name: 'web' });
    assert.deepEqual(parseKubeTarget('deployment/web'), { kind: 'deployment', name: 'web' });
    assert.deepEqual(parseKubeTarget('deployments.apps/web'), { kind: 'deployment', name: 'web' });
    assert.deepEqual(parseKubeTarget('deploy/web'), { kind: 'deployment', name: 'web' });
    assert.deepEqual(parseKubeTarget('pods'), { kind: 'pods' });
    assert.equal(parseKubeTarget('nginx:1.25'), undefined);
    assert.equal(parseKubeTarget('registry.example/pod/web'), undefined);
    assert.throws(
      () => parseKubeTarget('pod/Web'),
      (e: unknown) => isKimgError(e, 'USAGE'),
    );
  });

  test('property: any string is a target, not one, or a coded USAGE error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `pod/${s}`),
          fc.string().map((s) => `deployment/${s}`),
        ),
        (s) => {
          const t = onlyCodedErrors(s, () => parseKubeTarget(s));
          if (t !== undefined && t.kind !== 'pods') assert.match(t.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
        },
      ),
      fuzzParams(),
    );
  });
});

describe('Status and error translation', () => {
  test('property: parseStatus never throws and keeps only typed fields', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.anything()), (x) => {
        const s = parseStatus(x);
        if (s !== undefined) {
          if (s.code !== undefined) assert.equal(typeof s.code, 'number');
          if (s.message !== undefined) assert.ok(s.message.length <= 1024);
        }
      }),
      fuzzParams(),
    );
  });

  test('status → code table; retryable only for unavailable and gone', () => {
    const req = { verb: 'get', resource: 'secrets', namespace: 'ns', name: 'x' };
    const table: [number, string | undefined, string, boolean][] = [
      [401, 'Unauthorized', 'KUBE_UNAUTHORIZED', false],
      [403, 'Forbidden', 'KUBE_FORBIDDEN', false],
      [404, 'NotFound', 'KUBE_NOT_FOUND', false],
      [410, 'Expired', 'KUBE_GONE', true],
      [200, 'Expired', 'KUBE_GONE', true],
      [409, 'AlreadyExists', 'KUBE_API_ERROR', false],
      [422, 'Invalid', 'KUBE_API_ERROR', false],
      [429, 'TooManyRequests', 'KUBE_UNAVAILABLE', true],
      [503, 'ServiceUnavailable', 'KUBE_UNAVAILABLE', true],
    ];
    for (const [status, reason, code, retryable] of table) {
      const e = kubeStatusError(
        status,
        { code: status, ...(reason !== undefined ? { reason } : {}), message: 'm' },
        req,
      );
      assert.equal(e.code, code, `${status} ${reason ?? ''}`);
      assert.equal(e.retryable, retryable);
      assert.deepEqual(e.details.kube, { ...req, ...(reason !== undefined ? { reason } : {}) });
    }
    const forbidden = kubeStatusError(403, undefined, req);
    assert.match(
      forbidden.message,
      /^RBAC denies get secrets "x" in namespace "ns": grant verb "get" on resource "secrets"/,
    );
  });

  test('library exceptions: ApiException body, watch statusCode, network errors; never the exception text', () => {
    const apiEx = Object.assign(new Error('HTTP-Code: 404\nHeaders: {"authorization":"Bearer SECRET"}'), {
      code: 404,
      body: JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound', message: 'pods "a" not found' }),
    });
    const e = toKubeError(apiEx, { verb: 'get', resource: 'pods', namespace: 'd', name: 'a' }, 'https://api');
    assert.equal(e.code, 'KUBE_NOT_FOUND');
    assert.doesNotMatch(e.message + JSON.stringify(e.details) + JSON.stringify(e.cause), /SECRET/);
    const watch = Object.assign(new Error('Forbidden'), { statusCode: 403 });
    assert.equal(
      toKubeError(watch, { verb: 'watch', resource: 'pods' }, 'https://api').code,
      'KUBE_FORBIDDEN',
    );
    const net = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const n = toKubeError(net, { verb: 'list', resource: 'pods' }, 'https://api');
    assert.equal(n.code, 'KUBE_UNAVAILABLE');
    assert.ok(n.retryable);
  });
});

describe('pod references and presence', () => {
  test('podReferences: pull Secret names (deduplicated, empty skipped), the ServiceAccount, the namespace', () => {
    assert.deepEqual(
      podReferences({
        metadata: { namespace: 'a', uid: 'u' },
        spec: {
          imagePullSecrets: [{ name: 'x' }, { name: '' }, {}, { name: 'x' }, { name: 'y' }],
          serviceAccountName: 'sa',
        },
      }),
      { namespace: 'a', uid: 'u', secrets: ['x', 'y'], serviceAccount: 'sa' },
    );
    assert.deepEqual(podReferences({ metadata: {}, spec: { serviceAccount: 'legacy' } }), {
      namespace: 'default',
      uid: '',
      secrets: [],
      serviceAccount: 'legacy',
    });
    assert.deepEqual(podReferences({}), {
      namespace: 'default',
      uid: '',
      secrets: [],
      serviceAccount: 'default',
    });
  });

  test('Node.status.images: matched by any listed name; absent otherwise', () => {
    const node = {
      status: {
        images: [
          { names: ['docker.io/library/nginx@sha256:abc', 'docker.io/library/nginx:1.25'], sizeBytes: 7 },
          { names: 'bogus' },
        ],
      },
    };
    assert.deepEqual(nodeImagePresence(node, ['docker.io/library/nginx:1.25']), {
      present: true,
      names: ['docker.io/library/nginx@sha256:abc', 'docker.io/library/nginx:1.25'],
      sizeBytes: 7,
    });
    assert.equal(nodeImagePresence(node, ['nginx:1.25']).present, false);
    assert.equal(nodeImagePresence({}, ['x']).present, false);
  });

  test("the kubelet's missing-Secret warning text", () => {
    assert.equal(
      missingSecretsMessage(['a', 'b']),
      'Unable to retrieve some image pull secrets (a, b); attempting to pull the image may not succeed.',
    );
  });

  test('the agent works on pods that are neither finished nor being deleted; status changes keep the hash', () => {
    const pod = {
      metadata: { name: 'p', namespace: 'n', uid: 'u' },
      spec: { containers: [{ name: 'c', image: 'x' }] },
    };
    const m = apiPodManifest(pod)!;
    assert.equal(m.key, 'n/p');
    assert.equal(
      apiPodManifest({ ...pod, status: { phase: 'Running', containerStatuses: [] } })!.hash,
      m.hash,
    );
    assert.notEqual(
      apiPodManifest({ ...pod, spec: { containers: [{ name: 'c', image: 'y' }] } })!.hash,
      m.hash,
    );
    assert.equal(apiPodManifest({ ...pod, status: { phase: 'Succeeded' } }), undefined);
    assert.equal(apiPodManifest({ ...pod, status: { phase: 'Failed' } }), undefined);
    assert.equal(
      apiPodManifest({ ...pod, metadata: { ...pod.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } }),
      undefined,
    );
  });
});
