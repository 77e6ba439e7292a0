/**
 * `kimg store verify [--repair]`: check everything the store depends on and, with repair, fix what can
 * be fixed without losing other images.
 *
 * Checks, in order: the format version file; `oci-layout`; every image record (parse + schema + file
 * name); `index.json` (parse); every blob (re-hashed: content must match its name, names must be
 * digests); dangling references (records, and their manifests, naming blobs that are missing or
 * damaged; index.json entries naming missing manifests); `index.json` in step with the records.
 * Ingests are not problems (they are resumable downloads); store GC removes old ones.
 *
 * Repairs: damaged files are moved (never deleted) to `<root>/quarantine/<time>-<name>`; a damaged or
 * out-of-step `index.json` is rebuilt from the records; a record whose blobs are gone is quarantined
 * (the image is no longer present, so kubelet pulls it again); `oci-layout` and the version file are
 * rewritten. A newer format version is never "repaired" (`STORE_VERSION_UNSUPPORTED`).
 */
import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { isKimgError, KimgError } from '../errors/index.js';
import { ANNOTATION_REF_NAME, type ImageIndex } from '../oci/index.js';
import { DIGEST_ALGORITHMS, type DigestAlgorithm } from './internal/digest.js';
import {
  ensureDir,
  fsyncDir,
  ioError,
  isNotFound,
  readDirIfExists,
  readFileIfExists,
  writeFileAtomic,
} from './internal/fsutil.js';
import { isManagedEntry } from './image-store.js';
import { OCI_LAYOUT_VERSION, parseManifestBlob, parseOciLayout, serializeIndex } from './layout.js';
import { STORE_FORMAT_VERSION } from './paths.js';
import { type ImageRecord, recordFileName } from './records.js';
import type { StoreContext } from './types.js';

/** Options of `Store.verify`. */
export interface VerifyOptions {
  /** Fix what can be fixed (quarantine damaged files, rebuild index.json). */
  repair?: boolean;
  /** Re-hash every blob (default true; false checks only names, sizes and references). */
  hashBlobs?: boolean;
}

/** The kinds of problem verify reports. */
export type VerifyProblemKind =
  | 'version-file'
  | 'oci-layout'
  | 'record'
  | 'index-json'
  | 'blob-digest'
  | 'blob-name'
  | 'dangling'
  | 'index-out-of-sync';

/** One finding. */
export interface VerifyProblem {
  kind: VerifyProblemKind;
  message: string;
  file?: string;
  digest?: string;
  image?: string;
  /** What `--repair` did about it (absent when not repaired). */
  repaired?: string;
}

/** The report. `ok` is true when no problem remains (after repair, when repairing). */
export interface VerifyResult {
  ok: boolean;
  repair: boolean;
  blobsChecked: number;
  bytesChecked: number;
  records: number;
  problems: VerifyProblem[];
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

/** Moves a file into the quarantine directory; returns its new path. */
async function quarantine(ctx: StoreContext, file: string, prefix = ''): Promise<string> {
  await ensureDir(ctx.paths.quarantine);
  const dest = join(ctx.paths.quarantine, `${stamp()}-${prefix}${basename(file)}`);
  await fsp.rename(file, dest);
  await fsyncDir(join(file, '..'));
  await fsyncDir(ctx.paths.quarantine);
  return dest;
}

async function hashFile(
  ctx: StoreContext,
  file: string,
  algorithm: DigestAlgorithm,
): Promise<{ digest: string; size: number }> {
  const h = ctx.hasher.create(algorithm);
  const fh = await fsp.open(file, 'r');
  let size = 0;
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, size);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
      await h.capacity();
    }
    return { digest: await h.digest(), size };
  } catch (e) {
    h.dispose();
    throw e;
  } finally {
    await fh.close();
  }
}

/** Runs verify (see the file header). */
export async function runVerify(ctx: StoreContext, options: VerifyOptions = {}): Promise<VerifyResult> {
  const repair = options.repair === true;
  const hashBlobs = options.hashBlobs !== false;
  const { paths } = ctx;
  const problems: VerifyProblem[] = [];
  const result: VerifyResult = { ok: true, repair, blobsChecked: 0, bytesChecked: 0, records: 0, problems };
  const run: VerifyRun = { ctx, repair, problems, result };

  // Blobs first, outside the metadata lock (see verifyBlobs).
  const damaged = await verifyBlobs(run, hashBlobs);

  return ctx.withMetadataLock(repair ? 'store verify --repair' : 'store verify', async () => {
    // 1. Format version.
    await verifyVersionFile(run);

    // 2. oci-layout.
    await verifyLayoutFile(run);

    // 3. Records.
    const badRecords: { file: string; error: unknown }[] = [];
    let records = await ctx.images.readAll((file, error) => badRecords.push({ file, error }));
    for (const b of badRecords) {
      const p: VerifyProblem = {
        kind: 'record',
        file: b.file,
        message: b.error instanceof Error ? b.error.message : String(b.error),
      };
      if (repair) p.repaired = `quarantined to ${await quarantine(ctx, b.file, 'record-')}`;
      problems.push(p);
    }

    // 4. index.json.
    let index;
    let indexBroken = false;
    try {
      index = await ctx.images.readIndex();
    } catch (e) {
      if (!isKimgError(e, 'STORE_CORRUPT')) throw e;
      indexBroken = true;
      const p: VerifyProblem = { kind: 'index-json', file: paths.indexFile, message: e.message };
      if (repair)
        p.repaired = `quarantined to ${await quarantine(ctx, paths.indexFile, 'index-')}; rebuilt from the records`;
      problems.push(p);
    }

    // 6. Dangling references of records.
    const present = async (d: string) => !damaged.has(d) && (await ctx.content.hasBlob(d));
    const dangling = await verifyRecordBlobs(run, records, present);
    if (repair && dangling.length > 0) records = records.filter((r) => !dangling.includes(r));
    result.records = records.length;

    // 7. index.json: foreign entries naming missing manifests, and sync with the records.
    if (index && !indexBroken) {
      await verifyIndexEntries(run, index, present);
    }
    if (!indexBroken && (await ctx.images.indexOutOfSync(records))) {
      const p: VerifyProblem = {
        kind: 'index-out-of-sync',
        file: paths.indexFile,
        message: `${paths.indexFile} does not list exactly the stored images`,
      };
      if (repair) p.repaired = 'rebuilt from the records';
      problems.push(p);
    }
    if (repair) await ctx.images.syncIndexLocked(records);

    result.ok = problems.every((p) => repair && p.repaired !== undefined);
    return result;
  });
}

/** One verify run: where problems and counts go. */
interface VerifyRun {
  ctx: StoreContext;
  repair: boolean;
  problems: VerifyProblem[];
  result: VerifyResult;
}

/** Whether a blob is committed and was not found damaged by this run. */
type Present = (digest: string) => Promise<boolean>;

/**
 * Blobs, outside the metadata lock: re-hashing gigabytes must not block pulls and puts. Only files
 * named by a digest are hashed; damaged ones are quarantined without the lock too (moving a blob out
 * never makes a good image bad: it was already unusable). Returns the digests found damaged.
 */
async function verifyBlobs(run: VerifyRun, hashBlobs: boolean): Promise<Set<string>> {
  const { ctx, repair, problems, result } = run;
  const { paths } = ctx;
  const damaged = new Set<string>();
  for (const alg of await readDirIfExists(paths.blobs)) {
    const dir = join(paths.blobs, alg);
    const st = await fsp.stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const known = Object.prototype.hasOwnProperty.call(DIGEST_ALGORITHMS, alg);
    const names = await readDirIfExists(dir);
    const queue = [...names];
    const worker = async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        const file = join(dir, name);
        const fst = await fsp.stat(file).catch(() => undefined);
        if (!fst?.isFile()) continue;
        const validName =
          known && name.length === DIGEST_ALGORITHMS[alg as DigestAlgorithm] && /^[a-f0-9]+$/.test(name);
        if (!validName) {
          const p: VerifyProblem = { kind: 'blob-name', file, message: `${file} is not named by a digest` };
          if (repair) p.repaired = `quarantined to ${await quarantine(ctx, file, `blob-${alg}-`)}`;
          problems.push(p);
          continue;
        }
        const digest = `${alg}:${name}`;
        result.blobsChecked++;
        if (!hashBlobs) continue;
        let hashed;
        try {
          hashed = await hashFile(ctx, file, alg as DigestAlgorithm);
        } catch (e) {
          if (isNotFound(e)) continue; // deleted by a concurrent GC while we listed
          throw ioError('read blob', file, e);
        }
        const { digest: actual, size } = hashed;
        result.bytesChecked += size;
        if (actual !== digest) {
          damaged.add(digest);
          const p: VerifyProblem = {
            kind: 'blob-digest',
            file,
            digest,
            message: `blob ${digest} does not match its content (content hashes to ${actual})`,
          };
          if (repair) p.repaired = `quarantined to ${await quarantine(ctx, file, `blob-${alg}-`)}`;
          problems.push(p);
        }
      }
    };
    // Two at a time: one per hashing worker on a 2-core node; I/O overlaps the other's hashing.
    await Promise.all([worker(), worker()]);
  }

  return damaged;
}

/** The store's format-version file: present and naming this format. */
async function verifyVersionFile(run: VerifyRun): Promise<void> {
  const { ctx, repair, problems } = run;
  const { paths } = ctx;
  const vbuf = await readFileIfExists(paths.versionFile);
  let versionOk = false;
  if (vbuf !== undefined) {
    try {
      const v = JSON.parse(vbuf.toString('utf8')) as { version?: unknown };
      if (typeof v.version === 'number' && v.version > STORE_FORMAT_VERSION) {
        throw new KimgError(
          'STORE_VERSION_UNSUPPORTED',
          `store ${paths.root} has format version ${v.version}; this kimg understands ${STORE_FORMAT_VERSION}: upgrade kimg`,
          {
            file: paths.versionFile,
            expected: STORE_FORMAT_VERSION,
            actual: v.version,
          },
        );
      }
      versionOk = v.version === STORE_FORMAT_VERSION;
    } catch (e) {
      if (isKimgError(e, 'STORE_VERSION_UNSUPPORTED')) throw e;
    }
  }
  if (!versionOk) {
    const p: VerifyProblem = {
      kind: 'version-file',
      file: paths.versionFile,
      message: `${paths.versionFile} is missing or not {"version":${STORE_FORMAT_VERSION}}`,
    };
    if (repair) {
      if (vbuf !== undefined) await quarantine(ctx, paths.versionFile);
      await writeFileAtomic(paths.versionFile, JSON.stringify({ version: STORE_FORMAT_VERSION }) + '\n');
      p.repaired = 'rewritten';
    }
    problems.push(p);
  }
}

/** The layout's `oci-layout` file. */
async function verifyLayoutFile(run: VerifyRun): Promise<void> {
  const { ctx, repair, problems } = run;
  const { paths } = ctx;
  const lbuf = await readFileIfExists(paths.layoutFile);
  let layoutOk = false;
  if (lbuf !== undefined) {
    try {
      layoutOk =
        parseOciLayout(lbuf, paths.layoutFile, 'STORE_CORRUPT').imageLayoutVersion === OCI_LAYOUT_VERSION;
    } catch {
      layoutOk = false;
    }
  }
  if (!layoutOk) {
    const p: VerifyProblem = {
      kind: 'oci-layout',
      file: paths.layoutFile,
      message: `${paths.layoutFile} is missing or not {"imageLayoutVersion":"${OCI_LAYOUT_VERSION}"}`,
    };
    if (repair) {
      if (lbuf !== undefined) await quarantine(ctx, paths.layoutFile);
      await writeFileAtomic(
        paths.layoutFile,
        JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }),
        0o644,
      );
      p.repaired = 'rewritten';
    }
    problems.push(p);
  }
}

/** Records whose manifest, config or layers are missing or damaged; returns them. */
async function verifyRecordBlobs(
  run: VerifyRun,
  records: readonly ImageRecord[],
  present: Present,
): Promise<ImageRecord[]> {
  const { ctx, repair, problems } = run;
  const { paths } = ctx;
  const dangling: ImageRecord[] = [];
  for (const r of records) {
    const missing: string[] = [];
    const need = [r.manifestDigest, r.imageId, ...r.layers.map((l) => l.digest)];
    if (r.indexDigest) need.push(r.indexDigest);
    for (const d of need) if (!(await present(d))) missing.push(d);
    if (missing.length === 0) {
      try {
        const bytes = await ctx.content.readBlob(r.manifestDigest, { verify: false });
        const m = parseManifestBlob(
          bytes,
          r.manifestMediaType,
          ctx.content.blobPath(r.manifestDigest),
          'STORE_CORRUPT',
        );
        if (m.kind !== 'manifest') missing.push(`${r.manifestDigest} (an index, not an image manifest)`);
        else if (m.manifest.config.digest !== r.imageId)
          missing.push(`${r.imageId} (the manifest names config ${m.manifest.config.digest})`);
        else for (const l of m.manifest.layers) if (!(await present(l.digest))) missing.push(l.digest);
      } catch (e) {
        missing.push(`${r.manifestDigest} (${e instanceof Error ? e.message : String(e)})`);
      }
    }
    if (missing.length > 0) {
      dangling.push(r);
      const p: VerifyProblem = {
        kind: 'dangling',
        image: r.name,
        digest: missing[0]?.split(' ')[0],
        message: `image ${r.name}${r.runtimeHandler ? ` (handler ${r.runtimeHandler})` : ''} needs blobs that are missing or damaged: ${missing.join(', ')}`,
      };
      p.file = join(paths.images, recordFileName(r));
      if (repair)
        p.repaired = `record quarantined to ${await quarantine(ctx, p.file, 'record-')}; pull the image again`;
      problems.push(p);
    }
  }
  return dangling;
}

/** Foreign `index.json` entries naming missing manifests (removed by a repair). */
async function verifyIndexEntries(run: VerifyRun, index: ImageIndex, present: Present): Promise<void> {
  const { repair, problems } = run;
  const { paths } = run.ctx;
  const keep = [];
  let dropped = 0;
  for (const d of index.manifests) {
    if (!isManagedEntry(d) && !(await present(d.digest))) {
      const p: VerifyProblem = {
        kind: 'dangling',
        file: paths.indexFile,
        digest: d.digest,
        ...(d.annotations?.[ANNOTATION_REF_NAME] ? { image: d.annotations[ANNOTATION_REF_NAME] } : {}),
        message: `index.json entry ${d.annotations?.[ANNOTATION_REF_NAME] ?? d.digest} names a manifest that is missing or damaged`,
      };
      if (repair) p.repaired = 'entry removed from index.json';
      problems.push(p);
      dropped++;
    } else keep.push(d);
  }
  if (repair && dropped > 0) {
    await writeFileAtomic(paths.indexFile, serializeIndex({ ...index, manifests: keep }), 0o644);
  }
}
