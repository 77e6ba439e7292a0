/**
 * The explanation chain (`explainImage`) as tables of cases: policy origin and its reason, presence,
 * credentials, back-off, verification of a present image, the decision and the "next" sentence — the
 * same chain `kimg explain` renders.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  lookupPullCredentials,
  parseDockerConfig,
  type PullCredentialLookup,
} from '../../../src/credentials/index.js';
import {
  MemoryPullRecords,
  PullRecordsVerifier,
  explainImage,
  humanDuration,
  imageExplainTarget,
  podExplainTargets,
  type BackoffEntry,
  type ExplainDeps,
  type ExplainTarget,
  type ImageInfo,
} from '../../../src/manager/index.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const PRESENT_ID = 'sha256:' + 'c'.repeat(64);
const POD = { name: 'web', namespace: 'default', uid: 'uid-1' };

function service(present: readonly string[]): ExplainDeps['imageService'] {
  return {
    imageStatus: async (spec): Promise<ImageInfo | undefined> =>
      present.includes(spec.image)
        ? { id: PRESENT_ID, repoTags: [spec.image], repoDigests: [], size: 42, pinned: false }
        : undefined,
  };
}

/** A lookup over one docker config with a credential for `r.io` (the real keyring). */
async function lookup(image: string, withCreds: boolean): Promise<PullCredentialLookup> {
  return lookupPullCredentials(
    image,
    withCreds
      ? {
          dockerConfigs: [
            parseDockerConfig(
              JSON.stringify({ auths: { 'r.io': { auth: Buffer.from('alice:pw').toString('base64') } } }),
            ),
          ],
        }
      : {},
    { explain: true },
  );
}

function backoff(image: string, inBackOff: boolean): BackoffEntry {
  return {
    key: `${POD.uid}_${image}`,
    podUID: POD.uid,
    image,
    backoffMs: 20_000,
    lastUpdateMs: NOW - 1000,
    retryAtMs: NOW + 19_000,
    inBackOff,
    expired: false,
    lastError: 'ErrImagePull: not found',
  } as BackoffEntry;
}

describe('imageExplainTarget: the policy and its origin', () => {
  const cases: [string, { pullPolicy?: string; alwaysPullImages?: boolean }, string, string][] = [
    ['busybox', {}, 'Always', 'defaulted'],
    ['busybox:latest', {}, 'Always', 'defaulted'],
    ['busybox:1.36', {}, 'IfNotPresent', 'defaulted'],
    ['busybox@sha256:' + 'a'.repeat(64), {}, 'IfNotPresent', 'defaulted'],
    ['busybox:1.36', { pullPolicy: 'Never' }, 'Never', 'set'],
    ['busybox:1.36', { pullPolicy: 'Never', alwaysPullImages: true }, 'Always', 'always-pull-images'],
  ];
  for (const [image, opts, policy, origin] of cases) {
    test(`${image} ${JSON.stringify(opts)} → ${policy} (${origin})`, () => {
      const t = imageExplainTarget(image, opts);
      assert.equal(t.policy, policy);
      assert.equal(t.origin, origin);
    });
  }
});

describe('podExplainTargets: origin from the pod as written, policy from the defaulted pod', () => {
  const written = {
    spec: {
      initContainers: [{ name: 'init', image: 'r.io/init:1' }],
      containers: [
        { name: 'app', image: 'r.io/app:1', imagePullPolicy: 'Always' },
        { name: 'side', image: 'r.io/side' },
      ],
    },
  };
  const defaulted = {
    spec: {
      initContainers: [{ name: 'init', image: 'r.io/init:1', imagePullPolicy: 'IfNotPresent' }],
      containers: [
        { name: 'app', image: 'r.io/app:1', imagePullPolicy: 'Always' },
        { name: 'side', image: 'r.io/side', imagePullPolicy: 'Always' },
      ],
    },
  };
  test('every container, in init-then-regular order', () => {
    const ts = podExplainTargets(POD, defaulted, written);
    assert.deepEqual(
      ts.map((t) => [t.container, t.policy, t.origin]),
      [
        ['init', 'IfNotPresent', 'defaulted'],
        ['app', 'Always', 'set'],
        ['side', 'Always', 'defaulted'],
      ],
    );
  });
  test('--container and AlwaysPullImages', () => {
    const ts = podExplainTargets(POD, defaulted, written, { container: 'init', alwaysPullImages: true });
    assert.deepEqual(
      ts.map((t) => [t.container, t.origin]),
      [['init', 'always-pull-images']],
    );
  });
});

interface Case {
  name: string;
  target: ExplainTarget;
  present?: string[];
  creds?: boolean;
  backoff?: BackoffEntry[];
  verify?: 'AlwaysVerify';
  decision?: [string, string];
  next: RegExp;
  why?: RegExp;
}

const T = (
  image: string,
  policy: string | undefined,
  origin: ExplainTarget['origin'] = 'set',
): ExplainTarget => ({
  pod: POD,
  container: 'app',
  image,
  policy,
  origin,
});

const CASES: Case[] = [
  {
    name: 'an invalid name is explained, not thrown',
    target: T('UPPER/Case:1', 'IfNotPresent'),
    next: /^fail with InvalidImageName/,
  },
  {
    name: 'IfNotPresent and present: use it',
    target: T('r.io/app:1', 'IfNotPresent'),
    present: ['r.io/app:1'],
    decision: ['use', 'present'],
    next: /^use the present image sha256:c{64}: no pull/,
    why: /^set in the pod spec$/,
  },
  {
    name: 'IfNotPresent, absent, no credential: anonymous pull',
    target: T('r.io/app:1', 'IfNotPresent'),
    decision: ['pull', 'not-present'],
    next: /^pull r\.io\/app:1 anonymously \(no credential matches\), because the image is not present$/,
  },
  {
    name: 'absent with a matching credential: tried in order',
    target: T('r.io/app:1', 'IfNotPresent'),
    creds: true,
    decision: ['pull', 'not-present'],
    next: /^pull r\.io\/app:1 trying 1 matching credential in order, because/,
  },
  {
    name: 'Never and absent: ErrImageNeverPull',
    target: T('r.io/app:1', 'Never'),
    decision: ['never-pull-error', 'not-present'],
    next: /^fail with ErrImageNeverPull/,
  },
  {
    name: 'defaulted Always for a missing tag: pulls even when present',
    target: T('r.io/app', 'Always', 'defaulted'),
    present: ['r.io/app:latest'],
    decision: ['pull', 'policy-always'],
    next: /because the policy is Always$/,
    why: /no tag \(it means `latest`\): Always$/,
  },
  {
    name: 'an unknown policy acts like Always',
    target: T('r.io/app:1', 'Sometimes'),
    decision: ['pull', 'unknown-policy'],
    next: /"Sometimes" is not one the kubelet knows/,
    why: /treats like Always$/,
  },
  {
    name: 'in back-off: refused until the window ends, then pulled',
    target: T('r.io/app:1', 'IfNotPresent'),
    backoff: [backoff('r.io/app:1', true)],
    decision: ['pull', 'not-present'],
    next: /^refuse with ImagePullBackOff until 2026-01-01T00:00:19\.000Z \(in 19s; .*\), then pull r\.io\/app:1/,
  },
  {
    name: 'AlwaysVerify, present, no record for this pod: pulled to verify',
    target: T('r.io/app:1', 'IfNotPresent'),
    present: ['r.io/app:1'],
    verify: 'AlwaysVerify',
    decision: ['pull', 'not-verified'],
    next: /because the image is present but not verified for this pod$/,
  },
];

describe('explainImage: the decision chain', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const x = await explainImage(c.target, {
        imageService: service(c.present ?? []),
        backoff: c.backoff ?? [],
        credentials: (image) => lookup(image, c.creds === true),
        verifying: c.verify !== undefined,
        ...(c.verify !== undefined
          ? { verifier: new PullRecordsVerifier({ records: new MemoryPullRecords(), policy: c.verify }) }
          : {}),
        nowMs: NOW,
      });
      assert.match(x.next, c.next);
      if (c.decision === undefined) {
        assert.equal(x.reference.valid, false);
        assert.equal(x.decision, undefined);
        assert.deepEqual(x.credentials.matches, []);
      } else {
        assert.deepEqual([x.decision?.action, x.decision?.reason], c.decision);
        assert.equal(x.reference.valid, true);
      }
      if (c.why !== undefined) assert.match(x.policy.why, c.why);
      assert.deepEqual(x.pod, POD);
      if (c.creds === true) assert.deepEqual(x.credentials.matches[0]?.username, 'alice');
      if (c.backoff !== undefined) assert.equal(x.backoff[0]?.lastError, 'ErrImagePull: not found');
      if (c.verify !== undefined) assert.equal(x.verification?.verdict.mustPull, true);
      assert.ok(!JSON.stringify(x).includes('"pw"'), 'no password in the explanation');
    });
  }
});

describe('humanDuration', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [59_000, '59s'],
    [192_000, '3m12s'],
    [4 * 3600_000 + 5 * 60_000, '4h5m'],
    [3 * 86400_000, '3d'],
  ];
  for (const [ms, text] of cases) test(`${ms} ms → ${text}`, () => assert.equal(humanDuration(ms), text));
});
