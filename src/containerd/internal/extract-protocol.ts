/** Messages between local apply and its extraction helper process (`extract-worker.ts`). */
import type { KimgErrorCode } from '../../errors/index.js';

/**
 * gunzip's output chunks: 256 KiB, not zlib's 16 KiB — each chunk is a round trip to libuv's pool, a
 * pass through the tar reader and a write; 16 KiB chunks cost about three times the CPU for a 128 MiB
 * layer (docs/design/containerd-backend.md).
 */
export const GUNZIP_CHUNK = 256 * 1024;

/** One layer to extract. */
export interface ExtractJob {
  op: 'extract';
  id: number;
  blobPath: string;
  layer: { mediaType: string; digest: string; size: number };
  diffId: string;
  dir: string;
  mode: 'overlay' | 'rootfs';
  index: number;
}

/** The outcome of a job. */
export type ExtractReply =
  | { id: number; ok: true; implicitDirs: string[] }
  | { id: number; ok: false; code: KimgErrorCode; message: string; details: Record<string, unknown> };
