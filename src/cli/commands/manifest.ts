/**
 * `kimg manifest IMAGE [--platform P] [-o table|json|yaml|raw]`: resolve an image reference on its
 * registry and print the manifest it names (or, with `--platform`, the image manifest an index selects
 * for that platform) with its digest, media type and size. A thin face over `RegistryClient`.
 *
 *     kimg manifest --plain-http 127.0.0.1:5000 127.0.0.1:5000/multi:1 --platform linux/arm64/v8
 *     kimg manifest registry.example/app@sha256:… -o raw | sha256sum
 */
import type { Command } from 'commander';
import { parsePlatform, formatPlatform } from '../../platform/index.js';
import { parseDockerRef } from '../../reference/index.js';
import type { FetchedManifest } from '../../registry/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toYaml } from '../output.js';
import { addRegistryOptions, registrySession, type RegistryCliOptions } from '../registry-options.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal, escapeTerminalBlock } from '../../gotext/index.js';

interface ManifestOptions extends RegistryCliOptions {
  platform?: string;
  output: string;
}

/** What `-o json` prints. */
export interface ManifestOutput {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  platform?: string;
  index?: { digest: string; mediaType: string; size: number };
  manifest: unknown;
}

export const registerManifest: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('manifest')
    .description(
      'fetch and print the manifest an image reference names, with its digest (an index entry with --platform)',
    )
    .argument(
      '<image>',
      'image reference (nginx:1.27, reg:5000/team/app@sha256:…); the tag defaults to latest',
    )
    .option(
      '--platform <os/arch[/variant]>',
      'when the image is an index, print the manifest selected for this platform',
    )
    .option(
      '-o, --output <format>',
      'output format: table, json, yaml, or raw (the exact manifest bytes)',
      'table',
    );
  addRegistryOptions(cmd).action(async (image: string, options: ManifestOptions) => {
    await run(image, options, ctx);
  });
};

async function run(image: string, options: ManifestOptions, ctx: CliContext): Promise<void> {
  const raw = options.output === 'raw';
  const format = raw ? 'table' : parseOutputFormat(options.output, ['table', 'json', 'yaml']);
  const ref = parseDockerRef(image);
  const platform = options.platform !== undefined ? parsePlatform(options.platform) : undefined;
  const session = await registrySession(options, ctx);
  try {
    const { index, manifest } = await session.withCredentials(image, async (auth) => {
      const call = { auth };
      if (!platform) return { index: undefined, manifest: await session.client.getManifest(ref, call) };
      return session.client.getImageManifest(ref, { ...call, platform });
    });
    if (raw) {
      ctx.stdout.write(manifest.bytes);
      return;
    }
    const out = describe(ref.normalized, manifest, index, platform ? formatPlatform(platform) : undefined);
    if (format === 'json') ctx.stdout.write(toJson(out));
    else if (format === 'yaml') ctx.stdout.write(toYaml(out));
    else ctx.stdout.write(text(out));
  } finally {
    await session.close();
  }
}

function describe(
  name: string,
  m: FetchedManifest,
  index: FetchedManifest | undefined,
  platform: string | undefined,
): ManifestOutput {
  const out: ManifestOutput = {
    name,
    digest: m.digest,
    mediaType: m.mediaType,
    size: m.bytes.length,
    manifest: m.manifest,
  };
  if (index) {
    out.index = { digest: index.digest, mediaType: index.mediaType, size: index.bytes.length };
    if (platform) out.platform = platform;
  }
  return out;
}

/**
 * The text form. The manifest is the registry's document: `JSON.stringify` escapes its C0 controls but
 * keeps C1 controls and DEL raw (an annotation holding U+009B reads as CSI on some terminals), so the
 * block goes through `escapeTerminalBlock`; `-o json` and `-o raw` stay exact.
 */
function text(o: ManifestOutput): string {
  const lines = [
    `Name:       ${o.name}`,
    `MediaType:  ${o.mediaType}`,
    `Digest:     ${o.digest}`,
    `Size:       ${o.size}`,
  ];
  if (o.index) {
    lines.push(`Index:      ${o.index.digest} (${o.index.mediaType})`);
    if (o.platform) lines.push(`Platform:   ${o.platform}`);
  }
  return (
    lines.map(escapeTerminal).join('\n') +
    '\n\n' +
    escapeTerminalBlock(JSON.stringify(o.manifest, null, 2)) +
    '\n'
  );
}
