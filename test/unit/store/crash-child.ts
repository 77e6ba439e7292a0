/**
 * The process the crash test kills: `node crash-child.js ROOT SEED`. It opens the store and loops
 * forever over seeded random operations — streaming blobs through writers (sometimes abandoned half
 * way), recording tiny images, touching, deleting records, running GC — and reports on stdout, one
 * line each, `ready`, `putting <name> <digest>` before and `put <name> <digest>` after a put, and
 * `deleting <name>` before a delete starts.
 * The parent SIGKILLs it at a random moment and checks the store.
 */
import { createHash } from 'node:crypto';
import { MediaType } from '../../../src/oci/index.js';
import { openStore, type ImageRecord } from '../../../src/store/index.js';

const [root, seedText] = process.argv.slice(2);
if (root === undefined || seedText === undefined) {
  // Never run without an explicit root (e.g. picked up by a test runner glob): it loops forever.
  process.stderr.write('usage: node crash-child.js ROOT SEED\n');
  process.exit(2);
}
let x = Number(seedText) | 0 || 1;
function rnd(): number {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) / 2 ** 32;
}
function bytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(Math.ceil(n / 4) * 4);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((rnd() * 2 ** 32) >>> 0, i);
  return b.subarray(0, n);
}
const sha = (b: Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const say = (line: string) => process.stdout.write(line + '\n');

// Both hashing paths get killed: worker threads for even seeds, the event loop for odd ones.
const store = await openStore({ root, hashing: Number(seedText) % 2 === 0 ? 'worker' : 'inline' });
say('ready');
const names: string[] = [];
for (let i = 0; ; i++) {
  const op = rnd();
  if (op < 0.45) {
    // An image: layers streamed through writers, then config, manifest, record.
    const layers = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () =>
      bytes(Math.floor(rnd() * 1_500_000)),
    );
    for (const l of layers) {
      const w = await store.content.writer({
        expected: { digest: sha(l), size: l.length },
        holder: 'crash-child',
      });
      if (w.existing) {
        await w.commit();
        continue;
      }
      for (let o = 0; o < l.length; o += 65536) await w.write(l.subarray(o, o + 65536));
      await w.commit();
    }
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', i, seed: seedText }));
    await store.content.writeBlob(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: sha(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: MediaType.OciLayerGzip, digest: sha(l), size: l.length })),
      }),
    );
    await store.content.writeBlob(manifest);
    const name = `example.com/crash/img${Math.floor(rnd() * 8)}:${seedText}`;
    const now = new Date().toISOString();
    const record: ImageRecord = {
      name,
      runtimeHandler: '',
      digest: sha(manifest),
      mediaType: MediaType.OciManifest,
      manifestDigest: sha(manifest),
      manifestMediaType: MediaType.OciManifest,
      manifestSize: manifest.length,
      imageId: sha(config),
      size: manifest.length + config.length + layers.reduce((a, l) => a + l.length, 0),
      platform: { os: 'linux', architecture: 'amd64' },
      layers: layers.map((l) => ({ mediaType: MediaType.OciLayerGzip, digest: sha(l), size: l.length })),
      pulledAt: now,
      lastUsed: now,
      source: 'pull',
    };
    say(`putting ${name} ${record.manifestDigest}`);
    await store.images.put(record);
    names.push(name);
    say(`put ${name} ${record.manifestDigest}`);
  } else if (op < 0.6) {
    // An abandoned download: some bytes, then close (resumable) or nothing at all.
    const l = bytes(Math.floor(rnd() * 2_000_000) + 10);
    const w = await store.content.writer({
      ref: `abandoned-${Math.floor(rnd() * 4)}`,
      expected: { digest: sha(l), size: l.length },
    });
    const upTo = Math.floor(rnd() * l.length);
    for (let o = w.offset; o < upTo; o += 65536) await w.write(l.subarray(o, Math.min(upTo, o + 65536)));
    await w.close();
  } else if (op < 0.75 && names.length > 0) {
    const name = names[Math.floor(rnd() * names.length)] as string;
    await store.images.touch({ name }).catch(() => undefined);
  } else if (op < 0.88 && names.length > 0) {
    const name = names[Math.floor(rnd() * names.length)] as string;
    say(`deleting ${name}`);
    await store.images.delete({ name });
  } else {
    await store.gc({ ingestMaxAgeMs: rnd() < 0.5 ? 0 : 3_600_000 });
  }
}
