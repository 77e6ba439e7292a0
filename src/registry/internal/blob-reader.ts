/**
 * A blob download as a Readable that survives broken connections.
 *
 * The reader asks for `[position, size)` of a blob, pushes bytes downstream with backpressure (the
 * HTTP body is paused while the consumer is full; no promise or allocation per chunk), and counts
 * them against the descriptor size. When a connection dies before `size` bytes arrived (reset,
 * premature end, unexpected EOF) it re-requests with `Range: bytes=<position>-` and accepts only a
 * `206` whose `Content-Range` starts exactly at `position`; a server that ignores `Range` and answers
 * `200` is handled by discarding the prefix already delivered (containerd's fetcher does the same),
 * so the output stays byte-exact. A stall (no bytes for the stall window) is not retried: it fails
 * with `STALLED` naming the bytes received and the host.
 *
 * In verifying mode every byte is hashed and the stream fails at the end with `DIGEST_MISMATCH`
 * instead of ending when the digest differs, so a consumer never sees a clean end of wrong content.
 *
 * With a `sink` the Readable side is not used: bytes go to `sink.write` synchronously as they come
 * off the socket (borrowed from the connection's read buffer when the response is a `DirectBody`,
 * so no copy and no stream in between), `false` pauses the socket until `sink.onDrain`, and
 * `done()` resolves at the verified end or rejects with the failure.
 */
import { Readable } from 'node:stream';
import { KimgError, isKimgError } from '../../errors/index.js';
import { ContentVerifier } from '../verify.js';
import { isRetryableNetworkError, type Clock, type RetryPolicy } from '../retry.js';
import { discard } from './body.js';
import { errorFromResponse, type ErrorContext } from './http-errors.js';
import { header, transportError, type HttpResponse } from './transport.js';
import { BODY_STALLED_CODE, DirectBody } from './h1.js';

/**
 * A synchronous consumer of blob bytes. `write` must take (copy) what it keeps before returning: the
 * chunk's memory is reused for the next socket read. It returns false to pause the download until the
 * callback given to `onDrain` runs (with an error, the download fails with it); it may throw to fail it.
 */
export interface BlobSink {
  write(chunk: Uint8Array): boolean;
  onDrain(cb: (err?: Error) => void): void;
}

/** Opens the blob from `start` (sends `Range` when start > 0). Resolves with the raw response. */
export type BlobOpener = (start: number, signal: AbortSignal | undefined) => Promise<HttpResponse>;

export interface BlobReaderOptions {
  digest: string;
  size: number;
  /** First byte wanted (raw mode only). */
  offset: number;
  verify: boolean;
  /** Description for messages: `blob sha256:… of 127.0.0.1:5000/small`. */
  what: string;
  errorContext: ErrorContext;
  policy: RetryPolicy;
  clock: Clock;
  stallMs: number;
  signal?: AbortSignal | undefined;
  onProgress?: ((position: number, size: number) => void) | undefined;
  debug?: ((line: string) => void) | undefined;
  /** Deliver to this sink instead of the Readable side (see the module comment). */
  sink?: BlobSink | undefined;
}

/** Parses `Content-Range: bytes a-b/total` (total may be `*`). */
export function parseContentRange(
  v: string | undefined,
): { start: number; end: number; total: number | undefined } | undefined {
  if (!v) return undefined;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  if (total !== undefined && (!Number.isSafeInteger(total) || end >= total)) return undefined;
  return { start, end, total };
}

export class BlobReader extends Readable {
  private source: Readable | undefined;
  private position: number;
  private readonly verifier: ContentVerifier | undefined;
  private skip = 0;
  private failures = 0;
  private progressSinceOpen = false;
  private host = '';
  private finished = false;

  private readonly onData = (chunk: Buffer): void => {
    if (!this.handleData(chunk)) this.source?.pause();
  };
  private readonly onSinkData = (chunk: Buffer): boolean => this.handleData(chunk);
  private readonly onSinkDrain = (err?: Error): void => {
    if (this.finished || this.destroyed) return;
    if (err) this.fail(err);
    else this.resumeSource();
  };
  private sinkResult: { resolve: () => void; reject: (e: Error) => void; promise: Promise<void> } | undefined;
  private readonly onEnd = (): void => this.handleEnd();
  private readonly onError = (e: Error): void => this.handleError(e);

  constructor(
    private readonly opener: BlobOpener,
    private readonly o: BlobReaderOptions,
  ) {
    super({ highWaterMark: 64 * 1024 });
    this.position = o.offset;
    this.verifier = o.verify ? new ContentVerifier(o.digest, o.size, { what: o.what }) : undefined;
    if (o.sink) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => undefined);
      this.sinkResult = { resolve, reject, promise };
    }
  }

  /** With a sink: resolves once the whole blob went into it (verified), rejects with the failure. */
  done(): Promise<void> {
    if (!this.sinkResult) throw new KimgError('INTERNAL', 'done() is for a BlobReader with a sink');
    return this.sinkResult.promise;
  }

  private resumeSource(): void {
    const s = this.source;
    if (s instanceof DirectBody && this.o.sink) s.resumeSink();
    else s?.resume();
  }

  /** Bytes of the blob delivered so far, counted from byte 0 of the blob. */
  get bytesDelivered(): number {
    return this.position;
  }

  /**
   * Performs the first request; resolves once the response is accepted (so 404, 401, TLS failures
   * reject here rather than as a stream error).
   */
  async start(): Promise<void> {
    const res = await this.opener(this.position, this.o.signal);
    await this.attach(res);
  }

  override _read(): void {
    if (!this.o.sink) this.source?.resume();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.detach(true);
    cb(err);
  }

  private detach(destroy: boolean): void {
    const s = this.source;
    if (!s) return;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('error', this.onError);
    s.on('error', () => undefined);
    if (destroy) s.destroy();
    this.source = undefined;
  }

  /** Validates a response for the current position and starts streaming from it. */
  private async attach(res: HttpResponse): Promise<void> {
    this.host = res.url.host;
    const { size } = this.o;
    const want = this.position;
    if (res.status === 206) {
      const cr = parseContentRange(header(res.headers, 'content-range'));
      if (!cr || cr.start !== want || (cr.total !== undefined && cr.total !== size)) {
        // a partial answer we did not ask for: start over from byte 0 and skip what we have
        discard(res.body);
        this.debug(
          `ignoring 206 with Content-Range ${JSON.stringify(header(res.headers, 'content-range'))} for position ${want}; re-requesting the whole blob`,
        );
        if (want === 0) {
          throw new KimgError(
            'REGISTRY_PROTOCOL_ERROR',
            `${res.url.host} answered a request for the whole ${this.o.what} with a partial response (206)`,
            { host: res.url.host, status: 206 },
          );
        }
        const full = await this.opener(0, this.o.signal);
        if (full.status === 206) {
          discard(full.body);
          throw new KimgError(
            'REGISTRY_PROTOCOL_ERROR',
            `${full.url.host} answered a request for the whole ${this.o.what} with a partial response (206)`,
            { host: full.url.host, status: 206 },
          );
        }
        return this.attach200(full, want);
      }
      this.skip = 0;
    } else if (res.status === 200) {
      return this.attach200(res, want);
    } else if (res.status === 416) {
      discard(res.body);
      throw new KimgError(
        'SIZE_MISMATCH',
        `${res.url.host} says byte ${want} is beyond the end of ${this.o.what} (416): the blob is shorter than its descriptor's ${size} bytes`,
        {
          expected: size,
          actual: want,
          bytesRead: want,
          host: res.url.host,
          status: 416,
        },
      );
    } else {
      throw await errorFromResponse(res, this.o.errorContext);
    }
    this.listen(res.body);
  }

  private async attach200(res: HttpResponse, want: number): Promise<void> {
    if (res.status !== 200) throw await errorFromResponse(res, this.o.errorContext);
    const len = header(res.headers, 'content-length');
    if (len !== undefined && /^\d+$/.test(len) && Number(len) !== this.o.size) {
      discard(res.body);
      throw new KimgError(
        'SIZE_MISMATCH',
        `${res.url.host} serves ${this.o.what} with ${len} bytes but its descriptor says ${this.o.size}: the registry has different content; report it to the registry operator`,
        {
          expected: this.o.size,
          actual: Number(len),
          bytesRead: want,
          host: res.url.host,
        },
      );
    }
    // the server ignored (or was not sent) Range: discard what the consumer already has
    this.skip = want;
    if (want > 0)
      this.debug(`${res.url.host} ignored Range for ${this.o.what}; discarding the first ${want} bytes`);
    this.listen(res.body);
  }

  private listen(body: Readable): void {
    this.source = body;
    this.progressSinceOpen = false;
    if (this.o.sink && body instanceof DirectBody) body.setSink(this.onSinkData);
    else body.on('data', this.onData);
    body.on('end', this.onEnd);
    body.on('error', this.onError);
    // Failed before we listened (the connection died between the response and this call).
    if (body.destroyed && body.errored) this.handleError(body.errored);
  }

  /** Takes bytes from the response; false = the consumer is full (pause the source). */
  private handleData(chunk: Buffer): boolean {
    if (this.skip > 0) {
      if (chunk.length <= this.skip) {
        this.skip -= chunk.length;
        return true;
      }
      chunk = chunk.subarray(this.skip);
      this.skip = 0;
    }
    const next = this.position + chunk.length;
    if (next > this.o.size) {
      this.fail(
        new KimgError(
          'SIZE_MISMATCH',
          `${this.host} sent more than the ${this.o.size} bytes of ${this.o.what} (at least ${next}): the registry has different content; report it to the registry operator`,
          {
            expected: this.o.size,
            actual: next,
            bytesRead: next,
            host: this.host,
          },
        ),
      );
      return false;
    }
    if (this.verifier) {
      try {
        this.verifier.update(chunk);
      } catch (e) {
        this.fail(e as Error);
        return false;
      }
    }
    this.position = next;
    this.progressSinceOpen = true;
    this.o.onProgress?.(next, this.o.size);
    const sink = this.o.sink;
    if (!sink) return this.push(chunk);
    let ok: boolean;
    try {
      ok = sink.write(chunk);
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
      return false;
    }
    if (!ok) sink.onDrain(this.onSinkDrain);
    return ok;
  }

  private handleEnd(): void {
    if (this.position === this.o.size && this.skip === 0) {
      this.detach(false);
      this.finish();
      return;
    }
    this.reconnect(`connection ended after ${this.position} of ${this.o.size} bytes`);
  }

  private handleError(e: Error): void {
    if (this.finished || this.destroyed) return;
    if (this.o.signal?.aborted) {
      this.fail(
        new KimgError(
          'ABORTED',
          `download of ${this.o.what} was cancelled after ${this.position} of ${this.o.size} bytes`,
          { bytesRead: this.position, host: this.host, cause: e },
        ),
      );
      return;
    }
    const code = (e as { code?: unknown }).code;
    if (code === BODY_STALLED_CODE) {
      this.fail(
        new KimgError(
          'STALLED',
          `no bytes from ${this.host} for ${this.o.stallMs / 1000}s while downloading ${this.o.what} (received ${this.position} of ${this.o.size} bytes): the registry stalled; retry later or raise the stall timeout`,
          { bytesRead: this.position, expected: this.o.size, host: this.host, retryable: true, cause: e },
        ),
      );
      return;
    }
    if (isRetryableNetworkError(e)) {
      this.reconnect(`${code ? String(code) + ': ' : ''}${e.message}`);
      return;
    }
    this.fail(
      isKimgError(e)
        ? (e as KimgError)
        : new KimgError(
            'REGISTRY_UNAVAILABLE',
            `download of ${this.o.what} from ${this.host} failed after ${this.position} bytes: ${e.message}`,
            { host: this.host, bytesRead: this.position, cause: e },
          ),
    );
  }

  private finish(): void {
    if (this.verifier) {
      try {
        this.verifier.finish();
      } catch (e) {
        this.fail(e as Error);
        return;
      }
    }
    this.finished = true;
    if (this.sinkResult) {
      this.sinkResult.resolve();
      this.destroy();
    } else this.push(null);
  }

  private fail(e: Error): void {
    this.detach(true);
    if (this.sinkResult) {
      this.sinkResult.reject(e);
      this.destroy();
    } else this.destroy(e);
  }

  private reconnect(reason: string): void {
    this.detach(true);
    if (this.progressSinceOpen) this.failures = 0;
    this.failures++;
    const delay = this.o.policy.delayBeforeRetry(this.failures);
    if (delay === undefined) {
      this.fail(
        new KimgError(
          'REGISTRY_UNAVAILABLE',
          `download of ${this.o.what} from ${this.host} kept failing (${reason}); gave up after ${this.failures} attempts without progress at ${this.position} of ${this.o.size} bytes: retry later`,
          {
            host: this.host,
            bytesRead: this.position,
            expected: this.o.size,
            retryable: true,
          },
        ),
      );
      return;
    }
    this.debug(`${reason}; resuming ${this.o.what} at byte ${this.position} in ${delay} ms`);
    this.o.clock
      .sleep(delay, this.o.signal)
      .then(() => this.opener(this.position, this.o.signal))
      .then((res) => {
        if (this.destroyed) {
          discard(res.body);
          return;
        }
        return this.attach(res);
      })
      .catch((e: unknown) => {
        if (this.destroyed) return;
        if (this.o.signal?.aborted) {
          this.fail(
            new KimgError(
              'ABORTED',
              `download of ${this.o.what} was cancelled after ${this.position} of ${this.o.size} bytes`,
              { bytesRead: this.position, cause: e },
            ),
          );
          return;
        }
        if (isKimgError(e)) {
          this.fail(e as KimgError);
          return;
        }
        if (isRetryableNetworkError(e)) {
          this.reconnect(String((e as Error).message));
          return;
        }
        this.fail(
          transportError(e, {
            method: 'GET',
            url: new URL(`http://${this.host || 'unknown'}/`),
            stallMs: this.o.stallMs,
          }),
        );
      });
  }

  private debug(line: string): void {
    this.o.debug?.(line);
  }
}
