/**
 * Putting the credential sources together the way kubelet does for one pull
 * (`pkg/kubelet/images/image_manager.go` `makeLookupPullCredentialsFunc`,
 * `pkg/kubelet/kuberuntime/kuberuntime_image.go` `PullImage`):
 *
 *     keyring = Union{ pod Secrets, Union{ node docker config, exec plugins } }
 *
 * (a) the pod's pull Secrets (with the ServiceAccount's when the pod lists none), (b) the node-wide
 * docker config from kubelet's search path plus kimg's `--docker-config` files, (c) the exec plugins
 * asked about the image. The matches are tried in that order, one pull attempt per credential, until
 * one succeeds; with no match the pull is attempted once without credentials. Once any credential
 * matched there is no anonymous attempt.
 */
import { isKimgError, KimgError, quote, type KimgErrorCode } from '../errors/index.js';
import type { DockerConfig, NodeDockerConfig } from './docker-config.js';
import type { PluginManager, PluginPodContext, PluginProblem, ProvideResult } from './exec-provider.js';
import type { PodPullSecrets, PullSecretProblem } from './k8s-objects.js';
import {
  imageRepository,
  Keyring,
  type CredentialMatch,
  type CredentialSource,
  type NearMiss,
} from './keyring.js';

/** Every credential source of one lookup. All optional. */
export interface PullCredentialSources {
  /** The pod's pull Secrets (`resolvePodPullSecrets` or `pullSecretsFromObjects`). */
  podSecrets?: PodPullSecrets;
  /** The node-wide docker config (`loadNodeDockerConfig`). */
  node?: NodeDockerConfig;
  /** Docker configs named on the command line (`--docker-config`); they join the node group. */
  dockerConfigs?: readonly DockerConfig[];
  /** Exec credential plugins. */
  plugins?: PluginManager;
  /** The pod, for plugins in service-account token mode. */
  pod?: PluginPodContext;
}

/** A reason a source contributed nothing (missing Secret, wrong type, invalid node file, plugin failure). */
export type CredentialProblem =
  | (PullSecretProblem & { source: 'secret' })
  | (PluginProblem & { source: 'plugin' })
  | {
      source: 'node';
      kind: 'node-config-invalid';
      code: 'DOCKER_CONFIG_INVALID';
      file: string;
      message: string;
    };

/** `lookupPullCredentials` result. */
export interface PullCredentialLookup {
  image: string;
  /** The normalized repository the keyring matched (`docker.io/library/nginx`). */
  repository: string;
  /** The credentials to try, in order. */
  matches: CredentialMatch[];
  /** Keys that did not match and why (filled when `explain` is set). */
  nearMisses: NearMiss[];
  problems: CredentialProblem[];
  /** Plugin answers, including skipped providers (for explain output). */
  pluginResults: ProvideResult[];
}

/**
 * A keyring with the static sources (pod Secrets, node config, `--docker-config` files). Plugins are
 * asked per image by `lookupPullCredentials`.
 */
export function buildKeyring(sources: Omit<PullCredentialSources, 'plugins' | 'pod'>): Keyring {
  const keyring = new Keyring();
  for (const s of sources.podSecrets?.secrets ?? []) {
    const source: CredentialSource = {
      kind: s.via === 'pod' ? 'secret' : 'service-account',
      namespace: s.namespace,
      name: s.name,
      file: s.file,
      ...(s.uid !== undefined ? { uid: s.uid } : {}),
      ...(s.serviceAccount !== undefined ? { serviceAccount: s.serviceAccount } : {}),
    };
    keyring.add(s.config.entries, source);
  }
  const nodeConfig = sources.node?.config;
  if (nodeConfig !== undefined)
    keyring.add(nodeConfig.entries, {
      kind: 'node',
      ...(nodeConfig.file !== undefined ? { file: nodeConfig.file } : {}),
    });
  for (const c of sources.dockerConfigs ?? [])
    keyring.add(c.entries, { kind: 'flag', ...(c.file !== undefined ? { file: c.file } : {}) });
  return keyring;
}

/**
 * The credentials kubelet would try for `image`, in order, with the reasons some sources gave none.
 * With `explain`, also every near miss (`all` lists every non-matching key).
 *
 * @throws KimgError with a reference code when `image` does not parse. Plugin failures and ignored
 * Secrets are reported in `problems`, not thrown.
 */
export async function lookupPullCredentials(
  image: string,
  sources: PullCredentialSources,
  options: { explain?: boolean; all?: boolean; keyring?: Keyring } = {},
): Promise<PullCredentialLookup> {
  const repository = imageRepository(image);
  const keyring = (options.keyring ?? buildKeyring(sources)).clone();
  const problems: CredentialProblem[] = [];
  for (const p of sources.podSecrets?.problems ?? []) problems.push({ ...p, source: 'secret' });
  for (const s of sources.node?.searched ?? []) {
    if (s.outcome === 'invalid' || s.outcome === 'unreadable') {
      problems.push({
        source: 'node',
        kind: 'node-config-invalid',
        code: 'DOCKER_CONFIG_INVALID',
        file: s.path,
        message: `skipped ${s.path}: ${s.reason ?? s.outcome}`,
      });
    }
  }
  let pluginResults: ProvideResult[] = [];
  if (sources.plugins !== undefined) {
    const r = await sources.plugins.provide(repository, sources.pod);
    pluginResults = r.results;
    for (const res of r.results) keyring.add(res.entries, res.source);
    for (const p of r.problems) problems.push({ ...p, source: 'plugin' });
  }
  if (options.explain === true) {
    const ex = keyring.explainRepository(repository, { all: options.all === true });
    return { image, repository, matches: ex.matches, nearMisses: ex.nearMisses, problems, pluginResults };
  }
  return {
    image,
    repository,
    matches: keyring.lookupRepository(repository),
    nearMisses: [],
    problems,
    pluginResults,
  };
}

/** A short, credential-free description of a source: `secret default/regcred`, `node /root/.docker/config.json`. */
export function describeSource(s: CredentialSource): string {
  switch (s.kind) {
    case 'secret':
      return `secret ${s.namespace ?? ''}/${s.name ?? ''}`;
    case 'service-account':
      return `secret ${s.namespace ?? ''}/${s.name ?? ''} (via serviceaccount ${s.serviceAccount ?? ''})`;
    case 'node':
      return `node ${s.file ?? ''}`.trimEnd();
    case 'flag':
      return `docker-config ${s.file ?? ''}`.trimEnd();
    case 'plugin':
      return s.pluginServiceAccount !== undefined
        ? `plugin ${s.plugin ?? ''} (serviceaccount ${s.pluginServiceAccount.namespace}/${s.pluginServiceAccount.name})`
        : `plugin ${s.plugin ?? ''}`;
  }
}

const AUTH_CODES: readonly KimgErrorCode[] = ['UNAUTHORIZED', 'DENIED', 'TOKEN_REFUSED'];

/**
 * kubelet's credential loop (`kuberuntime PullImage`): with no match, one `attempt(undefined)`;
 * otherwise `attempt(match)` for each match in order until one succeeds. Returns the result and the
 * credential used.
 *
 * @throws the single error as is when only one attempt was made; otherwise a KimgError naming every
 * key tried (never a password): `NO_CREDENTIALS_ACCEPTED` when every attempt was refused for
 * authentication (`UNAUTHORIZED`, `DENIED`, `TOKEN_REFUSED`), else the code of the first other failure;
 * the message lists each attempt's error, de-duplicated, as kubelet's aggregate does.
 */
export async function tryEachCredential<T>(
  matches: readonly CredentialMatch[],
  attempt: (credential: CredentialMatch | undefined) => Promise<T>,
): Promise<{ result: T; credential: CredentialMatch | undefined }> {
  if (matches.length === 0) return { result: await attempt(undefined), credential: undefined };
  const errors: unknown[] = [];
  for (const m of matches) {
    try {
      return { result: await attempt(m), credential: m };
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length === 1) throw errors[0];
  const tried = matches.map((m) => `${m.key} (${describeSource(m.source)})`);
  const texts = [...new Set(errors.map((e) => (e instanceof Error ? e.message : String(e))))];
  const allAuth = errors.every((e) => isKimgError(e, AUTH_CODES as KimgErrorCode[]));
  const firstOther = errors.find((e) => !isKimgError(e, AUTH_CODES as KimgErrorCode[]));
  const code: KimgErrorCode = allAuth
    ? 'NO_CREDENTIALS_ACCEPTED'
    : isKimgError(firstOther)
      ? firstOther.code
      : 'INTERNAL';
  throw new KimgError(
    code,
    `all ${matches.length} matching credentials failed (tried ${tried.map((t) => quote(t)).join(', ')}): [${texts.join(', ')}]`,
    {
      items: tried,
      cause: errors[0],
    },
  );
}
