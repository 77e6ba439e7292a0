/**
 * `kimg pin -f FILE... [--in-place] [--drop-tag]`: rewrite every container image of Kubernetes
 * manifests (Pods and the pod templates of workloads, init and ephemeral containers included) from
 * a tag to the digest the registry serves now (`nginx:1.27` → `nginx:1.27@sha256:…`; the index
 * digest for a multi-arch image). Comments, key order and layout are kept; only image lines change.
 * Images already pinned are checked to exist. When any image cannot be resolved, every failure is
 * listed and nothing is written (exit status of the first failure's code).
 *
 *     kimg pin -f deploy.yaml > deploy.pinned.yaml
 *     kimg pin -f a.yaml -f b.yaml --in-place --docker-config ~/.docker/config.json
 *
 * A thin face over src/admission `pinImages` with a `registryResolver`.
 */
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  countYamlDocuments,
  pinImages,
  registryResolver,
  type ImageResolver,
  type PinChange,
} from '../../admission/index.js';
import { collectBounded } from '../../bounded/index.js';
import {
  MANIFEST_LIMITS,
  buildKeyring,
  loadDockerConfigFile,
  pullSecretsFromObjects,
  readKubernetesObjects,
  readManifestFile,
  type Keyring,
  type PodPullSecrets,
  type ResolvedPullSecret,
} from '../../credentials/index.js';
import { writeFileAtomic } from '../../durable/index.js';
import { KimgError, quote } from '../../errors/index.js';
import { RegistryClient } from '../../registry/index.js';
import type { CliContext } from '../context.js';
import { toJson } from '../output.js';
import {
  addRegistryOptions,
  checkCredsHost,
  parseCredsFlag,
  registryClientOptions,
  type RegistryCliOptions,
} from '../registry-options.js';
import type { RegisterCommand } from './register.js';
import { collect } from '../collect.js';
import { escapeTerminal } from '../../gotext/index.js';

/** Credential options shared by `pin` and `admission serve`. */
export interface ResolverCliOptions extends RegistryCliOptions {
  pullSecrets?: string[];
}

/** Adds the registry options plus `--pull-secrets FILE` (repeatable). */
export function addResolverOptions(cmd: Command): Command {
  cmd.option(
    '--pull-secrets <file>',
    'Kubernetes Secret manifests (kubernetes.io/dockerconfigjson) whose credentials are used to resolve images (repeatable)',
    collect,
  );
  return addRegistryOptions(cmd);
}

/**
 * Builds a registry-backed resolver from CLI options: `--creds`, else a keyring of the pull Secrets
 * (`--pull-secrets`) then the docker configs (`--docker-config`, node-style), else anonymous.
 * Secret problems (wrong type, missing key) are warned about on stderr (no secret values).
 * @throws KimgError `USAGE`, `FILE_NOT_FOUND`, `DOCKER_CONFIG_INVALID`, `CONFIG_INVALID`, `SECRET_INVALID`.
 */
export async function cliResolver(
  opts: ResolverCliOptions,
  ctx: CliContext,
  timeoutMs?: number,
): Promise<{ resolve: ImageResolver; close(): Promise<void> }> {
  const clientOptions = registryClientOptions(opts, ctx);
  const auth = opts.creds !== undefined ? parseCredsFlag(opts.creds) : undefined;
  checkCredsHost(opts);
  if (auth && (opts.dockerConfig?.length || opts.pullSecrets?.length))
    throw new KimgError('USAGE', 'use either --creds or --docker-config/--pull-secrets, not both');
  let keyring: Keyring | undefined;
  if (opts.dockerConfig?.length || opts.pullSecrets?.length) {
    const dockerConfigs = [];
    for (const f of opts.dockerConfig ?? []) dockerConfigs.push(await loadDockerConfigFile(f));
    const objects = opts.pullSecrets?.length ? await readKubernetesObjects(opts.pullSecrets) : [];
    const namespaces = new Set(
      objects.filter((o) => o.kind === 'Secret').map((o) => o.namespace ?? 'default'),
    );
    const secrets: ResolvedPullSecret[] = [];
    for (const namespace of namespaces) {
      const r = pullSecretsFromObjects(objects, { namespace });
      secrets.push(...r.secrets);
      for (const p of r.problems) {
        if (p.kind !== 'wrong-namespace') ctx.stderr.write(`warning: ${escapeTerminal(p.message)}\n`);
      }
    }
    const podSecrets: PodPullSecrets = { namespace: '', serviceAccountName: '', secrets, problems: [] };
    keyring = buildKeyring({ podSecrets, dockerConfigs });
  }
  const client = new RegistryClient(clientOptions);
  return {
    resolve: registryResolver({ client, keyring, auth, authHost: opts.credsHost, timeoutMs }),
    close: () => client.close(),
  };
}

interface PinCliOptions extends ResolverCliOptions {
  file: string[];
  inPlace?: boolean;
  dropTag?: boolean;
  output: string;
}

export const registerPin: RegisterCommand = (program: Command, ctx: CliContext) => {
  const cmd = program
    .command('pin')
    .description(
      'rewrite container images in Kubernetes manifests from tags to registry digests (name:tag@sha256:…), keeping comments',
    )
    .requiredOption(
      '-f, --file <file>',
      'manifest file, YAML or JSON, multi-document; - for standard input (repeatable)',
      collect,
    )
    .option('--in-place', 'write the pinned manifests back to their files instead of stdout')
    .option('--drop-tag', 'write name@sha256:… instead of name:tag@sha256:…')
    .option(
      '-o, --output <format>',
      'what to print: yaml (the pinned manifests) or json (the changes)',
      'yaml',
    );
  addResolverOptions(cmd).action(async (options: PinCliOptions) => {
    await run(options, ctx);
  });
};

/** Rewrites a manifest file durably (temp + fsync + rename + directory fsync), keeping its mode. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o7777;
  await writeFileAtomic(file, text, {
    mode,
    ioError: (_op, _path, e) =>
      new KimgError('CONFIG_INVALID', `cannot write ${quote(file)}: ${(e as Error).message}`, {
        file,
        cause: e,
      }),
  });
}

/**
 * Standard input (`-f -`) under the manifest-file cap: whatever feeds it, at most
 * `MANIFEST_LIMITS.maxFileBytes` bytes are kept, and more is refused once the stream ends.
 */
async function readStdin(ctx: CliContext): Promise<string> {
  const stdin = ctx.stdin ?? process.stdin;
  const out = await collectBounded(stdin, MANIFEST_LIMITS.maxFileBytes, () => stdin.destroy());
  if (out.truncated) {
    throw new KimgError(
      'CONFIG_INVALID',
      `standard input holds more than the ${MANIFEST_LIMITS.maxFileBytes}-byte manifest limit: refused`,
      { file: '-' },
    );
  }
  return out.data.toString('utf8');
}

/** One manifest file, read like every other manifest reader (`readManifestFile`), or stdin. */
async function readManifest(file: string, ctx: CliContext): Promise<string> {
  return file === '-' ? readStdin(ctx) : readManifestFile(file);
}

async function run(options: PinCliOptions, ctx: CliContext): Promise<void> {
  if (options.output !== 'yaml' && options.output !== 'json')
    throw new KimgError('USAGE', `-o must be yaml or json, got ${quote(options.output)}`);
  const texts: Array<{ file: string; text: string }> = [];
  if (options.inPlace && options.file.includes('-'))
    throw new KimgError('USAGE', '--in-place cannot write back to standard input (-f -)');
  for (const file of options.file) texts.push({ file, text: await readManifest(file, ctx) });
  const session = await cliResolver(options, ctx);
  try {
    // One resolution per distinct image across all files.
    const memo = new Map<string, Promise<string>>();
    const resolve: ImageResolver = (image, o) => {
      let p = memo.get(image);
      if (p === undefined) {
        p = session.resolve(image, o);
        memo.set(image, p);
      }
      return p;
    };
    // The document cap holds for the whole invocation, as for every other manifest reader.
    const results = [];
    let documents = 0;
    for (const { file, text } of texts) {
      const maxDocuments = MANIFEST_LIMITS.maxDocuments - documents;
      results.push({
        file,
        ...(await pinImages(text, { resolve, dropTag: options.dropTag === true, maxDocuments }, file)),
      });
      documents += countYamlDocuments(text);
    }
    const errors = results.flatMap((r) => r.errors.map((e) => ({ file: r.file, ...e })));
    if (errors.length > 0) {
      for (const e of errors)
        ctx.stderr.write(escapeTerminal(`${e.file}: ${e.field} ${quote(e.image)}: ${e.message}`) + '\n');
      const first = errors[0];
      throw new KimgError(
        first?.code ?? 'INTERNAL',
        `${errors.length} image(s) could not be pinned; nothing was written`,
        { items: errors.map((e) => `${e.file}: ${e.field}: ${e.code}`) },
      );
    }
    const changes: Array<PinChange & { file: string }> = results.flatMap((r) =>
      r.changes.map((c) => ({ file: r.file, ...c })),
    );
    if (options.inPlace) {
      for (const r of results) if (r.changes.length > 0) await writeAtomically(r.file, r.text);
    }
    if (options.output === 'json') {
      ctx.stdout.write(
        toJson(
          changes.map((c) => ({
            file: c.file,
            document: c.document,
            kind: c.kind,
            name: c.name,
            field: c.field,
            from: c.from,
            to: c.to,
          })),
        ),
      );
    } else if (!options.inPlace) {
      results.forEach((r, i) => {
        if (i > 0 && !/^\s*---/.test(r.text)) ctx.stdout.write('---\n');
        ctx.stdout.write(r.text.endsWith('\n') || r.text === '' ? r.text : `${r.text}\n`);
      });
    }
    if (options.output !== 'json') {
      for (const c of changes)
        ctx.stderr.write(escapeTerminal(`${c.file}: ${c.field}: ${c.from} -> ${c.to}`) + '\n');
    }
  } finally {
    await session.close();
  }
}
