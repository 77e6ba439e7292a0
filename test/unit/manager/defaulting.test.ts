import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  alwaysPullImagesAdmit,
  alwaysPullImagesValidate,
  applyPodDefaults,
  applyUpdateDefaults,
  defaultPullPolicy,
  type AdmissionRequest,
  type AdmissionResult,
} from '../../../src/manager/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

/** The loose shape of the Kubernetes objects these tests build. */
interface C {
  name?: string;
  image?: string;
  imagePullPolicy?: string;
}
interface Spec {
  initContainers?: C[];
  containers?: C[];
  ephemeralContainers?: C[];
}
interface K8s {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  spec?: Spec & {
    schedule?: string;
    template?: { spec: Spec };
    jobTemplate?: { spec: { template: { spec: Spec } } };
  };
  template?: { spec: Spec };
  items?: K8s[];
}

const D = 'sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07';

describe('defaultPullPolicy (SetDefaults_Container)', () => {
  const table: Array<[string, 'Always' | 'IfNotPresent']> = [
    // The Images page's example names.
    ['busybox', 'Always'],
    ['busybox:1.32.0', 'IfNotPresent'],
    ['registry.k8s.io/pause:latest', 'Always'],
    [`registry.k8s.io/pause@${D}`, 'IfNotPresent'],
    [`registry.k8s.io/pause:3.5@${D}`, 'IfNotPresent'],
    ['janedoe/awesomeapp:v1', 'IfNotPresent'],
    // kubernetes/kubernetes pkg/apis/core/v1/defaults.go (docs/design/upstream-parity.md).
    ['nginx', 'Always'],
    ['nginx:latest', 'Always'],
    [`nginx:latest@${D}`, 'Always'],
    ['nginx:1.25', 'IfNotPresent'],
    [`nginx@${D}`, 'IfNotPresent'],
    ['nginx:Latest', 'IfNotPresent'],
    ['nginx:LATEST', 'IfNotPresent'],
    ['localhost:5000/app', 'Always'],
    ['docker.io/library/nginx:latest', 'Always'],
    // Unparsable images.
    ['', 'IfNotPresent'],
    ['Nginx', 'IfNotPresent'],
    ['nginx:', 'IfNotPresent'],
    ['nginx@sha256:abc', 'IfNotPresent'],
    ['-nginx:latest', 'IfNotPresent'],
  ];
  for (const [image, want] of table)
    test(`${JSON.stringify(image)} → ${want}`, () => assert.equal(defaultPullPolicy(image), want));

  test('never throws, always one of the two defaults', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => {
        const p = defaultPullPolicy(s);
        assert.ok(p === 'Always' || p === 'IfNotPresent');
      }),
      fuzzParams(),
    );
  });
});

const containers = () => ({
  initContainers: [{ name: 'init', image: 'busybox' }],
  containers: [
    { name: 'app', image: 'nginx:1.25' },
    { name: 'side', image: 'nginx:latest', imagePullPolicy: 'Never' },
    { name: 'edge', image: `nginx@${D}`, imagePullPolicy: '' },
  ],
  ephemeralContainers: [{ name: 'debug', image: 'busybox:latest' }],
});
const policies = (spec: Spec | undefined) => ({
  init: spec?.initContainers?.map((c) => c.imagePullPolicy),
  app: spec?.containers?.map((c) => c.imagePullPolicy),
  eph: spec?.ephemeralContainers?.map((c) => c.imagePullPolicy),
});
const EXPECTED = { init: ['Always'], app: ['IfNotPresent', 'Never', 'IfNotPresent'], eph: ['Always'] };

describe('applyPodDefaults over workload kinds', () => {
  const cases: Array<[string, () => K8s, (o: K8s) => Spec | undefined]> = [
    [
      'Pod',
      () => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: containers() }),
      (o) => o.spec,
    ],
    ['bare pod (no kind)', () => ({ spec: containers() }), (o) => o.spec],
    [
      'PodTemplate',
      () => ({ kind: 'PodTemplate', template: { spec: containers() } }),
      (o) => o.template?.spec,
    ],
    ...(
      ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'ReplicationController'] as const
    ).map((kind): [string, () => K8s, (o: K8s) => Spec | undefined] => [
      kind,
      () => ({ kind, spec: { template: { spec: containers() } } }),
      (o) => o.spec?.template?.spec,
    ]),
    [
      'CronJob',
      () => ({
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        spec: { schedule: '* * * * *', jobTemplate: { spec: { template: { spec: containers() } } } },
      }),
      (o) => o.spec?.jobTemplate?.spec.template.spec,
    ],
  ];
  for (const [name, make, specOf] of cases) {
    test(name, () => {
      const input = make();
      const before = structuredClone(input);
      const out = applyPodDefaults(input);
      assert.deepEqual(policies(specOf(out)), EXPECTED);
      assert.deepEqual(input, before, 'the input is not modified');
    });
  }

  test('a List of workloads', () => {
    const list: K8s = {
      kind: 'List',
      items: [
        { kind: 'Pod', spec: containers() },
        { kind: 'Deployment', spec: { template: { spec: containers() } } },
      ],
    };
    const out = applyPodDefaults(list);
    assert.deepEqual(policies(out.items?.[0]?.spec), EXPECTED);
    assert.deepEqual(policies(out.items?.[1]?.spec?.template?.spec), EXPECTED);
  });

  test('other kinds and malformed objects are returned unchanged', () => {
    const svc = { kind: 'Service', spec: { containers: [{ image: 'x' }] } };
    assert.deepEqual(applyPodDefaults(svc), svc);
    for (const v of [
      null,
      42,
      'pod',
      [],
      { kind: 'Pod' },
      { kind: 'Pod', spec: { containers: 'no' } },
      { kind: 'Pod', spec: { containers: [null, 1] } },
    ]) {
      assert.deepEqual(applyPodDefaults(v), v);
    }
  });

  test('alwaysPullImages makes every container Always', () => {
    const out: K8s = applyPodDefaults(
      { kind: 'Deployment', spec: { template: { spec: containers() } } },
      { alwaysPullImages: true },
    );
    assert.deepEqual(policies(out.spec?.template?.spec), {
      init: ['Always'],
      app: ['Always', 'Always', 'Always'],
      eph: ['Always'],
    });
  });
});

describe('applyUpdateDefaults', () => {
  const deploy = (image: string, policy?: string, extra: C[] = []): K8s => ({
    kind: 'Deployment',
    spec: {
      template: {
        spec: {
          containers: [{ name: 'app', image, ...(policy ? { imagePullPolicy: policy } : {}) }, ...extra],
        },
      },
    },
  });

  test('switching to :latest later keeps the stored IfNotPresent (the Images page note)', () => {
    const stored = applyPodDefaults(deploy('nginx:1.25'));
    assert.equal(stored.spec?.template?.spec.containers?.[0]?.imagePullPolicy, 'IfNotPresent');
    const updated = applyUpdateDefaults(stored, deploy('nginx:latest'));
    assert.equal(updated.spec?.template?.spec.containers?.[0]?.imagePullPolicy, 'IfNotPresent');
  });

  test('the reverse: a stored Always stays Always after pinning a tag', () => {
    const stored = applyPodDefaults(deploy('nginx'));
    assert.equal(
      applyUpdateDefaults(stored, deploy('nginx:1.25')).spec?.template?.spec.containers?.[0]?.imagePullPolicy,
      'Always',
    );
  });

  test('an explicit policy in the update wins; new containers are defaulted from their image', () => {
    const stored = applyPodDefaults(deploy('nginx:1.25'));
    assert.equal(
      applyUpdateDefaults(stored, deploy('nginx:latest', 'Never')).spec?.template?.spec.containers?.[0]
        ?.imagePullPolicy,
      'Never',
    );
    const withNew = applyUpdateDefaults(
      stored,
      deploy('nginx:1.26', undefined, [{ name: 'new', image: 'busybox' }]),
    );
    assert.deepEqual(
      withNew.spec?.template?.spec.containers?.map((c) => c.imagePullPolicy),
      ['IfNotPresent', 'Always'],
    );
  });

  test('containers are matched by name within the same list', () => {
    const stored: K8s = {
      kind: 'Pod',
      spec: {
        initContainers: [{ name: 'app', image: 'a', imagePullPolicy: 'Never' }],
        containers: [{ name: 'app', image: 'a:1', imagePullPolicy: 'IfNotPresent' }],
      },
    };
    const next: K8s = {
      kind: 'Pod',
      spec: {
        initContainers: [{ name: 'app', image: 'a:latest' }],
        containers: [{ name: 'app', image: 'a:latest' }],
      },
    };
    const out = applyUpdateDefaults(stored, next);
    assert.equal(out.spec?.initContainers?.[0]?.imagePullPolicy, 'Never');
    assert.equal(out.spec?.containers?.[0]?.imagePullPolicy, 'IfNotPresent');
  });
});

type Allowed = Extract<AdmissionResult, { allowed: true }>;
type Refused = Extract<AdmissionResult, { allowed: false }>;
function allowed(r: AdmissionResult): Allowed {
  if (!r.allowed) assert.fail(`expected the request to be allowed, got ${r.message}`);
  return r;
}
function refused(r: AdmissionResult): Refused {
  if (r.allowed) assert.fail('expected the request to be refused');
  return r;
}

describe('AlwaysPullImages admission', () => {
  const pod = (images: string[], policy?: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default' },
    spec: {
      initContainers: [{ name: 'init', image: images[0], ...(policy ? { imagePullPolicy: policy } : {}) }],
      containers: images
        .slice(1)
        .map((image, i) => ({ name: `c${i}`, image, imagePullPolicy: policy ?? 'IfNotPresent' })),
      ephemeralContainers: [{ name: 'dbg', image: 'busybox', imagePullPolicy: 'Never' }],
    },
  });
  const req = (over: Partial<AdmissionRequest>): AdmissionRequest => ({
    operation: 'CREATE',
    resource: { group: '', version: 'v1', resource: 'pods' },
    object: pod(['busybox:1', 'nginx:1.25']),
    ...over,
  });

  test('CREATE: every init, regular and ephemeral container becomes Always, with a JSON patch', () => {
    const r = allowed(alwaysPullImagesAdmit(req({})));
    assert.equal(r.mutated, true);
    assert.deepEqual(policies((r.object as K8s).spec), {
      init: ['Always'],
      app: ['Always'],
      eph: ['Always'],
    });
    assert.deepEqual(r.patch, [
      { op: 'add', path: '/spec/initContainers/0/imagePullPolicy', value: 'Always' },
      { op: 'add', path: '/spec/containers/0/imagePullPolicy', value: 'Always' },
      { op: 'add', path: '/spec/ephemeralContainers/0/imagePullPolicy', value: 'Always' },
    ]);
    assert.equal(
      (req({}).object as K8s).spec?.containers?.[0]?.imagePullPolicy,
      'IfNotPresent',
      'request untouched',
    );
  });

  test('skips subresources (pods/ephemeralcontainers), other resources, other groups and other operations', () => {
    assert.deepEqual(alwaysPullImagesAdmit(req({ subResource: 'ephemeralcontainers' })), {
      allowed: true,
      skipped: 'subresource',
    });
    assert.deepEqual(
      alwaysPullImagesAdmit(req({ resource: { group: 'apps', version: 'v1', resource: 'deployments' } })),
      { allowed: true, skipped: 'resource' },
    );
    assert.deepEqual(alwaysPullImagesAdmit(req({ resource: { group: 'example.com', resource: 'pods' } })), {
      allowed: true,
      skipped: 'resource',
    });
    assert.deepEqual(alwaysPullImagesAdmit(req({ operation: 'DELETE' })), {
      allowed: true,
      skipped: 'operation',
    });
    assert.deepEqual(alwaysPullImagesValidate(req({ subResource: 'ephemeralcontainers' })), {
      allowed: true,
      skipped: 'subresource',
    });
    const malformed = { operation: 'CREATE', object: pod(['a']) } as unknown as AdmissionRequest;
    assert.deepEqual(alwaysPullImagesAdmit(malformed), { allowed: true, skipped: 'resource' });
  });

  test('UPDATE without a new image is skipped; with a new image it is mutated', () => {
    const old = pod(['busybox:1', 'nginx:1.25']);
    const sameImages = pod(['nginx:1.25', 'busybox:1']);
    assert.deepEqual(
      alwaysPullImagesAdmit(req({ operation: 'UPDATE', object: sameImages, oldObject: old })),
      { allowed: true, skipped: 'no-new-images' },
    );
    const r = allowed(
      alwaysPullImagesAdmit(
        req({ operation: 'UPDATE', object: pod(['busybox:1', 'nginx:1.26']), oldObject: old }),
      ),
    );
    assert.equal(r.mutated, true);
    // An old object that is not a Pod does not count as "no new images".
    assert.ok(
      alwaysPullImagesAdmit(req({ operation: 'UPDATE', object: sameImages, oldObject: 'garbage' })).allowed,
    );
    assert.equal(
      allowed(alwaysPullImagesAdmit(req({ operation: 'UPDATE', object: sameImages, oldObject: 'garbage' })))
        .skipped,
      undefined,
    );
  });

  test('a pods request whose object is not a Pod is a BadRequest', () => {
    for (const object of [undefined, null, 'x', { kind: 'Deployment', spec: {} }, { spec: 'no' }]) {
      assert.deepEqual(alwaysPullImagesAdmit(req({ object })), {
        allowed: false,
        status: 400,
        reason: 'BadRequest',
        message: 'Resource was marked with kind Pod but was unable to be converted',
      });
    }
  });

  test('Validate refuses non-Always containers with the API server text', () => {
    const one = {
      kind: 'Pod',
      metadata: { name: 'web' },
      spec: { containers: [{ name: 'a', image: 'x:1', imagePullPolicy: 'IfNotPresent' }] },
    };
    const r1 = refused(alwaysPullImagesValidate(req({ object: one })));
    assert.equal(r1.status, 403);
    assert.equal(
      r1.message,
      'pods "web" is forbidden: spec.containers[0].imagePullPolicy: Unsupported value: "IfNotPresent": supported values: "Always"',
    );
    const r2 = refused(alwaysPullImagesValidate(req({})));
    assert.equal(
      r2.message,
      '[pods "web" is forbidden: spec.initContainers[0].imagePullPolicy: Unsupported value: "": supported values: "Always", ' +
        'pods "web" is forbidden: spec.containers[0].imagePullPolicy: Unsupported value: "IfNotPresent": supported values: "Always", ' +
        'pods "web" is forbidden: spec.ephemeralContainers[0].imagePullPolicy: Unsupported value: "Never": supported values: "Always"]',
    );
    assert.deepEqual(
      r2.causes?.map((c) => c.field),
      [
        'spec.initContainers[0].imagePullPolicy',
        'spec.containers[0].imagePullPolicy',
        'spec.ephemeralContainers[0].imagePullPolicy',
      ],
    );
    const admitted = allowed(alwaysPullImagesAdmit(req({})));
    assert.deepEqual(alwaysPullImagesValidate(req({ object: admitted.object })), { allowed: true });
  });
});
