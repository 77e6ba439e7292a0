import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { inspect } from 'node:util';
import vm from 'node:vm';
import {
  ALL_ERROR_CODES,
  KimgError,
  isKimgError,
  isKimgErrorCode,
  toKimgError,
  quoteValue,
} from '../../../src/errors/index.js';
import { EXIT_STATUS_BY_CODE } from '../../../src/cli/exit-codes.js';
import { Secret } from '../../../src/credentials/index.js';

test('KimgError carries code, message, cause and typed details', () => {
  const cause = new Error('socket hang up');
  const e = new KimgError('DIGEST_MISMATCH', 'blob sha256:aa does not match', {
    cause,
    expected: 'sha256:aa',
    actual: 'sha256:bb',
    bytesRead: 12,
  });
  assert.equal(e.code, 'DIGEST_MISMATCH');
  assert.equal(e.cause, cause);
  assert.equal(e.details.expected, 'sha256:aa');
  assert.equal(e.details.bytesRead, 12);
  assert.ok(e instanceof Error);
  assert.deepEqual(JSON.parse(JSON.stringify(e)), {
    code: 'DIGEST_MISMATCH',
    message: 'blob sha256:aa does not match',
    expected: 'sha256:aa',
    actual: 'sha256:bb',
    bytesRead: 12,
  });
});

test('isKimgError filters by code and by code list', () => {
  const e = new KimgError('NOT_FOUND', 'tag 1 not found');
  assert.ok(isKimgError(e));
  assert.ok(isKimgError(e, 'NOT_FOUND'));
  assert.ok(isKimgError(e, ['UNAUTHORIZED', 'NOT_FOUND']));
  assert.ok(!isKimgError(e, 'UNAUTHORIZED'));
  assert.ok(!isKimgError(new Error('x')));
  assert.ok(!isKimgError({ code: 'NOT_FOUND' }), 'a look-alike without the brand is not a KimgError');
  assert.ok(!isKimgError(null));
});

test('isKimgError recognises errors from a second loaded copy of the package', async () => {
  // Load the compiled module again under a different URL: a distinct class, same Symbol.for brand.
  // (The query string makes the loader evaluate kimg-error.js a second time.)
  const url = new URL('../../../src/errors/kimg-error.js?copy=2', import.meta.url).href;
  const copy = (await import(url)) as typeof import('../../../src/errors/kimg-error.js');
  assert.notEqual(copy.KimgError, KimgError);
  const foreign = new copy.KimgError('STALLED', 'no bytes for 60s');
  assert.ok(!(foreign instanceof KimgError));
  assert.ok(isKimgError(foreign, 'STALLED'));
  assert.ok(copy.isKimgError(new KimgError('STALLED', 'x'), 'STALLED'));
  // and one from another realm entirely
  const ctx = vm.createContext({});
  const other = vm.runInContext(
    `const e = new Error('x'); Object.defineProperty(e, Symbol.for('kimg.error'), {value: true}); e.code = 'ABORTED'; e`,
    ctx,
  );
  assert.ok(isKimgError(other, 'ABORTED'));
});

test('toKimgError passes KimgErrors through and codes everything else', () => {
  const k = new KimgError('USAGE', 'bad flag');
  assert.equal(toKimgError(k), k);
  const abort = new Error('aborted');
  abort.name = 'AbortError';
  assert.equal(toKimgError(abort).code, 'ABORTED');
  assert.equal(toKimgError('boom').code, 'INTERNAL');
});

test('every code has an exit status and docs/errors.md is up to date', () => {
  for (const code of ALL_ERROR_CODES) {
    assert.ok(isKimgErrorCode(code));
    assert.equal(typeof EXIT_STATUS_BY_CODE[code], 'number', code);
  }
  assert.ok(!isKimgErrorCode('NOPE'));
  const script = new URL('../../../../scripts/gen-errors-doc.mjs', import.meta.url).pathname;
  const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('Secret never prints its value', () => {
  const canary = 'CANARY-pw-8f1d2c';
  const s = new Secret(canary);
  assert.equal(s.reveal(), canary);
  assert.equal(String(s), '<redacted>');
  assert.equal(`${s}`, '<redacted>');
  assert.equal(JSON.stringify({ s }), '{"s":"<redacted>"}');
  assert.ok(!inspect({ s }, { depth: 5, showHidden: true }).includes(canary));
  assert.ok(!Object.keys(s).length);
  const err = new KimgError('UNAUTHORIZED', `refused ${s}`);
  assert.ok(!err.message.includes(canary));
});

test('quoteValue never throws and caps its output', () => {
  assert.equal(quoteValue('a"b'), '"a\\"b"');
  assert.equal(quoteValue({ toString: null }), '{"toString":null}');
  assert.equal(quoteValue(undefined), '<undefined>');
  assert.equal(quoteValue(Symbol('s')), '<symbol>');
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.equal(quoteValue(cyclic), '<object>');
  assert.equal(quoteValue(10n), '<bigint>');
  assert.equal(quoteValue([1, 2, 3], 3), '[1,…');
});
