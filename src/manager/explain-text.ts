/**
 * Texts of an image explanation: why the API server defaulted a pull policy, apimachinery's human
 * duration, and the "next" sentence saying what the kubelet will do.
 *
 * Source: kubernetes `pkg/apis/core/v1/defaults.go`, apimachinery `pkg/util/duration/duration.go`
 * (`HumanDuration`).
 */
import { parseImageName } from '../reference/index.js';
import type { BackoffEntry } from './backoff-store.js';
import type { ImageExplanation } from './explain-types.js';

/** apimachinery `HumanDuration`: the Age column of kubectl (`0s`, `59s`, `3m12s`, `4h5m`, `3d`). */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const y = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

/** The API server's reason for a defaulted policy (`pkg/apis/core/v1/defaults.go`). */
export function defaultPolicyWhy(image: string): string {
  let name;
  try {
    name = parseImageName(image);
  } catch {
    return 'the image name does not parse, so it has no tag `latest`: IfNotPresent';
  }
  if (name.digest !== undefined && name.tag === undefined)
    return 'the image has a digest and no tag: IfNotPresent';
  if (name.tag === 'latest') {
    return /:latest(@|$)/.test(image)
      ? 'the tag is `latest`: Always'
      : 'the image has no tag (it means `latest`): Always';
  }
  return `the tag is ${JSON.stringify(name.tag)}, not \`latest\`: IfNotPresent`;
}

/** What the kubelet will do next for an explained image, in plain words. */
export function nextStep(
  x: ImageExplanation,
  backoff: BackoffEntry | undefined,
  matches: number,
  nowMs: number,
): string {
  if (!x.reference.valid) {
    return `fail with InvalidImageName (Warning InspectFailed "Failed to apply default image tag"): fix the image name`;
  }
  const d = x.decision;
  if (d === undefined) return 'unknown';
  if (d.action === 'use') {
    return `use the present image ${x.presence.imageId ?? ''}: no pull (Normal Pulled "already present on machine")`;
  }
  if (d.action === 'never-pull-error') {
    return 'fail with ErrImageNeverPull: the image is not present and the policy is Never; put it on the node (kimg pull / kimg load) or change the policy';
  }
  const how =
    matches === 0
      ? 'anonymously (no credential matches)'
      : `trying ${matches} matching credential${matches === 1 ? '' : 's'} in order`;
  const what =
    x.resolved?.unchanged === true
      ? ` (the tag still resolves to the present ${x.resolved.presentDigest ?? ''}: one manifest request, no blob download)`
      : x.resolved?.digest !== undefined
        ? ` (the tag now resolves to ${x.resolved.digest}: new content is downloaded)`
        : '';
  const pull = `pull ${x.reference.pullRef ?? x.image} ${how}${what}`;
  if (backoff !== undefined && backoff.inBackOff) {
    return `refuse with ImagePullBackOff until ${new Date(backoff.retryAtMs).toISOString()} (in ${humanDuration(
      backoff.retryAtMs - nowMs,
    )}; clear with \`kimg backoff clear\`), then ${pull}`;
  }
  const why =
    d.reason === 'policy-always'
      ? 'the policy is Always'
      : d.reason === 'unknown-policy'
        ? `the policy ${JSON.stringify(x.policy.value)} is not one the kubelet knows (it acts like Always)`
        : d.reason === 'not-present'
          ? 'the image is not present'
          : 'the image is present but not verified for this pod';
  return `${pull}, because ${why}`;
}
