/**
 * Credentials: docker config files, keyring matching, pull Secrets, ServiceAccounts and exec credential
 * providers (kubelet `pkg/credentialprovider`). Public API.
 */
export { Secret, type AuthConfig } from './secret.js';
