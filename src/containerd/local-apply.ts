/**
 * Local apply: kimg extracts layers into containerd's overlayfs snapshotter itself, instead of asking
 * containerd's `Diff.Apply` to, when it runs on containerd's host as root.
 *
 * Why: with blob bytes written straight into containerd's content directory (`direct-content.ts`),
 * a pull's critical path is the chain of applies — containerd applies one layer after the other, each
 * only once the previous one's snapshot is committed, so one core idles once the fetch is done
 * (docs/design/containerd-backend.md, "Unpack"). A layer's diff does not depend on the layers below
 * it, only where it lands does: kimg extracts each layer, as soon as its blob is committed and
 * concurrently with the fetch and other layers, into a staging directory on the snapshotter's
 * filesystem; the ordered part that remains per layer is `Prepare` → move the staged tree into the
 * prepared snapshot's directory → `Commit`, a few milliseconds.
 *
 * What it mirrors of containerd 1.6 (`diff/apply/apply_linux.go`, `archive/tar.go`,
 * `archive/tar_opts_linux.go`, `snapshots/overlay/overlay.go`): the bottom layer (a `bind` mount from
 * `Prepare`) is applied like a plain directory (whiteouts remove, nothing to hide); every other layer
 * (an `overlay` mount: containerd writes into its `upperdir`) keeps its whiteouts as 0/0 character
 * devices and its opaque directories as `trusted.overlay.opaque=y`; src/unpack's `containerd` option
 * applies entries as `archive.Apply` does; directories the layer needs but does not name take the
 * owner, mode and atime of the lower directory (`mkparent`), and the snapshot's own directory keeps
 * the owner and mode containerd gave it on `Prepare`.
 *
 * Staging: `<overlayfs root>/kimg-staging/<random>/fs` (the snapshotter only reads its `snapshots/`
 * directory and `metadata.db`). A killed pull leaves a staging directory at worst; it is removed when
 * the probe next runs and it is older than 24 h (as kimg's partial blob writes: containerd's own
 * interrupted apply leaves an active snapshot for as long as its lease).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { KimgError } from '../errors/index.js';
import { LocalContentStore, ensureDir, type HasherFactory } from '../store/index.js';
import { extractLayerFile, inheritImplicitDirs } from '../unpack/index.js';
import type { ContainerdClient, ContainerdDescriptor, ContainerdMount } from './client.js';
import { DIRECT_INGEST_MAX_AGE_MS, type DirectContent } from './direct-content.js';
import { GUNZIP_CHUNK, type ExtractJob, type ExtractReply } from './internal/extract-protocol.js';

/** containerd's overlayfs snapshotter plugin. */
const OVERLAY_PLUGIN = { type: 'io.containerd.snapshotter.v1', id: 'overlayfs' } as const;
/** kimg's staging directory under the snapshotter's root (not read by the snapshotter). */
export const LOCAL_STAGING_DIR = 'kimg-staging';
/** Layers extracted at once per process (the machine's cores are the limit). */
export const DEFAULT_LOCAL_APPLY_CONCURRENCY = 2;

/**
 * Where layers are extracted: `process` = a helper process per kimg process (the default: the layers'
 * extraction gets its own core and memory, as containerd's own apply runs in containerd's process and
 * its gzip in `unpigz`; docs/design/containerd-backend.md has the measurements), `main` = on the main
 * thread.
 */
export type LocalApplyRunner = 'process' | 'main';

/** The helper's script, next to this module's (the executable's bundle puts it there too). */
const HELPER = fileURLToPath(new URL('./internal/extract-worker.js', import.meta.url));
/** A helper without work for this long exits (a serving process gives its memory back). */
const HELPER_IDLE_MS = 10_000;

/** The extraction helper process: started at the first job, ended when idle or when kimg exits. */
class ExtractHelper {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (r: ExtractReply) => void>();
  private idle: NodeJS.Timeout | undefined;

  run(job: Omit<ExtractJob, 'op' | 'id'>, signal?: AbortSignal): Promise<string[]> {
    const c = this.start();
    const id = this.nextId++;
    clearTimeout(this.idle);
    // While a job runs, the helper's channel keeps kimg alive to hear its answer.
    c.channel?.ref();
    return new Promise<string[]>((resolve, reject) => {
      const onAbort = (): void => void c.send({ op: 'cancel', id });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, (r) => {
        signal?.removeEventListener('abort', onAbort);
        if (r.ok) resolve(r.implicitDirs);
        else reject(new KimgError(r.code, r.message, r.details));
      });
      try {
        c.send({ op: 'extract', id, ...job } satisfies ExtractJob);
      } catch (e) {
        this.pending.get(id)?.({ id, ok: false, code: 'STORE_IO', message: String(e), details: {} });
        this.pending.delete(id);
        if (this.pending.size === 0) c.channel?.unref();
      }
    });
  }

  private start(): ChildProcess {
    if (this.child !== undefined) return this.child;
    // A small young generation (layer bytes live in Buffers outside the heap, as `kimg` itself runs),
    // and `gc` for the helper to free those Buffers as it goes (extract-worker.ts).
    const c = fork(HELPER, [], {
      execArgv: ['--max-semi-space-size=2', '--expose-gc'],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    c.unref();
    const failAll = (message: string): void => {
      if (this.child === c) this.child = undefined;
      for (const [id, settle] of this.pending)
        settle({
          id,
          ok: false,
          code: 'STORE_IO',
          message: `layer extraction helper: ${message}`,
          details: {},
        });
      this.pending.clear();
      // Nothing to wait for from it any more: it must not keep kimg running.
      c.channel?.unref();
    };
    c.on('message', (r: ExtractReply) => {
      const settle = this.pending.get(r.id);
      this.pending.delete(r.id);
      settle?.(r);
      if (this.pending.size > 0) return;
      c.channel?.unref();
      this.idle = setTimeout(() => {
        if (this.pending.size === 0 && this.child === c) {
          this.child = undefined;
          c.disconnect();
        }
      }, HELPER_IDLE_MS);
      this.idle.unref();
    });
    c.on('error', (e) => failAll(e.message));
    c.on('exit', (code, sig) => failAll(`exited (${sig ?? code})`));
    this.child = c;
    return c;
  }
}

/** Why local apply is off (for tests and diagnostics), or where it works. */
export type LocalApplyState = { usable: true; root: string } | { usable: false; reason: string };

/** A layer extracted into staging, waiting for its snapshot. */
export interface StagedLayer {
  /** The staging directory (removed once the layer is placed or dropped). */
  dir: string;
  /** The layer's tree (`dir/fs`), moved into the snapshot. */
  fs: string;
  /** Directories the layer needed but does not name (see src/unpack `inheritImplicitDirs`). */
  implicitDirs: string[];
}

/** Where a prepared snapshot's tree goes, from its mounts. */
interface SnapshotDirs {
  upper: string;
  /** The lower layers' directories, top first ([] for the bottom layer). */
  lowers: string[];
}

/** Local apply for one containerd (see the module comment); from {@link openLocalApply}. */
export class LocalApply {
  private running = 0;
  /** Extractions waiting for a slot, by layer index: the lowest goes first (its apply is next in line). */
  private readonly waiting: { index: number; go: () => void }[] = [];
  private readonly helper: ExtractHelper | undefined;

  /** @internal use {@link openLocalApply}. */
  constructor(
    /** The overlayfs snapshotter's root (`/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs`). */
    readonly root: string,
    private readonly direct: DirectContent,
    private readonly hasher: HasherFactory,
    private readonly concurrency = DEFAULT_LOCAL_APPLY_CONCURRENCY,
    runner: LocalApplyRunner = 'process',
  ) {
    this.helper = runner === 'process' ? new ExtractHelper() : undefined;
  }

  get staging(): string {
    return join(this.root, LOCAL_STAGING_DIR);
  }

  /**
   * Extracts layer `index` (`diffId` checked: `DIGEST_MISMATCH` naming the layer) from its blob file in
   * containerd's content directory into a new staging directory; at most `concurrency` at once in this
   * process. The staging directory is removed on failure.
   */
  async extract(
    layer: ContainerdDescriptor,
    diffId: string,
    index: number,
    signal?: AbortSignal,
  ): Promise<StagedLayer> {
    await this.slot(index);
    const dir = join(this.staging, `${diffId.slice(7, 23)}-${randomBytes(6).toString('hex')}`);
    try {
      signal?.throwIfAborted();
      await fsp.mkdir(dir, 0o700);
      const fs = join(dir, 'fs');
      await fsp.mkdir(fs, 0o755);
      const blobPath = this.direct.blobPath(layer.digest);
      const mode = index === 0 ? 'rootfs' : 'overlay';
      const desc = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
      const implicitDirs =
        this.helper !== undefined
          ? await this.helper.run({ blobPath, layer: desc, diffId, dir: fs, mode, index }, signal)
          : (
              await extractLayerFile(blobPath, desc, diffId, fs, {
                mode,
                containerd: true,
                index,
                gunzipChunk: GUNZIP_CHUNK,
                hasher: this.hasher,
                ...(signal !== undefined ? { signal } : {}),
              })
            ).implicitDirs;
      return { dir, fs, implicitDirs };
    } catch (e) {
      await fsp.rm(dir, { recursive: true, force: true });
      throw e;
    } finally {
      this.release();
    }
  }

  /**
   * Moves a staged layer into the snapshot `mounts` (from `Prepare`) describe; false (nothing moved,
   * the snapshot's directory as it was) when they are not the shape containerd's overlayfs snapshotter
   * gives or the move is refused, for the caller to apply through containerd instead.
   */
  async place(staged: StagedLayer, mounts: readonly ContainerdMount[]): Promise<boolean> {
    const dirs = this.snapshotDirs(mounts);
    if (dirs === undefined) return false;
    inheritImplicitDirs(staged.fs, staged.implicitDirs, dirs.lowers);
    // containerd's Prepare made the snapshot's directory (0755, owned like its parent's): keep that.
    const st = await fsp.lstat(dirs.upper).catch(() => undefined);
    if (st === undefined || !st.isDirectory()) return false;
    await fsp.lchown(staged.fs, st.uid, st.gid);
    await fsp.chmod(staged.fs, st.mode & 0o7777);
    try {
      await fsp.rmdir(dirs.upper);
    } catch {
      return false; // not empty: not a fresh snapshot
    }
    try {
      await fsp.rename(staged.fs, dirs.upper);
    } catch {
      // EXDEV or anything else: put the empty directory back for containerd's apply.
      await fsp.mkdir(dirs.upper, st.mode & 0o7777);
      await fsp.lchown(dirs.upper, st.uid, st.gid);
      return false;
    }
    return true;
  }

  /** Removes a staged layer (placed or not). */
  async discard(staged: StagedLayer): Promise<void> {
    await fsp.rm(staged.dir, { recursive: true, force: true });
  }

  /**
   * The snapshot's directories from containerd's overlayfs mounts: a `bind` of `<root>/snapshots/<id>/fs`
   * for a snapshot without parent, else an `overlay` with `upperdir=` and `lowerdir=` (top first), every
   * directory inside `<root>/snapshots/`; undefined for anything else.
   */
  private snapshotDirs(mounts: readonly ContainerdMount[]): SnapshotDirs | undefined {
    const inside = (p: string): boolean =>
      p.startsWith(join(this.root, 'snapshots') + '/') && !p.split('/').includes('..') && p.endsWith('/fs');
    if (mounts.length !== 1) return undefined;
    const m = mounts[0]!;
    if (m.type === 'bind') return inside(m.source) ? { upper: m.source, lowers: [] } : undefined;
    if (m.type !== 'overlay') return undefined;
    const opt = (k: string): string | undefined =>
      m.options.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
    const upper = opt('upperdir');
    const lowers = opt('lowerdir')?.split(':') ?? [];
    if (upper === undefined || lowers.length === 0 || ![upper, ...lowers].every(inside)) return undefined;
    return { upper, lowers };
  }

  private async slot(index: number): Promise<void> {
    if (this.running < this.concurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((go) => {
      this.waiting.push({ index, go });
      this.waiting.sort((a, b) => a.index - b.index);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next.go();
    else this.running--;
  }
}

/** Options of {@link openLocalApply}. */
export interface LocalApplyOptions {
  /** Layers extracted at once (default 2). */
  concurrency?: number | undefined;
  /** Where layers are extracted (default `process`). */
  runner?: LocalApplyRunner | undefined;
}

const opened = new WeakMap<ContainerdClient, Promise<LocalApply | LocalApplyState>>();

/**
 * Local apply for `client`'s containerd and `direct` (its usable direct writer: containerd's content
 * directory, reachable here), probed once per client: kimg runs as root, and containerd's overlayfs
 * snapshotter exports its root, writable from here, with kimg's staging directory on the filesystem
 * of its `snapshots/`. Otherwise the state saying why not.
 */
export function openLocalApply(
  client: ContainerdClient,
  direct: DirectContent,
  options: LocalApplyOptions = {},
): Promise<LocalApply | LocalApplyState> {
  let p = opened.get(client);
  if (p === undefined) {
    p = probe(client, direct, options);
    opened.set(client, p);
  }
  return p;
}

async function probe(
  client: ContainerdClient,
  direct: DirectContent,
  options: LocalApplyOptions,
): Promise<LocalApply | LocalApplyState> {
  const off = (reason: string): LocalApplyState => ({ usable: false, reason });
  if (process.geteuid?.() !== 0) return off('kimg does not run as root');
  const hasher = direct.hasher;
  if (hasher === undefined) return off("containerd's content directory is not reachable from here");
  let root: string | undefined;
  try {
    const plugins = await client.plugins([`type==${OVERLAY_PLUGIN.type},id==${OVERLAY_PLUGIN.id}`]);
    root = plugins.find((p) => p.type === OVERLAY_PLUGIN.type && p.id === OVERLAY_PLUGIN.id)?.exports.root;
  } catch (e) {
    return off(`containerd's plugin list is not readable: ${(e as Error).message}`);
  }
  if (root === undefined || root === '') return off("containerd's overlayfs snapshotter exports no root");
  const snapshots = join(root, 'snapshots');
  const staging = join(root, LOCAL_STAGING_DIR);
  try {
    await fsp.access(root, fsc.W_OK | fsc.X_OK);
    await ensureDir(staging, 0o700);
    const [a, b] = await Promise.all([fsp.stat(snapshots), fsp.stat(staging)]);
    if (a.dev !== b.dev) return off(`${staging} is not on the filesystem of ${snapshots}`);
  } catch (e) {
    return off(
      `the overlayfs snapshotter's directory ${root} is not writable from here (${(e as Error).message})`,
    );
  }
  // Staging directories of killed pulls: the sweep of kimg's partial writes, over the staging area
  // (each directory there is an ingest without a ref to it: removed once old enough and unlocked).
  const sweeper = new LocalContentStore({ blobsDir: join(staging, 'none'), ingestDir: staging, hasher });
  void sweeper
    .removeStaleIngests(DIRECT_INGEST_MAX_AGE_MS)
    .catch(() => [])
    .finally(() => void sweeper.close());
  return new LocalApply(root, direct, hasher, options.concurrency, options.runner);
}

/** The probe's answer as a state. */
export function localApplyState(p: LocalApply | LocalApplyState): LocalApplyState {
  return p instanceof LocalApply ? { usable: true, root: p.root } : p;
}
