/**
 * `--containerd ADDRESS`: the one setting that makes a command use containerd's store instead of
 * kimg's own (src/containerd). ADDRESS is containerd's socket as `ctr --address` takes it
 * (`/run/containerd/containerd.sock`) or a `unix://` URL. The configuration's `kimg.containerd`
 * (`{address, namespace, snapshotter, directWrite, localApply}`, read through `--config`) selects it too; the flag
 * wins over the file's address and keeps its other settings.
 */
import type { Command } from 'commander';
import { loadNodeConfig, type KimgSettings } from '../config/index.js';
import type { ContainerdClient, ContainerdImageService } from '../containerd/index.js';
import type { RegistryClient } from '../registry/index.js';
import type { ImageServiceBackend } from '../runtime/index.js';

/** Options of a command that takes `--containerd`. */
export interface ContainerdCliOptions {
  containerd?: string;
}

/** Adds `--containerd ADDRESS` to a command. */
export function addContainerdOption(cmd: Command): Command {
  return cmd.option(
    '--containerd <address>',
    "use containerd's image store at this socket (/run/containerd/containerd.sock or unix://…; namespace k8s.io) instead of kimg's own",
  );
}

/** Options of a command that takes `--containerd` and `--config` only for the file's `kimg.containerd`. */
export interface ContainerdConfigCliOptions extends ContainerdCliOptions {
  config?: string;
}

/**
 * Adds `--containerd` and `--config` to a store command that reads no other setting, so the
 * configuration's `kimg.containerd` selects containerd there too (also as `kimg --config F images`).
 */
export function addContainerdConfigOptions(cmd: Command): Command {
  return addContainerdOption(cmd).option(
    '--config <file>',
    "KubeletConfiguration file: its kimg.containerd selects containerd's store (--containerd wins over its address)",
  );
}

/** The containerd setting of `--containerd` and `--config`'s `kimg.containerd`; undefined = kimg's store. */
export async function containerdSettingOf(
  opts: ContainerdConfigCliOptions,
): Promise<ReturnType<typeof containerdSetting>> {
  const config =
    opts.config !== undefined && opts.config !== '' ? await loadNodeConfig(opts.config) : undefined;
  return containerdSetting(opts.containerd, config?.kimg);
}

/** `--containerd` and `kimg.containerd`: where containerd is and how kimg writes into it. */
export type ContainerdSetting = NonNullable<KimgSettings['containerd']>;

/** The containerd setting in effect: the flag, else the configuration's; undefined = kimg's store. */
export function containerdSetting(
  flag: string | undefined,
  settings?: Pick<KimgSettings, 'containerd'>,
): ContainerdSetting | undefined {
  const fromFile = settings?.containerd;
  if (flag !== undefined && flag !== '') return { ...fromFile, address: flag };
  return fromFile;
}

/** The runtime backend for `--containerd` / `kimg.containerd`, or undefined. */
export function containerdBackend(
  flag: string | undefined,
  settings: Pick<KimgSettings, 'containerd'> | undefined,
  extra: { platform?: string | undefined; concurrency?: number | undefined } = {},
): Extract<ImageServiceBackend, { kind: 'containerd' }> | undefined {
  const s = containerdSetting(flag, settings);
  if (s === undefined) return undefined;
  return {
    kind: 'containerd',
    address: s.address,
    ...(s.namespace !== undefined ? { namespace: s.namespace } : {}),
    ...(s.snapshotter !== undefined ? { snapshotter: s.snapshotter } : {}),
    ...(s.directWrite !== undefined ? { directWrite: s.directWrite } : {}),
    ...(s.localApply !== undefined ? { localApply: s.localApply } : {}),
    ...(extra.platform !== undefined ? { platform: extra.platform } : {}),
    ...(extra.concurrency !== undefined ? { concurrency: extra.concurrency } : {}),
  };
}

/** Opens a client (and the image service over it) for the setting, runs `fn`, closes the client. */
export async function withContainerd<T>(
  setting: ContainerdSetting,
  registry: RegistryClient | undefined,
  fn: (service: ContainerdImageService, client: ContainerdClient) => Promise<T>,
  extra: {
    platform?: string | undefined;
    concurrency?: number | undefined;
    defaultRegistry?: string | undefined;
  } = {},
): Promise<T> {
  // Loaded here, not with the command: gRPC and the protos cost a store command ~150 ms of start-up.
  const { ContainerdClient, ContainerdImageService } = await import('../containerd/index.js');
  const client = new ContainerdClient({
    address: setting.address,
    ...(setting.namespace !== undefined ? { namespace: setting.namespace } : {}),
  });
  try {
    const service = new ContainerdImageService({
      client,
      // Listing and removing never reach a registry.
      registry,
      snapshotter: setting.snapshotter,
      directWrite: setting.directWrite,
      localApply: setting.localApply,
      platform: extra.platform,
      concurrency: extra.concurrency,
      defaultRegistry: extra.defaultRegistry,
    });
    return await fn(service, client);
  } finally {
    client.close();
  }
}
