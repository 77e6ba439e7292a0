/**
 * The API reads behind `kimg explain pod/NAME`, `deployment/NAME` and `pods -n NS`: the Pod (or a
 * Deployment's pod template), the Secrets it references — or, when it lists none, its
 * ServiceAccount and the Secrets that lists (only those, one GET each, as the kubelet) — the Node it
 * is bound to, and `Node.status.images`: the kubelet's report of what the node's runtime holds (at
 * most `nodeStatusMaxImages`, 50 by default, largest first), the presence source when kimg does not
 * run on that node.
 */
import { KimgError, quote, type KimgErrorLike } from '../errors/index.js';
import type { PodPullSecrets } from '../credentials/index.js';
import type { KubeClient, KubeJson } from './client.js';
import { fetchPodPullSecrets } from './secrets.js';

/** What `explain pod/NAME` reads, with where each fact came from. */
export interface PodContext {
  /** The Pod as stored (or a Deployment's template as a Pod). */
  pod: KubeJson;
  /** `pod` (the Pod object) or `deployment` (its template: no node, no statuses). */
  origin: 'pod' | 'deployment';
  secrets: PodPullSecrets;
  /** The pod's ServiceAccount, read only when the pod lists no pull Secrets. */
  serviceAccount?: KubeJson;
  /** The Node named by `spec.nodeName`, when bound and readable. */
  node?: KubeJson;
  /** Why the Node was not read (unbound, forbidden, not found). */
  nodeProblem?: string;
}

/** A container's image presence as the Node reports it. */
export interface NodeImagePresence {
  present: boolean;
  /** The names the node lists for the image (`repo@sha256:…`, `repo:tag`). */
  names: string[];
  sizeBytes?: number;
}

/**
 * Whether `Node.status.images` lists `image` (matched by its familiar or normalized names; the list
 * is capped by the kubelet, so absence is "not reported", not proof).
 */
export function nodeImagePresence(node: KubeJson, candidates: readonly string[]): NodeImagePresence {
  const images = (((node.status ?? {}) as Record<string, unknown>).images ?? []) as unknown[];
  for (const img of Array.isArray(images) ? images : []) {
    const names = (
      typeof img === 'object' && img !== null ? (img as { names?: unknown }).names : undefined
    ) as unknown;
    if (!Array.isArray(names)) continue;
    const list = names.filter((n): n is string => typeof n === 'string');
    if (list.some((n) => candidates.includes(n))) {
      const size = (img as { sizeBytes?: unknown }).sizeBytes;
      return { present: true, names: list, ...(typeof size === 'number' ? { sizeBytes: size } : {}) };
    }
  }
  return { present: false, names: [] };
}

/**
 * Reads a Pod, its pull Secrets (and its ServiceAccount when the pod lists none), and its Node.
 *
 * @throws KimgError `KUBE_NOT_FOUND` (no such pod), `KUBE_FORBIDDEN` naming verb and resource,
 * `KUBE_UNAVAILABLE`. A Node that cannot be read is `nodeProblem`, not an error.
 */
export async function readPodContext(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<PodContext> {
  const pod = await client.getPod(namespace, name);
  const { secrets, serviceAccount } = await fetchPodPullSecrets(client, pod);
  const nodeName = ((pod.spec ?? {}) as Record<string, unknown>).nodeName;
  const out: PodContext = {
    pod,
    origin: 'pod',
    secrets,
    ...(serviceAccount !== undefined ? { serviceAccount } : {}),
  };
  if (typeof nodeName !== 'string' || nodeName === '') {
    out.nodeProblem = 'the pod is not bound to a node yet (spec.nodeName is empty)';
    return out;
  }
  try {
    out.node = await client.getNode(nodeName);
  } catch (e) {
    if (!(e instanceof KimgError)) throw e;
    if (e.code !== 'KUBE_NOT_FOUND' && e.code !== 'KUBE_FORBIDDEN') throw e;
    out.nodeProblem = e.message;
  }
  return out;
}

/**
 * A Deployment's pod template as a Pod (name `NAME-<template>`, the Deployment's namespace, no UID,
 * unbound), with the Secrets it references.
 *
 * @throws KimgError `KUBE_NOT_FOUND`, `KUBE_FORBIDDEN`, `KUBE_UNAVAILABLE`.
 */
export async function readDeploymentContext(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<PodContext> {
  const d = await client.getDeployment(namespace, name);
  const template = (((d.spec ?? {}) as Record<string, unknown>).template ?? {}) as Record<string, unknown>;
  const tmeta = (template.metadata ?? {}) as Record<string, unknown>;
  const pod: KubeJson = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...tmeta, name: `${name}-<template>`, namespace, uid: '' },
    spec: template.spec ?? {},
  };
  const { secrets, serviceAccount } = await fetchPodPullSecrets(client, pod);
  return {
    pod,
    origin: 'deployment',
    secrets,
    ...(serviceAccount !== undefined ? { serviceAccount } : {}),
    nodeProblem: 'a pod template is not bound to a node',
  };
}

/** The waiting reasons that mean "stuck on its image" (kubelet `pkg/kubelet/images/types.go`). */
export const IMAGE_WAITING_REASONS: readonly string[] = [
  'ErrImagePull',
  'ImagePullBackOff',
  'ErrImageNeverPull',
  'InvalidImageName',
  'ImageInspectError',
  'RegistryUnavailable',
  'SignatureValidationFailed',
];

/** One container waiting on its image. */
export interface StuckContainer {
  pod: string;
  namespace: string;
  node: string;
  container: string;
  image: string;
  reason: string;
  message: string;
}

/**
 * The containers of a namespace's pods waiting on their image (from each pod's status, as the
 * kubelet reported it), in pod order.
 *
 * @throws KimgError `KUBE_FORBIDDEN` (list pods), `KUBE_NOT_FOUND` (no such namespace),
 * `KUBE_UNAVAILABLE`.
 */
export async function listStuckContainers(
  client: KubeClient,
  namespace: string,
): Promise<{ pods: number; stuck: StuckContainer[] }> {
  const { items } = await client.listPods({ namespace });
  if (items.length === 0) {
    // An empty list cannot tell a quiet namespace from a mistyped one: ask (a denied get is fine).
    try {
      await client.getNamespace(namespace);
    } catch (e) {
      if (e instanceof KimgError && e.code === 'KUBE_NOT_FOUND') throw e;
    }
  }
  const stuck: StuckContainer[] = [];
  for (const pod of items) {
    const status = (pod.status ?? {}) as Record<string, unknown>;
    const spec = (pod.spec ?? {}) as Record<string, unknown>;
    for (const list of ['initContainerStatuses', 'containerStatuses']) {
      const cs = status[list];
      if (!Array.isArray(cs)) continue;
      for (const c of cs as Record<string, unknown>[]) {
        const waiting = ((c.state ?? {}) as Record<string, unknown>).waiting as
          Record<string, unknown> | undefined;
        const reason = typeof waiting?.reason === 'string' ? waiting.reason : '';
        if (!IMAGE_WAITING_REASONS.includes(reason)) continue;
        stuck.push({
          pod: String(pod.metadata?.name ?? ''),
          namespace,
          node: typeof spec.nodeName === 'string' ? spec.nodeName : '',
          container: String(c.name ?? ''),
          image: String(c.image ?? ''),
          reason,
          message: typeof waiting?.message === 'string' ? waiting.message : '',
        });
      }
    }
  }
  return { pods: items.length, stuck };
}

/** `pod/NAME`, `deployment/NAME`, `pods` as `kimg explain` takes them (kubectl's TYPE/NAME). */
export type KubeTarget = { kind: 'pod' | 'deployment'; name: string } | { kind: 'pods' };

/** Parses a kubectl-style target; undefined when `arg` is not one (an image name). */
export function parseKubeTarget(arg: string): KubeTarget | undefined {
  if (arg === 'pods' || arg === 'pod' || arg === 'po') return { kind: 'pods' };
  const m = /^(pods?|po|deployments?(?:\.apps)?|deploy)\/(.+)$/.exec(arg);
  if (m === null) return undefined;
  const name = m[2]!;
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
    throw new KimgError(
      'USAGE',
      `${quote(arg)}: ${quote(name)} is not a valid object name (RFC 1123 subdomain)`,
      { input: arg },
    );
  }
  return { kind: m[1]!.startsWith('d') ? 'deployment' : 'pod', name };
}

/** The error's text for an explanation's "could not read" lines. */
export function problemText(e: KimgErrorLike): string {
  return `${e.code}: ${e.message}`;
}
