/**
 * `kimg pull IMAGE... [--platform P] [registry options] [--root DIR] [-o table|json|yaml] [--progress MODE]`:
 * pulls images from their registries into the local store (several images are pulled concurrently, and
 * blobs they share are downloaded once). Credentials: `--creds`, else every matching `--docker-config`
 * entry in kubelet order until one works, else anonymous. A thin face over the runtime's image backend
 * (`openImageBackend`: kimg's store, or containerd's with `--containerd` / `kimg.containerd`).
 */
import type { Command } from 'commander';
import { KimgError, toKimgError } from '../../errors/index.js';
import type { ImagePullResult } from '../../pull/index.js';
import { humanSize, truncateId } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { EXIT_STATUS_BY_CODE, ExitStatus } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { createProgressRenderer, parseProgressMode } from '../progress.js';
import { addRegistryOptions, registrySession, type RegistryCliOptions } from '../registry-options.js';
import { addStoreOptions, withImageBackend, type StoreCliOptions } from '../store-options.js';
import { addContainerdConfigOptions, type ContainerdConfigCliOptions } from '../containerd-options.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

interface PullCliOptions extends RegistryCliOptions, StoreCliOptions, ContainerdConfigCliOptions {
  platform?: string;
  output: string;
  progress: string;
  concurrency: string;
  defaultRegistry?: string;
}

/** What `-o json` prints per image. */
export interface PullOutput {
  name: string;
  digest: string;
  id: string;
  size: number;
  platform: string;
  stats: ImagePullResult['stats'];
  /** Peak resident set size of this kimg process, KiB (process.resourceUsage().maxRSS). */
  maxRSS: number;
}

export const registerPull: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('pull')
    .description('pull images from their registries into the local store (verified, durable, resumable)')
    .argument(
      '<image...>',
      'image references (nginx:1.27, reg:5000/team/app@sha256:…); several are pulled concurrently',
    )
    .option(
      '--platform <os/arch[/variant]>',
      'platform to select from a multi-platform image (default: this host)',
    )
    .option('--default-registry <host>', 'registry for names without one (default docker.io)')
    .option('--concurrency <n>', 'blobs downloaded at once per image', '3')
    .option('-o, --output <format>', 'output format: table, json or yaml', 'table')
    .option(
      '--progress <mode>',
      'progress on stderr: auto (bars on a terminal, JSON lines otherwise), tty, json, none',
      'auto',
    );
  addStoreOptions(cmd);
  addContainerdConfigOptions(cmd);
  addRegistryOptions(cmd).action(async (images: string[], options: PullCliOptions) => {
    await run(images, options, ctx);
  });
};

async function run(images: string[], options: PullCliOptions, ctx: CliContext): Promise<void> {
  const format = parseOutputFormat(options.output, ['table', 'json', 'yaml']);
  const progress = createProgressRenderer(parseProgressMode(options.progress), ctx.stderr);
  const concurrency = Number(options.concurrency);
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new KimgError(
      'USAGE',
      `--concurrency must be a positive integer, got ${JSON.stringify(options.concurrency)}`,
      {
        input: options.concurrency,
      },
    );
  }
  const session = await registrySession(options, ctx);
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // Every pull runs to its end (the store stays open until the last one stops); one failing image
    // does not cancel the others. --containerd: kimg fetches, containerd stores and unpacks.
    const settled = await withImageBackend(
      options,
      ctx,
      (backend) =>
        Promise.allSettled(
          images.map((image) =>
            session.withCredentials(image, async (auth) => {
              const r = await backend.pull(image, {
                auth,
                signal: controller.signal,
                onProgress: (e) => progress.event(image, e),
              });
              progress.summary(image, r.stats, r.size);
              return r;
            }),
          ),
        ),
      {
        registry: session.client,
        defaultRegistry: options.defaultRegistry,
        platform: options.platform,
        concurrency,
      },
    );
    const results = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [toKimgError(s.reason)] : []));
    if (results.length === 0 && failures[0]) throw failures[0];
    progress.close();
    const maxRSS = process.resourceUsage().maxRSS;
    const rows: PullOutput[] = results.map((r) => ({ ...r, maxRSS }));
    // One image asked for: an object; several: an array (of those that succeeded).
    const doc = images.length === 1 ? rows[0] : rows;
    if (format === 'json') ctx.stdout.write(toJson(doc));
    else if (format === 'yaml') ctx.stdout.write(toYaml(doc));
    else
      ctx.stdout.write(
        toTable(
          ['IMAGE', 'DIGEST', 'IMAGE ID', 'SIZE', 'PLATFORM'],
          rows.map((r) => [r.name, truncateId(r.digest), truncateId(r.id), humanSize(r.size), r.platform]),
        ),
      );
    // Some images failed: each is reported like runCli reports a failure; the status is the first one's.
    for (const [i, f] of failures.entries()) {
      ctx.stderr.write(`error: ${escapeTerminal(f.message)} (${f.code})\n`);
      if (i === 0) ctx.exitStatus = EXIT_STATUS_BY_CODE[f.code] ?? ExitStatus.FAILURE;
    }
  } finally {
    progress.close();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await session.close();
  }
}
