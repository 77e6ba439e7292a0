/**
 * Layer decompression chosen by the descriptor's media type (image-spec `media-types.md`): plain tar,
 * tar+gzip (node:zlib, which inflates on libuv's thread pool, so it overlaps with extraction on the main
 * thread) and tar+zstd (fzstd, pure JavaScript: Node 20's zlib has no zstd). Every stage streams with a
 * bounded chunk size, so memory stays flat whatever the layer size.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { KimgError, quote } from '../../errors/index.js';
import { MediaType } from '../../oci/index.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/**
 * Output chunk size of gunzip. zlib's default (16 KiB) costs about twice the CPU per byte: every chunk
 * is a round trip to libuv's pool and a pass through the tar reader. Larger chunks cost less, but V8
 * collects their (external) memory less often. Measured with bench/unpack.ts' 1 GiB text-like image on a
 * quiet machine (kimg / umoci wall, kimg peak RSS): 16 KiB 0.66, 78 MiB; 32 KiB 0.54, 89 MiB; 64 KiB 0.45,
 * 97 MiB; 128 KiB 0.38-0.42, 95 MiB; 256 KiB 0.42, 97 MiB (docs/design/unpack.md).
 */
const GUNZIP_CHUNK = 128 * 1024;

const LAYER_TYPES: Readonly<Record<string, Compression>> = {
  [MediaType.OciLayer]: 'none',
  [MediaType.OciLayerGzip]: 'gzip',
  [MediaType.OciLayerZstd]: 'zstd',
  [MediaType.OciLayerNondistributable]: 'none',
  [MediaType.OciLayerNondistributableGzip]: 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  [MediaType.DockerLayer]: 'none',
  [MediaType.DockerLayerGzip]: 'gzip',
  [MediaType.DockerLayerZstd]: 'zstd',
  [MediaType.DockerForeignLayer]: 'none',
  [MediaType.DockerForeignLayerGzip]: 'gzip',
};

/** Every layer media type kimg unpacks (tar, tar+gzip, tar+zstd; OCI, non-distributable, Docker). */
export const LAYER_MEDIA_TYPES: ReadonlySet<string> = new Set(Object.keys(LAYER_TYPES));

/** The compression of a layer media type; `UNSUPPORTED_MEDIA_TYPE` for anything that is not a layer. */
export function layerCompression(mediaType: string): Compression {
  const c = LAYER_TYPES[mediaType];
  if (c === undefined) {
    throw new KimgError(
      'UNSUPPORTED_MEDIA_TYPE',
      `media type ${quote(mediaType)} is not a layer kimg can unpack (tar, tar+gzip or tar+zstd)`,
      { input: mediaType },
    );
  }
  return c;
}

/** A zstd decoding Transform over fzstd's streaming decoder. */
class ZstdDecompress extends Transform {
  private readonly decoder: Decompress;
  private out: Uint8Array[] = [];

  constructor() {
    super({ readableHighWaterMark: 256 * 1024 });
    this.decoder = new Decompress((data) => {
      this.out.push(data);
    });
  }

  private flushOut(): void {
    for (const d of this.out) this.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
    this.out = [];
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      // fzstd may keep the chunk until a block is complete; the caller reuses its buffers.
      this.decoder.push(Uint8Array.prototype.slice.call(chunk));
      this.flushOut();
      cb();
    } catch (e) {
      cb(zstdError(e));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.decoder.push(new Uint8Array(0), true);
      this.flushOut();
      cb();
    } catch (e) {
      cb(zstdError(e));
    }
  }
}

function zstdError(e: unknown): KimgError {
  return new KimgError('LAYER_INVALID', `zstd stream is invalid: ${(e as Error).message}`, { cause: e });
}

/**
 * A Transform that decompresses `compression` (a copying pass-through for `none`). Input buffers may
 * be reused by the writer as soon as a write's callback fired. `gunzipChunk`: gunzip's output chunk
 * size (default {@link GUNZIP_CHUNK}).
 */
export function decompressor(compression: Compression, gunzipChunk = GUNZIP_CHUNK): Transform {
  if (compression === 'gzip') return createGunzip({ chunkSize: gunzipChunk });
  if (compression === 'zstd') return new ZstdDecompress();
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      // A copy: the caller reuses its read buffers once the write callback fired.
      cb(null, Buffer.from(chunk));
    },
  });
}
