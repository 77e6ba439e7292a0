/**
 * `kimg rmi IMAGE...`: remove image records, like `crictl rmi` — by reference, or by image id (which
 * removes every name of that image). Prints `Deleted: <name>` per removed record. Blobs stay until the
 * next `kimg store gc`. An image that is not there is reported on stderr and the exit status is 3,
 * after the others have been removed.
 */
import type { Command } from 'commander';
import { lookupImages } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { EXIT_STATUS_BY_CODE } from '../exit-codes.js';
import { addStoreOptions, withImageBackend, type StoreCliOptions } from '../store-options.js';
import { addContainerdConfigOptions, type ContainerdConfigCliOptions } from '../containerd-options.js';

export function registerRmi(program: Command, ctx: CliContext): void {
  addContainerdConfigOptions(
    addStoreOptions(
      program
        .command('rmi')
        .description('remove images from the local store (blobs are freed by `kimg store gc`)')
        .argument('<image...>', 'image references or image ids')
        .option('--runtime-handler <name>', 'runtime handler the images are stored for', ''),
    ),
  ).action(
    async (
      images: string[],
      opts: StoreCliOptions & ContainerdConfigCliOptions & { runtimeHandler: string },
    ) => {
      await withImageBackend(opts, ctx, async (b) => {
        const notFound = (input: string): void => {
          ctx.stderr.write(`error: no such image ${JSON.stringify(input)} (IMAGE_NOT_PRESENT)\n`);
          ctx.exitStatus = EXIT_STATUS_BY_CODE.IMAGE_NOT_PRESENT;
        };
        const svc = b.containerd;
        if (svc !== undefined) {
          // As containerd's CRI RemoveImage: every name of the image; containerd collects its content.
          for (const input of images) {
            const found = await svc.imageStatus({ image: input });
            if (found === undefined) {
              notFound(input);
              continue;
            }
            const names = (await svc.client.imageList()).map((r) => r.name);
            await svc.removeImage({ image: found.id });
            const left = new Set((await svc.client.imageList()).map((r) => r.name));
            for (const n of names) if (!left.has(n) && n !== found.id) ctx.stdout.write(`Deleted: ${n}\n`);
          }
          return;
        }
        const store = b.store!;
        for (const input of images) {
          const found = await lookupImages(store.images, input, { runtimeHandler: opts.runtimeHandler });
          if (found.length === 0) {
            notFound(input);
            continue;
          }
          for (const r of found) {
            if (await store.images.delete(r)) ctx.stdout.write(`Deleted: ${r.name}\n`);
          }
        }
      });
    },
  );
}
