/**
 * How the containerd client words a containerd it cannot reach: the address, the rpc, the system error
 * of the connect and what to check, in kimg's words, never grpc-js's status text ("No connection
 * established. Last error: … Resolution note: "). Real grpc-js connects to a missing path and to a
 * file that is not a socket; the other wordings through `fromContainerdError` with the status grpc-js
 * hands over.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { ContainerdClient, containerdStatus, fromContainerdError } from '../../../src/containerd/index.js';
import { isKimgError, type KimgError } from '../../../src/errors/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const CHECK = 'check that containerd is running and that the socket path is right';

/** What grpc-js hands a unary callback when it could not connect (its details and message). */
function unavailable(details: string): Partial<grpc.ServiceError> {
  return { code: grpc.status.UNAVAILABLE, details, message: `14 UNAVAILABLE: ${details}` };
}

/** A message kimg would print has no empty fragment and none of grpc-js's framing. */
function assertClean(message: string): void {
  assert.doesNotMatch(message, /Resolution note|Last error|No connection established|Error:/, message);
  assert.doesNotMatch(message, /:\s*;|;\s*;|:\s*:|\(\s*\)|\s$|;\s*$/, message);
}

async function listError(address: string): Promise<KimgError> {
  const c = new ContainerdClient({ address });
  try {
    await c.imageList();
  } catch (e) {
    assert.ok(isKimgError(e), String(e));
    return e as KimgError;
  } finally {
    c.close();
  }
  throw new Error(`imageList on ${address} succeeded`);
}

describe('containerd client: an unreachable containerd', () => {
  let work = '';
  before(async () => {
    work = await makeTempDir('ctrd-err-');
  });
  after(async () => {
    if (work) await removeTempDir(work);
  });

  test('a missing socket: CONTAINERD_UNAVAILABLE naming the address and ENOENT', async () => {
    const socket = join(work, 'nobody.sock');
    for (const address of [socket, `unix://${socket}`]) {
      const e = await listError(address);
      assert.equal(e.code, 'CONTAINERD_UNAVAILABLE');
      assert.equal(
        e.message,
        `containerd at ${address} is unavailable (Images.List): the socket does not exist (ENOENT); ${CHECK}`,
      );
      assertClean(e.message);
      assert.equal(containerdStatus(e), 'UNAVAILABLE');
      assert.equal(e.details.host, address);
      assert.deepEqual(e.details.items, ['ENOENT']);
      assert.equal(e.details.retryable, true);
    }
  });

  test('a path that is no socket: ECONNREFUSED', async () => {
    const file = join(work, 'plain-file');
    await writeFile(file, 'not a socket\n');
    const e = await listError(file);
    assert.equal(
      e.message,
      `containerd at ${file} is unavailable (Images.List): nothing listens on the socket (ECONNREFUSED); ${CHECK}`,
    );
    assert.deepEqual(e.details.items, ['ECONNREFUSED']);
  });

  test('permission denied says what to run as; other system errors are named', () => {
    const denied = fromContainerdError(
      unavailable(
        'No connection established. Last error: Error: connect EACCES /run/c.sock. Resolution note: ',
      ),
      'Content.Info',
      '/run/c.sock',
      'sha256:ab',
    );
    assert.equal(
      denied.message,
      "containerd at /run/c.sock is unavailable (Content.Info (sha256:ab)): permission denied on the socket (EACCES); run kimg as a user that may open containerd's socket (root, or the socket's group)",
    );
    const other = fromContainerdError(
      unavailable(
        'No connection established. Last error: Error: connect EAGAIN /run/c.sock. Resolution note: ',
      ),
      'Images.List',
      '/run/c.sock',
    );
    assert.equal(
      other.message,
      `containerd at /run/c.sock is unavailable (Images.List): connecting to the socket failed (EAGAIN); ${CHECK}`,
    );
  });

  test('without a connect error: grpc-js’s reason without its framing; nothing at all reads "no answer"', () => {
    const dropped = fromContainerdError(unavailable('Connection dropped'), 'Images.List', '/run/c.sock');
    assert.equal(
      dropped.message,
      `containerd at /run/c.sock is unavailable (Images.List): Connection dropped; ${CHECK}`,
    );
    const empty = fromContainerdError(unavailable(''), 'Images.List', '/run/c.sock');
    assert.equal(
      empty.message,
      `containerd at /run/c.sock is unavailable (Images.List): no answer; ${CHECK}`,
    );
    const noted = fromContainerdError(
      unavailable('No connection established. Last error: Error: read ECONNRESET. Resolution note: '),
      'Images.List',
      '/run/c.sock',
    );
    assert.equal(
      noted.message,
      `containerd at /run/c.sock is unavailable (Images.List): No connection established; read ECONNRESET; ${CHECK}`,
    );
  });

  test('containerd’s own "locked" (another writer) stays CONTAINERD_ERROR with its text', () => {
    const e = fromContainerdError(
      unavailable('ref k8s.io/1/layer-sha256:ab locked for 1s: unavailable'),
      'Content.Write',
      '/run/c.sock',
      'layer-sha256:ab',
    );
    assert.equal(e.code, 'CONTAINERD_ERROR');
    assert.match(e.message, /locked for 1s/);
  });

  test('property: whatever grpc-js says, the message names the address and has no empty fragment', () => {
    const fragment = fc.constantFrom(
      'No connection established.',
      'Last error:',
      'Error:',
      'connect',
      'ENOENT',
      'ECONNREFUSED',
      '/run/containerd/containerd.sock.',
      'Resolution note:',
      ' ',
      '.',
      ';',
      'Connection dropped',
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(fragment, fc.string({ maxLength: 8 })), { maxLength: 10 }), (parts) => {
        const details = parts.join(' ');
        const e = fromContainerdError(unavailable(details), 'Images.List', '/run/c.sock');
        if (e.code !== 'CONTAINERD_UNAVAILABLE') return; // "locked": containerd's own text
        assert.ok(
          e.message.startsWith('containerd at /run/c.sock is unavailable (Images.List): '),
          e.message,
        );
        assert.ok(
          e.message.endsWith(CHECK) || e.message.endsWith("(root, or the socket's group)"),
          e.message,
        );
        const reason = e.message.slice(
          'containerd at /run/c.sock is unavailable (Images.List): '.length,
          e.message.lastIndexOf('; '),
        );
        assert.notEqual(reason.trim(), '', e.message);
        // Text without grpc-js's framing is containerd's own, passed on as it came.
        if (!/No connection established|Last error:|Resolution note:/.test(details)) return;
        assert.doesNotMatch(
          reason,
          /Resolution note:|Last error:|;\s*;|^\s*;/,
          `${JSON.stringify(details)} → ${e.message}`,
        );
      }),
      fuzzParams(),
    );
  });
});
