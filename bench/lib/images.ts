/**
 * The bench's images, generated with the test harness's deterministic generator
 * (`test/helpers/images.ts`: real gzip tar layers, seeded content) and optionally cached between bench
 * runs (`--keep-images DIR`): generating 1 GiB of random data takes ~20 s.
 *
 * - `small`    2 x 4 KiB random: latency (process start, round trips), not throughput.
 * - `many`     32 x 256 KiB random = 8 MiB: many small blobs, and the small end of
 *              the "peak RSS does not grow with image size" comparison.
 * - `big`      8 x 128 MiB random = 1 GiB incompressible: throughput (sha256 + write + fsync bound).
 * - `big-text` 8 x 128 MiB text-like, gzip -6 = ~397 MB compressed, 1 GiB uncompressed.
 * - `conc-0`..`conc-7`: 8 distinct images for the concurrency sections, 8 x 8 MiB random each
 *              (8 x 256 KiB with --quick).
 *
 * A cached layout is reused only when its recorded spec equals the wanted one and every blob it
 * describes is present with the recorded size; the description (`<name>.json`) is written last, so an
 * interrupted generation is regenerated next time.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateImage, type GeneratedImage, type LayerSpec } from '../../test/helpers/images.js';

export const MAIN_IMAGES = ['small', 'many', 'big', 'big-text'] as const;
export type MainImage = (typeof MAIN_IMAGES)[number];

export interface ImageSpec {
  name: string;
  layers: LayerSpec[];
}

const KiB = 1024;
const MiB = 1024 * KiB;

const times = (n: number, l: LayerSpec): LayerSpec[] => Array.from({ length: n }, () => ({ ...l }));

export function mainImageSpec(name: MainImage): ImageSpec {
  switch (name) {
    case 'small':
      return { name, layers: times(2, { size: 4 * KiB }) };
    case 'many':
      return { name, layers: times(32, { size: 256 * KiB }) };
    case 'big':
      return { name, layers: times(8, { size: 128 * MiB }) };
    case 'big-text':
      return { name, layers: times(8, { size: 128 * MiB, kind: 'text' }) };
  }
}

/** The 8 distinct images of the concurrency sections. */
export function concurrentImageSpecs(quick: boolean): ImageSpec[] {
  return Array.from({ length: 8 }, (_, i) => ({
    name: `conc-${i}`,
    layers: times(8, { size: quick ? 256 * KiB : 8 * MiB }),
  }));
}

/** Bytes a puller must fetch for one image: config + layers of every manifest + manifests themselves. */
export function blobBytesOnly(img: GeneratedImage): number {
  const seen = new Map<string, number>();
  for (const m of img.manifests) {
    seen.set(m.config.digest, m.config.size);
    for (const l of m.layers) seen.set(l.digest, l.size);
  }
  let n = 0;
  for (const v of seen.values()) n += v;
  return n;
}

async function cachedImage(dir: string, spec: ImageSpec): Promise<GeneratedImage | undefined> {
  const descFile = join(dir, `${spec.name}.json`);
  if (!existsSync(descFile)) return undefined;
  try {
    const desc = JSON.parse(await readFile(descFile, 'utf8')) as { spec: ImageSpec; image: GeneratedImage };
    if (JSON.stringify(desc.spec) !== JSON.stringify(spec)) return undefined;
    // The cache directory may have moved since: paths come from where it is now.
    const layoutDir = join(dir, spec.name);
    const img: GeneratedImage = { ...desc.image, layoutDir, ociRef: `oci:${layoutDir}:${desc.image.tag}` };
    const blobs: Array<[string, number]> = [[img.digest, img.size]];
    for (const m of img.manifests) {
      blobs.push([m.digest, m.size], [m.config.digest, m.config.size]);
      for (const l of m.layers) blobs.push([l.digest, l.size]);
    }
    for (const [digest, size] of blobs) {
      const st = await stat(join(layoutDir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
      if (st.size !== size) return undefined;
    }
    return img;
  } catch {
    return undefined;
  }
}

/**
 * The image of `spec` in `dir/<name>/` (OCI layout, tag '1'): reused from the cache when valid,
 * else generated (the old layout removed first). `onGenerate` is told before a generation starts.
 */
export async function ensureImage(
  dir: string,
  spec: ImageSpec,
  onGenerate?: (spec: ImageSpec) => void,
): Promise<{ image: GeneratedImage; cached: boolean; seconds: number }> {
  const hit = await cachedImage(dir, spec);
  if (hit) return { image: hit, cached: true, seconds: 0 };
  onGenerate?.(spec);
  const t0 = Date.now();
  const layoutDir = join(dir, spec.name);
  await rm(layoutDir, { recursive: true, force: true });
  const image = await generateImage(layoutDir, { name: `bench-${spec.name}`, tag: '1', layers: spec.layers });
  await writeFile(join(dir, `${spec.name}.json`), JSON.stringify({ spec, image }, null, 2));
  return { image, cached: false, seconds: (Date.now() - t0) / 1000 };
}
