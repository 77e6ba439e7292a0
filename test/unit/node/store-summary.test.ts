/**
 * The store summary (`/api/store`) from an image list, image records, the images in use, the
 * pre-pulls, the GC policy and the filesystem usage — and a GC run's summary.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KimgError } from '../../../src/errors/index.js';
import { type ImageGCResult, type ImageInfo } from '../../../src/manager/index.js';
import { FakeUsageSource } from '../../../src/testing/index.js';
import { gcRunSummary, summarizeStore, usedPercent } from '../../../src/node/internal/store-summary.js';

const IMAGES: ImageInfo[] = [
  { id: 'sha256:a', repoTags: ['r/a:1'], repoDigests: ['r/a@sha256:1'], size: 100, pinned: false },
  { id: 'sha256:b', repoTags: [], repoDigests: ['r/b@sha256:2'], size: 50, pinned: true },
];

test('summarizeStore: names, in use, last used (latest record), totals, thresholds, usage', async () => {
  const usage = new FakeUsageSource(1000, 250);
  const input = {
    root: '/var/lib/kimg',
    imageService: { listImages: async () => IMAGES },
    records: async () => [
      { imageId: 'sha256:a', lastUsed: '2026-07-01T10:00:00Z' },
      { imageId: 'sha256:a', lastUsed: '2026-07-02T10:00:00Z' },
    ],
    inUse: ['sha256:a', 'sha256:unknown'],
    prepull: [],
    policy: { highThresholdPercent: 85, lowThresholdPercent: 80 },
    gcPeriodMs: 300_000,
    lastGc: { at: 5, removed: 1, bytes: 10, reclaimed: 12 },
    usage,
  };
  assert.deepEqual(await summarizeStore(input), {
    root: '/var/lib/kimg',
    images: [
      {
        names: ['r/a:1', 'r/a@sha256:1'],
        id: 'sha256:a',
        size: 100,
        pinned: false,
        inUse: true,
        lastUsed: '2026-07-02T10:00:00Z',
      },
      { names: ['r/b@sha256:2'], id: 'sha256:b', size: 50, pinned: true, inUse: false },
    ],
    totalBytes: 150,
    prepull: [],
    gc: {
      highThresholdPercent: 85,
      lowThresholdPercent: 80,
      periodMs: 300_000,
      lastRun: { at: 5, removed: 1, bytes: 10, reclaimed: 12 },
    },
    usage: { capacityBytes: 1000, availableBytes: 250, usedPercent: 75 },
  });
  usage.error = new KimgError('STORE_IO', 'statfs failed');
  const without = await summarizeStore({ ...input, lastGc: undefined });
  assert.equal('usage' in without, false, 'unknown usage is left out');
  assert.equal('lastRun' in without.gc, false);
});

test('usedPercent: one decimal, 0 for an unknown capacity', () => {
  assert.equal(usedPercent(3, 2), 33.3);
  assert.equal(usedPercent(0, 0), 0);
});

test('gcRunSummary: removed images and bytes, the reclaimed bytes, the error', () => {
  const image = {
    id: 'sha256:a',
    names: [],
    size: 7,
  } as unknown as ImageGCResult['removed'][number]['image'];
  const r = {
    startedAt: 9,
    removed: [
      { image, reason: 'space', bytes: 7 },
      { image, reason: 'max-age', bytes: 3 },
    ],
    bytesReclaimed: 20,
    error: 'failed to garbage collect required amount of images',
  } as unknown as ImageGCResult;
  assert.deepEqual(gcRunSummary(r), {
    at: 9,
    removed: 2,
    bytes: 10,
    reclaimed: 20,
    error: 'failed to garbage collect required amount of images',
  });
});
