/**
 * The pod workers' state machine with hand-stepped timers and hand-resolved syncs (kubelet
 * `pod_workers_test.go` style): syncs never overlap, a sync asked for meanwhile runs once more after,
 * a not-ready pod is re-synced after the period, stopping aborts the sync and drops the re-sync.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PodWorker, PodWorkers, type WorkerTimers } from '../../../src/node/internal/pod-worker.js';

/** Timers fired by hand. */
class ManualTimers implements WorkerTimers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  private next = 1;
  set(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { fn, ms });
    return id;
  }
  clear(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const t of due) t.fn();
  }
}

/** A sync function whose runs the test resolves one by one. */
class ScriptedSync {
  readonly runs: { pod: string; signal: AbortSignal; resolve: (ready: boolean) => void }[] = [];
  readonly fn = (pod: { key: string }, signal: AbortSignal): Promise<boolean> =>
    new Promise((resolve) => this.runs.push({ pod: pod.key, signal, resolve }));
  /** Resolves the oldest unresolved run and lets the worker continue. */
  async finish(index: number, ready: boolean): Promise<void> {
    this.runs[index]!.resolve(ready);
    await flush();
  }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
const POD = { key: 'default/web' };

describe('PodWorker', () => {
  test('a sync asked for while one runs is coalesced into one more run', async () => {
    const sync = new ScriptedSync();
    const timers = new ManualTimers();
    const w = new PodWorker(POD, { syncPod: sync.fn, resyncMs: 5000, timers });
    const first = w.sync();
    assert.ok(w.running !== undefined);
    assert.equal(w.sync(), first, 'the run in progress is returned');
    assert.equal(w.sync(), first);
    assert.equal(sync.runs.length, 1, 'never two syncs at once');
    await sync.finish(0, true);
    assert.equal(sync.runs.length, 2, 'one more run, not two');
    await sync.finish(1, true);
    await first;
    assert.equal(w.running, undefined);
    assert.equal(sync.runs.length, 2);
    assert.equal(timers.pending.size, 0, 'ready: no re-sync');
  });

  test('not ready: re-synced after the period; ready: not again', async () => {
    const sync = new ScriptedSync();
    const timers = new ManualTimers();
    const w = new PodWorker(POD, { syncPod: sync.fn, resyncMs: 5000, timers });
    void w.sync();
    await sync.finish(0, false);
    assert.equal(w.resyncPending, true);
    assert.deepEqual(
      [...timers.pending.values()].map((t) => t.ms),
      [5000],
    );
    timers.fireAll();
    assert.equal(w.resyncPending, false);
    assert.equal(sync.runs.length, 2);
    await sync.finish(1, true);
    assert.equal(timers.pending.size, 0);
  });

  test('a re-sync scheduled twice keeps one timer', async () => {
    const sync = new ScriptedSync();
    const timers = new ManualTimers();
    const w = new PodWorker(POD, { syncPod: sync.fn, resyncMs: 100, timers });
    void w.sync();
    w.sync(); // coalesced
    await sync.finish(0, false);
    await sync.finish(1, false);
    assert.equal(timers.pending.size, 1);
  });

  test('stop: the sync in progress is aborted, no re-sync, later syncs do nothing', async () => {
    const sync = new ScriptedSync();
    const timers = new ManualTimers();
    const w = new PodWorker(POD, { syncPod: sync.fn, resyncMs: 100, timers });
    void w.sync();
    w.sync(); // asked for again
    const reason = new Error('pod removed or changed');
    w.stop(reason);
    assert.equal(sync.runs[0]!.signal.aborted, true);
    assert.equal(sync.runs[0]!.signal.reason, reason);
    await sync.finish(0, false);
    assert.equal(sync.runs.length, 1, 'the coalesced run is dropped');
    assert.equal(timers.pending.size, 0, 'no re-sync after stop');
    await w.sync();
    assert.equal(sync.runs.length, 1);
    assert.equal(w.stopped, true);
  });

  test('stop drops a pending re-sync', async () => {
    const sync = new ScriptedSync();
    const timers = new ManualTimers();
    const w = new PodWorker(POD, { syncPod: sync.fn, resyncMs: 100, timers });
    void w.sync();
    await sync.finish(0, false);
    assert.equal(timers.pending.size, 1);
    w.stop(new Error('gone'));
    assert.equal(timers.pending.size, 0);
  });
});

describe('PodWorkers', () => {
  test('start syncs at once; busy while a sync runs; syncAll waits without a second run', async () => {
    const sync = new ScriptedSync();
    const timers = new ManualTimers();
    const workers = new PodWorkers<{ key: string }>({ syncPod: sync.fn, resyncMs: 100, timers });
    workers.start({ key: 'a' });
    workers.start({ key: 'b' });
    assert.deepEqual(
      sync.runs.map((r) => r.pod),
      ['a', 'b'],
    );
    assert.equal(workers.busy(), true);
    await sync.finish(1, true); // b idle now
    assert.equal(workers.busy(), true);
    const all = workers.syncAll();
    assert.deepEqual(
      sync.runs.map((r) => r.pod),
      ['a', 'b', 'b'],
      'the idle pod is synced, the running one is not asked again',
    );
    await sync.finish(0, true);
    await sync.finish(2, true);
    await all;
    assert.equal(workers.busy(), false);
    assert.equal(sync.runs.length, 3);
  });

  test('stop and stopAll abort and forget', async () => {
    const sync = new ScriptedSync();
    const workers = new PodWorkers<{ key: string }>({
      syncPod: sync.fn,
      resyncMs: 100,
      timers: new ManualTimers(),
    });
    workers.start({ key: 'a' });
    workers.start({ key: 'b' });
    workers.stop('a', new Error('removed'));
    assert.equal(workers.get('a'), undefined);
    assert.equal(sync.runs[0]!.signal.aborted, true);
    assert.equal(sync.runs[1]!.signal.aborted, false);
    workers.stop('missing', new Error('no-op'));
    workers.stopAll(new Error('closing'));
    assert.equal(sync.runs[1]!.signal.aborted, true);
    assert.equal(workers.get('b'), undefined);
    for (const r of sync.runs) r.resolve(true);
  });
});
