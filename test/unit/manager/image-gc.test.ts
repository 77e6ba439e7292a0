/**
 * Image GC: the pure plan as tables (thresholds, min/max age, LRU order, in use, pinned,
 * runtime-handler pairs, the kubelet's integer arithmetic and messages), the manager over a fake image
 * service with a fake clock and fake usage (tracking across runs, removal failures, ImageGCFailed on
 * repeated failures, sweep and metrics), the state file, policy validation, and shared layers on a real
 * store (a removed image's unique blobs are swept, shared ones stay, verify is clean).
 */
import { FakeClock } from '../../helpers/clock.js';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { parseNodeConfig } from '../../../src/config/index.js';
import { KimgError, isKimgError } from '../../../src/errors/index.js';
import {
  DEFAULT_IMAGE_GC_POLICY,
  FakeUsageSource,
  FileImageGCStateStore,
  ImageGCManager,
  LocalImageService,
  MemoryImageGCEventRecorder,
  MemoryImageGCStateStore,
  checkImageGCPolicy,
  freeDiskSpaceFailedMessage,
  imageFsUsage,
  imageGCPolicyFromConfig,
  imageGCStateFile,
  planImageGC,
  resolveImageKeys,
  storeUsageHints,
  type ImageGCPolicy,
  type ImageGCPlanInput,
  type TrackedImage,
} from '../../../src/manager/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { openStore } from '../../../src/store/index.js';
import { generateImage } from '../../helpers/images.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { FakeImageService, idOf } from './fake-image-service.js';

const MIN = 60_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');
const POLICY: ImageGCPolicy = { ...DEFAULT_IMAGE_GC_POLICY };

function img(name: string, o: Partial<TrackedImage> = {}): TrackedImage {
  const id = o.id ?? `sha256:${name.padEnd(64, '0')}`;
  const handler = o.runtimeHandler ?? '';
  return {
    key: handler === '' ? id : `${id},${handler}`,
    id,
    runtimeHandler: handler,
    size: 100,
    pinned: false,
    names: [`docker.io/library/${name}:1`],
    firstDetected: T0 - 60 * MIN,
    lastUsed: 0,
    ...o,
  };
}

const NOW = T0;
/** Usage 90 % of 1000 bytes: toFree = 1000 * 20 / 100 - 100 = 100 with the default policy. */
const OVER = { capacityBytes: 1000, availableBytes: 100 };
const UNDER = { capacityBytes: 1000, availableBytes: 500 };

function plan(images: TrackedImage[], extra: Partial<ImageGCPlanInput> = {}) {
  return planImageGC({
    images,
    usage: OVER,
    policy: POLICY,
    now: NOW,
    beganGC: NOW - 24 * 60 * MIN,
    ...extra,
  });
}

function summary(p: ReturnType<typeof plan>): string[] {
  return p.decisions.map(
    (d) =>
      `${d.image.names[0]?.split('/')[2] ?? d.image.id}:${d.action}:${d.reason}${d.rank ? `#${d.rank}` : ''}`,
  );
}

describe('planImageGC: tables', () => {
  const cases: {
    name: string;
    images: TrackedImage[];
    extra?: Partial<ImageGCPlanInput>;
    want: string[];
    toFree?: number;
    freed?: number;
    error?: string;
  }[] = [
    {
      name: 'below the high threshold nothing is removed',
      images: [img('a'), img('b')],
      extra: { usage: UNDER },
      want: ['a:1:keep:below-threshold#1', 'b:1:keep:below-threshold#2'],
      toFree: 0,
    },
    {
      name: 'over the high threshold: LRU first until toFree is reached',
      images: [
        img('a', { lastUsed: NOW - 5 * MIN, size: 60 }),
        img('b', { lastUsed: NOW - 10 * MIN, size: 60 }),
        img('c', { lastUsed: NOW - 1 * MIN, size: 60 }),
      ],
      want: ['b:1:delete:space#1', 'a:1:delete:space#2', 'c:1:keep:enough-freed#3'],
      toFree: 100,
      freed: 120,
    },
    {
      name: 'usage exactly at the high threshold triggers GC (>=)',
      images: [img('a', { size: 500 })],
      extra: { usage: { capacityBytes: 1000, availableBytes: 150 } },
      want: ['a:1:delete:space#1'],
      toFree: 50,
    },
    {
      name: 'one byte under the high threshold (usage 84 %) does not',
      images: [img('a')],
      extra: { usage: { capacityBytes: 1000, availableBytes: 160 } },
      want: ['a:1:keep:below-threshold#1'],
    },
    {
      name: 'equal last use: first detected first',
      images: [
        img('late', { firstDetected: NOW - 10 * MIN }),
        img('early', { firstDetected: NOW - 50 * MIN }),
      ],
      want: ['early:1:delete:space#1', 'late:1:keep:enough-freed#2'],
    },
    {
      name: 'never used (lastUsed 0) goes before used images',
      images: [img('used', { lastUsed: NOW - 50 * MIN }), img('never')],
      want: ['never:1:delete:space#1', 'used:1:keep:enough-freed#2'],
    },
    {
      name: 'in-use and pinned images are never candidates',
      images: [img('busy'), img('pin', { pinned: true }), img('cfg'), img('free', { size: 100 })],
      extra: { inUse: [img('busy').key], pinned: [img('cfg').key] },
      want: ['free:1:delete:space#1', 'busy:1:keep:in-use', 'cfg:1:keep:pinned', 'pin:1:keep:pinned'],
    },
    {
      name: 'too young (first detected less than the minimum age ago) is skipped, the walk goes on',
      images: [
        img('young', { firstDetected: NOW - 1 * MIN }),
        img('old', { firstDetected: NOW - 30 * MIN, lastUsed: 1 }),
      ],
      want: ['young:1:keep:too-young#1', 'old:1:delete:space#2'],
    },
    {
      name: 'exactly the minimum age is old enough',
      images: [img('a', { firstDetected: NOW - 2 * MIN })],
      want: ['a:1:delete:space#1'],
    },
    {
      name: 'used at or after the GC start is skipped',
      images: [img('now', { lastUsed: NOW }), img('b', { lastUsed: NOW - 1 })],
      want: ['b:1:delete:space#1', 'now:1:keep:used-since-gc-began#2'],
    },
    {
      name: 'not enough eligible: FreeDiskSpaceFailed with the kubelet message',
      images: [img('a', { size: 30 }), img('young', { firstDetected: NOW - 10_000 })],
      want: ['a:1:delete:space#1', 'young:1:keep:too-young#2'],
      toFree: 100,
      freed: 30,
      error:
        'Failed to garbage collect required amount of images. Attempted to free 100 bytes, but only found 30 bytes eligible to free.',
    },
    {
      name: 'max age removes images unused for longer, regardless of usage',
      images: [
        img('stale', { lastUsed: NOW - 61 * MIN }),
        img('edge', { lastUsed: NOW - 60 * MIN }),
        img('fresh', { lastUsed: NOW - MIN }),
      ],
      extra: { usage: UNDER, policy: { ...POLICY, maxAgeMs: 60 * MIN } },
      want: ['stale:1:delete:max-age#1', 'edge:1:keep:below-threshold#2', 'fresh:1:keep:below-threshold#3'],
    },
    {
      name: 'max age applies to never-used images (last use 0)',
      images: [img('never')],
      extra: { usage: UNDER, policy: { ...POLICY, maxAgeMs: 60 * MIN } },
      want: ['never:1:delete:max-age#1'],
    },
    {
      name: 'max age waits until GC has run longer than the maximum age',
      images: [img('stale', { lastUsed: NOW - 120 * MIN })],
      extra: { usage: UNDER, policy: { ...POLICY, maxAgeMs: 60 * MIN }, beganGC: NOW - 60 * MIN },
      want: ['stale:1:keep:below-threshold#1'],
    },
    {
      name: 'max age never touches in-use or pinned images',
      images: [img('busy'), img('pin', { pinned: true })],
      extra: { usage: UNDER, policy: { ...POLICY, maxAgeMs: 60 * MIN }, inUse: [img('busy').key] },
      want: ['busy:1:keep:in-use', 'pin:1:keep:pinned'],
    },
    {
      name: 'max-age removals do not count toward the space pass (stats are read afresh)',
      images: [
        img('stale', { lastUsed: NOW - 120 * MIN, size: 500 }),
        img('lru', { lastUsed: NOW - 30 * MIN }),
      ],
      extra: { policy: { ...POLICY, maxAgeMs: 60 * MIN } },
      want: ['stale:1:delete:max-age#1', 'lru:1:delete:space#2'],
      freed: 100,
    },
    {
      name: 'high 100 without max age disables image GC',
      images: [img('a')],
      extra: {
        usage: { capacityBytes: 1000, availableBytes: 0 },
        policy: { ...POLICY, highThresholdPercent: 100 },
      },
      want: ['a:1:keep:gc-disabled#1'],
    },
    {
      name: 'high 100 with a max age: GC runs, a full disk triggers the space pass',
      images: [img('a', { lastUsed: NOW - MIN, size: 200 })],
      extra: {
        usage: { capacityBytes: 1000, availableBytes: 0 },
        policy: { ...POLICY, highThresholdPercent: 100, maxAgeMs: 600 * MIN },
      },
      want: ['a:1:delete:space#1'],
      toFree: 200,
    },
    {
      name: 'capacity 0: InvalidDiskCapacity, nothing removed for space',
      images: [img('a')],
      extra: { usage: { capacityBytes: 0, availableBytes: 0 } },
      want: ['a:1:keep:no-usage-stats#1'],
      error: 'invalid capacity 0 on image filesystem',
    },
    {
      name: 'available larger than capacity is clamped (usage 0 %)',
      images: [img('a')],
      extra: {
        usage: { capacityBytes: 1000, availableBytes: 5000 },
        policy: { ...POLICY, highThresholdPercent: 0, lowThresholdPercent: 0 },
      },
      want: ['a:1:delete:space#1'],
      toFree: 0,
    },
    {
      name: 'runtime handlers: each (id, handler) pair is its own image',
      images: [img('x'), img('x', { runtimeHandler: 'kata', lastUsed: 5 })],
      extra: { inUse: [img('x').key] },
      want: ['x:1:delete:space#1', 'x:1:keep:in-use'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = plan(c.images, c.extra);
      assert.deepEqual(summary(p), c.want);
      if (c.toFree !== undefined) assert.equal(p.toFree, c.toFree);
      if (c.freed !== undefined) assert.equal(p.freed, c.freed);
      assert.equal(p.error, c.error);
      if (c.error?.startsWith('Failed'))
        assert.deepEqual(p.warnings, [{ reason: 'FreeDiskSpaceFailed', message: c.error }]);
      if (c.error?.startsWith('invalid capacity'))
        assert.deepEqual(p.warnings, [{ reason: 'InvalidDiskCapacity', message: c.error }]);
      // Every image gets exactly one decision; deletions carry their size.
      assert.equal(p.decisions.length, c.images.length);
      for (const d of p.deletions) assert.equal(d.bytes, d.image.size);
    });
  }

  test('kubelet integer arithmetic: usage truncates, toFree is exact for huge filesystems', () => {
    // 3 * 20 / 100 = 0 (Go integer division), minus 1 available.
    assert.deepEqual(imageFsUsage(3, 1, 80), { usagePercent: 67, toFree: -1, available: 1 });
    const cap = 2 ** 52 + 7;
    const u = imageFsUsage(cap, 10, 80);
    assert.equal(u.usagePercent, 100);
    assert.equal(BigInt(u.toFree), (BigInt(cap) * 20n) / 100n - 10n);
    assert.equal(
      freeDiskSpaceFailedMessage(5, 0),
      'Failed to garbage collect required amount of images. Attempted to free 5 bytes, but only found 0 bytes eligible to free.',
    );
  });

  test('resolveImageKeys: names (normalized), ids, id prefixes, keys', () => {
    const a = img('busybox', { id: idOf('busybox') });
    const k = img('busybox', { id: idOf('busybox'), runtimeHandler: 'kata' });
    const images = [a, k, img('nginx')];
    assert.deepEqual([...resolveImageKeys(images, ['busybox:1']).keys], [a.key, k.key]);
    assert.deepEqual([...resolveImageKeys(images, [idOf('busybox').slice(7, 19)]).keys], [a.key, k.key]);
    assert.deepEqual([...resolveImageKeys(images, [k.key]).keys], [k.key]);
    assert.deepEqual(resolveImageKeys(images, ['registry.k8s.io/pause:3.10.2']).unmatched, [
      'registry.k8s.io/pause:3.10.2',
    ]);
  });
});

describe('policy', () => {
  test('defaults and the configuration mapping', () => {
    assert.deepEqual(DEFAULT_IMAGE_GC_POLICY, {
      highThresholdPercent: 85,
      lowThresholdPercent: 80,
      minAgeMs: 120_000,
      maxAgeMs: 0,
    });
    const cfg = parseNodeConfig(
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nimageGCHighThresholdPercent: 60\nimageGCLowThresholdPercent: 40\nimageMinimumGCAge: 30s\nimageMaximumGCAge: 1h\n',
    );
    assert.deepEqual(imageGCPolicyFromConfig(cfg.kubelet), {
      highThresholdPercent: 60,
      lowThresholdPercent: 40,
      minAgeMs: 30_000,
      maxAgeMs: 3_600_000,
    });
    assert.deepEqual(
      imageGCPolicyFromConfig(
        parseNodeConfig('kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n').kubelet,
      ),
      DEFAULT_IMAGE_GC_POLICY,
    );
  });

  test('invalid configuration is refused with the kubelet messages', () => {
    const bad = (body: string): string[] => {
      try {
        parseNodeConfig(`apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n${body}`);
      } catch (e) {
        assert.ok(isKimgError(e, 'CONFIG_INVALID'));
        return (e.details.items as string[]).map((s) => s.replace(/^<config>: /, ''));
      }
      throw new Error('accepted');
    };
    assert.ok(
      bad('imageGCHighThresholdPercent: 101\n').includes(
        'invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive',
      ),
    );
    assert.ok(
      bad('imageGCLowThresholdPercent: -1\n').includes(
        'invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) -1 must be between 0 and 100, inclusive',
      ),
    );
    assert.ok(
      bad('imageGCHighThresholdPercent: 50\nimageGCLowThresholdPercent: 50\n').includes(
        'invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 50 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 50',
      ),
    );
    assert.ok(
      bad('imageMaximumGCAge: 1m\n').includes(
        'invalid configuration: imageMaximumGCAge 1m0s must be greater than imageMinimumGCAge 2m0s',
      ),
    );
  });

  test('checkImageGCPolicy: NewImageGCManager messages', () => {
    const msg = (p: Partial<ImageGCPolicy>): string[] => {
      try {
        checkImageGCPolicy({ ...POLICY, ...p });
      } catch (e) {
        assert.ok(isKimgError(e, 'CONFIG_INVALID'));
        return e.details.items as string[];
      }
      return [];
    };
    assert.deepEqual(msg({ highThresholdPercent: 101 }), [
      'invalid HighThresholdPercent 101, must be in range [0-100]',
    ]);
    assert.deepEqual(msg({ lowThresholdPercent: -1 }), [
      'invalid LowThresholdPercent -1, must be in range [0-100]',
    ]);
    assert.deepEqual(msg({ lowThresholdPercent: 90 }), [
      'LowThresholdPercent 90 can not be higher than HighThresholdPercent 85',
    ]);
    assert.deepEqual(msg({ lowThresholdPercent: 85 }), []);
    assert.throws(
      () =>
        new ImageGCManager({
          service: new FakeImageService(new FakeClock()),
          usage: new FakeUsageSource(1, 1),
          policy: { ...POLICY, highThresholdPercent: -5 },
        }),
      /invalid HighThresholdPercent -5/,
    );
  });
});

describe('ImageGCManager over a fake image service', () => {
  function setup(policy: ImageGCPolicy = POLICY) {
    const clock = new FakeClock(T0);
    const service = new FakeImageService(clock);
    const usage = new FakeUsageSource(1000, 100);
    const recorder = new MemoryImageGCEventRecorder();
    const state = new MemoryImageGCStateStore();
    let sweeps = 0;
    const metricsRegistry = new Registry();
    const manager = new ImageGCManager({
      service,
      usage,
      policy,
      clock,
      recorder,
      state,
      nodeName: 'node-1',
      metricsRegistry,
      sweep: async () => {
        sweeps++;
        return 7;
      },
    });
    return { clock, service, usage, recorder, state, manager, metricsRegistry, sweeps: () => sweeps };
  }

  test('first detection makes every image too young; after the minimum age, LRU removal; sweep and metrics', async () => {
    const s = setup();
    s.service.add('docker.io/library/a:1', { size: 60 });
    s.service.add('docker.io/library/b:1', { size: 60 });
    s.service.add('docker.io/library/c:1', { size: 60 });
    // First run: all new (kubelet: firstDetected = now), nothing eligible.
    const r1 = await s.manager.garbageCollect({ inUse: ['docker.io/library/c:1'] });
    assert.equal(r1.removed.length, 0);
    assert.deepEqual(
      r1.decisions.map((d) => d.reason),
      ['too-young', 'too-young', 'in-use'],
    );
    assert.equal(r1.error, freeDiskSpaceFailedMessage(100, 0));
    assert.deepEqual(
      s.recorder.events.map((e) => e.reason),
      ['FreeDiskSpaceFailed'],
    );
    assert.deepEqual(s.recorder.events[0]?.object, { kind: 'Node', name: 'node-1' });
    // a is used a minute later; then time passes beyond the minimum age.
    s.clock.advance(MIN);
    await s.manager.garbageCollect({ inUse: ['docker.io/library/a:1'] });
    s.clock.advance(5 * MIN);
    s.service.resetCalls();
    const r3 = await s.manager.garbageCollect();
    // b (never used) first, then c (used at T0), then a (used at T0+1m): 120 >= 100 after two.
    assert.deepEqual(
      s.service.calls.filter((c) => c.op === 'RemoveImage').map((c) => c.image),
      [idOf('docker.io/library/b:1'), idOf('docker.io/library/c:1')],
    );
    assert.equal(r3.freed, 120);
    assert.equal(r3.error, undefined);
    assert.equal(r3.bytesReclaimed, 7);
    assert.ok(s.sweeps() >= 1);
    assert.ok(s.service.has('docker.io/library/a:1'));
    assert.deepEqual(s.manager.stats.imagesRemoved, { age: 0, space: 2 });
    const metrics = await s.metricsRegistry.getMetricsAsJSON();
    const total = metrics.find((m) => m.name === 'kimg_image_garbage_collected_total');
    assert.deepEqual(
      total?.values.map((v) => [v.labels.reason, v.value]),
      [['space', 2]],
    );
    const bytes = metrics.find((m) => m.name === 'kimg_image_garbage_collected_bytes_total');
    assert.equal(bytes?.values[0]?.value, 120);
  });

  test('ImageGCFailed only for a failure right after a failure; success resets', async () => {
    const s = setup();
    s.service.add('docker.io/library/a:1');
    await s.manager.garbageCollect(); // too young → FreeDiskSpaceFailed, first failure
    assert.deepEqual(
      s.recorder.events.map((e) => e.reason),
      ['FreeDiskSpaceFailed'],
    );
    await s.manager.garbageCollect(); // again → ImageGCFailed with the error text
    assert.deepEqual(
      s.recorder.events.map((e) => e.reason),
      ['FreeDiskSpaceFailed', 'FreeDiskSpaceFailed', 'ImageGCFailed'],
    );
    assert.equal(s.recorder.events[2]?.message, freeDiskSpaceFailedMessage(100, 0));
    s.usage.availableBytes = 900;
    const ok = await s.manager.garbageCollect();
    assert.equal(ok.error, undefined);
    s.usage.availableBytes = 100;
    s.recorder.events.length = 0;
    await s.manager.garbageCollect();
    assert.deepEqual(
      s.recorder.events.map((e) => e.reason),
      ['FreeDiskSpaceFailed'],
      'no ImageGCFailed after a success',
    );
  });

  test('a failed removal is reported and the walk continues (kubelet freeSpace)', async () => {
    const s = setup({ ...POLICY, minAgeMs: 0 });
    s.service.add('docker.io/library/a:1', { size: 60 });
    s.service.add('docker.io/library/b:1', { size: 60 });
    s.service.add('docker.io/library/c:1', { size: 60 });
    const realRemove = s.service.removeImage.bind(s.service);
    s.service.removeImage = async (spec) => {
      if (spec.image === idOf('docker.io/library/a:1')) throw new KimgError('STORE_IO', 'disk on fire');
      return realRemove(spec);
    };
    s.clock.advance(1);
    const r = await s.manager.garbageCollect();
    assert.deepEqual(
      r.failed.map((f) => f.image.id),
      [idOf('docker.io/library/a:1')],
    );
    assert.equal(r.removed.length, 2);
    assert.equal(
      r.error,
      'wanted to free 100 bytes, but freed 120 bytes space with errors in image deletion: disk on fire',
    );
    assert.equal(
      r.decisions.find((d) => d.image.id === idOf('docker.io/library/a:1'))?.reason,
      'remove-failed',
    );
  });

  test('max age: removal by age first, then the space pass over fresh statistics; age errors stop the run', async () => {
    const s = setup({ ...POLICY, maxAgeMs: 60 * MIN });
    s.service.add('docker.io/library/old:1');
    s.service.add('docker.io/library/new:1');
    s.usage.availableBytes = 900;
    await s.manager.garbageCollect({ inUse: ['docker.io/library/old:1'] }); // detection; old in use at T0
    s.clock.advance(50 * MIN);
    await s.manager.garbageCollect({ inUse: ['docker.io/library/new:1'] }); // new in use at T0+50m
    s.clock.advance(15 * MIN); // 65 min since GC began: old unused for 65 min, new for 15
    const reads: number[] = [];
    const orig = s.usage.imageFsStats.bind(s.usage);
    s.usage.imageFsStats = async () => {
      reads.push(1);
      return orig();
    };
    const r = await s.manager.garbageCollect();
    assert.deepEqual(
      r.removed.map((x) => [x.image.names[0], x.reason]),
      [['docker.io/library/old:1', 'max-age']],
    );
    assert.ok(reads.length >= 2, 'statistics are read again after the max-age pass');
    assert.deepEqual(s.manager.stats.imagesRemoved, { age: 1, space: 0 });

    // An age removal that fails ends the run with the kubelet's message (Go duration).
    // (A never-used image would go by age at once, as upstream: its last use is zero.)
    s.service.add('docker.io/library/x:1');
    s.clock.advance(MIN);
    await s.manager.garbageCollect({ inUse: ['docker.io/library/new:1', 'docker.io/library/x:1'] });
    s.clock.advance(61 * MIN);
    s.service.removeImage = async () => {
      throw new KimgError('STORE_IO', 'nope');
    };
    const bad = await s.manager.garbageCollect();
    assert.equal(
      bad.error,
      'wanted to free images older than 1h0m0s, encountered errors in image deletion: [nope, nope]',
    );
  });

  test('dry run (plan) removes nothing and writes no state', async () => {
    const s = setup({ ...POLICY, minAgeMs: 0 });
    s.service.add('docker.io/library/a:1');
    s.clock.advance(1);
    const p = await s.manager.plan();
    assert.equal(p.dryRun, true);
    assert.deepEqual(
      p.decisions.map((d) => [d.action, d.reason]),
      [['delete', 'space']],
    );
    assert.ok(s.service.has('docker.io/library/a:1'));
    assert.equal(await s.state.load(), undefined);
    assert.equal(s.sweeps(), 0);
  });

  test('runtime handlers: RemoveImage carries the handler of the pair', async () => {
    const s = setup({ ...POLICY, minAgeMs: 0 });
    s.service.add('docker.io/library/a:1', { handler: 'kata' });
    s.service.add('docker.io/library/a:1');
    s.clock.advance(1);
    s.usage.availableBytes = 0;
    const r = await s.manager.garbageCollect({ inUse: [`${idOf('docker.io/library/a:1')}`] });
    assert.equal(r.removed.length, 0, 'an id in use keeps the image for every handler');
    const r2 = await s.manager.garbageCollect({ inUse: [idOf('docker.io/library/a:1')] });
    assert.equal(r2.removed.length, 0);
    s.clock.advance(1);
    const r3 = await s.manager.garbageCollect({ inUse: [`${idOf('docker.io/library/a:1')},kata`] });
    assert.deepEqual(
      r3.removed.map((x) => x.image.key),
      [idOf('docker.io/library/a:1')],
    );
    assert.ok(s.service.has('docker.io/library/a:1', 'kata'));
    assert.ok(!s.service.has('docker.io/library/a:1'));
  });

  test('the default sandbox image and --pinned names are kept', async () => {
    const clock = new FakeClock(T0);
    const service = new FakeImageService(clock);
    service.add('registry.k8s.io/pause:3.10.2');
    service.add('docker.io/library/keep:1');
    service.add('docker.io/library/drop:1');
    const manager = new ImageGCManager({
      service,
      usage: new FakeUsageSource(1000, 0),
      policy: { ...POLICY, minAgeMs: 0 },
      clock,
      pinnedImages: ['registry.k8s.io/pause:3.10.2', 'keep:1'],
    });
    clock.advance(1);
    const r = await manager.garbageCollect();
    assert.deepEqual(
      r.removed.map((x) => x.image.names[0]),
      ['docker.io/library/drop:1'],
    );
    assert.deepEqual(r.decisions.filter((d) => d.reason === 'pinned').length, 2);
  });
});

describe('ImageGCManager.start', () => {
  test('runs periodically with the images in use until stopped; disabled GC never runs', async () => {
    const clock = new FakeClock(T0);
    const service = new FakeImageService(clock);
    service.add('docker.io/library/a:1');
    const manager = new ImageGCManager({ service, usage: new FakeUsageSource(1000, 900), clock });
    let asked = 0;
    const results: unknown[] = [];
    // The loop's timer is unref'd (it never keeps a process alive): hold the event loop open here.
    const keepAlive = setInterval(() => undefined, 1000);
    await new Promise<void>((resolve) => {
      const loop = manager.start({
        periodMs: 1,
        inUse: () => {
          asked++;
          return ['docker.io/library/a:1'];
        },
        onResult: (r) => {
          results.push(r);
          if (results.length === 2) {
            loop.stop();
            clearInterval(keepAlive);
            resolve();
          }
        },
      });
    });
    assert.equal(results.length, 2);
    assert.ok(asked >= 2);
    assert.equal(manager.stats.runs >= 2, true);
    const off = new ImageGCManager({
      service,
      usage: new FakeUsageSource(1000, 0),
      clock,
      policy: { ...POLICY, highThresholdPercent: 100 },
    });
    off.start({ periodMs: 1 }).stop();
    assert.equal(off.stats.runs, 0);
  });
});

describe('state file', () => {
  let dir = '';
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  test('round trip, and a damaged file is STORE_CORRUPT naming it', async () => {
    dir = await makeTempDir('gc-state-');
    const st = new FileImageGCStateStore(dir);
    assert.equal(st.file, imageGCStateFile(dir));
    assert.equal(await st.load(), undefined);
    const state = {
      since: T0,
      consecutiveFailures: 2,
      images: { 'sha256:abc': { firstDetected: T0 + 5, lastUsed: 0 } },
    };
    await st.save(state);
    assert.deepEqual(await st.load(), state);
    assert.equal((await fsp.stat(st.file)).mode & 0o777, 0o600);
    await fsp.writeFile(st.file, '{"version":1,"since":"x"}');
    await assert.rejects(
      st.load(),
      (e: unknown) => isKimgError(e, 'STORE_CORRUPT') && e.message.includes(st.file),
    );
  });

  test('tracking survives a new manager (kimg is not long-running)', async () => {
    const root = await makeTempDir('gc-state2-');
    try {
      const clock = new FakeClock(T0);
      const service = new FakeImageService(clock);
      service.add('docker.io/library/a:1');
      const mk = () =>
        new ImageGCManager({
          service,
          usage: new FakeUsageSource(1000, 0),
          clock,
          state: new FileImageGCStateStore(root),
        });
      const r1 = await mk().garbageCollect();
      assert.equal(r1.decisions[0]?.reason, 'too-young');
      clock.advance(3 * MIN);
      const r2 = await mk().garbageCollect();
      assert.equal(r2.decisions[0]?.reason, 'space', 'first detection was remembered');
      assert.equal(r2.events.map((e) => e.reason).includes('ImageGCFailed'), false);
    } finally {
      await removeTempDir(root);
    }
  });
});

describe('on a real store: shared layers', () => {
  let dir = '';
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  test('removing one image sweeps only its own blobs; shared layers stay; verify is clean', async () => {
    dir = await makeTempDir('gc-store-');
    const [a, b] = await Promise.all([
      generateImage(join(dir, 'a'), {
        name: 'shared',
        layers: [{ size: 50_000, seed: 'base' }, { size: 3000 }],
      }),
      generateImage(join(dir, 'b'), {
        name: 'shared',
        layers: [{ size: 50_000, seed: 'base' }, { size: 4000 }],
      }),
    ]);
    const store = await openStore({ root: join(dir, 'root') });
    const registry = new RegistryClient();
    try {
      await store.load({ layout: `oci:${join(dir, 'a')}:1`, name: 'example.com/a:1' });
      await store.load({ layout: `oci:${join(dir, 'b')}:1`, name: 'example.com/b:1' });
      const shared = a.manifests[0]!.layers[0]!.digest;
      assert.equal(shared, b.manifests[0]!.layers[0]!.digest, 'the fixture shares the base layer');
      await store.images.touch({ name: 'example.com/b:1' }, new Date(Date.now() + 1000));
      const clock = new FakeClock(Date.now() + 10 * MIN);
      const manager = new ImageGCManager({
        service: new LocalImageService({ store, registry }),
        usage: new FakeUsageSource(1000, 0),
        policy: { ...POLICY, minAgeMs: MIN },
        clock,
        hints: storeUsageHints(store),
        sweep: async () => (await store.gc()).bytesFreed,
        state: new FileImageGCStateStore(store.root),
      });
      // toFree = 200 bytes: the least recently used image (a) is enough.
      const r = await manager.garbageCollect();
      assert.deepEqual(
        r.removed.map((x) => x.image.names[0]),
        ['example.com/a:1'],
      );
      assert.ok(r.bytesReclaimed > 0);
      assert.equal(await store.content.hasBlob(shared), true, 'the shared layer stays');
      assert.equal(
        await store.content.hasBlob(a.manifests[0]!.layers[1]!.digest),
        false,
        "a's own layer is swept",
      );
      assert.equal(await store.content.hasBlob(a.manifests[0]!.config.digest), false);
      assert.deepEqual(
        (await store.images.list()).map((x) => x.name),
        ['example.com/b:1'],
      );
      const v = await store.verify();
      assert.equal(v.ok, true, JSON.stringify(v.problems));
    } finally {
      await registry.close();
      await store.close();
    }
  });
});
