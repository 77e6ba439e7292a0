/**
 * Which image a containerd container uses (image GC's in-use input): the CRI plugin's metadata
 * extension wins over the record's image name, anything malformed falls back to the name (property
 * test), and the `extensions` field decodes from containerd's wire bytes (field 10, map of Any).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import * as protoLoader from '@grpc/proto-loader';
import { CRI_CONTAINER_METADATA_EXTENSION, containerImageInUse } from '../../../src/containerd/index.js';
import {
  CONTAINERD_PROTO_FILES,
  CONTAINERD_PROTO_LOADER_OPTIONS,
  containerdProtoDir,
  type WireContainer,
} from '../../../src/containerd/internal/proto.js';
import { fuzzParams } from '../../helpers/fuzz.js';

const ID = `sha256:${'c9'.repeat(32)}`;
/** The type URL containerd 1.6's CRI plugin registers its container metadata under. */
const TYPE_URL = 'github.com/containerd/cri/pkg/store/container/Metadata';

function criMetadata(imageRef: unknown): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      Version: 'v1',
      Metadata: { ID: 'c1', Name: 'app_pod_default_uid_0', ImageRef: imageRef },
    }),
  );
}

function container(image: string, ext?: Uint8Array): Parameters<typeof containerImageInUse>[0] {
  return {
    image,
    extensions:
      ext === undefined ? {} : { [CRI_CONTAINER_METADATA_EXTENSION]: { typeUrl: TYPE_URL, value: ext } },
  };
}

describe('containerImageInUse', () => {
  const cases: { name: string; c: Parameters<typeof containerImageInUse>[0]; want: string | undefined }[] = [
    { name: 'CRI container: the image id', c: container('reg/app:1', criMetadata(ID)), want: ID },
    { name: 'no extension (ctr run): the name', c: container('reg/app:1'), want: 'reg/app:1' },
    { name: 'no image at all', c: container(''), want: undefined },
    {
      name: 'metadata without ImageRef: the name',
      c: container('reg/app:1', criMetadata(undefined)),
      want: 'reg/app:1',
    },
    {
      name: 'ImageRef not an id: the name',
      c: container('reg/app:1', criMetadata('reg/other:1')),
      want: 'reg/app:1',
    },
    { name: 'ImageRef not a string', c: container('reg/app:1', criMetadata(42)), want: 'reg/app:1' },
    { name: 'not JSON: the name', c: container('reg/app:1', Buffer.from('\x0a\x02hi')), want: 'reg/app:1' },
    { name: 'JSON null', c: container('reg/app:1', Buffer.from('null')), want: 'reg/app:1' },
    { name: 'CRI container without a name', c: container('', criMetadata(ID)), want: ID },
    {
      name: 'another extension only: the name',
      c: { image: 'reg/app:1', extensions: { other: { typeUrl: 'x', value: criMetadata(ID) } } },
      want: 'reg/app:1',
    },
  ];
  for (const k of cases) test(k.name, () => assert.equal(containerImageInUse(k.c), k.want));

  test('a view into a larger buffer reads only its own bytes', () => {
    const doc = criMetadata(ID);
    const big = Buffer.concat([Buffer.from('garbage{'), doc, Buffer.from('}trailing')]);
    const view = new Uint8Array(big.buffer, big.byteOffset + 8, doc.byteLength);
    assert.equal(containerImageInUse(container('reg/app:1', view)), ID);
  });

  test('property: never throws; the answer is a well-formed id from the metadata or the name', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
          fc.jsonValue().map((v) => criMetadata(v)),
        ),
        (image, value) => {
          const got = containerImageInUse(container(image, value));
          if (got === image || (got === undefined && image === '')) return;
          assert.match(got ?? '', /^sha256:[a-f0-9]{64}$/);
        },
      ),
      fuzzParams(),
    );
  });
});

/** Protobuf wire encoding of a length-delimited field (wire type 2), as containerd sends it. */
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
function field(num: number, bytes: Buffer | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return Buffer.concat([varint((num << 3) | 2), varint(b.length), b]);
}

test('Containers.List decodes extensions (field 10, map<string, Any>) from containerd wire bytes', () => {
  const dir = containerdProtoDir();
  const def = protoLoader.loadSync(
    CONTAINERD_PROTO_FILES.map((f) => join(dir, f)),
    { ...CONTAINERD_PROTO_LOADER_OPTIONS, includeDirs: [dir] },
  );
  const svc = def['containerd.services.containers.v1.Containers'] as unknown as Record<
    string,
    { responseDeserialize: (b: Buffer) => { containers: WireContainer[] } }
  >;
  const meta = Buffer.from(criMetadata(ID));
  const any = Buffer.concat([field(1, TYPE_URL), field(2, meta)]);
  const entry = Buffer.concat([field(1, CRI_CONTAINER_METADATA_EXTENSION), field(2, any)]);
  // containerd's Container: id 1, image 3, runtime 4 and spec 5 (skipped by the subset), extensions 10.
  const c = Buffer.concat([
    field(1, 'c1'),
    field(3, 'reg/app:1'),
    field(4, field(1, 'io.containerd.runc.v2')),
    field(10, entry),
  ]);
  const r = svc['List']!.responseDeserialize(field(1, c));
  const got = r.containers[0]!;
  assert.equal(got.id, 'c1');
  assert.equal(got.image, 'reg/app:1');
  const ext = got.extensions[CRI_CONTAINER_METADATA_EXTENSION];
  assert.equal(ext?.type_url, TYPE_URL);
  assert.deepEqual(Buffer.from(ext.value), meta);
  assert.equal(
    containerImageInUse({
      image: got.image,
      extensions: { [CRI_CONTAINER_METADATA_EXTENSION]: { typeUrl: ext.type_url, value: ext.value } },
    }),
    ID,
  );
});
