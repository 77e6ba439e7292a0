/**
 * `kimg inspect IMAGE [-o json|yaml]`: one stored image — its record, the platform manifest, the
 * config and (when pulled from one) the index — read from the content store and verified. IMAGE is a
 * reference (`busybox` means `docker.io/library/busybox:latest`) or an image id / id prefix.
 */
import type { Command } from 'commander';
import { lookupImage } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toYaml } from '../output.js';
import { addStoreOptions, withImageBackend, type StoreCliOptions } from '../store-options.js';
import { addContainerdConfigOptions, type ContainerdConfigCliOptions } from '../containerd-options.js';
import { KimgError } from '../../errors/index.js';

export function registerInspect(program: Command, ctx: CliContext): void {
  addContainerdConfigOptions(
    addStoreOptions(
      program
        .command('inspect')
        .description('show a stored image: record, manifest and config')
        .argument('<image>', 'image reference or image id')
        .option('-o, --output <format>', 'output format: json or yaml', 'json')
        .option('--runtime-handler <name>', 'runtime handler the image is stored for', ''),
    ),
  ).action(
    async (
      image: string,
      opts: StoreCliOptions & ContainerdConfigCliOptions & { output: string; runtimeHandler: string },
    ) => {
      const format = parseOutputFormat(opts.output, ['json', 'yaml']);
      const out = await withImageBackend(opts, ctx, async (b) => {
        const svc = b.containerd;
        if (svc !== undefined) {
          // containerd's view: the CRI image, its records and its config.
          const status = await svc.imageStatus({ image });
          if (status === undefined)
            throw new KimgError('IMAGE_NOT_PRESENT', `no such image ${JSON.stringify(image)} in containerd`, {
              input: image,
            });
          const names = new Set([...status.repoTags, ...status.repoDigests, status.id]);
          const records = (await svc.client.imageList()).filter((r) => names.has(r.name));
          const config = JSON.parse((await svc.client.contentRead(status.id)).toString('utf8')) as unknown;
          return { image: status, records, config };
        }
        const store = b.store!;
        const record = await lookupImage(store.images, image, { runtimeHandler: opts.runtimeHandler });
        const read = async (d: string) =>
          JSON.parse((await store.content.readBlob(d)).toString('utf8')) as unknown;
        const manifest = await read(record.manifestDigest);
        const config = await read(record.imageId);
        const index = record.indexDigest ? await read(record.indexDigest) : undefined;
        return { record, manifest, config, ...(index !== undefined ? { index } : {}) };
      });
      ctx.stdout.write(format === 'yaml' ? toYaml(out) : toJson(out));
    },
  );
}
