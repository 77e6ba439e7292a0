/**
 * An informer: a local cache of one kind of object kept current by list + watch, as client-go's
 * reflector and shared informer do (`tools/cache/reflector.go`, `shared_informer.go`):
 *
 * - list once (the cache is replaced: objects gone from the list are deleted), then watch from the
 *   list's resource version with bookmarks, so a reconnect resumes where the stream stopped;
 * - a watch that ends cleanly (server timeout, `timeoutSeconds`) or breaks mid-stream is reopened
 *   from the last resource version seen (an event's or a bookmark's): no event is missed and nothing
 *   is listed again;
 * - `410 Gone` / reason `Expired` (as an `ERROR` event or an HTTP status) means the resource version
 *   was compacted away: the informer lists again — the only case that relists;
 * - other failures are reported (`onError`) and retried with exponential back-off (800 ms doubling to
 *   30 s, client-go's reflector defaults), reset once a watch stays up;
 * - every `resyncMs` the cached objects are handed to `onResync` without any request (client-go's
 *   resync period: handlers re-check their state, the API server sees nothing).
 *
 * The watch timeout is 5 min (client-go uses 5–10 min at random to spread reconnects; a fixed value
 * keeps the agents' request rate predictable and each reconnect costs one request).
 */
import { isKimgError, type KimgErrorLike } from '../errors/index.js';
import type { KubeClient, KubeJson, KubeListOptions, KubeList, KubeWatchEvent } from './client.js';
import { parseStatus, kubeStatusError } from './errors.js';

/** Callbacks of an informer. Each must not throw. */
export interface InformerHandlers {
  onAdd?(obj: KubeJson): void;
  onUpdate?(obj: KubeJson, old: KubeJson): void;
  onDelete?(obj: KubeJson): void;
  onResync?(objects: KubeJson[]): void;
  /** A list was applied (the first one, and each relist after a `410`). */
  onSynced?(): void;
  /** A list or watch failed (the informer retries on its own). */
  onError?(error: KimgErrorLike, what: 'list' | 'watch'): void;
}

/** Options of {@link KubeInformer}. */
export interface InformerOptions extends KubeListOptions, InformerHandlers {
  client: KubeClient;
  resource: 'pods' | 'secrets' | 'serviceaccounts';
  /** Re-deliver the cache every this many ms (0 = never). Default 0. */
  resyncMs?: number;
  /** Server-side watch timeout. Default 300 s. */
  watchTimeoutSeconds?: number;
  /** First retry delay after a failure; doubles up to `maxBackoffMs`. Default 800 ms. */
  initialBackoffMs?: number;
  /** Default 30 000 ms. */
  maxBackoffMs?: number;
}

/** Watch-based cache of one resource (see the module comment). */
export class KubeInformer {
  private readonly cache = new Map<string, KubeJson>();
  private resourceVersion = '';
  private stopped = false;
  private readonly abort = new AbortController();
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private failureWaiters: ((e: KimgErrorLike) => void)[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lists = 0;
  private watches = 0;
  private lastError: KimgErrorLike | undefined;

  constructor(private readonly options: InformerOptions) {}

  /** Starts the list + watch loop; resolves at once (see {@link waitForSync}). */
  start(): void {
    if (this.running !== undefined) return;
    this.running = this.loop();
    const resync = this.options.resyncMs ?? 0;
    if (resync > 0) {
      this.resyncTimer = setInterval(() => this.options.onResync?.(this.list()), resync);
      this.resyncTimer.unref();
    }
  }

  /** Resolves after the first successful list (or when stopped). */
  waitForSync(): Promise<void> {
    if (this.synced || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  /**
   * Resolves `undefined` after the first successful list, or with the failure when a list or watch
   * fails before that (the informer keeps retrying; a caller need not wait for it).
   */
  waitForSyncOrFailure(): Promise<KimgErrorLike | undefined> {
    if (this.synced || this.stopped) return Promise.resolve(undefined);
    if (this.lastError !== undefined) return Promise.resolve(this.lastError);
    return new Promise((resolve) => {
      this.syncWaiters.push(() => resolve(undefined));
      this.failureWaiters.push(resolve);
    });
  }

  /** Whether the first list has been applied. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** The cached objects. */
  list(): KubeJson[] {
    return [...this.cache.values()];
  }

  /** One cached object by `namespace/name` (`name` for cluster-scoped kinds). */
  get(key: string): KubeJson | undefined {
    return this.cache.get(key);
  }

  /** Lists and watches opened so far, and the last failure. */
  stats(): { lists: number; watches: number; resourceVersion: string; lastError?: KimgErrorLike } {
    return {
      lists: this.lists,
      watches: this.watches,
      resourceVersion: this.resourceVersion,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  /** Stops the loop and the open watch. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    if (this.resyncTimer !== undefined) clearInterval(this.resyncTimer);
    this.releaseWaiters();
    await this.running;
  }

  private releaseWaiters(): void {
    const w = this.syncWaiters;
    this.syncWaiters = [];
    this.failureWaiters = [];
    for (const f of w) f();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve();
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.abort.signal.addEventListener('abort', done, { once: true });
    });
  }

  private fail(e: unknown, what: 'list' | 'watch'): void {
    const err = isKimgError(e)
      ? e
      : kubeStatusError(0, undefined, { verb: what, resource: this.options.resource }, e);
    this.lastError = err;
    this.options.onError?.(err, what);
    const waiters = this.failureWaiters;
    this.failureWaiters = [];
    for (const f of waiters) f(err);
  }

  private async loop(): Promise<void> {
    const initial = this.options.initialBackoffMs ?? 800;
    const max = this.options.maxBackoffMs ?? 30_000;
    let delay = initial;
    const backoff = async (): Promise<void> => {
      await this.sleep(delay);
      delay = Math.min(delay * 2, max);
    };
    while (!this.stopped) {
      if (this.resourceVersion === '') {
        let list: KubeList;
        try {
          this.lists++;
          list = await this.doList();
        } catch (e) {
          if (this.stopped) break;
          this.fail(e, 'list');
          await backoff();
          continue;
        }
        if (this.stopped) break;
        this.replace(list.items);
        this.resourceVersion = list.resourceVersion;
        if (!this.synced) {
          this.synced = true;
          this.releaseWaiters();
        }
        this.options.onSynced?.();
      }
      let expired = false;
      let sawEvent = false;
      const opened = Date.now();
      const onEvent = (ev: KubeWatchEvent): void => {
        sawEvent = true;
        if (ev.type === 'ERROR') {
          const status = parseStatus(ev.object);
          if (status?.code === 410 || status?.reason === 'Expired' || status?.reason === 'Gone')
            expired = true;
          else this.fail(kubeStatusError(status?.code ?? 500, status, this.request('watch')), 'watch');
          return;
        }
        const rv = ev.object.metadata?.resourceVersion;
        if (ev.type !== 'BOOKMARK') this.apply(ev.type, ev.object);
        if (typeof rv === 'string' && rv !== '') this.resourceVersion = rv;
      };
      this.watches++;
      const { ended } = await this.options.client.watch(
        this.options.resource,
        {
          ...this.selectors(),
          resourceVersion: this.resourceVersion,
          timeoutSeconds: this.options.watchTimeoutSeconds ?? 300,
        },
        onEvent,
        this.abort.signal,
      );
      const err = await ended;
      if (this.stopped) break;
      if (expired || (err !== undefined && isKimgError(err, 'KUBE_GONE'))) {
        // Compacted: the only way back is a fresh list.
        this.resourceVersion = '';
        continue;
      }
      if (err !== undefined) {
        this.fail(err, 'watch');
        await backoff();
        continue;
      }
      // A clean end: reopen at once from the last resource version; a stream the server keeps
      // closing immediately is paced by the back-off instead of spinning.
      if (sawEvent || Date.now() - opened > 1000) delay = initial;
      else await backoff();
    }
  }

  private request(verb: string): { verb: string; resource: string; namespace?: string } {
    return {
      verb,
      resource: this.options.resource,
      ...(this.options.namespace !== undefined ? { namespace: this.options.namespace } : {}),
    };
  }

  private selectors(): KubeListOptions {
    const o = this.options;
    return {
      ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
      ...(o.fieldSelector !== undefined ? { fieldSelector: o.fieldSelector } : {}),
      ...(o.labelSelector !== undefined ? { labelSelector: o.labelSelector } : {}),
    };
  }

  private doList(): Promise<KubeList> {
    const c = this.options.client;
    const sel = this.selectors();
    switch (this.options.resource) {
      case 'pods':
        return c.listPods(sel);
      case 'secrets':
        return c.listSecrets({ ...sel, namespace: sel.namespace ?? 'default' });
      case 'serviceaccounts':
        return c.listServiceAccounts({ ...sel, namespace: sel.namespace ?? 'default' });
    }
  }

  private replace(items: KubeJson[]): void {
    const seen = new Set<string>();
    for (const o of items) {
      const k = objectKey(o);
      seen.add(k);
      const old = this.cache.get(k);
      this.cache.set(k, o);
      if (old === undefined) this.options.onAdd?.(o);
      else if (old.metadata?.resourceVersion !== o.metadata?.resourceVersion) this.options.onUpdate?.(o, old);
    }
    for (const [k, o] of [...this.cache]) {
      if (seen.has(k)) continue;
      this.cache.delete(k);
      this.options.onDelete?.(o);
    }
  }

  private apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', o: KubeJson): void {
    const k = objectKey(o);
    if (type === 'DELETED') {
      if (this.cache.delete(k)) this.options.onDelete?.(o);
      return;
    }
    const old = this.cache.get(k);
    this.cache.set(k, o);
    if (old === undefined) this.options.onAdd?.(o);
    else this.options.onUpdate?.(o, old);
  }
}

/** `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(o: KubeJson): string {
  const ns = o.metadata?.namespace;
  const name = o.metadata?.name ?? '';
  return ns !== undefined && ns !== '' ? `${ns}/${name}` : name;
}
