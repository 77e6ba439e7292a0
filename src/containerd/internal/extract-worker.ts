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

/**
 * Layer bytes pass through gunzip's output Buffers, which V8 frees only when a collection runs; with
 * little JavaScript allocated per byte that is when their external memory reaches V8's limit (64 MiB
 * since the last one). While jobs run, a young-generation collection every 20 ms (about 0.1 ms each)
 * frees them as they go: the helper's peak RSS fell from about 100 MiB to about 80 MiB extracting
 * 128 MiB layers two at a time.
 * The helper is started with `--expose-gc` for this.
 */
const collect = (globalThis as { gc?: (o: { type: 'minor' }) => void }).gc;
let collector: NodeJS.Timeout | undefined;
function collecting(): void {
  if (running.size > 0 && collector === undefined && collect !== undefined)
    collector = setInterval(() => collect({ type: 'minor' }), 20);
  else if (running.size === 0 && collector !== undefined) {
    clearInterval(collector);
    collector = undefined;
  }
}

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
  collecting();
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
        collecting();
        process.send?.(reply);
      },
      () => undefined,
    );
});
