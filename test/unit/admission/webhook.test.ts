import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import jsonpatch from 'fast-json-patch';
import {
  handleAdmissionReview,
  parseAdmissionPolicy,
  parseListenAddress,
  ResolutionCache,
  DEFAULT_ADMISSION_POLICY,
  type AdmissionPolicy,
  type AdmissionReview,
  type ImageResolver,
} from '../../../src/admission/index.js';
import { KimgError, isKimgError } from '../../../src/errors/index.js';

const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;
const TAGS: Record<string, string> = { 'nginx:1.27': D1, 'busybox:1.36': D2, nginx: D2 };

const resolve: ImageResolver = async (image) => {
  const d = TAGS[image];
  if (d === undefined) throw new KimgError('NOT_FOUND', `manifest for ${JSON.stringify(image)} not found`);
  return d;
};

const BOTH: AdmissionPolicy = { ...DEFAULT_ADMISSION_POLICY, alwaysPullImages: true };

function review(request: Record<string, unknown>): AdmissionReview {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u-1', operation: 'CREATE', namespace: 'default', ...request } as never,
  };
}

function pod(containers: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers, ...extra } };
}

async function admit(r: AdmissionReview, policy = BOTH, resolver = resolve) {
  const out = await handleAdmissionReview(r, { policy, resolve: resolver });
  assert.equal(out.apiVersion, 'admission.k8s.io/v1');
  assert.equal(out.kind, 'AdmissionReview');
  const res = out.response;
  assert.ok(res);
  assert.equal(res.uid, r.request?.uid);
  const ops = res.patch === undefined ? [] : JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8'));
  if (res.patch !== undefined) assert.equal(res.patchType, 'JSONPatch');
  const patched =
    r.request?.object === undefined
      ? undefined
      : jsonpatch.applyPatch(structuredClone(r.request.object), ops, true, false).newDocument;
  return { res, ops, patched: patched as any };
}

const PODS = { group: '', version: 'v1', resource: 'pods' };

describe('handleAdmissionReview', () => {
  test('Pod CREATE: pins every image and sets Always on init, regular and ephemeral containers', async () => {
    const object = pod(
      [
        { name: 'a', image: 'nginx:1.27' },
        { name: 'b', image: 'busybox:1.36', imagePullPolicy: 'IfNotPresent' },
      ],
      {
        initContainers: [{ name: 'i', image: 'nginx' }],
        ephemeralContainers: [{ name: 'e', image: `nginx@${D2}` }],
      },
    );
    const { res, ops, patched } = await admit(review({ resource: PODS, kind: { kind: 'Pod' }, object }));
    assert.equal(res.allowed, true);
    assert.deepEqual(patched.spec.initContainers, [
      { name: 'i', image: `nginx@${D2}`, imagePullPolicy: 'Always' },
    ]);
    assert.deepEqual(patched.spec.containers, [
      { name: 'a', image: `nginx:1.27@${D1}`, imagePullPolicy: 'Always' },
      { name: 'b', image: `busybox:1.36@${D2}`, imagePullPolicy: 'Always' },
    ]);
    assert.deepEqual(patched.spec.ephemeralContainers, [
      { name: 'e', image: `nginx@${D2}`, imagePullPolicy: 'Always' },
    ]);
    assert.ok(ops.some((o: any) => o.op === 'replace' && o.path === '/spec/containers/0/image'));
  });

  test('Deployment CREATE: the template is pinned; AlwaysPullImages (pods only) leaves it alone', async () => {
    const object = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd' },
      spec: { template: { spec: { containers: [{ name: 'a', image: 'nginx:1.27' }] } } },
    };
    const { patched } = await admit(
      review({ resource: { group: 'apps', version: 'v1', resource: 'deployments' }, object }),
    );
    assert.deepEqual(patched.spec.template.spec.containers, [{ name: 'a', image: `nginx:1.27@${D1}` }]);
  });

  test('CronJob with init and ephemeral containers, dropTag', async () => {
    const object = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      spec: {
        jobTemplate: {
          spec: {
            template: {
              spec: {
                initContainers: [{ name: 'i', image: 'busybox:1.36' }],
                containers: [{ name: 'c', image: 'nginx:1.27' }],
                ephemeralContainers: [{ name: 'e', image: 'busybox:1.36' }],
              },
            },
          },
        },
      },
    };
    const { patched } = await admit(
      review({ resource: { group: 'batch', version: 'v1', resource: 'cronjobs' }, object }),
      { ...BOTH, dropTag: true },
    );
    const spec = patched.spec.jobTemplate.spec.template.spec;
    assert.equal(spec.initContainers[0].image, `busybox@${D2}`);
    assert.equal(spec.containers[0].image, `nginx@${D1}`);
    assert.equal(spec.ephemeralContainers[0].image, `busybox@${D2}`);
    assert.equal(spec.containers[0].imagePullPolicy, undefined);
  });

  test('UPDATE without a new image: nothing (AlwaysPullImages skips it, old images are not re-pinned)', async () => {
    const old = pod([{ name: 'a', image: 'nginx:1.27', imagePullPolicy: 'IfNotPresent' }]);
    const { res, ops } = await admit(
      review({ operation: 'UPDATE', resource: PODS, object: structuredClone(old), oldObject: old }),
    );
    assert.equal(res.allowed, true);
    assert.deepEqual(ops, []);
    assert.equal(res.patch, undefined);
  });

  test('UPDATE adding an image: Always everywhere, only the new image pinned', async () => {
    const old = pod([{ name: 'a', image: 'nginx:1.27' }]);
    const object = pod([
      { name: 'a', image: 'nginx:1.27' },
      { name: 'b', image: 'busybox:1.36' },
    ]);
    const { patched } = await admit(review({ operation: 'UPDATE', resource: PODS, object, oldObject: old }));
    assert.deepEqual(patched.spec.containers, [
      { name: 'a', image: 'nginx:1.27', imagePullPolicy: 'Always' },
      { name: 'b', image: `busybox:1.36@${D2}`, imagePullPolicy: 'Always' },
    ]);
  });

  test('subresource requests (pods/ephemeralcontainers) pass untouched', async () => {
    const object = pod([{ name: 'a', image: 'nginx:1.27' }], {
      ephemeralContainers: [{ name: 'e', image: 'busybox:1.36' }],
    });
    const { res, ops } = await admit(
      review({
        operation: 'UPDATE',
        resource: PODS,
        subResource: 'ephemeralcontainers',
        object,
        oldObject: pod([{ name: 'a', image: 'nginx:1.27' }]),
      }),
    );
    assert.equal(res.allowed, true);
    assert.deepEqual(ops, []);
  });

  test('DELETE and unrelated resources pass untouched', async () => {
    assert.deepEqual(
      (await admit(review({ operation: 'DELETE', resource: PODS, oldObject: pod([]) }))).ops,
      [],
    );
    const cm = { kind: 'ConfigMap', spec: { containers: [{ image: 'nginx:1.27' }] } };
    assert.deepEqual(
      (await admit(review({ resource: { group: '', version: 'v1', resource: 'configmaps' }, object: cm })))
        .ops,
      [],
    );
  });

  test('a pods request whose object is not a Pod is BadRequest (AlwaysPullImages)', async () => {
    const { res } = await admit(review({ resource: PODS, object: { kind: 'Service', spec: {} } }));
    assert.equal(res.allowed, false);
    assert.equal(res.status?.code, 400);
    assert.equal(res.status?.message, 'Resource was marked with kind Pod but was unable to be converted');
  });

  test('failurePolicy Fail denies with every unresolvable image named', async () => {
    const object = pod([
      { name: 'a', image: 'nginx:nope' },
      { name: 'b', image: 'nginx:1.27' },
      { name: 'c', image: 'ghost:1' },
    ]);
    const { res } = await admit(review({ resource: PODS, object }));
    assert.equal(res.allowed, false);
    assert.equal(res.status?.code, 403);
    assert.match(res.status?.message ?? '', /spec\.containers\[0\]\.image "nginx:nope"/);
    assert.match(res.status?.message ?? '', /spec\.containers\[2\]\.image "ghost:1"/);
    assert.equal(res.patch, undefined);
  });

  test('failurePolicy Ignore admits without pins (AlwaysPullImages still applied) and warns', async () => {
    const object = pod([
      { name: 'a', image: 'nginx:nope' },
      { name: 'b', image: 'nginx:1.27' },
    ]);
    const { res, patched } = await admit(review({ resource: PODS, object }), {
      ...BOTH,
      failurePolicy: 'Ignore',
    });
    assert.equal(res.allowed, true);
    assert.deepEqual(patched.spec.containers, [
      { name: 'a', image: 'nginx:nope', imagePullPolicy: 'Always' },
      { name: 'b', image: 'nginx:1.27', imagePullPolicy: 'Always' },
    ]);
    assert.match(res.warnings?.[0] ?? '', /not pinned/);
  });

  test('dryRun: same answer, the cache is not written', async () => {
    let calls = 0;
    const cache = new ResolutionCache(async (i, o) => (calls++, resolve(i, o)), { ttlMs: 60_000 });
    const object = pod([{ name: 'a', image: 'nginx:1.27' }]);
    const dry = await admit(review({ resource: PODS, object, dryRun: true }), BOTH, cache.resolver);
    assert.equal(dry.patched.spec.containers[0].image, `nginx:1.27@${D1}`);
    assert.equal(cache.size, 0);
    const real = await admit(review({ resource: PODS, object }), BOTH, cache.resolver);
    assert.deepEqual(real.ops, dry.ops);
    assert.equal(cache.size, 1);
    assert.equal(calls, 2);
  });

  test('policy switches: pin only, Always only, excluded namespace', async () => {
    const object = pod([{ name: 'a', image: 'nginx:1.27' }]);
    const pinOnly = await admit(review({ resource: PODS, object }), DEFAULT_ADMISSION_POLICY);
    assert.deepEqual(pinOnly.patched.spec.containers, [{ name: 'a', image: `nginx:1.27@${D1}` }]);
    const alwaysOnly = await admit(review({ resource: PODS, object }), { ...BOTH, pinDigests: false });
    assert.deepEqual(alwaysOnly.patched.spec.containers, [
      { name: 'a', image: 'nginx:1.27', imagePullPolicy: 'Always' },
    ]);
    const excluded = await admit(review({ resource: PODS, object, namespace: 'kube-system' }), {
      ...BOTH,
      excludeNamespaces: ['kube-system'],
    });
    assert.deepEqual(excluded.ops, []);
  });

  test('a body that is not a v1 AdmissionReview is INVALID_ARGUMENT', async () => {
    for (const bad of [
      null,
      {},
      { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } },
      { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' },
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: '', operation: 'CREATE', resource: PODS },
      },
    ]) {
      await assert.rejects(handleAdmissionReview(bad, { policy: BOTH, resolve }), (e: unknown) =>
        isKimgError(e, 'INVALID_ARGUMENT'),
      );
    }
  });
});

describe('admission policy file', () => {
  test('defaults, all keys, lowercase failure policy', () => {
    assert.deepEqual(parseAdmissionPolicy(''), DEFAULT_ADMISSION_POLICY);
    assert.deepEqual(
      parseAdmissionPolicy(
        '# policy\npinDigests: false\nalwaysPullImages: true\nfailurePolicy: ignore\ndropTag: true\ncacheTTL: 90s\nexcludeNamespaces: [kube-system]\n',
      ),
      {
        pinDigests: false,
        alwaysPullImages: true,
        failurePolicy: 'Ignore',
        dropTag: true,
        cacheTTLMs: 90_000,
        excludeNamespaces: ['kube-system'],
      },
    );
  });

  test('every problem is listed in one CONFIG_INVALID', () => {
    assert.throws(
      () =>
        parseAdmissionPolicy(
          'pinDigests: yes please\nfailurePolicy: Maybe\ncacheTTL: soon\nbogus: 1\nexcludeNamespaces: 3\n',
          'p.yaml',
        ),
      (e: unknown) => {
        assert.ok(isKimgError(e, 'CONFIG_INVALID'));
        for (const s of ['p.yaml', 'pinDigests', 'failurePolicy', 'cacheTTL', '"bogus"', 'excludeNamespaces'])
          assert.ok(e.message.includes(s), `${s} in ${e.message}`);
        return true;
      },
    );
    assert.throws(
      () => parseAdmissionPolicy('a: [', 'p.yaml'),
      (e: unknown) => isKimgError(e, 'CONFIG_INVALID'),
    );
    assert.throws(
      () => parseAdmissionPolicy('- 1', 'p.yaml'),
      (e: unknown) => isKimgError(e, 'CONFIG_INVALID'),
    );
  });

  test('listen addresses', () => {
    assert.deepEqual(parseListenAddress(':8443'), { host: undefined, port: 8443 });
    assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListenAddress('[::1]:9'), { host: '::1', port: 9 });
    assert.deepEqual(parseListenAddress('8443'), { host: undefined, port: 8443 });
    for (const bad of ['', 'x', ':99999', 'a:b:1'])
      assert.throws(
        () => parseListenAddress(bad),
        (e: unknown) => isKimgError(e, 'USAGE'),
      );
  });
});
