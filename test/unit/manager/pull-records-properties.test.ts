/**
 * Properties of the pull records (fuzzed with fast-check, `fuzzParams()`): any record kimg writes reads
 * back equal; no file content makes a list call throw or a get call throw anything but STORE_CORRUPT;
 * merging keeps Secret lists sorted and unique, is idempotent, and never loses verification (a
 * credential just merged always verifies).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import {
  MemoryPullRecords,
  decodePulledRecord,
  encodePulledRecord,
  mergePulledRecord,
  mustAttemptImagePull,
  pullRecordFileName,
  type ImagePullCredentials,
  type ImagePulledRecord,
  type ImagePullSecretRef,
} from '../../../src/manager/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

const REF = 'sha256:' + '1'.repeat(64);
const NAME = 'registry.example/app';
const IMAGE = 'registry.example/app:1';

const short = fc.string({ maxLength: 6 });
const secretArb: fc.Arbitrary<ImagePullSecretRef> = fc.record({
  namespace: fc.constantFrom('a', 'b', 'team'),
  name: fc.constantFrom('s1', 's2', 'pull'),
  uid: fc.constantFrom('', 'u1', 'u2'),
  credentialHash: fc.constantFrom('', 'h1', 'h2', 'h3'),
});
const credsArb: fc.Arbitrary<ImagePullCredentials> = fc.oneof(
  fc.constant({ nodePodsAccessible: true }),
  fc.record({ kubernetesSecrets: fc.array(secretArb, { minLength: 1, maxLength: 4 }) }),
  fc.record({
    kubernetesServiceAccounts: fc.array(fc.record({ namespace: short, name: short, uid: short }), {
      minLength: 1,
      maxLength: 3,
    }),
  }),
);
const recordArb: fc.Arbitrary<ImagePulledRecord> = fc.record({
  imageRef: fc.string({ minLength: 1, maxLength: 80 }),
  lastUpdatedTime: fc.integer({ min: 0, max: 4_000_000_000_000 }).map((ms) => new Date(ms).toISOString()),
  credentialMapping: fc.dictionary(fc.string({ maxLength: 20 }), credsArb, { maxKeys: 3 }),
});

describe('pull records: properties', () => {
  test('a written record reads back equal (after canonical sorting)', async () => {
    await fc.assert(
      fc.asyncProperty(recordArb, async (r) => {
        const m = new MemoryPullRecords();
        await m.writeImagePulledRecord(r);
        const back = await m.getImagePulledRecord(r.imageRef);
        assert.deepEqual(back, decodePulledRecord(encodePulledRecord(r)));
        assert.equal(encodePulledRecord(back as ImagePulledRecord), encodePulledRecord(r));
      }),
      fuzzParams(),
    );
  });

  test('no file content makes list throw; get throws only STORE_CORRUPT', async () => {
    const content = fc.oneof(
      fc.string(),
      fc.json(),
      recordArb.map((r) => encodePulledRecord(r)),
      recordArb.map((r) => encodePulledRecord({ ...r, imageRef: REF }).replace(/"(\w+)":/, '"$1x":')),
    );
    await fc.assert(
      fc.asyncProperty(content, async (text) => {
        const m = new MemoryPullRecords();
        m.rawPulled.set(pullRecordFileName(REF), text);
        m.rawIntents.set(pullRecordFileName(IMAGE), text);
        const list = await m.listImagePulledRecords();
        assert.equal(list.items.length + list.problems.length, 1);
        const intents = await m.listImagePullIntents();
        assert.equal(intents.items.length + intents.problems.length, 1);
        try {
          await m.getImagePulledRecord(REF);
        } catch (e) {
          assert.ok(isKimgError(e, 'STORE_CORRUPT'), String(e));
        }
      }),
      fuzzParams(),
    );
  });

  test('merging: sorted unique Secrets, idempotent, and what was merged verifies', () => {
    fc.assert(
      fc.property(
        fc.option(
          recordArb.map((r) => ({ ...r, imageRef: REF })),
          { nil: undefined },
        ),
        credsArb,
        (start, creds) => {
          const once = mergePulledRecord(start, REF, NAME, creds, 1_000);
          const twice = mergePulledRecord(once.record, REF, NAME, creds, 2_000);
          assert.equal(twice.changed, false);
          const got = once.record.credentialMapping[NAME];
          assert.ok(got !== undefined);
          const secrets = got.kubernetesSecrets ?? [];
          const keys = secrets.map((s) => `${s.namespace}\u0000${s.name}\u0000${s.uid}`);
          assert.deepEqual(keys, [...keys].sort());
          assert.equal(new Set(keys).size, keys.length);
          if (got.nodePodsAccessible === true)
            assert.equal(secrets.length + (got.kubernetesServiceAccounts ?? []).length, 0);
          // Every merged Secret with a non-empty hash now verifies for a pod holding it.
          for (const s of creds.kubernetesSecrets ?? []) {
            if (s.credentialHash === '' || got.nodePodsAccessible === true) continue;
            const last = [...(creds.kubernetesSecrets ?? [])]
              .reverse()
              .find((x) => x.namespace === s.namespace && x.name === s.name && x.uid === s.uid);
            const v = mustAttemptImagePull({
              policy: 'AlwaysVerify',
              image: IMAGE,
              imageRef: REF,
              pulledByKubelet: true,
              record: once.record,
              podCredentials: { secrets: [last ?? s] },
            });
            if (secrets.length < 100) assert.equal(v.mustPull, false, JSON.stringify([once.record, s]));
          }
        },
      ),
      fuzzParams(),
    );
  });
});
