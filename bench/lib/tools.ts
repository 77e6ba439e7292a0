/**
 * The three pullers the bench compares, as command lines, each doing the same job on the same local
 * registry: fetch every blob of the image, verify it, write it to disk durably.
 *
 * - kimg:       `node dist/src/cli/main.js pull HOST/REPO:TAG --root DIR --plain-http HOST -o json`,
 *               a fresh empty root each run.
 * - skopeo:     `skopeo copy -q --src-tls-verify=false docker://HOST/REPO:TAG oci:DIR:TAG`
 *               (containers/image: fetch, verify, write, fsync; no unpack), the previous result
 *               deleted before each run. Run with an accept-anything policy and an empty auth file,
 *               as the test helpers do, so the machine's configuration cannot change the job.
 * - containerd: `ctr -a SOCK -n kimgbench content fetch --plain-http HOST/REPO:TAG` against a private
 *               containerd (test/helpers/containerd.ts); in 1.6 ctr fetches client-side and streams
 *               into the daemon's content store over gRPC, so both processes are measured. The
 *               namespace's images and all content are removed between runs.
 * These are the command lines behind the peer figures of docs/design/performance.md.
 */
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StartedContainerd } from '../../test/helpers/containerd.js';
import { runCommand } from '../../test/helpers/proc.js';

export type ToolName = 'kimg' | 'skopeo' | 'containerd';
export const TOOL_NAMES: readonly ToolName[] = ['kimg', 'skopeo', 'containerd'];

/** Environment for children: nothing of a surrounding test runner or Node flags. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_TEST_CONTEXT' || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

// ---- kimg --------------------------------------------------------------------------------------------

export interface KimgCli {
  available: boolean;
  /** Why it is not usable (when !available). */
  reason?: string;
  /** `kimg pull` takes several images in one invocation (`<image...>` in its usage line). */
  multiImage: boolean;
  mainJs: string;
  version?: string;
}

/** Finds the built CLI and asks it whether it has a `pull` command. */
export async function probeKimg(): Promise<KimgCli> {
  // KIMG_BENCH_MAIN: another CLI entry point, to exercise the bench's kimg path with a stand-in.
  const mainJs =
    process.env.KIMG_BENCH_MAIN ?? fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  if (!existsSync(mainJs)) {
    return {
      available: false,
      multiImage: false,
      mainJs,
      reason: `${mainJs} is missing (run npm run build)`,
    };
  }
  const help = await runCommand(process.execPath, [mainJs, 'pull', '--help'], {
    env: childEnv(),
    allowFailure: true,
    timeoutMs: 30_000,
  });
  const version = await runCommand(process.execPath, [mainJs, '--version'], {
    env: childEnv(),
    allowFailure: true,
    timeoutMs: 30_000,
  });
  const v = version.code === 0 ? version.stdout.trim() : undefined;
  const text = `${help.stdout}\n${help.stderr}`;
  const usage = /^Usage:.*$/m.exec(text)?.[0] ?? '';
  if (help.code !== 0 || !/\bpull\b/.test(usage)) {
    const why = text.trim().split('\n')[0] ?? '';
    return {
      available: false,
      multiImage: false,
      mainJs,
      ...(v !== undefined ? { version: v } : {}),
      reason:
        help.code !== 0
          ? `\`kimg pull --help\` exited ${help.code ?? help.signal} (${why}): src/cli/commands/pull.ts is not built yet`
          : `\`kimg pull --help\` shows no pull command (${why}): src/cli/commands/pull.ts is not built yet`,
    };
  }
  return {
    available: true,
    multiImage: /<[^>]*\.\.\.>|\[[^\]]*\.\.\.\]/.test(usage),
    mainJs,
    ...(v !== undefined ? { version: v } : {}),
  };
}

/** argv (after `node`) of a kimg pull of `refs` into `root` from the plain-HTTP registry `host`. */
export function kimgPullArgs(cli: KimgCli, refs: readonly string[], root: string, host: string): string[] {
  return [cli.mainJs, 'pull', ...refs, '--root', root, '--plain-http', host, '-o', 'json'];
}

/**
 * kimg may report its own peak RSS in `-o json` (process.resourceUsage().maxRSS, KiB): the first
 * number under a key that looks like max/peak RSS, anywhere in the output.
 */
export function selfReportedRss(stdout: string): number | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  const walk = (v: unknown): number | undefined => {
    if (v === null || typeof v !== 'object') return undefined;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (/^(max|peak)_?rss/i.test(k) && typeof x === 'number') return x;
      const inner = walk(x);
      if (inner !== undefined) return inner;
    }
    return undefined;
  };
  return walk(doc);
}

// ---- skopeo ------------------------------------------------------------------------------------------

export interface SkopeoCli {
  bin: string;
  policy: string;
  authFile: string;
}

export async function prepareSkopeo(bin: string, dir: string): Promise<SkopeoCli> {
  const policy = join(dir, 'policy.json');
  const authFile = join(dir, 'auth.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await writeFile(authFile, JSON.stringify({ auths: {} }));
  return { bin, policy, authFile };
}

export function skopeoCopyArgs(s: SkopeoCli, host: string, repoTag: string, outDir: string): string[] {
  const tag = repoTag.slice(repoTag.lastIndexOf(':') + 1);
  return [
    '--policy',
    s.policy,
    'copy',
    '-q',
    '--src-tls-verify=false',
    `docker://${host}/${repoTag}`,
    `oci:${outDir}:${tag}`,
  ];
}

export function skopeoEnv(s: SkopeoCli): NodeJS.ProcessEnv {
  return childEnv({ REGISTRY_AUTH_FILE: s.authFile });
}

// ---- containerd --------------------------------------------------------------------------------------

export const CTR_NAMESPACE = 'kimgbench';

export function ctrFetchArgs(ctrd: StartedContainerd, ref: string): string[] {
  return ['-a', ctrd.socket, '-n', CTR_NAMESPACE, 'content', 'fetch', '--plain-http', ref];
}

/**
 * Removes the bench namespace's blobs and images, then lets the synchronous GC of `images rm --sync`
 * delete the backing files (content is stored once for all namespaces; a blob still on disk would be
 * "already present" on the next fetch and never downloaded).
 */
export async function ctrClean(ctrd: StartedContainerd): Promise<void> {
  const list = async (args: string[]): Promise<string[]> =>
    (await ctrd.ctr(args, { namespace: CTR_NAMESPACE })).stdout.split('\n').filter((l) => l.trim() !== '');
  const blobs = await list(['content', 'ls', '-q']);
  if (blobs.length > 0) {
    await ctrd.ctr(['content', 'rm', ...blobs], { namespace: CTR_NAMESPACE, allowFailure: true });
  }
  const images = await list(['images', 'ls', '-q']);
  if (images.length > 0) {
    await ctrd.ctr(['images', 'rm', '--sync', ...images], { namespace: CTR_NAMESPACE, allowFailure: true });
  }
}

/** Blob files in the daemon's content store (any namespace): 0 after a proper clean. */
export async function ctrBlobFiles(ctrd: StartedContainerd): Promise<number> {
  try {
    return (await readdir(join(ctrd.root, 'io.containerd.content.v1.content', 'blobs', 'sha256'))).length;
  } catch {
    return 0;
  }
}

// ---- versions ----------------------------------------------------------------------------------------

/** First line of `cmd args` (stdout or stderr), or 'unavailable'. */
export async function versionOf(cmd: string, args: readonly string[]): Promise<string> {
  const r = await runCommand(cmd, args, { allowFailure: true, timeoutMs: 30_000 }).catch(() => undefined);
  if (r === undefined) return 'unavailable';
  const line = `${r.stdout}\n${r.stderr}`.split('\n').find((l) => l.trim() !== '');
  return line?.trim() ?? 'unavailable';
}
