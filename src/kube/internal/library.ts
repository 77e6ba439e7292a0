/**
 * `@kubernetes/client-node`, loaded when cluster mode first needs it. Loading it costs ~85 MiB of
 * memory and a noticeable start-up (measured on a 2-core node: `import` of the package alone), which
 * every command that merely can talk to an API server — `kimg serve`, `kimg node` without
 * `--kubeconfig`, `kimg explain IMAGE` — would otherwise pay. A client configuration exists only after
 * {@link loadClientLibrary} (src/kube `loadKubeClientConfig` awaits it), so everything built on one may
 * use {@link clientLibrary} synchronously.
 */
import { KimgError } from '../../errors/index.js';

export type ClientLibrary = typeof import('@kubernetes/client-node');

let loaded: ClientLibrary | undefined;

/** Loads the library once per process. */
export async function loadClientLibrary(): Promise<ClientLibrary> {
  loaded ??= await import('@kubernetes/client-node');
  return loaded;
}

/** The loaded library. @throws `INTERNAL` before {@link loadClientLibrary} resolved. */
export function clientLibrary(): ClientLibrary {
  if (loaded === undefined)
    throw new KimgError('INTERNAL', 'the Kubernetes client library is used before it was loaded');
  return loaded;
}
