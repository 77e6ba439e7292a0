import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ALL_ERROR_CODES } from '../../../src/errors/index.js';
import {
  alreadyPresentMessage,
  backOffMessage,
  containerFailedMessage,
  decidePull,
  evalCriPullError,
  failedToApplyDefaultTagMessage,
  failedToInspectMessage,
  failedToPullMessage,
  formatDuration,
  goDurationString,
  goQuote,
  needsPresenceCheck,
  neverPullMessage,
  pulledMessage,
  pullingMessage,
  reasonForCode,
  type PullDecision,
} from '../../../src/manager/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

describe('decidePull truth table (kubelet image_manager.go)', () => {
  // policy, present, verified (undefined = verification off) → action, reason
  const table: Array<[string, boolean, boolean | undefined, PullDecision['action'], string]> = [
    ['Always', false, undefined, 'pull', 'policy-always'],
    ['Always', true, undefined, 'pull', 'policy-always'],
    ['Always', true, true, 'pull', 'policy-always'],
    ['Always', true, false, 'pull', 'policy-always'],
    ['IfNotPresent', false, undefined, 'pull', 'not-present'],
    ['IfNotPresent', false, false, 'pull', 'not-present'],
    ['IfNotPresent', true, true, 'use', 'verified'],
    ['IfNotPresent', true, undefined, 'use', 'present'],
    ['IfNotPresent', true, false, 'pull', 'not-verified'],
    ['Never', false, undefined, 'never-pull-error', 'not-present'],
    ['Never', true, true, 'use', 'verified'],
    ['Never', true, undefined, 'use', 'present'],
    ['Never', true, false, 'never-pull-error', 'not-verified'],
    ['Sometimes', false, undefined, 'pull', 'unknown-policy'],
    ['', true, true, 'pull', 'unknown-policy'],
  ];
  for (const [policy, present, verified, action, reason] of table) {
    test(`${policy || '""'} present=${present} verified=${String(verified)} → ${action} (${reason})`, () => {
      const d = decidePull({ policy, present, ...(verified === undefined ? {} : { verified }) });
      assert.equal(d.action, action);
      assert.equal(d.reason, reason);
    });
  }

  test('only IfNotPresent and Never ask the runtime first', () => {
    assert.deepEqual(['Always', 'IfNotPresent', 'Never', 'x'].map(needsPresenceCheck), [
      false,
      true,
      true,
      false,
    ]);
  });

  test('events carry the kubelet texts; Never hides whether the image is present', () => {
    const img = 'registry.example/app:1';
    assert.deepEqual(decidePull({ policy: 'IfNotPresent', present: true, image: img }), {
      action: 'use',
      reason: 'present',
      event: {
        type: 'Normal',
        reason: 'Pulled',
        message: 'Container image "registry.example/app:1" already present on machine',
      },
    });
    assert.deepEqual(decidePull({ policy: 'Never', present: true, verified: true, image: img }), {
      action: 'use',
      reason: 'verified',
      event: {
        type: 'Normal',
        reason: 'Pulled',
        message:
          'Container image "registry.example/app:1" already present on machine and can be accessed by the pod',
      },
    });
    const absent = decidePull({ policy: 'Never', present: false, image: img });
    const unverified = decidePull({ policy: 'Never', present: true, verified: false, image: img });
    assert.equal(absent.action, 'never-pull-error');
    assert.equal(unverified.action, 'never-pull-error');
    assert.ok(absent.action === 'never-pull-error' && unverified.action === 'never-pull-error');
    assert.deepEqual(absent.event, unverified.event);
    assert.deepEqual(absent.event, {
      type: 'Warning',
      reason: 'ErrImageNeverPull',
      message: 'Container image "registry.example/app:1" is not present with pull policy of Never',
    });
    assert.equal(absent.code, 'ERR_IMAGE_NEVER_PULL');
    assert.equal(absent.errorReason, 'ErrImageNeverPull');
  });
});

describe('kubelet messages', () => {
  test('exact strings', () => {
    assert.equal(
      neverPullMessage('busybox'),
      'Container image "busybox" is not present with pull policy of Never',
    );
    assert.equal(backOffMessage('busybox'), 'Back-off pulling image "busybox"');
    assert.equal(
      backOffMessage('busybox', 'ErrImagePull: failed to resolve reference'),
      'Back-off pulling image "busybox": ErrImagePull: failed to resolve reference',
    );
    assert.equal(pullingMessage('busybox:1.36'), 'Pulling image "busybox:1.36"');
    assert.equal(
      pulledMessage('busybox:1.36', 1234.9, 2345.1, 2_225_000),
      'Successfully pulled image "busybox:1.36" in 1.234s (2.345s including waiting). Image size: 2225000 bytes.',
    );
    assert.equal(
      pulledMessage('a', 567, 123_456, 0),
      'Successfully pulled image "a" in 567ms (2m3.456s including waiting). Image size: 0 bytes.',
    );
    assert.equal(alreadyPresentMessage('busybox'), 'Container image "busybox" already present on machine');
    assert.equal(
      alreadyPresentMessage('busybox', { verified: true }),
      'Container image "busybox" already present on machine and can be accessed by the pod',
    );
    assert.equal(failedToPullMessage('x', 'rpc error: boom'), 'Failed to pull image "x": rpc error: boom');
    assert.equal(failedToInspectMessage('', 'boom'), 'Failed to inspect image "": boom');
    assert.equal(
      failedToApplyDefaultTagMessage('Bad', "couldn't parse"),
      'Failed to apply default image tag "Bad": couldn\'t parse',
    );
    assert.equal(containerFailedMessage('ErrImagePull'), 'Error: ErrImagePull');
  });

  test('images are quoted like Go %q', () => {
    assert.equal(goQuote('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(goQuote('tab\there\n'), '"tab\\there\\n"');
    assert.equal(goQuote('\x01\x7f\u00a0é😀'), '"\\x01\\x7f\\u00a0é😀"');
    assert.equal(goQuote('\u200b'), '"\\u200b"');
    assert.equal(goQuote('\u{e0001}'), '"\\U000e0001"');
    assert.equal(pullingMessage('bad"image'), 'Pulling image "bad\\"image"');
  });

  test('evalCRIPullErr classification', () => {
    assert.deepEqual(evalCriPullError('r/x:1', 'RegistryUnavailable: dial tcp: connection refused'), {
      reason: 'RegistryUnavailable',
      message:
        'image pull failed for r/x:1 because the registry is unavailable: dial tcp: connection refused',
    });
    assert.deepEqual(evalCriPullError('r/x:1', 'SignatureValidationFailed'), {
      reason: 'SignatureValidationFailed',
      message: 'image pull failed for r/x:1 because the signature validation failed',
    });
    assert.deepEqual(evalCriPullError('r/x:1', 'rpc error: code = NotFound desc = RegistryUnavailable: x'), {
      reason: 'ErrImagePull',
      message: 'rpc error: code = NotFound desc = RegistryUnavailable: x',
    });
  });

  test('every error code maps to a kubelet reason', () => {
    assert.equal(reasonForCode('ERR_IMAGE_NEVER_PULL'), 'ErrImageNeverPull');
    assert.equal(reasonForCode('IMAGE_PULL_BACKOFF'), 'ImagePullBackOff');
    assert.equal(reasonForCode('INVALID_IMAGE_NAME'), 'InvalidImageName');
    assert.equal(reasonForCode('IMAGE_INSPECT_ERROR'), 'ImageInspectError');
    assert.equal(reasonForCode('UNAUTHORIZED'), 'ErrImagePull');
    assert.equal(reasonForCode('REGISTRY_UNAVAILABLE'), 'ErrImagePull');
    for (const code of ALL_ERROR_CODES) assert.equal(typeof reasonForCode(code), 'string');
  });
});

describe('Go time.Duration formatting', () => {
  const ns: Array<[number | bigint, string]> = [
    [0, '0s'],
    [1, '1ns'],
    [999, '999ns'],
    [1_100, '1.1µs'],
    [2_200_000, '2.2ms'],
    [567_000_000, '567ms'],
    [1_000_000_000, '1s'],
    [1_234_000_000, '1.234s'],
    [1_500_000_000, '1.5s'],
    [60_000_000_000, '1m0s'],
    [123_456_000_000, '2m3.456s'],
    [3_600_000_000_000, '1h0m0s'],
    [3_723_500_000_000, '1h2m3.5s'],
    [-1_500_000_000, '-1.5s'],
    [9_223_372_036_854_775_807n, '2562047h47m16.854775807s'],
  ];
  for (const [v, s] of ns) test(`${v}ns → ${s}`, () => assert.equal(goDurationString(v), s));

  test('milliseconds are truncated, not rounded, as Truncate(time.Millisecond)', () => {
    assert.equal(formatDuration(1234.999), '1.234s');
    assert.equal(formatDuration(567), '567ms');
    assert.equal(formatDuration(123_456), '2m3.456s');
    assert.equal(formatDuration(0.9), '0s');
    assert.equal(formatDuration(1), '1ms');
    assert.equal(formatDuration(Number.NaN), '0s');
  });

  test('property: the text parses back to the same whole milliseconds', () => {
    const parseGo = (s: string): number => {
      let total = 0;
      for (const [, n, unit] of s.matchAll(/([0-9.]+)(h|m(?!s)|ms|s)/g)) {
        const v = Number(n);
        total += unit === 'h' ? v * 3_600_000 : unit === 'm' ? v * 60_000 : unit === 's' ? v * 1000 : v;
      }
      return Math.round(total);
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 * 24 * 3_600_000 }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (ms, frac) => {
          assert.equal(parseGo(formatDuration(ms + frac)), ms);
        },
      ),
      fuzzParams(),
    );
  });
});
