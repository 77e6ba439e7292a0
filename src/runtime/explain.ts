/**
 * The explain chain over an open runtime: what the manager's `explainImage` is asked with when
 * `kimg explain` explains an image, the containers of pod files, or a pod read from the API server.
 * The choices are made here, once, so every face only renders the answer:
 *
 * - presence comes from the runtime's image service (kimg's store, containerd or a CRI runtime), and
 *   {@link describeRuntime} says which;
 * - verification of a present image runs only when the `KubeletEnsureSecretPulledImages` gate is on,
 *   as the kubelet's image manager does (kubernetes `pkg/kubelet/images/image_manager.go`);
 * - off the pod's node, this runtime's back-off, pull records and verification say nothing about
 *   the pod: they are left out (`thisNode: false`), and only the registry is asked (with `resolve`);
 * - the registry is asked only with `resolve` (one manifest HEAD per image).
 */
import type { PodCredentialContext, PullCredentialLookup } from '../credentials/index.js';
import type {
  ExplainDeps,
  ExplainPod,
  ExplainTarget,
  ImageExplanation,
  ImageService,
} from '../manager/index.js';
import type { NodeRuntime } from './types.js';

/** How {@link explainDeps} reads the runtime. */
export interface RuntimeExplainOptions {
  /** Ask the registry what each tag resolves to now and compare with the present image. */
  resolve?: boolean;
  /**
   * Whether the explained pods run on this runtime's node (default true). false: back-off, pull
   * records and verification of this runtime are left out (they belong to another node).
   */
  thisNode?: boolean;
}

/** The gate under which the kubelet verifies a pod's credentials for a present image. */
const VERIFICATION_GATE = 'KubeletEnsureSecretPulledImages';

/** The chain's inputs besides the credential lookup (see the module comment). */
export async function explainDeps(
  runtime: NodeRuntime,
  options: RuntimeExplainOptions = {},
): Promise<Omit<ExplainDeps, 'credentials'>> {
  const here = options.thisNode !== false;
  return {
    imageService: runtime.imageService,
    backoff: here ? await runtime.backoff.list() : [],
    verifying: here && runtime.manager.gates[VERIFICATION_GATE] === true,
    ...(here ? { verifier: runtime.verifier } : {}),
    ...(options.resolve === true
      ? { registry: runtime.registry, ...(here ? { records: runtime.store.images } : {}) }
      : {}),
    nowMs: Date.now(),
  };
}

/** Where the runtime's presence facts come from, in words (`kimg store /var/lib/kimg`). */
export function describeRuntime(runtime: NodeRuntime): string {
  const b = runtime.backend;
  switch (b.kind) {
    case 'local':
      return `kimg store ${runtime.store.root}`;
    case 'containerd':
      return `containerd ${b.address}, namespace ${b.namespace ?? 'k8s.io'}`;
    case 'cri':
      return `CRI runtime ${b.endpoint}`;
  }
}

/**
 * Explains each target with the runtime's credentials: a target's pod gets the credential context
 * `podContext` gives for it (its own pull Secrets), none when it gives none.
 */
export async function explainImages(
  runtime: NodeRuntime,
  targets: readonly ExplainTarget[],
  options: RuntimeExplainOptions & {
    podContext?: (pod: ExplainPod) => PodCredentialContext | undefined;
  } = {},
): Promise<ImageExplanation[]> {
  const { explainImage } = await import('../manager/index.js');
  const deps: ExplainDeps = {
    ...(await explainDeps(runtime, options)),
    credentials: (image, pod) =>
      runtime.credentials.lookup(image, pod !== undefined ? options.podContext?.(pod) : undefined, {
        explain: true,
      }),
  };
  const out: ImageExplanation[] = [];
  for (const t of targets) out.push(await explainImage(t, deps));
  return out;
}

/** What a pod read from the API server is explained with (the cluster face's library inputs). */
export interface PodExplainInputs {
  /** This node's runtime, when the pod runs here; else presence comes from elsewhere (the Node). */
  runtime?: { imageService: Pick<ImageService, 'imageStatus'>; description: string };
  deps: Omit<ExplainDeps, 'imageService' | 'credentials'>;
  lookup: (image: string, pod: PodCredentialContext) => Promise<PullCredentialLookup>;
}

/**
 * The inputs for explaining a pod from the API server with this runtime: `node` names this machine's
 * node when the pod runs on it (then presence, back-off and verification are this runtime's),
 * undefined when it runs elsewhere.
 */
export async function podExplainInputs(
  runtime: NodeRuntime,
  options: { resolve?: boolean; node?: string },
): Promise<PodExplainInputs> {
  const here = options.node !== undefined;
  const { imageService, ...deps } = await explainDeps(runtime, {
    thisNode: here,
    ...(options.resolve !== undefined ? { resolve: options.resolve } : {}),
  });
  return {
    ...(here
      ? { runtime: { imageService, description: `node ${options.node ?? ''}: ${describeRuntime(runtime)}` } }
      : {}),
    deps,
    lookup: (image, pod) => runtime.credentials.lookup(image, pod, { explain: true }),
  };
}
