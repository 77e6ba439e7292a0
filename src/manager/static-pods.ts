/**
 * What makes a pod a static pod, and what a static pod uses beyond what the kubelet allows.
 *
 * The kubelet's file source (kubernetes `pkg/kubelet/config/file.go`) reads pods from `staticPodPath`
 * (a directory of manifests, or one manifest file) and refuses those that reference API objects — pull
 * Secrets, ServiceAccounts — since a static pod must run without an API server. kimg resolves both from
 * a secrets directory instead; that is a kimg extension, and every face that shows a static pod
 * (`kimg describe pod`, `kimg explain`, the agent's status page) says so with the same notes. Pods from
 * the API server and plain `-f` manifests are not static pods: the kubelet allows their Secrets.
 */
import { isAbsolute, relative, resolve } from 'node:path';

/** What decides whether a manifest file holds static pods. */
export interface StaticPodSource {
  /** The manifest file the pod was read from. */
  file: string;
  /** The node configuration's `staticPodPath` (a directory or a file); empty or unset = none. */
  staticPodPath?: string;
  /** The caller says so explicitly (e.g. a manifest copied out of `staticPodPath`). */
  declared?: boolean;
}

/**
 * Whether a pod read from `file` is a static pod: declared so, or `file` is `staticPodPath` itself or
 * lies beneath it. Paths are compared after resolving against the working directory; symbolic links
 * are not resolved, so a manifest is judged by the path it was given as.
 */
export function isStaticPod(source: StaticPodSource): boolean {
  if (source.declared === true) return true;
  const root = source.staticPodPath;
  if (root === undefined || root === '') return false;
  const rel = relative(resolve(root), resolve(source.file));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** Where the node agent resolves a static pod's Secrets and ServiceAccount (`kimg node --secrets-dir`). */
export const STATIC_POD_OBJECTS_ORIGIN = 'the secrets directory';

/**
 * The kimg extensions a static pod uses (empty when none): its pull Secrets and its ServiceAccount
 * (other than `default`, which every namespace has), each as one note naming what the kubelet refuses.
 * `origin` says where they are resolved from: the agent's secrets directory (default), or the `-f`
 * manifests of a command that reads them.
 */
export function staticPodExtensions(
  object: Record<string, unknown>,
  origin: string = STATIC_POD_OBJECTS_ORIGIN,
): string[] {
  const spec = (object.spec ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  const secrets = Array.isArray(spec.imagePullSecrets)
    ? (spec.imagePullSecrets as { name?: unknown }[]).map((r) => r?.name).filter((n) => typeof n === 'string')
    : [];
  if (secrets.length > 0)
    out.push(
      `imagePullSecrets ${secrets.join(', ')} resolved from ${origin} (kimg extension: the kubelet refuses static pods that reference Secrets)`,
    );
  const sa = spec.serviceAccountName ?? spec.serviceAccount;
  if (typeof sa === 'string' && sa !== '' && sa !== 'default')
    out.push(
      `ServiceAccount ${sa} resolved from ${origin} (kimg extension: the kubelet refuses static pods that reference ServiceAccounts)`,
    );
  return out;
}
