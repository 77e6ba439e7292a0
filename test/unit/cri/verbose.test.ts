/**
 * The verbose ImageStatus `info` (src/cri/verbose.ts): containerd's rendering of an image config (the
 * image-spec Go struct encoded again) byte for byte. The golden answers are what containerd 1.6's CRI
 * plugin returned for these configs; the integration suites compare against a live containerd too.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { chainId, goImageSpecJson, verboseInfoFromConfig } from '../../../src/cri/verbose.js';
import { fuzzParams } from '../../helpers/fuzz.js';

const D1 = 'sha256:44e8dec75ec50401750d4dd384acb0fcb25c06db55e8eb59151fa02e0479a417';
const D2 = 'sha256:648e02978f6f1bcbed9086de3e139240af29b65f62f15d3c103dfedc18151f77';
const CHAIN = 'sha256:e525a29f73d5510d68729ee31fce5052b946ead73b1658d57507a2413f6ae397';

test('a Docker-style config: spec fields only, in order, sorted maps, Go times and escapes', () => {
  const config = {
    created: '2024-01-01T00:00:00.500000000+00:00',
    author: 'someone',
    architecture: 'amd64',
    os: 'linux',
    'os.features': ['b', 'a'],
    variant: 'v2',
    'os.version': '10.1',
    container: 'abc',
    docker_version: '24.0',
    'x-extra': { a: 1 },
    container_config: { Hostname: 'h', Cmd: ['x'] },
    config: {
      Hostname: '',
      User: 'u<&>\u2028',
      Env: ['A=<b>'],
      Entrypoint: ['/e'],
      WorkingDir: '/w',
      Labels: { z: '1', a: '2', B: '3' },
      Volumes: { '/v2': {}, '/v1': {} },
      Cmd: ['/bin/sh'],
      ArgsEscaped: true,
      OnBuild: null,
      Image: 'sha256:abc',
      ExposedPorts: { '80/tcp': {}, '443/tcp': {}, '1000/udp': {} },
      StopSignal: 'SIGTERM',
      Healthcheck: { Test: ['NONE'] },
    },
    rootfs: { type: 'layers', diff_ids: [D1, D2], extra: 1 },
    history: [
      { created: '2023-05-05T10:00:00.123000+02:00', created_by: 'a', empty_layer: true, comment: '' },
      { created_by: 'b', author: 'x', comment: 'c', empty_layer: false },
      {},
    ],
  };
  assert.equal(
    verboseInfoFromConfig(JSON.stringify(config)).info,
    `{"chainID":"${CHAIN}","imageSpec":{"created":"2024-01-01T00:00:00.5Z","author":"someone","architecture":"amd64","variant":"v2","os":"linux","os.version":"10.1","os.features":["b","a"],"config":{"User":"u\\u003c\\u0026\\u003e\\u2028","ExposedPorts":{"1000/udp":{},"443/tcp":{},"80/tcp":{}},"Env":["A=\\u003cb\\u003e"],"Entrypoint":["/e"],"Cmd":["/bin/sh"],"Volumes":{"/v1":{},"/v2":{}},"WorkingDir":"/w","Labels":{"B":"3","a":"2","z":"1"},"StopSignal":"SIGTERM","ArgsEscaped":true},"rootfs":{"type":"layers","diff_ids":["${D1}","${D2}"]},"history":[{"created":"2023-05-05T10:00:00.123+02:00","created_by":"a","empty_layer":true},{"created_by":"b","author":"x","comment":"c"},{}]}}`,
  );
});

test('a minimal config: the fields Go always writes are there (config {})', () => {
  const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [D1, D2] } };
  assert.equal(
    verboseInfoFromConfig(Buffer.from(JSON.stringify(config))).info,
    `{"chainID":"${CHAIN}","imageSpec":{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["${D1}","${D2}"]}}}`,
  );
  assert.equal(
    goImageSpecJson({}),
    '{"architecture":"","os":"","config":{},"rootfs":{"type":"","diff_ids":null}}',
  );
});

test('keys match the spec fields ignoring case, the last one wins; control characters as Go writes them', () => {
  const spec = JSON.parse(
    '{"OS":"linux","os":"windows","Architecture":"arm64","config":{"user":"x\\b\\f\\n\\u0001"}}',
  ) as Record<string, unknown>;
  assert.equal(
    goImageSpecJson(spec),
    '{"architecture":"arm64","os":"windows","config":{"User":"x\\u0008\\u000c\\n\\u0001"},"rootfs":{"type":"","diff_ids":null}}',
  );
});

test('a field of the wrong JSON type is left out (containerd would refuse the image)', () => {
  const spec = {
    architecture: 5,
    os: 'linux',
    config: { User: 5, Env: ['A', 1], Cmd: 'sh', Labels: { a: 1, b: 'x' } },
  };
  assert.equal(
    goImageSpecJson(spec),
    '{"architecture":"","os":"linux","config":{"Labels":{"b":"x"}},"rootfs":{"type":"","diff_ids":null}}',
  );
});

test('a timestamp that is not RFC 3339 is left out (Go cannot decode it)', () => {
  const spec = {
    created: 'yesterday',
    os: 'linux',
    history: [{ created: '2024-01-01 10:00', comment: 'c' }],
  };
  assert.equal(
    goImageSpecJson(spec),
    '{"architecture":"","os":"linux","config":{},"rootfs":{"type":"","diff_ids":null},"history":[{"comment":"c"}]}',
  );
});

test('not a JSON object: no info (containerd cannot load such an image)', () => {
  for (const bad of ['', 'nope', '[]', 'null', '"s"']) assert.deepEqual(verboseInfoFromConfig(bad), {});
});

const text = fc.string({ unit: 'binary', maxLength: 12 });
const strings = fc.array(text, { maxLength: 3 });
const anyJson = fc.jsonValue({ maxDepth: 2 });
const config = fc.record(
  {
    created: fc.oneof(text, fc.constantFrom('2024-01-01T00:00:00.120Z', '2024-01-01T00:00:00-07:00')),
    author: text,
    architecture: text,
    variant: text,
    os: text,
    'os.version': text,
    'os.features': strings,
    config: fc.record(
      {
        User: text,
        Env: strings,
        Cmd: fc.oneof(strings, anyJson),
        Labels: fc.dictionary(text, fc.oneof(text, fc.constant(null)), { maxKeys: 3 }),
        ExposedPorts: fc.dictionary(text, fc.constant({}), { maxKeys: 3 }),
        ArgsEscaped: fc.boolean(),
        Hostname: text,
      },
      { requiredKeys: [] },
    ),
    rootfs: fc.record({ type: text, diff_ids: strings }, { requiredKeys: [] }),
    history: fc.array(
      fc.record({ created_by: text, empty_layer: fc.boolean(), x: anyJson }, { requiredKeys: [] }),
      { maxLength: 3 },
    ),
    extra: anyJson,
  },
  { requiredKeys: [] },
);

test('property: the info is JSON, its chainID is the ChainID of diff_ids, and rendering is a fixed point', () => {
  fc.assert(
    fc.property(config, (c) => {
      const info = verboseInfoFromConfig(JSON.stringify(c)).info!;
      const parsed = JSON.parse(info) as { chainID: string; imageSpec: Record<string, unknown> };
      const ids = Array.isArray(c.rootfs?.diff_ids) ? c.rootfs.diff_ids : [];
      assert.equal(parsed.chainID, chainId(ids));
      // containerd decoding its own answer and encoding it again gets the same bytes.
      assert.equal(goImageSpecJson(parsed.imageSpec), info.slice(info.indexOf('"imageSpec":') + 12, -1));
    }),
    fuzzParams(),
  );
});
