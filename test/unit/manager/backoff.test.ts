import { FakeClock } from '../../helpers/clock.js';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isKimgError } from '../../../src/errors/index.js';
import {
  Backoff,
  IMAGE_BACKOFF_INITIAL_MS,
  IMAGE_BACKOFF_MAX_MS,
  backoffKey,
} from '../../../src/manager/index.js';

const S = 1000;
const KEY = backoffKey('5f1c7a2e-uid', 'busybox');

function setup(start = 1_700_000_000_000) {
  const clock = new FakeClock(start);
  return { clock, b: new Backoff({ clock }) };
}

describe('Backoff (client-go flowcontrol, kubelet image back-off)', () => {
  test('defaults are the kubelet image back-off: 10 s initial, 300 s max; key is <podUID>_<image>', () => {
    assert.equal(IMAGE_BACKOFF_INITIAL_MS, 10 * S);
    assert.equal(IMAGE_BACKOFF_MAX_MS, 300 * S);
    assert.equal(KEY, '5f1c7a2e-uid_busybox');
    const { b } = setup();
    assert.equal(b.initialMs, 10 * S);
    assert.equal(b.maxMs, 300 * S);
  });

  test('ladder 10 → 20 → 40 → 80 → 160 → 300 → 300 with a fake clock (each failure right after the window)', () => {
    const { clock, b } = setup();
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) {
      assert.equal(b.isInBackOffSinceUpdate(KEY), false, `attempt ${i} may pull`);
      b.next(KEY);
      seen.push(b.get(KEY) / S);
      assert.equal(b.isInBackOffSinceUpdate(KEY), true, 'in back-off right after a failure');
      clock.advance(b.get(KEY) - 1);
      assert.equal(b.isInBackOffSinceUpdate(KEY), true, 'still in back-off 1 ms before the window ends');
      clock.advance(1);
    }
    assert.deepEqual(seen, [10, 20, 40, 80, 160, 300, 300]);
  });

  test('keys are independent (per pod, per raw image string)', () => {
    const { b } = setup();
    b.next(KEY);
    assert.equal(b.isInBackOffSinceUpdate(backoffKey('5f1c7a2e-uid', 'busybox:latest')), false);
    assert.equal(b.isInBackOffSinceUpdate(backoffKey('other-pod', 'busybox')), false);
    assert.equal(b.get('nope'), 0);
  });

  test('an entry idle for more than 600 s expires: the next failure starts at 10 s again', () => {
    const { clock, b } = setup();
    for (let i = 0; i < 4; i++) b.next(KEY);
    assert.equal(b.get(KEY), 80 * S);
    clock.advance(600 * S);
    assert.equal(b.isInBackOffSinceUpdate(KEY), false);
    b.next(KEY);
    assert.equal(b.get(KEY), 160 * S, 'exactly 600 s idle is not yet expired');
    clock.advance(600 * S + 1);
    b.next(KEY);
    assert.equal(b.get(KEY), 10 * S, 'more than 600 s idle: restarted');
  });

  test('gc drops only expired entries: success does not reset a live window', () => {
    const { clock, b } = setup();
    b.next('old');
    clock.advance(100 * S);
    b.next(KEY);
    b.next(KEY);
    assert.equal(b.get(KEY), 20 * S);
    clock.advance(5 * S);
    b.gc(); // as after a successful pull of another image
    assert.deepEqual(b.keys().sort(), [KEY, 'old']);
    assert.equal(b.get(KEY), 20 * S);
    assert.equal(b.isInBackOffSinceUpdate(KEY), true, 'still backing off after gc');
    clock.advance(501 * S); // 'old' idle 601 s, KEY idle 506 s
    b.gc();
    assert.deepEqual(b.keys(), [KEY]);
    b.next(KEY);
    assert.equal(b.get(KEY), 40 * S, 'the live entry kept its history through gc');
    clock.advance(601 * S);
    b.gc();
    assert.deepEqual(b.keys(), []);
  });

  test('isInBackOffSince measures from an event time to now', () => {
    const { clock, b } = setup();
    b.next(KEY);
    const t0 = clock.now();
    clock.advance(9 * S);
    assert.equal(b.isInBackOffSince(KEY, t0), true);
    clock.advance(1 * S);
    assert.equal(b.isInBackOffSince(KEY, t0), false);
    assert.equal(b.isInBackOffSince('nope', t0), false);
  });

  test('reset forgets a key', () => {
    const { b } = setup();
    b.next(KEY);
    b.reset(KEY);
    assert.equal(b.isInBackOffSinceUpdate(KEY), false);
    b.next(KEY);
    assert.equal(b.get(KEY), 10 * S);
  });

  test('state survives toJSON / JSON / fromJSON', () => {
    const { clock, b } = setup();
    b.next(KEY);
    b.next(KEY);
    b.next('x_y');
    const restored = Backoff.fromJSON(JSON.parse(JSON.stringify(b)), { clock });
    assert.deepEqual(restored.toJSON(), b.toJSON());
    assert.equal(restored.get(KEY), 20 * S);
    assert.equal(restored.isInBackOffSinceUpdate(KEY), true);
    restored.next(KEY);
    assert.equal(restored.get(KEY), 40 * S);
  });

  test('fromJSON and the constructor refuse bad input with INVALID_ARGUMENT', () => {
    for (const bad of [
      null,
      1,
      {},
      { version: 2, entries: [] },
      { version: 1, entries: {} },
      { version: 1, initialMs: 1, maxMs: 2, entries: [{ key: 1 }] },
      { version: 1, initialMs: -1, maxMs: 2, entries: [] },
    ]) {
      assert.throws(
        () => Backoff.fromJSON(bad),
        (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
        JSON.stringify(bad),
      );
    }
    assert.throws(
      () => new Backoff({ maxMs: Number.NaN }),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
    );
  });
});
