/** Messages between local apply and its extraction thread (`extract-worker.ts`). */
import type { KimgErrorCode } from '../../errors/index.js';

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
