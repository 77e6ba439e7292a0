/**
 * `contentStoreSuite(name, factory)`: the behaviour every `ContentStore` must have (after containerd's
 * `core/content/testsuite`): commit verification, resume, locks, reads, deletes. Run against each
 * implementation and hashing mode in `content-store.test.ts`.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import type { ContentStore } from '../../../src/store/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';
import { sha256 } from './fixtures.js';

export interface SuiteSubject {
  store: ContentStore;
  /** A second instance over the same directories (a restarted process), when the store is durable. */
  reopen?: () => Promise<ContentStore>;
  cleanup: () => Promise<void>;
}

async function readAll(s: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** Deterministic bytes from a seed (xorshift32), fast enough for megabytes per property run. */
function pseudoRandom(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed | 0 || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function code(e: unknown): string | undefined {
  return isKimgError(e) ? e.code : undefined;
}

export function contentStoreSuite(name: string, factory: () => Promise<SuiteSubject>): void {
  describe(`contentStoreSuite: ${name}`, () => {
    const withStore = (fn: (s: SuiteSubject) => Promise<void>) => async () => {
      const subject = await factory();
      try {
        await fn(subject);
      } finally {
        await subject.cleanup();
      }
    };

    test(
      'writeBlob commits; info, hasBlob, readBlob, openRead at an offset and walk see it',
      withStore(async ({ store }) => {
        const data = randomBytes(100_000);
        const d = sha256(data);
        assert.equal(await store.hasBlob(d), false);
        const r = await store.writeBlob(data);
        assert.equal(r.digest, d);
        assert.equal(r.size, data.length);
        assert.equal(r.alreadyExisted, false);
        assert.equal(await store.hasBlob(d), true);
        assert.equal((await store.info(d)).size, data.length);
        assert.deepEqual(await store.readBlob(d), data);
        assert.deepEqual(await readAll(await store.openRead(d, { offset: 1234 })), data.subarray(1234));
        const seen: string[] = [];
        for await (const b of store.walk()) seen.push(b.digest);
        assert.deepEqual(seen, [d]);
        const again = await store.writeBlob(data);
        assert.equal(again.alreadyExisted, true);
      }),
    );

    test(
      'a writer verifies the digest at commit: DIGEST_MISMATCH carries expected and actual, nothing becomes visible',
      withStore(async ({ store }) => {
        const good = randomBytes(5000);
        const bad = Buffer.from(good);
        bad[100] = (bad[100] as number) ^ 1;
        const w = await store.writer({ expected: { digest: sha256(good), size: good.length } });
        await w.write(bad);
        await assert.rejects(w.commit(), (e: unknown) => {
          assert.ok(isKimgError(e, 'DIGEST_MISMATCH'));
          assert.equal(e.details.expected, sha256(good));
          assert.equal(e.details.actual, sha256(bad));
          return true;
        });
        assert.equal(await store.hasBlob(sha256(good)), false);
        assert.equal(await store.hasBlob(sha256(bad)), false);
        assert.equal((await store.listIngests()).length, 0, 'a mismatching ingest is discarded');
      }),
    );

    test(
      'bytes past the expected size are refused with SIZE_MISMATCH at once',
      withStore(async ({ store }) => {
        const data = randomBytes(3000);
        const w = await store.writer({ expected: { digest: sha256(data), size: 2999 } });
        await assert.rejects(w.write(data), (e: unknown) => code(e) === 'SIZE_MISMATCH');
        assert.equal(await store.hasBlob(sha256(data)), false);
        await w.close();
      }),
    );

    test(
      'a short commit is SIZE_MISMATCH and keeps the ingest; a new writer resumes from its offset',
      withStore(async ({ store, reopen }) => {
        const data = randomBytes(3 * 1024 * 1024 + 17);
        const d = sha256(data);
        const ref = 'layer-resume';
        const w1 = await store.writer({
          ref,
          expected: { digest: d, size: data.length },
          holder: 'test one',
        });
        assert.equal(w1.offset, 0);
        assert.equal(w1.resumedFrom, 0);
        await w1.write(data.subarray(0, 2_000_000));
        await assert.rejects(w1.commit(), (e: unknown) => {
          assert.ok(isKimgError(e, 'SIZE_MISMATCH'));
          assert.equal(e.details.expected, data.length);
          assert.equal(e.details.actual, 2_000_000);
          return true;
        });
        const st = await store.ingestStatus(ref);
        assert.equal(st?.offset, 2_000_000);
        assert.equal(st?.total, data.length);
        assert.equal(st?.expected, d);
        assert.equal(st?.lock, undefined, 'the lock is released after a failed commit');
        const s2 = reopen ? await reopen() : store;
        try {
          const w2 = await s2.writer({ ref, expected: { digest: d, size: data.length } });
          assert.equal(w2.resumedFrom, 2_000_000);
          assert.equal(w2.offset, 2_000_000);
          await w2.write(data.subarray(2_000_000));
          const r = await w2.commit();
          assert.equal(r.digest, d);
          assert.deepEqual(await s2.readBlob(d, { maxBytes: data.length }), data);
          assert.equal((await s2.listIngests()).length, 0);
        } finally {
          if (s2 !== store) await s2.close();
        }
      }),
    );

    test(
      'close() keeps progress; resuming with a different expected digest starts over',
      withStore(async ({ store }) => {
        const a = randomBytes(10_000);
        const b = randomBytes(10_000);
        const w1 = await store.writer({ ref: 'r', expected: { digest: sha256(a), size: a.length } });
        await w1.write(a.subarray(0, 4000));
        await w1.close();
        assert.equal((await store.ingestStatus('r'))?.offset, 4000);
        const w2 = await store.writer({ ref: 'r', expected: { digest: sha256(b), size: b.length } });
        assert.equal(w2.resumedFrom, 0);
        await w2.write(b);
        assert.equal((await w2.commit()).digest, sha256(b));
      }),
    );

    test(
      'reset() restarts a writer from zero (the registry ignored Range)',
      withStore(async ({ store }) => {
        const data = randomBytes(50_000);
        const w = await store.writer({ expected: { digest: sha256(data), size: data.length } });
        await w.write(randomBytes(20_000));
        await w.reset();
        assert.equal(w.offset, 0);
        await w.write(data);
        assert.equal((await w.commit()).size, data.length);
        assert.deepEqual(await store.readBlob(sha256(data)), data);
      }),
    );

    test(
      'a second writer for the same ref gets STORE_LOCKED naming the holder and since when',
      withStore(async ({ store }) => {
        const data = randomBytes(1000);
        const w1 = await store.writer({
          ref: 'same',
          expected: { digest: sha256(data), size: 1000 },
          holder: 'pull example.com/a:1',
        });
        assert.equal(store.lockStatus('same')?.holder, 'pull example.com/a:1');
        await assert.rejects(
          store.writer({ ref: 'same', expected: { digest: sha256(data), size: 1000 } }),
          (e: unknown) => {
            assert.ok(isKimgError(e, 'STORE_LOCKED'));
            assert.match(e.message, /pull example\.com\/a:1/);
            assert.match(e.message, /since \d{4}-\d\d-\d\dT/);
            return true;
          },
        );
        const st = await store.ingestStatus('same');
        assert.equal(st?.lock?.holder, 'pull example.com/a:1');
        await assert.rejects(store.abortIngest('same'), (e: unknown) => code(e) === 'STORE_LOCKED');
        await w1.write(data);
        await w1.commit();
        assert.equal(store.lockStatus('same'), undefined);
        const w3 = await store.writer({ ref: 'same', expected: { digest: sha256(data), size: 1000 } });
        assert.equal(w3.existing, true, 'the blob is now committed');
        await w3.commit();
      }),
    );

    test(
      'concurrent writers of the same digest under different refs both succeed; the blob is intact',
      withStore(async ({ store }) => {
        const data = randomBytes(2 * 1024 * 1024 + 5);
        const d = sha256(data);
        const run = async (ref: string) => {
          const w = await store.writer({ ref, expected: { digest: d, size: data.length } });
          for (let o = 0; o < data.length; o += 65536) await w.write(data.subarray(o, o + 65536));
          return w.commit();
        };
        const results = await Promise.all([run('a'), run('b'), run('c')]);
        assert.ok(results.every((r) => r.digest === d));
        assert.deepEqual(await store.readBlob(d, { maxBytes: data.length }), data);
        assert.equal((await store.listIngests()).length, 0);
      }),
    );

    test(
      'abortIngest removes an ingest; listIngests reports ref, offset, total and expected',
      withStore(async ({ store }) => {
        const data = randomBytes(8000);
        const w = await store.writer({
          ref: 'to-abort',
          expected: { digest: sha256(data), size: data.length },
        });
        await w.write(data.subarray(0, 100));
        await w.close();
        const list = await store.listIngests();
        assert.equal(list.length, 1);
        assert.equal(list[0]?.ref, 'to-abort');
        assert.equal(list[0]?.offset, 100);
        assert.equal(list[0]?.total, data.length);
        assert.equal(list[0]?.expected, sha256(data));
        await store.abortIngest('to-abort');
        assert.deepEqual(await store.listIngests(), []);
      }),
    );

    test(
      'delete removes a blob; info, readBlob, openRead and delete of a missing blob are BLOB_NOT_FOUND',
      withStore(async ({ store }) => {
        const data = randomBytes(10);
        const d = sha256(data);
        await store.writeBlob(data);
        await store.delete(d);
        assert.equal(await store.hasBlob(d), false);
        for (const call of [
          () => store.info(d),
          () => store.readBlob(d),
          () => store.openRead(d),
          () => store.delete(d),
        ]) {
          await assert.rejects(call(), (e: unknown) => code(e) === 'BLOB_NOT_FOUND');
        }
      }),
    );

    test(
      'invalid digests are coded errors, never paths',
      withStore(async ({ store }) => {
        for (const [d, c] of [
          ['sha256:../../etc/passwd', 'DIGEST_INVALID_FORMAT'],
          ['sha256:ABCDEF', 'DIGEST_INVALID_FORMAT'],
          ['sha256:abcd', 'DIGEST_INVALID_LENGTH'],
          ['md5:' + 'a'.repeat(32), 'DIGEST_UNSUPPORTED'],
          ['nocolon', 'DIGEST_INVALID_FORMAT'],
        ] as const) {
          await assert.rejects(store.info(d), (e: unknown) => code(e) === c, d);
          await assert.rejects(store.writer({ expected: { digest: d } }), (e: unknown) => code(e) === c, d);
        }
      }),
    );

    test(
      'an empty blob and sha512 digests commit',
      withStore(async ({ store }) => {
        assert.equal((await store.writeBlob(Buffer.alloc(0))).digest, sha256(''));
        const data = randomBytes(300);
        const { createHash } = await import('node:crypto');
        const d512 = 'sha512:' + createHash('sha512').update(data).digest('hex');
        const r = await store.writeBlob(data, { digest: d512 });
        assert.equal(r.digest, d512);
        assert.deepEqual(await store.readBlob(d512), data);
      }),
    );

    test(
      'writable() works with stream.pipeline',
      withStore(async ({ store }) => {
        const data = randomBytes(700_000);
        const w = await store.writer({ expected: { digest: sha256(data), size: data.length } });
        const chunks = Array.from({ length: Math.ceil(data.length / 4096) }, (_, i) =>
          data.subarray(i * 4096, (i + 1) * 4096),
        );
        await pipeline(Readable.from(chunks), w.writable());
        await w.commit();
        assert.deepEqual(await store.readBlob(sha256(data)), data);
      }),
    );

    test(
      'sink(): borrowed chunks (the caller reuses its buffer), pushback via onDrain, commit verifies',
      withStore(async ({ store }) => {
        const data = pseudoRandom(5 * 1024 * 1024 + 333, 42);
        const w = await store.writer({ expected: { digest: sha256(data), size: data.length } });
        const sink = w.sink();
        // One scratch buffer reused for every chunk, like a socket's read buffer.
        const scratch = Buffer.alloc(256 * 1024);
        let pushedBack = 0;
        for (let o = 0; o < data.length;) {
          const n = Math.min(scratch.length - (o % 7), data.length - o);
          data.copy(scratch, 0, o, o + n);
          const ok = sink.write(scratch.subarray(0, n));
          scratch.fill(0xee); // the writer must have copied what it keeps
          o += n;
          if (!ok) {
            pushedBack++;
            await new Promise<void>((resolve, reject) => sink.onDrain((e) => (e ? reject(e) : resolve())));
          }
        }
        assert.equal(w.offset, data.length);
        const r = await w.commit();
        assert.equal(r.digest, sha256(data));
        assert.deepEqual(await store.readBlob(sha256(data), { maxBytes: data.length }), data);
        assert.ok(pushedBack > 0, 'a writer with two full buffers waiting pushes back');
      }),
    );

    test(
      'sink(): bytes past the expected size throw SIZE_MISMATCH at once; later writes and drains fail too',
      withStore(async ({ store }) => {
        const data = randomBytes(3000);
        const w = await store.writer({ expected: { digest: sha256(data), size: 2999 } });
        const sink = w.sink();
        assert.equal(sink.write(data.subarray(0, 1000)), true);
        assert.throws(
          () => sink.write(data.subarray(1000)),
          (e: unknown) => code(e) === 'SIZE_MISMATCH',
        );
        assert.throws(() => sink.write(data.subarray(0, 1)));
        const err = await new Promise<Error | undefined>((resolve) => sink.onDrain(resolve));
        assert.ok(err instanceof Error, 'a failed writer reports the failure to a drain waiter');
        await w.close();
        assert.equal(await store.hasBlob(sha256(data)), false);
        assert.deepEqual(await store.listIngests(), [], 'the ingest was discarded');
      }),
    );

    test(
      'property: any split of any content into chunks commits to sha256 of the content',
      withStore(async ({ store }) => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: 3 * 1024 * 1024 + 100 }),
            fc.integer(),
            fc.array(fc.integer({ min: 1, max: 1_500_000 }), { maxLength: 12 }),
            async (length, seed, cuts) => {
              const data = pseudoRandom(length, seed);
              const d = sha256(data);
              const w = await store.writer({ expected: { digest: d, size: data.length } });
              let o = 0;
              for (const c of cuts) {
                if (o >= data.length) break;
                await w.write(data.subarray(o, o + c));
                o += c;
              }
              if (o < data.length) await w.write(data.subarray(o));
              const r = await w.commit();
              assert.equal(r.digest, d);
              assert.equal((await store.info(d)).size, data.length);
            },
          ),
          { ...fuzzParams(40) },
        );
      }),
    );
  });
}
