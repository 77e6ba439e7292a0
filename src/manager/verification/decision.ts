/**
 * The pure decision: may a pod use a present image with its credentials, or must it pull
 * (`mustAttemptImagePull`), and how a verdict is described and redacted for output.
 */
import type { ImagePullCredentialsVerificationPolicy } from '../../config/index.js';
import {
  clonePulledRecord,
  type ImagePulledRecord,
  type ImagePullSecretRef,
  type ImagePullServiceAccountRef,
} from '../pull-records.js';
import { type PodPullCredentials, recordImageName, sameCoordinates } from './credentials.js';
import {
  AllowlistMatcher,
  WRITE_RECORD_WHILE_MATCHING_LIMIT,
  requiresCredentialVerification,
} from './policy.js';

/** Why the decision came out as it did. */
export type VerificationReason =
  /** mustPull: the image is not present (no image id). */
  | 'no-image-ref'
  /** mustPull: the records could not be read (fail safe). */
  | 'records-unreadable'
  /** use: the policy does not require verification for this image. */
  | 'policy-allows'
  /** mustPull: the node pulled the image (intent) but holds no pulled record for it. */
  | 'no-record'
  /** mustPull: the image string does not parse, so no record can match it. */
  | 'invalid-image-name'
  /** mustPull: the record holds nothing for this image name. */
  | 'no-mapping'
  /** use: pulled with node-wide credentials or anonymously. */
  | 'node-accessible'
  /** mustPull: the record lists no credentials for this name (an interrupted pull, reconciled). */
  | 'no-credentials-recorded'
  /** mustPull: call again with the pod's credentials (`mustAttemptImagePull` never resolves them). */
  | 'credentials-needed'
  /** use: a recorded Secret with the same credential hash. */
  | 'secret-match'
  /** use: the same Secret (namespace, name, uid) with new content: the new hash gets recorded. */
  | 'secret-rotated'
  /** use: the pod's ServiceAccount is recorded. */
  | 'service-account-match'
  /** mustPull: none of the pod's credentials is recorded for this image. */
  | 'no-matching-credentials';

/** The input of the pure decision. */
export interface VerificationInput {
  policy: ImagePullCredentialsVerificationPolicy;
  /** Used by `NeverVerifyAllowlistedImages`. */
  allowlist?: AllowlistMatcher;
  /** The container's image string as the pod spells it. */
  image: string;
  /** The present image's id; '' when absent. */
  imageRef: string;
  /** A pulled record or a pull intent exists for the image (else it is preloaded). */
  pulledByKubelet: boolean;
  /** The pulled record of `imageRef`, if any. */
  record: ImagePulledRecord | undefined;
  /** Set when the records could not be read: the decision fails safe (pull). */
  recordsUnreadable?: boolean;
  /** The pod's credentials; leave unset until the verdict says `credentials-needed`. */
  podCredentials?: PodPullCredentials;
}

/** The outcome of the decision. */
export interface VerificationVerdict {
  /** True when the pod must pull (its credentials are not verified for the image). */
  mustPull: boolean;
  reason: VerificationReason;
  /** The node did not pull the image itself (no record, no intent). */
  preloaded: boolean;
  /** Whether the policy required verification (unset when not evaluated). */
  policyRequiresVerification?: boolean;
  /** The record's key for the image (normalized name), once computed. */
  name?: string;
  /** The recorded Secret or ServiceAccount that matched. */
  matched?: { secret?: ImagePullSecretRef; serviceAccount?: ImagePullServiceAccountRef };
  /** A Secret the caller should merge into the record (matched under other coordinates, or rotated). */
  merge?: ImagePullSecretRef;
}

/**
 * The kubelet's `MustAttemptImagePull`, as a pure function of the records already read. Steps:
 * no image id → pull; unreadable records → pull; policy waives verification → use; no record → pull;
 * no mapping for the name → pull; `nodePodsAccessible` → use; no Secrets and no ServiceAccounts →
 * pull; then each pod Secret against each recorded one: equal non-empty hash → use (and merge the
 * pod's coordinates when they differ and the list is under 100), same coordinates with another hash →
 * use and merge the new hash (when the list is under 100, else keep looking); the pod's ServiceAccount
 * recorded → use; otherwise pull. Returns `credentials-needed` (mustPull true) when the pod's
 * credentials are needed but `podCredentials` is unset. Never throws.
 */
export function mustAttemptImagePull(input: VerificationInput): VerificationVerdict {
  const preloaded = !input.pulledByKubelet;
  if (input.imageRef === '') return { mustPull: true, reason: 'no-image-ref', preloaded };
  if (input.recordsUnreadable === true) return { mustPull: true, reason: 'records-unreadable', preloaded };
  const required = requiresCredentialVerification(
    input.policy,
    input.allowlist,
    input.image,
    input.pulledByKubelet,
  );
  const base = { preloaded, policyRequiresVerification: required };
  if (!required) return { ...base, mustPull: false, reason: 'policy-allows' };
  if (input.record === undefined) return { ...base, mustPull: true, reason: 'no-record' };
  let name: string;
  try {
    name = recordImageName(input.image);
  } catch {
    return { ...base, mustPull: true, reason: 'invalid-image-name' };
  }
  const cached = Object.hasOwn(input.record.credentialMapping, name)
    ? input.record.credentialMapping[name]
    : undefined;
  if (cached === undefined) return { ...base, name, mustPull: true, reason: 'no-mapping' };
  if (cached.nodePodsAccessible === true)
    return { ...base, name, mustPull: false, reason: 'node-accessible' };
  const secrets = cached.kubernetesSecrets ?? [];
  const accounts = cached.kubernetesServiceAccounts ?? [];
  if (secrets.length === 0 && accounts.length === 0) {
    return { ...base, name, mustPull: true, reason: 'no-credentials-recorded' };
  }
  if (input.podCredentials === undefined) {
    return { ...base, name, mustPull: true, reason: 'credentials-needed' };
  }
  const mayMerge = secrets.length < WRITE_RECORD_WHILE_MATCHING_LIMIT;
  for (const pod of input.podCredentials.secrets) {
    for (const rec of secrets) {
      const hashesMatch = rec.credentialHash.length > 0 && pod.credentialHash === rec.credentialHash;
      const coordinatesMatch = sameCoordinates(pod, rec);
      if (hashesMatch) {
        const v: VerificationVerdict = {
          ...base,
          name,
          mustPull: false,
          reason: 'secret-match',
          matched: { secret: { ...rec } },
        };
        if (!coordinatesMatch && mayMerge) v.merge = { ...pod };
        return v;
      }
      if (coordinatesMatch && mayMerge) {
        return {
          ...base,
          name,
          mustPull: false,
          reason: 'secret-rotated',
          matched: { secret: { ...rec } },
          merge: { ...pod },
        };
      }
    }
  }
  const sa = input.podCredentials.serviceAccount;
  if (sa !== undefined) {
    const hit = accounts.find((a) => sameCoordinates(a, sa));
    if (hit !== undefined) {
      return {
        ...base,
        name,
        mustPull: false,
        reason: 'service-account-match',
        matched: { serviceAccount: { ...hit } },
      };
    }
  }
  return { ...base, name, mustPull: true, reason: 'no-matching-credentials' };
}

/** One line explaining a verdict, for `kimg explain`, events and logs (no credential material). */
export function describeVerdict(
  v: VerificationVerdict,
  policy: ImagePullCredentialsVerificationPolicy,
): string {
  const origin = v.preloaded ? 'preloaded (not pulled by this node)' : 'pulled by this node';
  const secret = (s: ImagePullSecretRef | undefined) =>
    s === undefined ? '' : ` Secret ${s.namespace}/${s.name} (uid ${s.uid === '' ? '<none>' : s.uid})`;
  switch (v.reason) {
    case 'no-image-ref':
      return 'the image is not present';
    case 'records-unreadable':
      return 'the pull records could not be read: verifying at the registry (fail safe)';
    case 'policy-allows':
      return `policy ${policy} does not verify this image (${origin})`;
    case 'no-record':
      return `policy ${policy} verifies this image (${origin}) and no pull record lists credentials for it`;
    case 'invalid-image-name':
      return 'the image name does not parse, so no pull record can match it';
    case 'no-mapping':
      return `the pull record of this image lists no credentials for ${v.name ?? 'this name'}`;
    case 'node-accessible':
      return 'pulled with node-wide credentials or anonymously: every pod on the node may use it';
    case 'no-credentials-recorded':
      return 'the pull record lists no credentials (an interrupted pull): verifying at the registry';
    case 'credentials-needed':
      return "the pod's credentials are needed to decide";
    case 'secret-match':
      return `pulled with the same credentials as${secret(v.matched?.secret)}`;
    case 'secret-rotated':
      return `the same Secret as${secret(v.matched?.secret)} with rotated content: accepted and recorded`;
    case 'service-account-match': {
      const sa = v.matched?.serviceAccount;
      return `pulled with a plugin credential for ServiceAccount ${sa?.namespace ?? ''}/${sa?.name ?? ''}`;
    }
    case 'no-matching-credentials':
      return "none of the pod's credentials pulled this image: it must pull to verify them";
  }
}

function shortHash(h: string): string {
  return h === '' ? '' : `${h.slice(0, 12)}…`;
}

/** A record safe to print: credential hashes shortened to 12 hex characters. */
export function redactPulledRecord(record: ImagePulledRecord): ImagePulledRecord {
  const out = clonePulledRecord(record);
  for (const creds of Object.values(out.credentialMapping)) {
    for (const s of creds.kubernetesSecrets ?? []) s.credentialHash = shortHash(s.credentialHash);
  }
  return out;
}

/** A verdict safe to print: credential hashes shortened to 12 hex characters. */
export function redactVerdict(v: VerificationVerdict): VerificationVerdict {
  const out: VerificationVerdict = { ...v };
  if (v.matched !== undefined) {
    out.matched = { ...v.matched };
    if (v.matched.secret !== undefined) {
      out.matched.secret = {
        ...v.matched.secret,
        credentialHash: shortHash(v.matched.secret.credentialHash),
      };
    }
  }
  if (v.merge !== undefined) out.merge = { ...v.merge, credentialHash: shortHash(v.merge.credentialHash) };
  return out;
}
