/**
 * `kimg admission serve --tls-cert FILE --tls-key FILE [--listen :8443] [--policy FILE]`: run the
 * mutating admission webhook (AlwaysPullImages and digest pinning) over HTTPS, answering
 * `admission.k8s.io/v1` AdmissionReviews from a kube-apiserver. Credentials for resolving tags come
 * from `--docker-config` (node-style config) and `--pull-secrets` (Secret manifests mounted into the
 * webhook's pod); they never appear in responses or logs. One log line per request on stderr.
 * Runs until SIGTERM or SIGINT. Example manifests: deploy/webhook/.
 *
 * A thin face over src/admission `startAdmissionServer` + `ResolutionCache` + `registryResolver`.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  DEFAULT_ADMISSION_LISTEN,
  DEFAULT_ADMISSION_POLICY,
  ResolutionCache,
  loadAdmissionPolicy,
  startAdmissionServer,
  type AdmissionPolicy,
} from '../../admission/index.js';
import { KimgError, quote } from '../../errors/index.js';
import type { CliContext } from '../context.js';
import { addResolverOptions, cliResolver, type ResolverCliOptions } from './pin.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

interface ServeOptions extends ResolverCliOptions {
  tlsCert: string;
  tlsKey: string;
  listen: string;
  policy?: string;
  resolveTimeout: string;
}

export const registerAdmission: RegisterCommand = (program: Command, ctx: CliContext) => {
  const admission = program
    .command('admission')
    .description('admission webhook: AlwaysPullImages and digest pinning for Pods and workloads');
  const serve = admission
    .command('serve')
    .description('serve the mutating admission webhook over HTTPS (admission.k8s.io/v1) until SIGTERM')
    .requiredOption('--tls-cert <file>', 'PEM certificate (chain) the webhook serves')
    .requiredOption('--tls-key <file>', 'PEM private key of the certificate')
    .option(
      '--listen <address>',
      'address to listen on (:8443, 127.0.0.1:0, [::1]:8443)',
      DEFAULT_ADMISSION_LISTEN,
    )
    .option(
      '--policy <file>',
      'policy YAML: pinDigests, alwaysPullImages, failurePolicy, dropTag, cacheTTL, excludeNamespaces (default: pin, Fail, 5m)',
    )
    .option(
      '--resolve-timeout <seconds>',
      'give up resolving an image after this long (webhook timeouts are ≤30 s)',
      '8',
    );
  addResolverOptions(serve).action(async (options: ServeOptions) => {
    await run(options, ctx);
  });
};

async function readPem(flag: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KimgError(
      code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'CONFIG_INVALID',
      `${flag} ${quote(file)} cannot be read (${code ?? 'error'})`,
      { file, cause: e },
    );
  }
}

async function run(options: ServeOptions, ctx: CliContext): Promise<void> {
  // The images come from the pods being admitted, chosen by whoever creates a pod: unbound --creds
  // would go to any host a pod names.
  if (options.creds !== undefined && options.credsHost === undefined) {
    throw new KimgError(
      'USAGE',
      'kimg admission serve resolves images named by pods: --creds needs --creds-host <registry host> (or use --pull-secrets / --docker-config, which are keyed by host)',
    );
  }
  const timeout = Number(options.resolveTimeout);
  if (!Number.isFinite(timeout) || timeout <= 0)
    throw new KimgError(
      'USAGE',
      `--resolve-timeout must be a positive number of seconds, got ${quote(options.resolveTimeout)}`,
    );
  const policy: AdmissionPolicy =
    options.policy !== undefined
      ? await loadAdmissionPolicy(options.policy)
      : { ...DEFAULT_ADMISSION_POLICY };
  const [tlsCert, tlsKey] = [
    await readPem('--tls-cert', options.tlsCert),
    await readPem('--tls-key', options.tlsKey),
  ];
  const session = await cliResolver(options, ctx, Math.round(timeout * 1000));
  try {
    const cache = new ResolutionCache(session.resolve, { ttlMs: policy.cacheTTLMs });
    const log = (line: string): void =>
      void ctx.stderr.write(`${new Date().toISOString()} ${escapeTerminal(line)}\n`);
    const server = await startAdmissionServer({
      listen: options.listen,
      tlsCert,
      tlsKey,
      policy,
      resolve: cache.resolver,
      log,
    });
    ctx.stderr.write(
      `kimg admission: listening on ${server.url} (pinDigests=${policy.pinDigests} alwaysPullImages=${policy.alwaysPullImages} failurePolicy=${policy.failurePolicy} cacheTTL=${policy.cacheTTLMs / 1000}s)\n`,
    );
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      const on = (s: NodeJS.Signals): void => {
        process.removeListener('SIGTERM', on);
        process.removeListener('SIGINT', on);
        resolve(s);
      };
      process.on('SIGTERM', on);
      process.on('SIGINT', on);
    });
    ctx.stderr.write(`kimg admission: ${signal}: stopping\n`);
    await server.close();
    ctx.stderr.write('kimg admission: stopped\n');
  } finally {
    await session.close();
  }
}
