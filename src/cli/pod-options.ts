/**
 * Pod and credential loading shared by `kimg ensure` and `kimg explain`: the Pods in `-f` manifests
 * (with `imagePullPolicy` defaulted as the API server stores it on create), their pull Secrets
 * (the pod's `imagePullSecrets`, else its ServiceAccount's, from the same files), the node-wide docker
 * config (kubelet's search path), `--docker-config` files and, when the configuration names them, the
 * exec credential plugins, turned into the image manager's `CredentialResolver`. The kubelet
 * configuration (`--config`) gives the puller settings, gates, default registry, hosts dir and root.
 *
 * Follows kubernetes `pkg/kubelet/images/image_manager.go` (`makeLookupPullCredentialsFunc`) and
 * `pkg/credentialprovider/secrets`; see sections 3 and 5 of the upstream-semantics digest.
 */
import type { Command } from 'commander';
import {
  DEFAULT_KUBELET_ROOT_DIR,
  PluginManager,
  loadDockerConfigFile,
  loadNodeDockerConfig,
  lookupPullCredentials,
  readKubernetesObjects,
  resolvePodPullSecrets,
  type DockerConfig,
  type KubeObject,
  type NodeDockerConfig,
  type PodPullSecrets,
  type PullCredentialLookup,
} from '../credentials/index.js';
import {
  defaultKubeletImageConfig,
  loadNodeConfig,
  KIMG_SETTINGS_DEFAULTS,
  type NodeConfig,
} from '../config/index.js';
import { KimgError, quote } from '../errors/index.js';
import {
  applyPodDefaults,
  runtimeHandlerFor,
  type CredentialCandidate,
  type CredentialResolver,
  type PodInfo,
  type PodManifest,
} from '../manager/index.js';
import type { CliContext } from './context.js';
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
    .option('--always-pull-images', 'apply the AlwaysPullImages admission plugin (every container: Always)');
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

/** The static and plugin credential sources of one invocation (pod Secrets are per pod). */
export interface CredentialSetup {
  node?: NodeDockerConfig;
  dockerConfigs: DockerConfig[];
  plugins?: PluginManager;
}

/**
 * Loads the node docker config (unless `--no-node-config`), `--docker-config` files and the exec
 * plugins the node configuration names.
 * @throws KimgError `FILE_NOT_FOUND`, `DOCKER_CONFIG_INVALID`, `CREDENTIAL_PROVIDER_CONFIG_INVALID`.
 */
export async function loadCredentialSetup(
  opts: PodCliOptions,
  config: NodeConfig,
  objects: readonly KubeObject[],
  ctx: CliContext,
): Promise<CredentialSetup> {
  const setup: CredentialSetup = { dockerConfigs: [] };
  for (const f of opts.dockerConfig ?? []) setup.dockerConfigs.push(await loadDockerConfigFile(f));
  if (opts.nodeConfig)
    setup.node = await loadNodeDockerConfig({ env: ctx.env, rootDir: opts.kubeletRootDir });
  const { imageCredentialProviderConfig: configPath, imageCredentialProviderBinDir: binDir } = config.kimg;
  if (configPath !== undefined && binDir !== undefined) {
    setup.plugins = await PluginManager.load({
      configPath,
      binDir,
      environ: ctx.env,
      getServiceAccount: async (namespace, name) => {
        const sa = objects.find(
          (o) => o.kind === 'ServiceAccount' && o.name === name && (o.namespace ?? 'default') === namespace,
        );
        if (sa === undefined)
          throw new KimgError(
            'SECRET_NOT_FOUND',
            `ServiceAccount ${namespace}/${name} is not in the manifests`,
          );
        const meta = (sa.object.metadata ?? {}) as Record<string, unknown>;
        const annotations = (
          typeof meta.annotations === 'object' && meta.annotations !== null ? meta.annotations : {}
        ) as Record<string, string>;
        return { uid: typeof meta.uid === 'string' ? meta.uid : '', annotations };
      },
    });
  }
  return setup;
}

/** The kubelet's credential lookup for `image` and one pod (`explain` adds near misses). */
export function lookupForPod(
  image: string,
  setup: CredentialSetup,
  pod: LoadedPod | undefined,
  options: { explain?: boolean } = {},
): Promise<PullCredentialLookup> {
  return lookupPullCredentials(
    image,
    {
      ...(pod !== undefined ? { podSecrets: pod.secrets } : {}),
      ...(setup.node !== undefined ? { node: setup.node } : {}),
      dockerConfigs: setup.dockerConfigs,
      ...(setup.plugins !== undefined ? { plugins: setup.plugins } : {}),
      ...(pod !== undefined
        ? {
            pod: {
              podNamespace: pod.namespace,
              podName: pod.name,
              podUid: pod.uid,
              serviceAccountName: pod.secrets.serviceAccountName,
            },
          }
        : {}),
    },
    { explain: options.explain === true },
  );
}

/**
 * The image manager's resolver for these pods: each pod's Secrets, then the node group, then plugins.
 * Problems (missing Secrets, invalid node files, plugin failures) are reported once through `warn`.
 */
export function podCredentialResolver(
  pods: readonly LoadedPod[],
  setup: CredentialSetup,
  warn: (message: string) => void,
): CredentialResolver {
  const byUid = new Map(pods.map((p) => [p.uid, p]));
  const warned = new Set<string>();
  return async (image: string, pod: PodInfo): Promise<CredentialCandidate[]> => {
    const lookup = await lookupForPod(image, setup, byUid.get(pod.uid));
    for (const p of lookup.problems) {
      if (!warned.has(p.message)) {
        warned.add(p.message);
        warn(p.message);
      }
    }
    return lookup.matches.map((m) => ({ key: m.key, auth: m.auth, source: { ...m.source } }));
  };
}
