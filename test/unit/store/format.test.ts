import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  humanSize,
  resolveStoreRoot,
  splitNameTag,
  truncateId,
  parseLayoutSpec,
} from '../../../src/store/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

test('humanSize matches docker/go-units HumanSizeWithPrecision(size, 3) as crictl prints it', () => {
  const table: [number, string][] = [
    [0, '0B'],
    [1, '1B'],
    [999, '999B'],
    [1000, '1kB'],
    [1024, '1.02kB'],
    [8810, '8.81kB'],
    [10023, '10kB'],
    [14000, '14kB'],
    [67209, '67.2kB'],
    [262500, '262kB'],
    [263500, '264kB'],
    [999_999, '1e+03kB'],
    [1_000_000, '1MB'],
    [8_400_000, '8.4MB'],
    [1_073_741_824, '1.07GB'],
    [397_000_000, '397MB'],
    [1e15, '1PB'],
  ];
  for (const [n, s] of table) assert.equal(humanSize(n), s, String(n));
});

test('property: humanSize is 1-3 significant digits and a decimal unit for any non-negative size', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
      assert.match(humanSize(n), /^(\d{1,3}|\d\.\d{1,2}|\d\d\.\d|1e\+03)(B|kB|MB|GB|TB|PB|EB)$/);
    }),
    fuzzParams(),
  );
});

test('truncateId and splitNameTag follow crictl', () => {
  assert.equal(truncateId('sha256:7439649f2a6ee19e2c3a1e0d2c7e6a3b'), '7439649f2a6ee');
  assert.equal(truncateId('abc'), 'abc');
  assert.deepEqual(splitNameTag('127.0.0.1:5000/small:1'), ['127.0.0.1:5000/small', '1']);
  assert.deepEqual(splitNameTag('localhost:5000/x@sha256:' + 'a'.repeat(64)), ['localhost:5000/x', '<none>']);
  assert.deepEqual(splitNameTag('docker.io/library/busybox:1.36@sha256:' + 'a'.repeat(64)), [
    'docker.io/library/busybox',
    '1.36',
  ]);
});

test('resolveStoreRoot: --root, then KIMG_ROOT, then /var/lib/kimg for root, then XDG_DATA_HOME/kimg', () => {
  assert.equal(resolveStoreRoot({ root: '/x/y', env: { KIMG_ROOT: '/env' }, uid: 0 }), '/x/y');
  assert.equal(resolveStoreRoot({ env: { KIMG_ROOT: '/env' }, uid: 0 }), '/env');
  assert.equal(resolveStoreRoot({ env: {}, uid: 0 }), '/var/lib/kimg');
  assert.equal(
    resolveStoreRoot({ env: { XDG_DATA_HOME: '/home/u/.data' }, uid: 1000 }),
    '/home/u/.data/kimg',
  );
  assert.equal(resolveStoreRoot({ env: { HOME: '/home/u' }, uid: 1000 }), '/home/u/.local/share/kimg');
  assert.equal(
    resolveStoreRoot({ env: { XDG_DATA_HOME: 'relative' }, uid: 1000 }),
    join(homedir(), '.local', 'share', 'kimg'),
  );
});

test('parseLayoutSpec splits oci:DIR[:REF] at the first colon after the transport', () => {
  assert.deepEqual(parseLayoutSpec('oci:/tmp/x:127.0.0.1:5000/small:1'), {
    dir: '/tmp/x',
    ref: '127.0.0.1:5000/small:1',
  });
  assert.deepEqual(parseLayoutSpec('oci:/tmp/x'), { dir: '/tmp/x' });
  assert.deepEqual(parseLayoutSpec('oci:/tmp/x:'), { dir: '/tmp/x' });
  for (const bad of ['/tmp/x', 'docker://x', 'oci:', 'oci::ref']) {
    assert.throws(
      () => parseLayoutSpec(bad),
      (e: unknown) => isKimgError(e, 'USAGE'),
      bad,
    );
  }
});
