/**
 * The `--root` option shared by every command that opens the local store (`images`, `inspect`, `rmi`,
 * `load`, `save`, `store ...`), and opening/closing the store around a command. Root resolution itself
 * lives in the store (`resolveStoreRoot`): `--root` > `$KIMG_ROOT` > `/var/lib/kimg` (uid 0) >
 * `$XDG_DATA_HOME/kimg`.
 */
import type { Command } from 'commander';
import type { RegistryClient } from '../registry/index.js';
import { openImageBackend, type BackendChoice, type ImageBackend } from '../runtime/index.js';
import { openStore, type OpenStoreOptions, type Store } from '../store/index.js';
import { storeCommandBackend, type ContainerdConfigCliOptions } from './containerd-options.js';
import type { CliContext } from './context.js';

/** Options every store command accepts. */
export interface StoreCliOptions {
  root?: string;
}

/** Adds `--root DIR` to a command. */
export function addStoreOptions(cmd: Command): Command {
  return cmd.option(
    '--root <dir>',
    'store root directory (env KIMG_ROOT; default /var/lib/kimg as root, $XDG_DATA_HOME/kimg otherwise)',
  );
}

/** Opens the store named by the options and environment, runs `fn`, and always closes it. */
export async function withStore<T>(
  opts: StoreCliOptions,
  ctx: CliContext,
  fn: (store: Store) => Promise<T>,
  open: Omit<OpenStoreOptions, 'root' | 'env'> = {},
): Promise<T> {
  const store = await openStore({
    ...open,
    ...(opts.root !== undefined ? { root: opts.root } : {}),
    env: ctx.env,
  });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * Opens the image backend of a store command (kimg's store under `--root`, or containerd's with
 * `--containerd` / `--config`'s `kimg.containerd`: the runtime's backend factory), runs `fn`, and
 * always closes it. `registry` is for pulls.
 */
export async function withImageBackend<T>(
  opts: StoreCliOptions & ContainerdConfigCliOptions,
  ctx: CliContext,
  fn: (backend: ImageBackend) => Promise<T>,
  open: Omit<BackendChoice, 'containerd' | 'criEndpoint'> & {
    registry?: RegistryClient;
    defaultRegistry?: string | undefined;
  } = {},
): Promise<T> {
  const { registry, defaultRegistry, ...choice } = open;
  const backend = await openImageBackend(await storeCommandBackend(opts, choice), {
    env: ctx.env,
    ...(opts.root !== undefined ? { root: opts.root } : {}),
    ...(registry !== undefined ? { registry } : {}),
    ...(defaultRegistry !== undefined ? { defaultRegistry } : {}),
  });
  try {
    return await fn(backend);
  } finally {
    await backend.close();
  }
}
