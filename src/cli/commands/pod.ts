/**
 * `kimg pod defaults -f FILE... [--always-pull-images] [-o yaml|json]`: prints the objects as the API
 * server would store them on create — `imagePullPolicy` defaulted on every container, init container
 * and ephemeral container (Pod, PodTemplate, and the templates of Deployment, StatefulSet, DaemonSet,
 * ReplicaSet, Job, CronJob), and with `--always-pull-images` the AlwaysPullImages admission plugin's
 * `Always` on every container. A thin face over `applyPodDefaults` (src/manager).
 */
import type { Command } from 'commander';
import { readKubernetesObjects } from '../../credentials/index.js';
import { KimgError } from '../../errors/index.js';
import { applyPodDefaults } from '../../manager/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toYaml } from '../output.js';
import type { RegisterCommand } from './register.js';
import { collect } from '../collect.js';

interface PodDefaultsOptions {
  filename: string[];
  alwaysPullImages?: boolean;
  output: string;
}

export const registerPod: RegisterCommand = (program: Command, ctx: CliContext) => {
  const pod = program
    .command('pod')
    .description('Kubernetes Pod helpers (defaulting as the API server does it)');
  pod
    .command('defaults')
    .description(
      'print Pods and workload objects with imagePullPolicy defaulted as the API server stores them on create',
    )
    .requiredOption(
      '-f, --filename <file>',
      'YAML or JSON manifest (multi-document and List allowed; repeatable)',
      collect,
    )
    .option('--always-pull-images', 'apply the AlwaysPullImages admission plugin (every container: Always)')
    .option('-o, --output <format>', 'output format: yaml or json', 'yaml')
    .action(async (options: PodDefaultsOptions) => {
      const format = parseOutputFormat(options.output, ['yaml', 'json']);
      const objects = await readKubernetesObjects(options.filename);
      if (objects.length === 0) {
        throw new KimgError('CONFIG_INVALID', `no objects found in ${options.filename.join(', ')}`, {
          file: options.filename.join(', '),
        });
      }
      const out = objects.map((o) =>
        applyPodDefaults(o.object, { alwaysPullImages: options.alwaysPullImages === true }),
      );
      if (format === 'json') {
        ctx.stdout.write(toJson(out.length === 1 ? out[0] : { apiVersion: 'v1', kind: 'List', items: out }));
      } else {
        ctx.stdout.write(out.map((o) => toYaml(o)).join('---\n'));
      }
    });
};
