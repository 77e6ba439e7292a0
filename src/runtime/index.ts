/**
 * The composition root: one function, {@link openNodeRuntime}, assembles a node's image runtime from
 * its configuration — the way the kubelet's `NewMainKubelet` builds the image manager, the image GC
 * manager and the credential lookup once (kubernetes `pkg/kubelet/kubelet.go`). Every face (the CLI's
 * `pull`/`ensure`/`explain`/`gc`/`serve`, the node agent, `kimg prepull`) opens one and renders what
 * it returns; no face wires stores, services or managers itself.
 *
 * What it builds, in order (and closes in reverse):
 *
 * 1. the store (`config.kimg.rootDir`, or `overrides.root`, or the store's own root resolution);
 * 2. the registry client (`config.kimg.hostsDir` plus `overrides.registry`);
 * 3. the image service of the backend — ONE setting, {@link ImageServiceBackend}: `local` (kimg's
 *    store) or `cri` (a runtime's socket); a new backend is one more case of that union;
 * 4. the credential sources (`PodCredentials`: pod Secrets and ServiceAccounts from Kubernetes
 *    objects, the node docker config, `--docker-config` files, the exec plugins the configuration
 *    names);
 * 5. the credential verifier of present images (pull records under the root; reconciled at open
 *    unless `verification: 'read-only'`);
 * 6. the persisted back-off (`<root>/manager/backoff.json`) and the image manager (puller settings and
 *    feature gates from the kubelet configuration);
 * 7. the image GC manager (policy from the configuration, state under the root, store sweep for
 *    `local`).
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
export { openNodeRuntime } from './open.js';
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
