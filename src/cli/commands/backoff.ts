/**
 * `kimg backoff ls [-o table|json|yaml]` and `kimg backoff clear [--pod UID] [--image IMAGE]`: the image
 * pull back-off that `kimg ensure` (and the node agent) keep under the store root
 * (`<root>/manager/backoff.json`), keyed like the kubelet's `<pod UID>_<image>` with the image as the
 * pod spells it. A pod without `metadata.uid` is keyed by `<namespace>/<name>`. Clearing an entry makes
 * the next ensure pull at once instead of reporting `ImagePullBackOff`.
 *
 * Source: kubernetes `pkg/kubelet/images/image_manager.go` (backOff keyed by pod UID and image),
 * client-go `util/flowcontrol/backoff.go`.
 */
import type { Command } from 'commander';
import { FileBackoffStore, PullBackoff, type BackoffEntry } from '../../manager/index.js';
import { resolveStoreRoot } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { addStoreOptions, type StoreCliOptions } from '../store-options.js';
import { humanDuration } from './ensure.js';
import type { RegisterCommand } from './register.js';

interface BackoffLsOptions extends StoreCliOptions {
  output: string;
}

interface BackoffClearOptions extends StoreCliOptions {
  pod?: string;
  image?: string;
  output: string;
}

function backoffFor(opts: StoreCliOptions, ctx: CliContext): PullBackoff {
  const root = resolveStoreRoot({ root: opts.root, env: ctx.env });
  return new PullBackoff({ store: new FileBackoffStore(root) });
}

/** `-o json` row of `kimg backoff ls` (times as ISO 8601). */
export interface BackoffListRow {
  key: string;
  podUID: string;
  image: string;
  inBackOff: boolean;
  backoffSeconds: number;
  lastUpdate: string;
  retryAt: string;
  expired: boolean;
  lastError?: string;
}

function row(e: BackoffEntry): BackoffListRow {
  const r: BackoffListRow = {
    key: e.key,
    podUID: e.podUID,
    image: e.image,
    inBackOff: e.inBackOff,
    backoffSeconds: e.backoffMs / 1000,
    lastUpdate: new Date(e.lastUpdateMs).toISOString(),
    retryAt: new Date(e.retryAtMs).toISOString(),
    expired: e.expired,
  };
  if (e.lastError !== undefined) r.lastError = e.lastError;
  return r;
}

export const registerBackoff: RegisterCommand = (program: Command, ctx: CliContext) => {
  const backoff = program
    .command('backoff')
    .description('show or clear the image pull back-off kept under the store root (kimg ensure, the agent)');

  addStoreOptions(
    backoff
      .command('ls')
      .description('list back-off entries: pod UID, image, window, retry time, last error')
      .option('-o, --output <format>', 'output format: table, json or yaml', 'table'),
  ).action(async (opts: BackoffLsOptions) => {
    const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
    const rows = (await backoffFor(opts, ctx).list()).map(row);
    if (format === 'json') ctx.stdout.write(toJson(rows));
    else if (format === 'yaml') ctx.stdout.write(toYaml(rows));
    else {
      const now = Date.now();
      ctx.stdout.write(
        toTable(
          ['POD UID', 'IMAGE', 'STATE', 'BACKOFF', 'RETRY IN', 'LAST ERROR'],
          rows.map((r) => [
            r.podUID,
            r.image,
            r.inBackOff ? 'BackOff' : r.expired ? 'Expired' : 'Retry allowed',
            humanDuration(r.backoffSeconds * 1000),
            r.inBackOff ? humanDuration(Date.parse(r.retryAt) - now) : '',
            r.lastError ?? '',
          ]),
        ),
      );
    }
  });

  addStoreOptions(
    backoff
      .command('clear')
      .description(
        'clear back-off entries (all, or those of a pod UID and/or an image) so the next ensure pulls at once',
      )
      .option(
        '--pod <uid>',
        "only this pod's entries (metadata.uid, or <namespace>/<name> for a pod without uid)",
      )
      .option('--image <image>', 'only entries of this image, as the pod spells it')
      .option(
        '-o, --output <format>',
        'output format: table (one removed key a line), json or yaml',
        'table',
      ),
  ).action(async (opts: BackoffClearOptions) => {
    const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
    const removed = await backoffFor(opts, ctx).clear({
      ...(opts.pod !== undefined ? { podUID: opts.pod } : {}),
      ...(opts.image !== undefined ? { image: opts.image } : {}),
    });
    if (format === 'json') ctx.stdout.write(toJson({ removed }));
    else if (format === 'yaml') ctx.stdout.write(toYaml({ removed }));
    else if (removed.length === 0) ctx.stderr.write('no back-off entries matched\n');
    else for (const k of removed) ctx.stdout.write(`cleared ${k}\n`);
  });
};
