/**
 * `kimg cri [--endpoint unix:///…] version|images|inspecti|pull|rmi|imagefsinfo`: a crictl-style CRI
 * image client, so the same commands talk to `kimg serve` or to containerd (or any CRI runtime).
 * Output follows crictl: tables by default for `images`, JSON for `inspecti` / `imagefsinfo`;
 * `-o json|yaml|table` everywhere. A thin face over `CriImageService`.
 *
 * The endpoint defaults to `$CONTAINER_RUNTIME_ENDPOINT` (crictl's variable), else kimg's socket.
 */
import type { Command } from 'commander';
import type { AuthConfig } from '../../credentials/index.js';
import { CriImageService, type ImageStatusResult } from '../../cri/index.js';
import { KimgError } from '../../errors/index.js';
import type { ImageFsUsage, ImageInfo } from '../../manager/index.js';
import { humanSize } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { EXIT_STATUS_BY_CODE } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable, toYaml, type OutputFormat } from '../output.js';
import { parseCredsFlag } from '../registry-options.js';
import { DEFAULT_CRI_LISTEN } from './serve.js';
import type { RegisterCommand } from './register.js';

interface CriGlobalOptions {
  endpoint?: string;
  timeout: string;
}

function endpointOf(opts: CriGlobalOptions, ctx: CliContext): string {
  return opts.endpoint ?? ctx.env.CONTAINER_RUNTIME_ENDPOINT ?? DEFAULT_CRI_LISTEN;
}

async function withClient<T>(
  cmd: Command,
  ctx: CliContext,
  fn: (c: CriImageService) => Promise<T>,
): Promise<T> {
  const opts = cmd.optsWithGlobals() as CriGlobalOptions;
  const seconds = Number(opts.timeout);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new KimgError(
      'USAGE',
      `--timeout must be a positive number of seconds, got ${JSON.stringify(opts.timeout)}`,
      {
        input: opts.timeout,
      },
    );
  }
  const client = new CriImageService({
    endpoint: endpointOf(opts, ctx),
    timeoutMs: Math.round(seconds * 1000),
  });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

function render(ctx: CliContext, format: OutputFormat, data: unknown, table: () => string): void {
  if (format === 'json') ctx.stdout.write(toJson(data));
  else if (format === 'yaml') ctx.stdout.write(toYaml(data));
  else ctx.stdout.write(table());
}

/** crictl's IMAGE ID column: the id without `sha256:`, 13 characters. */
function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 13);
}

/** crictl's `images` rows: one per repo tag, or one `<none>` row from the first repo digest. */
function imageRows(images: ImageInfo[]): string[][] {
  const rows: string[][] = [];
  for (const img of images) {
    const size = humanSize(img.size);
    if (img.repoTags.length === 0) {
      const repo = (img.repoDigests[0] ?? '<none>').split('@')[0] ?? '<none>';
      rows.push([repo, '<none>', shortId(img.id), size]);
      continue;
    }
    for (const t of img.repoTags) {
      const colon = t.lastIndexOf(':');
      const slash = t.lastIndexOf('/');
      const [repo, tag] = colon > slash ? [t.slice(0, colon), t.slice(colon + 1)] : [t, '<none>'];
      rows.push([repo, tag, shortId(img.id), size]);
    }
  }
  return rows.sort(
    (a, b) => (a[0] ?? '').localeCompare(b[0] ?? '') || (a[1] ?? '').localeCompare(b[1] ?? ''),
  );
}

/** Parses `--auth` (docker config `auth`, base64 user:pass) for `pull`. */
function authFlag(value: string): { username: string; password: string } {
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i <= 0) throw new KimgError('USAGE', '--auth must be base64 of "username:password"');
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

export const registerCri: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cri = program
    .command('cri')
    .description('talk to a CRI image service (kimg serve, containerd, CRI-O) like crictl')
    .option(
      '--endpoint <address>',
      `CRI socket (env CONTAINER_RUNTIME_ENDPOINT; default ${DEFAULT_CRI_LISTEN})`,
    )
    .option('--timeout <seconds>', 'deadline of each call except pull', '120');

  cri
    .command('version')
    .description('RuntimeService.Version: which runtime serves the socket')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (opts: { output: string }, cmd: Command) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const v = await withClient(cmd, ctx, (c) => c.version());
      render(ctx, format, v, () =>
        [
          `Version:  ${v.version}`,
          `RuntimeName:  ${v.runtimeName}`,
          `RuntimeVersion:  ${v.runtimeVersion}`,
          `RuntimeApiVersion:  ${v.runtimeApiVersion}`,
          '',
        ].join('\n'),
      );
    });

  cri
    .command('images')
    .description('ListImages')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (opts: { output: string }, cmd: Command) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const images = await withClient(cmd, ctx, (c) => c.listImages());
      render(ctx, format, { images }, () => toTable(['IMAGE', 'TAG', 'IMAGE ID', 'SIZE'], imageRows(images)));
    });

  cri
    .command('inspecti')
    .description('ImageStatus (verbose) of each image')
    .argument('<image...>', 'image names or ids')
    .option('--runtime-handler <name>', 'runtime handler the image is stored for')
    .option('-o, --output <format>', 'json, yaml or table', 'json')
    .action(async (images: string[], opts: { output: string; runtimeHandler?: string }, cmd: Command) => {
      const format = parseOutputFormat(opts.output, ['json', 'yaml', 'table']);
      const results: ImageStatusResult[] = await withClient(cmd, ctx, async (c) => {
        const out: ImageStatusResult[] = [];
        for (const image of images) {
          out.push(
            await c.imageStatusVerbose({
              image,
              ...(opts.runtimeHandler ? { runtimeHandler: opts.runtimeHandler } : {}),
            }),
          );
        }
        return out;
      });
      const docs = results.map((r) => ({ status: r.image ?? null, info: parseInfo(r.info) }));
      results.forEach((r, i) => {
        if (r.image === undefined) {
          ctx.stderr.write(`error: no such image ${JSON.stringify(images[i])} present (IMAGE_NOT_PRESENT)\n`);
          ctx.exitStatus = EXIT_STATUS_BY_CODE.IMAGE_NOT_PRESENT;
        }
      });
      const present = results.flatMap((r) => (r.image ? [r.image] : []));
      render(ctx, format, docs.length === 1 ? docs[0] : docs, () =>
        toTable(['IMAGE', 'TAG', 'IMAGE ID', 'SIZE'], imageRows(present)),
      );
    });

  cri
    .command('pull')
    .description('PullImage')
    .argument('<image>', 'image reference')
    .option('--creds <user:password>', 'registry credentials (AuthConfig username/password; never printed)')
    .option('--auth <base64>', 'registry credentials as base64(user:password) (AuthConfig auth)')
    .option('--runtime-handler <name>', 'runtime handler to pull for')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(
      async (
        image: string,
        opts: { creds?: string; auth?: string; runtimeHandler?: string; output: string },
        cmd: Command,
      ) => {
        const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
        if (opts.creds !== undefined && opts.auth !== undefined)
          throw new KimgError('USAGE', 'use either --creds or --auth, not both');
        let auth: AuthConfig | undefined;
        if (opts.creds !== undefined) auth = parseCredsFlag(opts.creds);
        else if (opts.auth !== undefined) {
          const { username, password } = authFlag(opts.auth);
          auth = parseCredsFlag(`${username}:${password}`);
        }
        const spec = { image, ...(opts.runtimeHandler ? { runtimeHandler: opts.runtimeHandler } : {}) };
        const ref = await withClient(cmd, ctx, (c) => c.pullImage(spec, auth));
        render(ctx, format, { imageRef: ref }, () => `Image is up to date for ${ref}\n`);
      },
    );

  cri
    .command('rmi')
    .description('RemoveImage of each image (all its tags)')
    .argument('<image...>', 'image names or ids')
    .option('--runtime-handler <name>', 'runtime handler the image is stored for')
    .action(async (images: string[], opts: { runtimeHandler?: string }, cmd: Command) => {
      await withClient(cmd, ctx, async (c) => {
        for (const image of images) {
          const spec = { image, ...(opts.runtimeHandler ? { runtimeHandler: opts.runtimeHandler } : {}) };
          const status = await c.imageStatus(spec);
          if (status === undefined) {
            ctx.stderr.write(`error: no such image ${JSON.stringify(image)} present (IMAGE_NOT_PRESENT)\n`);
            ctx.exitStatus = EXIT_STATUS_BY_CODE.IMAGE_NOT_PRESENT;
            continue;
          }
          await c.removeImage({ ...spec, image: status.id });
          const names = status.repoTags.length > 0 ? status.repoTags : status.repoDigests;
          for (const n of names.length > 0 ? names : [status.id]) ctx.stdout.write(`Deleted: ${n}\n`);
        }
      });
    });

  cri
    .command('imagefsinfo')
    .description('ImageFsInfo: the image filesystem usage')
    .option('-o, --output <format>', 'json, yaml or table', 'json')
    .action(async (opts: { output: string }, cmd: Command) => {
      const format = parseOutputFormat(opts.output, ['json', 'yaml', 'table']);
      const fs: ImageFsUsage[] = await withClient(cmd, ctx, async (c) => (await c.imageFsInfo()) ?? []);
      render(ctx, format, { imageFilesystems: fs }, () =>
        toTable(
          ['MOUNTPOINT', 'USED', 'INODES', 'TIMESTAMP'],
          fs.map((f) => [
            f.mountpoint,
            humanSize(f.usedBytes),
            f.inodesUsed ?? '',
            new Date(f.timestamp / 1e6).toISOString(),
          ]),
        ),
      );
    });
};

/** Verbose `info` values are JSON documents: print them as objects when they parse. */
function parseInfo(info: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(info)) {
    try {
      out[k] = JSON.parse(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}
