/**
 * The admission policy file (`kimg admission serve --policy FILE`): which of the two admission
 * behaviours of the Images concept page the webhook applies, and what it does when it cannot.
 *
 *     # kimg admission policy
 *     pinDigests: true          # rewrite image tags to digests ("Image pull operations" / third-party admission)
 *     alwaysPullImages: true    # the AlwaysPullImages admission controller ("Required image pull")
 *     failurePolicy: Fail       # Fail → deny the request when an image cannot be resolved; Ignore → admit it unpinned
 *     dropTag: false            # true: name@sha256:… instead of name:tag@sha256:…
 *     cacheTTL: 5m              # how long a tag → digest resolution is reused
 *     excludeNamespaces: [kube-system]
 *
 * Keys are those of {@link AdmissionPolicy} (plus `cacheTTL` as a Go duration); `apiVersion`/`kind`
 * are accepted and ignored. Every problem is reported at once in one `CONFIG_INVALID`.
 *
 * Source: the Kubernetes `MutatingWebhookConfiguration` `failurePolicy` values (`Fail`/`Ignore`),
 * and kubernetes `plugin/pkg/admission/alwayspullimages` for the plugin it mirrors.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { KimgError, quote } from '../errors/index.js';
import { parseGoDuration } from '../registry/index.js';

/** What the webhook does. */
export interface AdmissionPolicy {
  /** Rewrite `image` fields to `…@sha256:…` resolved at the registry. */
  pinDigests: boolean;
  /** Set `imagePullPolicy: Always` as the AlwaysPullImages admission plugin does. */
  alwaysPullImages: boolean;
  /** `Fail`: deny a request whose images cannot be resolved; `Ignore`: admit it without pinning. */
  failurePolicy: 'Fail' | 'Ignore';
  /** Pin as `name@digest` instead of `name:tag@digest`. */
  dropTag: boolean;
  /** How long a resolution is reused, in milliseconds (0 = ask the registry every time). */
  cacheTTLMs: number;
  /** Namespaces whose requests are admitted unchanged. */
  excludeNamespaces: string[];
}

/**
 * Defaults: pin with tags kept, AlwaysPullImages off (it is opt-in upstream too), `Fail` (the
 * Kubernetes default `failurePolicy`), a 5-minute cache (short enough for a moved tag to be seen
 * within one rollout, long enough that a ReplicaSet's pods do not each ask the registry).
 */
export const DEFAULT_ADMISSION_POLICY: Readonly<AdmissionPolicy> = Object.freeze({
  pinDigests: true,
  alwaysPullImages: false,
  failurePolicy: 'Fail',
  dropTag: false,
  cacheTTLMs: 5 * 60_000,
  excludeNamespaces: [],
});

const KEYS = [
  'apiVersion',
  'kind',
  'pinDigests',
  'alwaysPullImages',
  'failurePolicy',
  'dropTag',
  'cacheTTL',
  'excludeNamespaces',
];

/**
 * Validates a policy object (as parsed from YAML/JSON) over the defaults.
 * @throws KimgError `CONFIG_INVALID` listing every problem (unknown keys, wrong types, bad values).
 */
export function validateAdmissionPolicy(value: unknown, file = '<policy>'): AdmissionPolicy {
  const problems: string[] = [];
  const policy: AdmissionPolicy = { ...DEFAULT_ADMISSION_POLICY, excludeNamespaces: [] };
  if (value === null || value === undefined) return policy;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new KimgError('CONFIG_INVALID', `admission policy ${quote(file)} must be a map of settings`, {
      file,
    });
  }
  const v = value as Record<string, unknown>;
  for (const k of Object.keys(v)) {
    if (!KEYS.includes(k)) problems.push(`unknown key ${quote(k, 80)} (known: ${KEYS.slice(2).join(', ')})`);
  }
  for (const k of ['pinDigests', 'alwaysPullImages', 'dropTag'] as const) {
    const b = v[k];
    if (b === undefined) continue;
    if (typeof b === 'boolean') policy[k] = b;
    else problems.push(`${k} must be true or false, got ${quote(String(b), 80)}`);
  }
  const fp = v['failurePolicy'];
  if (fp !== undefined) {
    if (fp === 'Fail' || fp === 'fail') policy.failurePolicy = 'Fail';
    else if (fp === 'Ignore' || fp === 'ignore') policy.failurePolicy = 'Ignore';
    else problems.push(`failurePolicy must be Fail or Ignore, got ${quote(String(fp), 80)}`);
  }
  const ttl = v['cacheTTL'];
  if (ttl !== undefined) {
    const ms = typeof ttl === 'string' ? parseGoDuration(ttl) : undefined;
    if (ms === undefined || ms < 0)
      problems.push(`cacheTTL must be a duration like "5m", "30s" or "0", got ${quote(String(ttl), 80)}`);
    else policy.cacheTTLMs = ms;
  }
  const ns = v['excludeNamespaces'];
  if (ns !== undefined) {
    if (Array.isArray(ns) && ns.every((n) => typeof n === 'string' && n !== ''))
      policy.excludeNamespaces = [...(ns as string[])];
    else problems.push('excludeNamespaces must be a list of namespace names');
  }
  if (problems.length > 0) {
    throw new KimgError(
      'CONFIG_INVALID',
      `admission policy ${quote(file)} is invalid: ${problems.join('; ')}`,
      { file, items: problems },
    );
  }
  return policy;
}

/**
 * Parses a policy file's text (YAML or JSON).
 * @throws KimgError `CONFIG_INVALID` for a syntax error or any invalid setting.
 */
export function parseAdmissionPolicy(text: string, file = '<policy>'): AdmissionPolicy {
  let value: unknown;
  try {
    value = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (e) {
    throw new KimgError(
      'CONFIG_INVALID',
      `admission policy ${quote(file)} is not valid YAML: ${(e as Error).message.split('\n')[0] ?? ''}`,
      { file, cause: e },
    );
  }
  return validateAdmissionPolicy(value, file);
}

/**
 * Reads and parses a policy file.
 * @throws KimgError `FILE_NOT_FOUND`, `CONFIG_INVALID`.
 */
export async function loadAdmissionPolicy(file: string): Promise<AdmissionPolicy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KimgError(
      code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'CONFIG_INVALID',
      `admission policy ${quote(file)} cannot be read (${code ?? 'error'})`,
      { file, cause: e },
    );
  }
  return parseAdmissionPolicy(text, file);
}
