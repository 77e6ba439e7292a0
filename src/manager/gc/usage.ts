/**
 * Image filesystem usage: capacity and available bytes of the filesystem the images live on (statfs),
 * behind a source the manager asks once per run (kubelet's `StatsProvider.ImageFsStats`).
 */
import { promises as fsp } from 'node:fs';
import { KimgError, quote } from '../../errors/index.js';

/** The image filesystem's statistics (kubelet `ImageFsStats`: capacity and available bytes). */
export interface ImageFsStats {
  capacityBytes: number;
  availableBytes: number;
  /** Bytes the image store itself holds (CRI `ImageFsInfo.used_bytes`), when known. */
  usedBytes?: number;
  /** The directory measured. */
  mountpoint?: string;
}

/** Where image GC reads the image filesystem's usage from. */
export interface FsUsageSource {
  /** @throws KimgError when the filesystem cannot be measured (`STORE_IO`). */
  imageFsStats(): Promise<ImageFsStats>;
}

/**
 * The real filesystem holding `path` (`statfs`): capacity = blocks × block size, available = blocks
 * available to unprivileged users × block size (what cAdvisor reports as the filesystem's available
 * bytes). `usedBytes`, when given, adds the store's own used bytes (e.g. from `store.df()`).
 */
export class StatfsUsageSource implements FsUsageSource {
  constructor(
    readonly path: string,
    private readonly usedBytes?: () => Promise<number>,
  ) {}

  async imageFsStats(): Promise<ImageFsStats> {
    let st;
    try {
      st = await fsp.statfs(this.path);
    } catch (e) {
      throw new KimgError(
        'STORE_IO',
        `cannot measure the image filesystem at ${quote(this.path)}: ${String(e)}`,
        {
          file: this.path,
          cause: e,
        },
      );
    }
    const out: ImageFsStats = {
      capacityBytes: st.blocks * st.bsize,
      availableBytes: st.bavail * st.bsize,
      mountpoint: this.path,
    };
    if (this.usedBytes) out.usedBytes = await this.usedBytes();
    return out;
  }
}

/** A usage source with set numbers (tests, simulations). */
export class FakeUsageSource implements FsUsageSource {
  constructor(
    public capacityBytes: number,
    public availableBytes: number,
  ) {}
  /** Thrown by the next reads while set. */
  error: KimgError | undefined;

  async imageFsStats(): Promise<ImageFsStats> {
    if (this.error) throw this.error;
    return { capacityBytes: this.capacityBytes, availableBytes: this.availableBytes };
  }
}
