/**
 * Verify content while it streams, bounded by its descriptor.
 *
 * A descriptor promises `size` bytes hashing to `digest` (OCI image-spec `descriptor.md`). A
 * verifier hashes and counts every chunk as it passes, refuses the first byte beyond `size` (so a
 * hostile or broken server cannot make kimg read without bound), and at the end fails with
 * `SIZE_MISMATCH` or `DIGEST_MISMATCH` carrying the expected and actual values and the bytes read.
 * Follows go-containerregistry `internal/verify` and oras-go `content.VerifyReader`.
 *
 * The core is {@link ContentVerifier} (no stream machinery, no allocation per chunk beyond the hash
 * update); {@link createVerifyStream} wraps it in a Transform for `stream.pipeline`, and
 * {@link createSizeLimitStream} does the counting without hashing (for consumers that hash
 * themselves, like the store).
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { KimgError } from '../errors/index.js';
import { parseDigest } from '../reference/index.js';

const NODE_HASH: Record<string, string> = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };

/** The digest of `data` with `algorithm` (default sha256), as `algorithm:hex`. */
export function digestOf(data: Uint8Array, algorithm = 'sha256'): string {
  const alg = Object.prototype.hasOwnProperty.call(NODE_HASH, algorithm) ? NODE_HASH[algorithm] : undefined;
  if (!alg)
    throw new KimgError(
      'DIGEST_UNSUPPORTED',
      `unsupported digest algorithm ${JSON.stringify(algorithm)}: use sha256, sha384 or sha512`,
      { input: algorithm },
    );
  return `${algorithm}:${createHash(alg).update(data).digest('hex')}`;
}

/** What is being verified, for messages: `blob sha256:… from 127.0.0.1:5000/small`. */
export interface VerifyContext {
  /** Short description of the content, e.g. `blob sha256:abc… of 127.0.0.1:5000/small`. */
  what?: string;
}

/**
 * Hashes and counts content against an expected digest and size. Call {@link update} per chunk (it
 * throws as soon as the size is exceeded) and {@link finish} at the end.
 */
export class ContentVerifier {
  readonly expectedDigest: string;
  readonly expectedSize: number;
  private readonly hash: Hash | undefined;
  private readonly algorithm: string;
  private count = 0;
  private readonly what: string;

  /**
   * @param digest expected digest; `undefined` counts only.
   * @param size expected size in bytes (a non-negative safe integer).
   * @throws KimgError `INVALID_ARGUMENT` for a bad size; the reference module's digest codes
   *   (`DIGEST_INVALID_FORMAT`, `DIGEST_INVALID_LENGTH`, `DIGEST_UNSUPPORTED`) for a bad digest.
   */
  constructor(digest: string | undefined, size: number, ctx: VerifyContext = {}) {
    if (!Number.isSafeInteger(size) || size < 0)
      throw new KimgError(
        'INVALID_ARGUMENT',
        `invalid content size ${String(size)}: must be a non-negative integer`,
      );
    this.expectedSize = size;
    this.expectedDigest = digest ?? '';
    if (digest !== undefined) {
      const { algorithm } = parseDigest(digest);
      this.algorithm = algorithm;
      this.hash = createHash(NODE_HASH[algorithm] as string);
    } else this.algorithm = '';
    this.what = ctx.what ?? (digest ? `content ${digest}` : 'content');
  }

  /** Bytes seen so far. */
  get bytesRead(): number {
    return this.count;
  }

  /**
   * Accounts for one chunk.
   * @throws KimgError `SIZE_MISMATCH` when the chunk would take the total past the expected size.
   */
  update(chunk: Uint8Array): void {
    const next = this.count + chunk.byteLength;
    if (next > this.expectedSize) {
      throw new KimgError(
        'SIZE_MISMATCH',
        `${this.what} is larger than its descriptor says: expected ${this.expectedSize} bytes, received at least ${next}; the registry served different content, report it to the registry operator`,
        { expected: this.expectedSize, actual: next, bytesRead: next },
      );
    }
    this.hash?.update(chunk);
    this.count = next;
  }

  /**
   * Checks the totals at end of content; returns the actual digest (or `''` when counting only).
   * @throws KimgError `SIZE_MISMATCH` when fewer bytes arrived, `DIGEST_MISMATCH` when the hash differs.
   */
  finish(): string {
    if (this.count !== this.expectedSize) {
      throw new KimgError(
        'SIZE_MISMATCH',
        `${this.what} is shorter than its descriptor says: expected ${this.expectedSize} bytes, received ${this.count}`,
        { expected: this.expectedSize, actual: this.count, bytesRead: this.count },
      );
    }
    if (!this.hash) return '';
    const actual = `${this.algorithm}:${this.hash.digest('hex')}`;
    if (actual !== this.expectedDigest) {
      throw new KimgError(
        'DIGEST_MISMATCH',
        `${this.what} failed verification: expected digest ${this.expectedDigest}, got ${actual} over ${this.count} bytes; the content is corrupt or was altered in transit`,
        { expected: this.expectedDigest, actual, bytesRead: this.count },
      );
    }
    return actual;
  }
}

/**
 * A Transform that passes content through unchanged while verifying it against `digest` and `size`
 * (see {@link ContentVerifier}). Errors with `SIZE_MISMATCH` as soon as a byte beyond `size` arrives
 * and, at the end, with `SIZE_MISMATCH` / `DIGEST_MISMATCH`.
 */
export function createVerifyStream(digest: string, size: number, ctx: VerifyContext = {}): Transform {
  return new VerifyTransform(new ContentVerifier(digest, size, ctx));
}

/**
 * A Transform that passes content through while counting it: `SIZE_MISMATCH` on the first byte past
 * `size` and at the end if fewer than `size` bytes arrived. No hashing.
 */
export function createSizeLimitStream(size: number, ctx: VerifyContext = {}): Transform {
  return new VerifyTransform(new ContentVerifier(undefined, size, ctx));
}

class VerifyTransform extends Transform {
  constructor(private readonly verifier: ContentVerifier) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.verifier.update(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.verifier.finish();
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
}
