/**
 * A credential value that never prints. `String(s)`, `JSON.stringify(s)`, template literals and
 * `util.inspect` (console.log, test failure diffs) all give `<redacted>`; only `reveal()` returns the
 * value, and only the code that puts it on the wire should call it (as ggcr's `redact` does).
 */
import { inspect } from 'node:util';

const REDACTED = '<redacted>';
const values = new WeakMap<Secret, string>();

export class Secret {
  /** Wraps `value`; the string is held outside the object so enumeration cannot reach it. */
  constructor(value: string) {
    values.set(this, value);
    Object.freeze(this);
  }

  /** The raw value, for the Authorization header or the token request body only. */
  reveal(): string {
    return values.get(this) ?? '';
  }

  /** True when the wrapped value is empty. */
  get isEmpty(): boolean {
    return this.reveal().length === 0;
  }

  /** Constant-time-insensitive equality on the raw values (for dedup; never logged). */
  equals(other: Secret | undefined): boolean {
    return other !== undefined && other.reveal() === this.reveal();
  }

  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [Symbol.toPrimitive](): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }

  /** Wraps a possibly-undefined string. */
  static of(value: string | undefined | null): Secret | undefined {
    return value === undefined || value === null ? undefined : new Secret(value);
  }
}

/**
 * Credentials for one registry, in the shape CRI `AuthConfig` and docker config entries share.
 * kubelet sends only username/password; identity tokens are OAuth2 refresh tokens; registry tokens are
 * bearer tokens sent as they are.
 */
export interface AuthConfig {
  username?: string;
  password?: Secret;
  /** docker config `email` (deprecated by docker, still hashed by kubelet: see `credentialHash`). */
  email?: string;
  /** OAuth2 refresh token (docker config `identitytoken`, CRI `identity_token`). */
  identityToken?: Secret;
  /** A bearer token for the registry itself (docker config `registrytoken`, CRI `registry_token`). */
  registryToken?: Secret;
  /** The registry the credential was issued for, if known (CRI `server_address`). */
  serverAddress?: string;
}
