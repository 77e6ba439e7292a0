/**
 * The image-related part of a kubelet configuration file (`kind: KubeletConfiguration`,
 * `apiVersion: kubelet.config.k8s.io/v1beta1`): decoding with the kubelet's types, its defaults, and
 * its validation messages.
 *
 * Fields kimg reads, with the kubelet's defaults:
 * - `serializeImagePulls` — true, unless `maxParallelImagePulls` ≥ 2 is set (then false);
 * - `maxParallelImagePulls` — unset (no limit once pulls are parallel);
 * - `registryPullQPS` 5 (0 = unlimited) and `registryBurst` 10 (0 also becomes 10);
 * - `imageGCHighThresholdPercent` 85, `imageGCLowThresholdPercent` 80;
 * - `imageMinimumGCAge` 2m (0 also becomes 2m), `imageMaximumGCAge` 0 (disabled);
 * - `imagePullCredentialsVerificationPolicy` `NeverVerifyPreloadedImages` when the
 *   `KubeletEnsureSecretPulledImages` gate is on, with `preloadedImagesVerificationAllowlist`;
 * - `containerRuntimeEndpoint` `unix:///run/containerd/containerd.sock`, `imageServiceEndpoint`
 *   (empty = the runtime endpoint), `staticPodPath`, `featureGates`.
 * Every other field the kubelet knows is accepted and ignored; fields it does not know are reported as
 * notices (the kubelet's lenient v1beta1 decoding accepts them with a warning).
 *
 * Source: kubernetes `pkg/kubelet/apis/config/v1beta1/defaults.go` (SetDefaults_KubeletConfiguration),
 * `pkg/kubelet/apis/config/validation/validation.go` (ValidateKubeletConfiguration),
 * `pkg/kubelet/images/pullmanager/image_pull_policies.go` (getAllowlistImagePattern); staging kubelet
 * `config/v1beta1/types.go` @ 63b32497 (field names and types).
 */
import { quote, quoteValue } from '../errors/index.js';
import { parseImageName } from '../reference/index.js';
import { FEATURE_GATES, isFeatureGateName, resolveFeatureGates, type FeatureGates } from './feature-gates.js';
import { goDurationString, goQuote, goParseDuration } from '../gotext/index.js';

/** The kubelet configuration's API group/version and kind. */
export const KUBELET_CONFIG_API_VERSION = 'kubelet.config.k8s.io/v1beta1';
export const KUBELET_CONFIG_KIND = 'KubeletConfiguration';

/** `containerRuntimeEndpoint`'s default (v1beta1 defaults.go). */
export const DEFAULT_CONTAINER_RUNTIME_ENDPOINT = 'unix:///run/containerd/containerd.sock';

/** The kubelet's credential verification policies (KEP-2535). */
export const IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES = Object.freeze([
  'NeverVerify',
  'NeverVerifyPreloadedImages',
  'NeverVerifyAllowlistedImages',
  'AlwaysVerify',
] as const);

/** One of `IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES`. */
export type ImagePullCredentialsVerificationPolicy =
  (typeof IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES)[number];

/** A `metav1.Duration` after decoding: Go's canonical text (`2m0s`) and milliseconds. */
export interface ConfigDuration {
  /** `Duration.String()` of the value: `2m0s`, `0s`, `1h30m0s`. */
  readonly text: string;
  /** The value in milliseconds (fractions kept for sub-millisecond durations). */
  readonly ms: number;
}

/** The image-related kubelet configuration after decoding and defaulting. */
export interface KubeletImageConfig {
  serializeImagePulls: boolean;
  /** `null` when unset. */
  maxParallelImagePulls: number | null;
  registryPullQPS: number;
  registryBurst: number;
  imageGCHighThresholdPercent: number;
  imageGCLowThresholdPercent: number;
  imageMinimumGCAge: ConfigDuration;
  imageMaximumGCAge: ConfigDuration;
  /** '' only when the `KubeletEnsureSecretPulledImages` gate is off and the field is unset. */
  imagePullCredentialsVerificationPolicy: ImagePullCredentialsVerificationPolicy | '';
  preloadedImagesVerificationAllowlist: string[];
  containerRuntimeEndpoint: string;
  /** The endpoint of the image service: `imageServiceEndpoint`, or `containerRuntimeEndpoint` when unset. */
  imageServiceEndpoint: string;
  /** '' when unset. Relative paths are resolved against the configuration file's directory. */
  staticPodPath: string;
  /** Effective gates: kimg's modelled gates with defaults applied, plus any other gate the file set. */
  featureGates: FeatureGates;
}

/** The defaults, as one constant. */
export const KUBELET_IMAGE_CONFIG_DEFAULTS = Object.freeze({
  registryPullQPS: 5,
  registryBurst: 10,
  imageGCHighThresholdPercent: 85,
  imageGCLowThresholdPercent: 80,
  imageMinimumGCAge: '2m0s',
  imageMaximumGCAge: '0s',
  containerRuntimeEndpoint: DEFAULT_CONTAINER_RUNTIME_ENDPOINT,
});

/** Every field of `KubeletConfiguration` v1beta1 (staging kubelet @ 63b32497), plus TypeMeta. */
export const KUBELET_CONFIG_FIELDS: ReadonlySet<string> = new Set(
  (
    'kind apiVersion enableServer staticPodPath podLogsDir syncFrequency fileCheckFrequency httpCheckFrequency ' +
    'staticPodURL staticPodURLHeader address port readOnlyPort tlsCertFile tlsPrivateKeyFile tlsCipherSuites ' +
    'tlsCurvePreferences tlsMinVersion rotateCertificates serverTLSBootstrap authentication authorization ' +
    'registryPullQPS registryBurst imagePullCredentialsVerificationPolicy preloadedImagesVerificationAllowlist ' +
    'eventRecordQPS eventBurst enableDebuggingHandlers enableContentionProfiling healthzPort healthzBindAddress ' +
    'oomScoreAdj clusterDomain clusterDNS streamingConnectionIdleTimeout nodeStatusUpdateFrequency ' +
    'nodeStatusReportFrequency nodeLeaseDurationSeconds imageMinimumGCAge imageMaximumGCAge ' +
    'imageGCHighThresholdPercent imageGCLowThresholdPercent volumeStatsAggPeriod kubeletCgroups systemCgroups ' +
    'cgroupRoot cgroupsPerQOS cgroupDriver cpuManagerPolicy singleProcessOOMKill cpuManagerPolicyOptions ' +
    'cpuManagerReconcilePeriod memoryManagerPolicy topologyManagerPolicy topologyManagerScope ' +
    'topologyManagerPolicyOptions qosReserved runtimeRequestTimeout hairpinMode maxPods podCIDR podPidsLimit ' +
    'resolvConf runOnce cpuCFSQuota cpuCFSQuotaPeriod nodeStatusMaxImages maxOpenFiles contentType kubeAPIQPS ' +
    'kubeAPIBurst serializeImagePulls maxParallelImagePulls evictionHard evictionSoft evictionSoftGracePeriod ' +
    'evictionPressureTransitionPeriod evictionMaxPodGracePeriod evictionMinimumReclaim ' +
    'mergeDefaultEvictionSettings podsPerCore enableControllerAttachDetach protectKernelDefaults ' +
    'makeIPTablesUtilChains iptablesMasqueradeBit iptablesDropBit featureGates failSwapOn memorySwap ' +
    'containerLogMaxSize containerLogMaxFiles containerLogMaxWorkers containerLogMonitorInterval ' +
    'configMapAndSecretChangeDetectionStrategy systemReserved kubeReserved reservedSystemCPUs ' +
    'showHiddenMetricsForVersion systemReservedCgroup kubeReservedCgroup enforceNodeAllocatable ' +
    'allowedUnsafeSysctls defaultPodSysctls volumePluginDir providerID kernelMemcgNotification logging ' +
    'enableSystemLogHandler enableSystemLogQuery shutdownGracePeriod shutdownGracePeriodCriticalPods ' +
    'shutdownGracePeriodByPodPriority crashLoopBackOff reservedMemory enableProfilingHandler ' +
    'enableDebugFlagsHandler seccompDefault memoryThrottlingFactor memoryReservationPolicy registerWithTaints ' +
    'registerNode tracing localStorageCapacityIsolation containerRuntimeEndpoint imageServiceEndpoint ' +
    'failCgroupV1 userNamespaces'
  ).split(' '),
);

// --- decoding helpers ---------------------------------------------------------------------------

/** Where decoding problems and notices go; `path` prefixes field names (`kimg.` for the extension). */
export interface DecodeContext {
  problems: string[];
  notices: string[];
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${quote(v, 60)}`;
  return `${typeof v} ${quoteValue(v)}`;
}

/** An int32 field; `undefined`/`null` mean unset. Records a problem and returns undefined for bad values. */
export function readInt32(ctx: DecodeContext, field: string, v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) {
    ctx.problems.push(`${field}: must be a 32-bit integer, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

/** A boolean field; `undefined`/`null` mean unset. */
export function readBool(ctx: DecodeContext, field: string, v: unknown): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') {
    ctx.problems.push(`${field}: must be true or false, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

/** A string field; `undefined`/`null` mean unset. */
export function readString(ctx: DecodeContext, field: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    ctx.problems.push(`${field}: must be a string, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

/** A list of strings; `undefined`/`null` mean unset. */
export function readStringList(ctx: DecodeContext, field: string, v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    ctx.problems.push(`${field}: must be a list of strings, got ${describe(v)}`);
    return undefined;
  }
  const out: string[] = [];
  v.forEach((item, i) => {
    if (typeof item === 'string') out.push(item);
    else ctx.problems.push(`${field}[${i}]: must be a string, got ${describe(item)}`);
  });
  return out;
}

/** A `metav1.Duration` (a Go duration string); returns nanoseconds. */
function readDuration(ctx: DecodeContext, field: string, v: unknown): bigint | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    ctx.problems.push(`${field}: must be a duration string such as "2m" or "1h30m", got ${describe(v)}`);
    return undefined;
  }
  const r = goParseDuration(v);
  if (!r.ok) {
    ctx.problems.push(`${field}: ${r.error}`);
    return undefined;
  }
  return r.ns;
}

function toConfigDuration(ns: bigint): ConfigDuration {
  return Object.freeze({ text: goDurationString(ns), ms: Number(ns) / 1e6 });
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readFeatureGates(ctx: DecodeContext, v: unknown): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  if (v === undefined || v === null) return out;
  if (!isMapping(v)) {
    ctx.problems.push(`featureGates: must be a mapping of gate names to true or false, got ${describe(v)}`);
    return out;
  }
  for (const [name, value] of Object.entries(v)) {
    if (typeof value !== 'boolean') {
      ctx.problems.push(`featureGates.${name}: must be true or false, got ${describe(value)}`);
      continue;
    }
    out[name] = value;
    if (!isFeatureGateName(name)) {
      ctx.notices.push(
        `featureGates.${name}: not a gate kimg models (kimg reads ${Object.keys(FEATURE_GATES).join(', ')}); kept as given`,
      );
    }
  }
  return out;
}

// --- allowlist patterns -------------------------------------------------------------------------

/** A parsed `preloadedImagesVerificationAllowlist` entry. */
export type AllowlistPattern = { kind: 'exact'; image: string } | { kind: 'prefix'; prefix: string };

/**
 * The kubelet's `getAllowlistImagePattern`: an entry is either a normalized image name without tag or
 * digest (`registry.example/team/app`, matched exactly) or a prefix ending in `/*` (stored with its
 * `/`, matched with a plain string prefix). Returns the pattern or the kubelet's error text:
 * `leading/trailing spaces are not allowed: <p>`, `the supplied pattern is too short: <p>`,
 * `not a valid wildcard pattern, only patterns ending with '/*' are allowed: <p>`,
 * `at least registry hostname is required`, `failed to parse as an image name: <err>`,
 * `neither tag nor digest is accepted in an image reference: <p>`. Never throws.
 */
export function parseAllowlistPattern(
  pattern: string,
): { ok: true; pattern: AllowlistPattern } | { ok: false; error: string } {
  if (pattern !== pattern.trim())
    return { ok: false, error: `leading/trailing spaces are not allowed: ${pattern}` };
  let trimmed = pattern;
  let wildcard = false;
  if (pattern.endsWith('/*')) {
    wildcard = true;
    trimmed = pattern.slice(0, -1);
  }
  if (trimmed.length === 0) return { ok: false, error: `the supplied pattern is too short: ${pattern}` };
  if (trimmed.includes('*')) {
    return {
      ok: false,
      error: `not a valid wildcard pattern, only patterns ending with '/*' are allowed: ${pattern}`,
    };
  }
  if (wildcard) {
    if (trimmed.length === 1) return { ok: false, error: 'at least registry hostname is required' };
    return { ok: true, pattern: { kind: 'prefix', prefix: trimmed } };
  }
  let repo: string;
  try {
    repo = parseImageName(trimmed).repo;
  } catch (e) {
    // parseImageName's message is `couldn't parse image name "<p>": <upstream text>`; keep the upstream text.
    const text = e instanceof Error ? e.message : String(e);
    const prefix = `couldn't parse image name ${quote(trimmed)}: `;
    return {
      ok: false,
      error: `failed to parse as an image name: ${text.startsWith(prefix) ? text.slice(prefix.length) : text}`,
    };
  }
  if (repo !== trimmed) {
    return { ok: false, error: `neither tag nor digest is accepted in an image reference: ${pattern}` };
  }
  return { ok: true, pattern: { kind: 'exact', image: trimmed } };
}

/** Upstream `ValidateAllowlistImagesPatterns`: the first entry's error, or undefined when all parse. */
export function validateAllowlistPatterns(patterns: readonly string[]): string | undefined {
  for (const p of patterns) {
    const r = parseAllowlistPattern(p);
    if (!r.ok) return r.error;
  }
  return undefined;
}

// --- decode, default, validate ------------------------------------------------------------------

/** The explicitly set image fields of a KubeletConfiguration (after type checks, before defaulting). */
interface RawImageFields {
  serializeImagePulls?: boolean;
  maxParallelImagePulls?: number;
  registryPullQPS?: number;
  registryBurst?: number;
  imageGCHighThresholdPercent?: number;
  imageGCLowThresholdPercent?: number;
  imageMinimumGCAge?: bigint;
  imageMaximumGCAge?: bigint;
  imagePullCredentialsVerificationPolicy?: string;
  preloadedImagesVerificationAllowlist?: string[];
  containerRuntimeEndpoint?: string;
  imageServiceEndpoint?: string;
  staticPodPath?: string;
  featureGates: Record<string, boolean>;
}

/** Checks the image fields' types; a field with the wrong type is reported and left unset. */
function decodeImageFields(ctx: DecodeContext, obj: Record<string, unknown>): RawImageFields {
  return {
    serializeImagePulls: readBool(ctx, 'serializeImagePulls', obj['serializeImagePulls']),
    maxParallelImagePulls: readInt32(ctx, 'maxParallelImagePulls', obj['maxParallelImagePulls']),
    registryPullQPS: readInt32(ctx, 'registryPullQPS', obj['registryPullQPS']),
    registryBurst: readInt32(ctx, 'registryBurst', obj['registryBurst']),
    imageGCHighThresholdPercent: readInt32(
      ctx,
      'imageGCHighThresholdPercent',
      obj['imageGCHighThresholdPercent'],
    ),
    imageGCLowThresholdPercent: readInt32(
      ctx,
      'imageGCLowThresholdPercent',
      obj['imageGCLowThresholdPercent'],
    ),
    imageMinimumGCAge: readDuration(ctx, 'imageMinimumGCAge', obj['imageMinimumGCAge']),
    imageMaximumGCAge: readDuration(ctx, 'imageMaximumGCAge', obj['imageMaximumGCAge']),
    imagePullCredentialsVerificationPolicy: readString(
      ctx,
      'imagePullCredentialsVerificationPolicy',
      obj['imagePullCredentialsVerificationPolicy'],
    ),
    preloadedImagesVerificationAllowlist: readStringList(
      ctx,
      'preloadedImagesVerificationAllowlist',
      obj['preloadedImagesVerificationAllowlist'],
    ),
    containerRuntimeEndpoint: readString(ctx, 'containerRuntimeEndpoint', obj['containerRuntimeEndpoint']),
    imageServiceEndpoint: readString(ctx, 'imageServiceEndpoint', obj['imageServiceEndpoint']),
    staticPodPath: readString(ctx, 'staticPodPath', obj['staticPodPath']),
    featureGates: readFeatureGates(ctx, obj['featureGates']),
  };
}

/** `SetDefaults_KubeletConfiguration` for the image fields. Durations stay in nanoseconds here. */
function applyDefaults(raw: RawImageFields): KubeletImageConfig {
  const gates = resolveFeatureGates(raw.featureGates);
  const maxParallel = raw.maxParallelImagePulls ?? null;
  const minAgeNs =
    raw.imageMinimumGCAge === undefined || raw.imageMinimumGCAge === 0n
      ? 120_000_000_000n
      : raw.imageMinimumGCAge;
  const maxAgeNs = raw.imageMaximumGCAge ?? 0n;
  let policy = raw.imagePullCredentialsVerificationPolicy ?? '';
  if (gates.KubeletEnsureSecretPulledImages && policy === '') policy = 'NeverVerifyPreloadedImages';
  // The Kubernetes "Images" concept page spells it with a capital L; the kubelet's API says
  // `NeverVerifyAllowlistedImages`. Accept both, store upstream's spelling (docs/design/upstream-parity.md).
  if (policy === 'NeverVerifyAllowListedImages') policy = 'NeverVerifyAllowlistedImages';
  const runtimeEndpoint =
    raw.containerRuntimeEndpoint === undefined || raw.containerRuntimeEndpoint === ''
      ? DEFAULT_CONTAINER_RUNTIME_ENDPOINT
      : raw.containerRuntimeEndpoint;
  return {
    serializeImagePulls: raw.serializeImagePulls ?? (maxParallel === null || maxParallel < 2),
    maxParallelImagePulls: maxParallel,
    registryPullQPS: raw.registryPullQPS ?? KUBELET_IMAGE_CONFIG_DEFAULTS.registryPullQPS,
    registryBurst:
      raw.registryBurst === undefined || raw.registryBurst === 0
        ? KUBELET_IMAGE_CONFIG_DEFAULTS.registryBurst
        : raw.registryBurst,
    imageGCHighThresholdPercent:
      raw.imageGCHighThresholdPercent ?? KUBELET_IMAGE_CONFIG_DEFAULTS.imageGCHighThresholdPercent,
    imageGCLowThresholdPercent:
      raw.imageGCLowThresholdPercent ?? KUBELET_IMAGE_CONFIG_DEFAULTS.imageGCLowThresholdPercent,
    imageMinimumGCAge: toConfigDuration(minAgeNs),
    imageMaximumGCAge: toConfigDuration(maxAgeNs),
    // Validation refuses any other string; the cast is checked there.
    imagePullCredentialsVerificationPolicy: policy as ImagePullCredentialsVerificationPolicy | '',
    preloadedImagesVerificationAllowlist: raw.preloadedImagesVerificationAllowlist ?? [],
    containerRuntimeEndpoint: runtimeEndpoint,
    imageServiceEndpoint:
      raw.imageServiceEndpoint === undefined || raw.imageServiceEndpoint === ''
        ? runtimeEndpoint
        : raw.imageServiceEndpoint,
    staticPodPath: raw.staticPodPath ?? '',
    featureGates: gates,
  };
}

/**
 * `ValidateKubeletConfiguration` for the image fields of a defaulted configuration, in upstream's order
 * and with upstream's messages (`invalid configuration: …`). Returns every problem; empty when valid.
 */
export function validateKubeletImageConfig(cfg: KubeletImageConfig): string[] {
  const errs: string[] = [];
  const high = cfg.imageGCHighThresholdPercent;
  const low = cfg.imageGCLowThresholdPercent;
  const minAge = goParseDuration(cfg.imageMinimumGCAge.text);
  const maxAge = goParseDuration(cfg.imageMaximumGCAge.text);
  const minNs = minAge.ok ? minAge.ns : 0n;
  const maxNs = maxAge.ok ? maxAge.ns : 0n;
  const gates = cfg.featureGates;
  if (high < 0 || high > 100) {
    errs.push(
      `invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) ${high} must be between 0 and 100, inclusive`,
    );
  }
  if (low < 0 || low > 100) {
    errs.push(
      `invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) ${low} must be between 0 and 100, inclusive`,
    );
  }
  if (low >= high) {
    errs.push(
      `invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) ${low} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) ${high}`,
    );
  }
  if (maxNs !== 0n && gates['ImageMaximumGCAge'] !== true) {
    errs.push(
      'invalid configuration: ImageMaximumGCAge feature gate is required for Kubelet configuration option imageMaximumGCAge',
    );
  }
  if (minNs < 0n) {
    errs.push(`invalid configuration: imageMinimumGCAge ${goDurationString(minNs)} must not be negative`);
  }
  if (maxNs < 0n) {
    errs.push(`invalid configuration: imageMaximumGCAge ${goDurationString(maxNs)} must not be negative`);
  }
  if (maxNs > 0n && maxNs <= minNs) {
    errs.push(
      `invalid configuration: imageMaximumGCAge ${goDurationString(maxNs)} must be greater than imageMinimumGCAge ${goDurationString(minNs)}`,
    );
  }
  if (cfg.registryBurst < 0) {
    errs.push(
      `invalid configuration: registryBurst (--registry-burst) ${cfg.registryBurst} must not be a negative number`,
    );
  }
  if (cfg.registryPullQPS < 0) {
    errs.push(
      `invalid configuration: registryPullQPS (--registry-qps) ${cfg.registryPullQPS} must not be a negative number`,
    );
  }
  const maxParallel = cfg.maxParallelImagePulls;
  if (maxParallel !== null && maxParallel < 1) {
    errs.push(`invalid configuration: maxParallelImagePulls ${maxParallel} must be a positive number`);
  }
  if (cfg.serializeImagePulls && maxParallel !== null && maxParallel > 1) {
    errs.push(
      'invalid configuration: maxParallelImagePulls cannot be larger than 1 unless SerializeImagePulls (--serialize-image-pulls) is set to false',
    );
  }
  const policy = cfg.imagePullCredentialsVerificationPolicy;
  const allowlist = cfg.preloadedImagesVerificationAllowlist;
  if (gates['KubeletEnsureSecretPulledImages'] === true) {
    if (!(IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES as readonly string[]).includes(policy)) {
      errs.push(
        `invalid configuration: option ${goQuote(policy)} specified for imagePullCredentialsVerificationPolicy. Valid options are "NeverVerify", "NeverVerifyPreloadedImages", "NeverVerifyAllowlistedImages" or "AlwaysVerify"`,
      );
    }
    if (allowlist.length > 0 && policy !== 'NeverVerifyAllowlistedImages') {
      // The typo "Vertification" is upstream's.
      errs.push(
        'invalid configuration: can\'t set `preloadedImagesVerificationAllowlist` if `imagePullCredentialsVertificationPolicy` is not "NeverVerifyAllowlistedImages"',
      );
    } else {
      const err = validateAllowlistPatterns(allowlist);
      if (err !== undefined) {
        errs.push(
          `invalid configuration: invalid image pattern in \`preloadedImagesVerificationAllowlist\`: ${err}`,
        );
      }
    }
  } else {
    if (policy.length > 0) {
      errs.push(
        'invalid configuration: `imagePullCredentialsVerificationPolicy` must not be set if KubeletEnsureSecretPulledImages feature gate is not enabled',
      );
    }
    if (allowlist.length > 0) {
      errs.push(
        'invalid configuration: `preloadedImagesVerificationAllowlist` must not be set if KubeletEnsureSecretPulledImages feature gate is not enabled',
      );
    }
  }
  return errs;
}

/** Whether an endpoint is a scheme kimg (and cri-client) can dial: `unix://…`, `npipe://…`. */
function checkEndpoint(ctx: DecodeContext, field: string, v: string | undefined): void {
  if (v === undefined || v === '') return;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(v);
  if (m === null) {
    if (v.startsWith('/')) {
      ctx.notices.push(
        `${field}: ${goQuote(v)} has no scheme; using it as unix://${v} (the kubelet calls this form deprecated: write the full URL)`,
      );
    } else {
      ctx.problems.push(`${field}: ${goQuote(v)} is not an endpoint: write unix:///path/to/socket`);
    }
    return;
  }
  const scheme = (m[1] ?? '').toLowerCase();
  if (scheme !== 'unix' && scheme !== 'npipe') {
    ctx.problems.push(
      `${field}: protocol ${goQuote(scheme)} not supported: only unix:// (and npipe:// on Windows) endpoints are`,
    );
  }
}

/**
 * Decodes, defaults and validates the image fields of a KubeletConfiguration object (already parsed
 * from YAML or JSON). Problems (wrong types and failed validation) and notices (unknown fields, gates
 * kimg does not model) go to `ctx`; the returned configuration always has every field, with defaults
 * where a value was missing or unusable. Never throws.
 */
export function decodeKubeletImageConfig(
  ctx: DecodeContext,
  obj: Record<string, unknown>,
): KubeletImageConfig {
  for (const key of Object.keys(obj)) {
    if (key === 'kimg') continue;
    if (!KUBELET_CONFIG_FIELDS.has(key)) {
      const near = [...KUBELET_CONFIG_FIELDS].find((f) => f.toLowerCase() === key.toLowerCase());
      ctx.notices.push(
        `unknown field ${goQuote(key)} ignored (not a KubeletConfiguration v1beta1 field${near ? `; did you mean ${goQuote(near)}?` : ''})`,
      );
    }
  }
  const raw = decodeImageFields(ctx, obj);
  checkEndpoint(ctx, 'containerRuntimeEndpoint', raw.containerRuntimeEndpoint);
  checkEndpoint(ctx, 'imageServiceEndpoint', raw.imageServiceEndpoint);
  const cfg = applyDefaults(raw);
  ctx.problems.push(...validateKubeletImageConfig(cfg));
  return cfg;
}

/** The image configuration a kubelet uses with no configuration file: every default, valid. */
export function defaultKubeletImageConfig(): KubeletImageConfig {
  return applyDefaults({ featureGates: {} });
}
