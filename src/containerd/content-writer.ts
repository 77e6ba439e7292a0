/**
 * containerd's content Write protocol, as a sink the registry client copies blob bodies into.
 *
 * One bidi `Content.Write` stream per blob (containerd `services/content/contentserver`,
 * `content/proxy/content_writer.go`):
 * 1. `STAT {ref, total, expected}` opens (or re-opens) the ingest named `ref` and answers its current
 *    `offset`: the bytes a previous, interrupted writer left, which the caller resumes from with a
 *    `Range` request. If containerd already has the expected digest (in any namespace: content is
 *    shared, the metadata store then adds it to this namespace and to the call's lease) the call fails
 *    with AlreadyExists, which {@link openContentWriter} reports as `undefined`: nothing to write.
 * 2. `WRITE {offset, data}` with the **running** offset (an offset of 0 on a non-empty ingest would
 *    truncate it). containerd answers every message; the answers are this writer's flow control: at
 *    most {@link DEFAULT_CONTENT_WRITER_OPTIONS.maxInFlight} messages are unanswered at a time, so
 *    memory stays flat however large the blob and however slow containerd's disk.
 * 3. `COMMIT {total, offset, expected, labels}`: containerd verifies size and digest (it re-hashes a
 *    resumed ingest from its start), moves the blob into place and applies the labels (labels travel
 *    only on COMMIT). AlreadyExists here is success too (a concurrent writer won).
 *
 * The bytes go from the registry connection into 1 MiB protocol messages (one copy), never to a
 * staging file. Refs follow containerd's pull (`remotes.MakeRefKey`): `layer-<digest>`,
 * `config-<digest>`, `manifest-<digest>`, `index-<digest>`, so kimg and containerd's own puller resume
 * each other's ingests.
 */
import { KimgError } from '../errors/index.js';
import {
  containerdStatus,
  fromContainerdError,
  type ContainerdCallOptions,
  type ContainerdClient,
} from './client.js';
import type { WireWriteContentRequest, WireWriteContentResponse } from './internal/proto.js';

/** Defaults of the writer. */
export const DEFAULT_CONTENT_WRITER_OPTIONS = Object.freeze({
  /** Bytes per WRITE message: containerd's own proxy writer sends up to 1 MiB per message too. */
  messageBytes: 1024 * 1024,
  /** Unanswered WRITE messages per writer (4 MiB buffered at most). */
  maxInFlight: 4,
});

/** The ingest ref containerd's puller uses for a descriptor (containerd `remotes/handlers.go` MakeRefKey). */
export function ingestRef(mediaType: string, digest: string): string {
  const kind = /\.(?:index|manifest\.list)\.|manifest\.list\.v2/.test(mediaType)
    ? 'index'
    : /manifest/.test(mediaType)
      ? 'manifest'
      : /layer|rootfs\.diff|foreign\.diff/.test(mediaType)
        ? 'layer'
        : /config/.test(mediaType)
          ? 'config'
          : 'unknown';
  return `${kind}-${digest}`;
}

/** What to write. */
export interface ContentWriterOptions extends ContainerdCallOptions {
  ref: string;
  digest: string;
  size: number;
}

interface Pending {
  resolve: (r: WireWriteContentResponse) => void;
  reject: (e: Error) => void;
}

/**
 * An open write transaction on containerd's content store (see the module comment). Implements the
 * registry client's `BlobSink`: `write` copies, returns false when the caller should wait for
 * `onDrain`, throws once the stream failed.
 */
export class ContentWriter {
  /** The offset containerd reported at open: bytes of an interrupted ingest to resume after. */
  readonly resumedFrom: number;
  private sent: number;
  private buf: Buffer;
  private fill = 0;
  private readonly spare: Buffer[] = [];
  private inFlight = 0;
  private failed: Error | undefined;
  private readonly pending: Pending[] = [];
  private drainWaiters: ((err?: Error) => void)[] = [];
  private closed = false;

  /** @internal use {@link openContentWriter}. */
  constructor(
    private readonly client: ContainerdClient,
    private readonly stream: ReturnType<ContainerdClient['contentWriteStream']>,
    private readonly options: ContentWriterOptions,
    offset: number,
    /** Resolves the STAT's pending slot; set up by openContentWriter. */
    private readonly queue: { pending: Pending[] },
  ) {
    this.resumedFrom = offset;
    this.sent = offset;
    this.buf = this.nextBuffer();
    this.queue.pending = this.pending;
  }

  /** Bytes taken so far, including the resumed prefix. */
  get offset(): number {
    return this.sent + this.fill;
  }

  /** @internal called by the stream's handlers. */
  _fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    for (const p of this.pending.splice(0)) p.reject(e);
    const waiters = this.drainWaiters.splice(0);
    for (const w of waiters) w(e);
  }

  /** @internal a response arrived. */
  _answered(r: WireWriteContentResponse): void {
    const p = this.pending.shift();
    if (!p) return;
    p.resolve(r);
  }

  write(chunk: Uint8Array): boolean {
    if (this.failed) throw this.failed;
    if (this.offset + chunk.byteLength > this.options.size) {
      const e = new KimgError(
        'SIZE_MISMATCH',
        `blob ${this.options.digest} is larger than its descriptor's ${this.options.size} bytes`,
        { expected: this.options.size, actual: this.offset + chunk.byteLength, input: this.options.digest },
      );
      this._fail(e);
      throw e;
    }
    let pos = 0;
    while (pos < chunk.byteLength) {
      const n = Math.min(this.buf.length - this.fill, chunk.byteLength - pos);
      this.buf.set(chunk.subarray(pos, pos + n), this.fill);
      this.fill += n;
      pos += n;
      if (this.fill === this.buf.length) this.flush();
    }
    return this.inFlight < DEFAULT_CONTENT_WRITER_OPTIONS.maxInFlight;
  }

  onDrain(cb: (err?: Error) => void): void {
    if (this.failed) {
      const e = this.failed;
      queueMicrotask(() => cb(e));
    } else if (this.inFlight < DEFAULT_CONTENT_WRITER_OPTIONS.maxInFlight) queueMicrotask(() => cb());
    else this.drainWaiters.push(cb);
  }

  /**
   * A message buffer no larger than what is left of the blob (small blobs stay small). Full-size
   * buffers are recycled once containerd answered their message (it was serialized and sent long
   * before), so a writer holds at most `maxInFlight + 1` of them instead of one per MiB.
   */
  private nextBuffer(): Buffer {
    const want = Math.min(
      DEFAULT_CONTENT_WRITER_OPTIONS.messageBytes,
      Math.max(1, this.options.size - this.sent),
    );
    const spare = this.spare.pop();
    if (spare !== undefined && spare.length === want) return spare;
    return Buffer.allocUnsafe(want);
  }

  /** Sends what is buffered as one WRITE message. */
  private flush(): void {
    if (this.fill === 0) return;
    const whole = this.buf;
    const data = whole.subarray(0, this.fill);
    const offset = this.sent;
    this.sent += this.fill;
    this.fill = 0;
    // The message keeps `data` until it is serialized: a fresh buffer for the next one.
    this.buf = this.nextBuffer();
    this.inFlight++;
    const expectOffset = this.sent;
    this.send({ action: 'WRITE', ref: this.options.ref, offset, data }).then(
      (r) => {
        this.inFlight--;
        if (whole.length === DEFAULT_CONTENT_WRITER_OPTIONS.messageBytes) this.spare.push(whole);
        if (r.offset !== expectOffset) {
          this._fail(
            new KimgError(
              'CONTAINERD_ERROR',
              `containerd's ingest ${this.options.ref} is at offset ${r.offset} after a write that should end at ${expectOffset}`,
              { expected: expectOffset, actual: 'OUT_OF_RANGE', input: this.options.ref },
            ),
          );
          return;
        }
        if (this.inFlight < DEFAULT_CONTENT_WRITER_OPTIONS.maxInFlight) {
          const waiters = this.drainWaiters.splice(0);
          for (const w of waiters) w();
        }
      },
      () => {
        /* _fail already told everyone */
      },
    );
  }

  private send(req: Partial<WireWriteContentRequest>): Promise<WireWriteContentResponse> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<WireWriteContentResponse>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.stream.write(req);
    });
  }

  /**
   * Flushes and commits with the expected digest and size, applying `labels`. Resolves once the blob
   * is committed (or containerd already had it).
   * @throws `DIGEST_MISMATCH` / `SIZE_MISMATCH` when containerd's verification fails (the ingest is
   *   then aborted, so the next attempt starts from byte 0); `CONTAINERD_ERROR` otherwise.
   */
  async commit(labels: Record<string, string> = {}): Promise<void> {
    if (this.failed) throw this.failed;
    this.flush();
    try {
      await this.send({
        action: 'COMMIT',
        ref: this.options.ref,
        total: this.options.size,
        offset: this.sent,
        expected: this.options.digest,
        labels,
      });
    } catch (e) {
      if (containerdStatus(e) === 'ALREADY_EXISTS') return this.end();
      await this.close();
      const msg = (e as Error).message;
      if (
        /unexpected commit digest|digest mismatch/i.test(msg) ||
        /unexpected commit size|size mismatch/i.test(msg)
      ) {
        await this.client.contentAbort(this.options.ref, this.options).catch(() => undefined);
        throw new KimgError(
          /digest/i.test(msg) ? 'DIGEST_MISMATCH' : 'SIZE_MISMATCH',
          `containerd refused to commit ${this.options.digest}: ${msg}`,
          { expected: this.options.digest, input: this.options.ref, cause: e },
        );
      }
      throw e;
    }
    this.end();
  }

  private end(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.end();
  }

  /**
   * Closes the stream without committing: containerd keeps the ingest (and its bytes) for a later
   * writer of the same ref to resume.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this._fail(this.failed ?? new KimgError('ABORTED', `the write of ${this.options.ref} was closed`));
    this.stream.cancel();
  }
}

/**
 * Opens a write of `digest` under `ref` (STAT). Resolves `undefined` when containerd already has the
 * blob (in any namespace; it is then visible in this one and held by the call's lease), else a
 * writer positioned at the ingest's current offset.
 * @throws `CONTAINERD_ERROR` (UNAVAILABLE with "locked" while another writer holds `ref`), `CONTAINERD_UNAVAILABLE`.
 */
export async function openContentWriter(
  client: ContainerdClient,
  options: ContentWriterOptions,
): Promise<ContentWriter | undefined> {
  const stream = client.contentWriteStream(options);
  const queue: { pending: Pending[] } = { pending: [] };
  const state: { writer?: ContentWriter } = {};
  let early: Error | undefined;
  const fail = (e: Error): void => {
    if (state.writer) state.writer._fail(e);
    else {
      early = e;
      for (const p of queue.pending.splice(0)) p.reject(e);
    }
  };
  stream.on('data', (r: WireWriteContentResponse) => {
    if (state.writer) state.writer._answered(r);
    else queue.pending.shift()?.resolve(r);
  });
  stream.on('error', (e) => fail(fromContainerdError(e, 'Content.Write', client.address, options.ref)));
  stream.on('end', () =>
    fail(
      new KimgError('CONTAINERD_ERROR', `containerd closed the write of ${options.ref}`, {
        actual: 'ABORTED',
      }),
    ),
  );
  const onAbort = (): void => stream.cancel();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  stream.on('close', () => options.signal?.removeEventListener('abort', onAbort));
  let stat: WireWriteContentResponse;
  try {
    stat = await new Promise<WireWriteContentResponse>((resolve, reject) => {
      if (early) return reject(early);
      queue.pending.push({ resolve, reject });
      stream.write({ action: 'STAT', ref: options.ref, total: options.size, expected: options.digest });
    });
  } catch (e) {
    stream.cancel();
    if (containerdStatus(e) === 'ALREADY_EXISTS') return undefined;
    if (options.signal?.aborted)
      throw new KimgError('ABORTED', `the write of ${options.ref} was cancelled`, {
        cause: options.signal.reason,
      });
    throw e;
  }
  if (stat.offset > options.size) {
    // An ingest longer than the blob cannot be right: start over.
    stream.cancel();
    await client.contentAbort(options.ref, options);
    return openContentWriter(client, options);
  }
  state.writer = new ContentWriter(client, stream, options, stat.offset, queue);
  return state.writer;
}

/**
 * Writes a small blob (manifest, index, config) held in memory: opens, writes what the ingest lacks,
 * commits with `labels`. Resolves true when written, false when containerd already had it.
 */
export async function writeContent(
  client: ContainerdClient,
  data: Uint8Array,
  options: ContentWriterOptions & { labels?: Record<string, string> },
): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const w = await openContentWriter(client, options);
    if (!w) return false;
    try {
      if (w.resumedFrom < data.byteLength) w.write(data.subarray(w.resumedFrom));
      await w.commit(options.labels ?? {});
      return true;
    } catch (e) {
      await w.close();
      if (attempt === 0 && w.resumedFrom > 0 && (e as KimgError).code === 'DIGEST_MISMATCH') continue;
      throw e;
    }
  }
}
