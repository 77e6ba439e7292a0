import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import {
  ContentVerifier,
  createSizeLimitStream,
  createVerifyStream,
  digestOf,
} from '../../../src/registry/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function run(
  chunks: Buffer[],
  t: ReturnType<typeof createVerifyStream>,
): Promise<{ out: Buffer; error?: unknown }> {
  const got: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      got.push(c);
      cb();
    },
  });
  try {
    await pipeline(Readable.from(chunks), t, sink);
    return { out: Buffer.concat(got) };
  } catch (error) {
    return { out: Buffer.concat(got), error };
  }
}

const chunked = fc
  .array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 })
  .map((a) => a.map((x) => Buffer.from(x)));

describe('verify stream', () => {
  test('passes content through unchanged when digest and size match', async () => {
    await fc.assert(
      fc.asyncProperty(chunked, async (chunks) => {
        const all = Buffer.concat(chunks);
        const { out, error } = await run(chunks, createVerifyStream(sha(all), all.length));
        assert.equal(error, undefined);
        assert.ok(out.equals(all));
      }),
      fuzzParams(Math.min(2000, Number(process.env.KIMG_FUZZ_RUNS ?? 2000))),
    );
  });

  test('any wrong size or digest fails with the right code carrying expected/actual', async () => {
    await fc.assert(
      fc.asyncProperty(
        chunked,
        fc.integer({ min: -3, max: 3 }),
        fc.boolean(),
        async (chunks, delta, wrongDigest) => {
          const all = Buffer.concat(chunks);
          const size = all.length + delta;
          fc.pre(size >= 0 && (delta !== 0 || wrongDigest));
          const digest = wrongDigest ? sha(Buffer.concat([all, Buffer.from('x')])) : sha(all);
          const { out, error } = await run(chunks, createVerifyStream(digest, size));
          if (delta !== 0) {
            assert.ok(isKimgError(error, 'SIZE_MISMATCH'), String(error));
            assert.equal(error.details.expected, size);
            assert.ok(out.length <= size, 'never passes bytes beyond the size');
            if (delta < 0) assert.ok((error.details.actual as number) > size);
            else assert.equal(error.details.actual, all.length);
          } else {
            assert.ok(isKimgError(error, 'DIGEST_MISMATCH'), String(error));
            assert.equal(error.details.expected, digest);
            assert.equal(error.details.actual, sha(all));
            assert.equal(error.details.bytesRead, all.length);
          }
        },
      ),
      fuzzParams(Math.min(2000, Number(process.env.KIMG_FUZZ_RUNS ?? 2000))),
    );
  });

  test('refuses the first byte beyond the size immediately', async () => {
    const chunks = [Buffer.alloc(10), Buffer.alloc(10), Buffer.alloc(10)];
    const { out, error } = await run(chunks, createVerifyStream(sha(Buffer.alloc(15)), 15));
    assert.ok(isKimgError(error, 'SIZE_MISMATCH'));
    assert.equal(out.length, 10);
    assert.equal(error.details.actual, 20);
    assert.match(error.message, /larger than its descriptor says: expected 15 bytes, received at least 20/);
  });

  test('size limit stream counts without hashing', async () => {
    const { error } = await run([Buffer.alloc(5)], createSizeLimitStream(5));
    assert.equal(error, undefined);
    const r = await run([Buffer.alloc(4)], createSizeLimitStream(5));
    assert.ok(isKimgError(r.error, 'SIZE_MISMATCH'));
  });

  test('sha384 / sha512 digests, digestOf', () => {
    const data = Buffer.from('hello');
    for (const alg of ['sha256', 'sha384', 'sha512']) {
      const d = digestOf(data, alg);
      const v = new ContentVerifier(d, data.length);
      v.update(data);
      assert.equal(v.finish(), d);
    }
  });

  test('bad inputs are coded errors', () => {
    assert.throws(
      () => new ContentVerifier('md5:abc', 1),
      (e: unknown) => isKimgError(e),
    );
    assert.throws(
      () => new ContentVerifier('sha256:zz', 1),
      (e: unknown) => isKimgError(e),
    );
    assert.throws(
      () => new ContentVerifier(sha(Buffer.alloc(0)), -1),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
    );
    assert.throws(
      () => digestOf(Buffer.alloc(0), 'md5'),
      (e: unknown) => isKimgError(e, 'DIGEST_UNSUPPORTED'),
    );
  });
});
