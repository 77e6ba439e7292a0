/**
 * A streaming tar reader for layer tars: POSIX ustar, pax extended headers (`x`; global `g` headers
 * are read and ignored, like containerd's applier) and GNU long names (`L`/`K`), GNU base-256 numbers.
 * Entries come out one at a time with their body as an async iterable of chunks; memory stays bounded
 * by the chunk size plus the capped metadata records (pax and long-name records are untrusted input:
 * `MAX_META_BYTES`).
 *
 * Format facts follow POSIX.1-2001 `pax` and GNU tar's `tar.h`; the reading rules (which pax keys
 * override which header fields, `SCHILY.xattr.*` as xattrs) follow Go's `archive/tar` reader, which both
 * containerd and umoci use. Sparse files (`S`, `GNU.sparse.*`) are refused: image-spec `layer.md` says
 * layers should not contain them.
 *
 * Failure code: `LAYER_INVALID` naming the entry and the byte offset.
 */
import { KimgError, quote } from '../../errors/index.js';

export const BLOCK = 512;
/** Cap of one pax record set or GNU long name: names are at most PATH_MAX-ish; xattrs are small. */
export const MAX_META_BYTES = 1024 * 1024;

/** Entry types kimg applies (tar typeflags after folding aliases). */
export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

/** One tar entry's metadata, with pax and GNU overrides applied. */
export interface TarHeader {
  /** The name exactly as stored (may be absolute, contain `..`, or end in `/`). */
  name: string;
  type: TarEntryType;
  /** Permission and special bits (`mode & 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (fractional with pax). */
  mtime: number;
  atime?: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.NAME` pax records: name → raw value. */
  xattrs: Map<string, Buffer>;
}

function invalid(message: string, offset: number, name?: string): KimgError {
  return new KimgError(
    'LAYER_INVALID',
    `layer tar is invalid at byte ${offset}${name !== undefined ? ` (entry ${quote(name)})` : ''}: ${message}`,
    { bytesRead: offset, ...(name !== undefined ? { input: name } : {}) },
  );
}

/** A NUL-terminated string field. */
function cstring(b: Buffer, start: number, len: number): string {
  const end = b.indexOf(0, start);
  const stop = end === -1 || end > start + len ? start + len : end;
  return b.toString('utf8', start, stop);
}

/**
 * A numeric field: octal digits surrounded by spaces/NULs, or GNU base-256 (high bit of the first
 * byte set, two's complement). Returns undefined for garbage.
 */
export function parseNumeric(b: Buffer, start: number, len: number): number | undefined {
  const first = b[start] as number;
  if (first & 0x80) {
    // base-256: the first byte's top bit is a marker; bit 6 is the sign.
    const negative = (first & 0x40) !== 0;
    let v = 0n;
    for (let i = 0; i < len; i++) {
      let byte = b[start + i] as number;
      if (i === 0) byte &= 0x7f;
      if (negative) byte ^= 0xff;
      v = (v << 8n) | BigInt(byte);
    }
    // Negative sizes, ids and times are not meaningful in layers.
    if (negative) return undefined;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    return Number(v);
  }
  let i = start;
  const end = start + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i] as number;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return undefined;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) return undefined;
  return digits === 0 ? 0 : v;
}

/** Whether the block is all zeros (end-of-archive marker). */
function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Verifies the header checksum (unsigned sum, or the signed sum old tars wrote). */
function checksumOk(b: Buffer): boolean {
  const stored = parseNumeric(b, 148, 8);
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : (b[i] as number);
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

/** The pax records of one `x` header, as key → raw value (values of xattrs are binary). */
export function parsePax(data: Buffer, offset: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < data.length) {
    // "%d %s=%s\n": the length counts the whole record including itself and the newline.
    const sp = data.indexOf(0x20, i);
    if (sp === -1 || sp - i > 20) {
      if (data.subarray(i).every((c) => c === 0)) break; // trailing NUL padding some writers leave
      throw invalid('malformed pax record length', offset + i);
    }
    const lenText = data.toString('latin1', i, sp);
    if (!/^[0-9]+$/.test(lenText)) throw invalid('malformed pax record length', offset + i);
    const len = Number(lenText);
    if (len <= sp - i + 1 || i + len > data.length || data[i + len - 1] !== 0x0a)
      throw invalid('malformed pax record', offset + i);
    const rec = data.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw invalid('pax record without key', offset + i);
    const key = rec.toString('utf8', 0, eq);
    out.set(key, Buffer.from(rec.subarray(eq + 1)));
    i += len;
  }
  return out;
}

function paxNumber(v: Buffer, key: string, offset: number, frac: boolean): number {
  const s = v.toString('latin1');
  const re = frac ? /^-?[0-9]+(\.[0-9]+)?$/ : /^[0-9]+$/;
  if (!re.test(s)) throw invalid(`pax ${key} is not a number: ${JSON.stringify(s.slice(0, 40))}`, offset);
  const n = Number(s);
  if (!Number.isFinite(n) || Math.abs(n) > Number.MAX_SAFE_INTEGER)
    throw invalid(`pax ${key} out of range`, offset);
  return n;
}

/**
 * Pulls bytes from an async chunk source: exact reads for headers and metadata, chunked reads for
 * bodies (slices of the source's chunks, never copied).
 */
class ByteSource {
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Bytes consumed so far (for error offsets). */
  offset = 0;
  private done = false;

  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done === true) {
        this.done = true;
        return false;
      }
      this.chunk = r.value;
      this.pos = 0;
    }
    return true;
  }

  /** Exactly n bytes, or fewer only at end of input. */
  async read(n: number): Promise<Buffer> {
    if (!(await this.fill())) return Buffer.alloc(0);
    if (this.chunk.length - this.pos >= n) {
      const b = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return b;
    }
    // Copied as it goes: the source may reuse a chunk's memory once the next one is asked for.
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n && (await this.fill())) {
      const take = Math.min(n - got, this.chunk.length - this.pos);
      this.chunk.copy(out, got, this.pos, this.pos + take);
      this.pos += take;
      got += take;
    }
    this.offset += got;
    return out.subarray(0, got);
  }

  /** The next up-to-`max` bytes as a slice of the current chunk. */
  async next(max: number): Promise<Buffer> {
    if (!(await this.fill())) return Buffer.alloc(0);
    const take = Math.min(max, this.chunk.length - this.pos);
    const b = this.chunk.subarray(this.pos, this.pos + take);
    this.pos += take;
    this.offset += take;
    return b;
  }

  /** Reads and discards the rest of the input. */
  async drain(): Promise<void> {
    while (await this.fill()) {
      this.offset += this.chunk.length - this.pos;
      this.pos = this.chunk.length;
    }
  }
}

/** One entry: its header and its body (must be consumed, or is skipped, before the next entry). */
export interface TarEntry {
  header: TarHeader;
  body: AsyncIterable<Buffer>;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/**
 * Reads the entries of a tar stream. The whole input is consumed, including what follows the
 * end-of-archive marker (the diff ID covers every byte). A body not consumed by the caller is skipped.
 * The source may reuse a chunk's memory once the reader asks for the next chunk: body chunks handed
 * out must be used (written, hashed) before the next one is requested.
 */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const src = new ByteSource(source[Symbol.asyncIterator]());
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const at = src.offset;
    const h = await src.read(BLOCK);
    if (h.length === 0) {
      // End of input without the zero blocks: Go's reader accepts this too.
      if (pax.size > 0 || longName !== undefined || longLink !== undefined)
        throw invalid('archive ends after an extended header', at);
      return;
    }
    if (h.length < BLOCK) throw invalid('truncated header', at);
    if (isZeroBlock(h)) {
      await src.drain();
      return;
    }
    if (!checksumOk(h)) throw invalid('header checksum mismatch', at);
    const flag = String.fromCharCode(h[156] as number);
    const size = parseNumeric(h, 124, 12);
    if (size === undefined) throw invalid('bad size field', at, cstring(h, 0, 100));
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_META_BYTES) throw invalid(`extended header of ${size} bytes is too large`, at);
      const data = await src.read(padded);
      if (data.length < padded) throw invalid('truncated extended header', at);
      const body = data.subarray(0, size);
      if (flag === 'x') for (const [k, v] of parsePax(body, at + BLOCK)) pax.set(k, v);
      else if (flag === 'L') longName = cstring(body, 0, body.length);
      else if (flag === 'K') longLink = cstring(body, 0, body.length);
      // 'g': global records are read and ignored (containerd and Go's reader do not apply them).
      continue;
    }
    const type = TYPES[flag];
    const rawName = cstring(h, 0, 100);
    if (type === undefined) {
      const what =
        flag === 'S' ? 'sparse files are not supported' : `unsupported typeflag ${JSON.stringify(flag)}`;
      throw invalid(what, at, rawName);
    }
    const magic = h.toString('latin1', 257, 263);
    let name = rawName;
    if (magic === 'ustar\0') {
      const prefix = cstring(h, 345, 155);
      if (prefix !== '') name = `${prefix}/${rawName}`;
    }
    const header: TarHeader = {
      name,
      type,
      mode: (parseNumeric(h, 100, 8) ?? 0) & 0o7777,
      uid: num(h, 108, 8, 'uid', at, name),
      gid: num(h, 116, 8, 'gid', at, name),
      size,
      mtime: num(h, 136, 12, 'mtime', at, name),
      linkname: cstring(h, 157, 100),
      uname: cstring(h, 265, 32),
      gname: cstring(h, 297, 32),
      devmajor: type === 'char' || type === 'block' ? num(h, 329, 8, 'devmajor', at, name) : 0,
      devminor: type === 'char' || type === 'block' ? num(h, 337, 8, 'devminor', at, name) : 0,
      xattrs: new Map(),
    };
    if (longName !== undefined) header.name = longName;
    if (longLink !== undefined) header.linkname = longLink;
    applyPax(header, pax, at);
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    // Only regular files carry data: the other types are header-only whatever their size field says
    // (Go's reader, isHeaderOnlyType).
    const bodySize = header.type === 'file' ? header.size : 0;
    if (header.type !== 'file') header.size = 0;
    let remaining = bodySize;
    const entryStart = at;
    const entryName = header.name;
    const body: AsyncIterable<Buffer> = {
      async *[Symbol.asyncIterator]() {
        while (remaining > 0) {
          const b = await src.next(Math.min(remaining, 1 << 20));
          if (b.length === 0) throw invalid('truncated entry body', entryStart, entryName);
          remaining -= b.length;
          yield b;
        }
      },
    };
    yield { header, body };
    while (remaining > 0) {
      const b = await src.next(remaining);
      if (b.length === 0) throw invalid('truncated entry body', entryStart, entryName);
      remaining -= b.length;
    }
    const pad = Math.ceil(bodySize / BLOCK) * BLOCK - bodySize;
    if (pad > 0) {
      const p = await src.read(pad);
      if (p.length < pad) throw invalid('truncated entry padding', entryStart, entryName);
    }
  }
}

function num(h: Buffer, start: number, len: number, field: string, at: number, name: string): number {
  const v = parseNumeric(h, start, len);
  if (v === undefined) throw invalid(`bad ${field} field`, at, name);
  return v;
}

function applyPax(header: TarHeader, pax: Map<string, Buffer>, at: number): void {
  for (const [key, v] of pax) {
    switch (key) {
      case 'path':
        header.name = v.toString('utf8');
        break;
      case 'linkpath':
        header.linkname = v.toString('utf8');
        break;
      case 'size':
        header.size = paxNumber(v, key, at, false);
        break;
      case 'uid':
        header.uid = paxNumber(v, key, at, false);
        break;
      case 'gid':
        header.gid = paxNumber(v, key, at, false);
        break;
      case 'mtime':
        header.mtime = paxNumber(v, key, at, true);
        break;
      case 'atime':
        header.atime = paxNumber(v, key, at, true);
        break;
      case 'uname':
        header.uname = v.toString('utf8');
        break;
      case 'gname':
        header.gname = v.toString('utf8');
        break;
      default:
        if (key.startsWith('SCHILY.xattr.')) header.xattrs.set(key.slice('SCHILY.xattr.'.length), v);
        else if (key.startsWith('GNU.sparse.'))
          throw invalid('sparse files are not supported', at, header.name);
      // Other keys (ctime, charset, comment, LIBARCHIVE.*) carry nothing kimg applies.
    }
  }
}
