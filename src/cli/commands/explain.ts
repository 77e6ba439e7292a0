/**
 * `kimg explain IMAGE | -f POD.yaml [--container NAME] [--resolve]`: the kubelet's decision chain for
 * each container's image, step by step, without pulling anything:
 *
 * 1. the reference as parsed (input, canonical form, the tag-defaulted name the kubelet sends, the
 *    name the store keeps it under);
 * 2. the pull policy and whether the API server defaulted it (and why: no tag, `latest`, another tag,
 *    a digest), or set it to `Always` for AlwaysPullImages;
 * 3. presence in the local store (image id, the names it is stored under);
 * 4. the credentials that would be tried, in order (key, user name, source; never passwords), and
 *    the keys that nearly matched with the reason;
 * 5. the back-off state kept under the store root (in back-off until when, last error);
 * 6. the pull decision (`decidePull`) and "next: …" in plain words.
 *
 * No registry request unless `--resolve`: then the tag is resolved now (HEAD, with the first matching
 * credential) and compared with the present image (what `Always` would do: an unchanged digest costs
 * one manifest request and no blob).
 *
 * `-o json|yaml`: one {@link ImageExplanation} for IMAGE, a list (one per container, every Pod of the
 * files) for `-f`. An invalid image name is explained (reference.valid false), not an error.
 *
 * Source: kubernetes `pkg/apis/core/v1/defaults.go`, `pkg/kubelet/images/image_manager.go`; sections 2,
 * 3 and 5 of the upstream-semantics digest.
 */
import type { Command } from 'commander';
import { resolveFeatureGates } from '../../config/index.js';
import { describeSource, type KubeObject, type PullCredentialLookup } from '../../credentials/index.js';
import { KimgError, toKimgError } from '../../errors/index.js';
import {
  FileBackoffStore,
  FilePullRecords,
  LocalImageService,
  PullRecordsVerifier,
  type VerificationExplanation,
  PullBackoff,
  backoffKey,
  decidePull,
  defaultPullPolicy,
  isPullPolicy,
  type BackoffEntry,
  type ImageInfo,
  type PullDecision,
} from '../../manager/index.js';
import { applyDefaultTag, parseImageName, tryParseReference } from '../../reference/index.js';
import { RegistryClient } from '../../registry/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toYaml } from '../output.js';
import {
  addPodOptions,
  loadCliNodeConfig,
  loadCredentialSetup,
  loadPods,
  lookupForPod,
  type CredentialSetup,
  type LoadedPod,
  type PodCliOptions,
} from '../pod-options.js';
import { addRegistryOptions, registryClientOptions, type RegistryCliOptions } from '../registry-options.js';
import { addStoreOptions, withStore, type StoreCliOptions } from '../store-options.js';
import { humanDuration } from './ensure.js';
import type { RegisterCommand } from './index.js';

interface ExplainCliOptions extends PodCliOptions, RegistryCliOptions, StoreCliOptions {
  container?: string;
  pullPolicy?: string;
  resolve?: boolean;
  output: string;
}

/** Why a policy has the value it has. */
export type PolicyOrigin = 'set' | 'defaulted' | 'always-pull-images';

/** One container's explanation (`-o json`). */
export interface ImageExplanation {
  pod?: { name: string; namespace: string; uid: string };
  container?: string;
  image: string;
  reference: {
    valid: boolean;
    error?: { code: string; message: string };
    /** `name:tag[@digest]` (tag `latest` added when neither is given). */
    canonical?: string;
    /** What the kubelet sends in the CRI spec (`busybox` → `busybox:latest`). */
    kubeletImage?: string;
    /** The store's name for it (containerd's normalized pull reference). */
    pullRef?: string;
    registry?: string;
    repository?: string;
    tag?: string;
    digest?: string;
  };
  policy: { value: string; origin: PolicyOrigin; why: string };
  presence: {
    checked: boolean;
    present: boolean;
    imageId?: string;
    names?: string[];
    size?: number;
    error?: string;
  };
  credentials: {
    repository?: string;
    matches: { key: string; username: string; source: string }[];
    nearMisses: { key: string; source: string; reason: string }[];
    problems: string[];
  };
  backoff: { key: string; inBackOff: boolean; backoffSeconds: number; retryAt: string; lastError?: string }[];
  /** Issue F: whether this pod's credentials are verified for the present image, and the record used (redacted). */
  verification?: VerificationExplanation;
  decision?: PullDecision;
  resolved?: {
    digest?: string;
    presentDigest?: string;
    unchanged?: boolean;
    error?: { code: string; message: string };
  };
  next: string;
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

function errorOf(e: unknown): { code: string; message: string } {
  const k = toKimgError(e);
  return { code: k.code, message: k.message };
}

function nextStep(
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

interface Target {
  pod?: LoadedPod;
  container?: string;
  image: string;
  policy: string | undefined;
  origin: PolicyOrigin;
}

async function explainOne(
  t: Target,
  deps: {
    service: LocalImageService;
    backoff: BackoffEntry[];
    setup: CredentialSetup;
    verifying: boolean;
    verifier?: PullRecordsVerifier;
    registry?: RegistryClient;
    nowMs: number;
  },
): Promise<ImageExplanation> {
  const x: ImageExplanation = {
    image: t.image,
    reference: { valid: false },
    policy: { value: '', origin: t.origin, why: '' },
    presence: { checked: false, present: false },
    credentials: { matches: [], nearMisses: [], problems: [] },
    backoff: [],
    next: '',
  };
  if (t.pod !== undefined) x.pod = { name: t.pod.name, namespace: t.pod.namespace, uid: t.pod.uid };
  if (t.container !== undefined) x.container = t.container;
  // 1. The reference.
  let kubeletImage: string | undefined;
  try {
    kubeletImage = applyDefaultTag(t.image);
    const parsed = tryParseReference(t.image);
    if (!parsed.ok) throw parsed.error;
    const r = parsed.reference;
    x.reference = {
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
    x.reference = { valid: false, error: errorOf(e) };
  }
  // 2. The policy.
  const policy = t.policy ?? '';
  x.policy = {
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
  // 3. Presence (the kubelet asks only for IfNotPresent and Never; shown for every policy).
  let info: ImageInfo | undefined;
  if (kubeletImage !== undefined) {
    x.presence.checked = policy === 'IfNotPresent' || policy === 'Never';
    try {
      info = await deps.service.imageStatus({
        image: kubeletImage,
        ...(t.pod?.runtimeHandler !== undefined ? { runtimeHandler: t.pod.runtimeHandler } : {}),
      });
      x.presence.present = info !== undefined;
      if (info !== undefined) {
        x.presence.imageId = info.id;
        x.presence.names = [...info.repoTags, ...info.repoDigests];
        x.presence.size = info.size;
      }
    } catch (e) {
      x.presence.error = errorOf(e).message;
    }
  }
  // 4. Credentials.
  let lookup: PullCredentialLookup | undefined;
  if (x.reference.valid) {
    lookup = await lookupForPod(t.image, deps.setup, t.pod, { explain: true });
    x.credentials = {
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
  // 5. Back-off.
  const key = t.pod !== undefined ? backoffKey(t.pod.uid, t.image) : undefined;
  const entries = deps.backoff.filter((e) => (key !== undefined ? e.key === key : e.image === t.image));
  x.backoff = entries.map((e) => ({
    key: e.key,
    inBackOff: e.inBackOff,
    backoffSeconds: e.backoffMs / 1000,
    retryAt: new Date(e.retryAtMs).toISOString(),
    ...(e.lastError !== undefined ? { lastError: e.lastError } : {}),
  }));
  // 6. Credential verification of a present image (issue F; read-only), then the decision.
  if (x.reference.valid) {
    const present = policy === 'Always' || !isPullPolicy(policy) ? false : x.presence.present;
    let verified: boolean | undefined;
    if (deps.verifying && present && deps.verifier !== undefined && x.presence.imageId !== undefined) {
      const matches = lookup?.matches ?? [];
      x.verification = await deps.verifier.explain(
        kubeletImage ?? t.image,
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
      image: t.image,
      ...(verified !== undefined ? { verified } : {}),
    });
    if (deps.registry !== undefined && x.reference.pullRef !== undefined && x.decision.action === 'pull') {
      x.resolved = {};
      try {
        const r = tryParseReference(t.image);
        if (!r.ok) throw r.error;
        const ref = r.reference;
        const auth = lookup?.matches[0]?.auth ?? null;
        const desc = await deps.registry.resolve(
          {
            domain: ref.domain,
            path: ref.path,
            tag: ref.tag ?? (ref.digest === undefined ? 'latest' : undefined),
            digest: ref.digest,
          },
          { auth },
        );
        x.resolved.digest = desc.digest;
        const rec = await deps.service.store.images.get({
          name: ref.pullRef,
          runtimeHandler: t.pod?.runtimeHandler ?? '',
        });
        if (rec !== undefined) {
          x.resolved.presentDigest = rec.digest;
          x.resolved.unchanged = rec.digest === desc.digest;
        } else x.resolved.unchanged = false;
      } catch (e) {
        x.resolved.error = errorOf(e);
      }
    }
  }
  const inBackOff = entries.find((e) => e.inBackOff);
  x.next = nextStep(x, inBackOff, x.credentials.matches.length, deps.nowMs);
  return x;
}

function formatText(x: ImageExplanation): string {
  const lines: string[] = [];
  const head = x.container !== undefined ? `Container ${x.container}` : 'Image';
  lines.push(
    `${head}: ${x.image}${x.pod !== undefined ? `  (pod ${x.pod.namespace}/${x.pod.name}, uid ${x.pod.uid})` : ''}`,
  );
  if (x.reference.valid) {
    lines.push(`  Reference:    ${x.reference.canonical ?? ''}`);
    lines.push(
      `    kubelet sends ${JSON.stringify(x.reference.kubeletImage ?? '')}; stored as ${x.reference.pullRef ?? ''}`,
    );
  } else {
    lines.push(`  Reference:    invalid: ${x.reference.error?.message ?? ''}`);
  }
  lines.push(`  Policy:       ${x.policy.value} (${x.policy.origin}: ${x.policy.why})`);
  const p = x.presence;
  lines.push(
    `  Present:      ${p.error !== undefined ? `error: ${p.error}` : p.present ? `yes, ${p.imageId ?? ''}${p.names?.length ? ` (${p.names.join(', ')})` : ''}` : 'no'}${p.checked ? '' : ' (the kubelet does not check for this policy)'}`,
  );
  if (x.credentials.matches.length === 0) lines.push('  Credentials:  none match (the pull is anonymous)');
  else {
    lines.push('  Credentials:  tried in this order:');
    x.credentials.matches.forEach((m, i) =>
      lines.push(`    ${i + 1}. ${m.key} user ${JSON.stringify(m.username)} from ${m.source}`),
    );
  }
  for (const n of x.credentials.nearMisses)
    lines.push(`    near miss: ${n.key} from ${n.source}: ${n.reason}`);
  for (const pr of x.credentials.problems) lines.push(`    problem: ${pr}`);
  if (x.backoff.length === 0) lines.push('  Back-off:     none');
  for (const b of x.backoff) {
    lines.push(
      `  Back-off:     ${b.inBackOff ? `in back-off until ${b.retryAt} (window ${b.backoffSeconds}s)` : 'window passed (the next attempt pulls)'} [${b.key}]`,
    );
    if (b.lastError !== undefined) lines.push(`    last error: ${b.lastError}`);
  }
  if (x.resolved !== undefined) {
    lines.push(
      `  Resolved:     ${x.resolved.error !== undefined ? `error: ${x.resolved.error.message}` : `${x.resolved.digest ?? ''}${x.resolved.unchanged ? ' (same as the present image)' : ''}`}`,
    );
  }
  if (x.verification !== undefined)
    lines.push(`  Verification: ${x.verification.summary} [policy ${x.verification.policy}]`);
  if (x.decision !== undefined) lines.push(`  Decision:     ${x.decision.action} (${x.decision.reason})`);
  lines.push(`  Next:         ${x.next}`);
  return lines.join('\n') + '\n';
}

export const registerExplain: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('explain')
    .description(
      "explain the kubelet's decision for an image or each container of a pod: reference, policy, presence, credentials, back-off, next step",
    )
    .argument('[image]', 'an image as written in a pod spec (instead of -f)')
    .option('--container <name>', 'only this container of the pod')
    .option(
      '--pull-policy <policy>',
      'the imagePullPolicy for IMAGE (default: as the API server defaults it)',
    )
    .option('--resolve', 'ask the registry what the tag resolves to now and compare with the present image')
    .option('-o, --output <format>', 'output format: table, json or yaml', 'table');
  addPodOptions(cmd, { fileRequired: false });
  addStoreOptions(cmd);
  addRegistryOptions(cmd).action(async (image: string | undefined, options: ExplainCliOptions) => {
    await run(image, options, ctx);
  });
};

async function run(image: string | undefined, options: ExplainCliOptions, ctx: CliContext): Promise<void> {
  const format = parseOutputFormat(options.output, ['table', 'json', 'yaml']);
  if ((image === undefined) === (options.filename.length === 0)) {
    throw new KimgError('USAGE', 'give either an IMAGE or -f POD.yaml (not both)');
  }
  if (options.creds !== undefined) {
    throw new KimgError(
      'USAGE',
      'kimg explain takes credentials from -f Secrets, the node docker config or --docker-config (not --creds)',
    );
  }
  const config = await loadCliNodeConfig(options.config);
  const targets: Target[] = [];
  let objects: KubeObject[] = [];
  if (image !== undefined) {
    let policy = options.pullPolicy;
    let origin: PolicyOrigin = policy !== undefined ? 'set' : 'defaulted';
    if (options.alwaysPullImages === true) {
      policy = 'Always';
      origin = 'always-pull-images';
    }
    if (policy === undefined) policy = defaultPullPolicy(image);
    targets.push({ image, policy, origin });
  } else {
    const loaded = await loadPods(options, { all: true });
    objects = loaded.objects;
    const rawPods = objects.filter((o) => o.kind === 'Pod');
    for (const pod of loaded.pods) {
      const raw = rawPods.find(
        (o) => o.name === pod.name && (o.namespace ?? 'default') === pod.namespace,
      )?.object;
      for (const list of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
        const defaulted = ((pod.object.spec as Record<string, unknown> | undefined)?.[list] ?? []) as Record<
          string,
          unknown
        >[];
        const original = (((raw?.spec ?? {}) as Record<string, unknown>)[list] ?? []) as Record<
          string,
          unknown
        >[];
        defaulted.forEach((c, i) => {
          const name = typeof c.name === 'string' ? c.name : '';
          if (options.container !== undefined && name !== options.container) return;
          const given = original[i]?.imagePullPolicy;
          const origin: PolicyOrigin =
            options.alwaysPullImages === true
              ? 'always-pull-images'
              : typeof given === 'string' && given !== ''
                ? 'set'
                : 'defaulted';
          targets.push({
            pod,
            container: name,
            image: typeof c.image === 'string' ? c.image : '',
            policy: typeof c.imagePullPolicy === 'string' ? c.imagePullPolicy : undefined,
            origin,
          });
        });
      }
    }
    if (targets.length === 0) {
      throw new KimgError(
        'CONFIG_INVALID',
        options.container !== undefined
          ? `no container ${JSON.stringify(options.container)} in the pod`
          : 'the pod has no containers',
        { input: options.container ?? '' },
      );
    }
  }
  const setup = await loadCredentialSetup(options, config, objects, ctx);
  const registry =
    options.resolve === true
      ? new RegistryClient(
          registryClientOptions(
            {
              ...options,
              ...(options.hostsDir === undefined && config.kimg.hostsDir !== undefined
                ? { hostsDir: config.kimg.hostsDir }
                : {}),
            },
            ctx,
          ),
        )
      : undefined;
  const root = options.root ?? config.kimg.rootDir;
  try {
    const results = await withStore({ ...(root !== undefined ? { root } : {}) }, ctx, async (store) => {
      const service = new LocalImageService({ store, registry: registry ?? new RegistryClient() });
      const backoff = await new PullBackoff({ store: new FileBackoffStore(store.root) }).list();
      const gates = resolveFeatureGates(config.kubelet.featureGates);
      // Read-only: no start-up reconciliation (that is the agent's and `kimg ensure`'s job).
      const verifier = new PullRecordsVerifier({
        records: new FilePullRecords(store.root),
        policy: config.kubelet.imagePullCredentialsVerificationPolicy,
        allowlist: config.kubelet.preloadedImagesVerificationAllowlist,
      });
      const nowMs = Date.now();
      const out: ImageExplanation[] = [];
      for (const t of targets) {
        out.push(
          await explainOne(t, {
            service,
            backoff,
            setup,
            verifying: gates['KubeletEnsureSecretPulledImages'] === true,
            verifier,
            ...(registry !== undefined ? { registry } : {}),
            nowMs,
          }),
        );
      }
      return out;
    });
    if (format === 'json') ctx.stdout.write(toJson(image !== undefined ? results[0] : results));
    else if (format === 'yaml') ctx.stdout.write(toYaml(image !== undefined ? results[0] : results));
    else ctx.stdout.write(results.map(formatText).join('\n'));
  } finally {
    await registry?.close();
  }
}
