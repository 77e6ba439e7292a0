/**
 * Credential verification of present images (KEP-2535): the decision table (four policies × the
 * ways an image can have come to the node), the merge rules, the upstream limits, the verifier's
 * intent lifecycle and start-up reconciliation, and the image manager wired to the verifier.
 */
import { FakeClock } from '../../helpers/clock.js';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KimgError, isKimgError } from '../../../src/errors/index.js';
import { Secret, credentialHash } from '../../../src/credentials/index.js';
import {
  AllowlistMatcher,
  ImageManager,
  MemoryPullRecords,
  PullRecordsVerifier,
  mergePulledRecord,
  mustAttemptImagePull,
  normalizeVerificationPolicy,
  podPullCredentials,
  pulledCredentialsFor,
  type CredentialCandidate,
  type ImagePullCredentials,
  type ImagePulledRecord,
  type PodInfo,
  type PodPullCredentials,
  type VerificationReason,
} from '../../../src/manager/index.js';
import type { ImagePullCredentialsVerificationPolicy } from '../../../src/config/index.js';
import { FakeImageService, idOf, type PullOutcome } from './fake-image-service.js';

const IMAGE = 'registry.example/team/app:1';
const NAME = 'registry.example/team/app';
const REF = 'sha256:' + 'c'.repeat(64);
const T0 = '2026-07-01T10:00:00.000Z';

function secretCandidate(
  coords: { namespace: string; name: string; uid: string },
  user: string,
  password: string,
): CredentialCandidate {
  return {
    key: 'registry.example',
    auth: { username: user, password: new Secret(password) },
    source: { kind: 'secret', ...coords },
  };
}

const S1 = { namespace: 'team', name: 'pull', uid: 'uid-1' };
const S2 = { namespace: 'team', name: 'other', uid: 'uid-2' };
const POD_SECRET = secretCandidate(S1, 'alice', 'current-password');
const H1 = credentialHash(POD_SECRET.auth);
const H_OLD = credentialHash({ username: 'alice', password: new Secret('old-password') });
const H2 = credentialHash({ username: 'bob', password: new Secret('bob-password') });
const NODE_CRED: CredentialCandidate = {
  key: 'registry.example',
  auth: { username: 'node', password: new Secret('node-password') },
  source: { kind: 'node', file: '/var/lib/kubelet/config.json' },
};

function record(creds: ImagePullCredentials | undefined): ImagePulledRecord {
  return {
    imageRef: REF,
    lastUpdatedTime: T0,
    credentialMapping: creds === undefined ? {} : { [NAME]: creds },
  };
}

// --- the decision table ------------------------------------------------------------------------

interface Row {
  name: string;
  /** The image string the pod asks for. */
  image: string;
  /** What the node remembers (undefined = no record). */
  record: ImagePulledRecord | undefined;
  /** An intent or record exists (false = preloaded). */
  pulledByKubelet: boolean;
  /** The pod's credentials (as candidates). */
  pod: CredentialCandidate[];
  /** Expected mustPull for NeverVerify, NeverVerifyPreloadedImages, NeverVerifyAllowlistedImages, AlwaysVerify. */
  expect: [boolean, boolean, boolean, boolean];
  /** Reason when verification is required (AlwaysVerify column). */
  reason: VerificationReason;
}

const ALLOWLIST = ['registry.example/allowed/*', 'registry.example/exact'];

const ROWS: Row[] = [
  {
    name: 'pulled with this secret',
    image: IMAGE,
    record: record({ kubernetesSecrets: [{ ...S1, credentialHash: H1 }] }),
    pulledByKubelet: true,
    pod: [POD_SECRET],
    expect: [false, false, false, false],
    reason: 'secret-match',
  },
  {
    name: 'pulled with another secret',
    image: IMAGE,
    record: record({ kubernetesSecrets: [{ ...S2, credentialHash: H2 }] }),
    pulledByKubelet: true,
    pod: [POD_SECRET],
    expect: [false, true, true, true],
    reason: 'no-matching-credentials',
  },
  {
    name: 'pulled with rotated credential material (same Secret)',
    image: IMAGE,
    record: record({ kubernetesSecrets: [{ ...S1, credentialHash: H_OLD }] }),
    pulledByKubelet: true,
    pod: [POD_SECRET],
    expect: [false, false, false, false],
    reason: 'secret-rotated',
  },
  {
    name: 'pulled anonymously, pod has no secrets',
    image: IMAGE,
    record: record({ nodePodsAccessible: true }),
    pulledByKubelet: true,
    pod: [],
    expect: [false, false, false, false],
    reason: 'node-accessible',
  },
  {
    name: 'preloaded (no record, no intent), pod has a secret',
    image: IMAGE,
    record: undefined,
    pulledByKubelet: false,
    pod: [POD_SECRET],
    expect: [false, false, true, true],
    reason: 'no-record',
  },
  {
    name: 'preloaded and allowlisted (prefix pattern)',
    image: 'registry.example/allowed/app:1',
    record: undefined,
    pulledByKubelet: false,
    pod: [],
    expect: [false, false, false, true],
    reason: 'no-record',
  },
  {
    name: 'pulled with node-wide credentials, pod has only node-wide credentials',
    image: IMAGE,
    record: record({ nodePodsAccessible: true }),
    pulledByKubelet: true,
    pod: [NODE_CRED],
    expect: [false, false, false, false],
    reason: 'node-accessible',
  },
  {
    name: 'pulled with a secret, pod has only node-wide credentials',
    image: IMAGE,
    record: record({ kubernetesSecrets: [{ ...S1, credentialHash: H1 }] }),
    pulledByKubelet: true,
    pod: [NODE_CRED],
    expect: [false, true, true, true],
    reason: 'no-matching-credentials',
  },
  {
    name: 'pulled with another secret holding the same credential (hash match)',
    image: IMAGE,
    record: record({ kubernetesSecrets: [{ ...S2, credentialHash: H1 }] }),
    pulledByKubelet: true,
    pod: [POD_SECRET],
    expect: [false, false, false, false],
    reason: 'secret-match',
  },
  {
    name: 'interrupted pull reconciled (record without credentials)',
    image: IMAGE,
    record: record(undefined),
    pulledByKubelet: true,
    pod: [POD_SECRET],
    expect: [false, true, true, true],
    reason: 'no-mapping',
  },
  {
    name: 'pull intent only (pull in flight or crashed before the image appeared)',
    image: IMAGE,
    record: undefined,
    pulledByKubelet: true,
    pod: [POD_SECRET],
    expect: [false, true, true, true],
    reason: 'no-record',
  },
  {
    name: 'exact allowlist entry matches only the tag-less string (upstream sharp edge)',
    image: 'registry.example/exact:1',
    record: undefined,
    pulledByKubelet: false,
    pod: [],
    expect: [false, false, true, true],
    reason: 'no-record',
  },
];

const POLICIES: ImagePullCredentialsVerificationPolicy[] = [
  'NeverVerify',
  'NeverVerifyPreloadedImages',
  'NeverVerifyAllowlistedImages',
  'AlwaysVerify',
];

describe('mustAttemptImagePull: the decision table (pure)', () => {
  const allowlist = new AllowlistMatcher(ALLOWLIST);
  for (const row of ROWS) {
    POLICIES.forEach((policy, col) => {
      test(`${policy} × ${row.name}`, () => {
        const input = {
          policy,
          allowlist,
          image: row.image,
          imageRef: REF,
          pulledByKubelet: row.pulledByKubelet,
          record: row.record,
          podCredentials: podPullCredentials(row.pod),
        };
        const v = mustAttemptImagePull(input);
        assert.equal(v.mustPull, row.expect[col], `${v.reason}`);
        assert.equal(v.preloaded, !row.pulledByKubelet);
        if (policy === 'AlwaysVerify') assert.equal(v.reason, row.reason);
        if (!v.mustPull && v.reason !== 'policy-allows') assert.equal(v.policyRequiresVerification, true);
      });
    });
  }

  test('no image id: pull; unreadable records: pull (fail safe) whatever the policy', () => {
    for (const policy of POLICIES) {
      const base = { policy, image: IMAGE, pulledByKubelet: false, record: undefined };
      assert.equal(mustAttemptImagePull({ ...base, imageRef: '' }).reason, 'no-image-ref');
      const v = mustAttemptImagePull({ ...base, imageRef: REF, recordsUnreadable: true });
      assert.deepEqual([v.mustPull, v.reason], [true, 'records-unreadable']);
    }
  });

  test("the pod's credentials are asked for only when a recorded credential list must be matched", () => {
    const base = { policy: 'AlwaysVerify' as const, image: IMAGE, imageRef: REF, pulledByKubelet: true };
    const withSecrets = record({ kubernetesSecrets: [{ ...S1, credentialHash: H1 }] });
    assert.equal(mustAttemptImagePull({ ...base, record: withSecrets }).reason, 'credentials-needed');
    assert.equal(
      mustAttemptImagePull({ ...base, record: record({ nodePodsAccessible: true }) }).reason,
      'node-accessible',
    );
    assert.equal(mustAttemptImagePull({ ...base, record: undefined }).reason, 'no-record');
  });

  test('rotation and foreign-coordinate matches are merged; at 100 Secrets matching stops merging', () => {
    const base = { policy: 'AlwaysVerify' as const, image: IMAGE, imageRef: REF, pulledByKubelet: true };
    const pod: PodPullCredentials = { secrets: [{ ...S1, credentialHash: H1 }] };
    const rotated = mustAttemptImagePull({
      ...base,
      record: record({ kubernetesSecrets: [{ ...S1, credentialHash: H_OLD }] }),
      podCredentials: pod,
    });
    assert.deepEqual(rotated.merge, { ...S1, credentialHash: H1 });
    const foreign = mustAttemptImagePull({
      ...base,
      record: record({ kubernetesSecrets: [{ ...S2, credentialHash: H1 }] }),
      podCredentials: pod,
    });
    assert.equal(foreign.reason, 'secret-match');
    assert.deepEqual(foreign.merge, { ...S1, credentialHash: H1 });
    const many = Array.from({ length: 100 }, (_, i) => ({
      namespace: 'ns',
      name: `s${String(i).padStart(3, '0')}`,
      uid: `u${i}`,
      credentialHash: H2,
    }));
    const full = record({ kubernetesSecrets: [...many, { ...S1, credentialHash: H_OLD }] });
    // Same coordinates with another hash no longer verifies once the list is full.
    assert.equal(mustAttemptImagePull({ ...base, record: full, podCredentials: pod }).mustPull, true);
    // A hash match still verifies, without a merge.
    const fullMatch = record({ kubernetesSecrets: [...many, { ...S2, credentialHash: H1 }] });
    const v = mustAttemptImagePull({ ...base, record: fullMatch, podCredentials: pod });
    assert.deepEqual([v.mustPull, v.merge], [false, undefined]);
  });

  test('an empty recorded hash never matches by hash', () => {
    const v = mustAttemptImagePull({
      policy: 'AlwaysVerify',
      image: IMAGE,
      imageRef: REF,
      pulledByKubelet: true,
      record: record({ kubernetesSecrets: [{ ...S2, credentialHash: '' }] }),
      podCredentials: { secrets: [{ ...S1, credentialHash: '' }] },
    });
    assert.equal(v.mustPull, true);
  });

  test('service-account-mode plugin credentials match by ServiceAccount', () => {
    const sa = { namespace: 'team', name: 'builder', uid: 'sa-uid' };
    const plugin: CredentialCandidate = {
      key: 'registry.example',
      auth: { username: 'x', password: new Secret('token') },
      source: { kind: 'plugin', plugin: 'acr', pluginServiceAccount: sa } as CredentialCandidate['source'],
    };
    const pod = podPullCredentials([plugin]);
    assert.deepEqual(pod, { secrets: [], serviceAccount: sa });
    assert.deepEqual(pulledCredentialsFor(plugin), { kubernetesServiceAccounts: [sa] });
    const base = { policy: 'AlwaysVerify' as const, image: IMAGE, imageRef: REF, pulledByKubelet: true };
    const hit = mustAttemptImagePull({
      ...base,
      record: record({ kubernetesServiceAccounts: [sa] }),
      podCredentials: pod,
    });
    assert.equal(hit.reason, 'service-account-match');
    const miss = mustAttemptImagePull({
      ...base,
      record: record({ kubernetesServiceAccounts: [{ ...sa, uid: 'other' }] }),
      podCredentials: pod,
    });
    assert.equal(miss.mustPull, true);
  });

  test('what a successful pull records, by credential source', () => {
    assert.deepEqual(pulledCredentialsFor(undefined), { nodePodsAccessible: true });
    assert.deepEqual(pulledCredentialsFor(NODE_CRED), { nodePodsAccessible: true });
    assert.deepEqual(pulledCredentialsFor({ ...NODE_CRED, source: { kind: 'flag' } }), {
      nodePodsAccessible: true,
    });
    assert.deepEqual(pulledCredentialsFor({ ...NODE_CRED, source: { kind: 'plugin', plugin: 'p' } }), {
      nodePodsAccessible: true,
    });
    assert.deepEqual(pulledCredentialsFor(POD_SECRET), {
      kubernetesSecrets: [{ ...S1, credentialHash: H1 }],
    });
    const viaSa = { ...POD_SECRET, source: { kind: 'service-account', ...S2, serviceAccount: 'default' } };
    assert.deepEqual(pulledCredentialsFor(viaSa), { kubernetesSecrets: [{ ...S2, credentialHash: H1 }] });
    // Hashes never contain the password.
    assert.ok(!JSON.stringify(pulledCredentialsFor(POD_SECRET)).includes('current-password'));
  });
});

describe('policy names and the allowlist', () => {
  test('upstream names, the documentation spelling, the default, and an unknown name', () => {
    assert.equal(normalizeVerificationPolicy(''), 'NeverVerifyPreloadedImages');
    assert.equal(normalizeVerificationPolicy(undefined), 'NeverVerifyPreloadedImages');
    assert.equal(normalizeVerificationPolicy('NeverVerifyAllowListedImages'), 'NeverVerifyAllowlistedImages');
    for (const p of POLICIES) assert.equal(normalizeVerificationPolicy(p), p);
    assert.throws(
      () => normalizeVerificationPolicy('Sometimes'),
      (e: unknown) =>
        isKimgError(e, 'CONFIG_INVALID') &&
        e.message === 'unknown image pull credential verification policy: Sometimes',
    );
  });

  test('allowlist patterns are validated with upstream texts and matched on the raw image string', () => {
    const m = new AllowlistMatcher(['registry.example/team/*', 'docker.io/library/nginx']);
    assert.equal(m.matches('registry.example/team/app:1'), true);
    assert.equal(m.matches('registry.example/teamx/app:1'), false);
    assert.equal(m.matches('docker.io/library/nginx'), true);
    assert.equal(m.matches('docker.io/library/nginx:1.25'), false);
    assert.equal(m.matches('nginx'), false);
    assert.equal(m.matchedBy('registry.example/team/a'), 'registry.example/team/*');
    const bad: Array<[string, string]> = [
      [' a.example/b', 'leading/trailing spaces are not allowed:  a.example/b'],
      ['/*', 'at least registry hostname is required'],
      [
        'a.example/*/b',
        "not a valid wildcard pattern, only patterns ending with '/*' are allowed: a.example/*/b",
      ],
      ['a.example/b:1', 'neither tag nor digest is accepted in an image reference: a.example/b:1'],
    ];
    for (const [p, msg] of bad) {
      assert.throws(
        () => new AllowlistMatcher([p]),
        (e: unknown) => isKimgError(e, 'CONFIG_INVALID') && e.message === msg,
      );
    }
  });

  test('an allowlist with another policy is refused', () => {
    assert.throws(
      () =>
        new PullRecordsVerifier({
          records: new MemoryPullRecords(),
          policy: 'AlwaysVerify',
          allowlist: ['a.example/*'],
        }),
      (e: unknown) => isKimgError(e, 'CONFIG_INVALID'),
    );
  });
});

describe('mergePulledRecord (upstream pulledRecordMergeNewCreds)', () => {
  const NOW = Date.parse('2026-07-02T00:00:00Z');
  test('no record: a new one, with the credentials or (unknown pull) with none', () => {
    const a = mergePulledRecord(undefined, REF, NAME, { nodePodsAccessible: true }, NOW);
    assert.deepEqual(a.record, {
      imageRef: REF,
      lastUpdatedTime: '2026-07-02T00:00:00.000Z',
      credentialMapping: { [NAME]: { nodePodsAccessible: true } },
    });
    const b = mergePulledRecord(undefined, REF, NAME, undefined, NOW);
    assert.deepEqual(b.record.credentialMapping, {});
    assert.equal(b.changed, true);
  });

  test('nothing to add: unchanged; a new name: added', () => {
    const r = record({ nodePodsAccessible: true });
    assert.equal(mergePulledRecord(r, REF, NAME, undefined, NOW).changed, false);
    assert.equal(mergePulledRecord(r, REF, NAME, {}, NOW).changed, false);
    const added = mergePulledRecord(
      r,
      REF,
      'registry.example/other',
      { kubernetesSecrets: [{ ...S1, credentialHash: H1 }] },
      NOW,
    );
    assert.equal(added.changed, true);
    assert.deepEqual(Object.keys(added.record.credentialMapping).sort(), ['registry.example/other', NAME]);
    assert.equal(added.record.lastUpdatedTime, '2026-07-02T00:00:00.000Z');
  });

  test('nodePodsAccessible absorbs everything and never changes again', () => {
    const r = record({ kubernetesSecrets: [{ ...S1, credentialHash: H1 }] });
    const a = mergePulledRecord(r, REF, NAME, { nodePodsAccessible: true }, NOW);
    assert.deepEqual(a.record.credentialMapping[NAME], { nodePodsAccessible: true });
    const b = mergePulledRecord(
      a.record,
      REF,
      NAME,
      { kubernetesSecrets: [{ ...S2, credentialHash: H2 }] },
      NOW,
    );
    assert.equal(b.changed, false);
  });

  test('Secrets: a set by coordinates, the new hash wins, sorted by namespace, name, uid', () => {
    const r = record({ kubernetesSecrets: [{ ...S1, credentialHash: H_OLD }] });
    const a = mergePulledRecord(r, REF, NAME, { kubernetesSecrets: [{ ...S2, credentialHash: H2 }] }, NOW);
    assert.deepEqual(
      a.record.credentialMapping[NAME]?.kubernetesSecrets?.map((s) => s.name),
      ['other', 'pull'],
    );
    const b = mergePulledRecord(
      a.record,
      REF,
      NAME,
      { kubernetesSecrets: [{ ...S1, credentialHash: H1 }] },
      NOW,
    );
    assert.equal(
      b.record.credentialMapping[NAME]?.kubernetesSecrets?.find((s) => s.name === 'pull')?.credentialHash,
      H1,
    );
    assert.equal(b.record.credentialMapping[NAME]?.kubernetesSecrets?.length, 2);
    assert.equal(
      mergePulledRecord(b.record, REF, NAME, { kubernetesSecrets: [{ ...S1, credentialHash: H1 }] }, NOW)
        .changed,
      false,
    );
    // The input record is never mutated.
    assert.equal(r.credentialMapping[NAME]?.kubernetesSecrets?.[0]?.credentialHash, H_OLD);
  });
});

// --- the verifier over records ------------------------------------------------------------------

function verifierEnv(policy = 'NeverVerifyPreloadedImages', allowlist: string[] = []) {
  const records = new MemoryPullRecords();
  const notices: string[] = [];
  const clock = new FakeClock(Date.parse(T0));
  const verifier = new PullRecordsVerifier({
    records,
    policy,
    allowlist,
    clock,
    onNotice: (n) => notices.push(n.message),
  });
  return { records, verifier, notices, clock };
}

describe('PullRecordsVerifier', () => {
  test('the table again, through the verifier and the records (same expectations)', async () => {
    for (const row of ROWS) {
      for (const [col, policy] of POLICIES.entries()) {
        const env = verifierEnv(policy, policy === 'NeverVerifyAllowlistedImages' ? ALLOWLIST : []);
        if (row.record !== undefined) await env.records.writeImagePulledRecord(row.record);
        else if (row.pulledByKubelet) await env.records.writeImagePullIntent(row.image);
        const must = await env.verifier.mustAttemptImagePull({
          image: row.image,
          imageRef: REF,
          pod: { name: 'p', namespace: 'team', uid: 'pod-1' },
          getPodCredentials: async () => row.pod,
        });
        assert.equal(must, row.expect[col], `${policy} × ${row.name}`);
      }
    }
  });

  test('a rotated Secret is recorded without a pull; the old hash is replaced', async () => {
    const env = verifierEnv('AlwaysVerify');
    await env.records.writeImagePulledRecord(
      record({ kubernetesSecrets: [{ ...S1, credentialHash: H_OLD }] }),
    );
    const ex = await env.verifier.explain(IMAGE, REF, async () => [POD_SECRET]);
    assert.equal(ex.verdict.reason, 'secret-rotated');
    // explain is read-only.
    assert.equal(
      (await env.records.getImagePulledRecord(REF))?.credentialMapping[NAME]?.kubernetesSecrets?.[0]
        ?.credentialHash,
      H_OLD,
    );
    const pod = { name: 'p', namespace: 'team', uid: 'pod-1' };
    assert.equal(
      await env.verifier.mustAttemptImagePull({
        image: IMAGE,
        imageRef: REF,
        pod,
        getPodCredentials: async () => [POD_SECRET],
      }),
      false,
    );
    const after = await env.records.getImagePulledRecord(REF);
    assert.deepEqual(after?.credentialMapping[NAME]?.kubernetesSecrets, [{ ...S1, credentialHash: H1 }]);
    // explain redacts hashes.
    assert.ok(ex.record?.credentialMapping[NAME]?.kubernetesSecrets?.[0]?.credentialHash.endsWith('…'));
    assert.ok(!JSON.stringify(ex).includes(H_OLD));
  });

  test('getPodCredentials is not called when the policy waives verification or the image is node-accessible', async () => {
    const env = verifierEnv('NeverVerifyPreloadedImages');
    let calls = 0;
    const get = async () => {
      calls++;
      return [POD_SECRET];
    };
    const req = {
      image: IMAGE,
      imageRef: REF,
      pod: { name: 'p', namespace: 'n', uid: 'u' },
      getPodCredentials: get,
    };
    assert.equal(await env.verifier.mustAttemptImagePull(req), false); // preloaded
    await env.records.writeImagePulledRecord(record({ nodePodsAccessible: true }));
    assert.equal(await env.verifier.mustAttemptImagePull(req), false);
    assert.equal(calls, 0);
  });

  test('a corrupt record for the image fails safe (pull) and is reported', async () => {
    const env = verifierEnv('NeverVerifyPreloadedImages');
    await env.records.writeImagePulledRecord(record({ nodePodsAccessible: true }));
    const [name] = [...env.records.rawPulled.keys()];
    env.records.rawPulled.set(name as string, '{not json');
    const ex = await env.verifier.explain(IMAGE, REF);
    assert.deepEqual([ex.verdict.mustPull, ex.verdict.reason], [true, 'records-unreadable']);
    assert.deepEqual(env.notices, ['unable to access the image pull records']);
  });

  test('intents: written before a pull, ref-counted, removed when the last pull ends', async () => {
    const env = verifierEnv();
    await env.verifier.recordPullIntent(IMAGE);
    await env.verifier.recordPullIntent(IMAGE);
    assert.equal(env.verifier.intentCount(IMAGE), 2);
    await env.verifier.recordImagePullFailed(IMAGE);
    assert.equal(await env.records.imagePullIntentExists(IMAGE), true);
    await env.verifier.recordImagePulled(IMAGE, REF, POD_SECRET);
    assert.equal(await env.records.imagePullIntentExists(IMAGE), false);
    assert.equal(env.verifier.intentCount(IMAGE), 0);
    const r = await env.records.getImagePulledRecord(REF);
    assert.deepEqual(r?.credentialMapping, {
      [NAME]: { kubernetesSecrets: [{ ...S1, credentialHash: H1 }] },
    });
  });

  test('a failed record write keeps the intent (the image still counts as pulled by the node)', async () => {
    const env = verifierEnv();
    const orig = env.records.writeImagePulledRecord.bind(env.records);
    env.records.writeImagePulledRecord = async () => {
      throw new KimgError('STORE_IO', 'disk full');
    };
    await env.verifier.recordPullIntent(IMAGE);
    await env.verifier.recordImagePulled(IMAGE, REF, undefined);
    assert.equal(await env.records.imagePullIntentExists(IMAGE), true);
    assert.deepEqual(env.notices, ['failed to write image pulled record']);
    env.records.writeImagePulledRecord = orig;
    // Preloaded policy still verifies: the intent marks the image as pulled by the node.
    assert.equal((await env.verifier.explain(IMAGE, REF, async () => [])).verdict.reason, 'no-record');
  });

  test('an intent that cannot be written stops the pull with STORE_IO', async () => {
    const env = verifierEnv();
    env.records.writeImagePullIntent = async () => {
      throw new KimgError('STORE_IO', 'cannot write');
    };
    await assert.rejects(env.verifier.recordPullIntent(IMAGE), (e: unknown) => isKimgError(e, 'STORE_IO'));
    assert.equal(env.verifier.intentCount(IMAGE), 0);
  });

  test('start-up reconciliation: an intent for a present image becomes a record with no credentials', async () => {
    const env = verifierEnv();
    await env.records.writeImagePullIntent(IMAGE);
    await env.records.writeImagePullIntent('registry.example/gone:1');
    const report = await env.verifier.initialize({
      listImages: async () => [{ id: REF, repoTags: [IMAGE], repoDigests: [], size: 1, pinned: false }],
    });
    assert.deepEqual(report.reconciled, [{ image: IMAGE, imageRef: REF }]);
    assert.deepEqual(report.kept, ['registry.example/gone:1']);
    assert.equal(await env.records.imagePullIntentExists(IMAGE), false);
    const r = await env.records.getImagePulledRecord(REF);
    assert.deepEqual(r?.credentialMapping, {});
    // The next pod must verify, whatever its credentials (fail safe).
    const ex = await env.verifier.explain(IMAGE, REF, async () => [POD_SECRET]);
    assert.deepEqual([ex.verdict.mustPull, ex.verdict.reason], [true, 'no-mapping']);
  });

  test('prune: records of images no longer present and older than the cut-off go', async () => {
    const env = verifierEnv();
    const other = 'sha256:' + 'd'.repeat(64);
    await env.records.writeImagePulledRecord(record({ nodePodsAccessible: true }));
    await env.records.writeImagePulledRecord({ imageRef: other, lastUpdatedTime: T0, credentialMapping: {} });
    const fresh = 'sha256:' + 'e'.repeat(64);
    await env.records.writeImagePulledRecord({
      imageRef: fresh,
      lastUpdatedTime: '2026-07-03T00:00:00Z',
      credentialMapping: {},
    });
    const removed = await env.verifier.pruneUnknownRecords([REF], Date.parse('2026-07-02T00:00:00Z'));
    assert.deepEqual(removed, [other]);
    assert.ok(await env.records.getImagePulledRecord(fresh));
  });
});

// --- the image manager with the verifier --------------------------------------------------------

describe('ImageManager + PullRecordsVerifier', () => {
  const POD_A: PodInfo = { name: 'a', namespace: 'team', uid: 'pod-a' };
  const POD_B: PodInfo = { name: 'b', namespace: 'team', uid: 'pod-b' };
  const POD_C: PodInfo = { name: 'c', namespace: 'team', uid: 'pod-c' };

  function managerEnv(policy: string) {
    const clock = new FakeClock(Date.parse(T0));
    const service = new FakeImageService(clock);
    const records = new MemoryPullRecords();
    const verifier = new PullRecordsVerifier({ records, policy, clock });
    const manager = new ImageManager({ imageService: service, clock, verifier });
    const ensure = (pod: PodInfo, credentials: CredentialCandidate[], pullPolicy = 'IfNotPresent') =>
      manager.ensureImageExists({
        pod,
        container: { name: 'app', image: IMAGE, imagePullPolicy: pullPolicy },
        credentials,
      });
    return { clock, service, records, verifier, manager, ensure };
  }

  test('A pulls with its Secret; B (no secrets) must pull and is refused; C (same Secret) uses it', async () => {
    const env = managerEnv('NeverVerifyPreloadedImages');
    env.service.outcomeByUser = new Map<string, PullOutcome>([
      ['alice', 'ok'],
      ['', new KimgError('UNAUTHORIZED', 'pulling from registry.example: authentication required (401)')],
    ]);
    const a = await env.ensure(POD_A, [POD_SECRET]);
    assert.equal(a.action, 'pulled');
    const rec = await env.records.getImagePulledRecord(idOf(IMAGE));
    assert.deepEqual(rec?.credentialMapping[NAME]?.kubernetesSecrets, [{ ...S1, credentialHash: H1 }]);

    env.service.resetCalls();
    const b = await env.ensure(POD_B, []);
    assert.equal(b.ok, false);
    assert.equal(b.reason, 'ErrImagePull');
    assert.equal(b.error?.code, 'CREDENTIALS_NOT_VERIFIED');
    assert.match(b.message, /is present on the node, but this pod's credentials were not verified/);
    assert.match(b.message, /401/);
    assert.deepEqual(env.service.ops(), ['ImageStatus', 'PullImage']);
    // The event keeps the kubelet's text.
    assert.deepEqual(
      b.events.map((e) => e.reason),
      ['Pulling', 'Failed', 'Failed'],
    );
    assert.equal(b.events[2]?.message, 'Error: ErrImagePull');
    assert.equal(
      b.events[1]?.message,
      `Failed to pull image "${IMAGE}": pulling from registry.example: authentication required (401)`,
    );

    env.service.resetCalls();
    const c = await env.ensure(POD_C, [POD_SECRET]);
    assert.equal(c.action, 'used');
    assert.equal(
      c.message,
      `Container image "${IMAGE}" already present on machine and can be accessed by the pod`,
    );
    assert.deepEqual(env.service.ops(), ['ImageStatus']);
    assert.equal(await env.records.imagePullIntentExists(IMAGE), false);
  });

  test('NeverVerify: B uses the image without a pull', async () => {
    const env = managerEnv('NeverVerify');
    await env.ensure(POD_A, [POD_SECRET]);
    env.service.resetCalls();
    const b = await env.ensure(POD_B, []);
    assert.equal(b.action, 'used');
    assert.deepEqual(env.service.ops(), ['ImageStatus']);
  });

  test('preloaded image: used under the default policy, pulled under AlwaysVerify; Never gives ErrImageNeverPull', async () => {
    const d = managerEnv('NeverVerifyPreloadedImages');
    d.service.add(IMAGE);
    assert.equal((await d.ensure(POD_B, [])).action, 'used');
    const always = managerEnv('AlwaysVerify');
    always.service.add(IMAGE);
    always.service.outcomes = [new KimgError('UNAUTHORIZED', 'authentication required')];
    const r = await always.ensure(POD_B, []);
    assert.equal(r.error?.code, 'CREDENTIALS_NOT_VERIFIED');
    const never = await always.ensure({ ...POD_B, uid: 'pod-b2' }, [], 'Never');
    assert.equal(never.reason, 'ErrImageNeverPull');
  });

  test('a verification pull that succeeds records the new credential; a later pod with it skips the registry', async () => {
    const env = managerEnv('NeverVerifyPreloadedImages');
    await env.ensure(POD_A, [POD_SECRET]);
    const bob = secretCandidate(S2, 'bob', 'bob-password');
    const b = await env.ensure(POD_B, [bob]);
    assert.equal(b.action, 'pulled');
    const rec = await env.records.getImagePulledRecord(idOf(IMAGE));
    assert.deepEqual(
      rec?.credentialMapping[NAME]?.kubernetesSecrets?.map((s) => s.name),
      ['other', 'pull'],
    );
    env.service.resetCalls();
    assert.equal((await env.ensure(POD_C, [bob])).action, 'used');
    assert.deepEqual(env.service.ops(), ['ImageStatus']);
  });

  test('no password, username or hash of a credential appears in results, events or explain', async () => {
    const env = managerEnv('AlwaysVerify');
    const canary = 'canary-Pa55word-1234';
    const cred = secretCandidate(S1, 'carol', canary);
    await env.ensure(POD_A, [cred]);
    const ex = await env.verifier.explain(IMAGE, idOf(IMAGE), async () => [cred]);
    const text = JSON.stringify([ex, [...env.records.rawPulled.values()]]);
    assert.ok(!text.includes(canary));
    assert.ok(!JSON.stringify(ex).includes(credentialHash(cred.auth)));
  });
});
