/**
 * `kimg creds match IMAGE` and `kimg creds explain IMAGE`: which credentials kubelet would try for an
 * image, in order, from the pod's pull Secrets (`-f` manifests), the node-wide docker config (kubelet's
 * search path) plus `--docker-config` files, and exec credential plugins. `explain` adds every near
 * miss and why it did not match, and every plugin asked: a service-account token provider
 * (`tokenAttributes`) with its audience and the ServiceAccount it ran for, or why it was skipped (no
 * token source, no pod or ServiceAccount, a required annotation missing, no token file). Passwords and
 * tokens are never printed; usernames are.
 */
import type { Command } from 'commander';
import {
  describeSource,
  loadDockerConfigFile,
  PodCredentials,
  ProjectedTokenFileSource,
  pullSecretsFromObjects,
  readKubernetesObjects,
  resolvePodPullSecrets,
  DEFAULT_KUBELET_ROOT_DIR,
  type CredentialMatch,
  type KubeObject,
  type NodeDockerConfig,
  type PodCredentialContext,
  type PodPullSecrets,
  type PullCredentialLookup,
} from '../../credentials/index.js';
import { KimgError, quote } from '../../errors/index.js';
import type { CliContext } from '../context.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import type { RegisterCommand } from './register.js';
import { collect } from '../collect.js';
import { escapeTerminal } from '../../gotext/index.js';

interface CredsOptions {
  dockerConfig: string[];
  filename: string[];
  pod?: string;
  namespace?: string;
  nodeConfig: boolean;
  rootDir: string;
  imageCredentialProviderConfig?: string;
  imageCredentialProviderBinDir?: string;
  serviceAccountTokenDir?: string;
  output: string;
  all?: boolean;
}

function addSourceOptions(cmd: Command): Command {
  return cmd
    .argument('<image>', 'container image as written in a pod spec (nginx:1.25, reg:5000/team/app@sha256:…)')
    .option(
      '--docker-config <file>',
      'docker config.json or .dockercfg to use (repeatable); joins the node-wide group',
      collect,
      [],
    )
    .option(
      '-f, --filename <file>',
      'Kubernetes manifests with Secrets, ServiceAccounts and an optional Pod (YAML/JSON, multi-document, List; repeatable)',
      collect,
      [],
    )
    .option(
      '--pod <name>',
      'the Pod in the manifests whose imagePullSecrets (or ServiceAccount) apply; default: the only Pod, else every Secret',
    )
    .option('-n, --namespace <namespace>', 'namespace of the pod when no Pod is given (default "default")')
    .option('--no-node-config', "skip kubelet's node-wide docker config search")
    .option(
      '--root-dir <dir>',
      'kubelet root directory, first place of the node-wide search',
      DEFAULT_KUBELET_ROOT_DIR,
    )
    .option(
      '--image-credential-provider-config <path>',
      'CredentialProviderConfig file or directory (exec plugins)',
    )
    .option(
      '--image-credential-provider-bin-dir <dir>',
      'directory holding the credential provider plugin binaries',
    )
    .option(
      '--service-account-token-dir <dir>',
      'projected service-account tokens for credential provider plugins with tokenAttributes: <dir>/<namespace>/<serviceaccount>/token',
    )
    .option('-o, --output <format>', 'output format: table, json or yaml', 'table');
}

interface Gathered {
  lookup: PullCredentialLookup;
  node: NodeDockerConfig | undefined;
}

/** The pod whose Secrets apply (`--pod`, else the only one), or every Secret of the manifests. */
function selectPod(
  opts: CredsOptions,
  objects: KubeObject[],
): { pod?: PodCredentialContext; secrets?: PodPullSecrets } {
  if (opts.filename.length === 0) return {};
  const pods = objects.filter(
    (o) =>
      o.kind === 'Pod' &&
      (opts.pod === undefined || o.name === opts.pod) &&
      (opts.namespace === undefined || (o.namespace ?? 'default') === opts.namespace),
  );
  if (opts.pod !== undefined && pods.length === 0) {
    throw new KimgError('SECRET_NOT_FOUND', `Pod ${quote(opts.pod)} is not in the given manifests`, {
      input: opts.pod,
    });
  }
  if (pods.length > 1) {
    throw new KimgError(
      'USAGE',
      `the manifests hold ${pods.length} Pods (${pods.map((p) => p.name).join(', ')}): choose one with --pod`,
    );
  }
  const p = pods[0];
  if (p === undefined)
    return { secrets: pullSecretsFromObjects(objects, { namespace: opts.namespace ?? 'default' }) };
  const secrets = resolvePodPullSecrets(p, objects);
  const meta = (p.object.metadata ?? {}) as Record<string, unknown>;
  const uid = typeof meta.uid === 'string' ? meta.uid : '';
  return { pod: { namespace: secrets.namespace, name: p.name, uid, secrets } };
}

async function gather(
  image: string,
  opts: CredsOptions,
  ctx: CliContext,
  explain: boolean,
): Promise<Gathered> {
  const dockerConfigs = [];
  for (const f of opts.dockerConfig) dockerConfigs.push(await loadDockerConfigFile(f));
  const objects = opts.filename.length > 0 ? await readKubernetesObjects(opts.filename) : [];
  const { pod, secrets } = selectPod(opts, objects);
  const configPath = opts.imageCredentialProviderConfig;
  const binDir = opts.imageCredentialProviderBinDir;
  if ((configPath === undefined) !== (binDir === undefined)) {
    throw new KimgError(
      'USAGE',
      '--image-credential-provider-config and --image-credential-provider-bin-dir go together',
    );
  }
  const creds = await PodCredentials.open({
    env: ctx.env,
    nodeDockerConfig: opts.nodeConfig ? { rootDir: opts.rootDir } : false,
    dockerConfigs,
    objects,
    objectsOrigin: 'the manifests',
    ...(configPath !== undefined && binDir !== undefined
      ? {
          plugins: {
            configPath,
            binDir,
            ...(opts.serviceAccountTokenDir !== undefined
              ? { tokenSource: new ProjectedTokenFileSource(opts.serviceAccountTokenDir) }
              : {}),
          },
        }
      : {}),
  });
  const lookup = await creds.lookup(image, pod, {
    explain,
    all: opts.all === true,
    ...(secrets !== undefined ? { secrets } : {}),
  });
  return { lookup, node: await creds.nodeDockerConfig() };
}

function matchRow(m: CredentialMatch): { key: string; username: string; source: CredentialMatch['source'] } {
  return { key: m.key, username: m.auth.username ?? '', source: m.source };
}

/**
 * A plugin's row: its mode (a service-account token provider names its audience and the ServiceAccount
 * it ran for) and what it gave, or why it was skipped.
 */
function pluginRow(r: PullCredentialLookup['pluginResults'][number]): string[] {
  const sa = r.source.pluginServiceAccount;
  const mode =
    r.serviceAccountToken === undefined
      ? 'plain'
      : `service-account token (audience ${r.serviceAccountToken.audience}${sa !== undefined ? `, ${sa.namespace}/${sa.name}` : ''})`;
  const result =
    r.skipped !== undefined
      ? `skipped: ${r.skipped}`
      : `${r.entries.length} credential${r.entries.length === 1 ? '' : 's'}${r.cached ? ' (cached)' : ''}`;
  return [r.source.plugin ?? '', mode, result];
}

function warnProblems(ctx: CliContext, lookup: PullCredentialLookup): void {
  for (const p of lookup.problems) ctx.stderr.write(`warning: ${escapeTerminal(p.message)}\n`);
}

export const registerCreds: RegisterCommand = (program, ctx) => {
  const creds = program
    .command('creds')
    .description('show which registry credentials kubelet would try for an image (never prints passwords)');

  addSourceOptions(creds.command('match'))
    .description(
      'list the credentials that would be tried for IMAGE, in order (-o json: [{key, username, source}])',
    )
    .action(async (image: string, opts: CredsOptions) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const { lookup } = await gather(image, opts, ctx, false);
      warnProblems(ctx, lookup);
      const rows = lookup.matches.map(matchRow);
      if (format === 'json') ctx.stdout.write(toJson(rows));
      else if (format === 'yaml') ctx.stdout.write(toYaml(rows));
      else if (rows.length === 0)
        ctx.stdout.write(
          `No credentials match ${lookup.repository}: the pull would be attempted without credentials.\n`,
        );
      else
        ctx.stdout.write(
          toTable(
            ['#', 'key', 'username', 'source'],
            lookup.matches.map((m, i) => [
              i + 1,
              m.key + (m.fallback === true ? ' (Docker Hub fallback)' : ''),
              m.auth.username,
              describeSource(m.source),
            ]),
          ),
        );
    });

  addSourceOptions(creds.command('explain'))
    .description(
      'the credentials for IMAGE as `match`, plus every near miss and why it did not match (scheme, trailing slash, port, glob label count, path prefix, Secret type or namespace)',
    )
    .option('--all', 'list every non-matching key, not only the related ones')
    .action(async (image: string, opts: CredsOptions) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const { lookup, node } = await gather(image, opts, ctx, true);
      const data = {
        image: lookup.image,
        repository: lookup.repository,
        matches: lookup.matches.map((m) => ({
          ...matchRow(m),
          entryKey: m.entryKey,
          ...(m.fallback === true ? { fallback: true } : {}),
        })),
        nearMisses: lookup.nearMisses.map((n) => ({
          key: n.key,
          entryKey: n.entryKey,
          source: n.source,
          reason: n.reason.kind,
          message: n.message,
        })),
        problems: lookup.problems.map((p) => ({ source: p.source, code: p.code, message: p.message })),
        plugins: lookup.pluginResults.map((r) => ({
          plugin: r.source.plugin,
          ...(r.serviceAccountToken !== undefined
            ? {
                serviceAccountToken: {
                  audience: r.serviceAccountToken.audience,
                  ...(r.source.pluginServiceAccount !== undefined
                    ? {
                        serviceAccount: `${r.source.pluginServiceAccount.namespace}/${r.source.pluginServiceAccount.name}`,
                      }
                    : {}),
                },
              }
            : {}),
          credentials: r.entries.length,
          cached: r.cached,
          ...(r.skipped !== undefined ? { skipped: r.skipped } : {}),
        })),
        ...(node !== undefined
          ? {
              nodeConfigSearch: node.searched.map((s) => ({
                path: s.path,
                outcome: s.outcome,
                ...(s.reason !== undefined ? { reason: s.reason } : {}),
              })),
            }
          : {}),
      };
      if (format === 'json') {
        ctx.stdout.write(toJson(data));
        return;
      }
      if (format === 'yaml') {
        ctx.stdout.write(toYaml(data));
        return;
      }
      let out = `Image: ${lookup.image}\nRepository: ${lookup.repository}\n`;
      if (node !== undefined) {
        const used = node.searched.find((s) => s.outcome === 'used');
        out += `Node docker config: ${used === undefined ? 'none found in the kubelet search path' : used.path}\n`;
      }
      out += '\nCredentials tried, in order:\n';
      out +=
        lookup.matches.length === 0
          ? '  none: the pull would be attempted without credentials\n'
          : lookup.matches.some((m) => m.fallback === true)
            ? toTable(
                ['#', 'key', 'entry', 'username', 'source', 'note'],
                lookup.matches.map((m, i) => [
                  i + 1,
                  m.key,
                  m.entryKey,
                  m.auth.username,
                  describeSource(m.source),
                  m.fallback === true ? 'Docker Hub fallback' : '-',
                ]),
              )
            : toTable(
                ['#', 'key', 'entry', 'username', 'source'],
                lookup.matches.map((m, i) => [
                  i + 1,
                  m.key,
                  m.entryKey,
                  m.auth.username,
                  describeSource(m.source),
                ]),
              );
      out += '\nNear misses:\n';
      out +=
        lookup.nearMisses.length === 0
          ? '  none\n'
          : toTable(
              ['key', 'source', 'reason'],
              lookup.nearMisses.map((n) => [n.entryKey, describeSource(n.source), n.message]),
            );
      if (lookup.pluginResults.length > 0) {
        out += '\nCredential provider plugins:\n';
        out += toTable(['plugin', 'mode', 'result'], lookup.pluginResults.map(pluginRow));
      }
      if (lookup.problems.length > 0) {
        out += '\nSources that gave nothing:\n';
        out += toTable(
          ['source', 'code', 'problem'],
          lookup.problems.map((p) => [p.source, p.code, p.message]),
        );
      }
      ctx.stdout.write(out);
    });
};
