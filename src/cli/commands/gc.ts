/**
 * `kimg gc [--dry-run] [--config FILE] [--in-use IMAGE]... [--pinned IMAGE]... [-o table|json]`: the
 * kubelet's image garbage collection on kimg's store (the node runtime's image GC manager).
 *
 * The policy comes from the kubelet configuration (`imageGCHighThresholdPercent`,
 * `imageGCLowThresholdPercent`, `imageMinimumGCAge`, `imageMaximumGCAge`; defaults 85, 80, 2m, off),
 * validated with the kubelet's messages. Usage is the store filesystem's (statfs). Images named by
 * `--in-use` (the images of the node's containers), with `--containerd` the images of containerd's
 * containers (asked by the runtime's GC on each run), with `--image-service-endpoint` (a CRI runtime's
 * images) the images of the containers the configuration's `containerRuntimeEndpoint` lists (asked
 * the same way), and pinned images (`--pinned`, the default
 * sandbox image, records marked pinned) are never removed. First-detection and last-use times are the
 * records' `pulledAt`/`lastUsed`, remembered in `<root>/manager/image-gc.json`.
 *
 * Prints one row per image: KEEP or DELETE, the reason (`in-use`, `pinned`, `too-young`, `max-age`,
 * `space`, `below-threshold`, `enough-freed`, …) and the LRU rank; then the bytes freed (or, with
 * `--dry-run`, that would be freed). A real run sweeps the blobs the removed images leave behind (store
 * GC), so the space really returns. Warnings (`FreeDiskSpaceFailed`, `ImageGCFailed`,
 * `InvalidDiskCapacity`) go to stderr. Exit status: 0; the removal error's status when a removal failed;
 * 7 when the low threshold could not be reached (not for `--dry-run`).
 */
import type { Command } from 'commander';
import {
  DEFAULT_IMAGE_GC_POLICY,
  DEFAULT_PINNED_IMAGES,
  imageGCPolicyFromConfig,
  type ImageGCDecision,
  type ImageGCPolicy,
  type ImageGCResult,
} from '../../manager/index.js';
import { loadNodeConfig } from '../../config/index.js';
import { imageServiceBackend, openNodeRuntime } from '../../runtime/index.js';
import { humanSize, truncateId } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { EXIT_STATUS_BY_CODE, ExitStatus } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable } from '../output.js';
import { loadCliNodeConfig } from '../pod-options.js';
import { addStoreOptions, type StoreCliOptions } from '../store-options.js';
import { addContainerdOption, containerdBackend, type ContainerdCliOptions } from '../containerd-options.js';

import { collect } from '../collect.js';
import { escapeTerminal } from '../../gotext/index.js';

interface GcCliOptions extends StoreCliOptions, ContainerdCliOptions {
  imageServiceEndpoint?: string;
  dryRun?: boolean;
  config?: string[];
  inUse?: string[];
  pinned?: string[];
  output: string;
}

function iso(ms: number): string | null {
  return ms > 0 ? new Date(ms).toISOString() : null;
}

function percent(bytes: { capacityBytes: number; availableBytes: number } | undefined): string {
  if (!bytes || bytes.capacityBytes <= 0) return '?';
  const avail = Math.min(bytes.availableBytes, bytes.capacityBytes);
  return `${100 - Math.floor((avail * 100) / bytes.capacityBytes)}%`;
}

/** The table rows of `kimg gc` (exported for tests). */
export function gcRows(decisions: readonly ImageGCDecision[]): { headers: string[]; rows: string[][] } {
  const headers = ['IMAGE', 'HANDLER', 'IMAGE ID', 'SIZE', 'LAST USED', 'ACTION', 'REASON', 'RANK'];
  const rows = decisions.map((d) => [
    d.image.names[0] ?? truncateId(d.image.id),
    d.image.runtimeHandler === '' ? '<default>' : d.image.runtimeHandler,
    truncateId(d.image.id),
    humanSize(d.image.size),
    iso(d.image.lastUsed) ?? 'never',
    d.action.toUpperCase(),
    d.reason,
    d.rank === undefined ? '-' : String(d.rank),
  ]);
  return { headers, rows };
}

/** The JSON document of `kimg gc -o json` (exported for tests). */
export function gcDocument(result: ImageGCResult, policy: ImageGCPolicy): Record<string, unknown> {
  return {
    dryRun: result.dryRun,
    policy,
    usageBefore: result.usageBefore ?? null,
    usageAfter: result.usageAfter ?? null,
    toFree: result.toFree,
    freed: result.dryRun ? 0 : result.freed,
    wouldFree: result.dryRun ? result.decisions.reduce((a, d) => a + d.bytes, 0) : null,
    bytesReclaimed: result.bytesReclaimed,
    images: result.decisions.map((d) => ({
      key: d.image.key,
      id: d.image.id,
      runtimeHandler: d.image.runtimeHandler,
      names: d.image.names,
      size: d.image.size,
      firstDetected: iso(d.image.firstDetected),
      lastUsed: iso(d.image.lastUsed),
      action: d.action,
      reason: d.reason,
      rank: d.rank ?? null,
      bytes: d.bytes,
      ...(d.error !== undefined ? { error: d.error } : {}),
    })),
    events: result.events.map((e) => ({ type: e.type, reason: e.reason, message: e.message })),
    unmatched: result.unmatched,
    error: result.error ?? null,
  };
}

export function registerGc(program: Command, ctx: CliContext): void {
  addContainerdOption(
    addStoreOptions(
      program
        .command('gc')
        .description(
          'image garbage collection like the kubelet: free the store filesystem down to the low threshold',
        )
        .option('--dry-run', 'print what would be removed, remove nothing')
        .option(
          '--image-service-endpoint <address>',
          "collect a CRI runtime's images (e.g. unix:///run/containerd/containerd.sock) instead of kimg's store; the containers of the config's containerRuntimeEndpoint keep theirs",
        )
        .option(
          '--config <file>',
          'kubelet configuration file (repeat for a KimgConfiguration sibling)',
          collect,
        )
        .option(
          '--in-use <image>',
          'an image used by a container (name or id): never removed (repeatable)',
          collect,
        )
        .option(
          '--pinned <image>',
          `an image never removed, besides ${DEFAULT_PINNED_IMAGES.join(', ')} (repeatable)`,
          collect,
        )
        .option('-o, --output <format>', 'output format: table or json', 'table'),
    ),
  ).action(async (opts: GcCliOptions) => {
    const format = parseOutputFormat(opts.output, ['table', 'json']);
    const config = opts.config && opts.config.length > 0 ? await loadNodeConfig(opts.config) : undefined;
    for (const n of config?.notices ?? []) ctx.stderr.write(`notice: ${n}\n`);
    const policy = config ? imageGCPolicyFromConfig(config.kubelet) : { ...DEFAULT_IMAGE_GC_POLICY };
    const runtime = await openNodeRuntime(config ?? (await loadCliNodeConfig(undefined)), {
      env: ctx.env,
      ...(opts.root !== undefined ? { root: opts.root } : {}),
      credentials: false,
      verification: 'read-only',
      gc: { policy, pinnedImages: opts.pinned ?? [] },
      ...((backend) => (backend !== undefined ? { imageService: backend } : {}))(
        opts.imageServiceEndpoint !== undefined && opts.imageServiceEndpoint !== ''
          ? imageServiceBackend(config?.kimg, { criEndpoint: opts.imageServiceEndpoint })
          : containerdBackend(opts.containerd, config?.kimg),
      ),
    });
    let result: ImageGCResult;
    try {
      // Over containerd or a CRI runtime, the runtime's GC adds the images of its containers itself.
      const inUse = opts.inUse ?? [];
      result = opts.dryRun ? await runtime.gc.plan({ inUse }) : await runtime.gc.garbageCollect({ inUse });
    } finally {
      await runtime.close();
    }
    for (const u of result.unmatched.inUse)
      ctx.stderr.write(`warning: --in-use ${JSON.stringify(u)} names no image in the store\n`);
    for (const e of result.events) ctx.stderr.write(`Warning ${e.reason}: ${escapeTerminal(e.message)}\n`);
    for (const f of result.failed)
      ctx.stderr.write(
        `error: removing ${f.image.id}: ${escapeTerminal(f.error.message)} (${f.error.code})\n`,
      );
    if (format === 'json') {
      ctx.stdout.write(toJson(gcDocument(result, policy)));
    } else {
      const { headers, rows } = gcRows(result.decisions);
      if (rows.length > 0) ctx.stdout.write(toTable(headers, rows));
      const bytes = result.decisions.reduce((a, d) => a + d.bytes, 0);
      const count = result.decisions.filter((d) => d.action === 'delete').length;
      const thresholds = `high ${policy.highThresholdPercent}%, low ${policy.lowThresholdPercent}%`;
      if (result.dryRun) {
        ctx.stdout.write(
          `would remove ${count} image(s), ${bytes} bytes (${humanSize(bytes)}); usage ${percent(result.usageBefore)} (${thresholds})` +
            (result.toFree > 0 ? `, ${result.toFree} bytes to free\n` : '\n'),
        );
      } else {
        ctx.stdout.write(
          `removed ${count} image(s), ${bytes} bytes (${humanSize(bytes)}); blobs swept: ${result.bytesReclaimed} bytes; usage ${percent(result.usageBefore)} -> ${percent(result.usageAfter)} (${thresholds})\n`,
        );
      }
    }
    if (result.dryRun) return;
    const firstFailure = result.failed[0];
    if (firstFailure) ctx.exitStatus = EXIT_STATUS_BY_CODE[firstFailure.error.code] ?? ExitStatus.FAILURE;
    else if (result.error !== undefined) ctx.exitStatus = ExitStatus.STORE;
  });
}
