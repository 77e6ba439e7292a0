/**
 * Events to the API server as `events.k8s.io/v1` Events, with client-go's aggregation
 * (`tools/events/event_broadcaster.go` `recordToSink`, `refreshExistingEventSeries`, `finishSeries`):
 *
 * - events are isomorphic when action, reason, reporting controller and instance, regarding object
 *   (with `fieldPath`), note and type are equal;
 * - the first occurrence is created (`POST`); the second turns it into a series (`series.count: 2`,
 *   sent at once as a merge patch; a patch that finds the Event gone creates it again);
 * - later occurrences only bump the series locally; every `refreshMs` (6 min, client-go's) the
 *   changed series are patched, and series not observed for `refreshMs` are forgotten (the next
 *   occurrence starts a new Event). {@link KubeEventRecorder.flush} patches now.
 *
 * Reasons and notes are the kubelet's (`Pulling`, `Pulled`, `Failed`, `BackOff`,
 * `FailedToRetrieveImagePullSecret`, …), the regarding object is the pod with the kubelet's field
 * path `spec.containers{NAME}` / `spec.initContainers{NAME}`. Notes never hold credentials (the
 * manager's messages do not) and are capped at 1 KiB, the API's limit. Recording never throws and
 * never blocks the caller; failures go to `onError`.
 */
import type { EventsV1Event } from '@kubernetes/client-node';
import { clientLibrary } from './internal/library.js';
import { isKimgError, toKimgError, type KimgErrorLike } from '../errors/index.js';
import type { EventRecorder, ManagerEvent } from '../manager/index.js';
import type { KubeClient, KubeJson } from './client.js';

/** The controller name on kimg's Events (`reportingController`). */
export const KIMG_REPORTING_CONTROLLER = 'kimg.io/node-agent';

/** client-go's refresh and finish period for event series. */
export const EVENT_SERIES_REFRESH_MS = 6 * 60 * 1000;

/** One event to record. */
export interface KubeEventInput {
  type: 'Normal' | 'Warning';
  reason: string;
  note: string;
  /** What was done (`Pull`, `RetrieveImagePullSecret`); required by events.k8s.io/v1. */
  action: string;
  regarding: {
    kind: string;
    apiVersion: string;
    namespace?: string;
    name: string;
    uid?: string;
    fieldPath?: string;
  };
}

/** Options of {@link KubeEventRecorder}. */
export interface KubeEventRecorderOptions {
  client: KubeClient;
  /** `reportingInstance`: the node name. */
  reportingInstance: string;
  /** Default {@link KIMG_REPORTING_CONTROLLER}. */
  reportingController?: string;
  /** The pod object for a `namespace/name`, to find a container's field path. */
  podFor?: (key: string) => KubeJson | undefined;
  /** Default `Date.now`. */
  now?: () => number;
  /** Series refresh period; default {@link EVENT_SERIES_REFRESH_MS}; 0 = only on `flush()`. */
  refreshMs?: number;
  onError?: (e: KimgErrorLike) => void;
}

interface CachedEvent {
  event: EventsV1Event;
  namespace: string;
  name: string;
  count: number;
  lastObserved: number;
  dirty: boolean;
}

const NOTE_LIMIT = 1024;

function capNote(note: string): string {
  const b = Buffer.from(note, 'utf8');
  if (b.length <= NOTE_LIMIT) return note;
  return (
    b
      .subarray(0, NOTE_LIMIT - 3)
      .toString('utf8')
      .replace(/\uFFFD$/, '') + '...'
  );
}

/** The kubelet's action for a manager reason. */
function actionFor(reason: string): string {
  return reason === 'FailedToRetrieveImagePullSecret' ? 'RetrieveImagePullSecret' : 'Pull';
}

/** Records Events to the API server (see the module comment). Implements the manager's recorder. */
export class KubeEventRecorder implements EventRecorder {
  private readonly cache = new Map<string, CachedEvent>();
  private readonly pending = new Set<Promise<void>>();
  private readonly controller: string;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;
  /** Per-key chain: operations on one series run in order. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly options: KubeEventRecorderOptions) {
    this.controller = options.reportingController ?? KIMG_REPORTING_CONTROLLER;
    this.now = options.now ?? Date.now;
    const refresh = options.refreshMs ?? EVENT_SERIES_REFRESH_MS;
    if (refresh > 0) {
      this.timer = setInterval(() => void this.refresh(refresh), refresh);
      this.timer.unref();
    }
  }

  /** The manager's events (`Pulling`, `Pulled`, `Failed`, `BackOff`, …) on the pod's container. */
  record(event: ManagerEvent): void {
    const { pod, container } = event.object;
    this.recordEvent({
      type: event.type,
      reason: event.reason,
      note: event.message,
      action: actionFor(event.reason),
      regarding: {
        kind: 'Pod',
        apiVersion: 'v1',
        namespace: pod.namespace,
        name: pod.name,
        uid: pod.uid,
        fieldPath: this.fieldPath(`${pod.namespace}/${pod.name}`, container),
      },
    });
  }

  /** Records any event (never throws; the request runs in the background). */
  recordEvent(input: KubeEventInput): void {
    if (this.closed) return;
    const r = input.regarding;
    const key = JSON.stringify([
      input.action,
      input.reason,
      this.controller,
      this.options.reportingInstance,
      r.kind,
      r.namespace ?? '',
      r.name,
      r.uid ?? '',
      r.fieldPath ?? '',
      input.note,
      input.type,
    ]);
    const now = this.now();
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      cached.count++;
      cached.lastObserved = now;
      if (cached.count === 2) this.chain(key, () => this.sendSeries(cached));
      else cached.dirty = true;
      return;
    }
    const namespace = r.namespace ?? 'default';
    const name = `${r.name}.${(BigInt(now) * 1_000_000n + BigInt(this.seq++ % 1_000_000)).toString(16)}`;
    const event: EventsV1Event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace },
      eventTime: new (clientLibrary().V1MicroTime)(now),
      reportingController: this.controller,
      reportingInstance: this.options.reportingInstance,
      action: input.action,
      reason: input.reason,
      note: capNote(input.note),
      type: input.type,
      regarding: { ...r },
    };
    const entry: CachedEvent = { event, namespace, name, count: 1, lastObserved: now, dirty: false };
    this.cache.set(key, entry);
    this.chain(key, () => this.create(entry));
  }

  private fieldPath(podKey: string, container: string): string {
    const pod = this.options.podFor?.(podKey);
    const spec = (pod?.spec ?? {}) as Record<string, unknown>;
    for (const list of ['initContainers', 'containers', 'ephemeralContainers']) {
      const cs = spec[list];
      if (
        Array.isArray(cs) &&
        cs.some((c) => typeof c === 'object' && c !== null && (c as { name?: unknown }).name === container)
      ) {
        return `spec.${list}{${container}}`;
      }
    }
    return `spec.containers{${container}}`;
  }

  private chain(key: string, op: () => Promise<void>): void {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.then(op).catch((e: unknown) => this.options.onError?.(toKimgError(e)));
    this.chains.set(key, next);
    this.pending.add(next);
    void next.finally(() => {
      this.pending.delete(next);
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  private async create(entry: CachedEvent): Promise<void> {
    try {
      await this.options.client.createEvent(entry.namespace, entry.event);
    } catch (e) {
      // AlreadyExists: an identical Event was recorded (a retry); nothing to do, as client-go.
      if (isKimgError(e, 'KUBE_API_ERROR') && e.details.status === 409) return;
      throw e;
    }
  }

  private seriesPatch(entry: CachedEvent): object {
    return {
      series: {
        count: entry.count,
        lastObservedTime: new (clientLibrary().V1MicroTime)(entry.lastObserved).toISOString(),
      },
    };
  }

  private async sendSeries(entry: CachedEvent): Promise<void> {
    entry.dirty = false;
    try {
      await this.options.client.patchEvent(entry.namespace, entry.name, this.seriesPatch(entry));
    } catch (e) {
      if (!isKimgError(e, 'KUBE_NOT_FOUND')) throw e;
      // The Event is gone (expired by the API server's TTL): record it again with its series.
      entry.event = {
        ...entry.event,
        metadata: { name: entry.name, namespace: entry.namespace },
        series: {
          count: entry.count,
          lastObservedTime: new (clientLibrary().V1MicroTime)(entry.lastObserved),
        },
      };
      await this.create(entry);
    }
  }

  /** Patches changed series; forgets series idle for `idleMs`. */
  private async refresh(idleMs: number): Promise<void> {
    const now = this.now();
    for (const [key, entry] of this.cache) {
      if (entry.dirty) this.chain(key, () => this.sendSeries(entry));
      else if (now - entry.lastObserved >= idleMs) this.cache.delete(key);
    }
    await this.flushPending();
  }

  private async flushPending(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Patches every changed series now and waits for every request in flight. */
  async flush(): Promise<void> {
    for (const [key, entry] of this.cache) if (entry.dirty) this.chain(key, () => this.sendSeries(entry));
    await this.flushPending();
  }

  /** Flushes, then stops recording. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.flush();
    this.closed = true;
  }
}
