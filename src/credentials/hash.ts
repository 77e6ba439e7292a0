/**
 * The credential hash kubelet stores in image pull records (KEP-2535, `hashAuthConfig` in
 * `pkg/credentialprovider/keyring.go`): hex SHA-256 of `json.Marshal(AuthConfig)` with the fields in
 * Go struct order (`username`, `password`, `auth`, `email`, `serveraddress`, `identitytoken`,
 * `registrytoken`) and empty ones omitted. Kubelet's keyring only ever fills username, password and
 * email, so for docker-config credentials the hash equals kubelet's; kimg adds the identity and
 * registry tokens when present (kubelet would not carry them at all). The server address is not
 * credential material and is never hashed.
 */
import { createHash } from 'node:crypto';
import { goJsonMarshal } from './internal/go-json.js';
import type { AuthConfig } from './secret.js';

/**
 * Hex SHA-256 of the credential material, byte-compatible with kubelet's `AuthConfigHash` for
 * username/password/email credentials. Safe to log and store: it does not reveal the password.
 */
export function credentialHash(auth: AuthConfig): string {
  const nonEmpty = (s: string | undefined): string | undefined =>
    s === undefined || s === '' ? undefined : s;
  const json = goJsonMarshal({
    username: nonEmpty(auth.username),
    password: nonEmpty(auth.password?.reveal()),
    email: nonEmpty(auth.email),
    identitytoken: nonEmpty(auth.identityToken?.reveal()),
    registrytoken: nonEmpty(auth.registryToken?.reveal()),
  });
  return createHash('sha256').update(json, 'utf8').digest('hex');
}
