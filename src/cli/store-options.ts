/**
 * The `--root` option shared by every command that opens the local store (`images`, `inspect`, `rmi`,
 * `load`, `save`, `store ...`), and opening/closing the store around a command. Root resolution itself
 * lives in the store (`resolveStoreRoot`): `--root` > `$KIMG_ROOT` > `/var/lib/kimg` (uid 0) >
 * `$XDG_DATA_HOME/kimg`.
 */
import type { Command } from 'commander';
import { openStore, type OpenStoreOptions, type Store } from '../store/index.js';
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
