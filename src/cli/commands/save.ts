/**
 * `kimg save IMAGE oci:DIR[:REF]`: export a stored image to an OCI image layout (created, or merged
 * into an existing one). REF defaults to the image's full name. The layout is readable by skopeo,
 * umoci and `kimg load`.
 */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson } from '../output.js';
import { addStoreOptions, withStore, type StoreCliOptions } from '../store-options.js';

export function registerSave(program: Command, ctx: CliContext): void {
  addStoreOptions(
    program
      .command('save')
      .description('export a stored image to an OCI layout directory (oci:DIR[:REF])')
      .argument('<image>', 'image reference')
      .argument('<layout>', 'oci:DIR[:REF]')
      .option('--runtime-handler <name>', 'runtime handler the image is stored for', '')
      .option('-o, --output <format>', 'output format: text or json', 'text'),
  ).action(
    async (
      image: string,
      layout: string,
      opts: StoreCliOptions & { runtimeHandler: string; output: string },
    ) => {
      const format = parseOutputFormat(opts.output === 'text' ? 'table' : opts.output, ['table', 'json']);
      const result = await withStore(opts, ctx, (store) =>
        store.save({ image, layout, runtimeHandler: opts.runtimeHandler }),
      );
      if (format === 'json') ctx.stdout.write(toJson(result));
      else ctx.stdout.write(`Saved ${image} to oci:${result.dir}:${result.ref}\n`);
    },
  );
}
