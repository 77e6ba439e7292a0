/**
 * The node-config policy of credential verification: which present images are verified at all
 * (`imagePullCredentialsVerificationPolicy`, `preloadedImagesVerificationAllowlist`), kubelet
 * `pkg/kubelet/images/pullmanager/image_pull_policies.go`.
 */
import { KimgError } from '../../errors/index.js';
import {
  IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES,
  parseAllowlistPattern,
  type ImagePullCredentialsVerificationPolicy,
} from '../../config/index.js';

/** The default policy when the gate is on. */
export const DEFAULT_VERIFICATION_POLICY: ImagePullCredentialsVerificationPolicy =
  'NeverVerifyPreloadedImages';

/**
 * Upstream stops merging credentials it only *matched* (not pulled with) once an image name lists this
 * many Secrets, so namespace churn cannot grow a record without bound (`writeRecordWhileMatchingLimit`).
 */
export const WRITE_RECORD_WHILE_MATCHING_LIMIT = 100;

/**
 * A temp file younger than this may be another process's write in progress (`kimg ensure` next to the
 * agent): repairs leave it alone.
 */
export const TEMP_FILE_GRACE_MS = 60_000;

/**
 * The policy name as kimg uses it. Accepts upstream's four names and the documentation's spelling
 * `NeverVerifyAllowListedImages` (mapped to `NeverVerifyAllowlistedImages`); '' means the default.
 *
 * @throws KimgError `CONFIG_INVALID` `unknown image pull credential verification policy: <v>`.
 */
export function normalizeVerificationPolicy(
  policy: string | undefined,
): ImagePullCredentialsVerificationPolicy {
  if (policy === undefined || policy === '') return DEFAULT_VERIFICATION_POLICY;
  if (policy === 'NeverVerifyAllowListedImages') return 'NeverVerifyAllowlistedImages';
  if ((IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES as readonly string[]).includes(policy)) {
    return policy as ImagePullCredentialsVerificationPolicy;
  }
  throw new KimgError('CONFIG_INVALID', `unknown image pull credential verification policy: ${policy}`, {
    input: policy,
  });
}

/**
 * `preloadedImagesVerificationAllowlist` compiled: exact entries (a normalized name without tag or
 * digest) and prefixes (an entry ending in `/*`, kept with its `/`). Matching uses the **raw container
 * image string**, so an exact entry only matches a tag-less image string (an upstream sharp edge, kept).
 */
export class AllowlistMatcher {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];

  /** @throws KimgError `CONFIG_INVALID` with upstream's text for the first invalid pattern. */
  constructor(patterns: readonly string[] = []) {
    for (const p of patterns) {
      const r = parseAllowlistPattern(p);
      if (!r.ok) throw new KimgError('CONFIG_INVALID', r.error, { input: p });
      if (r.pattern.kind === 'exact') this.exact.add(r.pattern.image);
      else this.prefixes.push(r.pattern.prefix);
    }
  }

  /** True when `image` (the container's image string) is allowlisted. */
  matches(image: string): boolean {
    if (this.exact.has(image)) return true;
    return this.prefixes.some((p) => image.startsWith(p));
  }

  /** The pattern that matched (`<prefix>*` for a prefix), for explanations. */
  matchedBy(image: string): string | undefined {
    if (this.exact.has(image)) return image;
    const p = this.prefixes.find((x) => image.startsWith(x));
    return p === undefined ? undefined : `${p}*`;
  }
}

/** `RequireCredentialVerificationForImage`: whether `policy` requires checking credentials. */
export function requiresCredentialVerification(
  policy: ImagePullCredentialsVerificationPolicy,
  allowlist: AllowlistMatcher | undefined,
  image: string,
  pulledByKubelet: boolean,
): boolean {
  switch (policy) {
    case 'NeverVerify':
      return false;
    case 'NeverVerifyPreloadedImages':
      return pulledByKubelet;
    case 'NeverVerifyAllowlistedImages':
      return !(allowlist?.matches(image) ?? false);
    case 'AlwaysVerify':
      return true;
  }
}
