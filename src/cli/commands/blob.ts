/**
 * `kimg blob get IMAGE@DIGEST > file`: download one blob (a layer, a config) from a registry to
 * standard output, verified against its digest and size while it streams. The size comes from
 * `--size` or a `HEAD` request. Refuses to write binary data to a terminal.
 *
 *     kimg blob get --plain-http 127.0.0.1:5000 127.0.0.1:5000/small@sha256:… > layer.tar.gz
 */
import type { Command } from 'commander';
import { pipeline } from 'node:stream/promises';
import { KimgError } from '../../errors/index.js';
import { parseReference } from '../../reference/index.js';
import type { CliContext } from '../context.js';
import { addRegistryOptions, registrySession, type RegistryCliOptions } from '../registry-options.js';
import type { RegisterCommand } from './register.js';

interface BlobGetOptions extends RegistryCliOptions {
  size?: string;
}

export const registerBlob: RegisterCommand = (program: Command, ctx: CliContext) => {
  const blob = program.command('blob').description('registry blobs (layers, configs)');
  const get = blob
    .command('get')
    .description('download a blob to standard output, verifying its digest and size as it streams')
    .argument('<image@digest>', 'repository and blob digest: reg:5000/team/app@sha256:…')
    .option('--size <bytes>', 'the blob size from its descriptor (default: ask the registry with HEAD)');
  addRegistryOptions(get).action(async (image: string, options: BlobGetOptions) => {
    const ref = parseReference(image);
    if (ref.digest === undefined) {
      throw new KimgError(
        'USAGE',
        `kimg blob get needs IMAGE@DIGEST (the blob's digest), got ${JSON.stringify(image)}`,
        { input: image },
      );
    }
    const digest = ref.digest;
    let size: number | undefined;
    if (options.size !== undefined) {
      size = Number(options.size);
      if (!/^\d+$/.test(options.size) || !Number.isSafeInteger(size))
        throw new KimgError('USAGE', `--size must be a byte count, got ${JSON.stringify(options.size)}`, {
          input: options.size,
        });
    }
    if (ctx.stdout.isTTY) {
      throw new KimgError(
        'USAGE',
        'blob content is binary: redirect standard output to a file (kimg blob get IMAGE@DIGEST > file)',
      );
    }
    const session = await registrySession(options, ctx);
    try {
      const stream = await session.withCredentials(image, async (auth) => {
        const s = size ?? (await session.client.statBlob(ref, digest, { auth })).size;
        return session.client.openBlob(ref, { digest, size: s }, { auth });
      });
      await pipeline(stream, ctx.stdout, { end: false });
    } finally {
      await session.close();
    }
  });
};
