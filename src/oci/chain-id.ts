/**
 * Layer ChainIDs (image-spec `config.md`, "Layer ChainID"): the identity of a stack of applied layers,
 * which containerd's snapshotters and kimg's `--snapshots` layout both key unpacked layers by.
 */
import { createHash } from 'node:crypto';

/**
 * The ChainIDs of every prefix of `diffIds`: ChainID(L0) = DiffID(L0); ChainID(L0..n) =
 * sha256(ChainID(L0..n-1) + " " + DiffID(Ln)). Empty input gives an empty list.
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}
