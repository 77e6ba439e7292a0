/**
 * Image GC with the runtime's containers (`containersInUse`, e.g. containerd's): asked on every run
 * and dry run after the images are listed (never a cached answer), by name or id, kept as `in-use`
 * beside the run's own in-use images, not reported as unmatched; a failure fails the run and removes
 * nothing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KimgError, isKimgError } from '../../../src/errors/index.js';
import {
  DEFAULT_IMAGE_GC_POLICY,
  ImageGCManager,
  MemoryImageGCStateStore,
  type ImageGCResult,
} from '../../../src/manager/index.js';
import { FakeUsageSource } from '../../../src/testing/index.js';
import { FakeClock } from '../../helpers/clock.js';
import { FakeImageService, idOf } from './fake-image-service.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function setup() {
  const clock = new FakeClock(T0);
  const service = new FakeImageService(clock);
  for (const n of ['a', 'b', 'c', 'd']) service.add(`docker.io/library/${n}:1`, { size: 10 });
  let containers: readonly string[] | Error = [];
  const manager = new ImageGCManager({
    service,
    // Everything used: every image not kept is removed.
    usage: new FakeUsageSource(1000, 0),
    policy: { ...DEFAULT_IMAGE_GC_POLICY, minAgeMs: 0 },
    clock,
    state: new MemoryImageGCStateStore(),
    pinnedImages: [],
    containersInUse: async () => {
      service.calls.push({ op: 'ListImages', image: '<containers>' });
      if (containers instanceof Error) throw containers;
      return containers;
    },
  });
  clock.advance(1);
  return {
    clock,
    service,
    manager,
    setContainers: (c: readonly string[] | Error) => {
      containers = c;
    },
  };
}

const kept = (r: ImageGCResult): string[] =>
  r.decisions
    .filter((d) => d.reason === 'in-use')
    .map((d) => d.image.names[0] ?? '')
    .sort();

describe('ImageGCManager with the runtime containers in use', () => {
  test("containers' images by name and id are in use beside the run's own; not unmatched", async () => {
    const s = setup();
    s.setContainers(['docker.io/library/a:1', idOf('docker.io/library/b:1'), 'gone:1']);
    const dry = await s.manager.plan({ inUse: ['c:1'] });
    assert.deepEqual(kept(dry), ['docker.io/library/a:1', 'docker.io/library/b:1', 'docker.io/library/c:1']);
    assert.deepEqual(dry.unmatched, { inUse: [], pinned: [] });
    const r = await s.manager.garbageCollect({ inUse: ['c:1'] });
    assert.deepEqual(
      r.removed.map((x) => x.image.names[0]),
      ['docker.io/library/d:1'],
    );
    assert.ok(s.service.has('docker.io/library/a:1') && s.service.has('docker.io/library/b:1'));
  });

  test('asked afresh on every run, after the images are listed: a container started since is seen', async () => {
    const s = setup();
    s.setContainers(['docker.io/library/a:1']);
    await s.manager.garbageCollect({ inUse: ['b:1', 'c:1', 'd:1'] });
    assert.deepEqual(
      s.service.calls.filter((c) => c.op === 'ListImages').map((c) => c.image),
      ['', '<containers>'],
    );
    // A container of d starts between two runs; its image must not be collected by the next one.
    s.setContainers(['docker.io/library/a:1', 'docker.io/library/d:1']);
    s.clock.advance(1);
    s.service.resetCalls();
    const r = await s.manager.garbageCollect({ inUse: ['b:1'] });
    assert.deepEqual(
      r.removed.map((x) => x.image.names[0]),
      ['docker.io/library/c:1'],
    );
    assert.deepEqual(s.service.ops(), ['ListImages', 'ListImages', 'RemoveImage']);
  });

  test('a failure to list the containers fails the run: nothing is removed', async () => {
    const s = setup();
    s.setContainers(new KimgError('CONTAINERD_UNAVAILABLE', 'containerd is not answering'));
    await assert.rejects(s.manager.garbageCollect(), (e) => isKimgError(e, 'CONTAINERD_UNAVAILABLE'));
    await assert.rejects(s.manager.plan(), (e) => isKimgError(e, 'CONTAINERD_UNAVAILABLE'));
    assert.equal(s.manager.stats.failedRuns, 1);
    assert.ok(!s.service.ops().includes('RemoveImage'));
    assert.equal(s.service.images.size, 4);
  });
});
