/**
 * Digest strings as the store uses them: `algorithm:encoded` with lowercase hex (go-digest
 * `digest.go`, OCI image-spec `descriptor.md#digests`). The store keeps blobs under
 * `blobs/<algorithm>/<encoded>` (image-spec `image-layout.md`), so a digest is validated before it is
 * ever turned into a path: no `..`, no separators, no uppercase.
 */
import { KimgError, quote } from '../../errors/index.js';

/** Algorithms the store can hash, with the hex length of their encoded part. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha384: 96, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

/** A parsed digest. */
export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  encoded: string;
}

const FORMAT = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/**
 * Parses and validates a digest. Throws `DIGEST_INVALID_FORMAT` (shape), `DIGEST_UNSUPPORTED`
 * (well-formed but not sha256/sha384/sha512) or `DIGEST_INVALID_LENGTH`.
 */
export function parseDigest(digest: string): ParsedDigest {
  const m = FORMAT.exec(digest);
  if (!m) {
    throw new KimgError(
      'DIGEST_INVALID_FORMAT',
      `invalid digest ${quote(digest)}: expected algorithm:hex, e.g. sha256:<64 hex>`,
      {
        input: digest,
      },
    );
  }
  const algorithm = m[1] as string;
  const encoded = m[2] as string;
  if (!Object.prototype.hasOwnProperty.call(DIGEST_ALGORITHMS, algorithm)) {
    throw new KimgError(
      'DIGEST_UNSUPPORTED',
      `unsupported digest algorithm in ${quote(digest)}: use sha256, sha384 or sha512`,
      {
        input: digest,
      },
    );
  }
  const alg = algorithm as DigestAlgorithm;
  if (!/^[a-f0-9]+$/.test(encoded)) {
    throw new KimgError(
      'DIGEST_INVALID_FORMAT',
      `invalid digest ${quote(digest)}: the encoded part must be lowercase hex`,
      {
        input: digest,
      },
    );
  }
  if (encoded.length !== DIGEST_ALGORITHMS[alg]) {
    throw new KimgError(
      'DIGEST_INVALID_LENGTH',
      `invalid digest ${quote(digest)}: ${alg} needs ${DIGEST_ALGORITHMS[alg]} hex characters, got ${encoded.length}`,
      { input: digest, expected: DIGEST_ALGORITHMS[alg], actual: encoded.length },
    );
  }
  return { algorithm: alg, encoded };
}

/** True when `digest` is a valid, supported digest. */
export function isValidDigest(digest: unknown): digest is string {
  if (typeof digest !== 'string') return false;
  try {
    parseDigest(digest);
    return true;
  } catch {
    return false;
  }
}
