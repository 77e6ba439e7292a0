/**
 * Credential verification for images already present on the node (KEP-2535, feature gate
 * `KubeletEnsureSecretPulledImages`, on by default since Kubernetes 1.35).
 *
 * Without it, any pod on a node can run any image the node holds, even a private image another tenant
 * pulled with its own Secret. With it, before a pod may use a present image (pull policy
 * `IfNotPresent` or `Never`), the node checks the pod's credentials against the pull records
 * (`pull-records.ts`):
 * - the node-config policy (`imagePullCredentialsVerificationPolicy`) may waive the check:
 *   `NeverVerify` always; `NeverVerifyPreloadedImages` (the default) for images the node did not pull
 *   itself (no pulled record and no pull intent: loaded with `kimg load`, copied in by another tool,
 *   or present before the records existed); `NeverVerifyAllowlistedImages` for images whose raw
 *   container string matches `preloadedImagesVerificationAllowlist`; `AlwaysVerify` never;
 * - otherwise the image may be used when the record for the image id maps the image's name to
 *   `nodePodsAccessible` (node-wide credentials or an anonymous pull), to a Secret with the same
 *   credential hash (whatever its coordinates), to the same Secret (namespace, name, uid) whose
 *   content was rotated (the new hash is recorded without a pull), or to the pod's ServiceAccount
 *   (credential plugin in service-account token mode);
 * - anything else makes the pod pull with its own credentials, which verifies them at the registry
 *   (blobs already present are not downloaded again); a successful pull records the credential that
 *   worked.
 *
 * `mustAttemptImagePull` is the pure decision; `PullRecordsVerifier` implements the image manager's
 * `CredentialVerifier` hook over a `PullRecordsAccessor`: pull intents around every pull (ref-counted in
 * memory, one file per image string), pulled records merged as upstream, reconciliation of interrupted
 * pulls on start, pruning after image removal.
 *
 * Source: kubernetes `pkg/kubelet/images/pullmanager/{image_pull_manager.go,image_pull_policies.go}`,
 * `pkg/kubelet/images/image_manager.go` (getPodCredentials, trackedToImagePullCreds),
 * `pkg/credentialprovider/keyring.go` (hashAuthConfig); section 4 of the upstream-semantics digest.
 */
import { KimgError, quote, toKimgError } from '../errors/index.js';
import {
  IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES,
  parseAllowlistPattern,
  type ImagePullCredentialsVerificationPolicy,
  type KubeletImageConfig,
} from '../config/index.js';
import { credentialHash } from '../credentials/index.js';
import { parseImageName } from '../reference/index.js';
import { systemClock, type Clock } from '../clock/index.js';
import type { CredentialVerifier, VerificationRequest } from './image-manager.js';
import type { CredentialCandidate, ImageInfo } from './image-service.js';
import {
  FilePullRecords,
  canonicalCredentials,
  clonePulledRecord,
  credentialMappingOf,
  setCredentials,
  pullRecordFileName,
  type ImagePullCredentials,
  type ImagePulledRecord,
  type ImagePullSecretRef,
  type ImagePullServiceAccountRef,
  type PullRecordProblem,
  type PullRecordsAccessor,
} from './pull-records.js';

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

// --- policy --------------------------------------------------------------------------------------

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

// --- credentials ---------------------------------------------------------------------------------

/** The pod's credentials as the decision sees them (never the credential material itself). */
export interface PodPullCredentials {
  /** Pull Secrets (the pod's, or its ServiceAccount's), with their credential hashes, in keyring order. */
  secrets: ImagePullSecretRef[];
  /** The ServiceAccount of the first plugin credential in service-account token mode. */
  serviceAccount?: ImagePullServiceAccountRef;
}

function pluginServiceAccount(c: CredentialCandidate): ImagePullServiceAccountRef | undefined {
  const sa = (
    c.source as { pluginServiceAccount?: { namespace?: unknown; name?: unknown; uid?: unknown } } | undefined
  )?.pluginServiceAccount;
  if (sa === undefined || sa === null || typeof sa !== 'object') return undefined;
  return { uid: String(sa.uid ?? ''), namespace: String(sa.namespace ?? ''), name: String(sa.name ?? '') };
}

function isSecretSource(c: CredentialCandidate): boolean {
  return c.source?.kind === 'secret' || c.source?.kind === 'service-account';
}

function secretRef(c: CredentialCandidate): ImagePullSecretRef {
  return {
    uid: c.source?.uid ?? '',
    namespace: c.source?.namespace ?? '',
    name: c.source?.name ?? '',
    credentialHash: credentialHash(c.auth),
  };
}

/**
 * The kubelet's `getPodCredentials`: the pod's Secret-sourced credentials (kinds `secret` and
 * `service-account`) with their hashes, and the first service-account-mode plugin credential's
 * ServiceAccount. Node-wide credentials (`node`, `flag`, plugins without a ServiceAccount, no source)
 * are left out: they can only match a `nodePodsAccessible` record.
 */
export function podPullCredentials(candidates: readonly CredentialCandidate[]): PodPullCredentials {
  const out: PodPullCredentials = { secrets: [] };
  for (const c of candidates) {
    if (isSecretSource(c)) {
      out.secrets.push(secretRef(c));
      continue;
    }
    if (c.source?.kind === 'plugin' && out.serviceAccount === undefined) {
      const sa = pluginServiceAccount(c);
      if (sa !== undefined) out.serviceAccount = sa;
    }
  }
  return out;
}

/**
 * The kubelet's `trackedToImagePullCreds`: what a successful pull with `credential` records. A Secret
 * records its coordinates and hash; a service-account-mode plugin its ServiceAccount; node-wide
 * credentials and anonymous pulls (`undefined`) record `nodePodsAccessible`.
 */
export function pulledCredentialsFor(credential: CredentialCandidate | undefined): ImagePullCredentials {
  if (credential === undefined) return { nodePodsAccessible: true };
  if (isSecretSource(credential)) return { kubernetesSecrets: [secretRef(credential)] };
  if (credential.source?.kind === 'plugin') {
    const sa = pluginServiceAccount(credential);
    if (sa !== undefined) return { kubernetesServiceAccounts: [sa] };
  }
  return { nodePodsAccessible: true };
}

/** The record's key for an image: its normalized name without tag or digest. @throws KimgError from the reference parser. */
export function recordImageName(image: string): string {
  return parseImageName(image).repo;
}

function sameCoordinates(a: { uid: string; namespace: string; name: string }, b: typeof a): boolean {
  return a.uid === b.uid && a.namespace === b.namespace && a.name === b.name;
}

function mergeByCoordinates<T extends { uid: string; namespace: string; name: string }>(
  orig: readonly T[],
  add: readonly T[],
  equal: (a: T, b: T) => boolean,
): { list: T[]; changed: boolean } {
  const list = orig.map((x) => ({ ...x }));
  let changed = false;
  // Several entries for the same coordinates: the last one counts.
  const last = new Map<string, T>();
  for (const n of add) last.set(`${n.namespace}\u0000${n.name}\u0000${n.uid}`, n);
  for (const n of last.values()) {
    const i = list.findIndex((x) => sameCoordinates(x, n));
    if (i < 0) {
      list.push({ ...n });
      changed = true;
    } else if (!equal(list[i] as T, n)) {
      list[i] = { ...n };
      changed = true;
    }
  }
  return { list, changed };
}

/**
 * `pulledRecordMergeNewCreds` (pure): merges `creds` for image name `name` into `record` (undefined =
 * no record yet). Rules: a new name adds an entry; `nodePodsAccessible` absorbs (set it, drop the
 * lists; an accessible entry never changes); Secrets are a set keyed by (namespace, name, uid) where
 * the new hash wins; ServiceAccounts likewise; lists sorted by namespace, name, uid. `creds` undefined
 * (an image pulled under unknown circumstances) creates a record with no mapping, which forces
 * verification. `lastUpdatedTime` is bumped on every change.
 */
export function mergePulledRecord(
  record: ImagePulledRecord | undefined,
  imageRef: string,
  name: string,
  creds: ImagePullCredentials | undefined,
  nowMs: number,
): { record: ImagePulledRecord; changed: boolean } {
  const now = new Date(nowMs).toISOString();
  if (record === undefined) {
    const fresh: ImagePulledRecord = {
      imageRef,
      lastUpdatedTime: now,
      credentialMapping: credentialMappingOf(),
    };
    if (creds !== undefined) setCredentials(fresh.credentialMapping, name, canonicalCredentials(creds));
    return { record: fresh, changed: true };
  }
  const empty =
    creds === undefined ||
    (creds.nodePodsAccessible !== true &&
      (creds.kubernetesSecrets ?? []).length === 0 &&
      (creds.kubernetesServiceAccounts ?? []).length === 0);
  if (empty) return { record, changed: false };
  const current = Object.hasOwn(record.credentialMapping, name) ? record.credentialMapping[name] : undefined;
  if (current === undefined) {
    const out = clonePulledRecord(record);
    setCredentials(out.credentialMapping, name, canonicalCredentials(creds));
    out.lastUpdatedTime = now;
    return { record: out, changed: true };
  }
  if (current.nodePodsAccessible === true) return { record, changed: false };
  let next: ImagePullCredentials;
  if (creds.nodePodsAccessible === true) {
    next = { nodePodsAccessible: true };
  } else if ((creds.kubernetesSecrets ?? []).length > 0) {
    const m = mergeByCoordinates(
      current.kubernetesSecrets ?? [],
      creds.kubernetesSecrets ?? [],
      (a, b) => a.credentialHash === b.credentialHash,
    );
    if (!m.changed) return { record, changed: false };
    next = { ...current, kubernetesSecrets: m.list };
  } else {
    const m = mergeByCoordinates(
      current.kubernetesServiceAccounts ?? [],
      creds.kubernetesServiceAccounts ?? [],
      () => true,
    );
    if (!m.changed) return { record, changed: false };
    next = { ...current, kubernetesServiceAccounts: m.list };
  }
  const out = clonePulledRecord(record);
  setCredentials(out.credentialMapping, name, canonicalCredentials(next));
  out.lastUpdatedTime = now;
  return { record: out, changed: true };
}

// --- the decision ----------------------------------------------------------------------------------

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

// --- the verifier ---------------------------------------------------------------------------------

/** Serializes async work per key. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** Something the verifier noticed and carried on from (a record write failed, a corrupt file). */
export interface VerifierNotice {
  message: string;
  image?: string;
  imageRef?: string;
  cause?: unknown;
}

/** Options of `PullRecordsVerifier`. */
export interface PullRecordsVerifierOptions {
  records: PullRecordsAccessor;
  /** `imagePullCredentialsVerificationPolicy`; default `NeverVerifyPreloadedImages`. */
  policy?: string;
  /** `preloadedImagesVerificationAllowlist` (only with `NeverVerifyAllowlistedImages`). */
  allowlist?: readonly string[];
  /** Default the system clock (record times). */
  clock?: Clock;
  /** Where failures the kubelet only logs go; default: dropped. Must not throw. */
  onNotice?: (notice: VerifierNotice) => void;
}

/** What `initialize` / `repair` did. */
export interface ReconcileReport {
  /** Intents found on start. */
  intents: string[];
  /** Intents whose image is present: turned into pulled records with no credentials, then deleted. */
  reconciled: Array<{ image: string; imageRef: string }>;
  /** Intents whose image is not present: kept (the image counts as pulled by the node if it shows up). */
  kept: string[];
  /** Files that were not readable records. */
  problems: PullRecordProblem[];
  /** What was done about each problem. */
  repairs: Array<{ file: string; action: 'removed' | 'replaced'; imageRef?: string }>;
}

/** `explain`'s answer. */
export interface VerificationExplanation {
  /** The policy in force (normalized). */
  policy: ImagePullCredentialsVerificationPolicy;
  /** The container image string and the present image's id. */
  image: string;
  imageRef: string;
  /** The decision; credential hashes shortened. */
  verdict: VerificationVerdict;
  /** Human-readable verdict. */
  summary: string;
  /** The pulled record used, redacted (hashes shortened). */
  record?: ImagePulledRecord;
  /** An intent file exists for the image string. */
  intent: boolean;
  /** Matched allowlist pattern (`NeverVerifyAllowlistedImages`). */
  allowlistedBy?: string;
}

/**
 * The kubelet's image pull manager over pull records: implements the image manager's
 * `CredentialVerifier` hook. Construct, then `initialize(imageService)` once before use (it reconciles
 * records left by an earlier run). Failures to write records after a pull are reported through
 * `onNotice` and never fail the pull (upstream logs them).
 *
 * @throws KimgError `CONFIG_INVALID` from the constructor for an unknown policy or an invalid allowlist.
 */
export class PullRecordsVerifier implements CredentialVerifier {
  readonly records: PullRecordsAccessor;
  readonly policy: ImagePullCredentialsVerificationPolicy;
  readonly allowlist: AllowlistMatcher;
  private readonly clock: Clock;
  private readonly notice: (n: VerifierNotice) => void;
  private readonly intentLocks = new KeyedMutex();
  private readonly pulledLocks = new KeyedMutex();
  private readonly intentCounts = new Map<string, number>();

  constructor(options: PullRecordsVerifierOptions) {
    this.records = options.records;
    this.policy = normalizeVerificationPolicy(options.policy);
    const allowlist = options.allowlist ?? [];
    if (allowlist.length > 0 && this.policy !== 'NeverVerifyAllowlistedImages') {
      throw new KimgError(
        'CONFIG_INVALID',
        'invalid configuration: can\'t set `preloadedImagesVerificationAllowlist` if `imagePullCredentialsVertificationPolicy` is not "NeverVerifyAllowlistedImages"',
      );
    }
    this.allowlist = new AllowlistMatcher(allowlist);
    this.clock = options.clock ?? systemClock;
    const sink = options.onNotice;
    this.notice = (n) => {
      try {
        sink?.(n);
      } catch {
        // A notice sink must not break a pull.
      }
    };
  }

  /** In-flight pulls of `image` in this process. */
  intentCount(image: string): number {
    return this.intentCounts.get(image) ?? 0;
  }

  /**
   * Reconciles records from an earlier run (upstream `initialize`): every intent whose image string is
   * one of a present image's `repoTags`/`repoDigests` becomes a pulled record with no credentials (so
   * the next pod must verify) and is deleted; other intents are kept. Then repairs unreadable files
   * (`repair`). Never throws for a bad file; a failing image service leaves the intents in place.
   */
  async initialize(imageService: { listImages(): Promise<ImageInfo[]> }): Promise<ReconcileReport> {
    const report: ReconcileReport = { intents: [], reconciled: [], kept: [], problems: [], repairs: [] };
    let images: ImageInfo[] = [];
    let imagesKnown = true;
    try {
      images = await imageService.listImages();
    } catch (e) {
      imagesKnown = false;
      this.notice({ message: 'failed to list images: pull intents stay as they are', cause: e });
    }
    const intents = await this.records.listImagePullIntents();
    report.problems.push(...intents.problems);
    report.intents = intents.items.map((i) => i.image);
    const pending = new Set(report.intents);
    if (imagesKnown) {
      for (const img of images) {
        for (const name of [...img.repoDigests, ...img.repoTags]) {
          if (!pending.has(name)) continue;
          try {
            await this.writePulledRecordIfChanged(name, img.id, undefined);
            await this.records.deleteImagePullIntent(name);
            pending.delete(name);
            report.reconciled.push({ image: name, imageRef: img.id });
          } catch (e) {
            this.notice({
              message: 'failed to turn a pull intent into a pulled record',
              image: name,
              imageRef: img.id,
              cause: e,
            });
          }
        }
      }
    }
    report.kept = [...pending];
    const pulled = await this.records.listImagePulledRecords();
    report.problems.push(...pulled.problems);
    if (imagesKnown) report.repairs = await this.repairProblems(report.problems, images);
    return report;
  }

  /**
   * Repairs unreadable record files without opening a hole (fail safe): a corrupt pulled record whose
   * file name is the hash of a present image's id is replaced by a record with no credentials (the
   * image stays "pulled by the node", so pods must verify); a corrupt intent whose name hashes to a
   * present image's tag or digest becomes such a record too; every other bad file (temp files older
   * than `TEMP_FILE_GRACE_MS`, unknown names, records of images no longer present) is removed.
   */
  async repairProblems(
    problems: readonly PullRecordProblem[],
    images: readonly ImageInfo[],
  ): Promise<ReconcileReport['repairs']> {
    const byId = new Map<string, string>();
    const byName = new Map<string, string>();
    for (const img of images) {
      byId.set(pullRecordFileName(img.id), img.id);
      for (const n of [...img.repoTags, ...img.repoDigests]) byName.set(pullRecordFileName(n), img.id);
    }
    const repairs: ReconcileReport['repairs'] = [];
    for (const p of problems) {
      if (p.problem === 'temp' && p.mtimeMs !== undefined && Date.now() - p.mtimeMs < TEMP_FILE_GRACE_MS)
        continue;
      try {
        const recordShaped = p.problem !== 'temp' && p.problem !== 'unknown-name';
        const imageRef = recordShaped
          ? p.kind === 'pulled'
            ? byId.get(p.name)
            : byName.get(p.name)
          : undefined;
        if (imageRef !== undefined) {
          await this.pulledLocks.run(imageRef, async () => {
            const fresh: ImagePulledRecord = {
              imageRef,
              lastUpdatedTime: new Date(this.clock.now()).toISOString(),
              credentialMapping: credentialMappingOf(),
            };
            if (p.kind === 'pulled') {
              await this.records.writeImagePulledRecord(fresh);
            } else {
              let existing: ImagePulledRecord | undefined;
              try {
                existing = await this.records.getImagePulledRecord(imageRef);
              } catch {
                existing = undefined;
              }
              if (existing === undefined) await this.records.writeImagePulledRecord(fresh);
              await this.records.removeProblem(p);
            }
          });
          repairs.push({ file: p.file, action: 'replaced', imageRef });
        } else {
          await this.records.removeProblem(p);
          repairs.push({ file: p.file, action: 'removed' });
        }
      } catch (e) {
        this.notice({ message: `failed to repair ${quote(p.file)}`, cause: e });
      }
    }
    return repairs;
  }

  /** Whether the node pulled the image (record or intent), and the record; throws on unreadable records. */
  private async readState(
    image: string,
    imageRef: string,
  ): Promise<{ record: ImagePulledRecord | undefined; pulledByKubelet: boolean; intent: boolean }> {
    return this.pulledLocks.run(imageRef, () =>
      this.intentLocks.run(image, async () => {
        const record = await this.records.getImagePulledRecord(imageRef);
        const intent = this.intentCount(image) > 0 || (await this.records.imagePullIntentExists(image));
        return { record, pulledByKubelet: record !== undefined || intent, intent };
      }),
    );
  }

  /**
   * Decides for one pod and one present image, merging matched credentials as upstream does. The
   * pod's credentials are resolved only when the records make them matter.
   *
   * @throws the error of `getPodCredentials` as it is (upstream returns it to the pod).
   */
  async decide(
    image: string,
    imageRef: string,
    getPodCredentials: () => Promise<CredentialCandidate[]>,
    mergeMatched = true,
  ): Promise<{ verdict: VerificationVerdict; record?: ImagePulledRecord; intent: boolean }> {
    const input: VerificationInput = {
      policy: this.policy,
      allowlist: this.allowlist,
      image,
      imageRef,
      pulledByKubelet: false,
      record: undefined,
    };
    let intent = false;
    if (imageRef !== '') {
      try {
        const state = await this.readState(image, imageRef);
        input.record = state.record;
        input.pulledByKubelet = state.pulledByKubelet;
        intent = state.intent;
      } catch (e) {
        this.notice({ message: 'unable to access the image pull records', image, imageRef, cause: e });
        input.recordsUnreadable = true;
      }
    }
    let verdict = mustAttemptImagePull(input);
    if (verdict.reason === 'credentials-needed') {
      input.podCredentials = podPullCredentials(await getPodCredentials());
      verdict = mustAttemptImagePull(input);
    }
    if (mergeMatched && verdict.merge !== undefined) {
      try {
        await this.writePulledRecordIfChanged(image, imageRef, { kubernetesSecrets: [verdict.merge] });
      } catch (e) {
        this.notice({ message: 'failed to write an image pulled record', image, imageRef, cause: e });
      }
    }
    const out: { verdict: VerificationVerdict; record?: ImagePulledRecord; intent: boolean } = {
      verdict,
      intent,
    };
    if (input.record !== undefined) out.record = input.record;
    return out;
  }

  /** The `CredentialVerifier` hook: true when the pod must pull. */
  async mustAttemptImagePull(request: VerificationRequest): Promise<boolean> {
    const { verdict } = await this.decide(request.image, request.imageRef, request.getPodCredentials);
    return verdict.mustPull;
  }

  /**
   * The decision with the record it used (redacted) and a one-line summary, for `kimg explain`.
   * Read-only: a rotated or foreign-coordinate match is reported in `verdict.merge` but not recorded.
   * Without `getPodCredentials` the pod's credentials count as none.
   */
  async explain(
    image: string,
    imageRef: string,
    getPodCredentials: () => Promise<CredentialCandidate[]> = async () => [],
  ): Promise<VerificationExplanation> {
    const { verdict, record, intent } = await this.decide(image, imageRef, getPodCredentials, false);
    const out: VerificationExplanation = {
      policy: this.policy,
      image,
      imageRef,
      verdict: redactVerdict(verdict),
      summary: describeVerdict(verdict, this.policy),
      intent,
    };
    if (record !== undefined) out.record = redactPulledRecord(record);
    const by = this.policy === 'NeverVerifyAllowlistedImages' ? this.allowlist.matchedBy(image) : undefined;
    if (by !== undefined) out.allowlistedBy = by;
    return out;
  }

  /** Before a pull: writes the intent and counts it. @throws KimgError `STORE_IO` (the pull must not start). */
  recordPullIntent(image: string): Promise<void> {
    return this.intentLocks.run(image, async () => {
      try {
        await this.records.writeImagePullIntent(image);
      } catch (e) {
        const err = toKimgError(e);
        throw new KimgError(err.code, `failed to record image pull intent: ${err.message}`, {
          input: image,
          cause: err,
        });
      }
      this.intentCounts.set(image, this.intentCount(image) + 1);
    });
  }

  /**
   * After a successful pull: merges the credential that worked into the record, then releases the
   * intent. If the record cannot be written the intent is kept, so the image still counts as pulled by
   * the node (and the next start reconciles it). Never throws.
   */
  async recordImagePulled(
    image: string,
    imageRef: string,
    credential: CredentialCandidate | undefined,
  ): Promise<void> {
    try {
      await this.writePulledRecordIfChanged(image, imageRef, pulledCredentialsFor(credential));
    } catch (e) {
      this.notice({ message: 'failed to write image pulled record', image, imageRef, cause: e });
      return;
    }
    await this.releaseIntent(image);
  }

  /** After a pull attempt that failed (or was refused by back-off): releases the intent. Never throws. */
  async recordImagePullFailed(image: string): Promise<void> {
    await this.releaseIntent(image);
  }

  private async releaseIntent(image: string): Promise<void> {
    await this.intentLocks.run(image, async () => {
      const count = this.intentCount(image);
      if (count <= 1) {
        try {
          await this.records.deleteImagePullIntent(image);
        } catch (e) {
          this.notice({ message: 'failed to remove image pull intent', image, cause: e });
          return;
        }
        this.intentCounts.delete(image);
        return;
      }
      this.intentCounts.set(image, count - 1);
    });
  }

  /**
   * Merges `creds` into the record of `imageRef` under the image's name and writes it when it changed.
   * `creds` undefined creates an empty record (image pulled under unknown circumstances).
   * @throws KimgError for an image string that does not parse, or from the accessor.
   */
  writePulledRecordIfChanged(
    image: string,
    imageRef: string,
    creds: ImagePullCredentials | undefined,
  ): Promise<void> {
    return this.pulledLocks.run(imageRef, async () => {
      const name = recordImageName(image);
      let existing: ImagePulledRecord | undefined;
      try {
        existing = await this.records.getImagePulledRecord(imageRef);
      } catch (e) {
        this.notice({
          message: 'failed to read an image pulled record: replacing it',
          image,
          imageRef,
          cause: e,
        });
        existing = undefined;
      }
      const { record, changed } = mergePulledRecord(existing, imageRef, name, creds, this.clock.now());
      if (changed) await this.records.writeImagePulledRecord(record);
    });
  }

  /**
   * Upstream `PruneUnknownRecords` (run after image GC): deletes pulled records whose image id is not
   * in `presentImageIds` and that were last updated before `untilMs`. Returns the image ids removed.
   * Listing problems are reported through `onNotice` and skipped.
   */
  async pruneUnknownRecords(presentImageIds: readonly string[], untilMs: number): Promise<string[]> {
    const { items, problems } = await this.records.listImagePulledRecords();
    for (const p of problems)
      this.notice({ message: `unreadable pull record ${quote(p.file)}: ${p.detail}` });
    const present = new Set(presentImageIds);
    const removed: string[] = [];
    for (const r of items) {
      if (!(Date.parse(r.lastUpdatedTime) < untilMs)) continue;
      if (present.has(r.imageRef)) continue;
      try {
        await this.pulledLocks.run(r.imageRef, () => this.records.deleteImagePulledRecord(r.imageRef));
        removed.push(r.imageRef);
      } catch (e) {
        this.notice({ message: 'failed to remove an image pulled record', imageRef: r.imageRef, cause: e });
      }
    }
    return removed;
  }
}

/** Options of `openNodeVerifier`. */
export interface OpenNodeVerifierOptions {
  /** The node root: records go to `<root>/pull-records/` (kimg's store root). */
  root: string;
  /** The kubelet configuration's policy and allowlist (`parseNodeConfig(...).kubelet`); default: the defaults. */
  config?: Pick<
    KubeletImageConfig,
    'imagePullCredentialsVerificationPolicy' | 'preloadedImagesVerificationAllowlist'
  >;
  /** Lists the present images for start-up reconciliation (the manager's image service). */
  imageService: { listImages(): Promise<ImageInfo[]> };
  clock?: Clock;
  onNotice?: (notice: VerifierNotice) => void;
}

/**
 * The node's verifier: `FilePullRecords` under `root`, the configured policy and allowlist, reconciled
 * with the present images. Pass the result to `new ImageManager({ verifier, ... })`; it is consulted only
 * while the `KubeletEnsureSecretPulledImages` gate is on.
 *
 * @throws KimgError `CONFIG_INVALID` (policy, allowlist), `STORE_IO` (the records directory cannot be listed).
 */
export async function openNodeVerifier(
  options: OpenNodeVerifierOptions,
): Promise<{ verifier: PullRecordsVerifier; report: ReconcileReport }> {
  const verifier = new PullRecordsVerifier({
    records: new FilePullRecords(options.root),
    policy: options.config?.imagePullCredentialsVerificationPolicy ?? '',
    allowlist: options.config?.preloadedImagesVerificationAllowlist ?? [],
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    ...(options.onNotice !== undefined ? { onNotice: options.onNotice } : {}),
  });
  const report = await verifier.initialize(options.imageService);
  return { verifier, report };
}
