/**
 * The kubelet's per-pod credential lookup (`pkg/kubelet/images/image_manager.go`
 * `makeLookupPullCredentialsFunc`) as one object every face shares: the pod's pull Secrets (or its
 * ServiceAccount's), the node-wide docker config (kubelet's search path, cached 5 minutes), docker
 * config files given on the command line, and the exec credential plugins — whose service-account
 * token mode looks the pod's ServiceAccount up among the same Kubernetes objects the Secrets come from.
 *
 * The objects are replaceable (`setObjects`): the node agent re-reads its secrets directory at every
 * sync, a CLI command reads its `-f` manifests once. Pods' Secrets are registered by uid
 * (`setPodSecrets`), so the image manager's resolver — called with the pod's uid only — finds them.
 */
import type { ServiceAccountTokenRequest, TokenSource } from './token-source.js';
import { KimgError } from '../errors/index.js';
import {
  CachedNodeDockerConfig,
  DEFAULT_KUBELET_ROOT_DIR,
  type DockerConfig,
  type NodeDockerConfig,
} from './docker-config.js';
import {
  PluginManager,
  type ServiceAccountInfo,
  type SpawnPlugin,
  type PluginPodContext,
} from './exec-provider.js';
import type { KubeObject, PodPullSecrets } from './k8s-objects.js';
import type { CredentialMatch, CredentialSource } from './keyring.js';
import { lookupPullCredentials, type CredentialProblem, type PullCredentialLookup } from './resolve.js';

/** The pod a lookup is for. */
export interface PodCredentialContext {
  namespace: string;
  name: string;
  /** `metadata.uid` (plugins' token mode binds to it); may be empty. */
  uid: string;
  /** The pod's pull Secrets; default those registered for `uid` (`setPodSecrets`), else none. */
  secrets?: PodPullSecrets;
}

/** The exec credential plugins to load (the kubelet's two flags). */
export interface PodCredentialPluginOptions {
  /** `--image-credential-provider-config`: a file or a directory. */
  configPath: string;
  /** `--image-credential-provider-bin-dir`. */
  binDir: string;
  /** Runs a plugin (metrics wrap it); default `spawnPlugin`. */
  spawn?: SpawnPlugin;
  /**
   * Service-account tokens for providers with `tokenAttributes` (projected token files, or the
   * TokenRequest API in cluster mode). Without one such providers are skipped, and say why.
   */
  tokenSource?: TokenSource;
  /**
   * Looks up a pod's ServiceAccount for those providers (the API server's, in cluster mode); default
   * the ServiceAccounts among the objects.
   */
  getServiceAccount?: (namespace: string, name: string, podUid: string) => Promise<ServiceAccountInfo>;
}

/** Options of {@link PodCredentials.open}. */
export interface PodCredentialsOptions {
  /** Environment of the node docker config search and the plugins. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /**
   * The node-wide docker config: `false` = not searched; otherwise the kubelet root directory that
   * starts the search (default `/var/lib/kubelet`). Default searched.
   */
  nodeDockerConfig?: false | { rootDir?: string };
  /** Docker config files given on the command line (`--docker-config`): they join the node group. */
  dockerConfigs?: readonly DockerConfig[];
  /** The exec plugins; none when unset. */
  plugins?: PodCredentialPluginOptions;
  /** The Kubernetes objects Secrets and ServiceAccounts are looked up in. Default none. */
  objects?: readonly KubeObject[];
  /** Where those objects come from, for messages (`the manifests`, `the secrets directory`). */
  objectsOrigin?: string;
}

/** What {@link PodCredentials.candidates} returns: the image manager's `CredentialCandidate` shape. */
export interface PodCredentialCandidate {
  key: string;
  auth: CredentialMatch['auth'];
  source: CredentialSource;
}

/**
 * A ServiceAccount lookup over Kubernetes objects (the plugins' token mode).
 * @throws KimgError `SECRET_NOT_FOUND` naming the ServiceAccount and where it was looked for.
 */
export function serviceAccountFromObjects(
  objects: () => readonly KubeObject[],
  origin: string,
): (namespace: string, name: string) => Promise<ServiceAccountInfo> {
  return async (namespace, name) => {
    const sa = objects().find(
      (o) => o.kind === 'ServiceAccount' && o.name === name && (o.namespace ?? 'default') === namespace,
    );
    if (sa === undefined)
      throw new KimgError('SECRET_NOT_FOUND', `ServiceAccount ${namespace}/${name} is not in ${origin}`);
    const meta = (sa.object.metadata ?? {}) as Record<string, unknown>;
    const annotations = (
      typeof meta.annotations === 'object' && meta.annotations !== null ? meta.annotations : {}
    ) as Record<string, string>;
    return { uid: typeof meta.uid === 'string' ? meta.uid : '', annotations };
  };
}

/** The credential sources of a node (or one CLI invocation) and the per-pod lookup over them. */
export class PodCredentials {
  private pluginManager: PluginManager | undefined;
  private objectList: readonly KubeObject[];
  private readonly podSecrets = new Map<string, PodPullSecrets>();

  private constructor(
    private readonly node: CachedNodeDockerConfig | undefined,
    private readonly dockerConfigs: readonly DockerConfig[],
    objects: readonly KubeObject[],
  ) {
    this.objectList = objects;
  }

  /**
   * Searches the node docker config once (later lookups reuse it for 5 minutes) and loads the plugins
   * as the kubelet does at start-up.
   * @throws KimgError `CREDENTIAL_PROVIDER_CONFIG_INVALID`, `FILE_NOT_FOUND` (plugins).
   */
  static async open(options: PodCredentialsOptions = {}): Promise<PodCredentials> {
    const env = options.env ?? process.env;
    const node =
      options.nodeDockerConfig !== false
        ? new CachedNodeDockerConfig({
            env,
            rootDir: options.nodeDockerConfig?.rootDir ?? DEFAULT_KUBELET_ROOT_DIR,
          })
        : undefined;
    await node?.get();
    const creds = new PodCredentials(node, options.dockerConfigs ?? [], options.objects ?? []);
    const plugins = options.plugins;
    if (plugins !== undefined) {
      creds.pluginManager = await PluginManager.load({
        configPath: plugins.configPath,
        binDir: plugins.binDir,
        environ: env,
        ...(plugins.spawn !== undefined ? { spawn: plugins.spawn } : {}),
        // Token mode: the ServiceAccount is looked up in the objects current at the lookup.
        getServiceAccount:
          plugins.getServiceAccount ??
          serviceAccountFromObjects(() => creds.objectList, options.objectsOrigin ?? 'the manifests'),
        ...(plugins.tokenSource !== undefined
          ? { getServiceAccountToken: (r: ServiceAccountTokenRequest) => plugins.tokenSource!.token(r) }
          : {}),
      });
    }
    return creds;
  }

  /** The exec plugins, when configured. */
  get plugins(): PluginManager | undefined {
    return this.pluginManager;
  }

  /** The Kubernetes objects Secrets and ServiceAccounts are looked up in. */
  get objects(): readonly KubeObject[] {
    return this.objectList;
  }

  /** Replaces the objects (a re-read secrets directory). */
  setObjects(objects: readonly KubeObject[]): void {
    this.objectList = objects;
  }

  /** Registers a pod's pull Secrets under its uid (the manager's resolver finds them by uid). */
  setPodSecrets(uid: string, secrets: PodPullSecrets): void {
    this.podSecrets.set(uid, secrets);
  }

  /** Forgets a pod's Secrets (the pod is gone). */
  forgetPod(uid: string): void {
    this.podSecrets.delete(uid);
  }

  /** The node-wide docker config (cached search result), when searched. */
  nodeDockerConfig(): Promise<NodeDockerConfig | undefined> {
    return this.node?.get() ?? Promise.resolve(undefined);
  }

  /**
   * The credentials the kubelet would try for `image` and `pod`, in order, with the problems of the
   * sources (`explain`: near misses too; `all`: every non-matching key; `secrets`: the pull Secrets
   * of a lookup without a pod, e.g. every Secret of some manifests).
   * @throws KimgError a reference code when `image` does not parse.
   */
  async lookup(
    image: string,
    pod?: PodCredentialContext,
    options: { explain?: boolean; all?: boolean; secrets?: PodPullSecrets } = {},
  ): Promise<PullCredentialLookup> {
    const secrets = pod !== undefined ? (pod.secrets ?? this.podSecrets.get(pod.uid)) : options.secrets;
    const node = await this.nodeDockerConfig();
    const podContext: PluginPodContext | undefined =
      pod !== undefined
        ? {
            podNamespace: pod.namespace,
            podName: pod.name,
            podUid: pod.uid,
            serviceAccountName: secrets?.serviceAccountName ?? 'default',
          }
        : undefined;
    return lookupPullCredentials(
      image,
      {
        ...(secrets !== undefined ? { podSecrets: secrets } : {}),
        ...(node !== undefined ? { node } : {}),
        dockerConfigs: this.dockerConfigs,
        ...(this.plugins !== undefined ? { plugins: this.plugins } : {}),
        ...(podContext !== undefined ? { pod: podContext } : {}),
      },
      { explain: options.explain === true, all: options.all === true },
    );
  }

  /**
   * The image manager's credential resolver: the matches for `image` and the pod (its registered
   * Secrets), problems passed to `onProblem`.
   */
  resolver(
    onProblem: (problem: CredentialProblem, pod: PodCredentialContext) => void = () => {},
  ): (image: string, pod: PodCredentialContext) => Promise<PodCredentialCandidate[]> {
    return async (image, pod) => {
      // The kubelet builds the pod's keyring when it pulls; an undecodable Secret fails that pull.
      const keyringError = this.podSecrets.get(pod.uid)?.keyringError;
      if (keyringError !== undefined) throw keyringError;
      const lookup = await this.lookup(image, { namespace: pod.namespace, name: pod.name, uid: pod.uid });
      for (const p of lookup.problems) onProblem(p, pod);
      return lookup.matches.map((m) => ({ key: m.key, auth: m.auth, source: { ...m.source } }));
    };
  }
}
