/**
 * `--containerd ADDRESS`: the one setting that makes a command use containerd's store instead of
 * kimg's own (src/containerd). ADDRESS is containerd's socket as `ctr --address` takes it
 * (`/run/containerd/containerd.sock`) or a `unix://` URL. The configuration's `kimg.containerd`
 * (`{address, namespace, snapshotter, directWrite, localApply}`, read through `--config`) selects it too; the flag
 * wins over the file's address and keeps its other settings.
 */
import type { Command } from 'commander';
import { loadNodeConfig, type KimgSettings } from '../config/index.js';
import { imageServiceBackend, type BackendChoice, type ImageServiceBackend } from '../runtime/index.js';

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

/**
 * The backend of a store command: containerd's store when `--containerd` or `--config`'s
 * `kimg.containerd` names it, else kimg's (the runtime's `imageServiceBackend` decides).
 */
export async function storeCommandBackend(
  opts: ContainerdConfigCliOptions,
  extra: Omit<BackendChoice, 'containerd' | 'criEndpoint'> = {},
): Promise<ImageServiceBackend> {
  const config =
    opts.config !== undefined && opts.config !== '' ? await loadNodeConfig(opts.config) : undefined;
  return imageServiceBackend(config?.kimg, { ...extra, containerd: opts.containerd });
}

/** The runtime backend for `--containerd` / `kimg.containerd`, or undefined (kimg's store). */
export function containerdBackend(
  flag: string | undefined,
  settings: Pick<KimgSettings, 'containerd'> | undefined,
  extra: Omit<BackendChoice, 'containerd' | 'criEndpoint'> = {},
): Extract<ImageServiceBackend, { kind: 'containerd' }> | undefined {
  const b = imageServiceBackend(settings, { ...extra, containerd: flag });
  return b.kind === 'containerd' ? b : undefined;
}
