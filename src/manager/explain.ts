/**
 * The kubelet's decision chain for one container's image, step by step, as a typed
 * {@link ImageExplanation} every face renders its own way (`kimg explain` as text, JSON or YAML):
 *
 * 1. the reference as parsed (canonical form, the tag-defaulted name the kubelet sends, the name the
 *    store keeps it under);
 * 2. the pull policy and where it comes from (set in the spec, defaulted by the API server and why,
 *    or forced to `Always` by AlwaysPullImages);
 * 3. presence (image id, the names it is stored under);
 * 4. the credentials that would be tried, in order, and the near misses (never passwords);
 * 5. the back-off state;
 * 6. credential verification of a present image (read-only), the pull decision (`decidePull`), and,
 *    when a registry is given, what the tag resolves to now compared with the present image;
 * 7. "next": what the kubelet will do, in plain words.
 *
 * A static pod's container also carries the pod's kimg extensions (pull Secrets, a ServiceAccount:
 * `staticPodExtensions`), the notes `kimg describe pod` prints; whether a pod is a static pod is the
 * caller's `isStaticPod` decision, passed as `podExplainTargets`' `staticPod`.
 *
 * Nothing is pulled or written. Source: kubernetes `pkg/apis/core/v1/defaults.go`,
 * `pkg/kubelet/images/image_manager.go`.
 */
import { describeSource, type AuthConfig, type PullCredentialLookup } from '../credentials/index.js';
import { toKimgError } from '../errors/index.js';
import { applyDefaultTag, tryParseReference } from '../reference/index.js';
import type { RegistryClient } from '../registry/index.js';
import { recordsForReference, type ImageStore } from '../store/index.js';
import { backoffKey } from './backoff.js';
import type { BackoffEntry } from './backoff-store.js';
import { defaultPullPolicy, isPullPolicy } from './defaulting.js';
import { defaultPolicyWhy, nextStep } from './explain-text.js';
import type { ImageInfo, ImageService } from './image-service.js';
import type { ExplainPod, ExplainTarget, ImageExplanation, PolicyOrigin } from './explain-types.js';
import { decidePull } from './policy.js';
import { staticPodExtensions } from './static-pods.js';
import type { PullRecordsVerifier } from './verification/index.js';

export type { PolicyOrigin, ExplainPod, ExplainTarget, ImageExplanation } from './explain-types.js';

/** What {@link explainImage} reads. */
export interface ExplainDeps {
  imageService: Pick<ImageService, 'imageStatus'>;
  /** Every back-off entry (`PullBackoff.list()`). */
  backoff: readonly BackoffEntry[];
  /** The credential lookup for the target's pod, with near misses (`PodCredentials.lookup`, explain). */
  credentials: (image: string, pod: ExplainPod | undefined) => Promise<PullCredentialLookup>;
  /** Whether the `KubeletEnsureSecretPulledImages` gate is on. */
  verifying: boolean;
  verifier?: Pick<PullRecordsVerifier, 'explain'>;
  /** Given: the tag is resolved now (one HEAD) and compared with the record in `records`. */
  registry?: Pick<RegistryClient, 'resolve'>;
  records?: Pick<ImageStore, 'get' | 'list'>;
  nowMs: number;
}

/** The target for a bare image: `pullPolicy` as given, else as the API server defaults it. */
export function imageExplainTarget(
  image: string,
  options: { pullPolicy?: string; alwaysPullImages?: boolean } = {},
): ExplainTarget {
  if (options.alwaysPullImages === true) return { image, policy: 'Always', origin: 'always-pull-images' };
  if (options.pullPolicy !== undefined) return { image, policy: options.pullPolicy, origin: 'set' };
  return { image, policy: defaultPullPolicy(image), origin: 'defaulted' };
}

type Obj = Record<string, unknown>;

/**
 * The targets of a pod: every init, regular and ephemeral container (or only `container`), the
 * policy taken from the defaulted pod and its origin from the pod as written. `staticPod` (see
 * `isStaticPod`): each target carries the pod's kimg extensions, resolved from `objectsOrigin`
 * (default the agent's secrets directory).
 */
export function podExplainTargets(
  pod: ExplainPod,
  defaulted: Obj,
  original: Obj | undefined,
  options: {
    container?: string;
    alwaysPullImages?: boolean;
    staticPod?: boolean;
    /** Where the pod's Secrets and ServiceAccount come from, for the extension notes. */
    objectsOrigin?: string;
  } = {},
): ExplainTarget[] {
  const out: ExplainTarget[] = [];
  const extensions = options.staticPod === true ? staticPodExtensions(defaulted, options.objectsOrigin) : [];
  for (const list of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    const containers = (((defaulted.spec ?? {}) as Obj)[list] ?? []) as Obj[];
    const written = (((original?.spec ?? {}) as Obj)[list] ?? []) as Obj[];
    containers.forEach((c, i) => {
      const name = typeof c.name === 'string' ? c.name : '';
      if (options.container !== undefined && name !== options.container) return;
      const given = written[i]?.imagePullPolicy;
      const origin: PolicyOrigin =
        options.alwaysPullImages === true
          ? 'always-pull-images'
          : typeof given === 'string' && given !== ''
            ? 'set'
            : 'defaulted';
      out.push({
        pod,
        container: name,
        image: typeof c.image === 'string' ? c.image : '',
        policy: typeof c.imagePullPolicy === 'string' ? c.imagePullPolicy : undefined,
        origin,
        ...(extensions.length > 0 ? { extensions: [...extensions] } : {}),
      });
    });
  }
  return out;
}

function errorOf(e: unknown): { code: string; message: string } {
  const k = toKimgError(e);
  return { code: k.code, message: k.message };
}

function explainReference(image: string): ImageExplanation['reference'] {
  try {
    const kubeletImage = applyDefaultTag(image);
    const parsed = tryParseReference(image);
    if (!parsed.ok) throw parsed.error;
    const r = parsed.reference;
    return {
      valid: true,
      canonical: r.canonical,
      kubeletImage,
      pullRef: r.pullRef,
      registry: r.domain,
      repository: r.path,
      ...(r.tag !== undefined ? { tag: r.tag } : {}),
      ...(r.digest !== undefined ? { digest: r.digest } : {}),
    };
  } catch (e) {
    return { valid: false, error: errorOf(e) };
  }
}

function explainPolicy(t: ExplainTarget): ImageExplanation['policy'] {
  const policy = t.policy ?? '';
  return {
    value: policy,
    origin: t.origin,
    why:
      t.origin === 'always-pull-images'
        ? 'the AlwaysPullImages admission plugin sets Always on every container'
        : t.origin === 'defaulted'
          ? `imagePullPolicy was not set; ${defaultPolicyWhy(t.image)}`
          : isPullPolicy(policy)
            ? 'set in the pod spec'
            : `set in the pod spec to ${JSON.stringify(policy)}, which the kubelet treats like Always`,
  };
}

/** Presence (the kubelet asks only for IfNotPresent and Never; shown for every policy). */
async function explainPresence(
  t: ExplainTarget,
  kubeletImage: string,
  service: ExplainDeps['imageService'],
): Promise<ImageExplanation['presence']> {
  const policy = t.policy ?? '';
  const presence: ImageExplanation['presence'] = {
    checked: policy === 'IfNotPresent' || policy === 'Never',
    present: false,
  };
  try {
    const info: ImageInfo | undefined = await service.imageStatus({
      image: kubeletImage,
      ...(t.pod?.runtimeHandler !== undefined ? { runtimeHandler: t.pod.runtimeHandler } : {}),
    });
    presence.present = info !== undefined;
    if (info !== undefined) {
      presence.imageId = info.id;
      presence.names = [...info.repoTags, ...info.repoDigests];
      presence.size = info.size;
    }
  } catch (e) {
    presence.error = errorOf(e).message;
  }
  return presence;
}

function explainCredentials(lookup: PullCredentialLookup): ImageExplanation['credentials'] {
  return {
    repository: lookup.repository,
    matches: lookup.matches.map((m) => ({
      key: m.key,
      username: m.auth.username ?? '',
      source: describeSource(m.source),
    })),
    nearMisses: lookup.nearMisses.map((n) => ({
      key: n.key,
      source: describeSource(n.source),
      reason: n.message,
    })),
    problems: lookup.problems.map((p) => p.message),
  };
}

/** What the tag resolves to now, compared with the present record (what `Always` would do). */
async function explainResolved(
  t: ExplainTarget,
  auth: AuthConfig | null,
  registry: NonNullable<ExplainDeps['registry']>,
  records: ExplainDeps['records'],
): Promise<NonNullable<ImageExplanation['resolved']>> {
  const resolved: NonNullable<ImageExplanation['resolved']> = {};
  try {
    const r = tryParseReference(t.image);
    if (!r.ok) throw r.error;
    const ref = r.reference;
    const desc = await registry.resolve(
      {
        domain: ref.domain,
        path: ref.path,
        tag: ref.tag ?? (ref.digest === undefined ? 'latest' : undefined),
        digest: ref.digest,
      },
      { auth },
    );
    resolved.digest = desc.digest;
    const rec =
      records === undefined
        ? undefined
        : (await recordsForReference(records, ref, t.pod?.runtimeHandler ?? ''))[0];
    if (rec !== undefined) {
      resolved.presentDigest = rec.digest;
      resolved.unchanged = rec.digest === desc.digest;
    } else resolved.unchanged = false;
  } catch (e) {
    resolved.error = errorOf(e);
  }
  return resolved;
}

/** Verification of a present image (read-only), then the pull decision. */
async function explainDecision(
  x: ImageExplanation,
  lookup: PullCredentialLookup | undefined,
  deps: ExplainDeps,
): Promise<void> {
  const policy = x.policy.value;
  const present = policy === 'Always' || !isPullPolicy(policy) ? false : x.presence.present;
  let verified: boolean | undefined;
  if (deps.verifying && present && deps.verifier !== undefined && x.presence.imageId !== undefined) {
    const matches = lookup?.matches ?? [];
    x.verification = await deps.verifier.explain(
      x.reference.kubeletImage ?? x.image,
      x.presence.imageId,
      async () => matches,
    );
    verified = !x.verification.verdict.mustPull;
  } else if (deps.verifying && present) {
    verified = true;
  }
  x.decision = decidePull({
    policy,
    present,
    image: x.image,
    ...(verified !== undefined ? { verified } : {}),
  });
}

/**
 * Explains one target (see the module comment). Never throws for the image itself: an invalid name is
 * explained (`reference.valid` false); presence and resolution errors are part of the result.
 */
export async function explainImage(t: ExplainTarget, deps: ExplainDeps): Promise<ImageExplanation> {
  const x: ImageExplanation = {
    image: t.image,
    reference: explainReference(t.image),
    policy: explainPolicy(t),
    presence: { checked: false, present: false },
    credentials: { matches: [], nearMisses: [], problems: [] },
    backoff: [],
    next: '',
  };
  if (t.pod !== undefined) x.pod = { name: t.pod.name, namespace: t.pod.namespace, uid: t.pod.uid };
  if (t.container !== undefined) x.container = t.container;
  if (t.extensions !== undefined && t.extensions.length > 0) x.extensions = [...t.extensions];
  let kubeletImage: string | undefined;
  try {
    kubeletImage = applyDefaultTag(t.image);
  } catch {
    // an invalid name: nothing to look up
  }
  if (kubeletImage !== undefined) x.presence = await explainPresence(t, kubeletImage, deps.imageService);
  let lookup: PullCredentialLookup | undefined;
  if (x.reference.valid) {
    lookup = await deps.credentials(t.image, t.pod);
    x.credentials = explainCredentials(lookup);
  }
  const key = t.pod !== undefined ? backoffKey(t.pod.uid, t.image) : undefined;
  const entries = deps.backoff.filter((e) => (key !== undefined ? e.key === key : e.image === t.image));
  x.backoff = entries.map((e) => ({
    key: e.key,
    inBackOff: e.inBackOff,
    backoffSeconds: e.backoffMs / 1000,
    retryAt: new Date(e.retryAtMs).toISOString(),
    ...(e.lastError !== undefined ? { lastError: e.lastError } : {}),
  }));
  if (x.reference.valid) {
    await explainDecision(x, lookup, deps);
    if (deps.registry !== undefined && x.reference.pullRef !== undefined && x.decision?.action === 'pull')
      x.resolved = await explainResolved(t, lookup?.matches[0]?.auth ?? null, deps.registry, deps.records);
  }
  const inBackOff = entries.find((e) => e.inBackOff);
  x.next = nextStep(x, inBackOff, x.credentials.matches.length, deps.nowMs);
  return x;
}
