/**
 * `kimg load oci:DIR[:REF] [--name IMAGE] [--platform P]`: import images from an OCI image layout (the
 * pre-pulled-image path). Every blob is verified while it is copied. Prints `Loaded image: <name>` per
 * image, or the result as JSON with `-o json`.
 */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson } from '../output.js';
import { addStoreOptions, withStore, type StoreCliOptions } from '../store-options.js';

export function registerLoad(program: Command, ctx: CliContext): void {
  addStoreOptions(
    program
      .command('load')
      .description('import images from an OCI layout directory (oci:DIR[:REF])')
      .argument('<layout>', 'oci:DIR[:REF]; without REF every image of the layout is loaded')
      .option(
        '--name <image>',
        'store the image under this name (needed when the layout names it only by a tag)',
      )
      .option(
        '--platform <os/arch[/variant]>',
        'platform to take from a multi-platform image (default: this host)',
      )
      .option('-o, --output <format>', 'output format: text or json', 'text'),
  ).action(
    async (layout: string, opts: StoreCliOptions & { name?: string; platform?: string; output: string }) => {
      const format = parseOutputFormat(opts.output === 'text' ? 'table' : opts.output, ['table', 'json']);
      const result = await withStore(opts, ctx, (store) =>
        store.load({
          layout,
          ...(opts.name !== undefined ? { name: opts.name } : {}),
          ...(opts.platform !== undefined ? { platform: opts.platform } : {}),
        }),
      );
      if (format === 'json') ctx.stdout.write(toJson(result));
      else for (const img of result.images) ctx.stdout.write(`Loaded image: ${img.name}\n`);
    },
  );
}
