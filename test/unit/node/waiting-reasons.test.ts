/**
 * The agent's pure reducers, as tables (the image manager's test style): manager event sequences →
 * the container's waiting reason, message and progress record; a sync's result line (with the
 * back-off entry) → ready or the kubelet's waiting reason with next retry and last error; progress
 * events → layer lists. No reducer mutates its input.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EnsureImageResult, ManagerEvent } from '../../../src/manager/index.js';
import type { ContainerImageState, LayerProgress } from '../../../src/node/index.js';
import {
  containerOnManagerEvent,
  containerOnResult,
  podEventOf,
  pullFailedNow,
} from '../../../src/node/internal/waiting-reasons.js';
import { layersOnPullEvent } from '../../../src/node/internal/pull-progress.js';
import type { ImagePullEvent } from '../../../src/pull/index.js';

const IMAGE = 'registry.example/app:1.0';
const T0 = Date.UTC(2026, 6, 1, 10, 0, 0);

function waiting(over: Partial<ContainerImageState> = {}): ContainerImageState {
  return {
    name: 'app',
    list: 'containers',
    image: IMAGE,
    imagePullPolicy: 'IfNotPresent',
    state: 'Waiting',
    reason: '',
    message: '',
    imageRef: '',
    ...over,
  };
}

function event(reason: ManagerEvent['reason'], message: string, timestamp = T0): ManagerEvent {
  return {
    type:
      reason === 'Failed' || reason === 'InspectFailed' || reason === 'ErrImageNeverPull'
        ? 'Warning'
        : 'Normal',
    reason,
    message,
    object: { pod: { name: 'web', namespace: 'team-a', uid: 'u1' }, container: 'app' },
    timestamp,
  };
}

/** Deep-frozen so a reducer that mutates its input throws. */
function frozen<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) frozen(v);
    Object.freeze(value);
  }
  return value;
}

describe('containerOnManagerEvent: events → waiting reasons', () => {
  interface Row {
    name: string;
    start?: Partial<ContainerImageState>;
    events: ManagerEvent[];
    state: ContainerImageState['state'];
    reason: string;
    message: string;
    pulling: boolean;
    nextRetryAt?: number;
  }
  const pulling = event('Pulling', `Pulling image "${IMAGE}"`);
  const table: Row[] = [
    {
      name: 'Pulling: ContainerCreating with a fresh progress record; the next retry is dropped',
      start: { reason: 'ImagePullBackOff', nextRetryAt: T0 + 10_000 },
      events: [pulling],
      state: 'Waiting',
      reason: 'ContainerCreating',
      message: `Pulling image "${IMAGE}"`,
      pulling: true,
    },
    {
      name: 'Pulling then Pulled: progress ends, the reason waits for the result',
      events: [pulling, event('Pulled', 'Successfully pulled image')],
      state: 'Waiting',
      reason: 'ContainerCreating',
      message: `Pulling image "${IMAGE}"`,
      pulling: false,
    },
    {
      name: 'Pulling then Failed: ErrImagePull, the message stays until the result',
      events: [pulling, event('Failed', 'Failed to pull image: boom')],
      state: 'Waiting',
      reason: 'ErrImagePull',
      message: `Pulling image "${IMAGE}"`,
      pulling: false,
    },
    {
      name: 'BackOff: ImagePullBackOff, message and next retry kept',
      start: { reason: 'ErrImagePull', message: 'boom', nextRetryAt: T0 + 5000 },
      events: [event('BackOff', `Back-off pulling image "${IMAGE}"`)],
      state: 'Waiting',
      reason: 'ImagePullBackOff',
      message: 'boom',
      pulling: false,
      nextRetryAt: T0 + 5000,
    },
    {
      name: 'ErrImageNeverPull: the reason and its message',
      events: [event('ErrImageNeverPull', 'Container image "x" is not present with pull policy of Never')],
      state: 'Waiting',
      reason: 'ErrImageNeverPull',
      message: 'Container image "x" is not present with pull policy of Never',
      pulling: false,
    },
    {
      name: 'InspectFailed changes nothing (the result brings ImageInspectError)',
      start: { reason: 'ContainerCreating', message: 'm' },
      events: [event('InspectFailed', 'Failed to inspect image')],
      state: 'Waiting',
      reason: 'ContainerCreating',
      message: 'm',
      pulling: false,
    },
    {
      name: 'a ready container that pulls again waits again',
      start: { state: 'Ready', imageRef: 'sha256:1' },
      events: [pulling],
      state: 'Waiting',
      reason: 'ContainerCreating',
      message: `Pulling image "${IMAGE}"`,
      pulling: true,
    },
  ];
  for (const row of table) {
    test(row.name, () => {
      let c = frozen(waiting(row.start));
      for (const e of row.events) c = frozen(containerOnManagerEvent(c, e));
      assert.equal(c.state, row.state);
      assert.equal(c.reason, row.reason);
      assert.equal(c.message, row.message);
      assert.equal(c.pulling !== undefined, row.pulling);
      assert.equal(c.nextRetryAt, row.nextRetryAt);
    });
  }
  test('Pulling starts the progress record at the event time, with no layers', () => {
    const c = containerOnManagerEvent(waiting(), event('Pulling', 'p', T0 + 42));
    assert.deepEqual(c.pulling, { startedAt: T0 + 42, layers: [] });
  });
});

function result(over: Partial<EnsureImageResult>): EnsureImageResult {
  return {
    ok: false,
    imageRef: '',
    message: '',
    image: IMAGE,
    pullPolicy: 'IfNotPresent',
    action: 'failed',
    events: [],
    ...over,
  };
}

describe('containerOnResult: a sync result line → the container state', () => {
  const NOW = T0 + 1000;
  interface Row {
    name: string;
    start?: Partial<ContainerImageState>;
    line: { result?: EnsureImageResult; skipped?: 'init-container-failed' };
    backoff?: { retryAtMs: number; lastError?: string };
    want: Partial<ContainerImageState>;
    absent?: (keyof ContainerImageState)[];
  }
  const table: Row[] = [
    {
      name: 'ready: the image id and the message; back-off fields and progress dropped',
      start: {
        reason: 'ImagePullBackOff',
        nextRetryAt: NOW + 1,
        lastError: 'x',
        pulling: { startedAt: 0, layers: [] },
      },
      line: {
        result: result({ ok: true, imageRef: 'sha256:abc', message: 'already present', action: 'used' }),
      },
      want: { state: 'Ready', reason: '', message: 'already present', imageRef: 'sha256:abc' },
      absent: ['nextRetryAt', 'lastError', 'pulling'],
    },
    {
      name: 'the applied pull policy is kept',
      line: { result: result({ ok: true, imageRef: 'sha256:abc', pullPolicy: 'Always', action: 'pulled' }) },
      want: { imagePullPolicy: 'Always', state: 'Ready' },
    },
    {
      name: 'ErrImagePull without a back-off entry: the last error is this failure',
      start: { imageRef: 'sha256:old' },
      line: { result: result({ reason: 'ErrImagePull', message: 'not found' }) },
      want: {
        state: 'Waiting',
        reason: 'ErrImagePull',
        message: 'not found',
        imageRef: '',
        lastError: 'ErrImagePull: not found',
      },
      absent: ['nextRetryAt'],
    },
    {
      name: 'a failure without a reason is ErrImagePull',
      line: { result: result({ message: 'boom' }) },
      want: { reason: 'ErrImagePull', lastError: 'ErrImagePull: boom' },
    },
    {
      name: 'ImagePullBackOff: next retry and last error from the back-off entry',
      line: { result: result({ reason: 'ImagePullBackOff', message: 'Back-off pulling image' }) },
      backoff: { retryAtMs: NOW + 10_000, lastError: 'ErrImagePull: not found' },
      want: { reason: 'ImagePullBackOff', nextRetryAt: NOW + 10_000, lastError: 'ErrImagePull: not found' },
    },
    {
      name: 'ImagePullBackOff without an entry keeps the last error it had (the refusal is no new error)',
      start: { lastError: 'ErrImagePull: earlier' },
      line: { result: result({ reason: 'ImagePullBackOff', message: 'Back-off pulling image' }) },
      want: { reason: 'ImagePullBackOff', lastError: 'ErrImagePull: earlier' },
      absent: ['nextRetryAt'],
    },
    {
      name: 'a back-off window already over: no next retry',
      start: { nextRetryAt: NOW - 5 },
      line: { result: result({ reason: 'ErrImagePull', message: 'boom' }) },
      backoff: { retryAtMs: NOW },
      want: { reason: 'ErrImagePull', lastError: 'ErrImagePull: boom' },
      absent: ['nextRetryAt'],
    },
    {
      name: 'InvalidImageName',
      line: { result: result({ reason: 'InvalidImageName', message: 'Failed to apply default image tag' }) },
      want: { reason: 'InvalidImageName', lastError: 'InvalidImageName: Failed to apply default image tag' },
    },
    {
      name: 'ErrImageNeverPull',
      line: {
        result: result({ reason: 'ErrImageNeverPull', message: 'not present with pull policy of Never' }),
      },
      want: { reason: 'ErrImageNeverPull', message: 'not present with pull policy of Never' },
    },
    {
      name: 'ImageInspectError',
      line: { result: result({ reason: 'ImageInspectError', message: 'Failed to inspect image' }) },
      want: { reason: 'ImageInspectError', lastError: 'ImageInspectError: Failed to inspect image' },
    },
    {
      name: 'skipped (an init container failed): PodInitializing, the rest kept',
      start: { imageRef: 'sha256:keep', pulling: { startedAt: 1, layers: [] } },
      line: { skipped: 'init-container-failed' },
      want: {
        state: 'Waiting',
        reason: 'PodInitializing',
        message: 'an init container image is not ready',
        imageRef: 'sha256:keep',
        pulling: { startedAt: 1, layers: [] },
      },
    },
    {
      name: 'no result: unchanged',
      start: { reason: 'ContainerCreating', message: 'm' },
      line: {},
      want: { reason: 'ContainerCreating', message: 'm', state: 'Waiting' },
    },
  ];
  for (const row of table) {
    test(row.name, () => {
      const before = frozen(waiting(row.start));
      const c = containerOnResult(before, row.line, row.backoff, NOW);
      for (const [k, v] of Object.entries(row.want))
        assert.deepEqual(c[k as keyof ContainerImageState], v, k);
      for (const k of row.absent ?? []) assert.equal(k in c, false, `${k} should be unset`);
    });
  }
});

test('pullFailedNow: a failure with a Failed event, not a back-off refusal or a hit', () => {
  const failed = event('Failed', 'x');
  const backOff = event('BackOff', 'x');
  assert.equal(pullFailedNow({ ok: false, events: [event('Pulling', 'x'), failed] }), true);
  assert.equal(pullFailedNow({ ok: false, events: [backOff] }), false);
  assert.equal(pullFailedNow({ ok: true, events: [failed] }), false);
});

test('podEventOf: the event on the pod, naming the container', () => {
  assert.deepEqual(podEventOf(event('BackOff', 'm', 7)), {
    type: 'Normal',
    reason: 'BackOff',
    message: 'm',
    object: { kind: 'Pod', namespace: 'team-a', name: 'web', uid: 'u1', container: 'app' },
    timestamp: 7,
  });
});

describe('layersOnPullEvent: progress events → layers', () => {
  const D1 = 'sha256:' + '1'.repeat(64);
  const D2 = 'sha256:' + '2'.repeat(64);
  const start = (digest: string, over: Partial<Extract<ImagePullEvent, { type: 'layer-start' }>> = {}) =>
    ({
      type: 'layer-start',
      digest,
      size: 100,
      kind: 'layer',
      cached: false,
      resumedFrom: 0,
      ...over,
    }) as const;
  const table: { name: string; events: ImagePullEvent[]; want: LayerProgress[] }[] = [
    {
      name: 'start, bytes, done',
      events: [
        start(D1),
        { type: 'bytes', digest: D1, completed: 40, total: 100 },
        { type: 'layer-done', digest: D1, size: 100, downloaded: true },
      ],
      want: [{ digest: D1, size: 100, completed: 100, kind: 'layer', cached: false, done: true }],
    },
    {
      name: 'a cached layer is complete at once; a resumed one starts at its offset',
      events: [start(D1, { cached: true, kind: 'config' }), start(D2, { resumedFrom: 30 })],
      want: [
        { digest: D1, size: 100, completed: 100, kind: 'config', cached: true, done: false },
        { digest: D2, size: 100, completed: 30, kind: 'layer', cached: false, done: false },
      ],
    },
    {
      name: 'a second layer-start (take-over of a joined download) adds nothing',
      events: [start(D1, { cached: true }), start(D1, { cached: false })],
      want: [{ digest: D1, size: 100, completed: 100, kind: 'layer', cached: true, done: false }],
    },
    {
      name: 'bytes of an unknown digest and other events change nothing',
      events: [
        start(D1),
        { type: 'bytes', digest: D2, completed: 5, total: 100 },
        { type: 'committed', image: IMAGE, id: 'sha256:x', digest: D1, size: 1 },
      ],
      want: [{ digest: D1, size: 100, completed: 0, kind: 'layer', cached: false, done: false }],
    },
  ];
  for (const row of table) {
    test(row.name, () => {
      let layers: LayerProgress[] = frozen([]);
      for (const ev of row.events) layers = frozen(layersOnPullEvent(layers, ev));
      assert.deepEqual(layers, row.want);
    });
  }
});
