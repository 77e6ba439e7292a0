/**
 * Throw-away keys and certificates for the registry fixtures, made with the real `openssl` CLI:
 *
 * - the token signing key: RSA 2048 + self-signed certificate (`openssl req -x509 -newkey rsa:2048
 *   -nodes`). distribution 2.8's token authenticator trusts the public keys of the certificates in its
 *   `rootcertbundle` and finds the signing key by the JWT header `kid`, which must be the *libtrust key
 *   ID* of the public key (docker/libtrust `keyIDFromCryptoKey`: base32 of the first 240 bits of
 *   sha256(DER SubjectPublicKeyInfo), in 12 groups of 4 joined by ':'). RSA key generation costs
 *   0.1-0.3 s here, so one key per test process is made and shared by every token registry.
 * - a TLS CA and a server certificate for IP:127.0.0.1 and DNS:localhost (EC P-256: instant to make;
 *   Go 1.19 requires the subjectAltName, it ignores the CN). Fresh per registry.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireBinary } from './components.js';
import { runCommand } from './proc.js';
import { makeTempDir, removeTempDir } from './tmp.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** libtrust key ID of a public key given as DER SubjectPublicKeyInfo. */
export function libtrustKeyId(spkiDer: Buffer): string {
  const hash = createHash('sha256').update(spkiDer).digest().subarray(0, 30);
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const byte of hash) {
    acc = ((acc << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  // 30 bytes = 240 bits = exactly 48 base32 characters: no padding, no leftover bits.
  return (out.match(/.{4}/g) ?? []).join(':');
}

/** PEM key + certificate of the token issuer, and the libtrust `kid` of its public key. */
export interface TokenSigningKey {
  keyPem: string;
  certPem: string;
  kid: string;
}

let signingKey: Promise<TokenSigningKey> | undefined;

/** The token signing key of this test process (made once with openssl, then reused). */
export function tokenSigningKey(): Promise<TokenSigningKey> {
  signingKey ??= (async () => {
    const openssl = requireBinary('openssl');
    const dir = await makeTempDir('tokenkey-');
    try {
      const keyFile = join(dir, 'token.key');
      const certFile = join(dir, 'token.crt');
      // prettier-ignore
      await runCommand(openssl, [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
        '-subj', '/CN=kimg-token-issuer', '-keyout', keyFile, '-out', certFile,
      ]);
      const keyPem = await readFile(keyFile, 'utf8');
      const certPem = await readFile(certFile, 'utf8');
      const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
      return { keyPem, certPem, kid: libtrustKeyId(spki) };
    } finally {
      await removeTempDir(dir);
    }
  })();
  signingKey.catch(() => {
    signingKey = undefined;
  });
  return signingKey;
}

/** Files of a TLS fixture. */
export interface TlsFiles {
  /** PEM of the throw-away CA: trust this (curl --cacert, undici `connect.ca`, NODE_EXTRA_CA_CERTS). */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Directory holding `ca.crt`, laid out for skopeo/containers-image `--cert-dir`. */
  certsDir: string;
}

/** Makes a CA and a server certificate for 127.0.0.1 / localhost under `dir`. */
export async function makeTlsFiles(dir: string): Promise<TlsFiles> {
  const openssl = requireBinary('openssl');
  await mkdir(dir, { recursive: true });
  const f = (n: string): string => join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  // prettier-ignore
  await runCommand(openssl, [
    'req', '-x509', ...ec, '-days', '2', '-subj', '/CN=kimg-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', f('ca.key'), '-out', f('ca.crt'),
  ]);
  await runCommand(openssl, [
    'req',
    ...ec,
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
  ]);
  await writeFile(
    f('server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
  );
  const serial = '0x' + createHash('sha256').update(`${dir}:${Date.now()}`).digest('hex').slice(0, 16);
  // prettier-ignore
  await runCommand(openssl, [
    'x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
    '-set_serial', serial, '-days', '2', '-extfile', f('server.ext'), '-out', f('server.crt'),
  ]);
  const certsDir = f('certs.d');
  await mkdir(certsDir);
  await copyFile(f('ca.crt'), join(certsDir, 'ca.crt'));
  return { caFile: f('ca.crt'), certFile: f('server.crt'), keyFile: f('server.key'), certsDir };
}
