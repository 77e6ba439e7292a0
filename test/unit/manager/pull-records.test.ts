/**
 * Pull records: one conformance suite run against both accessors (files and memory), the kubelet's
 * document encoding, the on-disk layout and modes, and what happens to files that are not records
 * (reported by the list calls, repaired fail-safe by the verifier on start).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { isKimgError } from '../../../src/errors/index.js';
import {
  FilePullRecords,
  MemoryPullRecords,
  PullRecordsVerifier,
  decodePulledRecord,
  encodePullIntent,
  encodePulledRecord,
  pullRecordFileName,
  type ImageInfo,
  type ImagePulledRecord,
  type PullRecordsAccessor,
} from '../../../src/manager/index.js';

const REF = 'sha256:' + 'a'.repeat(64);
const REF2 = 'sha256:' + 'b'.repeat(64);
const T0 = '2026-07-01T10:00:00Z';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempRoot(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kimg-pull-records-'));
  dirs.push(d);
  return d;
}

/** Plants a raw file (by base name) in an accessor's intents or pulled area. */
type Plant = (kind: 'intent' | 'pulled', name: string, text: string, ageMs?: number) => Promise<void>;

interface Factory {
  name: string;
  make(): Promise<{ records: PullRecordsAccessor; plant: Plant }>;
}

const FACTORIES: Factory[] = [
  {
    name: 'FilePullRecords',
    async make() {
      const records = new FilePullRecords(await tempRoot());
      const plant: Plant = async (kind, name, text, ageMs = 0) => {
        const dir = kind === 'intent' ? records.intentsDir : records.pulledDir;
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, name), text);
        if (ageMs > 0) {
          const t = new Date(Date.now() - ageMs);
          await utimes(join(dir, name), t, t);
        }
      };
      return { records, plant };
    },
  },
  {
    name: 'MemoryPullRecords',
    async make() {
      const records = new MemoryPullRecords();
      const plant: Plant = async (kind, name, text) => {
        (kind === 'intent' ? records.rawIntents : records.rawPulled).set(name, text);
      };
      return { records, plant };
    },
  },
];

function rec(imageRef: string, extra: Partial<ImagePulledRecord> = {}): ImagePulledRecord {
  return {
    imageRef,
    lastUpdatedTime: T0,
    credentialMapping: { 'registry.example/app': { nodePodsAccessible: true } },
    ...extra,
  };
}

for (const f of FACTORIES) {
  describe(`${f.name}: accessor conformance`, () => {
    test('an empty store lists nothing', async () => {
      const { records } = await f.make();
      assert.deepEqual(await records.listImagePullIntents(), { items: [], problems: [] });
      assert.deepEqual(await records.listImagePulledRecords(), { items: [], problems: [] });
      assert.equal(await records.getImagePulledRecord(REF), undefined);
      assert.equal(await records.imagePullIntentExists('a:1'), false);
    });

    test('intents: write, exists, list, delete (idempotent)', async () => {
      const { records } = await f.make();
      await records.writeImagePullIntent('registry.example/app:1');
      await records.writeImagePullIntent('registry.example/app:1');
      await records.writeImagePullIntent('busybox');
      assert.equal(await records.imagePullIntentExists('busybox'), true);
      assert.equal(await records.imagePullIntentExists('busybox:latest'), false);
      const list = await records.listImagePullIntents();
      assert.deepEqual(list.items.map((i) => i.image).sort(), ['busybox', 'registry.example/app:1']);
      assert.deepEqual(list.problems, []);
      await records.deleteImagePullIntent('busybox');
      await records.deleteImagePullIntent('busybox');
      assert.equal(await records.imagePullIntentExists('busybox'), false);
      await assert.rejects(records.writeImagePullIntent(''), (e: unknown) =>
        isKimgError(e, 'INVALID_ARGUMENT'),
      );
    });

    test('pulled records: write, get, replace, list, delete; lists sorted on write', async () => {
      const { records } = await f.make();
      const r = rec(REF, {
        credentialMapping: {
          'registry.example/app': {
            kubernetesSecrets: [
              { namespace: 'b', name: 's', uid: '2', credentialHash: 'h2' },
              { namespace: 'a', name: 's', uid: '1', credentialHash: 'h1' },
            ],
          },
        },
      });
      await records.writeImagePulledRecord(r);
      const got = await records.getImagePulledRecord(REF);
      assert.deepEqual(
        got?.credentialMapping['registry.example/app']?.kubernetesSecrets?.map((s) => s.namespace),
        ['a', 'b'],
      );
      await records.writeImagePulledRecord(rec(REF));
      assert.deepEqual((await records.getImagePulledRecord(REF))?.credentialMapping, {
        'registry.example/app': { nodePodsAccessible: true },
      });
      await records.writeImagePulledRecord(rec(REF2, { credentialMapping: {} }));
      const list = await records.listImagePulledRecords();
      assert.deepEqual(list.items.map((x) => x.imageRef).sort(), [REF, REF2]);
      await records.deleteImagePulledRecord(REF);
      await records.deleteImagePulledRecord(REF);
      assert.equal(await records.getImagePulledRecord(REF), undefined);
    });

    test('invalid records are refused on write', async () => {
      const { records } = await f.make();
      const bad: unknown[] = [
        { ...rec(REF), imageRef: '' },
        { ...rec(REF), lastUpdatedTime: 'yesterday' },
        { ...rec(REF), credentialMapping: { x: { kubernetesSecrets: [{ name: 1 }] } } },
      ];
      for (const b of bad) {
        await assert.rejects(records.writeImagePulledRecord(b as ImagePulledRecord), (e: unknown) =>
          isKimgError(e, 'INVALID_ARGUMENT'),
        );
      }
    });

    test('files that are not records are reported, never thrown, and removable', async () => {
      const { records, plant } = await f.make();
      await records.writeImagePullIntent('good:1');
      await records.writeImagePulledRecord(rec(REF));
      await plant('intent', pullRecordFileName('x:1'), '{"kind":"ImagePullIntent"');
      await plant('intent', 'README', 'hello');
      await plant('intent', pullRecordFileName('y:1') + '.123-abcd.tmp', '{}');
      // A valid intent whose image does not hash to its file name.
      await plant('intent', pullRecordFileName('z:1'), encodePullIntent({ image: 'other:1' }));
      await plant(
        'pulled',
        pullRecordFileName(REF2),
        encodePulledRecord(rec(REF2)).replace('ImagePulledRecord', 'Nope'),
      );
      await plant(
        'pulled',
        pullRecordFileName('sha256:' + 'c'.repeat(64)),
        '{"kind":"ImagePulledRecord","apiVersion":"kubelet.config.k8s.io/v1beta1","imageRef":"x","lastUpdatedTime":"' +
          T0 +
          '","extra":1}',
      );
      const intents = await records.listImagePullIntents();
      assert.deepEqual(intents.items, [{ image: 'good:1' }]);
      assert.deepEqual(intents.problems.map((p) => p.problem).sort(), [
        'invalid',
        'key-mismatch',
        'temp',
        'unknown-name',
      ]);
      const pulled = await records.listImagePulledRecords();
      assert.deepEqual(
        pulled.items.map((r) => r.imageRef),
        [REF],
      );
      assert.deepEqual(
        pulled.problems.map((p) => p.problem),
        ['invalid', 'invalid'],
      );
      // A corrupt record for a key is an error for get (callers fail safe), absent for a key mismatch.
      await assert.rejects(records.getImagePulledRecord(REF2), (e: unknown) =>
        isKimgError(e, 'STORE_CORRUPT'),
      );
      for (const p of [...intents.problems, ...pulled.problems]) await records.removeProblem(p);
      assert.deepEqual((await records.listImagePullIntents()).problems, []);
      assert.deepEqual((await records.listImagePulledRecords()).problems, []);
      assert.deepEqual((await records.listImagePullIntents()).items, [{ image: 'good:1' }]);
    });

    test('a record whose embedded imageRef is not its key counts as absent (upstream)', async () => {
      const { records, plant } = await f.make();
      await plant('pulled', pullRecordFileName(REF), encodePulledRecord(rec(REF2)));
      assert.equal(await records.getImagePulledRecord(REF), undefined);
    });

    test('v1alpha1 documents are read', async () => {
      const { records, plant } = await f.make();
      await plant(
        'pulled',
        pullRecordFileName(REF),
        encodePulledRecord(rec(REF)).replace('v1beta1', 'v1alpha1'),
      );
      assert.equal((await records.getImagePulledRecord(REF))?.imageRef, REF);
    });
  });
}

describe('encoding (the kubelet documents)', () => {
  test('intent and pulled record documents', () => {
    assert.equal(
      encodePullIntent({ image: 'app:1.2' }),
      '{"kind":"ImagePullIntent","apiVersion":"kubelet.config.k8s.io/v1beta1","image":"app:1.2"}\n',
    );
    const text = encodePulledRecord({
      imageRef: 'sha256:cfg',
      lastUpdatedTime: '2026-07-01T10:00:00Z',
      credentialMapping: { 'registry.example/app': { nodePodsAccessible: true } },
    });
    assert.equal(
      text,
      '{"kind":"ImagePulledRecord","apiVersion":"kubelet.config.k8s.io/v1beta1","lastUpdatedTime":"2026-07-01T10:00:00Z","imageRef":"sha256:cfg","credentialMapping":{"registry.example/app":{"nodePodsAccessible":true}}}\n',
    );
    // Empty mapping is omitted; empty lists and false flags too.
    const bare = encodePulledRecord({
      imageRef: 'sha256:x',
      lastUpdatedTime: T0,
      credentialMapping: { a: { kubernetesSecrets: [], nodePodsAccessible: false } },
    });
    assert.equal(
      JSON.parse(bare).credentialMapping.a && Object.keys(JSON.parse(bare).credentialMapping.a).length,
      0,
    );
    assert.deepEqual(decodePulledRecord(text).credentialMapping, {
      'registry.example/app': { nodePodsAccessible: true },
    });
  });

  test('file names are sha256- + hex SHA-256 of the key', () => {
    const hex = createHash('sha256').update('app:1.2').digest('hex');
    assert.equal(pullRecordFileName('app:1.2'), `sha256-${hex}`);
  });
});

describe('FilePullRecords on disk', () => {
  test('layout, modes 0700/0600, no temp files left', async () => {
    const root = await tempRoot();
    const records = new FilePullRecords(root);
    await records.writeImagePullIntent('registry.example/app:1');
    await records.writeImagePulledRecord(rec(REF));
    assert.equal(records.intentsDir, join(root, 'pull-records', 'intents'));
    assert.equal(records.pulledDir, join(root, 'pull-records', 'pulled'));
    for (const dir of [records.intentsDir, records.pulledDir]) {
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      const names = await readdir(dir);
      assert.equal(names.length, 1);
      assert.match(names[0] as string, /^sha256-[0-9a-f]{64}$/);
      assert.equal((await stat(join(dir, names[0] as string))).mode & 0o777, 0o600);
    }
    const text = await readFile(join(records.pulledDir, pullRecordFileName(REF)), 'utf8');
    assert.equal(text, encodePulledRecord(rec(REF)));
  });

  test("a second accessor on the same root sees the first one's records (a restart)", async () => {
    const root = await tempRoot();
    await new FilePullRecords(root).writeImagePullIntent('a:1');
    await new FilePullRecords(root).writeImagePulledRecord(rec(REF));
    const again = new FilePullRecords(root);
    assert.equal(await again.imagePullIntentExists('a:1'), true);
    assert.equal((await again.getImagePulledRecord(REF))?.imageRef, REF);
  });
});

describe('start-up repair of bad files (fail safe)', () => {
  const present: ImageInfo[] = [
    { id: REF, repoTags: ['registry.example/app:1'], repoDigests: [], size: 1, pinned: false },
  ];

  for (const f of FACTORIES) {
    test(`${f.name}: corrupt record of a present image → empty record; of an absent one → removed; junk → removed`, async () => {
      const { records, plant } = await f.make();
      await plant('pulled', pullRecordFileName(REF), 'garbage');
      await plant('pulled', pullRecordFileName(REF2), 'garbage');
      await plant('pulled', 'notes.txt', 'x');
      await plant('intent', pullRecordFileName('registry.example/app:1'), 'garbage');
      await plant('intent', pullRecordFileName('registry.example/gone:1'), 'garbage');
      await plant('intent', pullRecordFileName('t') + '.1-ab.tmp', '', 120_000);
      const v = new PullRecordsVerifier({ records, policy: 'NeverVerifyPreloadedImages' });
      const report = await v.initialize({ listImages: async () => present });
      assert.equal(report.problems.length, 6);
      assert.deepEqual(report.repairs.map((r) => r.action).sort(), [
        'removed',
        'removed',
        'removed',
        'removed',
        'replaced',
        'replaced',
      ]);
      assert.deepEqual(await records.listImagePullIntents(), { items: [], problems: [] });
      const pulled = await records.listImagePulledRecords();
      assert.deepEqual(pulled.problems, []);
      assert.deepEqual(
        pulled.items.map((r) => [r.imageRef, r.credentialMapping]),
        [[REF, {}]],
      );
      // The present image still counts as pulled by the node: pods must verify.
      const ex = await v.explain('registry.example/app:1', REF);
      assert.deepEqual([ex.verdict.mustPull, ex.verdict.preloaded], [true, false]);
    });
  }

  test('a fresh temp file (another process writing) is spared', async () => {
    const root = await tempRoot();
    const records = new FilePullRecords(root);
    await mkdir(records.intentsDir, { recursive: true });
    const tmp = join(records.intentsDir, pullRecordFileName('w:1') + '.9-cd.tmp');
    await writeFile(tmp, '');
    const v = new PullRecordsVerifier({ records });
    const report = await v.initialize({ listImages: async () => [] });
    assert.equal(report.problems.length, 1);
    assert.deepEqual(report.repairs, []);
    assert.ok(await stat(tmp));
  });

  test('a failing image service leaves everything in place and does not throw', async () => {
    const records = new MemoryPullRecords();
    await records.writeImagePullIntent('registry.example/app:1');
    records.rawPulled.set(pullRecordFileName(REF), 'garbage');
    const notices: string[] = [];
    const v = new PullRecordsVerifier({ records, onNotice: (n) => notices.push(n.message) });
    const report = await v.initialize({
      listImages: async () => {
        throw new Error('runtime down');
      },
    });
    assert.deepEqual(report.kept, ['registry.example/app:1']);
    assert.deepEqual(report.repairs, []);
    assert.equal(report.problems.length, 1);
    assert.equal(records.rawPulled.size, 1);
    assert.deepEqual(notices, ['failed to list images: pull intents stay as they are']);
  });
});
