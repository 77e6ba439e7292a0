/**
 * `kimg tags REPO [-o table|json|yaml]`: list a repository's tags on its registry (all pages).
 *
 *     kimg tags --plain-http 127.0.0.1:5000 127.0.0.1:5000/small
 */
import type { Command } from 'commander';
import { KimgError } from '../../errors/index.js';
import { parseReference } from '../../reference/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toYaml } from '../output.js';
import { addRegistryOptions, registrySession, type RegistryCliOptions } from '../registry-options.js';
import type { RegisterCommand } from './register.js';

interface TagsOptions extends RegistryCliOptions {
  output: string;
}

export const registerTags: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('tags')
    .description("list a repository's tags on its registry, one per line")
    .argument('<repository>', 'repository without tag or digest (nginx, reg:5000/team/app)')
    .option('-o, --output <format>', 'output format: table (one tag per line), json or yaml', 'table');
  addRegistryOptions(cmd).action(async (repository: string, options: TagsOptions) => {
    const format = parseOutputFormat(options.output, ['table', 'json', 'yaml']);
    const ref = parseReference(repository);
    if (ref.tag !== undefined || ref.digest !== undefined) {
      throw new KimgError(
        'USAGE',
        `kimg tags takes a repository, not an image: drop the tag or digest from ${JSON.stringify(repository)}`,
        { input: repository },
      );
    }
    const session = await registrySession(options, ctx);
    try {
      const tags = await session.withCredentials(repository, (auth) =>
        session.client.listTags(ref, { auth }),
      );
      const out = { name: ref.name, tags };
      if (format === 'json') ctx.stdout.write(toJson(out));
      else if (format === 'yaml') ctx.stdout.write(toYaml(out));
      else ctx.stdout.write(tags.map((t) => t + '\n').join(''));
    } finally {
      await session.close();
    }
  });
};
