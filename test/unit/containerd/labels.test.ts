/**
 * The pure parts of the containerd backend: GC child labels (containerd `images/mediatypes.go`
 * ChildGCLabels + SetChildrenMappedLabels counters), distribution-source merging, ingest refs, ChainIDs,
 * CRI record names, the address grammar (property tests) and the wire round trip of the proto subset.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import * as protoLoader from '@grpc/proto-loader';
import {
  chainIds,
  childGcLabels,
  childrenOf,
  containerdTarget,
  criImageNames,
  distributionSourceLabel,
  ingestRef,
  leaseExpiryLabels,
  validateNamespace,
} from '../../../src/containerd/index.js';
import {
  CONTAINERD_PROTO_FILES,
  CONTAINERD_PROTO_LOADER_OPTIONS,
  containerdProtoDir,
  loadContainerdPackage,
} from '../../../src/containerd/internal/proto.js';
import { isKimgError } from '../../../src/errors/index.js';
import { MediaType } from '../../../src/oci/index.js';
import { parseReference } from '../../../src/reference/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';
import { join } from 'node:path';

const d = (c: string): string => `sha256:${c.repeat(64)}`;

describe('containerd labels', () => {
  test('a manifest labels its config and each layer, counters per prefix', () => {
    const labels = childGcLabels(
      childrenOf({
        config: { mediaType: MediaType.OciConfig, digest: d('c') },
        layers: [
          { mediaType: MediaType.OciLayerGzip, digest: d('1') },
          { mediaType: MediaType.DockerLayerGzip, digest: d('2') },
          { mediaType: MediaType.OciLayerZstd, digest: d('1') },
        ],
      }),
    );
    assert.deepEqual(labels, {
      'containerd.io/gc.ref.content.config': d('c'),
      'containerd.io/gc.ref.content.l.0': d('1'),
      'containerd.io/gc.ref.content.l.1': d('2'),
      'containerd.io/gc.ref.content.l.2': d('1'),
    });
  });

  test('an index labels every manifest with .m.<i>; other children get .<i>; config counts from its second use', () => {
    assert.deepEqual(
      childGcLabels(
        childrenOf({
          manifests: [
            { mediaType: MediaType.OciManifest, digest: d('a') },
            { mediaType: MediaType.DockerManifest, digest: d('b') },
            { mediaType: MediaType.OciIndex, digest: d('e') },
          ],
        }),
      ),
      {
        'containerd.io/gc.ref.content.m.0': d('a'),
        'containerd.io/gc.ref.content.m.1': d('b'),
        'containerd.io/gc.ref.content.m.2': d('e'),
      },
    );
    assert.deepEqual(
      childGcLabels([
        { mediaType: 'application/vnd.example+json', digest: d('1') },
        { mediaType: MediaType.OciConfig, digest: d('2') },
        { mediaType: MediaType.DockerConfig, digest: d('3') },
        { mediaType: 'application/vnd.example+json', digest: d('4') },
      ]),
      {
        'containerd.io/gc.ref.content.0': d('1'),
        'containerd.io/gc.ref.content.config': d('2'),
        'containerd.io/gc.ref.content.config1': d('3'),
        'containerd.io/gc.ref.content.1': d('4'),
      },
    );
  });

  test('distribution source: merged, sorted, de-duplicated; nothing when already there or too long', () => {
    assert.deepEqual(distributionSourceLabel('docker.io', 'library/nginx'), {
      key: 'containerd.io/distribution.source.docker.io',
      value: 'library/nginx',
    });
    const existing = { 'containerd.io/distribution.source.docker.io': 'library/nginx,team/b' };
    assert.deepEqual(distributionSourceLabel('docker.io', 'team/a', existing), {
      key: 'containerd.io/distribution.source.docker.io',
      value: 'library/nginx,team/a,team/b',
    });
    assert.equal(distributionSourceLabel('docker.io', 'team/b', existing), undefined);
    assert.equal(distributionSourceLabel('r.example', 'x'.repeat(5000)), undefined);
  });

  test('distribution source: the key names the domain without its port, as containerd (url.Hostname)', () => {
    const key = (domain: string) => distributionSourceLabel(domain, 'app')?.key;
    assert.equal(key('127.0.0.1:5000'), 'containerd.io/distribution.source.127.0.0.1');
    assert.equal(key('registry.example:443'), 'containerd.io/distribution.source.registry.example');
    assert.equal(key('localhost'), 'containerd.io/distribution.source.localhost');
    assert.equal(key('[::1]:5000'), 'containerd.io/distribution.source.::1');
    assert.equal(key('[::1]'), 'containerd.io/distribution.source.::1');
    // One key for every port of a host: the repos merge, as in containerd.
    const first = distributionSourceLabel('127.0.0.1:5000', 'a')!;
    assert.deepEqual(distributionSourceLabel('127.0.0.1:6000', 'b', { [first.key]: first.value }), {
      key: first.key,
      value: 'a,b',
    });
  });

  test('ingest refs follow containerd MakeRefKey', () => {
    assert.equal(ingestRef(MediaType.OciLayerGzip, d('1')), `layer-${d('1')}`);
    assert.equal(ingestRef(MediaType.DockerLayerGzip, d('1')), `layer-${d('1')}`);
    assert.equal(ingestRef(MediaType.OciConfig, d('1')), `config-${d('1')}`);
    assert.equal(ingestRef(MediaType.OciManifest, d('1')), `manifest-${d('1')}`);
    assert.equal(ingestRef(MediaType.DockerManifestList, d('1')), `index-${d('1')}`);
    assert.equal(ingestRef(MediaType.OciIndex, d('1')), `index-${d('1')}`);
    assert.equal(ingestRef('application/octet-stream', d('1')), `unknown-${d('1')}`);
  });

  test('chain ids: the first is the diff id, then sha256("<parent> <diff id>")', () => {
    const ids = chainIds([d('a'), d('b')]);
    assert.equal(ids[0], d('a'));
    // echo -n "sha256:aaa… sha256:bbb…" | sha256sum
    assert.match(ids[1]!, /^sha256:[a-f0-9]{64}$/);
    assert.notEqual(ids[1], d('b'));
    assert.deepEqual(chainIds([]), []);
  });

  test('CRI record names: id, tag, repo digest; a digest reference gives no tag', () => {
    assert.deepEqual(criImageNames(parseReference('busybox'), d('c'), d('t')), [
      d('c'),
      'docker.io/library/busybox:latest',
      `docker.io/library/busybox@${d('t')}`,
    ]);
    assert.deepEqual(criImageNames(parseReference(`r.example:5000/a/b:1@${d('e')}`), d('c'), d('e')), [
      d('c'),
      `r.example:5000/a/b@${d('e')}`,
    ]);
  });

  test('lease expiry is RFC 3339 without fractions', () => {
    assert.deepEqual(leaseExpiryLabels(new Date('2026-01-01T00:00:00.123Z'), 3600_000), {
      'containerd.io/gc.expire': '2026-01-01T01:00:00Z',
    });
  });
});

describe('containerd address and namespace', () => {
  test('socket paths and unix URLs; anything else is INVALID_ARGUMENT', () => {
    assert.deepEqual(containerdTarget('/run/containerd/containerd.sock'), {
      target: 'unix:///run/containerd/containerd.sock',
      socket: '/run/containerd/containerd.sock',
    });
    assert.equal(containerdTarget('unix:///x/y.sock').socket, '/x/y.sock');
    assert.equal(containerdTarget('unix:/x/y.sock').socket, '/x/y.sock');
    for (const bad of ['tcp://127.0.0.1:1', '', 'http://x/y'])
      assert.throws(
        () => containerdTarget(bad),
        (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
      );
  });

  test('property: any address either yields an absolute unix target or a coded error', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        try {
          const t = containerdTarget(s);
          assert.ok(t.socket.startsWith('/'));
          assert.equal(t.target, `unix://${t.socket}`);
        } catch (e) {
          assert.ok(isKimgError(e, 'INVALID_ARGUMENT'), String(e));
        }
      }),
      fuzzParams(),
    );
  });

  test('namespaces follow containerd identifiers (k8s.io, default ok; empty, spaces, 77 chars refused)', () => {
    for (const ok of ['k8s.io', 'default', 'a-b_c.d', 'x'.repeat(76)]) validateNamespace(ok);
    for (const bad of ['', 'a b', '.a', 'a.', 'x'.repeat(77), 'ä'])
      assert.throws(
        () => validateNamespace(bad),
        (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
      );
  });

  test('property: validateNamespace accepts exactly the identifier grammar', () => {
    const re = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
    fc.assert(
      fc.property(fc.string({ maxLength: 90 }), (s) => {
        let ok = true;
        try {
          validateNamespace(s);
        } catch {
          ok = false;
        }
        assert.equal(ok, s.length <= 76 && re.test(s));
      }),
      fuzzParams(),
    );
  });
});

describe('containerd proto subset', () => {
  test('every service loads; a Write request and an Image round-trip through the wire encoding', () => {
    const pkg = loadContainerdPackage();
    for (const svc of [
      'Content',
      'Images',
      'Leases',
      'Snapshots',
      'Diff',
      'Namespaces',
      'Containers',
    ] as const)
      assert.equal(typeof pkg[svc], 'function', svc);
    const dir = containerdProtoDir();
    const def = protoLoader.loadSync(
      CONTAINERD_PROTO_FILES.map((f) => join(dir, f)),
      { ...CONTAINERD_PROTO_LOADER_OPTIONS, includeDirs: [dir] },
    );
    const write = def['containerd.services.content.v1.Content'] as unknown as Record<
      string,
      { requestSerialize: (m: unknown) => Buffer; requestDeserialize: (b: Buffer) => Record<string, unknown> }
    >;
    const w = write['Write']!;
    const msg = {
      action: 'COMMIT',
      ref: `layer-${d('1')}`,
      total: 5_000_000_000,
      expected: d('1'),
      offset: 4_999_999_999,
      data: Buffer.from('xyz'),
      labels: { 'containerd.io/distribution.source.docker.io': 'library/nginx' },
    };
    const back = w.requestDeserialize(w.requestSerialize(msg));
    assert.equal(back['action'], 'COMMIT');
    assert.equal(back['total'], 5_000_000_000);
    assert.equal(back['offset'], 4_999_999_999);
    assert.deepEqual(back['labels'], msg.labels);
    assert.deepEqual(Buffer.from(back['data'] as Uint8Array), Buffer.from('xyz'));
    const images = def['containerd.services.images.v1.Images'] as unknown as typeof write;
    const img = {
      image: {
        name: 'docker.io/library/busybox:latest',
        labels: { 'io.cri-containerd.image': 'managed' },
        target: { media_type: MediaType.OciIndex, digest: d('2'), size: 1234, annotations: {} },
      },
    };
    const rt = images['Create']!.requestDeserialize(images['Create']!.requestSerialize(img)) as {
      image: { target: { size: number; media_type: string } };
    };
    assert.equal(rt.image.target.size, 1234);
    assert.equal(rt.image.target.media_type, MediaType.OciIndex);
  });
});
