/**
 * `kimg prepull -f images.yaml [--config FILE] [--secrets-dir DIR] [--root DIR] [--plain-http HOST]`:
 * puts images on the node before any pod asks for them — the node agent's pre-puller without static
 * pods: the same image manager (pull policy `IfNotPresent`, puller settings, back-off, events), the
 * same credentials (a `secret:` per image from `--secrets-dir`, the node docker config, plugins) and
 * the same pull records (a later pod with other credentials is verified against them). The list is a
 * YAML/JSON list of images or `{image, platform, secret}` (see `parsePrepullList`). `kimg node
 * --prepull FILE` does the same inside the agent, after the pods' pulls.
 *
 * Prints one line per image (IMAGE, PLATFORM, STATE, IMAGE ID or the reason); exit status 0 when all
 * are present, else the first failure's code's status.
 */
import type { ContainerdCliOptions } from '../containerd-options.js';
import type { Command } from 'commander';
import type { KimgErrorCode } from '../../errors/index.js';
import { loadPrepullList, startNodeAgent } from '../../node/index.js';
import type { CliContext } from '../context.js';
import { EXIT_STATUS_BY_CODE, ExitStatus } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { loadCliNodeConfig } from '../pod-options.js';
import type { RegisterCommand } from './register.js';
import { collect } from '../collect.js';
import { escapeTerminal } from '../../gotext/index.js';

interface PrepullCliOptions extends ContainerdCliOptions {
  filename: string;
  config?: string;
  secretsDir?: string;
  root?: string;
  plainHttp?: string[];
  caFile?: string[];
  output: string;
}

export const registerPrepull: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('prepull')
    .description('pre-pull a list of images onto the node (same queue, credentials and pull records as pods)')
    .requiredOption(
      '-f, --filename <file>',
      'the list: images, or {image, platform, secret} entries (YAML/JSON)',
    )
    .option('--config <file>', 'KubeletConfiguration file (puller settings, kimg section)')
    .option('--secrets-dir <dir>', 'directory of Kubernetes YAML with the pull Secrets the list names')
    .option('--root <dir>', "store root (default: the config's rootDir, else KIMG_ROOT / the default)")
    .option(
      '--containerd <address>',
      "pull into containerd's image store at this socket (/run/containerd/containerd.sock or unix://…; namespace k8s.io) instead of kimg's own",
    )
    .option('--plain-http <host>', 'reach this registry host over plain HTTP (repeatable)', collect)
    .option('--ca-file <file>', 'extra CA certificate (PEM) for HTTPS registries (repeatable)', collect)
    .option('-o, --output <format>', 'output format: table, json or yaml', 'table')
    .action(async (opts: PrepullCliOptions) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const list = await loadPrepullList(opts.filename);
      const config = await loadCliNodeConfig(opts.config);
      const agent = await startNodeAgent({
        config,
        env: ctx.env,
        staticPods: false,
        metricsAddr: null,
        criListen: null,
        prepull: list,
        log: (e) => {
          if (e.level !== 'info') ctx.stderr.write(`${e.level}: ${escapeTerminal(e.msg)}\n`);
        },
        ...(opts.secretsDir !== undefined ? { secretsDir: opts.secretsDir } : {}),
        ...(opts.root !== undefined ? { root: opts.root } : {}),
        ...(opts.containerd !== undefined ? { containerd: opts.containerd } : {}),
        registry: {
          ...(opts.plainHttp?.length ? { plainHttp: opts.plainHttp } : {}),
          ...(opts.caFile?.length ? { caFiles: opts.caFile } : {}),
        },
      });
      try {
        await agent.prepullDone;
        const states = agent.prepullState();
        if (format === 'json' || format === 'yaml') {
          ctx.stdout.write(format === 'json' ? toJson(states) : toYaml(states));
        } else {
          ctx.stdout.write(
            toTable(
              ['IMAGE', 'PLATFORM', 'STATE', 'IMAGE ID / REASON'],
              states.map((s) => [
                s.image,
                s.platform ?? '<node>',
                s.state,
                s.state === 'Present' ? s.imageRef : `${s.reason}: ${s.message}`,
              ]),
            ),
          );
        }
        const failed = states.find((s) => s.state !== 'Present');
        if (failed !== undefined) {
          ctx.exitStatus =
            failed.code !== undefined
              ? (EXIT_STATUS_BY_CODE[failed.code as KimgErrorCode] ?? ExitStatus.FAILURE)
              : ExitStatus.FAILURE;
        }
      } finally {
        await agent.close();
      }
    });
};
