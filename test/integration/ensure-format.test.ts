/**
 * The text forms of `kimg ensure`: kubectl's Age column (apimachinery `HumanDuration`), the
 * `kubectl describe` events block, and the exit status chosen from the first failure's code.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ensureExitStatus, formatEvents, humanDuration } from '../../src/cli/commands/ensure.js';
import { KimgError } from '../../src/errors/index.js';
import type { ManagerEvent, PodImagesResult } from '../../src/manager/index.js';

describe('humanDuration (kubectl Age)', () => {
  const S = 1000;
  const cases: [number, string][] = [
    [-3 * S, '<invalid>'],
    [-500, '0s'],
    [0, '0s'],
    [59 * S, '59s'],
    [119 * S, '119s'],
    [120 * S, '2m'],
    [192 * S, '3m12s'],
    [10 * 60 * S, '10m'],
    [179 * 60 * S, '179m'],
    [3 * 3600 * S, '3h'],
    [(4 * 3600 + 5 * 60) * S, '4h5m'],
    [8 * 3600 * S, '8h'],
    [47 * 3600 * S, '47h'],
    [48 * 3600 * S, '2d'],
    [(3 * 24 + 5) * 3600 * S, '3d5h'],
    [10 * 24 * 3600 * S, '10d'],
    [(2 * 365 + 3) * 24 * 3600 * S, '2y3d'],
    [9 * 365 * 24 * 3600 * S, '9y'],
  ];
  for (const [ms, want] of cases) test(`${ms} ms → ${want}`, () => assert.equal(humanDuration(ms), want));
});

describe('formatEvents', () => {
  const object = { pod: { name: 'p', namespace: 'default', uid: 'u' }, container: 'c' };
  test('kubectl describe layout: two-space indent, columns padded by two spaces, From kubelet', () => {
    const events: ManagerEvent[] = [
      { type: 'Normal', reason: 'Pulling', message: 'Pulling image "busybox"', object, timestamp: 1000 },
      {
        type: 'Warning',
        reason: 'Failed',
        message: 'Failed to pull image "busybox": x',
        object,
        timestamp: 4000,
      },
    ];
    assert.equal(
      formatEvents(events, 65_000),
      [
        'Events:',
        '  Type     Reason   Age   From     Message',
        '  ----     ------   ----  ----     -------',
        '  Normal   Pulling  64s   kubelet  Pulling image "busybox"',
        '  Warning  Failed   61s   kubelet  Failed to pull image "busybox": x',
        '',
      ].join('\n'),
    );
  });
  test('no events', () => assert.equal(formatEvents([], 0), 'Events:  <none>\n'));
});

describe('ensureExitStatus', () => {
  const pod = { name: 'p', namespace: 'default', uid: 'u' };
  const failed = (code: string): PodImagesResult['results'][number] => ({
    list: 'containers',
    container: 'c',
    image: 'i',
    result: {
      ok: false,
      imageRef: '',
      message: 'm',
      error: new KimgError(code as 'NOT_FOUND', 'm'),
      image: 'i',
      pullPolicy: 'Always',
      action: 'failed',
      events: [],
    },
  });
  test('0 when ready, else the first failure', () => {
    assert.equal(ensureExitStatus([{ pod, ok: true, results: [] }]), 0);
    assert.equal(
      ensureExitStatus([{ pod, ok: false, results: [failed('ERR_IMAGE_NEVER_PULL'), failed('NOT_FOUND')] }]),
      8,
    );
    assert.equal(ensureExitStatus([{ pod, ok: false, results: [failed('IMAGE_PULL_BACKOFF')] }]), 8);
    assert.equal(ensureExitStatus([{ pod, ok: false, results: [failed('UNAUTHORIZED')] }]), 4);
    assert.equal(ensureExitStatus([{ pod, ok: false, results: [failed('NOT_FOUND')] }]), 3);
  });
});
