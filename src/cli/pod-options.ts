/**
 * Pod and credential loading shared by `kimg ensure` and `kimg explain`: the Pods in `-f` manifests
 * (with `imagePullPolicy` defaulted as the API server stores it on create), their pull Secrets
 * (the pod's `imagePullSecrets`, else its ServiceAccount's, from the same files), the node-wide docker
 * config (kubelet's search path), `--docker-config` files and, when the configuration names them, the
 * exec credential plugins, handed to the node runtime's credential sources (`PodCredentials`). The
 * kubelet configuration (`--config`) gives the puller settings, gates, default registry, hosts dir and
 * root.
 *
 * Follows kubernetes `pkg/kubelet/images/image_manager.go` (`makeLookupPullCredentialsFunc`) and
 * `pkg/credentialprovider/secrets`.
 */
import type { Command } from 'commander';
import {
  DEFAULT_KUBELET_ROOT_DIR,
  loadDockerConfigFile,
  ProjectedTokenFileSource,
  readKubernetesObjects,
  resolvePodPullSecrets,
  type DockerConfig,
  type KubeObject,
  type PodCredentialContext,
  type PodPullSecrets,
} from '../credentials/index.js';
import {
  defaultKubeletImageConfig,
  loadNodeConfig,
  KIMG_SETTINGS_DEFAULTS,
  type NodeConfig,
} from '../config/index.js';
import { KimgError, quote } from '../errors/index.js';
import { applyPodDefaults, runtimeHandlerFor, type PodManifest } from '../manager/index.js';
import type { RuntimeCredentialOptions } from '../runtime/index.js';
import { collect } from './collect.js';

/** Options of the pod-reading commands (commander camel-cases the flags). */
export interface PodCliOptions {
  filename: string[];
  pod?: string;
  config?: string;
  nodeConfig: boolean;
  kubeletRootDir: string;
  dockerConfig?: string[];
  alwaysPullImages?: boolean;
  serviceAccountTokenDir?: string;
}

/** Adds `-f`, `--pod`, `--config`, `--no-node-config`, `--kubelet-root-dir`, `--always-pull-images`. */
export function addPodOptions(cmd: Command, options: { fileRequired: boolean }): Command {
  const file = '-f, --filename <file>';
  const fileHelp =
    'manifests with the Pod and its Secrets / ServiceAccount (YAML or JSON, multi-document, List; repeatable)';
  (options.fileRequired
    ? cmd.requiredOption(file, fileHelp, collect)
    : cmd.option(file, fileHelp, collect, [])
  )
    .option('--pod <name>', 'the Pod to use when the manifests hold several')
    .option('--config <file>', 'KubeletConfiguration file (puller settings, feature gates, kimg settings)')
    .option('--no-node-config', "skip kubelet's node-wide docker config search")
    .option(
      '--kubelet-root-dir <dir>',
      'kubelet root directory, first place of the node-wide docker config search',
      DEFAULT_KUBELET_ROOT_DIR,
    )
    .option('--always-pull-images', 'apply the AlwaysPullImages admission plugin (every container: Always)')
    .option(
      '--service-account-token-dir <dir>',
      "projected service-account tokens for credential provider plugins with tokenAttributes: <dir>/<namespace>/<serviceaccount>/token (default: the --config's serviceAccountTokenDir)",
    );
  return cmd;
}

/** A Pod read from the manifests, defaulted, with its pull Secrets. */
export interface LoadedPod {
  /** The Pod object after API-server defaulting (and AlwaysPullImages when asked). */
  object: Record<string, unknown>;
  manifest: PodManifest;
  name: string;
  namespace: string;
  /** `metadata.uid`, or `<namespace>/<name>` (the image manager's back-off key for a pod without uid). */
  uid: string;
  file: string;
  secrets: PodPullSecrets;
  /** The pod's RuntimeClass handler (from a RuntimeClass object in the files, else the class name). */
  runtimeHandler?: string;
}

/** Reads the node configuration (`--config`) or the kubelet's defaults. @throws KimgError config codes. */
export async function loadCliNodeConfig(file: string | undefined): Promise<NodeConfig> {
  if (file !== undefined) return loadNodeConfig(file);
  return {
    files: [],
    kubelet: defaultKubeletImageConfig(),
    kimg: { ...KIMG_SETTINGS_DEFAULTS, listen: {} },
    notices: [],
  };
}

function podUid(obj: Record<string, unknown>, namespace: string, name: string): string {
  const meta = (obj.metadata ?? {}) as Record<string, unknown>;
  return typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : `${namespace}/${name}`;
}

/**
 * The Pods of the manifests: the one `--pod` names, the only one, or (with `all`) every one.
 * @throws KimgError `CONFIG_INVALID` (no Pod), `USAGE` (several without `--pod`/`all`),
 *   `SECRET_NOT_FOUND` (no such `--pod`), `FILE_NOT_FOUND`, `SECRET_INVALID`.
 */
export async function loadPods(
  opts: PodCliOptions,
  options: { all?: boolean } = {},
): Promise<{ pods: LoadedPod[]; objects: KubeObject[] }> {
  const objects = await readKubernetesObjects(opts.filename);
  let pods = objects.filter((o) => o.kind === 'Pod');
  if (opts.pod !== undefined) {
    pods = pods.filter((p) => p.name === opts.pod);
    if (pods.length === 0) {
      throw new KimgError(
        'SECRET_NOT_FOUND',
        `Pod ${quote(opts.pod)} is not in ${opts.filename.join(', ')}`,
        {
          input: opts.pod,
        },
      );
    }
  }
  if (pods.length === 0) {
    throw new KimgError(
      'CONFIG_INVALID',
      `no Pod found in ${opts.filename.join(', ')}: give a manifest with kind: Pod`,
      {
        file: opts.filename.join(', '),
      },
    );
  }
  if (pods.length > 1 && options.all !== true && opts.pod === undefined) {
    throw new KimgError(
      'USAGE',
      `the manifests hold ${pods.length} Pods (${pods.map((p) => p.name).join(', ')}): choose one with --pod, or use --all`,
    );
  }
  const out: LoadedPod[] = [];
  for (const p of pods) {
    const object = applyPodDefaults(p.object, { alwaysPullImages: opts.alwaysPullImages === true });
    const secrets = resolvePodPullSecrets(p, objects);
    const namespace = secrets.namespace;
    const loaded: LoadedPod = {
      object,
      manifest: object as PodManifest,
      name: p.name,
      namespace,
      uid: podUid(object, namespace, p.name),
      file: p.file,
      secrets,
    };
    const handler = runtimeHandlerFor(object, objects);
    if (handler !== undefined) loaded.runtimeHandler = handler;
    out.push(loaded);
  }
  return { pods: out, objects };
}

/**
 * The runtime's credential sources from the flags: the node docker config search (unless
 * `--no-node-config`, from `--kubelet-root-dir`), `--docker-config` files, and the manifests' Secrets
 * and ServiceAccounts (the exec plugins come from the node configuration).
 * @throws KimgError `FILE_NOT_FOUND`, `DOCKER_CONFIG_INVALID`.
 */
export async function podCredentialOptions(
  opts: PodCliOptions,
  objects: readonly KubeObject[],
  warn: (message: string) => void,
): Promise<RuntimeCredentialOptions> {
  const dockerConfigs: DockerConfig[] = [];
  for (const f of opts.dockerConfig ?? []) dockerConfigs.push(await loadDockerConfigFile(f));
  // Each problem (missing Secret, invalid node file, plugin failure) is reported once.
  const warned = new Set<string>();
  return {
    nodeDockerConfig: opts.nodeConfig ? { rootDir: opts.kubeletRootDir } : false,
    dockerConfigs,
    objects,
    objectsOrigin: 'the manifests',
    ...(opts.serviceAccountTokenDir !== undefined
      ? { tokenSource: new ProjectedTokenFileSource(opts.serviceAccountTokenDir) }
      : {}),
    onProblem: (p) => {
      if (warned.has(p.message)) return;
      warned.add(p.message);
      warn(p.message);
    },
  };
}

/** The credential lookup context of a loaded pod (its own Secrets). */
export function podCredentialContext(pod: LoadedPod): PodCredentialContext {
  return { namespace: pod.namespace, name: pod.name, uid: pod.uid, secrets: pod.secrets };
}
