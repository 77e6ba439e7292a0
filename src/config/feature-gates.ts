/**
 * The kubelet feature gates that change what the image subsystem does, with the defaults of the
 * Kubernetes release kimg follows (about v1.36/1.37). A `featureGates` map in a configuration overrides
 * them; gates kimg does not model are kept (the kubelet knows them) and reported as notices.
 *
 * Source: kubernetes `pkg/features/kube_features.go` (versioned specs) and the Images concept page
 * sections "Image pull per runtime class" and "Ensure image pull credential verification".
 */

/** A gate kimg models: its default and what it changes. */
export interface FeatureGateSpec {
  default: boolean;
  stage: 'alpha' | 'beta' | 'ga';
  summary: string;
}

/** Gate names exactly as the kubelet spells them in `featureGates`. */
export const FEATURE_GATES = Object.freeze({
  /**
   * KEP-4216 (alpha since 1.29, off): images are keyed by (image, runtime handler) and the handler is
   * sent in CRI `ImageSpec.runtime_handler` on ImageStatus, PullImage and RemoveImage. The Go constant is
   * `RuntimeClassInImageCriAPI`; the gate string is `RuntimeClassInImageCriApi`.
   */
  RuntimeClassInImageCriApi: {
    default: false,
    stage: 'alpha',
    summary: 'key images by (image, runtime handler) and send the handler over CRI',
  },
  /** KEP-2535 (beta, on since 1.35): verify a pod's pull credentials before it may use a present image. */
  KubeletEnsureSecretPulledImages: {
    default: true,
    stage: 'beta',
    summary: 'verify pull credentials for images already on the node',
  },
  /** Beta, on since 1.30: allows `imageMaximumGCAge`. */
  ImageMaximumGCAge: {
    default: true,
    stage: 'beta',
    summary: 'allow imageMaximumGCAge (remove images unused for longer than the maximum age)',
  },
  /** Beta, on since 1.34: credential provider plugins may receive a pod's service account token. */
  KubeletServiceAccountTokenForCredentialProviders: {
    default: true,
    stage: 'beta',
    summary: 'credential provider plugins in service-account token mode',
  },
} as const satisfies Record<string, FeatureGateSpec>);

/** A gate kimg models. */
export type FeatureGateName = keyof typeof FEATURE_GATES;

/** Every gate kimg models, in table order. */
export const FEATURE_GATE_NAMES = Object.keys(FEATURE_GATES) as FeatureGateName[];

/** Whether `name` is a gate kimg models. */
export function isFeatureGateName(name: string): name is FeatureGateName {
  return Object.prototype.hasOwnProperty.call(FEATURE_GATES, name);
}

/** Resolved gates: every modelled gate with its effective value, plus any other gate the map set. */
export type FeatureGates = Readonly<Record<FeatureGateName, boolean>> & Readonly<Record<string, boolean>>;

/**
 * The effective gates for an explicit `featureGates` map (values already known to be booleans):
 * defaults for modelled gates, overridden by the map; unknown names pass through unchanged.
 */
export function resolveFeatureGates(explicit: Readonly<Record<string, boolean>> = {}): FeatureGates {
  const out: Record<string, boolean> = {};
  for (const name of FEATURE_GATE_NAMES) out[name] = FEATURE_GATES[name].default;
  for (const [name, value] of Object.entries(explicit)) out[name] = value;
  return Object.freeze(out) as FeatureGates;
}
