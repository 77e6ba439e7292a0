/**
 * `kimg unpack IMAGE DIR [--rootless] [--snapshots DIR] [--force] [-o table|json|yaml] [--progress MODE]`:
 * turns a stored image into an OCI runtime bundle (`DIR/rootfs`, `DIR/config.json`) that `runc run`
 * executes, or — with `--snapshots` — into overlay-ready layer directories keyed by chain ID (shared
 * between images) plus a bundle whose rootfs is their mount point. A thin face over `unpackImage`.
 */
import type { Command } from 'commander';
import { KimgError } from '../../errors/index.js';
import { humanSize, truncateId } from '../../store/index.js';
import { unpackImage, type UnpackEvent, type UnpackResult } from '../../unpack/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toYaml } from '../output.js';
import { parseProgressMode } from '../progress.js';
import { addStoreOptions, withStore, type StoreCliOptions } from '../store-options.js';
import type { RegisterCommand } from './register.js';

interface UnpackCliOptions extends StoreCliOptions {
  rootless?: boolean;
  snapshots?: string;
  force?: boolean;
  runtimeHandler: string;
  output: string;
  progress: string;
}

/** What `-o json` prints. */
export interface UnpackOutput {
  image: string;
  manifest: string;
  id: string;
  bundle: string;
  rootfs: string;
  layers: { digest: string; diffId: string; chainId: string; snapshot?: string; cached?: boolean }[];
  lowerDirs?: string[];
  /** The mount that makes the snapshot layers the bundle's rootfs (snapshot mode). */
  mount?: string;
  /** Peak resident set size of this kimg process, KiB. */
  maxRSS: number;
}

export const registerUnpack: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('unpack')
    .description('unpack a stored image into an OCI runtime bundle (DIR/rootfs + DIR/config.json) for runc')
    .argument('<image>', 'image reference or id in the local store')
    .argument('<dir>', 'bundle directory (created 0700; must be empty unless --force)')
    .option(
      '--rootless',
      'unpack as a non-root user: no owners, no device nodes, a user namespace in config.json',
    )
    .option(
      '--snapshots <dir>',
      'keep one overlay-ready directory per layer diff here, keyed by chain ID (needs root; not with --rootless)',
    )
    .option('--force', 'unpack into a non-empty DIR (its rootfs and config.json are replaced)')
    .option('--runtime-handler <name>', 'runtime handler the image is stored for', '')
    .option('-o, --output <format>', 'output format: table, json or yaml', 'table')
    .option(
      '--progress <mode>',
      'progress on stderr: auto (lines on a terminal, JSON lines otherwise), tty, json, none',
      'auto',
    );
  addStoreOptions(cmd).action(async (image: string, dir: string, options: UnpackCliOptions) => {
    await run(image, dir, options, ctx);
  });
};

function progressPrinter(mode: string, ctx: CliContext): (e: UnpackEvent) => void {
  const m = parseProgressMode(mode);
  const out = ctx.stderr;
  const resolved = m === 'auto' ? (out.isTTY === true ? 'tty' : 'json') : m;
  if (resolved === 'none') return () => {};
  if (resolved === 'json') {
    return (e) => out.write(JSON.stringify({ time: new Date().toISOString(), ...e }) + '\n');
  }
  return (e) => {
    if (e.type === 'layer-done') {
      out.write(
        `layer ${e.index + 1} ${truncateId(e.digest)}: ${e.entries} entries, ${humanSize(e.bytes)} written\n`,
      );
    } else if (e.type === 'layer-cached') {
      out.write(
        `layer ${e.index + 1} ${truncateId(e.digest)}: already unpacked (${truncateId(e.chainId)})\n`,
      );
    } else if (e.type === 'warning') {
      out.write(`warning: ${e.message}\n`);
    }
  };
}

async function run(image: string, dir: string, options: UnpackCliOptions, ctx: CliContext): Promise<void> {
  const format = parseOutputFormat(options.output, ['table', 'json', 'yaml']);
  const onProgress = progressPrinter(options.progress, ctx);
  if (options.snapshots === '') throw new KimgError('USAGE', '--snapshots needs a directory', { input: '' });
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Diff IDs are hashed on the main thread unless KIMG_HASHING says otherwise: inflate already keeps
  // the second core busy, and a hashing worker costs ~6 MiB of the 96 MiB budget (docs/design/unpack.md).
  const env = ctx.env.KIMG_HASHING;
  const hashing = env === 'worker' || env === 'auto' ? env : 'inline';
  let result: UnpackResult;
  try {
    result = await withStore(
      options,
      ctx,
      (store) =>
        unpackImage(store, image, dir, {
          rootless: options.rootless === true,
          force: options.force === true,
          runtimeHandler: options.runtimeHandler,
          ...(options.snapshots !== undefined ? { snapshots: options.snapshots } : {}),
          signal: controller.signal,
          onProgress,
        }),
      { hashing },
    );
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  const mount =
    result.lowerDirs !== undefined
      ? `mount -t overlay overlay -o ro,lowerdir=${result.lowerDirs.join(':')} ${result.rootfs}`
      : undefined;
  const output: UnpackOutput = {
    image: result.image,
    manifest: result.manifestDigest,
    id: result.imageId,
    bundle: result.bundle,
    rootfs: result.rootfs,
    layers: result.layers.map((l) => ({
      digest: l.digest,
      diffId: l.diffId,
      chainId: l.chainId,
      ...(l.snapshot !== undefined ? { snapshot: l.snapshot, cached: l.cached === true } : {}),
    })),
    ...(result.lowerDirs !== undefined ? { lowerDirs: result.lowerDirs } : {}),
    ...(mount !== undefined ? { mount } : {}),
    maxRSS: process.resourceUsage().maxRSS,
  };
  if (format === 'json') ctx.stdout.write(toJson(output));
  else if (format === 'yaml') ctx.stdout.write(toYaml(output));
  else {
    const cached = result.layers.filter((l) => l.cached === true).length;
    ctx.stdout.write(
      `Unpacked ${result.image} (${result.layers.length} layers${result.lowerDirs !== undefined ? `, ${cached} already in ${options.snapshots}` : ''}) into bundle ${result.bundle}\n`,
    );
    if (mount !== undefined) ctx.stdout.write(`Mount the rootfs with: ${mount}\n`);
  }
}
