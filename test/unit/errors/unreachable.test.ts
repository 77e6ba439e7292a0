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

  test("grpc-js's other connection text keeps its words without the empty fragments", () => {
    assert.equal(unreachableSocket('Connection dropped. Resolution note: ').reason, 'Connection dropped');
    assert.equal(unreachableSocket(' ; . Resolution note: ').reason, 'no answer');
    assert.equal(unreachableSocket('').reason, 'no answer');
  });

  test("a peer's own message is passed on as it came", () => {
    const own = 'Error: registry unavailable; try again. Later.';
    assert.equal(unreachableSocket(own).reason, own);
    assert.equal(unreachableSocket(`  ${own}\n`).reason, own);
  });

  test('property: a reason always; no grpc-js framing or empty fragment in it; other text unchanged', () => {
    const framing = fc.constantFrom(
      'No connection established.',
      'Last error:',
      'Resolution note:',
      ';',
      ' ',
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(framing, fc.string()), { maxLength: 8 }), (parts) => {
        const details = parts.join(' ');
        const { reason } = unreachableSocket(details);
        assert.notEqual(reason, '');
        if (/No connection established|Last error:|Resolution note:/.test(details)) {
          if (/\bconnect E[A-Z0-9]+\b/.test(details)) return;
          assert.doesNotMatch(reason, /Resolution note:|Last error:|;\s*;|^;|;\s*$/);
        } else assert.equal(reason, details.trim() === '' ? 'no answer' : details.trim());
      }),
    );
  });
});
