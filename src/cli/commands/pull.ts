/**
 * `kimg pull IMAGE... [--platform P] [registry options] [--root DIR] [-o table|json|yaml] [--progress MODE]`:
 * pulls images from their registries into the local store (several images are pulled concurrently, and
 * blobs they share are downloaded once). Credentials: `--creds`, else every matching `--docker-config`
 * entry in kubelet order until one works, else anonymous. A thin face over `pullImage`.
 */
import type { Command } from 'commander';
import { KimgError, toKimgError } from '../../errors/index.js';
import { formatPlatform, type Platform } from '../../platform/index.js';
import { pullImage, type ImagePullResult } from '../../pull/index.js';
import { humanSize, truncateId } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { EXIT_STATUS_BY_CODE, ExitStatus } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { createProgressRenderer, parseProgressMode } from '../progress.js';
import { addRegistryOptions, registrySession, type RegistryCliOptions } from '../registry-options.js';
import { addStoreOptions, withStore, type StoreCliOptions } from '../store-options.js';
import {
  addContainerdConfigOptions,
  containerdSettingOf,
  withContainerd,
  type ContainerdConfigCliOptions,
} from '../containerd-options.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

interface PullCliOptions extends RegistryCliOptions, StoreCliOptions, ContainerdConfigCliOptions {
  platform?: string;
  output: string;
  progress: string;
  concurrency: string;
  defaultRegistry?: string;
}

type PullRow = Omit<PullOutput, 'maxRSS'>;

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
    // does not cancel the others.
    const pullLocal = (): Promise<PromiseSettledResult<PullRow>[]> =>
      withStore(options, ctx, (store) =>
        Promise.allSettled(
          images.map((image) =>
            session.withCredentials(image, async (auth) => {
              const r = await pullImage(image, {
                store,
                registry: session.client,
                auth,
                platform: options.platform,
                defaultRegistry: options.defaultRegistry,
                concurrency,
                signal: controller.signal,
                onProgress: (e) => progress.event(image, e),
              });
              progress.summary(image, r.stats, r.record.size);
              return {
                name: r.record.name,
                digest: r.record.digest,
                id: r.record.imageId,
                size: r.record.size,
                platform: formatPlatform(platformOf(r.record.platform)),
                stats: r.stats,
              };
            }),
          ),
        ),
      );
    // --containerd: kimg fetches, containerd stores and unpacks (src/containerd).
    const pullIntoCtrd = (
      setting: Parameters<typeof withContainerd>[0],
    ): Promise<PromiseSettledResult<PullRow>[]> =>
      withContainerd(setting, session.client, async (svc) => {
        // Loaded with --containerd only: a pull into kimg's store does not load gRPC and the protos.
        const { pullIntoContainerd } = await import('../../containerd/index.js');
        return Promise.allSettled(
          images.map((image) =>
            session.withCredentials(image, async (auth) => {
              const r = await pullIntoContainerd(image, {
                client: svc.client,
                registry: session.client,
                auth,
                platform: options.platform,
                defaultRegistry: options.defaultRegistry,
                concurrency,
                snapshotter: svc.snapshotter,
                directWrite: setting.directWrite,
                localApply: setting.localApply,
                signal: controller.signal,
                onProgress: (e) => progress.event(image, e),
              });
              progress.summary(image, r.stats, r.size);
              return {
                name: r.image,
                digest: r.digest,
                id: r.id,
                size: r.size,
                platform: options.platform ?? '',
                stats: r.stats,
              };
            }),
          ),
        );
      });
    const ctrd = await containerdSettingOf(options);
    const settled = ctrd !== undefined ? await pullIntoCtrd(ctrd) : await pullLocal();
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

function platformOf(p: { os: string; architecture: string; variant?: string }): Platform {
  return { os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) };
}
