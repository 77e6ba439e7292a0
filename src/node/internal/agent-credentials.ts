/**
 * The pods' pull credentials in the agent. Static pods cannot reference API objects, so their pull
 * Secrets and ServiceAccounts come from a directory of Kubernetes YAML (`secretsDir`), re-read at every
 * sync (a Secret written later is seen; an unreadable directory keeps the last objects read). Each
 * pod's Secrets are resolved at its sync and registered under its uid, where the image manager's
 * credential lookup — the pod's Secrets, the node-wide docker config, the exec plugins — finds them.
 * Problems (a missing Secret, an invalid node config) are logged once each.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CachedNodeDockerConfig,
  DEFAULT_KUBELET_ROOT_DIR,
  PluginManager,
  lookupPullCredentials,
  readKubernetesObjects,
  resolvePodPullSecrets,
  type KubeObject,
  type PodPullSecrets,
  type SpawnPlugin,
} from '../../credentials/index.js';
import { KimgError, toKimgError } from '../../errors/index.js';
import type { CredentialCandidate, PodInfo } from '../../manager/index.js';

/** Logs a warning once per distinct message. */
export type WarnOnce = (message: string, fields?: Record<string, unknown>) => void;

/** Options of {@link AgentCredentials.open}. */
export interface AgentCredentialsOptions {
  /** Directory of Kubernetes YAML/JSON with the pods' pull Secrets and ServiceAccounts. */
  secretsDir?: string;
  env: NodeJS.ProcessEnv;
  /** Search the node-wide docker config (kubelet search path, 5-minute cache). */
  nodeDockerConfig: boolean;
  /** The exec credential plugins, when configured. */
  plugins?: { configPath: string; binDir: string; spawn: SpawnPlugin };
  warnOnce: WarnOnce;
}

/**
 * Reads the Kubernetes objects of a secrets directory (`*.yaml`, `*.yml`, `*.json`, dot files skipped,
 * in name order); none without a directory.
 * @throws KimgError `FILE_NOT_FOUND` (the directory cannot be read), the object reader's codes.
 */
export async function readSecretObjects(dir: string | undefined): Promise<KubeObject[]> {
  if (dir === undefined) return [];
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.') && /\.(ya?ml|json)$/i.test(n)).sort();
  } catch (e) {
    throw new KimgError(
      'FILE_NOT_FOUND',
      `secrets directory ${dir} cannot be read: give an existing directory`,
      {
        file: dir,
        cause: e,
      },
    );
  }
  return readKubernetesObjects(names.map((n) => join(dir, n)));
}

/** The agent's credential sources and the pods' Secrets (see the module comment). */
export class AgentCredentials {
  private readonly podSecrets = new Map<string, PodPullSecrets>();

  private constructor(
    private readonly options: AgentCredentialsOptions,
    private objectList: KubeObject[],
    private readonly nodeDocker: CachedNodeDockerConfig | undefined,
    private plugins: PluginManager | undefined,
  ) {}

  /**
   * Searches the node docker config, reads the secrets directory and loads the plugins.
   * @throws KimgError `FILE_NOT_FOUND` (secrets dir), `CREDENTIAL_PROVIDER_CONFIG_INVALID`.
   */
  static async open(options: AgentCredentialsOptions): Promise<AgentCredentials> {
    const nodeDocker = options.nodeDockerConfig
      ? new CachedNodeDockerConfig({ env: options.env, rootDir: DEFAULT_KUBELET_ROOT_DIR })
      : undefined;
    await nodeDocker?.get();
    const creds = new AgentCredentials(
      options,
      await readSecretObjects(options.secretsDir),
      nodeDocker,
      undefined,
    );
    if (options.plugins !== undefined) {
      creds.plugins = await PluginManager.load({
        configPath: options.plugins.configPath,
        binDir: options.plugins.binDir,
        environ: options.env,
        spawn: options.plugins.spawn,
        getServiceAccount: (namespace, name) => creds.serviceAccount(namespace, name),
      });
    }
    return creds;
  }

  /** The objects last read from the secrets directory (Secrets, ServiceAccounts, RuntimeClasses). */
  get objects(): readonly KubeObject[] {
    return this.objectList;
  }

  /** Re-reads the secrets directory; on failure warns once and keeps the objects read before. */
  async refresh(): Promise<void> {
    this.objectList = await readSecretObjects(this.options.secretsDir).catch((e: unknown) => {
      this.options.warnOnce(toKimgError(e).message);
      return this.objectList;
    });
  }

  /** Resolves a pod's pull Secrets (or its ServiceAccount's) and registers them under its uid. */
  resolvePod(uid: string, pod: Record<string, unknown>, fields: Record<string, unknown>): void {
    try {
      const secrets = resolvePodPullSecrets(pod, this.objectList);
      for (const p of secrets.problems) this.options.warnOnce(p.message, fields);
      this.podSecrets.set(uid, secrets);
    } catch (e) {
      this.options.warnOnce(toKimgError(e).message, fields);
    }
  }

  /** Forgets a pod's Secrets (the pod is gone). */
  forgetPod(uid: string): void {
    this.podSecrets.delete(uid);
  }

  /** The image manager's credential resolver: the matches for `image` and the pod's registered Secrets. */
  readonly resolver = async (image: string, pod: PodInfo): Promise<CredentialCandidate[]> => {
    const secrets = this.podSecrets.get(pod.uid);
    const nodeDocker = await this.nodeDocker?.get();
    const lookup = await lookupPullCredentials(image, {
      ...(secrets !== undefined ? { podSecrets: secrets } : {}),
      ...(nodeDocker !== undefined ? { node: nodeDocker } : {}),
      ...(this.plugins !== undefined ? { plugins: this.plugins } : {}),
      pod: {
        podNamespace: pod.namespace,
        podName: pod.name,
        podUid: pod.uid,
        serviceAccountName: secrets?.serviceAccountName ?? 'default',
      },
    });
    for (const p of lookup.problems)
      this.options.warnOnce(p.message, { pod: `${pod.namespace}/${pod.name}` });
    return lookup.matches.map((m) => ({ key: m.key, auth: m.auth, source: { ...m.source } }));
  };

  private async serviceAccount(
    namespace: string,
    name: string,
  ): Promise<{ uid: string; annotations: Record<string, string> }> {
    const sa = this.objectList.find(
      (o) => o.kind === 'ServiceAccount' && o.name === name && (o.namespace ?? 'default') === namespace,
    );
    if (sa === undefined)
      throw new KimgError(
        'SECRET_NOT_FOUND',
        `ServiceAccount ${namespace}/${name} is not in the secrets directory`,
      );
    const meta = (sa.object.metadata ?? {}) as Record<string, unknown>;
    const annotations = (
      typeof meta.annotations === 'object' && meta.annotations !== null ? meta.annotations : {}
    ) as Record<string, string>;
    return { uid: typeof meta.uid === 'string' ? meta.uid : '', annotations };
  }
}
