/**
 * The CRI RuntimeService subset image GC uses: `Container` decodes with cri-api's field numbers
 * (hand-encoded bytes: image=4, image_ref=5, image_id=10), a container maps to the image it keeps in
 * use (image_id, else image_ref, else the image it names; property test), ListContainers sends the
 * filter only when one is given, and a socket nobody serves fails as `RUNTIME_UNAVAILABLE`.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  CriRuntimeService,
  containerFromWire,
  criContainerImageInUse,
  loadCriPackage,
} from '../../../src/cri/index.js';
import type { WireContainer } from '../../../src/cri/proto.js';
import { isKimgError } from '../../../src/errors/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const ID = `sha256:${'ab'.repeat(32)}`;

function lenField(n: number, payload: Buffer): Buffer {
  const tag = (n << 3) | 2;
  const key = tag < 0x80 ? Buffer.from([tag]) : Buffer.from([(tag & 0x7f) | 0x80, tag >> 7]);
  return Buffer.concat([key, Buffer.from([payload.length]), payload]);
}

function wire(c: Partial<WireContainer>): WireContainer {
  return {
    id: 'c1',
    pod_sandbox_id: 's1',
    metadata: null,
    image: null,
    image_ref: '',
    state: 'CONTAINER_RUNNING',
    created_at: 0,
    labels: {},
    annotations: {},
    image_id: '',
    ...c,
  };
}

describe('cri RuntimeService subset', () => {
  test('ListContainers is on the RuntimeService path; Container decodes from hand-made bytes', () => {
    const svc = loadCriPackage().RuntimeService.service;
    assert.equal(svc.ListContainers!.path, '/runtime.v1.RuntimeService/ListContainers');
    // ListContainersResponse{ containers(1): Container{ id(1)="c", image(4)=ImageSpec{image(1)="r/a:1"},
    //   image_ref(5)=ID, image_id(10)="sha256:x" } }
    const container = Buffer.concat([
      lenField(1, Buffer.from('c')),
      lenField(4, lenField(1, Buffer.from('r/a:1'))),
      lenField(5, Buffer.from(ID)),
      lenField(10, Buffer.from('sha256:x')),
    ]);
    const res = svc.ListContainers!.responseDeserialize(lenField(1, container)) as {
      containers: WireContainer[];
    };
    const c = containerFromWire(res.containers[0]!);
    assert.equal(c.id, 'c');
    assert.equal(c.image?.image, 'r/a:1');
    assert.equal(c.imageRef, ID);
    assert.equal(c.imageId, 'sha256:x');
    assert.equal(c.state, 'CONTAINER_CREATED');
    assert.equal(c.metadata, undefined);
  });

  test('ListContainersRequest filter numbers: id=1, state=2, pod_sandbox_id=3', () => {
    const svc = loadCriPackage().RuntimeService.service;
    const bytes = svc.ListContainers!.requestSerialize({
      filter: { id: 'c', pod_sandbox_id: 'p', state: { state: 'CONTAINER_EXITED' } },
    });
    const expected = lenField(
      1,
      Buffer.concat([
        lenField(1, Buffer.from('c')),
        lenField(2, Buffer.from([0x08, 2])),
        lenField(3, Buffer.from('p')),
      ]),
    );
    assert.deepEqual(bytes, expected);
  });

  test('the image in use: image_id, else image_ref, else the image the container names', () => {
    const of = (c: Partial<WireContainer>) => criContainerImageInUse(containerFromWire(wire(c)));
    const spec = { image: 'r/a:1', annotations: {}, runtime_handler: '' };
    assert.equal(of({ image_id: ID, image_ref: 'r/a@sha256:x', image: spec }), ID);
    // containerd: image_ref is the image id, image_id unset.
    assert.equal(of({ image_ref: ID, image: spec }), ID);
    assert.equal(of({ image: spec }), 'r/a:1');
    assert.equal(of({}), undefined);
    assert.equal(of({ image: { ...spec, image: '' } }), undefined);
  });

  test('the image in use is always the first non-empty of image_id, image_ref, image.image', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.option(fc.string(), { nil: undefined }), (id, ref, name) => {
        const got = criContainerImageInUse({
          imageId: id,
          imageRef: ref,
          image: name === undefined ? undefined : { image: name },
        });
        const want = [id, ref, name ?? ''].find((s) => s !== '');
        assert.equal(got, want);
      }),
      fuzzParams(),
    );
  });

  test('a socket nobody serves: ListContainers fails RUNTIME_UNAVAILABLE naming the endpoint', async () => {
    const dir = await makeTempDir('cri-rt-');
    const rt = new CriRuntimeService({ endpoint: `unix://${join(dir, 'none.sock')}`, timeoutMs: 5_000 });
    try {
      await assert.rejects(
        rt.listContainers(),
        (e: unknown) => isKimgError(e, 'RUNTIME_UNAVAILABLE') && e.message.includes('none.sock'),
      );
    } finally {
      rt.close();
      await removeTempDir(dir);
    }
  });

  test('an endpoint that is not a unix socket is INVALID_ARGUMENT', () => {
    assert.throws(
      () => new CriRuntimeService({ endpoint: 'tcp://127.0.0.1:1' }),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
    );
  });
});
