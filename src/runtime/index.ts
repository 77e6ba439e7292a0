/**
 * The composition root: one function, {@link openNodeRuntime}, assembles a node's image runtime from
 * its configuration — the way the kubelet's `NewMainKubelet` builds the image manager, the image GC
 * manager and the credential lookup once (kubernetes `pkg/kubelet/kubelet.go`). The faces that decide
 * about images (the CLI's `ensure`/`explain`/`gc`/`serve`/`prepull`, the node agent) open one and
 * render what it returns; no face wires stores, services or managers itself. The store commands
 * (`kimg pull`, `images`, `rmi`, `inspect`) need only where images live: they open the runtime's
 * backend alone ({@link openImageBackend}), the same factory `openNodeRuntime` opens its backend with.
 *
 * The backend is ONE setting, {@link ImageServiceBackend}: `local` (kimg's store), `containerd`
 * (containerd's store, filled by kimg's pipeline) or `cri` (a runtime's socket), chosen from the
 * configuration's `kimg.containerd` and a face's flags by {@link imageServiceBackend}; a new backend is
 * one more case of that union and of `backend.ts`. gRPC and the protos (containerd, CRI), the manager
 * and the pull pipeline are loaded when first needed, so a store command starts light.
 *
 * What it builds, in order (and closes in reverse):
 *
 * 1. the store (`config.kimg.rootDir`, or `overrides.root`, or the store's own root resolution);
 * 2. the registry client (`config.kimg.hostsDir` plus `overrides.registry`);
 * 3. the image service of the backend ({@link openImageBackend});
 * 4. the credential sources (`PodCredentials`: pod Secrets and ServiceAccounts from Kubernetes
 *    objects, the node docker config, `--docker-config` files, the exec plugins the configuration
 *    names);
 * 5. the credential verifier of present images (pull records under the root; reconciled at open
 *    unless `verification: 'read-only'`);
 * 6. the persisted back-off (`<root>/manager/backoff.json`) and the image manager (puller settings and
 *    feature gates from the kubelet configuration);
 * 7. the image GC manager (policy from the configuration, state under the root, store sweep for
 *    `local`; for `containerd`, the images of containerd's containers count as in use on every run).
 *
 * `explain.ts` runs the manager's explain chain over an open runtime (`explainImages`,
 * `podExplainInputs`): which back-off, records and verification count is decided there, not in a face.
 *
 * ```ts
 * const rt = await openNodeRuntime(await loadNodeConfig(file), { imageService: { kind: 'local' } });
 * try {
 *   rt.credentials.setPodSecrets(pod.uid, resolvePodPullSecrets(pod, objects));
 *   const result = await rt.manager.ensurePodImages(pod.object);
 * } finally {
 *   await rt.close();
 * }
 * ```
 *
 * Overrides ({@link NodeRuntimeOverrides}) inject what a face or a test owns: the environment, an open
 * store or registry client (then not closed by the runtime), the clock, event recorders, hooks for
 * progress and metrics, GC usage and node name.
 */
import type { NodeConfig } from '../config/index.js';
import type { NodeRuntime, NodeRuntimeOverrides } from './types.js';

/**
 * Opens the node's image runtime (see the module comment); `./open.ts` has the steps. Loaded on the
 * first call, so a face that imports this module only for the backend (`kimg images`) does not load
 * the manager, the credential sources and image GC.
 * @throws KimgError `STORE_IO` / store codes (the store cannot be opened),
 *   `CREDENTIAL_PROVIDER_CONFIG_INVALID` (plugins), `CONFIG_INVALID` (verification policy, GC policy).
 *   Whatever was opened before the failure is closed.
 */
export async function openNodeRuntime(
  config: NodeConfig,
  overrides: NodeRuntimeOverrides = {},
): Promise<NodeRuntime> {
  const { openNodeRuntime: open } = await import('./open.js');
  return open(config, overrides);
}
export {
  imageServiceBackend,
  openImageBackend,
  type BackendChoice,
  type BackendPullResult,
  type ImageBackend,
  type ImageBackendOptions,
} from './backend.js';
export {
  describeRuntime,
  explainDeps,
  explainImages,
  podExplainInputs,
  type PodExplainInputs,
  type RuntimeExplainOptions,
} from './explain.js';
export type {
  ImageServiceBackend,
  ImageServiceBackendKind,
  NodeRuntime,
  NodeRuntimeOverrides,
  RuntimeCredentialOptions,
  RuntimeGCOptions,
} from './types.js';
