/**
 * `kimg explain pod/NAME` and `deployment/NAME` as a library call: the manager's decision chain
 * (`explainImage`) run for every container of a Pod read from the API server, with its own pull
 * Secrets, and the answer says where each fact came from:
 *
 * - the Pod (or the Deployment's template), its ServiceAccount and Secrets: the API server;
 * - presence: the node's runtime when kimg runs on the pod's node (the caller passes that image
 *   service), else `Node.status.images` — what the kubelet last reported, capped (50 images by
 *   default), so "not listed" is not proof of absence;
 * - registry facts: only with `resolve`, asked with the pod's credentials.
 *
 * A referenced Secret that is missing gives the kubelet's warning text
 * (`FailedToRetrieveImagePullSecret`); what the kubelet reported for each container
 * (`status.containerStatuses[].state.waiting`) is shown beside kimg's own verdict.
 */
import type { PodCredentialContext, PodPullSecrets, PullCredentialLookup } from '../credentials/index.js';
import {
  explainImage,
  podExplainTargets,
  defaultPullPolicy,
  type ExplainDeps,
  type ImageExplanation,
  type ImageInfo,
  type ImageService,
} from '../manager/index.js';
import { quote } from '../errors/index.js';
import { tryParseReference } from '../reference/index.js';
import type { KubeJson } from './client.js';
import { nodeImagePresence, type PodContext } from './lookup.js';
import { missingSecretNames, missingSecretsMessage, podReferences } from './secrets.js';

/** Where the presence facts come from. */
export type PresenceSource =
  | { kind: 'runtime'; description: string }
  | { kind: 'node-status'; node: string }
  | { kind: 'none'; reason: string };

/** One explained Pod (or pod template). */
export interface ClusterPodExplanation {
  target: { kind: 'pod' | 'deployment'; namespace: string; name: string };
  pod: { name: string; namespace: string; uid: string; node?: string; serviceAccount: string };
  /** Each fact's origin, in words. */
  sources: { pod: string; credentials: string; presence: string; registry: string };
  secrets: {
    name: string;
    namespace: string;
    via: 'pod' | 'service-account';
    found: boolean;
    problem?: string;
  }[];
  /** Events the kubelet would record for this pod's Secrets (reason + note). */
  warnings: { reason: string; message: string }[];
  /** What the kubelet reported per container (`status.*ContainerStatuses[].state.waiting`). */
  reported: { container: string; reason: string; message: string }[];
  containers: ImageExplanation[];
}

/** Options of {@link explainClusterPod}. */
export interface ClusterExplainOptions {
  /** The node runtime's image service (kimg runs on the pod's node) — else `Node.status.images`. */
  runtime?: { imageService: Pick<ImageService, 'imageStatus'>; description: string };
  /** The chain's other inputs (back-off, verification, registry for `--resolve`). */
  deps: Omit<ExplainDeps, 'imageService' | 'credentials'>;
  /** The credential lookup for a pod context carrying its API Secrets (`PodCredentials.lookup`). */
  lookup: (image: string, pod: PodCredentialContext) => Promise<PullCredentialLookup>;
  /** Only this container. */
  container?: string;
}

/** Presence from `Node.status.images` (see the module comment). */
export class NodeStatusImages implements Pick<ImageService, 'imageStatus'> {
  constructor(private readonly node: KubeJson | undefined) {}

  imageStatus(spec: { image: string }): Promise<ImageInfo | undefined> {
    if (this.node === undefined) return Promise.resolve(undefined);
    const candidates = [spec.image];
    const parsed = tryParseReference(spec.image);
    if (parsed.ok) {
      const r = parsed.reference;
      candidates.push(r.normalized, r.canonical, r.pullRef, r.familiarString);
    }
    const found = nodeImagePresence(this.node, candidates);
    if (!found.present) return Promise.resolve(undefined);
    const byDigest = found.names.find((n) => n.includes('@sha256:'));
    return Promise.resolve({
      id: byDigest?.slice(byDigest.indexOf('@') + 1) ?? found.names[0] ?? '',
      repoTags: found.names.filter((n) => !n.includes('@')),
      repoDigests: found.names.filter((n) => n.includes('@')),
      size: found.sizeBytes ?? 0,
      pinned: false,
    });
  }
}

/** Copies the pod with each stored policy that equals the API default removed (origin "defaulted"). */
function asWritten(pod: KubeJson): KubeJson {
  const spec = { ...((pod.spec ?? {}) as Record<string, unknown>) };
  for (const list of ['initContainers', 'containers', 'ephemeralContainers']) {
    const cs = spec[list];
    if (!Array.isArray(cs)) continue;
    spec[list] = cs.map((c: Record<string, unknown>) => {
      const image = typeof c.image === 'string' ? c.image : '';
      let def: string | undefined;
      try {
        def = defaultPullPolicy(image);
      } catch {
        def = undefined;
      }
      if (c.imagePullPolicy === def) {
        const { imagePullPolicy: _p, ...rest } = c;
        return rest;
      }
      return c;
    });
  }
  return { ...pod, spec };
}

function reportedStatuses(pod: KubeJson): ClusterPodExplanation['reported'] {
  const status = (pod.status ?? {}) as Record<string, unknown>;
  const out: ClusterPodExplanation['reported'] = [];
  for (const list of ['initContainerStatuses', 'containerStatuses', 'ephemeralContainerStatuses']) {
    const cs = status[list];
    if (!Array.isArray(cs)) continue;
    for (const c of cs as Record<string, unknown>[]) {
      const waiting = ((c.state ?? {}) as Record<string, unknown>).waiting as
        Record<string, unknown> | undefined;
      if (waiting === undefined) continue;
      out.push({
        container: String(c.name ?? ''),
        reason: typeof waiting.reason === 'string' ? waiting.reason : '',
        message: typeof waiting.message === 'string' ? waiting.message : '',
      });
    }
  }
  return out;
}

function secretRows(
  secrets: PodPullSecrets,
  pod: KubeJson,
  sa: KubeJson | undefined,
): ClusterPodExplanation['secrets'] {
  const refs = podReferences(pod);
  const viaSa = refs.secrets.length === 0;
  const names = viaSa ? namesOf(sa?.imagePullSecrets) : refs.secrets;
  return names.map((name) => {
    const problem = secrets.problems.find((p) => p.name === name && p.kind !== 'service-account-not-found');
    return {
      name,
      namespace: refs.namespace,
      via: viaSa ? 'service-account' : 'pod',
      found: problem?.kind !== 'not-found',
      ...(problem !== undefined ? { problem: problem.message } : {}),
    };
  });
}

function namesOf(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list
    .map((r: unknown) => (typeof r === 'object' && r !== null ? (r as { name?: unknown }).name : undefined))
    .filter((n): n is string => typeof n === 'string' && n !== '');
}

/**
 * Adds why a provider with `tokenAttributes` was skipped to the lookup's problems (the chain lists
 * only failed providers): without a token source (`--token-request`), a required ServiceAccount
 * annotation or a ServiceAccount at all, the answer would otherwise not say why the provider the
 * node configures gave nothing.
 */
function withTokenModeSkips(lookup: PullCredentialLookup): PullCredentialLookup {
  const skips: PullCredentialLookup['problems'] = [];
  for (const r of lookup.pluginResults) {
    if (r.serviceAccountToken === undefined || r.skipped === undefined || r.failed === true) continue;
    const plugin = r.source.plugin ?? '';
    skips.push({
      source: 'plugin',
      plugin,
      code: 'CREDENTIAL_PROVIDER_FAILED',
      message: `credential provider plugin ${quote(plugin)} (service-account token mode, audience ${quote(r.serviceAccountToken.audience)}) skipped: ${r.skipped}`,
    });
  }
  return skips.length === 0 ? lookup : { ...lookup, problems: [...lookup.problems, ...skips] };
}

/** Explains every container of a Pod read from the API server (see the module comment). */
export async function explainClusterPod(
  ctx: PodContext,
  options: ClusterExplainOptions,
): Promise<ClusterPodExplanation> {
  const pod = ctx.pod;
  const refs = podReferences(pod);
  const name = String(pod.metadata?.name ?? '');
  const nodeName = ((pod.spec ?? {}) as Record<string, unknown>).nodeName;
  const node = typeof nodeName === 'string' && nodeName !== '' ? nodeName : undefined;
  const presence: PresenceSource =
    options.runtime !== undefined
      ? { kind: 'runtime', description: options.runtime.description }
      : ctx.node !== undefined && node !== undefined
        ? { kind: 'node-status', node }
        : { kind: 'none', reason: ctx.nodeProblem ?? 'no node' };
  const imageService = options.runtime?.imageService ?? new NodeStatusImages(ctx.node);
  const podCtx: PodCredentialContext = {
    namespace: refs.namespace,
    name,
    uid: refs.uid,
    secrets: ctx.secrets,
  };
  const target = ctx.origin === 'deployment' ? name.replace(/-<template>$/, '') : name;
  const rv = String(pod.metadata?.resourceVersion ?? '');
  const targets = podExplainTargets({ name, namespace: refs.namespace, uid: refs.uid }, pod, asWritten(pod), {
    ...(options.container !== undefined ? { container: options.container } : {}),
  });
  const containers: ImageExplanation[] = [];
  for (const t of targets) {
    containers.push(
      await explainImage(t, {
        ...options.deps,
        imageService,
        credentials: async (image) => withTokenModeSkips(await options.lookup(image, podCtx)),
      }),
    );
  }
  const missing = missingSecretNames(ctx.secrets);
  return {
    target: { kind: ctx.origin, namespace: refs.namespace, name: target },
    pod: {
      name,
      namespace: refs.namespace,
      uid: refs.uid,
      ...(node !== undefined ? { node } : {}),
      serviceAccount: refs.serviceAccount,
    },
    sources: {
      pod:
        ctx.origin === 'deployment'
          ? `API server: deployments.apps ${refs.namespace}/${target} (its pod template)`
          : `API server: pods ${refs.namespace}/${name}${rv !== '' ? ` (resourceVersion ${rv})` : ''}`,
      credentials: `API server: the Secrets the pod${refs.secrets.length === 0 ? `'s ServiceAccount ${refs.serviceAccount}` : ''} references, in namespace ${refs.namespace} only${options.runtime !== undefined ? "; this node's docker config and credential plugins" : ''}`,
      presence:
        presence.kind === 'runtime'
          ? `this node's runtime (${presence.description})`
          : presence.kind === 'node-status'
            ? `Node.status.images of node ${presence.node} (the kubelet's last report, at most 50 images by default: "not listed" is not proof of absence)`
            : `not known: ${presence.reason}`,
      registry:
        options.deps.registry !== undefined
          ? "the registry, asked now with the pod's credentials (--resolve)"
          : 'not contacted (pass --resolve to ask what the tag resolves to now)',
    },
    secrets: secretRows(ctx.secrets, pod, ctx.serviceAccount),
    warnings:
      missing.length > 0
        ? [{ reason: 'FailedToRetrieveImagePullSecret', message: missingSecretsMessage(missing) }]
        : [],
    reported: reportedStatuses(pod),
    containers,
  };
}
