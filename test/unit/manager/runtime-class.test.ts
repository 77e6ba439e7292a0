import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runtimeHandlerFor } from '../../../src/manager/index.js';

const pod = (runtimeClassName?: unknown) => ({
  spec: runtimeClassName === undefined ? {} : { runtimeClassName },
});
const rc = (name: string, handler?: unknown) => ({
  kind: 'RuntimeClass',
  name,
  object: handler === undefined ? {} : { handler },
});

test("runtimeHandlerFor: the RuntimeClass's handler, else the class name, else the default runtime", () => {
  const objects = [
    rc('gvisor', 'runsc'),
    rc('kata'),
    { kind: 'Secret', name: 'plain', object: { handler: 'x' } },
  ];
  assert.equal(runtimeHandlerFor(pod('gvisor'), objects), 'runsc');
  assert.equal(runtimeHandlerFor(pod('kata'), objects), 'kata', 'a RuntimeClass without a handler');
  assert.equal(runtimeHandlerFor(pod('plain'), objects), 'plain', 'only RuntimeClass objects count');
  assert.equal(runtimeHandlerFor(pod('missing'), objects), 'missing');
  assert.equal(runtimeHandlerFor(pod(), objects), undefined);
  assert.equal(runtimeHandlerFor(pod(''), objects), undefined);
  assert.equal(runtimeHandlerFor(pod(7), objects), undefined);
  assert.equal(runtimeHandlerFor({}, objects), undefined);
});
