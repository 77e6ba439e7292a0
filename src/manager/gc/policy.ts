/**
 * Image GC policy: the thresholds and ages from the KubeletConfiguration, their checks, and the
 * images never collected (kubelet `ImageGCPolicy`, `pkg/kubelet/images/image_gc_manager.go`).
 */
import type { KubeletImageConfig } from '../../config/index.js';
import { KimgError } from '../../errors/index.js';

/** The image GC policy (kubelet `ImageGCPolicy`), durations in milliseconds. */
export interface ImageGCPolicy {
  /** Usage (percent) at or above which space is freed. 100 with `maxAgeMs` 0 disables image GC. */
  highThresholdPercent: number;
  /** Usage (percent) space is freed down to. */
  lowThresholdPercent: number;
  /** Images first detected less than this long ago are never removed for space. */
  minAgeMs: number;
  /** Images unused for longer than this are removed regardless of usage; 0 = off. */
  maxAgeMs: number;
}

/** The kubelet's defaults (`SetDefaults_KubeletConfiguration`): 85 %, 80 %, 2m, off. */
export const DEFAULT_IMAGE_GC_POLICY: Readonly<ImageGCPolicy> = Object.freeze({
  highThresholdPercent: 85,
  lowThresholdPercent: 80,
  minAgeMs: 120_000,
  maxAgeMs: 0,
});

/** The kubelet's `ImageGCPeriod`: one image GC run every 5 minutes. */
export const IMAGE_GC_PERIOD_MS = 5 * 60_000;

/**
 * Images pinned by default: containerd pins its sandbox image (`pinned_images.sandbox`, default
 * `registry.k8s.io/pause:3.10.2`), so the kubelet never collects it.
 */
export const DEFAULT_PINNED_IMAGES: readonly string[] = Object.freeze(['registry.k8s.io/pause:3.10.2']);

/** The policy a (validated) kubelet configuration gives (`parseNodeConfig(...).kubelet`). */
export function imageGCPolicyFromConfig(
  config: Pick<
    KubeletImageConfig,
    'imageGCHighThresholdPercent' | 'imageGCLowThresholdPercent' | 'imageMinimumGCAge' | 'imageMaximumGCAge'
  >,
): ImageGCPolicy {
  return {
    highThresholdPercent: config.imageGCHighThresholdPercent,
    lowThresholdPercent: config.imageGCLowThresholdPercent,
    minAgeMs: config.imageMinimumGCAge.ms,
    maxAgeMs: config.imageMaximumGCAge.ms,
  };
}

/**
 * Checks a policy the way the kubelet's `NewImageGCManager` does (configuration files are validated
 * earlier, and more strictly, by `src/config`: low must be below high there).
 *
 * @throws KimgError `CONFIG_INVALID` with upstream's message: `invalid HighThresholdPercent <n>, must be
 *   in range [0-100]`, the same for Low, `LowThresholdPercent <l> can not be higher than
 *   HighThresholdPercent <h>`; and for negative or non-finite ages.
 */
export function checkImageGCPolicy(policy: ImageGCPolicy): void {
  const problems: string[] = [];
  const { highThresholdPercent: high, lowThresholdPercent: low } = policy;
  if (!Number.isInteger(high) || high < 0 || high > 100)
    problems.push(`invalid HighThresholdPercent ${high}, must be in range [0-100]`);
  if (!Number.isInteger(low) || low < 0 || low > 100)
    problems.push(`invalid LowThresholdPercent ${low}, must be in range [0-100]`);
  if (low > high)
    problems.push(`LowThresholdPercent ${low} can not be higher than HighThresholdPercent ${high}`);
  for (const [k, v] of [
    ['minAgeMs', policy.minAgeMs],
    ['maxAgeMs', policy.maxAgeMs],
  ] as const) {
    if (!Number.isFinite(v) || v < 0) problems.push(`invalid ${k} ${v}, must be a non-negative duration`);
  }
  if (problems.length > 0) {
    throw new KimgError('CONFIG_INVALID', `invalid image GC policy: ${problems.join('; ')}`, {
      items: problems,
    });
  }
}

/** Whether the kubelet would not run image GC at all (high threshold 100 and no maximum age). */
export function imageGCDisabled(policy: ImageGCPolicy): boolean {
  return policy.highThresholdPercent === 100 && policy.maxAgeMs === 0;
}
