/**
 * The agent's services come from the composition root (`openNodeRuntime`): store, registry client,
 * image service (kimg's store with per-layer progress, or a CRI runtime), pod credentials, verifier,
 * back-off, image managers and image GC. The agent hands in only its settings and where its events,
 * metrics and logs go; the secrets directory is read first and kept in the runtime's credentials.
 */
import type { NodeConfig } from '../../config/index.js';
import { ProjectedTokenFileSource } from '../../credentials/index.js';
import type { FsUsageSource, ImageGCEvent, ManagerEvent } from '../../manager/index.js';
import type { RegistryClientOptions } from '../../registry/index.js';
import {
  TokenRequestSource,
  serviceAccountInfo,
  type KubeClient,
  type PodSecretManager,
} from '../../kube/index.js';
import {
  openNodeRuntime,
  imageServiceBackend,
  type NodeRuntime,
  type RuntimeCredentialOptions,
} from '../../runtime/index.js';
import type { ImagePullEvent } from '../../pull/index.js';
import type { NodeMetrics } from '../metrics.js';
import type { Cleanups } from './cleanups.js';
import { countPulls, timedPluginSpawn } from './instrument.js';
import type { AgentLog } from './log.js';
import { AgentPodSecrets, SECRETS_DIR_ORIGIN, readSecretObjects, type WarnOnce } from './pod-secrets.js';

/** The settings the services are built from (the agent's options). */
export interface AgentServiceSettings {
  config: NodeConfig;
  env: NodeJS.ProcessEnv;
  nodeName: string;
  root?: string;
  /** A CRI runtime's socket to pull into instead of kimg's store. */
  imageServiceEndpoint?: string;
  /** containerd's socket: pull into containerd's store (else the configuration's `kimg.containerd`). */
  containerd?: string;
  registry?: RegistryClientOptions;
  platform?: string;
  secretsDir?: string;
  /** Projected token files for token-mode plugins; default the configuration's (the runtime reads it). */
  serviceAccountTokenDir?: string;
  nodeDockerConfig?: boolean;
  usage?: FsUsageSource;
  /**
   * Cluster mode: token-mode credential providers get their tokens from the TokenRequest API and the
   * pods' ServiceAccounts from the secret manager's watches (not from the secrets directory).
   */
  cluster?: { client: KubeClient; secretManager: PodSecretManager };
}

/** The token source and ServiceAccount lookup of token-mode plugins in cluster mode. */
function clusterTokenMode(
  cluster: NonNullable<AgentServiceSettings['cluster']>,
): Pick<RuntimeCredentialOptions, 'tokenSource' | 'getServiceAccount'> {
  return {
    tokenSource: new TokenRequestSource({ client: cluster.client }),
    getServiceAccount: async (namespace, name, podUid) =>
      serviceAccountInfo(await cluster.secretManager.serviceAccount(namespace, name, podUid)),
  };
}

/** Where the services' events go. */
export interface AgentServiceHooks {
  metrics: NodeMetrics;
  log: AgentLog;
  warnOnce: WarnOnce;
  /** Layer progress of a pull into kimg's store (per image as the pod spells it, default tag applied). */
  onProgress(image: string, ev: ImagePullEvent): void;
  /** A pull through kimg's pipeline succeeded (into kimg's store or containerd's). */
  onPulled(): void;
  onManagerEvent(e: ManagerEvent): void;
  onGcEvent(e: ImageGCEvent): void;
}

/** The runtime and the pods' Secrets over its credentials. */
export interface AgentServices {
  runtime: NodeRuntime;
  secrets: AgentPodSecrets;
}

/**
 * Reads the secrets directory and opens the runtime; its shutdown is registered on `cleanups`.
 * @throws KimgError `FILE_NOT_FOUND` (secrets dir), `STORE_LOCKED`/`STORE_IO`,
 *   `CREDENTIAL_PROVIDER_CONFIG_INVALID`, `CONFIG_INVALID` (puller, verification or GC settings).
 */
export async function openAgentServices(
  s: AgentServiceSettings,
  hooks: AgentServiceHooks,
  cleanups: Cleanups,
): Promise<AgentServices> {
  const { metrics, log } = hooks;
  const objects = await readSecretObjects(s.secretsDir, (m) => log({ level: 'warn', msg: m }));
  const runtime = await openNodeRuntime(s.config, {
    env: s.env,
    imageService: imageServiceBackend(s.config.kimg, {
      criEndpoint: s.imageServiceEndpoint,
      containerd: s.containerd,
      platform: s.platform,
    }),
    ...(s.root !== undefined ? { root: s.root } : {}),
    registry: { ...s.registry, warn: (m) => log({ level: 'warn', msg: m }) },
    credentials: {
      ...(s.nodeDockerConfig === false ? { nodeDockerConfig: false } : {}),
      objects,
      objectsOrigin: SECRETS_DIR_ORIGIN,
      ...(s.serviceAccountTokenDir !== undefined
        ? { tokenSource: new ProjectedTokenFileSource(s.serviceAccountTokenDir) }
        : {}),
      ...(s.cluster !== undefined ? clusterTokenMode(s.cluster) : {}),
      spawnPlugin: timedPluginSpawn(metrics),
      onProblem: (p, pod) => hooks.warnOnce(p.message, { pod: `${pod.namespace}/${pod.name}`, code: p.code }),
    },
    onNotice: (m) => log({ level: 'warn', msg: m }),
    recorder: { record: (e) => hooks.onManagerEvent(e) },
    // Pulls in progress, counted at the image service (after the puller's queue).
    wrapImageService: (svc) => countPulls(svc, metrics),
    onProgress: (spec, ev) => hooks.onProgress(spec.image, ev),
    onPulled: () => hooks.onPulled(),
    gc: {
      ...(s.usage !== undefined ? { usage: s.usage } : {}),
      nodeName: s.nodeName,
      recorder: { record: (e) => hooks.onGcEvent(e) },
      metricsRegistry: metrics.registry,
    },
  });
  cleanups.push(() => runtime.close());
  metrics.trackPullProgress(runtime.progress);
  return { runtime, secrets: new AgentPodSecrets(runtime.credentials, s.secretsDir, hooks.warnOnce) };
}
