/**
 * Content digests: `algorithm ":" encoded`, validated the way opencontainers/go-digest v1.0.0
 * (`digest.go` `Digest.Validate`, `algorithm.go` `Algorithm.Validate`) does with the three algorithms the
 * kubelet registers (it imports `crypto/sha256` and `crypto/sha512`): `sha256` (64 hex), `sha384` (96)
 * and `sha512` (128), lowercase hex only.
 *
 * Validation order, which decides the error when several things are wrong:
 * 1. no `:`, `:` first, or nothing after it → `invalid checksum digest format`;
 * 2. an algorithm kimg does not know → `invalid checksum digest format` when the whole string does not
 *    match go-digest's `[a-z0-9]+([.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`, else `unsupported digest algorithm`;
 * 3. wrong length for the algorithm (counted in UTF-8 bytes, as Go does) → `invalid checksum digest length`;
 * 4. anything but `[a-f0-9]` → `invalid checksum digest format`.
 */
import { Buffer } from 'node:buffer';
import { quote } from '../errors/index.js';
import { type Failure, failure } from './failure.js';

/** The digest algorithms kimg verifies, with the length of their hex encoding. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha384: 96, sha512: 128 } as const;

/** A digest algorithm kimg supports. */
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

/** A validated digest. */
export interface ParsedDigest {
  /** `sha256`, `sha384` or `sha512`. */
  readonly algorithm: DigestAlgorithm;
  /** The lowercase hex encoding. */
  readonly encoded: string;
  /** `algorithm:encoded`, the digest string itself. */
  readonly digest: string;
}

function isKnownAlgorithm(a: string): a is DigestAlgorithm {
  return a === 'sha256' || a === 'sha384' || a === 'sha512';
}

/** go-digest's anchored `DigestRegexp`, as a scanner: `[a-z0-9]+([.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`. */
function matchesGoDigestSyntax(s: string): boolean {
  let i = 0;
  const n = s.length;
  const lowerAlnum = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
  for (;;) {
    if (i >= n || !lowerAlnum(s.charCodeAt(i))) return false;
    while (i < n && lowerAlnum(s.charCodeAt(i))) i++;
    if (i >= n) return false;
    const c = s.charCodeAt(i);
    if (c === 0x3a) break; // ':'
    if (c !== 0x2e && c !== 0x2b && c !== 0x5f && c !== 0x2d) return false; // . + _ -
    i++;
  }
  i++;
  if (i >= n) return false;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    const ok = lowerAlnum(c) || (c >= 0x41 && c <= 0x5a) || c === 0x3d || c === 0x5f || c === 0x2d; // A-Z = _ -
    if (!ok) return false;
  }
  return true;
}

/** go-digest's `Digest.Validate`, returning the parsed digest or a failure (never throws). */
export function validateDigest(s: string): ParsedDigest | Failure {
  const i = s.indexOf(':');
  if (i <= 0 || i + 1 === s.length) {
    return failure(
      'DIGEST_INVALID_FORMAT',
      'invalid checksum digest format',
      'expected algorithm:hex, for example sha256:<64 hex characters>',
    );
  }
  const algorithm = s.slice(0, i);
  const encoded = s.slice(i + 1);
  if (!isKnownAlgorithm(algorithm)) {
    if (!matchesGoDigestSyntax(s)) {
      return failure(
        'DIGEST_INVALID_FORMAT',
        'invalid checksum digest format',
        'expected a lowercase algorithm, ":" and the encoded hash',
      );
    }
    return failure(
      'DIGEST_UNSUPPORTED',
      'unsupported digest algorithm',
      `${quote(algorithm)} is not one of sha256, sha384, sha512`,
    );
  }
  const want = DIGEST_ALGORITHMS[algorithm];
  // Go's len() counts UTF-8 bytes; only pure-ASCII strings have equal lengths in both languages.
  const length = isAscii(encoded) ? encoded.length : Buffer.byteLength(encoded, 'utf8');
  if (length !== want) {
    return failure(
      'DIGEST_INVALID_LENGTH',
      'invalid checksum digest length',
      `${algorithm} needs exactly ${want} hex characters, got ${length}`,
    );
  }
  for (let k = 0; k < encoded.length; k++) {
    const c = encoded.charCodeAt(k);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) {
      return failure(
        'DIGEST_INVALID_FORMAT',
        'invalid checksum digest format',
        'the hex must be lowercase [a-f0-9]',
      );
    }
  }
  return Object.freeze({ algorithm, encoded, digest: s });
}

function isAscii(s: string): boolean {
  // A single character class: linear.
  return !/[\u0080-\uffff]/.test(s);
}
