import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { unreachableSocket } from '../../../src/errors/index.js';

describe('unreachableSocket', () => {
  test("grpc-js's connect failures become the system error in words", () => {
    const text = (errno: string) =>
      `No connection established. Last error: Error: connect ${errno} /run/x.sock. Resolution note: `;
    assert.deepEqual(unreachableSocket(text('ENOENT')), {
      errno: 'ENOENT',
      reason: 'the socket does not exist (ENOENT)',
      permission: false,
    });
    assert.equal(
      unreachableSocket(text('ECONNREFUSED')).reason,
      'nothing listens on the socket (ECONNREFUSED)',
    );
    assert.deepEqual(unreachableSocket(text('EACCES')), {
      errno: 'EACCES',
      reason: 'permission denied on the socket (EACCES)',
      permission: true,
    });
    assert.equal(unreachableSocket(text('EPERM')).permission, true);
    assert.equal(unreachableSocket(text('ENOTSOCK')).reason, 'connecting to the socket failed (ENOTSOCK)');
  });

  test('other text keeps its words without the empty fragments', () => {
    assert.equal(unreachableSocket('Connection dropped. Resolution note: ').reason, 'Connection dropped');
    assert.equal(unreachableSocket('').reason, 'no answer');
    assert.equal(unreachableSocket(' ; . Resolution note: ').reason, 'no answer');
  });

  test('property: no empty fragment, no grpc-js framing, whatever the details', () => {
    fc.assert(
      fc.property(fc.string(), (details) => {
        const { reason } = unreachableSocket(details);
        assert.notEqual(reason, '');
        assert.doesNotMatch(reason, /Resolution note:|Last error:|;\s*;|^;|;\s*$/);
      }),
    );
  });
});
