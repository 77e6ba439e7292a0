import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import {
  parseRecordFile,
  serializeRecord,
  validateRecord,
  type ImageRecord,
} from '../../../src/store/records.js';
import { parseIndexDocument, parseManifestBlob } from '../../../src/store/layout.js';
import { fuzzParams, onlyCodedErrors } from '../../helpers/fuzz.js';

const RECORD: ImageRecord = {
  name: '127.0.0.1:5000/small:1',
  runtimeHandler: '',
  digest: 'sha256:' + '1'.repeat(64),
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifestDigest: 'sha256:' + '2'.repeat(64),
  manifestMediaType: 'application/vnd.oci.image.manifest.v1+json',
  manifestSize: 500,
  indexDigest: 'sha256:' + '1'.repeat(64),
  imageId: 'sha256:' + '3'.repeat(64),
  size: 12345,
  platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  layers: [
    {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: 'sha256:' + '4'.repeat(64),
      size: 11000,
    },
  ],
  pulledAt: '2026-01-01T00:00:00.000Z',
  lastUsed: '2026-01-02T00:00:00.000Z',
  pinned: true,
  source: 'pull',
};

test('a record round-trips through its file format', () => {
  assert.deepEqual(parseRecordFile(serializeRecord(RECORD), '/f.json'), RECORD);
  assert.match(serializeRecord(RECORD), /^\{\n {2}"version": 1,/);
});

test('each invalid field is STORE_CORRUPT naming the file (or INVALID_ARGUMENT without a file)', () => {
  const bad: Partial<Record<keyof ImageRecord, unknown>>[] = [
    { name: '' },
    { name: 'a b' },
    { digest: 'sha256:xyz' },
    { manifestSize: -1 },
    { imageId: undefined },
    { platform: { os: 'linux' } },
    { layers: [{ digest: 'x' }] },
    { pulledAt: 'yesterday' },
    { pinned: 'yes' },
    { source: 'magic' },
  ];
  for (const patch of bad) {
    const rec = { ...RECORD, ...patch };
    assert.throws(
      () => parseRecordFile(JSON.stringify({ version: 1, record: rec }), '/r.json'),
      (e: unknown) => isKimgError(e, 'STORE_CORRUPT') && e.details.file === '/r.json',
      JSON.stringify(patch),
    );
    assert.throws(
      () => validateRecord(rec),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
      JSON.stringify(patch),
    );
  }
});

test('property: any text as a record file, index.json or manifest gives a value or a coded error', () => {
  const texts = fc.oneof(
    fc.string(),
    fc.json(),
    fc.jsonValue().map((v) => JSON.stringify({ version: 1, record: v })),
    fc
      .record({ ...Object.fromEntries(Object.keys(RECORD).map((k) => [k, fc.jsonValue()])) })
      .map((r) => JSON.stringify({ version: 1, record: { ...RECORD, ...r } })),
    fc.jsonValue().map((v) => JSON.stringify({ schemaVersion: 2, manifests: [v] })),
    fc.jsonValue().map((v) => JSON.stringify({ schemaVersion: 2, config: v, layers: [v] })),
  );
  fc.assert(
    fc.property(texts, (t) => {
      onlyCodedErrors(t, () => parseRecordFile(t, '/r.json'));
      onlyCodedErrors(t, () => parseIndexDocument(t, '/index.json', 'STORE_CORRUPT'));
      onlyCodedErrors(t, () => parseManifestBlob(Buffer.from(t), undefined, '/blob', 'LAYOUT_INVALID'));
    }),
    fuzzParams(),
  );
});

test('a decoded value that cannot be stringified (toString: null) is still a coded error', () => {
  // Regression: fast-check seed 282680111 found `String(v)` throwing a TypeError on this input.
  const text = JSON.stringify({ version: 1, record: { ...RECORD, digest: { toString: null } } });
  assert.throws(
    () => parseRecordFile(text, '/r.json'),
    (e: unknown) =>
      isKimgError(e, 'STORE_CORRUPT') && /digest \{"toString":null\} is not a valid digest/.test(e.message),
  );
});
