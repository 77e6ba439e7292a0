/**
 * What the CRI benches share: `kimg serve` started as installed, timing, and emptying containerd's CRI
 * namespace between runs.
 */
import { readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { ContainerdClient } from '../../src/containerd/index.js';
import { CriImageService } from '../../src/cri/index.js';
import type { StartedContainerd } from '../../test/helpers/containerd.js';
import { spawnTracked, waitFor, type TrackedProcess } from '../../test/helpers/proc.js';

/** The installed executable (package.json `bin`), run as a user runs it: its first lines set node's flags. */
const BIN = resolve(dirname(new URL(import.meta.url).pathname), '..', '..', 'bin', 'kimg.js');
const K8S_NS = 'k8s.io';

/**
 * A `kimg serve` child on a fresh root under `work` (`kimg-root-<n>`, socket `k<n>.sock`, log
 * `serve-<n>.log`), and a client whose channel is already connected. `args` are added to serve's.
 */
export async function startKimgServe(
  work: string,
  n: number,
  host: string,
  options: { args?: string[]; timeoutMs?: number } = {},
): Promise<{ proc: TrackedProcess; client: CriImageService; root: string }> {
  const root = join(work, `kimg-root-${n}`);
  const sock = join(work, `k${n}.sock`);
  const proc = spawnTracked(
    'kimg-serve',
    BIN,
    ['serve', '--listen', `unix://${sock}`, '--root', root, '--plain-http', host, ...(options.args ?? [])],
    { stderrFile: join(work, `serve-${n}.log`) },
  );
  const client = new CriImageService({ endpoint: sock, timeoutMs: options.timeoutMs ?? 600_000 });
  await waitFor('kimg serve answers Version', async () => client.version().catch(() => undefined), {
    watch: proc,
    timeoutMs: 30_000,
  });
  return { proc, client, root };
}

/** Runs `fn`, and its wall time in ms. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value };
}

/** Removes every image, lease, blob and snapshot of the CRI namespace (GC synchronous), until none is left. */
export async function containerdClean(ctrd: StartedContainerd, client: ContainerdClient): Promise<void> {
  const list = async (args: string[]) =>
    (await ctrd.ctr(args, { namespace: K8S_NS })).stdout.split('\n').filter((l) => l.trim() !== '');
  const images = await list(['images', 'ls', '-q']);
  if (images.length > 0)
    await ctrd.ctr(['images', 'rm', '--sync', ...images], { namespace: K8S_NS, allowFailure: true });
  for (const l of await client.leaseList()) await client.leaseDelete(l.id, { sync: true });
  const blobs = await list(['content', 'ls', '-q']);
  if (blobs.length > 0)
    await ctrd.ctr(['content', 'rm', ...blobs], { namespace: K8S_NS, allowFailure: true });
  const dir = join(ctrd.root, 'io.containerd.content.v1.content', 'blobs', 'sha256');
  await waitFor(
    'containerd content store and snapshotter empty',
    async () =>
      (await readdir(dir).catch(() => [])).length === 0 &&
      (await client.snapshotList(ctrd.snapshotter)).length === 0
        ? true
        : undefined,
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}
