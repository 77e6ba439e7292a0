/**
 * A pod's pull credentials as the records see them (Secret coordinates and credential hashes, the
 * ServiceAccount of a token-mode plugin, or node-wide), and how a successful pull merges them into the
 * pulled record (kubelet `getPodCredentials`, `trackedToImagePullCreds`).
 */
import { credentialHash } from '../../credentials/index.js';
import { parseImageName } from '../../reference/index.js';
import type { CredentialCandidate } from '../image-service.js';
import {
  canonicalCredentials,
  clonePulledRecord,
  credentialMappingOf,
  setCredentials,
  type ImagePullCredentials,
  type ImagePulledRecord,
  type ImagePullSecretRef,
  type ImagePullServiceAccountRef,
} from '../pull-records.js';

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

export function sameCoordinates(a: { uid: string; namespace: string; name: string }, b: typeof a): boolean {
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
