/**
 * The runtime `kimg explain` reads, the same for an image, pod files and a pod from the API server:
 * read-only (no start-up reconciliation: that is the agent's and `kimg ensure`'s job), a registry
 * client set up from the flags only with `--resolve`, and the image service backend that
 * `--containerd` or the configuration's `kimg.containerd` names.
 */
import type { NodeConfig } from '../config/index.js';
import {
  imageServiceBackend,
  openNodeRuntime,
  type NodeRuntime,
  type RuntimeCredentialOptions,
} from '../runtime/index.js';
import type { ContainerdCliOptions } from './containerd-options.js';
import type { CliContext } from './context.js';
import { registryClientOptions, type RegistryCliOptions } from './registry-options.js';
import type { StoreCliOptions } from './store-options.js';

/** The options of `kimg explain` that choose what the runtime opens. */
export interface ExplainRuntimeCliOptions extends RegistryCliOptions, StoreCliOptions, ContainerdCliOptions {
  resolve?: boolean;
}

/** Opens the runtime `kimg explain` reads (see the module comment); the caller closes it. */
export function openExplainRuntime(
  config: NodeConfig,
  options: ExplainRuntimeCliOptions,
  ctx: CliContext,
  credentials: RuntimeCredentialOptions,
): Promise<NodeRuntime> {
  const hostsDir = options.hostsDir ?? config.kimg.hostsDir;
  return openNodeRuntime(config, {
    env: ctx.env,
    ...(options.root !== undefined ? { root: options.root } : {}),
    ...(options.resolve === true
      ? { registry: registryClientOptions({ ...options, ...(hostsDir ? { hostsDir } : {}) }, ctx) }
      : {}),
    credentials,
    verification: 'read-only',
    imageService: imageServiceBackend(config.kimg, { containerd: options.containerd }),
  });
}
