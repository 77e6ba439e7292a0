/**
 * `kimg images [-o table|wide|json|yaml]`: the images in the local store, like `crictl images`
 * (`cmd/crictl/image.go`): columns IMAGE, TAG, DIGEST, IMAGE ID, SIZE; digest and id without `sha256:`
 * and cut to 13 characters, sizes as go-units `HumanSizeWithPrecision(size, 3)` (`8.81kB`). `wide`
 * adds PLATFORM, HANDLER, SOURCE, PINNED and LAST USED. `json`/`yaml` print `{images: [record...]}`
 * with full values.
 */
import type { Command } from 'commander';
import { humanSize, splitNameTag, truncateId, type ImageRecord } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { addStoreOptions, withImageBackend, type StoreCliOptions } from '../store-options.js';
import { addContainerdConfigOptions, type ContainerdConfigCliOptions } from '../containerd-options.js';

/** The table rows `kimg images` prints for records (exported for tests and the CRI face). */
export function imageRows(
  records: readonly ImageRecord[],
  wide: boolean,
): { headers: string[]; rows: string[][] } {
  const headers = ['IMAGE', 'TAG', 'DIGEST', 'IMAGE ID', 'SIZE'];
  if (wide) headers.push('PLATFORM', 'HANDLER', 'SOURCE', 'PINNED', 'LAST USED');
  const rows = records.map((r) => {
    const [image, tag] = splitNameTag(r.name);
    const row = [image, tag, truncateId(r.digest), truncateId(r.imageId), humanSize(r.size)];
    if (wide) {
      const p = r.platform;
      row.push(
        [p.os, p.architecture, p.variant].filter((x) => x).join('/'),
        r.runtimeHandler === '' ? '<default>' : r.runtimeHandler,
        r.source,
        String(r.pinned === true),
        r.lastUsed,
      );
    }
    return row;
  });
  return { headers, rows };
}

export function registerImages(program: Command, ctx: CliContext): void {
  addContainerdConfigOptions(
    addStoreOptions(
      program
        .command('images')
        .description('list images in the local store (like crictl images)')
        .option('-o, --output <format>', 'output format: table, wide, json or yaml', 'table'),
    ),
  ).action(async (opts: StoreCliOptions & ContainerdConfigCliOptions & { output: string }) => {
    const format = parseOutputFormat(opts.output, ['table', 'wide', 'json', 'yaml']);
    // kimg's records, or containerd's images as its CRI plugin lists them (crictl images over containerd).
    const listed = await withImageBackend(opts, ctx, async (b) =>
      b.containerd !== undefined
        ? { containerd: await b.containerd.listImages() }
        : { records: await b.store!.images.list() },
    );
    if (listed.containerd !== undefined) {
      const images = listed.containerd;
      if (format === 'json') ctx.stdout.write(toJson({ images }));
      else if (format === 'yaml') ctx.stdout.write(toYaml({ images }));
      else {
        const rows: string[][] = [];
        for (const i of images) {
          const tags = i.repoTags.length > 0 ? i.repoTags : ['<none>:<none>'];
          const digest = i.repoDigests[0]?.split('@')[1] ?? '';
          for (const t of tags) {
            const [image, tag] = splitNameTag(t);
            rows.push([image, tag, truncateId(digest), truncateId(i.id), humanSize(i.size)]);
          }
        }
        ctx.stdout.write(toTable(['IMAGE', 'TAG', 'DIGEST', 'IMAGE ID', 'SIZE'], rows));
      }
      return;
    }
    const records = listed.records;
    if (format === 'json') ctx.stdout.write(toJson({ images: records }));
    else if (format === 'yaml') ctx.stdout.write(toYaml({ images: records }));
    else {
      const { headers, rows } = imageRows(records, format === 'wide');
      ctx.stdout.write(toTable(headers, rows));
    }
  });
}
