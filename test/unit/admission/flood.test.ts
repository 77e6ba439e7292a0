/**
 * Bounded work per AdmissionReview: a pod naming 10,000 distinct images is decided by its first
 * failure. Resolutions run at bounded concurrency and stop there, so the registry sees a handful of
 * requests, not 10,000.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_ADMISSION_POLICY,
  handleAdmissionReview,
  pinObjects,
  registryResolver,
  type AdmissionReview,
} from '../../../src/admission/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { startFaultServer, type FaultServer } from '../../helpers/fault-server.js';

let fault: FaultServer;
let client: RegistryClient;
before(async () => {
  fault = await startFaultServer();
  // Every manifest is unknown: the first answer already decides the review.
  client = new RegistryClient({ plainHttp: [fault.host] });
});
after(async () => {
  await client.close();
  await fault.close();
});

const manifestRequests = (): number => fault.requests.filter((r) => r.path.includes('/manifests/')).length;

function review(images: string[]): AdmissionReview {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'flood',
      operation: 'CREATE',
      namespace: 'default',
      resource: { group: '', version: 'v1', resource: 'pods' },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'flood' },
        spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
      },
    } as never,
  };
}

test('10,000 distinct images: refused after a bounded number of registry requests', async () => {
  const images = Array.from({ length: 10_000 }, (_, i) => `${fault.host}/app:t${i}`);
  const before = manifestRequests();
  const out = await handleAdmissionReview(review(images), {
    policy: { ...DEFAULT_ADMISSION_POLICY, pinDigests: true, failurePolicy: 'Fail' },
    resolve: registryResolver({ client }),
  });
  assert.equal(out.response?.allowed, false);
  assert.match(out.response?.status?.message ?? '', /cannot pin images to digests/);
  const made = manifestRequests() - before;
  // 8 resolutions at once, each a HEAD then a GET at most, plus the ones already in flight.
  assert.ok(made <= 32, `${made} manifest requests for one review`);
});

test('with failurePolicy Ignore the review is allowed unpinned, still without 10,000 requests', async () => {
  const images = Array.from({ length: 10_000 }, (_, i) => `${fault.host}/other:t${i}`);
  const before = manifestRequests();
  const out = await handleAdmissionReview(review(images), {
    policy: { ...DEFAULT_ADMISSION_POLICY, pinDigests: true, failurePolicy: 'Ignore' },
    resolve: registryResolver({ client }),
  });
  assert.equal(out.response?.allowed, true);
  assert.equal(out.response?.patch, undefined);
  assert.ok(manifestRequests() - before <= 32);
});

test('pin (not the webhook) still resolves every image and reports each failure', async () => {
  const images = Array.from({ length: 20 }, (_, i) => `${fault.host}/pin:t${i}`);
  const r = await pinObjects(
    [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p' },
        spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
      },
    ],
    { resolve: registryResolver({ client }) },
  );
  assert.equal(r.errors.length, 20);
});
