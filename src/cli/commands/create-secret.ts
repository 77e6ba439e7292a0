/**
 * `kimg create secret docker-registry NAME`: prints the Secret `kubectl create secret docker-registry
 * NAME --dry-run=client -o yaml|json` would, byte for byte (same type, key and auth encoding). kimg
 * never talks to an API server: pipe the output to `kubectl apply -f -`.
 */
import { Option } from 'commander';
import { buildDockerRegistrySecret, formatDockerRegistrySecret } from '../../credentials/index.js';
import { KimgError } from '../../errors/index.js';
import type { RegisterCommand } from './register.js';

interface CreateSecretOptions {
  dockerServer?: string;
  dockerUsername?: string;
  dockerPassword?: string;
  dockerEmail?: string;
  fromFile: string[];
  namespace?: string;
  output: string;
  dryRun?: string | boolean;
}

/** `--from-file` is a string slice in kubectl: repeatable and comma-separated. */
const collectSlice = (value: string, previous: string[]): string[] => [...previous, ...value.split(',')];

export const registerCreateSecret: RegisterCommand = (program, ctx) => {
  const create = program
    .command('create')
    .description('print Kubernetes objects as kubectl create --dry-run=client would');
  const secret = create.command('secret').description('print a Secret');
  secret
    .command('docker-registry')
    .description(
      'a kubernetes.io/dockerconfigjson Secret for pulling images, as kubectl create secret docker-registry --dry-run=client -o yaml prints it',
    )
    .argument('<name>', 'name of the Secret')
    .option('--docker-server <server>', 'server location for the registry', 'https://index.docker.io/v1/')
    .option('--docker-username <username>', 'username for registry authentication')
    .option('--docker-password <password>', 'password for registry authentication')
    .option('--docker-email <email>', 'email for the registry (optional)')
    .option(
      '--from-file <[key=]path>',
      'use an existing docker config file; key defaults to .dockerconfigjson (repeatable, comma-separated)',
      collectSlice,
      [],
    )
    .option('-n, --namespace <namespace>', 'namespace to write into metadata.namespace')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .addOption(
      new Option(
        '--dry-run [strategy]',
        'accepted for kubectl compatibility; only "client" (kimg never creates objects on a server)',
      ),
    )
    .action(async (name: string, opts: CreateSecretOptions) => {
      if (opts.dryRun !== undefined && opts.dryRun !== true && opts.dryRun !== 'client') {
        throw new KimgError(
          'USAGE',
          `--dry-run=${String(opts.dryRun)} is not supported: kimg only prints the object (as --dry-run=client)`,
        );
      }
      const manifest = await buildDockerRegistrySecret({
        name,
        ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
        ...(opts.dockerServer !== undefined ? { server: opts.dockerServer } : {}),
        ...(opts.dockerUsername !== undefined ? { username: opts.dockerUsername } : {}),
        ...(opts.dockerPassword !== undefined ? { password: opts.dockerPassword } : {}),
        ...(opts.dockerEmail !== undefined ? { email: opts.dockerEmail } : {}),
        fromFile: opts.fromFile,
      });
      ctx.stdout.write(formatDockerRegistrySecret(manifest, opts.output === 'json' ? 'json' : 'yaml'));
    });
};
