/**
 * Crafted OCI layouts given to `kimg load`: files that are FIFOs or symlinks to `/dev/zero`, unknown
 * layout versions, sizes in exponent form and descriptors the registry client would refuse too. Each
 * is refused with `LAYOUT_INVALID` (exit 2), at once, with memory flat.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isKimgError } from '../../../src/errors/index.js';
import {
  descriptorProblem,
  jsonSizeProblem,
  manifestDocumentProblem,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  MediaType,
} from '../../../src/oci/index.js';
import { MAX_MANIFEST_BYTES as REGISTRY_MAX_MANIFEST_BYTES } from '../../../src/registry/index.js';
import { DEFAULT_READ_BLOB_MAX } from '../../../src/store/content-store.js';
import { parseIndexDocument, parseManifestBlob } from '../../../src/store/layout.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { kimg } from '../credentials/helpers.js';

let dir: string;
let n = 0;
before(async () => {
  dir = await makeTempDir('hostile-layout-');
});
after(async () => {
  await removeTempDir(dir);
});

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A layout directory with the given `oci-layout` and `index.json` texts (undefined: leave the file out). */
async function layout(ociLayout: string | undefined, index: string | undefined): Promise<string> {
  const d = join(dir, `l${n++}`);
  await mkdir(join(d, 'blobs', 'sha256'), { recursive: true });
  if (ociLayout !== undefined) await writeFile(join(d, 'oci-layout'), ociLayout);
  if (index !== undefined) await writeFile(join(d, 'index.json'), index);
  return d;
}

async function load(d: string): Promise<{ status: number; stderr: string }> {
  return kimg(['load', `oci:${d}`, '--root', join(dir, 'root')]);
}

const GOOD_LAYOUT = '{"imageLayoutVersion":"1.0.0"}';

test('an oci-layout that is a symlink to /dev/zero is refused at once, memory flat', async () => {
  const d = await layout(undefined, '{"schemaVersion":2,"manifests":[]}');
  await symlink('/dev/zero', join(d, 'oci-layout'));
  const before = process.resourceUsage().maxRSS * 1024;
  const r = await load(d);
  const growth = process.resourceUsage().maxRSS * 1024 - before;
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /not a regular file \(a character device\).*\(LAYOUT_INVALID\)/);
  assert.ok(growth < 64 * 1024 * 1024, `peak RSS grew by ${growth} bytes`);
});

test('an index.json that is a FIFO is refused, not waited on', async () => {
  const d = await layout(GOOD_LAYOUT, undefined);
  execFileSync('mkfifo', [join(d, 'index.json')]);
  const r = await load(d);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /a FIFO/);
});

test('an unknown imageLayoutVersion is refused', async () => {
  const d = await layout('{"imageLayoutVersion":"9.9.9"}', '{"schemaVersion":2,"manifests":[]}');
  const r = await load(d);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /imageLayoutVersion "9\.9\.9" is not supported/);
});

test('descriptor sizes in exponent or fraction form are refused as Go refuses them', async () => {
  const digest = sha('x');
  for (const size of ['6.5536e4', '65536.0', '1E3']) {
    const d = await layout(
      GOOD_LAYOUT,
      `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${digest}","size":${size}}]}`,
    );
    const r = await load(d);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`size ${size.replace('.', '\\.')} is not an integer`));
  }
  assert.equal(jsonSizeProblem('{"size": 65536, "x": "\\"size\\": 1e3"}'), undefined);
});

test('one set of rules: non-string annotations and non-object platforms are refused everywhere', () => {
  const base = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha('y'), size: 1 };
  assert.equal(descriptorProblem(base, 'layers[0]'), undefined);
  assert.match(descriptorProblem({ ...base, annotations: { a: 1 } }, 'layers[0]') ?? '', /annotations/);
  assert.match(descriptorProblem({ ...base, platform: 'linux/amd64' }, 'manifests[0]') ?? '', /platform/);
  // One manifest cap: the registry client, the store's reader and configs share it.
  assert.equal(REGISTRY_MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES);
  assert.equal(DEFAULT_READ_BLOB_MAX, MAX_MANIFEST_BYTES);
  assert.equal(MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES);
});

test("the store's manifest and index readers apply the registry client's document rules, word for word", () => {
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha('y'), size: 1 };
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha('c'), size: 2 };
  const manifests: unknown[] = [
    // Top-level annotations that are not strings: the client refuses them, so the store must too.
    { schemaVersion: 2, config, layers: [layer], annotations: { n: 1 } },
    { schemaVersion: 2, config, layers: [{ ...layer, annotations: { a: true } }] },
    { schemaVersion: 1, config, layers: [] },
    { schemaVersion: 2, config, layers: 'none' },
  ];
  for (const m of manifests) {
    const problem = manifestDocumentProblem(m, false);
    assert.ok(problem !== undefined, JSON.stringify(m));
    assert.throws(
      () => parseManifestBlob(Buffer.from(JSON.stringify(m)), MediaType.OciManifest, 'blob', 'STORE_CORRUPT'),
      (e) => isKimgError(e, 'STORE_CORRUPT') && e.message.includes(problem),
    );
  }
  const index = { schemaVersion: 2, manifests: [{ ...layer, platform: 'linux/amd64' }] };
  const problem = manifestDocumentProblem(index, true) ?? '';
  assert.match(problem, /platform/);
  assert.throws(
    () => parseIndexDocument(JSON.stringify(index), 'index.json', 'LAYOUT_INVALID'),
    (e) => isKimgError(e, 'LAYOUT_INVALID') && e.message.includes(problem),
  );
  // What both accept, both accept.
  const ok = { schemaVersion: 2, config, layers: [layer], annotations: { a: 'b' } };
  assert.equal(manifestDocumentProblem(ok, false), undefined);
  assert.equal(
    parseManifestBlob(Buffer.from(JSON.stringify(ok)), undefined, 'blob', 'STORE_CORRUPT').kind,
    'manifest',
  );
});
