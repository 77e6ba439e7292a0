/**
 * skopeo (containers/image) as the reference client: seeds registries from generated OCI layouts and
 * reads back what a registry serves. Every call gets its own accept-anything signature policy and an
 * empty auth file (REGISTRY_AUTH_FILE), so the machine's ~/.docker/config.json or
 * /run/containers/auth.json never leak into a test. Facts: skopeo keeps OCI manifests
 * byte-for-byte on push (the registry's Docker-Content-Digest equals the layout's digest); Docker
 * schema2 images are made by its conversion on push (`--format v2s2`); its `oci:` transport reads only
 * OCI-typed index.json entries.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireBinary } from './components.js';
import type { GeneratedImage } from './images.js';
import { runCommand, type CommandResult } from './proc.js';
import type { StartedRegistry } from './registry.js';
import { makeTempDir } from './tmp.js';

let support: Promise<{ policy: string; authFile: string }> | undefined;

function supportFiles(): Promise<{ policy: string; authFile: string }> {
  support ??= (async () => {
    const dir = await makeTempDir('skopeo-');
    const policy = join(dir, 'policy.json');
    const authFile = join(dir, 'auth.json');
    await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    await writeFile(authFile, JSON.stringify({ auths: {} }));
    return { policy, authFile };
  })();
  return support;
}

export interface SkopeoOptions {
  /** Extra environment. */
  env?: NodeJS.ProcessEnv;
  /** Default 120 s. */
  timeoutMs?: number;
  /** Resolve instead of rejecting on a non-zero exit (inspect `code`). */
  allowFailure?: boolean;
  /** Strings to redact from error messages (passwords in `--creds`). */
  secrets?: string[];
}

/**
 * Runs `skopeo --policy <accept-anything> ...args` with an empty auth file. Rejects with stderr on
 * failure (unless allowFailure); passwords given in `secrets` are redacted from the message.
 */
export async function skopeo(args: string[], opts: SkopeoOptions = {}): Promise<CommandResult> {
  const bin = requireBinary('skopeo');
  const { policy, authFile } = await supportFiles();
  return runCommand(bin, ['--policy', policy, ...args], {
    env: { ...process.env, REGISTRY_AUTH_FILE: authFile, ...opts.env },
    timeoutMs: opts.timeoutMs ?? 120_000,
    allowFailure: opts.allowFailure === true,
    secrets: opts.secrets ?? [],
  });
}

/** TLS + credential flags of `reg` for skopeo, with the given prefix ('' | 'src-' | 'dest-'). */
export function skopeoRegistryFlags(
  reg: StartedRegistry,
  prefix: '' | 'src-' | 'dest-',
  opts: { anonymous?: boolean } = {},
): { args: string[]; secrets: string[] } {
  const args: string[] = [];
  const secrets: string[] = [];
  if (reg.certsDir !== undefined) args.push(`--${prefix}cert-dir`, reg.certsDir);
  else args.push(`--${prefix}tls-verify=false`); // plain HTTP: containers/image falls back to http
  if (reg.username !== undefined && opts.anonymous !== true) {
    args.push(`--${prefix}creds`, `${reg.username}:${reg.password ?? ''}`);
    if (reg.password) secrets.push(reg.password);
  }
  return { args, secrets };
}

/**
 * Pushes to one registry run one after another: docker-registry 2.8 races when two uploads of the
 * same blobs overlap ("digest invalid" / "blob unknown" on the manifest PUT, seen in CI).
 */
const pushChains = new Map<string, Promise<unknown>>();

/**
 * `skopeo copy oci:<layout>:<tag> docker://<reg.host>/<repoTag>` with the credentials, cert dir or
 * tls-verify=false the registry's mode needs. `format: 'v2s2'` converts to Docker schema2 (manifest
 * list for an index); `all` copies every platform of an index (default: true for an index image, so
 * a generated multi-platform image arrives whole).
 */
export async function skopeoPush(
  img: GeneratedImage,
  reg: StartedRegistry,
  repoTag: string,
  opts: { format?: 'v2s2'; all?: boolean; anonymous?: boolean } = {},
): Promise<void> {
  const previous = pushChains.get(reg.host) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => pushNow(img, reg, repoTag, opts));
  pushChains.set(reg.host, mine);
  try {
    await mine;
  } finally {
    if (pushChains.get(reg.host) === mine) pushChains.delete(reg.host);
  }
}

async function pushNow(
  img: GeneratedImage,
  reg: StartedRegistry,
  repoTag: string,
  opts: { format?: 'v2s2'; all?: boolean; anonymous?: boolean },
): Promise<void> {
  const flags = skopeoRegistryFlags(reg, 'dest-', { anonymous: opts.anonymous === true });
  const all = opts.all ?? img.manifests.length > 1;
  await skopeo(
    [
      'copy',
      '-q',
      ...flags.args,
      ...(opts.format === 'v2s2' ? ['--format', 'v2s2'] : []),
      ...(all ? ['--all'] : []),
      `oci:${img.layoutDir}:${img.tag}`,
      `docker://${reg.host}/${repoTag}`,
    ],
    { secrets: flags.secrets },
  );
}

/** `docker://` reference: `ref` as is if it has a transport or host, else `<reg.host>/<ref>`. */
function dockerRef(ref: string, reg?: StartedRegistry): string {
  if (ref.startsWith('docker://')) return ref;
  if (reg !== undefined && !ref.startsWith(`${reg.host}/`)) return `docker://${reg.host}/${ref}`;
  return `docker://${ref}`;
}

/**
 * `skopeo inspect --raw` of `ref` ('repo:tag' or 'repo@digest' on `reg`, or a full reference):
 * the manifest bytes exactly as the registry serves them.
 */
export async function skopeoInspectRaw(ref: string, reg?: StartedRegistry): Promise<string> {
  const flags = reg ? skopeoRegistryFlags(reg, '') : { args: [], secrets: [] };
  const r = await skopeo(['inspect', '--raw', ...flags.args, dockerRef(ref, reg)], {
    secrets: flags.secrets,
  });
  return r.stdout;
}

/**
 * `skopeo copy docker://<reg>/<repoTag> oci:<layoutDir>:<tag>`: skopeo's own pull, for comparing
 * kimg's store with it. `all` copies every platform of an index.
 */
export async function skopeoPull(
  reg: StartedRegistry,
  repoTag: string,
  layoutDir: string,
  tag: string,
  opts: { all?: boolean } = {},
): Promise<void> {
  const flags = skopeoRegistryFlags(reg, 'src-');
  await skopeo(
    [
      'copy',
      '-q',
      ...flags.args,
      ...(opts.all === true ? ['--all'] : []),
      dockerRef(repoTag, reg),
      `oci:${layoutDir}:${tag}`,
    ],
    { secrets: flags.secrets },
  );
}
