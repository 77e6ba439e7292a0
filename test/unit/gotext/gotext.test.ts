/**
 * src/gotext is the one home of Go's text forms; configuration re-exports the same functions, so
 * callers that import either see identical behaviour. (The grammar itself is tested, with property
 * tests, in test/unit/config.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as config from '../../../src/config/index.js';
import {
  durationToMs,
  goDurationString,
  goParseDuration,
  goQuote,
  goTimeQuote,
} from '../../../src/gotext/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

describe('gotext', () => {
  test('configuration re-exports the same functions', () => {
    assert.equal(config.goQuote, goQuote);
    assert.equal(config.goTimeQuote, goTimeQuote);
    assert.equal(config.goParseDuration, goParseDuration);
    assert.equal(config.goDurationString, goDurationString);
    assert.equal(config.durationToMs, durationToMs);
  });

  test('Go forms', () => {
    assert.equal(goQuote('a"b\\c\n\x01é'), '"a\\"b\\\\c\\n\\x01é"');
    assert.equal(goTimeQuote('1é'), '"1\\xc3\\xa9"');
    assert.deepEqual(goParseDuration('1h30m'), { ok: true, ns: 5_400_000_000_000n });
    assert.deepEqual(goParseDuration('5'), { ok: false, error: 'time: missing unit in duration "5"' });
    assert.equal(goDurationString(90_000_000_000n), '1m30s');
    assert.equal(durationToMs(1_500_000n), 1.5);
  });

  test('property: a printed duration parses back to itself', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n) + 1n, max: (1n << 63n) - 1n }), (ns) => {
        assert.deepEqual(goParseDuration(goDurationString(ns)), { ok: true, ns });
      }),
      fuzzParams(),
    );
  });
});
