/**
 * The registry-backed `ImageResolver`: a tag → digest lookup with `HEAD /v2/<name>/manifests/<tag>`
 * (containerd's resolver; `GET` when HEAD is not usable), credentials tried in kubelet order.
 *
 * For a multi-arch image the answer is the digest of the index itself, never a platform's child
 * manifest: a pinned pod must still run on every architecture the tag served.
 *
 * Credentials come from a `Keyring` (node-style docker config files and pull Secrets given to the
 * webhook, see src/credentials `buildKeyring`) and are tried one by one until one works
 * (`tryEachCredential`, kubelet `kuberuntime PullImage`). Nothing secret is ever returned or logged.
 *
 * Sources: containerd `core/remotes/docker/resolver.go`; kubernetes `pkg/credentialprovider/keyring.go`.
 */
import { credentialsBindTo, tryEachCredential, type AuthConfig, type Keyring } from '../credentials/index.js';
import { parseDockerRef } from '../reference/index.js';
import type { RegistryClient } from '../registry/index.js';
import type { ImageResolver } from './pin.js';

/** Options of {@link registryResolver}. */
export interface RegistryResolverOptions {
  client: RegistryClient;
  /** Credentials by image (tried in order); absent or no match → anonymous. */
  keyring?: Keyring | undefined;
  /**
   * Fixed credentials (`--creds`); wins over `keyring` for the images of `authHost`. Without
   * `authHost` they go to every registry an image names: only for images the operator chose.
   */
  auth?: AuthConfig | undefined;
  /**
   * The one registry host `auth` belongs to (`--creds-host`). Images on any other host are resolved
   * through the keyring or anonymously: a pod that names `attacker.example/x` must not collect them.
   */
  authHost?: string | undefined;
  /** Abort a resolution after this long (a webhook must answer within its timeout). Default none. */
  timeoutMs?: number | undefined;
}

/**
 * An `ImageResolver` over a real registry.
 * @throws (from the resolver) the registry codes of `RegistryClient.resolve` (`NOT_FOUND`,
 *   `UNAUTHORIZED`, `DENIED`, `REGISTRY_UNAVAILABLE`, …), `NO_CREDENTIALS_ACCEPTED` when several
 *   credentials were all refused, reference codes for an image that does not parse.
 */
export function registryResolver(options: RegistryResolverOptions): ImageResolver {
  return async (image, call = {}) => {
    const ref = parseDockerRef(image);
    let signal = call.signal;
    if (options.timeoutMs !== undefined) {
      const t = AbortSignal.timeout(options.timeoutMs);
      signal = signal === undefined ? t : AbortSignal.any([signal, t]);
    }
    const attempt = async (auth: AuthConfig | null): Promise<string> =>
      (await options.client.resolve(ref, { auth, signal })).digest;
    if (options.auth !== undefined && credentialsBindTo(options.authHost, ref.domain))
      return attempt(options.auth);
    const matches = options.keyring?.lookup(image) ?? [];
    const { result } = await tryEachCredential(matches, (m) => attempt(m ? m.auth : null));
    return result;
  };
}
