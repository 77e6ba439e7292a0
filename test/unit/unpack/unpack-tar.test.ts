/**
 * The layer tar reader: property tests (round trip of generated archives under any chunking; any
 * damaged archive ends in entries or a coded `LAYER_INVALID`, never another error or a hang) and
 * examples of the formats it must read (GNU long names, base-256 numbers, pax overrides, xattrs).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import { readTar, type TarHeader } from '../../../src/unpack/index.js';
import { parseNumeric, parsePax } from '../../../src/unpack/internal/tar.js';
import { fuzzParams } from '../../helpers/fuzz.js';
import { buildTar, type EntrySpec } from '../../helpers/unpack-images.js';

async function* chunked(buf: Buffer, sizes: readonly number[]): AsyncGenerator<Buffer> {
  let off = 0;
  let i = 0;
  while (off < buf.length) {
    const n = Math.max(1, sizes.length > 0 ? (sizes[i++ % sizes.length] as number) : buf.length);
    yield buf.subarray(off, off + n);
    off += n;
  }
}

interface Read {
  header: TarHeader;
  data: Buffer;
}

async function readAll(src: AsyncIterable<Buffer>): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of readTar(src)) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(Buffer.from(c));
    out.push({ header: e.header, data: Buffer.concat(parts) });
  }
  return out;
}

const nameChar = fc.constantFrom(...'abcxyz019._-é日 '.split(''));
const component = fc
  .string({ unit: nameChar, minLength: 1, maxLength: 40 })
  .filter((s) => s !== '.' && s !== '..');
const entryName = fc.array(component, { minLength: 1, maxLength: 6 }).map((c) => c.join('/'));

const entry: fc.Arbitrary<EntrySpec> = fc.oneof(
  fc.record({
    type: fc.constant('file' as const),
    name: entryName,
    data: fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
    mode: fc.integer({ min: 0, max: 0o7777 }),
    uid: fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0o10000000, max: 2 ** 31 })),
    gid: fc.integer({ min: 0, max: 65535 }),
    xattrs: fc.dictionary(
      fc.constantFrom('user.a', 'user.b', 'security.capability'),
      fc.string({ maxLength: 20 }),
      { maxKeys: 2 },
    ),
  }),
  fc.record({
    type: fc.constant('dir' as const),
    name: entryName.map((n) => n + '/'),
    mode: fc.integer({ min: 0, max: 0o7777 }),
  }),
  fc.record({ type: fc.constant('symlink' as const), name: entryName, target: entryName }),
  fc.record({ type: fc.constant('hardlink' as const), name: entryName, target: entryName }),
  fc.record({
    type: fc.constant('char' as const),
    name: entryName,
    major: fc.integer({ min: 0, max: 4095 }),
    minor: fc.integer({ min: 0, max: 65535 }),
  }),
);

describe('unpack tar reader', () => {
  it('reads back what was written, whatever the chunking (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 1500 }), { maxLength: 5 }),
        async (entries, sizes) => {
          const tar = buildTar(entries);
          const got = await readAll(chunked(tar, sizes));
          assert.equal(got.length, entries.length);
          for (const [i, e] of entries.entries()) {
            const g = got[i] as Read;
            assert.equal(g.header.name, e.name);
            assert.equal(g.header.type, e.type);
            if (e.type === 'file') {
              assert.deepEqual(g.data, Buffer.from(e.data ?? ''));
              assert.equal(g.header.mode, e.mode);
              assert.equal(g.header.uid, e.uid);
              assert.equal(g.header.gid, e.gid);
              assert.deepEqual(Object.fromEntries([...g.header.xattrs].map(([k, v]) => [k, v.toString()])), {
                ...(e.xattrs ?? {}),
              });
            } else assert.equal(g.data.length, 0);
            if (e.type === 'symlink' || e.type === 'hardlink') assert.equal(g.header.linkname, e.target);
            if (e.type === 'char') {
              assert.equal(g.header.devmajor, e.major);
              assert.equal(g.header.devminor, e.minor);
            }
          }
        },
      ),
      fuzzParams(),
    );
  });

  it('damaged archives end in entries or LAYER_INVALID, nothing else (property)', async () => {
    const base = buildTar([
      { type: 'dir', name: 'a/' },
      { type: 'file', name: 'a/' + 'x'.repeat(150), data: 'hello world', xattrs: { 'user.k': 'v' } },
      { type: 'symlink', name: 'a/l', target: 'x' },
    ]);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ at: fc.nat({ max: base.length - 1 }), byte: fc.integer({ min: 0, max: 255 }) }),
          { minLength: 1, maxLength: 8 },
        ),
        fc.nat({ max: base.length }),
        async (flips, cut) => {
          const b = Buffer.from(base.subarray(0, cut === 0 ? base.length : cut));
          for (const f of flips) if (f.at < b.length) b[f.at] = f.byte;
          try {
            await readAll(chunked(b, [97]));
          } catch (e) {
            if (!isKimgError(e, 'LAYER_INVALID')) throw e;
          }
        },
      ),
      fuzzParams(),
    );
  });

  it('parses octal and GNU base-256 numbers (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        const b = Buffer.alloc(12);
        b[0] = 0x80;
        let v = BigInt(n);
        for (let i = 11; i >= 1; i--) {
          b[i] = Number(v & 0xffn);
          v >>= 8n;
        }
        assert.equal(parseNumeric(b, 0, 12), n);
        if (n < 8 ** 11) {
          const o = Buffer.from(n.toString(8).padStart(11, '0') + '\0', 'latin1');
          assert.equal(parseNumeric(o, 0, 12), n);
        }
      }),
      fuzzParams(),
    );
  });

  it('parses pax records with binary values (property)', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc
            .string({ unit: fc.constantFrom(...'abcSCHILY.xattr'.split('')), minLength: 1, maxLength: 30 })
            .filter((k) => !k.includes('=')),
          fc.uint8Array({ maxLength: 300 }),
        ),
        (recs) => {
          const parts: Buffer[] = [];
          for (const [k, v] of Object.entries(recs)) {
            const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')]);
            let len = body.length + 1;
            while (String(len).length + body.length !== len) len = String(len).length + body.length;
            parts.push(Buffer.from(String(len)), body);
          }
          const got = parsePax(Buffer.concat(parts), 0);
          assert.deepEqual(
            Object.fromEntries([...got].map(([k, v]) => [k, [...v]])),
            Object.fromEntries(Object.entries({ ...recs }).map(([k, v]) => [k, [...v]])),
          );
        },
      ),
      fuzzParams(),
    );
  });

  it('reads GNU long names (L/K) and ignores global pax headers', async () => {
    const longName = 'd/' + 'n'.repeat(200);
    const longLink = 't/' + 'l'.repeat(180);
    const hdr = (name: string, flag: string, size: number): Buffer => {
      const h = Buffer.alloc(512);
      h.write(name, 0);
      h.write('0000644\0', 100, 'latin1');
      h.write('0000000\0', 108, 'latin1');
      h.write('0000000\0', 116, 'latin1');
      h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
      h.write('00000000000\0', 136, 'latin1');
      h.write('        ', 148, 'latin1');
      h.write(flag, 156, 'latin1');
      h.write('ustar  \0', 257, 'latin1');
      let sum = 0;
      for (const c of h) sum += c;
      h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
      return h;
    };
    const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
    const global = Buffer.from('16 path=ignore\n');
    const tar = Buffer.concat([
      hdr('pax_global_header', 'g', global.length),
      pad(global),
      hdr('././@LongLink', 'L', longName.length + 1),
      pad(Buffer.from(longName + '\0')),
      hdr('././@LongLink', 'K', longLink.length + 1),
      pad(Buffer.from(longLink + '\0')),
      hdr('short', '2', 0),
      Buffer.alloc(1024),
    ]);
    const got = await readAll(chunked(tar, [100]));
    assert.equal(got.length, 1);
    assert.equal(got[0]?.header.name, longName);
    assert.equal(got[0]?.header.linkname, longLink);
    assert.equal(got[0]?.header.type, 'symlink');
  });

  it('refuses sparse files and unknown types with LAYER_INVALID', async () => {
    for (const flag of ['S', 'V', 'Z']) {
      const t = buildTar([{ type: 'file', name: 'f', data: 'x' }]);
      t[156] = flag.charCodeAt(0);
      let sum = 0;
      t.write('        ', 148, 'latin1');
      for (let i = 0; i < 512; i++) sum += t[i] as number;
      t.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
      await assert.rejects(readAll(chunked(t, [])), (e) => isKimgError(e, 'LAYER_INVALID'));
    }
  });
});
