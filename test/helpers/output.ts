/**
 * Capturing a CLI's output in tests: a `Writable` that keeps every chunk written to it, for
 * `CliContext.stdout` / `stderr` when `runCli` runs in-process.
 */
import { Writable } from 'node:stream';

/** Keeps what is written; read it as bytes (`buffer`) or UTF-8 text (`text`). */
export class Sink extends Writable {
  readonly chunks: Buffer[] = [];

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }

  /** Everything written, as bytes. */
  get buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Everything written, as UTF-8 text. */
  get text(): string {
    return this.buffer.toString('utf8');
  }
}
