/**
 * The helper process local apply extracts layers in (src/containerd `local-apply.ts`): src/unpack's
 * applier makes synchronous file-system calls and hashes every byte; here that runs on its own core
 * and heap, as containerd's own apply runs in containerd's process, instead of holding up kimg's fetch
 * and its calls to containerd. Jobs come over the IPC channel and run concurrently (the caller bounds
 * them); a failure comes back as the KimgError's code, message and details. The helper exits when
 * kimg disconnects (idle, or kimg exited).
 */
import { isKimgError } from '../../errors/index.js';
import { InlineHasherFactory } from '../../store/index.js';
import { extractLayerFile, type ExtractLayerOptions } from '../../unpack/index.js';
import { GUNZIP_CHUNK, type ExtractJob, type ExtractReply } from './extract-protocol.js';

const hasher = new InlineHasherFactory();
const running = new Map<number, AbortController>();

function failure(id: number, e: unknown): ExtractReply {
  if (isKimgError(e)) {
    const { cause: _cause, ...details } = e.details as Record<string, unknown>;
    return { id, ok: false, code: e.code, message: e.message, details };
  }
  return { id, ok: false, code: 'STORE_IO', message: (e as Error)?.message ?? String(e), details: {} };
}

process.on('disconnect', () => {
  for (const ac of running.values()) ac.abort();
  process.exit(0);
});

process.on('message', (m: ExtractJob | { op: 'cancel'; id: number }) => {
  if (m.op === 'cancel') {
    running.get(m.id)?.abort();
    return;
  }
  const ac = new AbortController();
  running.set(m.id, ac);
  const options: ExtractLayerOptions = {
    mode: m.mode,
    containerd: true,
    index: m.index,
    gunzipChunk: GUNZIP_CHUNK,
    hasher,
    signal: ac.signal,
  };
  extractLayerFile(m.blobPath, m.layer, m.diffId, m.dir, options)
    .then(
      (r): ExtractReply => ({ id: m.id, ok: true, implicitDirs: r.implicitDirs }),
      (e: unknown) => failure(m.id, e),
    )
    .then(
      (reply) => {
        running.delete(m.id);
        process.send?.(reply);
      },
      () => undefined,
    );
});
