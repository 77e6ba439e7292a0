/**
 * Unpacking layers into a containerd snapshotter through containerd's snapshots and diff services,
 * the way containerd's own unpacker does (containerd `unpacker.go`, `rootfs/apply.go`):
 *
 * For layer i, with `chain = ChainID(diffIDs[0..i])` and `parent = ChainID(diffIDs[0..i-1])`:
 * 1. `Stat(chain)` (for every layer at once, when the first layer is scheduled, so the Stats are off
 *    the chain of applies): a committed snapshot of that name means the layer (and everything below
 *    it) is already unpacked for this snapshotter, by kimg or by containerd: skip. Layers are unpacked
 *    at most once per snapshotter.
 * 2. `Prepare(key = "extract-<nanos>-<random> <chain>", parent, {containerd.io/snapshot.ref: chain})`;
 *    AlreadyExists with a successful `Stat(chain)` means a concurrent unpacker won: skip.
 * 3. `Diff.Apply(layer blob, mounts)`: containerd reads the blob from its content store, decompresses
 *    it and writes it into the snapshot; the answer's digest is the uncompressed digest, which must be
 *    `diffIDs[i]` (else the key is removed and the pull fails with `DIGEST_MISMATCH`).
 * 4. `Commit(name = chain, key)`; AlreadyExists counts as success.
 * 5. The layer blob gets `containerd.io/uncompressed = diffID` — once every layer is applied, all at
 *    once: each label is a metadata transaction, and containerd's metadata store runs one at a time, so
 *    labelling between the applies would hold up the next Prepare and Commit.
 * After the last layer the config gets `containerd.io/gc.ref.snapshot.<snapshotter> = top chain`, so
 * the snapshots live exactly as long as the image's content.
 *
 * Local apply (`local`, src/containerd `local-apply.ts`: kimg on containerd's host as root, overlayfs):
 * a missing layer is extracted by kimg as soon as its blob is committed — concurrently with the fetch
 * and with other layers, not waiting for its parent — into a staging directory; step 3 is then moving
 * that tree into the prepared snapshot's directory (its implicit directories completed from the lower
 * layers). A layer whose extraction failed for any other reason than its diff ID or a cancel, or
 * whose mounts are not the expected shape, goes through `Diff.Apply` as above; containerd decides.
 *
 * Calls carry the pull's lease, so snapshots prepared or committed before the image record exists
 * are safe from containerd's garbage collector. A staged layer is removed once placed, found present
 * or given up ({@link LayerUnpacker.abandon} when the pull fails before its records).
 */
import { randomBytes } from 'node:crypto';
import { KimgError, isKimgError } from '../errors/index.js';
import { chainIds } from '../oci/index.js';
import {
  containerdStatus,
  type ContainerdClient,
  type ContainerdDescriptor,
  type ContainerdMount,
} from './client.js';
import { LABEL_GC_REF_SNAPSHOT, LABEL_SNAPSHOT_REF, LABEL_UNCOMPRESSED } from './labels.js';
import type { LocalApply, StagedLayer } from './local-apply.js';

/** What unpacking a layer did. */
export type LayerUnpackResult = 'applied' | 'present';

/** Options of {@link LayerUnpacker}. */
export interface LayerUnpackerOptions {
  client: ContainerdClient;
  snapshotter: string;
  /** `rootfs.diff_ids` of the image config. */
  diffIds: readonly string[];
  lease?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Extract layers here and place them into the snapshots (overlayfs on this host); else Diff.Apply. */
  local?: LocalApply | undefined;
}

/** A layer's extraction by local apply: resolves undefined when there is none (present, abandoned). */
interface Staging {
  staged: Promise<StagedLayer | undefined>;
  /** Set once the ordered step or `abandon` took it: exactly one of them removes it. */
  claimed: boolean;
}

/**
 * Unpacks the layers of one image in order (see the module comment). `unpack(i, layer)` may be called
 * as soon as layer i's blob is committed; it waits for layer i-1 itself, so the fetch of later layers
 * overlaps the unpack of earlier ones.
 */
export class LayerUnpacker {
  readonly chainIds: string[];
  private readonly done: Promise<LayerUnpackResult>[] = [];
  private readonly layers: ContainerdDescriptor[] = [];
  /** Applied layers' `[blob digest, diff ID]`, labelled by `finish`. */
  private readonly toLabel: [string, string][] = [];
  /** Whether each chain was a committed snapshot (then held by the lease) when the first layer came. */
  private presentAtStart: Promise<boolean[]> | undefined;
  private readonly staging: (Staging | undefined)[] = [];
  private abandoned = false;
  /** Aborted by `abandon`: extractions stop, and those whose blob never came are not started. */
  private readonly stop = new AbortController();
  /** Resolves when `stop` is aborted (one listener for every layer). */
  private readonly stopped = new Promise<undefined>((r) =>
    this.stop.signal.addEventListener('abort', () => r(undefined), { once: true }),
  );
  /** The extractions' signal: the pull's, or `abandon`. */
  private get extractSignal(): AbortSignal {
    this.combined ??=
      this.o.signal !== undefined ? AbortSignal.any([this.o.signal, this.stop.signal]) : this.stop.signal;
    return this.combined;
  }
  private combined: AbortSignal | undefined;
  /** Layers written into the snapshotter (the others were present). */
  applied = 0;
  /** Of {@link applied}, those kimg extracted itself (local apply); the rest went through Diff.Apply. */
  appliedLocally = 0;

  constructor(private readonly o: LayerUnpackerOptions) {
    this.chainIds = chainIds(o.diffIds);
  }

  /** Whether the whole image is unpacked already (its top ChainID is a committed snapshot). */
  async isUnpacked(): Promise<boolean> {
    const top = this.chainIds[this.chainIds.length - 1];
    if (top === undefined) return true;
    return (await this.o.client.snapshotStat(this.o.snapshotter, top, this.call())) !== undefined;
  }

  /**
   * Schedules layer i (`layer` = its blob descriptor as stored, `ready` resolves once the blob is
   * committed). Must be called for i = 0, 1, ... in order.
   */
  schedule(i: number, layer: ContainerdDescriptor, ready: Promise<unknown>): Promise<LayerUnpackResult> {
    if (i !== this.done.length)
      throw new KimgError('INTERNAL', `layer ${i} scheduled out of order (expected ${this.done.length})`);
    this.layers.push(layer);
    const presentAtStart = (this.presentAtStart ??= Promise.all(
      this.chainIds.map((c) => this.holdIfPresent(c).catch(() => false)),
    ));
    const staging = this.stage(i, layer, Promise.all([ready, presentAtStart]));
    this.staging.push(staging);
    const previous = i === 0 ? Promise.resolve<LayerUnpackResult>('present') : this.done[i - 1]!;
    const p = Promise.all([previous, ready]).then(async () => {
      if (staging !== undefined) staging.claimed = true;
      try {
        if (this.abandoned) throw new KimgError('ABORTED', 'the pull ended before its layers were unpacked');
        return (await presentAtStart)[i] === true
          ? 'present'
          : await this.unpackLayer(i, layer, true, staging);
      } finally {
        await this.discard(staging);
      }
    });
    // Joined by `finish`; an early failure must not be an unhandled rejection meanwhile.
    p.catch(() => undefined);
    this.done.push(p);
    return p;
  }

  /**
   * Starts local apply's extraction of layer i once its blob is committed (`ready`) and its chain was
   * found missing; undefined without local apply.
   */
  private stage(
    i: number,
    layer: ContainerdDescriptor,
    ready: Promise<[unknown, boolean[]]>,
  ): Staging | undefined {
    const { local } = this.o;
    if (local === undefined) return undefined;
    // Given up (`abandon`) before its blob is committed: nothing to extract.
    const staged = Promise.race([ready, this.stopped]).then((r) =>
      r === undefined || r[1][i] === true || this.abandoned
        ? undefined
        : local.extract(layer, this.o.diffIds[i]!, i, this.extractSignal),
    );
    // Awaited by the ordered step (or `abandon`); a failure meanwhile is not unhandled.
    staged.catch(() => undefined);
    return { staged, claimed: false };
  }

  /** Removes a layer's staging directory, whatever became of its extraction. */
  private async discard(staging: Staging | undefined): Promise<void> {
    const s = await staging?.staged.catch(() => undefined);
    if (s !== undefined) await this.o.local?.discard(s).catch(() => undefined);
  }

  /**
   * The pull ends without records (failed or cancelled): layers not yet being placed are not unpacked,
   * their extractions are cancelled (or never start, when their blob never came), and their staging
   * directories are removed; resolves then. What was committed stays
   * with the lease, as after any failed pull.
   */
  async abandon(): Promise<void> {
    this.abandoned = true;
    this.stop.abort();
    const mine = this.staging.filter((s): s is Staging => s !== undefined && !s.claimed);
    for (const s of mine) s.claimed = true;
    await Promise.all(mine.map((s) => this.discard(s)));
  }

  /**
   * Waits for every scheduled layer and labels the config with the top snapshot.
   * @throws the first layer's failure.
   */
  async finish(config: string): Promise<void> {
    const results = await Promise.allSettled(this.done);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const { client } = this.o;
    await Promise.all(
      this.toLabel.map(([digest, diffId]) =>
        client.contentSetLabels(digest, { [LABEL_UNCOMPRESSED]: diffId }, this.call()),
      ),
    );
    const top = this.chainIds[this.chainIds.length - 1];
    if (top === undefined) return;
    await this.o.client.contentSetLabels(
      config,
      { [`${LABEL_GC_REF_SNAPSHOT}.${this.o.snapshotter}`]: top },
      this.call(),
    );
  }

  private call(): { lease?: string; signal?: AbortSignal } {
    return {
      ...(this.o.lease !== undefined ? { lease: this.o.lease } : {}),
      ...(this.o.signal !== undefined ? { signal: this.o.signal } : {}),
    };
  }

  /**
   * Whether snapshot `chain` is committed; if so it is added to the pull's lease first, so containerd's
   * GC cannot take it between this check and the image record that will reference it.
   */
  private async holdIfPresent(chain: string): Promise<boolean> {
    const { client, snapshotter, lease } = this.o;
    if ((await client.snapshotStat(snapshotter, chain, this.call())) === undefined) return false;
    if (lease === undefined) return true;
    await client.leaseAddResource(
      lease,
      { id: chain, type: `snapshots/${snapshotter}` },
      { signal: this.o.signal },
    );
    // Still there once leased: from now on the GC keeps it.
    return (await client.snapshotStat(snapshotter, chain, this.call())) !== undefined;
  }

  /**
   * Unpacks layer i. `checked`: its chain was found missing when the first layer was scheduled (else
   * it is looked up again first: a parent unpacked once more after it was collected).
   */
  private async unpackLayer(
    i: number,
    layer: ContainerdDescriptor,
    checked = false,
    staging?: Staging,
  ): Promise<LayerUnpackResult> {
    const { client, snapshotter } = this.o;
    const chain = this.chainIds[i]!;
    const diffId = this.o.diffIds[i]!;
    const parent = i === 0 ? '' : this.chainIds[i - 1]!;
    const call = this.call();
    if (!checked && (await this.holdIfPresent(chain))) return 'present';
    const labels = { [LABEL_SNAPSHOT_REF]: chain };
    for (let attempt = 0; ; attempt++) {
      const key = `extract-${process.hrtime.bigint()}-${randomBytes(3).toString('base64url')} ${chain}`;
      let mounts;
      try {
        mounts = await client.snapshotPrepare(snapshotter, key, parent, labels, call);
      } catch (e) {
        if (containerdStatus(e) === 'ALREADY_EXISTS') {
          if (await this.holdIfPresent(chain)) return 'present';
          if (attempt < 2) continue;
        }
        // The parent went away (collected after an earlier pull's lease ended): unpack it again.
        if (containerdStatus(e) === 'NOT_FOUND' && i > 0 && attempt < 2) {
          await this.unpackLayer(i - 1, this.layers[i - 1]!);
          continue;
        }
        throw e;
      }
      let committed = false;
      try {
        // The staged tree serves the first attempt only: once placed, it is the snapshot's.
        const placed = await placeStagedLayer(this.o.local, staging, mounts);
        staging = undefined;
        if (!placed) {
          const applied = await client.diffApply(layer, mounts, call);
          if (applied.digest !== diffId) {
            throw new KimgError(
              'DIGEST_MISMATCH',
              `wrong diff id calculated on extraction of layer ${layer.digest}: the config names ${diffId}, the layer unpacks to ${applied.digest}`,
              { expected: diffId, actual: applied.digest, input: layer.digest },
            );
          }
        }
        try {
          await client.snapshotCommit(snapshotter, chain, key, labels, call);
          committed = true;
        } catch (e) {
          // The active snapshot vanished (collected: a caller without a lease): apply once more.
          if (containerdStatus(e) === 'NOT_FOUND' && attempt < 2) continue;
          if (containerdStatus(e) !== 'ALREADY_EXISTS') throw e;
        }
        this.toLabel.push([layer.digest, diffId]);
        this.applied++;
        if (placed) this.appliedLocally++;
        return 'applied';
      } finally {
        if (!committed) await client.snapshotRemove(snapshotter, key, call).catch(() => undefined);
      }
    }
  }
}

/**
 * Places a layer local apply extracted into the prepared snapshot `mounts` describe. false: nothing
 * staged, or the extraction failed for another reason than the layer's content (which containerd's
 * Diff.Apply then judges), or the mounts are not overlayfs's. @throws the extraction's
 * `DIGEST_MISMATCH` (the layer is not what the config says) and `ABORTED`.
 */
async function placeStagedLayer(
  local: LocalApply | undefined,
  staging: Staging | undefined,
  mounts: ContainerdMount[],
): Promise<boolean> {
  if (local === undefined || staging === undefined) return false;
  let staged: StagedLayer | undefined;
  try {
    staged = await staging.staged;
  } catch (e) {
    if (isKimgError(e, 'DIGEST_MISMATCH') || isKimgError(e, 'ABORTED')) throw e;
    return false;
  }
  return staged !== undefined && (await local.place(staged, mounts));
}
