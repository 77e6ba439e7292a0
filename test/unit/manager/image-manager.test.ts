/**
 * The image manager's step tables (kubelet `image_manager_test.go` style): each scenario is a sequence
 * of `ensureImageExists` steps with the expected image-service calls, result, reason, error code,
 * event reasons and texts, while a fake clock advances. Every table runs against BOTH pullers.
 */
import { FakeClock } from '../../helpers/clock.js';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KimgError, type KimgErrorCode } from '../../../src/errors/index.js';
import { Secret } from '../../../src/credentials/index.js';
import {
  FileBackoffStore,
  ImageManager,
  backoffFilePath,
  createPuller,
  imageManagerOptionsFromConfig,
  type CredentialCandidate,
  type CredentialVerifier,
  type EnsureImageResult,
  type ImageManagerOptions,
  type PodInfo,
} from '../../../src/manager/index.js';
import { MemoryEventRecorder } from '../../../src/testing/index.js';
import { parseNodeConfig } from '../../../src/config/index.js';
import { FakeImageService, idOf, until, type PullOutcome } from './fake-image-service.js';

const START = Date.UTC(2026, 6, 1, 10, 0, 0);
const S = 1000;
const POD: PodInfo = { name: 'web', namespace: 'team-a', uid: '0d5f3c1e-0001' };
const IMAGE = 'registry.example/app:1.0';

const PULLERS: Array<{ name: string; options: Partial<ImageManagerOptions> }> = [
  { name: 'serial puller', options: { serializeImagePulls: true } },
  { name: 'parallel puller', options: { serializeImagePulls: false } },
];

function setup(pullerOptions: Partial<ImageManagerOptions>, extra: Partial<ImageManagerOptions> = {}) {
  const clock = new FakeClock(START);
  const service = new FakeImageService(clock);
  const recorder = new MemoryEventRecorder();
  const manager = new ImageManager({ imageService: service, clock, recorder, ...pullerOptions, ...extra });
  return { clock, service, recorder, manager };
}

type Env = ReturnType<typeof setup>;

function ensure(
  env: Env,
  image: string,
  policy: string | undefined,
  extra: { pod?: PodInfo; runtimeHandler?: string; credentials?: CredentialCandidate[] } = {},
): Promise<EnsureImageResult> {
  const container: { name: string; image: string; imagePullPolicy?: string } = { name: 'app', image };
  if (policy !== undefined) container.imagePullPolicy = policy;
  const req: Parameters<ImageManager['ensureImageExists']>[0] = { pod: extra.pod ?? POD, container };
  if (extra.runtimeHandler !== undefined) req.runtimeHandler = extra.runtimeHandler;
  if (extra.credentials !== undefined) req.credentials = extra.credentials;
  return env.manager.ensureImageExists(req);
}

// --- the step table -----------------------------------------------------------------------------

interface Step {
  /** Clock advance before the step. */
  advanceMs?: number;
  calls: string[];
  ok: boolean;
  reason?: string;
  code?: KimgErrorCode;
  events: string[];
  /** Exact event messages, in order (when given). */
  texts?: string[];
  /** The result's status message (exact). */
  message?: string;
}

interface Scenario {
  name: string;
  image?: string;
  policy?: string;
  present?: boolean;
  statusError?: KimgError;
  outcomes?: PullOutcome[];
  pullMs?: number;
  gates?: Record<string, boolean>;
  steps: Step[];
}

async function runScenario(pullerOptions: Partial<ImageManagerOptions>, sc: Scenario): Promise<void> {
  const env = setup(pullerOptions, sc.gates ? { featureGates: sc.gates } : {});
  const image = sc.image ?? IMAGE;
  if (sc.present) env.service.add(image);
  if (sc.statusError) env.service.statusError = sc.statusError;
  if (sc.outcomes) env.service.outcomes = sc.outcomes;
  env.service.pullMs = sc.pullMs ?? 1500;
  for (const [i, step] of sc.steps.entries()) {
    const where = `${sc.name}, step ${i + 1}`;
    if (step.advanceMs !== undefined) env.clock.advance(step.advanceMs);
    env.service.resetCalls();
    const r = await ensure(env, image, sc.policy);
    assert.deepEqual(env.service.ops(), step.calls, `${where}: image service calls`);
    assert.equal(r.ok, step.ok, `${where}: ok (message: ${r.message})`);
    assert.equal(r.reason, step.reason, `${where}: reason`);
    assert.equal(r.error?.code, step.code, `${where}: error code`);
    // A failed step ends with the runtime's container event `Failed` `Error: <reason>`; the table
    // lists the image manager's own events before it.
    const events = withoutContainerEvent(r, where);
    assert.deepEqual(
      events.map((e) => e.reason),
      step.events,
      `${where}: event reasons`,
    );
    if (step.texts !== undefined) {
      assert.deepEqual(
        events.map((e) => e.message),
        step.texts,
        `${where}: event texts`,
      );
    }
    if (step.message !== undefined) assert.equal(r.message, step.message, `${where}: status message`);
    for (const e of r.events) {
      assert.deepEqual(e.object, {
        pod: { name: POD.name, namespace: POD.namespace, uid: POD.uid },
        container: 'app',
      });
      assert.equal(
        e.type,
        e.reason === 'Failed' || e.reason === 'InspectFailed' || e.reason === 'ErrImageNeverPull'
          ? 'Warning'
          : 'Normal',
        `${where}: event type of ${e.reason}`,
      );
    }
  }
  // Everything the results listed also went to the recorder, in order.
  assert.deepEqual(
    env.recorder.events.filter((e) => !isContainerEvent(e)).map((e) => e.reason),
    sc.steps.flatMap((s) => s.events),
  );
}

/** The runtime's container event for a container that could not start: Warning `Failed` `Error: <reason>`. */
function isContainerEvent(e: { reason: string; message: string }): boolean {
  return e.reason === 'Failed' && e.message.startsWith('Error: ');
}

/** The result's events without its last container event, which a failure must have (and only a failure). */
function withoutContainerEvent(r: EnsureImageResult, where = ''): EnsureImageResult['events'] {
  const last = r.events[r.events.length - 1];
  if (r.ok) {
    assert.ok(!r.events.some(isContainerEvent), `${where}: no container event after success`);
    return r.events;
  }
  assert.equal(last?.reason, 'Failed', `${where}: a failure ends with the container event`);
  assert.equal(last?.type, 'Warning');
  assert.equal(last?.message, `Error: ${r.reason}`, `${where}: container event text`);
  return r.events.slice(0, -1);
}

const REGISTRY_OUTCOMES: Record<string, { code?: KimgErrorCode; text?: string }> = {
  ok: {},
  'not found': {
    code: 'NOT_FOUND',
    text: 'failed to resolve reference "registry.example/app:1.0": registry.example/app:1.0: not found',
  },
  unauthorized: {
    code: 'UNAUTHORIZED',
    text: 'pull access denied, repository does not exist or may require authorization: authorization failed',
  },
  unavailable: {
    code: 'REGISTRY_UNAVAILABLE',
    text: 'dial tcp: lookup registry.example: no such host',
  },
};

const PRESENCE = ['present', 'absent', 'inspect error'] as const;
const POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

/** The expected steps for one policy × presence × registry outcome (the kubelet's truth table). */
function matrixScenario(policy: string, presence: (typeof PRESENCE)[number], outcome: string): Scenario {
  const reg = REGISTRY_OUTCOMES[outcome] ?? {};
  const fails = reg.code !== undefined;
  const status = policy === 'Always' ? [] : ['ImageStatus'];
  const q = `"${IMAGE}"`;
  const sizeAfterPull = presence === 'inspect error' ? 0 : 4242;
  const pullOk: Step = {
    calls: [...status, 'PullImage', 'ImageStatus'],
    ok: true,
    events: ['Pulling', 'Pulled'],
    texts: [
      `Pulling image ${q}`,
      `Successfully pulled image ${q} in 1.5s (1.5s including waiting). Image size: ${sizeAfterPull} bytes.`,
    ],
    message: '',
  };
  const pullFail: Step = {
    calls: [...status, 'PullImage'],
    ok: false,
    reason: 'ErrImagePull',
    ...(reg.code ? { code: reg.code } : {}),
    events: ['Pulling', 'Failed'],
    texts: [`Pulling image ${q}`, `Failed to pull image ${q}: ${reg.text}`],
    message: reg.text ?? '',
  };
  const backOff = (advanceMs?: number): Step => ({
    ...(advanceMs === undefined ? {} : { advanceMs }),
    calls: [...status],
    ok: false,
    reason: 'ImagePullBackOff',
    code: 'IMAGE_PULL_BACKOFF',
    events: ['BackOff'],
    texts: [`Back-off pulling image ${q}`],
    message: `Back-off pulling image ${q}: ErrImagePull: ${reg.text}`,
  });
  const used: Step = {
    calls: ['ImageStatus'],
    ok: true,
    events: ['Pulled'],
    texts: [`Container image ${q} already present on machine and can be accessed by the pod`],
    message: `Container image ${q} already present on machine and can be accessed by the pod`,
  };
  const never: Step = {
    calls: ['ImageStatus'],
    ok: false,
    reason: 'ErrImageNeverPull',
    code: 'ERR_IMAGE_NEVER_PULL',
    events: ['ErrImageNeverPull'],
    texts: [`Container image ${q} is not present with pull policy of Never`],
    message: `Container image ${q} is not present with pull policy of Never`,
  };
  const inspectText = 'Failed to inspect image "": rpc error: code = Unavailable desc = connection refused';
  const inspect: Step = {
    calls: ['ImageStatus'],
    ok: false,
    reason: 'ImageInspectError',
    code: 'IMAGE_INSPECT_ERROR',
    events: ['InspectFailed'],
    texts: [inspectText],
    message: inspectText,
  };
  const sc: Scenario = {
    name: `${policy} × ${presence} × registry ${outcome}`,
    policy,
    present: presence === 'present',
    outcomes: [fails ? new KimgError(reg.code ?? 'INTERNAL', reg.text ?? '') : 'ok'],
    steps: [],
  };
  if (presence === 'inspect error') {
    sc.statusError = new KimgError(
      'REGISTRY_UNAVAILABLE',
      'rpc error: code = Unavailable desc = connection refused',
    );
  }
  if (policy !== 'Always' && presence === 'inspect error') {
    sc.steps = [inspect, { ...inspect, advanceMs: 60 * S }];
  } else if (policy !== 'Always' && presence === 'present') {
    sc.steps = [used, { ...used, advanceMs: 60 * S }];
  } else if (policy === 'Never') {
    sc.steps = [never, { ...never, advanceMs: 60 * S }];
  } else if (!fails) {
    // Always pulls every time; IfNotPresent finds the image it just pulled.
    sc.steps = [pullOk, policy === 'Always' ? pullOk : used];
  } else {
    sc.steps = [
      pullFail,
      backOff(),
      backOff(9_999),
      { ...pullFail, advanceMs: 1 },
      backOff(),
      backOff(19_999),
      { ...pullFail, advanceMs: 1 },
    ];
  }
  return sc;
}

for (const puller of PULLERS) {
  describe(`image manager step tables — ${puller.name}`, () => {
    describe('every policy × presence × registry outcome', () => {
      for (const policy of POLICIES) {
        for (const presence of PRESENCE) {
          for (const outcome of Object.keys(REGISTRY_OUTCOMES)) {
            const sc = matrixScenario(policy, presence, outcome);
            test(sc.name, () => runScenario(puller.options, sc));
          }
        }
      }
    });

    const q = `"${IMAGE}"`;
    const hand: Scenario[] = [
      {
        name: 'unknown pull policy pulls without asking for the status (upstream switch falls through)',
        policy: 'Sometimes',
        steps: [
          { calls: ['PullImage', 'ImageStatus'], ok: true, events: ['Pulling', 'Pulled'], message: '' },
        ],
      },
      {
        name: 'gate KubeletEnsureSecretPulledImages off: the short "already present" text',
        policy: 'IfNotPresent',
        present: true,
        gates: { KubeletEnsureSecretPulledImages: false },
        steps: [
          {
            calls: ['ImageStatus'],
            ok: true,
            events: ['Pulled'],
            texts: [`Container image ${q} already present on machine`],
            message: `Container image ${q} already present on machine`,
          },
        ],
      },
      {
        name: 'invalid image name: InspectFailed, InvalidImageName, no image service call',
        image: 'registry.example/app name:1.0',
        policy: 'IfNotPresent',
        steps: [
          {
            calls: [],
            ok: false,
            reason: 'InvalidImageName',
            code: 'INVALID_IMAGE_NAME',
            events: ['InspectFailed'],
            texts: [
              'Failed to apply default image tag "registry.example/app name:1.0": couldn\'t parse image name "registry.example/app name:1.0": invalid reference format',
            ],
          },
        ],
      },
      {
        name: 'an empty image ref from PullImage fails the pull (cri-client "imageRef … is not set")',
        policy: 'Always',
        outcomes: [{ ref: '' }],
        steps: [
          {
            calls: ['PullImage'],
            ok: false,
            reason: 'ErrImagePull',
            code: 'IMAGE_SERVICE_PROTOCOL_ERROR',
            events: ['Pulling', 'Failed'],
            texts: [`Pulling image ${q}`, `Failed to pull image ${q}: imageRef of image ${q} is not set`],
          },
        ],
      },
      {
        name: 'a failure then a success: the window stays (a success does not reset the back-off)',
        policy: 'Always',
        outcomes: [new KimgError('NOT_FOUND', 'not found'), 'ok', new KimgError('NOT_FOUND', 'not found')],
        steps: [
          {
            calls: ['PullImage'],
            ok: false,
            reason: 'ErrImagePull',
            code: 'NOT_FOUND',
            events: ['Pulling', 'Failed'],
          },
          { advanceMs: 10 * S, calls: ['PullImage', 'ImageStatus'], ok: true, events: ['Pulling', 'Pulled'] },
          {
            calls: ['PullImage'],
            ok: false,
            reason: 'ErrImagePull',
            code: 'NOT_FOUND',
            events: ['Pulling', 'Failed'],
          },
          // The third failure doubles the surviving 10 s window to 20 s.
          {
            advanceMs: 19_999,
            calls: [],
            ok: false,
            reason: 'ImagePullBackOff',
            code: 'IMAGE_PULL_BACKOFF',
            events: ['BackOff'],
            message: `Back-off pulling image ${q}: ErrImagePull: not found`,
          },
          {
            advanceMs: 1,
            calls: ['PullImage'],
            ok: false,
            reason: 'ErrImagePull',
            code: 'NOT_FOUND',
            events: ['Pulling', 'Failed'],
          },
        ],
      },
      {
        name: 'an entry idle for more than 600 s expires: the next failure starts again at 10 s',
        policy: 'Always',
        outcomes: [new KimgError('NOT_FOUND', 'not found')],
        steps: [
          {
            calls: ['PullImage'],
            ok: false,
            reason: 'ErrImagePull',
            code: 'NOT_FOUND',
            events: ['Pulling', 'Failed'],
          },
          {
            advanceMs: 10 * S,
            calls: ['PullImage'],
            ok: false,
            reason: 'ErrImagePull',
            code: 'NOT_FOUND',
            events: ['Pulling', 'Failed'],
          },
          {
            advanceMs: 600 * S + 1,
            calls: ['PullImage'],
            ok: false,
            reason: 'ErrImagePull',
            code: 'NOT_FOUND',
            events: ['Pulling', 'Failed'],
          },
          {
            advanceMs: 9_999,
            calls: [],
            ok: false,
            reason: 'ImagePullBackOff',
            code: 'IMAGE_PULL_BACKOFF',
            events: ['BackOff'],
          },
          {
            advanceMs: 1,
            calls: ['PullImage'],
            ok: false,
            reason: 'ErrImagePull',
            code: 'NOT_FOUND',
            events: ['Pulling', 'Failed'],
          },
        ],
      },
    ];
    for (const sc of hand) test(sc.name, () => runScenario(puller.options, sc));

    test('a present image with size 0 is an inspect error (cri-client "Id or size … is not set")', async () => {
      const env = setup(puller.options);
      env.service.add(IMAGE, { size: 0 });
      const r = await ensure(env, IMAGE, 'IfNotPresent');
      assert.equal(r.reason, 'ImageInspectError');
      assert.equal(r.message, `Failed to inspect image "": Id or size of image ${q} is not set`);
      assert.deepEqual(env.service.ops(), ['ImageStatus']);
    });

    test('the back-off ladder 10 → 20 → 40 → 80 → 160 → 300 → 300 s with exact texts', async () => {
      const env = setup(puller.options);
      env.service.outcomes = [new KimgError('NOT_FOUND', 'manifest unknown')];
      const windows: number[] = [];
      for (let i = 0; i < 7; i++) {
        env.service.resetCalls();
        const failed = await ensure(env, 'busybox', 'Always');
        assert.equal(failed.reason, 'ErrImagePull');
        assert.deepEqual(
          failed.events.map((e) => [e.type, e.reason, e.message]),
          [
            ['Normal', 'Pulling', 'Pulling image "busybox"'],
            ['Warning', 'Failed', 'Failed to pull image "busybox": manifest unknown'],
            ['Warning', 'Failed', 'Error: ErrImagePull'],
          ],
        );
        // The CRI spec carries the tag-defaulted image; events keep the pod's spelling.
        assert.deepEqual(
          env.service.calls.map((c) => c.image),
          ['busybox:latest'],
        );
        const [entry] = await env.manager.listBackoff();
        assert.ok(entry);
        assert.equal(entry.key, `${POD.uid}_busybox`);
        assert.equal(entry.lastError, 'ErrImagePull: manifest unknown');
        windows.push(entry.backoffMs / S);
        env.clock.advance(entry.backoffMs - 1);
        env.service.resetCalls();
        const waiting = await ensure(env, 'busybox', 'Always');
        assert.deepEqual(env.service.ops(), [], 'no pull inside the window');
        assert.equal(waiting.reason, 'ImagePullBackOff');
        assert.equal(waiting.error?.code, 'IMAGE_PULL_BACKOFF');
        assert.equal(waiting.error?.details.retryAfterSeconds, 1);
        assert.deepEqual(
          waiting.events.map((e) => [e.type, e.reason, e.message]),
          [
            ['Normal', 'BackOff', 'Back-off pulling image "busybox"'],
            ['Warning', 'Failed', 'Error: ImagePullBackOff'],
          ],
        );
        assert.equal(waiting.message, 'Back-off pulling image "busybox": ErrImagePull: manifest unknown');
        env.clock.advance(1);
      }
      assert.deepEqual(windows, [10, 20, 40, 80, 160, 300, 300]);
    });

    test('back-off is per pod and per image as the pod spells it', async () => {
      const env = setup(puller.options);
      env.service.outcomes = [new KimgError('NOT_FOUND', 'not found')];
      const other: PodInfo = { name: 'api', namespace: 'team-a', uid: '0d5f3c1e-0002' };
      assert.equal((await ensure(env, 'busybox', 'Always')).reason, 'ErrImagePull');
      assert.equal((await ensure(env, 'busybox', 'Always')).reason, 'ImagePullBackOff');
      assert.equal(
        (await ensure(env, 'busybox', 'Always', { pod: other })).reason,
        'ErrImagePull',
        'another pod is not held back',
      );
      assert.equal(
        (await ensure(env, 'busybox:latest', 'Always')).reason,
        'ErrImagePull',
        'another spelling is another key',
      );
      const keys = (await env.manager.listBackoff()).map((e) => e.key);
      assert.deepEqual(keys, [`${POD.uid}_busybox`, `${POD.uid}_busybox:latest`, `${other.uid}_busybox`]);
    });

    test('clearBackoff lets the next ensure pull at once', async () => {
      const env = setup(puller.options);
      env.service.outcomes = [new KimgError('UNAUTHORIZED', 'authorization failed'), 'ok'];
      await ensure(env, IMAGE, 'IfNotPresent');
      assert.equal((await ensure(env, IMAGE, 'IfNotPresent')).reason, 'ImagePullBackOff');
      assert.deepEqual(await env.manager.clearBackoff({ podUID: POD.uid }), [`${POD.uid}_${IMAGE}`]);
      const r = await ensure(env, IMAGE, 'IfNotPresent');
      assert.equal(r.ok, true);
      assert.equal(r.action, 'pulled');
      assert.deepEqual(await env.manager.listBackoff(), []);
    });

    test('default pull policy when the container sets none: no tag → Always, a tag → IfNotPresent', async () => {
      const env = setup(puller.options);
      env.service.add('busybox:latest');
      env.service.add('busybox:1.36');
      const latest = await ensure(env, 'busybox', undefined);
      assert.equal(latest.pullPolicy, 'Always');
      assert.equal(latest.action, 'pulled');
      env.service.resetCalls();
      const pinned = await ensure(env, 'busybox:1.36', undefined);
      assert.equal(pinned.pullPolicy, 'IfNotPresent');
      assert.equal(pinned.action, 'used');
      assert.deepEqual(env.service.ops(), ['ImageStatus']);
    });

    test('the spec carries the tag-defaulted image and the pod annotations; the sandbox names the pod', async () => {
      const env = setup(puller.options);
      const pod: PodInfo = { ...POD, annotations: { 'example.com/team': 'a' } };
      await ensure(env, 'busybox', 'IfNotPresent', { pod });
      const pull = env.service.calls.find((c) => c.op === 'PullImage');
      assert.deepEqual(pull, {
        op: 'PullImage',
        image: 'busybox:latest',
        pod: POD.uid,
        annotations: { 'example.com/team': 'a' },
      });
    });

    describe('credentials (kuberuntime PullImage)', () => {
      const cred = (key: string, user: string, password = 'pw-' + user): CredentialCandidate => ({
        key,
        auth: { username: user, password: new Secret(password) },
        source: { kind: 'secret', namespace: 'team-a', name: `pull-${user}` },
      });

      test('no candidates: one anonymous pull; the resolver gets the normalized repository', async () => {
        const seen: string[] = [];
        const env = setup(puller.options, {
          credentials: async (image) => {
            seen.push(image);
            return [];
          },
        });
        const r = await ensure(env, 'busybox', 'IfNotPresent');
        assert.equal(r.ok, true);
        assert.deepEqual(seen, ['docker.io/library/busybox']);
        assert.deepEqual(
          env.service.calls.filter((c) => c.op === 'PullImage').map((c) => c.user),
          [undefined],
        );
        assert.equal(r.pull?.credentialKey, undefined);
        assert.equal(r.pull?.attempts, 1);
      });

      test('the resolver is not called when no pull is needed', async () => {
        let calls = 0;
        const env = setup(puller.options, {
          credentials: async () => {
            calls++;
            return [];
          },
        });
        env.service.add(IMAGE);
        assert.equal((await ensure(env, IMAGE, 'IfNotPresent')).action, 'used');
        assert.equal(calls, 0);
      });

      test('first candidate refused, second works: two pulls, the second key reported', async () => {
        const env = setup(puller.options, {
          credentials: async () => [cred('registry.example/team', 'alice'), cred('registry.example', 'bob')],
        });
        env.service.outcomeByUser = new Map<string, PullOutcome>([
          ['alice', new KimgError('UNAUTHORIZED', 'alice: authorization failed')],
          ['bob', 'ok'],
        ]);
        const r = await ensure(env, IMAGE, 'IfNotPresent');
        assert.equal(r.ok, true);
        assert.deepEqual(
          env.service.calls.filter((c) => c.op === 'PullImage').map((c) => c.user),
          ['alice', 'bob'],
        );
        assert.equal(r.pull?.credentialKey, 'registry.example');
        assert.equal(r.pull?.attempts, 2);
        assert.deepEqual(
          r.events.map((e) => e.reason),
          ['Pulling', 'Pulled'],
        );
      });

      test('all candidates fail: the aggregate "[e1, e2]", NO anonymous fallback, one back-off', async () => {
        const env = setup(puller.options, {
          credentials: async () => [cred('registry.example/team', 'alice'), cred('registry.example', 'bob')],
        });
        env.service.outcomeByUser = new Map<string, PullOutcome>([
          ['alice', new KimgError('UNAUTHORIZED', 'alice: authorization failed')],
          ['bob', new KimgError('DENIED', 'bob: denied')],
          ['', 'ok'],
        ]);
        const r = await ensure(env, IMAGE, 'IfNotPresent');
        assert.equal(r.ok, false);
        assert.equal(r.reason, 'ErrImagePull');
        assert.equal(r.error?.code, 'NO_CREDENTIALS_ACCEPTED');
        assert.equal(r.message, '[alice: authorization failed, bob: denied]');
        assert.deepEqual(r.error?.details.items, [
          'registry.example/team: UNAUTHORIZED',
          'registry.example: DENIED',
        ]);
        assert.deepEqual(
          env.service.calls.filter((c) => c.op === 'PullImage').map((c) => c.user),
          ['alice', 'bob'],
        );
        assert.equal(
          r.events[1]?.message,
          `Failed to pull image "${IMAGE}": [alice: authorization failed, bob: denied]`,
        );
        const [entry] = await env.manager.listBackoff();
        assert.equal(entry?.backoffMs, 10 * S, 'one credential loop = one failure');
      });

      test('identical errors aggregate to one text without brackets; mixed codes keep the first code', async () => {
        const env = setup(puller.options, {
          credentials: async () => [cred('a.example', 'a'), cred('b.example', 'b')],
        });
        env.service.outcomeByUser = new Map<string, PullOutcome>([
          ['a', new KimgError('NOT_FOUND', 'not found')],
          ['b', new KimgError('NOT_FOUND', 'not found')],
        ]);
        const same = await ensure(env, IMAGE, 'Always');
        assert.equal(same.message, 'not found');
        assert.equal(same.error?.code, 'NOT_FOUND');
        const env2 = setup(puller.options, {
          credentials: async () => [cred('a.example', 'a'), cred('b.example', 'b')],
        });
        env2.service.outcomeByUser = new Map<string, PullOutcome>([
          ['a', new KimgError('REGISTRY_UNAVAILABLE', 'connection refused')],
          ['b', new KimgError('UNAUTHORIZED', 'authorization failed')],
        ]);
        const mixed = await ensure(env2, IMAGE, 'Always');
        assert.equal(mixed.error?.code, 'REGISTRY_UNAVAILABLE');
        assert.equal(mixed.message, '[connection refused, authorization failed]');
      });

      test('a runtime error with the RegistryUnavailable prefix becomes reason RegistryUnavailable (evalCRIPullErr)', async () => {
        const env = setup(puller.options);
        env.service.outcomes = [
          new KimgError(
            'REGISTRY_UNAVAILABLE',
            'RegistryUnavailable: dial tcp 127.0.0.1:1: connect: connection refused',
          ),
        ];
        const r = await ensure(env, IMAGE, 'Always');
        assert.equal(r.reason, 'RegistryUnavailable');
        assert.equal(
          r.message,
          `image pull failed for ${IMAGE} because the registry is unavailable: dial tcp 127.0.0.1:1: connect: connection refused`,
        );
        // the Failed event keeps the runtime's text, as the kubelet's does
        assert.match(
          r.events.find((e) => e.reason === 'Failed')?.message ?? '',
          /RegistryUnavailable: dial tcp/,
        );
        // and the same error without the prefix (kimg's own store, or containerd) stays ErrImagePull
        const env2 = setup(puller.options);
        env2.service.outcomes = [
          new KimgError('REGISTRY_UNAVAILABLE', 'registry 127.0.0.1:1 is unreachable'),
        ];
        assert.equal((await ensure(env2, IMAGE, 'Always')).reason, 'ErrImagePull');
      });

      test('a resolver failure is returned as it is, without an event or a pull', async () => {
        const env = setup(puller.options, {
          credentials: async () => {
            throw new KimgError('SECRET_INVALID', 'secret team-a/pull: .dockerconfigjson is not valid JSON');
          },
        });
        const r = await ensure(env, IMAGE, 'IfNotPresent');
        assert.equal(r.ok, false);
        assert.equal(r.error?.code, 'SECRET_INVALID');
        assert.equal(r.reason, 'ErrImagePull');
        // Only the container event: the keyring error itself is no image manager event.
        assert.deepEqual(
          r.events.map((e) => [e.reason, e.message]),
          [['Failed', 'Error: ErrImagePull']],
        );
        assert.deepEqual(env.service.ops(), ['ImageStatus']);
      });

      test('a password never reaches an event, a message, an error or the back-off file', async (t) => {
        const dir = await mkdtemp(join(tmpdir(), 'kimg-mgr-canary-'));
        t.after(() => rm(dir, { recursive: true, force: true }));
        const canary = 'CANARY-s3cr3t-7f9a';
        const env = setup(puller.options, {
          credentials: async () => [cred('registry.example', 'carol', canary)],
          backoffStore: new FileBackoffStore(dir),
        });
        env.service.outcomes = [new KimgError('UNAUTHORIZED', 'authorization failed for carol')];
        const r = await ensure(env, IMAGE, 'Always');
        const r2 = await ensure(env, IMAGE, 'Always');
        const everything =
          JSON.stringify([r, r2, env.recorder.events]) +
          String(r.error) +
          (await readFile(backoffFilePath(dir), 'utf8'));
        assert.ok(!everything.includes(canary));
      });
    });

    describe('credential verification hook (KEP-2535)', () => {
      function recordingVerifier(mustPull: boolean) {
        const log: string[] = [];
        const verifier: CredentialVerifier = {
          mustAttemptImagePull: async ({ image, imageRef }) => {
            log.push(`must?${image}@${imageRef.slice(0, 14)}`);
            return mustPull;
          },
          recordPullIntent: async (image) => void log.push(`intent:${image}`),
          recordImagePulled: async (image, _ref, c) =>
            void log.push(`pulled:${image}:${c?.key ?? 'anonymous'}`),
          recordImagePullFailed: async (image) => void log.push(`failed:${image}`),
        };
        return { log, verifier };
      }

      test('present but not verified: IfNotPresent pulls with the pod credentials', async () => {
        const { log, verifier } = recordingVerifier(true);
        const env = setup(puller.options, { verifier });
        env.service.add(IMAGE);
        const r = await ensure(env, IMAGE, 'IfNotPresent');
        assert.equal(r.action, 'pulled');
        assert.deepEqual(log, [
          `must?${IMAGE}@${idOf(IMAGE).slice(0, 14)}`,
          `intent:${IMAGE}`,
          `pulled:${IMAGE}:anonymous`,
        ]);
      });

      test('present but not verified with Never: the same ErrImageNeverPull as an absent image', async () => {
        const { verifier } = recordingVerifier(true);
        const env = setup(puller.options, { verifier });
        env.service.add(IMAGE);
        const r = await ensure(env, IMAGE, 'Never');
        assert.equal(r.reason, 'ErrImageNeverPull');
        assert.equal(r.message, `Container image "${IMAGE}" is not present with pull policy of Never`);
        assert.deepEqual(env.service.ops(), ['ImageStatus']);
      });

      test('a back-off refusal records a failed pull; the gate off skips the verifier entirely', async () => {
        const { log, verifier } = recordingVerifier(false);
        const env = setup(puller.options, { verifier });
        env.service.outcomes = [new KimgError('NOT_FOUND', 'not found')];
        await ensure(env, IMAGE, 'Always');
        await ensure(env, IMAGE, 'Always');
        assert.deepEqual(log, [`intent:${IMAGE}`, `failed:${IMAGE}`, `intent:${IMAGE}`, `failed:${IMAGE}`]);
        const off = recordingVerifier(true);
        const env2 = setup(puller.options, {
          verifier: off.verifier,
          featureGates: { KubeletEnsureSecretPulledImages: false },
        });
        env2.service.add(IMAGE);
        assert.equal((await ensure(env2, IMAGE, 'IfNotPresent')).action, 'used');
        await ensure(env2, 'other:1', 'Always');
        assert.deepEqual(off.log, []);
      });

      test('a failing intent record stops the pull with the kubelet text', async () => {
        const env = setup(puller.options, {
          verifier: {
            mustAttemptImagePull: async () => true,
            recordPullIntent: async () => {
              throw new KimgError('STORE_IO', 'disk full');
            },
          },
        });
        const r = await ensure(env, IMAGE, 'Always');
        assert.equal(r.ok, false);
        assert.equal(
          r.message,
          `Failed to record image pull intent for container image "${IMAGE}": disk full`,
        );
        assert.deepEqual(env.service.ops(), []);
      });
    });

    describe('runtime handler keying (RuntimeClassInImageCriApi)', () => {
      test('gate off: the handler is never sent, one record per image', async () => {
        const env = setup(puller.options);
        await ensure(env, IMAGE, 'IfNotPresent', { runtimeHandler: 'kata' });
        await ensure(env, IMAGE, 'IfNotPresent', { runtimeHandler: 'runc' });
        assert.ok(env.service.calls.every((c) => c.handler === undefined));
        assert.equal(env.service.calls.filter((c) => c.op === 'PullImage').length, 1);
        assert.deepEqual(
          (await env.manager.listImages()).map((i) => i.key),
          [idOf(IMAGE)],
        );
      });

      test('gate on: (image, handler) pairs are separate records; removal respects the pair', async () => {
        const env = setup(puller.options, { featureGates: { RuntimeClassInImageCriApi: true } });
        const runc = await ensure(env, IMAGE, 'IfNotPresent', { runtimeHandler: 'runc' });
        const kata = await ensure(env, IMAGE, 'IfNotPresent', { runtimeHandler: 'kata' });
        assert.equal(runc.action, 'pulled');
        assert.equal(kata.action, 'pulled', 'the same image for another handler is another pull');
        assert.deepEqual(kata.spec, { image: IMAGE, runtimeHandler: 'kata' });
        assert.ok(env.service.has(IMAGE, 'runc') && env.service.has(IMAGE, 'kata'));
        assert.deepEqual((await env.manager.listImages()).map((i) => i.key).sort(), [
          `${idOf(IMAGE)},kata`,
          `${idOf(IMAGE)},runc`,
        ]);
        await env.manager.removeImage(IMAGE, { runtimeHandler: 'kata' });
        assert.deepEqual(env.service.calls.at(-1), { op: 'RemoveImage', image: IMAGE, handler: 'kata' });
        assert.ok(env.service.has(IMAGE, 'runc') && !env.service.has(IMAGE, 'kata'));
        env.service.resetCalls();
        assert.equal((await ensure(env, IMAGE, 'IfNotPresent', { runtimeHandler: 'runc' })).action, 'used');
        assert.equal((await ensure(env, IMAGE, 'IfNotPresent', { runtimeHandler: 'kata' })).action, 'pulled');
        assert.deepEqual(
          env.service.calls.map((c) => `${c.op}:${c.handler}`),
          ['ImageStatus:runc', 'ImageStatus:kata', 'PullImage:kata', 'ImageStatus:kata'],
        );
      });
    });

    test('registryPullQPS: without a token the pull fails with "pull QPS exceeded" and backs off', async () => {
      const env = setup(puller.options, { registryPullQPS: 1, registryBurst: 1 });
      env.service.pullMs = 0;
      const other: PodInfo = { name: 'b', namespace: 'x', uid: 'uid-b' };
      assert.equal((await ensure(env, 'a:1', 'Always')).ok, true);
      const refused = await ensure(env, 'b:1', 'Always', { pod: other });
      assert.equal(refused.reason, 'ErrImagePull');
      assert.equal(refused.error?.code, 'TOO_MANY_REQUESTS');
      assert.equal(refused.message, 'pull QPS exceeded');
      assert.equal(refused.events[1]?.message, 'Failed to pull image "b:1": pull QPS exceeded');
      assert.equal(
        env.service.calls.filter((c) => c.image === 'b:1').length,
        0,
        'the image service never saw it',
      );
      env.clock.advance(10 * S);
      assert.equal((await ensure(env, 'b:1', 'Always', { pod: other })).ok, true);
    });
  });
}

// --- pullers: queueing, concurrency, pod order ---------------------------------------------------

function podManifest(n: number, images: { init?: string[]; containers: string[]; ephemeral?: string[] }) {
  const c = (list: string[] | undefined, prefix: string) =>
    list?.map((image, i) => ({ name: `${prefix}${i}`, image, imagePullPolicy: 'IfNotPresent' }));
  const spec: Record<string, unknown> = { containers: c(images.containers, 'c') };
  if (images.init) spec['initContainers'] = c(images.init, 'init');
  if (images.ephemeral) spec['ephemeralContainers'] = c(images.ephemeral, 'debug');
  return { metadata: { name: `pod-${n}`, namespace: 'ns', uid: `uid-${n}` }, spec };
}

describe('pullers: queue wait, concurrency and the never-parallel-within-a-pod rule', () => {
  for (const [name, options, expectedMax] of [
    ['serial', { serializeImagePulls: true }, 1],
    ['parallel, unlimited', { serializeImagePulls: false }, 3],
    ['parallel, maxParallelImagePulls=2', { serializeImagePulls: false, maxParallelImagePulls: 2 }, 2],
  ] as const) {
    test(`${name}: three pods × three images — ≤ ${expectedMax} in flight, never two of one pod`, async () => {
      const env = setup(options);
      env.service.holdTicks = 8;
      const pods = [1, 2, 3].map((n) =>
        podManifest(n, { init: [`init-${n}:1`], containers: [`app-${n}:1`, `side-${n}:1`] }),
      );
      const results = await Promise.all(pods.map((p) => env.manager.ensurePodImages(p)));
      assert.ok(results.every((r) => r.ok));
      assert.equal(env.service.maxInFlightPerPod, 1, 'never two pulls of one pod at once');
      assert.equal(env.service.maxInFlight, expectedMax);
      for (const n of [1, 2, 3]) {
        const order = env.service.calls
          .filter((c) => c.op === 'PullImage' && c.pod === `uid-${n}`)
          .map((c) => c.image);
        assert.deepEqual(
          order,
          [`init-${n}:1`, `app-${n}:1`, `side-${n}:1`],
          'init containers first, then in pod order',
        );
      }
    });
  }

  test('maxParallelImagePulls=N bounds five pods to exactly N in flight', async () => {
    const env = setup({ serializeImagePulls: false, maxParallelImagePulls: 2 });
    env.service.holdTicks = 8;
    const pods = [1, 2, 3, 4, 5].map((n) => podManifest(n, { containers: [`img-${n}:1`] }));
    await Promise.all(pods.map((p) => env.manager.ensurePodImages(p)));
    assert.equal(env.service.maxInFlight, 2);
  });

  test('concurrent ensureImageExists calls for ONE pod still run one after another', async () => {
    const env = setup({ serializeImagePulls: false });
    env.service.holdTicks = 8;
    await Promise.all(['a:1', 'b:1', 'c:1'].map((img) => ensure(env, img, 'Always')));
    assert.equal(env.service.maxInFlightPerPod, 1);
  });

  for (const [name, options] of [
    ['serial', { serializeImagePulls: true }],
    ['parallel, maxParallelImagePulls=1', { serializeImagePulls: false, maxParallelImagePulls: 1 }],
  ] as const) {
    test(`${name}: queue wait is reported apart from the pull ("in 2s (3s including waiting)")`, async () => {
      const env = setup(options);
      env.service.manual = true;
      const podB: PodInfo = { name: 'b', namespace: 'ns', uid: 'uid-b' };
      const a = ensure(env, 'first:1', 'IfNotPresent');
      const b = ensure(env, 'second:1', 'IfNotPresent', { pod: podB });
      await until(() => env.service.held === 1, 'the first pull in flight');
      await until(() => env.manager.puller.stats().waiting === 1, 'the second request queued');
      assert.deepEqual(env.manager.puller.stats(), { inFlight: 1, waiting: 1 });
      env.clock.advance(1000);
      env.service.release();
      await until(
        () => env.service.held === 1 && env.service.pullOrder.length === 2,
        'the second pull in flight',
      );
      env.clock.advance(2000);
      env.service.release();
      const [ra, rb] = await Promise.all([a, b]);
      assert.deepEqual([ra.pull?.queueWaitMs, ra.pull?.pullMs, ra.pull?.totalMs], [0, 1000, 1000]);
      assert.deepEqual([rb.pull?.queueWaitMs, rb.pull?.pullMs, rb.pull?.totalMs], [1000, 2000, 3000]);
      assert.equal(
        ra.events.at(-1)?.message,
        'Successfully pulled image "first:1" in 1s (1s including waiting). Image size: 4242 bytes.',
      );
      assert.equal(
        rb.events.at(-1)?.message,
        'Successfully pulled image "second:1" in 2s (3s including waiting). Image size: 4242 bytes.',
      );
    });
  }

  for (const [name, options] of [
    ['serial', { serializeImagePulls: true }],
    ['parallel, maxParallelImagePulls=1', { serializeImagePulls: false, maxParallelImagePulls: 1 }],
  ] as const) {
    test(`${name}: present images never wait behind a pull in progress`, async () => {
      const env = setup(options);
      env.service.manual = true;
      env.service.add('cached:1');
      const slow = ensure(env, 'slow:1', 'Always');
      await until(() => env.service.held === 1, 'the slow pull in flight');
      const other: PodInfo = { name: 'b', namespace: 'ns', uid: 'uid-b' };
      const used = await ensure(env, 'cached:1', 'IfNotPresent', { pod: other });
      assert.equal(used.action, 'used');
      assert.equal(env.service.held, 1, 'the slow pull is still in flight');
      const neverPod: PodInfo = { name: 'c', namespace: 'ns', uid: 'uid-c' };
      assert.equal((await ensure(env, 'cached:1', 'Never', { pod: neverPod })).action, 'used');
      env.service.release();
      assert.equal((await slow).ok, true);
    });
  }

  test('serial: requests beyond the queue of 10 wait to enqueue and are served in order', async () => {
    const env = setup({ serializeImagePulls: true });
    env.service.manual = true;
    const pods = Array.from({ length: 13 }, (_, i) => ({ name: `p${i}`, namespace: 'ns', uid: `u${i}` }));
    const all = pods.map((pod, i) => ensure(env, `img-${i}:1`, 'Always', { pod }));
    await until(
      () => env.manager.puller.stats().waiting === 12 && env.service.held === 1,
      'one in flight, twelve waiting',
    );
    for (let i = 0; i < 13; i++) {
      await until(() => env.service.held === 1, `pull ${i} in flight`);
      env.service.release();
    }
    const results = await Promise.all(all);
    assert.ok(results.every((r) => r.ok));
    assert.deepEqual(
      env.service.pullOrder,
      pods.map((_, i) => `img-${i}:1`),
    );
  });

  test('serial: a request aborted while queued is dropped with ABORTED', async () => {
    const clock = new FakeClock(START);
    const service = new FakeImageService(clock);
    service.manual = true;
    const puller = createPuller(service, { serializeImagePulls: true }, { clock });
    const first = puller.pull({ spec: { image: 'a:1' }, credentials: [] });
    const ac = new AbortController();
    const second = puller.pull({ spec: { image: 'b:1' }, credentials: [], signal: ac.signal });
    await until(() => service.held === 1, 'first in flight');
    ac.abort();
    await assert.rejects(second, (e: unknown) => e instanceof KimgError && e.code === 'ABORTED');
    service.release();
    assert.equal((await first).imageRef, idOf('a:1'));
    assert.deepEqual(service.pullOrder, ['a:1']);
  });

  test('ensurePodImages: an init container failure skips the rest; pod order init → containers → ephemeral', async () => {
    const env = setup({ serializeImagePulls: false });
    const manifest = podManifest(7, {
      init: ['init-a:1', 'init-b:1'],
      containers: ['app:1'],
      ephemeral: ['debug:1'],
    });
    env.service.outcomes = ['ok', new KimgError('NOT_FOUND', 'not found')];
    const r = await env.manager.ensurePodImages(manifest);
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.results.map((x) => [x.list, x.image, x.result?.reason ?? (x.result?.ok ? 'ok' : x.skipped)]),
      [
        ['initContainers', 'init-a:1', 'ok'],
        ['initContainers', 'init-b:1', 'ErrImagePull'],
        ['containers', 'app:1', 'init-container-failed'],
        ['ephemeralContainers', 'debug:1', 'init-container-failed'],
      ],
    );
    env.service.outcomes = ['ok'];
    env.clock.advance(10 * S);
    const again = await env.manager.ensurePodImages(manifest);
    assert.equal(again.ok, true);
    assert.deepEqual(env.service.pullOrder, ['init-a:1', 'init-b:1', 'init-b:1', 'app:1', 'debug:1']);
    assert.deepEqual(again.pod, { name: 'pod-7', namespace: 'ns', uid: 'uid-7' });
  });

  test('ensurePodImages without a uid keys the back-off by namespace/name; no name is refused', async () => {
    const env = setup({ serializeImagePulls: true });
    env.service.outcomes = [new KimgError('NOT_FOUND', 'not found')];
    const r = await env.manager.ensurePodImages({
      metadata: { name: 'solo' },
      spec: { containers: [{ name: 'c', image: 'x:1' }] },
    });
    assert.equal(r.pod.uid, 'default/solo');
    assert.deepEqual(
      (await env.manager.listBackoff()).map((e) => [e.podUID, e.image]),
      [['default/solo', 'x:1']],
    );
    await assert.rejects(
      env.manager.ensurePodImages({ spec: { containers: [] } }),
      (e: unknown) => e instanceof KimgError && e.code === 'INVALID_ARGUMENT',
    );
  });
});

// --- configuration of the pullers -----------------------------------------------------------------

describe('puller configuration, validated as the kubelet does at start', () => {
  const clock = new FakeClock(START);
  const service = new FakeImageService(clock);

  test('serializeImagePulls=true with maxParallelImagePulls ≥ 2 is refused with the upstream message', () => {
    assert.throws(
      () => new ImageManager({ imageService: service, serializeImagePulls: true, maxParallelImagePulls: 2 }),
      (e: unknown) =>
        e instanceof KimgError &&
        e.code === 'CONFIG_INVALID' &&
        e.message ===
          'invalid configuration: maxParallelImagePulls cannot be larger than 1 unless SerializeImagePulls (--serialize-image-pulls) is set to false',
    );
  });

  test('maxParallelImagePulls < 1 is refused; 1 with serial pulls is fine', () => {
    assert.throws(
      () => createPuller(service, { serializeImagePulls: false, maxParallelImagePulls: 0 }),
      /invalid configuration: maxParallelImagePulls 0 must be a positive number/,
    );
    assert.equal(
      createPuller(service, { serializeImagePulls: true, maxParallelImagePulls: 1 }).mode,
      'serial',
    );
    const p = createPuller(service, { serializeImagePulls: false });
    assert.equal(p.mode, 'parallel');
    assert.equal(p.maxParallel, undefined);
    assert.equal(
      createPuller(service, { serializeImagePulls: false, maxParallelImagePulls: 4 }).maxParallel,
      4,
    );
  });

  test('options from a kubelet configuration: maxParallelImagePulls 3 alone turns parallel pulls on', () => {
    const cfg = parseNodeConfig(
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxParallelImagePulls: 3\nfeatureGates:\n  RuntimeClassInImageCriApi: true\n',
    );
    const m = new ImageManager({ imageService: service, ...imageManagerOptionsFromConfig(cfg.kubelet) });
    assert.equal(m.puller.mode, 'parallel');
    assert.equal(m.puller.maxParallel, 3);
    assert.equal(m.runtimeHandlerKeying, true);
  });
});

// --- persisted back-off -----------------------------------------------------------------------------

describe('back-off persisted under the root', () => {
  test('a second manager (a new `kimg ensure` process) sees the back-off and the last error', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'kimg-backoff-'));
    t.after(() => rm(root, { recursive: true, force: true }));
    const clock = new FakeClock(START);
    const service = new FakeImageService(clock);
    service.outcomes = [new KimgError('UNAUTHORIZED', 'authorization failed')];
    const first = new ImageManager({
      imageService: service,
      clock,
      backoffStore: new FileBackoffStore(root),
    });
    const failed = await first.ensureImageExists({
      pod: POD,
      container: { name: 'app', image: IMAGE, imagePullPolicy: 'Always' },
    });
    assert.equal(failed.reason, 'ErrImagePull');
    const file = backoffFilePath(root);
    assert.equal(file, join(root, 'manager', 'backoff.json'));
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    clock.advance(5 * S);
    const second = new ImageManager({
      imageService: service,
      clock,
      backoffStore: new FileBackoffStore(root),
    });
    const held = await second.ensureImageExists({
      pod: POD,
      container: { name: 'app', image: IMAGE, imagePullPolicy: 'Always' },
    });
    assert.equal(held.reason, 'ImagePullBackOff');
    assert.equal(held.message, `Back-off pulling image "${IMAGE}": ErrImagePull: authorization failed`);
    assert.equal(held.error?.details.retryAfterSeconds, 5);
    const [entry] = await second.listBackoff();
    assert.deepEqual(
      entry && {
        podUID: entry.podUID,
        image: entry.image,
        backoffMs: entry.backoffMs,
        inBackOff: entry.inBackOff,
        lastError: entry.lastError,
        retryAtMs: entry.retryAtMs - START,
      },
      {
        podUID: POD.uid,
        image: IMAGE,
        backoffMs: 10 * S,
        inBackOff: true,
        lastError: 'ErrImagePull: authorization failed',
        retryAtMs: 10 * S,
      },
    );
    // A third process clears it; the next ensure pulls at once.
    const third = new ImageManager({
      imageService: service,
      clock,
      backoffStore: new FileBackoffStore(root),
    });
    assert.deepEqual(await third.clearBackoff(), [`${POD.uid}_${IMAGE}`]);
    service.outcomes = ['ok'];
    assert.equal(
      (
        await second.ensureImageExists({
          pod: POD,
          container: { name: 'app', image: IMAGE, imagePullPolicy: 'Always' },
        })
      ).action,
      'pulled',
    );
  });

  test('a corrupt back-off file is STORE_CORRUPT, named, with what to do', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'kimg-backoff-bad-'));
    t.after(() => rm(root, { recursive: true, force: true }));
    const store = new FileBackoffStore(root);
    await store.save({
      version: 1,
      backoff: { version: 1, initialMs: 10_000, maxMs: 300_000, entries: [] },
      lastErrors: {},
    });
    await writeFile(backoffFilePath(root), '{"version": 1, "backoff": 7}');
    await assert.rejects(
      store.load(),
      (e: unknown) =>
        e instanceof KimgError && e.code === 'STORE_CORRUPT' && e.message.includes('remove the file'),
    );
    const clock = new FakeClock(START);
    const m = new ImageManager({ imageService: new FakeImageService(clock), clock, backoffStore: store });
    const r = await m.ensureImageExists({
      pod: POD,
      container: { name: 'app', image: IMAGE, imagePullPolicy: 'Always' },
    });
    assert.equal(r.ok, false);
    assert.equal(r.error?.code, 'STORE_CORRUPT');
  });
});
