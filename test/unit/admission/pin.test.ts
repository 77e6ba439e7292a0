import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  pinImages,
  pinObjects,
  pinnedImage,
  findImageSlots,
  ResolutionCache,
  type ImageResolver,
} from '../../../src/admission/index.js';
import { KimgError, isKimgError } from '../../../src/errors/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;

/** A fake registry: image (as the runtime pulls it) → digest; digests exist when listed. */
function fakeResolver(tags: Record<string, string>, calls: string[] = []): ImageResolver {
  const digests = new Set(Object.values(tags));
  return async (image) => {
    calls.push(image);
    const at = image.lastIndexOf('@');
    if (at >= 0) {
      const d = image.slice(at + 1);
      if (digests.has(d)) return d;
      throw new KimgError('NOT_FOUND', `manifest ${d} not found`);
    }
    const d = tags[image];
    if (d === undefined) throw new KimgError('NOT_FOUND', `manifest for ${JSON.stringify(image)} not found`);
    return d;
  };
}

const MANIFESTS = `# Production manifests — do not edit by hand
apiVersion: v1
kind: Pod
metadata:
  name: web   # the front end
spec:
  initContainers:
    - name: init
      image: busybox:1.36 # init step
  containers:
    - name: nginx
      image: "nginx:1.27"
      ports: [{containerPort: 80}]
    - image: 'registry.example:5000/team/app:v2'
      name: app
---
# a deployment
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: api
        image: registry.example:5000/team/api:3.1   # pinned by CI
---
apiVersion: v1
kind: List
items:
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: nightly}
  spec:
    schedule: "0 3 * * *"
    jobTemplate:
      spec:
        template:
          spec:
            initContainers: [{name: i, image: "busybox:1.36"}]
            containers: [{name: c, image: "nginx:1.27"}]
            ephemeralContainers: [{name: dbg, image: 'busybox:1.36'}]
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: untouched}
  data: {image: "nginx:1.27"}
`;

const TAGS = {
  'busybox:1.36': D1,
  'nginx:1.27': D2,
  'registry.example:5000/team/app:v2': D3,
  'registry.example:5000/team/api:3.1': D1,
};

describe('pinImages (text)', () => {
  test('rewrites only the image scalars, keeping comments, quoting and order', async () => {
    const calls: string[] = [];
    const r = await pinImages(MANIFESTS, { resolve: fakeResolver(TAGS, calls) });
    assert.deepEqual(r.errors, []);
    assert.equal(r.changes.length, 7);
    // one resolution per distinct image string
    assert.equal(calls.length, 4);
    const before = MANIFESTS.split('\n');
    const after = r.text.split('\n');
    assert.equal(after.length, before.length);
    const changed = before.flatMap((l, i) => (l === after[i] ? [] : [[l, after[i]]]));
    assert.deepEqual(changed, [
      ['      image: busybox:1.36 # init step', `      image: busybox:1.36@${D1} # init step`],
      ['      image: "nginx:1.27"', `      image: "nginx:1.27@${D2}"`],
      [
        "    - image: 'registry.example:5000/team/app:v2'",
        `    - image: 'registry.example:5000/team/app:v2@${D3}'`,
      ],
      [
        '        image: registry.example:5000/team/api:3.1   # pinned by CI',
        `        image: registry.example:5000/team/api:3.1@${D1}   # pinned by CI`,
      ],
      [
        '            initContainers: [{name: i, image: "busybox:1.36"}]',
        `            initContainers: [{name: i, image: "busybox:1.36@${D1}"}]`,
      ],
      [
        '            containers: [{name: c, image: "nginx:1.27"}]',
        `            containers: [{name: c, image: "nginx:1.27@${D2}"}]`,
      ],
      [
        "            ephemeralContainers: [{name: dbg, image: 'busybox:1.36'}]",
        `            ephemeralContainers: [{name: dbg, image: 'busybox:1.36@${D1}'}]`,
      ],
    ]);
    assert.deepEqual(
      r.changes.map((c) => `${c.document} ${c.kind} ${c.name} ${c.field}`),
      [
        '0 Pod web spec.initContainers[0].image',
        '0 Pod web spec.containers[0].image',
        '0 Pod web spec.containers[1].image',
        '1 Deployment api spec.template.spec.containers[0].image',
        '2 CronJob nightly items[0].spec.jobTemplate.spec.template.spec.initContainers[0].image',
        '2 CronJob nightly items[0].spec.jobTemplate.spec.template.spec.containers[0].image',
        '2 CronJob nightly items[0].spec.jobTemplate.spec.template.spec.ephemeralContainers[0].image',
      ],
    );
  });

  test('pinning is idempotent: a second run changes nothing and verifies the digests', async () => {
    const first = await pinImages(MANIFESTS, { resolve: fakeResolver(TAGS) });
    const calls: string[] = [];
    const second = await pinImages(first.text, { resolve: fakeResolver(TAGS, calls) });
    assert.equal(second.text, first.text);
    assert.deepEqual(second.changes, []);
    assert.deepEqual(second.errors, []);
    assert.ok(
      calls.every((c) => c.includes('@sha256:')),
      'already-pinned images are checked',
    );
  });

  test('--drop-tag writes name@digest, also for images already pinned with a tag', async () => {
    const text = `kind: Pod\nspec:\n  containers:\n  - image: nginx:1.27\n  - image: nginx:1.27@${D2}\n  - image: localhost:5000/x\n`;
    const r = await pinImages(text, {
      resolve: fakeResolver({ ...TAGS, 'localhost:5000/x': D3 }),
      dropTag: true,
    });
    assert.deepEqual(r.errors, []);
    assert.equal(
      r.text,
      `kind: Pod\nspec:\n  containers:\n  - image: nginx@${D2}\n  - image: nginx@${D2}\n  - image: localhost:5000/x@${D3}\n`,
    );
  });

  test('unresolvable, missing-digest and invalid images are listed per image, others still pinned in text', async () => {
    const text = `kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: nginx:1.27}\n  - {name: b, image: nginx:nope}\n  - {name: c, image: "nginx@${D3}"}\n  - {name: d, image: "Not/Valid"}\n  - {name: e}\n`;
    const r = await pinImages(text, { resolve: fakeResolver({ 'nginx:1.27': D2 }) });
    assert.deepEqual(
      r.errors.map((e) => [e.field, e.code]),
      [
        ['spec.containers[1].image', 'NOT_FOUND'],
        ['spec.containers[2].image', 'NOT_FOUND'],
        ['spec.containers[3].image', 'NAME_CONTAINS_UPPERCASE'],
        ['spec.containers[4].image', 'INVALID_IMAGE_NAME'],
      ],
    );
    assert.equal(r.changes.length, 1);
  });

  test('an aliased image edits its anchor once; bracketed IPv6 hosts stay quoted', async () => {
    const text =
      'kind: Pod\nspec:\n  containers:\n  - image: &img nginx:1.27 # x\n  - image: *img\n  - image: "[::1]:5000/a:1"\n';
    const r = await pinImages(text, { resolve: async () => D3 });
    assert.deepEqual(r.errors, []);
    assert.equal(r.changes.length, 3);
    assert.equal(
      r.text,
      `kind: Pod\nspec:\n  containers:\n  - image: &img nginx:1.27@${D3} # x\n  - image: *img\n  - image: "[::1]:5000/a:1@${D3}"\n`,
    );
  });

  test('a digest the registry reports differently is a DIGEST_MISMATCH', async () => {
    const r = await pinImages(`kind: Pod\nspec: {containers: [{image: "nginx@${D1}"}]}\n`, {
      resolve: async () => D2,
    });
    assert.equal(r.errors[0]?.code, 'DIGEST_MISMATCH');
  });

  test('JSON input keeps its layout', async () => {
    const json =
      JSON.stringify(
        { apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'a', image: 'nginx:1.27' }] } },
        null,
        2,
      ) + '\n';
    const r = await pinImages(json, { resolve: fakeResolver(TAGS) });
    assert.equal(r.text, json.replace('"nginx:1.27"', `"nginx:1.27@${D2}"`));
    assert.deepEqual(JSON.parse(r.text).spec.containers[0].image, `nginx:1.27@${D2}`);
  });

  test('invalid YAML is CONFIG_INVALID naming the file', async () => {
    await assert.rejects(pinImages('a: [\n', { resolve: fakeResolver({}) }, 'bad.yaml'), (e: unknown) => {
      assert.ok(isKimgError(e, 'CONFIG_INVALID'));
      assert.match(e.message, /bad\.yaml/);
      return true;
    });
  });

  test('property: arbitrary text never throws an uncoded error', async () => {
    const resolve = fakeResolver(TAGS);
    const fragments = fc.constantFrom(
      'kind: Pod\n',
      'spec:\n',
      '  containers:\n',
      '  - image: nginx:1.27\n',
      '    image: ',
      '---\n',
      '{',
      '}',
      '[',
      ']',
      '"',
      "'",
      '&a ',
      '*a',
      '# c\n',
      'items:\n',
      'kind: List\n',
      ': ',
      '\t',
      '|\n',
      'image: busybox:1.36@sha256:' + '1'.repeat(64) + '\n',
      '  ephemeralContainers: [{image: x}]\n',
    );
    const text = fc.oneof(
      fc.string(),
      fc.array(fragments, { maxLength: 20 }).map((a) => a.join('')),
    );
    await fc.assert(
      fc.asyncProperty(text, fc.boolean(), async (t, dropTag) => {
        try {
          const r = await pinImages(t, { resolve, dropTag });
          assert.equal(typeof r.text, 'string');
        } catch (e) {
          if (!isKimgError(e))
            throw new Error(`uncoded error for ${JSON.stringify(t)}: ${String(e)}`, { cause: e });
        }
      }),
      fuzzParams(),
    );
  });
});

describe('pinObjects and helpers', () => {
  test('pins copies, leaves inputs alone, honours skipImages and kind overrides', async () => {
    const pod = {
      spec: {
        containers: [
          { name: 'a', image: 'nginx:1.27' },
          { name: 'b', image: 'busybox:1.36' },
        ],
      },
    };
    const r = await pinObjects(
      [pod],
      { resolve: fakeResolver(TAGS), skipImages: new Set(['busybox:1.36']) },
      ['Pod'],
    );
    assert.equal(pod.spec.containers[0]?.image, 'nginx:1.27');
    assert.deepEqual(r.objects, [
      {
        spec: {
          containers: [
            { name: 'a', image: `nginx:1.27@${D2}` },
            { name: 'b', image: 'busybox:1.36' },
          ],
        },
      },
    ]);
    assert.equal(r.changes[0]?.pointer, '/spec/containers/0/image');
  });

  test('findImageSlots covers every workload kind and nothing else', () => {
    const c = { containers: [{ image: 'x' }] };
    const t = { template: { spec: c } };
    for (const kind of [
      'Deployment',
      'StatefulSet',
      'DaemonSet',
      'ReplicaSet',
      'Job',
      'ReplicationController',
    ])
      assert.equal(
        findImageSlots({ kind, spec: t })[0]?.pointer,
        '/spec/template/spec/containers/0/image',
        kind,
      );
    assert.equal(findImageSlots({ kind: 'CronJob', spec: { jobTemplate: { spec: t } } }).length, 1);
    assert.equal(findImageSlots({ kind: 'PodTemplate', template: { spec: c } }).length, 1);
    assert.equal(findImageSlots({ kind: 'ConfigMap', spec: c }).length, 0);
    assert.equal(findImageSlots({ kind: 'toString', spec: c }).length, 0);
  });

  test('pinnedImage keeps the original spelling', () => {
    assert.equal(pinnedImage('nginx', D1), `nginx@${D1}`);
    assert.equal(pinnedImage('nginx:1.27', D1), `nginx:1.27@${D1}`);
    assert.equal(pinnedImage('docker.io/library/nginx:1.27', D1, true), `docker.io/library/nginx@${D1}`);
    assert.equal(pinnedImage(`localhost:5000/a:b@${D2}`, D1), `localhost:5000/a:b@${D1}`);
    assert.equal(pinnedImage('localhost:5000/a', D1, true), `localhost:5000/a@${D1}`);
    assert.throws(
      () => pinnedImage('UPPER', D1),
      (e: unknown) => isKimgError(e),
    );
  });
});

describe('ResolutionCache', () => {
  test('reuses a resolution within the TTL, asks again after it, shares spellings and in-flight calls', async () => {
    let now = 1000;
    let digest = D1;
    const calls: string[] = [];
    const cache = new ResolutionCache(
      async (image) => {
        calls.push(image);
        await new Promise((r) => setImmediate(r));
        return digest;
      },
      { ttlMs: 60_000, now: () => now },
    );
    const [a, b] = await Promise.all([
      cache.resolve('nginx'),
      cache.resolve('docker.io/library/nginx:latest'),
    ]);
    assert.equal(a, D1);
    assert.equal(b, D1);
    assert.equal(calls.length, 1);
    digest = D2; // the tag moves
    now += 59_999;
    assert.equal(await cache.resolve('nginx:latest'), D1);
    now += 1;
    assert.equal(await cache.resolve('nginx:latest'), D2);
    assert.equal(calls.length, 2);
  });

  test('failures are not cached; dry runs read but do not fill the cache', async () => {
    let fail = true;
    let calls = 0;
    const cache = new ResolutionCache(
      async () => {
        calls++;
        if (fail) throw new KimgError('REGISTRY_UNAVAILABLE', 'down');
        return D3;
      },
      { ttlMs: 60_000, now: () => 0 },
    );
    await assert.rejects(cache.resolve('a:1'), (e: unknown) => isKimgError(e, 'REGISTRY_UNAVAILABLE'));
    fail = false;
    assert.equal(await cache.resolve('a:1', { dryRun: true }), D3);
    assert.equal(cache.size, 0);
    assert.equal(await cache.resolve('a:1'), D3);
    assert.equal(await cache.resolve('a:1', { dryRun: true }), D3);
    assert.equal(calls, 3);
    assert.equal(cache.size, 1);
  });

  test('ttl 0 never caches', async () => {
    let calls = 0;
    const cache = new ResolutionCache(async () => (calls++, D1), { ttlMs: 0 });
    await cache.resolve('a');
    await cache.resolve('a');
    assert.equal(calls, 2);
  });
});
