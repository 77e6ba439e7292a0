/**
 * The Kubernetes API calls kimg makes, through the maintained client library
 * (`@kubernetes/client-node`: `CoreV1Api`, `AppsV1Api`, `EventsV1Api`, `Watch`), each one translated
 * to a coded error on failure (`errors.ts`) and counted (verb + resource) so the agent's API load is
 * observable and the RBAC rules can be checked against what it really does.
 *
 * Objects are returned as plain JSON data (what `kubectl get -o json` shows), the shape kimg's
 * credential and manager code reads; the library's typed classes are not leaked.
 */
import type { AppsV1Api, CoreV1Api, EventsV1Api, EventsV1Event, Watch } from '@kubernetes/client-node';
import { clientLibrary } from './internal/library.js';
import { KimgError, quote } from '../errors/index.js';
import { toKubeError, type KubeRequest } from './errors.js';
import type { KubeClientConfig } from './config.js';

/** A Kubernetes object as plain JSON data. */
export type KubeJson = Record<string, unknown> & {
  metadata?: Record<string, unknown> & {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
  };
};

/** A list: items plus the collection's resource version. */
export interface KubeList {
  items: KubeJson[];
  resourceVersion: string;
}

/** Selectors of a list or watch. */
export interface KubeListOptions {
  /** Namespace; unset = all namespaces (namespaced kinds) or cluster-scoped. */
  namespace?: string;
  fieldSelector?: string;
  labelSelector?: string;
}

/** One watch event. `BOOKMARK` objects carry only `metadata.resourceVersion`. */
export interface KubeWatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeJson;
}

/** What {@link KubeClient.createServiceAccountToken} asks for. */
export interface ServiceAccountTokenOptions {
  /** `spec.audiences`. */
  audiences: string[];
  /** `spec.expirationSeconds` (the API server may shorten it; at least 600). */
  expirationSeconds: number;
  /** `spec.boundObjectRef`: the token is valid only while this pod exists. */
  boundPod?: { name: string; uid: string };
}

/** A TokenRequest's answer. The token is a secret: never log it or put it in an error. */
export interface ServiceAccountToken {
  token: string;
  /** `status.expirationTimestamp`, epoch ms. */
  expiresAt: number;
  /** `spec.expirationSeconds` as the API server granted it, when it says. */
  expirationSeconds?: number;
}

/** The resources kimg reads or writes. */
export type KubeResource =
  'pods' | 'secrets' | 'serviceaccounts' | 'nodes' | 'namespaces' | 'deployments' | 'events';

const plain = (x: unknown): KubeJson => JSON.parse(JSON.stringify(x)) as KubeJson;

/** The API calls of kimg (see the module comment). */
export class KubeClient {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly eventsApi: EventsV1Api;
  private readonly watcher: Watch;
  private readonly counts = new Map<string, number>();

  constructor(readonly config: KubeClientConfig) {
    // A configuration exists only once loadKubeClientConfig loaded the library.
    const lib = clientLibrary();
    this.core = config.kubeConfig.makeApiClient(lib.CoreV1Api);
    this.apps = config.kubeConfig.makeApiClient(lib.AppsV1Api);
    this.eventsApi = config.kubeConfig.makeApiClient(lib.EventsV1Api);
    this.watcher = new lib.Watch(config.kubeConfig);
  }

  /** The default namespace of the configuration. */
  get namespace(): string {
    return this.config.namespace;
  }

  /** Requests made so far, by `verb resource` (`get secrets`, `watch pods`). */
  requestCounts(): Map<string, number> {
    return new Map(this.counts);
  }

  /** Total requests made so far. */
  requestTotal(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  private async call<T>(req: KubeRequest, fn: () => Promise<T>): Promise<T> {
    const key = `${req.verb} ${req.resource}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    try {
      return await fn();
    } catch (e) {
      throw toKubeError(e, req, this.config.server);
    }
  }

  /** @throws KimgError `KUBE_NOT_FOUND`, `KUBE_FORBIDDEN`, `KUBE_UNAVAILABLE`, … */
  async getPod(namespace: string, name: string): Promise<KubeJson> {
    return plain(
      await this.call({ verb: 'get', resource: 'pods', namespace, name }, () =>
        this.core.readNamespacedPod({ namespace, name }),
      ),
    );
  }

  async getSecret(namespace: string, name: string): Promise<KubeJson> {
    return plain(
      await this.call({ verb: 'get', resource: 'secrets', namespace, name }, () =>
        this.core.readNamespacedSecret({ namespace, name }),
      ),
    );
  }

  async getServiceAccount(namespace: string, name: string): Promise<KubeJson> {
    return plain(
      await this.call({ verb: 'get', resource: 'serviceaccounts', namespace, name }, () =>
        this.core.readNamespacedServiceAccount({ namespace, name }),
      ),
    );
  }

  async getNode(name: string): Promise<KubeJson> {
    return plain(
      await this.call({ verb: 'get', resource: 'nodes', name }, () => this.core.readNode({ name })),
    );
  }

  async getNamespace(name: string): Promise<KubeJson> {
    return plain(
      await this.call({ verb: 'get', resource: 'namespaces', name }, () => this.core.readNamespace({ name })),
    );
  }

  async getDeployment(namespace: string, name: string): Promise<KubeJson> {
    return plain(
      await this.call({ verb: 'get', resource: 'deployments.apps', namespace, name }, () =>
        this.apps.readNamespacedDeployment({ namespace, name }),
      ),
    );
  }

  /**
   * A token of ServiceAccount `namespace/name` (TokenRequest, the `token` subresource of
   * `serviceaccounts`; RBAC verb `create` on `serviceaccounts/token`).
   * @throws KimgError `KUBE_FORBIDDEN`, `KUBE_NOT_FOUND` (no such ServiceAccount or bound pod),
   *   `KUBE_UNAVAILABLE`, `KUBE_API_ERROR` (an answer without a token).
   */
  async createServiceAccountToken(
    namespace: string,
    name: string,
    o: ServiceAccountTokenOptions,
  ): Promise<ServiceAccountToken> {
    const req: KubeRequest = { verb: 'create', resource: 'serviceaccounts/token', namespace, name };
    const answer = await this.call(req, () =>
      this.core.createNamespacedServiceAccountToken({
        namespace,
        name,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            audiences: o.audiences,
            expirationSeconds: o.expirationSeconds,
            ...(o.boundPod !== undefined
              ? {
                  boundObjectRef: {
                    kind: 'Pod',
                    apiVersion: 'v1',
                    name: o.boundPod.name,
                    uid: o.boundPod.uid,
                  },
                }
              : {}),
          },
        },
      }),
    );
    const token = answer.status?.token;
    const expires = answer.status?.expirationTimestamp;
    const expiresAt = expires instanceof Date ? expires.getTime() : Date.parse(String(expires));
    if (typeof token !== 'string' || token === '' || !Number.isFinite(expiresAt))
      throw new KimgError(
        'KUBE_API_ERROR',
        `create serviceaccounts/token ${quote(name)} in namespace ${quote(namespace)}: the API server answered without a token or expiration time`,
        { kube: req },
      );
    const granted = answer.spec?.expirationSeconds;
    return {
      token,
      expiresAt,
      ...(typeof granted === 'number' && granted > 0 ? { expirationSeconds: granted } : {}),
    };
  }

  /** Lists pods (all namespaces when `namespace` is unset). */
  async listPods(o: KubeListOptions = {}): Promise<KubeList> {
    const sel = selectors(o);
    const list = await this.call(
      { verb: 'list', resource: 'pods', ...(o.namespace !== undefined ? { namespace: o.namespace } : {}) },
      () =>
        o.namespace !== undefined
          ? this.core.listNamespacedPod({ namespace: o.namespace, ...sel })
          : this.core.listPodForAllNamespaces(sel),
    );
    return { items: (list.items ?? []).map(plain), resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  /** Lists Secrets of one namespace (the secret manager lists one by `metadata.name`). */
  async listSecrets(o: KubeListOptions & { namespace: string }): Promise<KubeList> {
    const list = await this.call({ verb: 'list', resource: 'secrets', namespace: o.namespace }, () =>
      this.core.listNamespacedSecret({ namespace: o.namespace, ...selectors(o) }),
    );
    return { items: (list.items ?? []).map(plain), resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  /** Lists ServiceAccounts of one namespace. */
  async listServiceAccounts(o: KubeListOptions & { namespace: string }): Promise<KubeList> {
    const list = await this.call({ verb: 'list', resource: 'serviceaccounts', namespace: o.namespace }, () =>
      this.core.listNamespacedServiceAccount({ namespace: o.namespace, ...selectors(o) }),
    );
    return { items: (list.items ?? []).map(plain), resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  /** Creates an `events.k8s.io/v1` Event. */
  async createEvent(namespace: string, event: EventsV1Event): Promise<KubeJson> {
    return plain(
      await this.call({ verb: 'create', resource: 'events.events.k8s.io', namespace }, () =>
        this.eventsApi.createNamespacedEvent({ namespace, body: event }),
      ),
    );
  }

  /** Merge-patches an `events.k8s.io/v1` Event (series updates, as client-go's event sink). */
  async patchEvent(namespace: string, name: string, patch: object): Promise<KubeJson> {
    return plain(
      await this.call({ verb: 'patch', resource: 'events.events.k8s.io', namespace, name }, () =>
        this.eventsApi.patchNamespacedEvent(
          { namespace, name, body: patch },
          clientLibrary().setHeaderOptions('Content-Type', clientLibrary().PatchStrategy.MergePatch),
        ),
      ),
    );
  }

  /**
   * Opens a watch of `resource` from `resourceVersion`, with bookmarks. Events go to `onEvent`;
   * the returned promise settles when the stream ends: `undefined` for a clean end (timeout, server
   * close), a coded error otherwise. `abort` stops it (then it settles with `undefined`).
   */
  async watch(
    resource: 'pods' | 'secrets' | 'serviceaccounts',
    o: KubeListOptions & { resourceVersion: string; timeoutSeconds?: number },
    onEvent: (e: KubeWatchEvent) => void,
    signal?: AbortSignal,
  ): Promise<{ ended: Promise<Error | undefined> }> {
    const req: KubeRequest = {
      verb: 'watch',
      resource,
      ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
    };
    const key = `watch ${resource}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const path =
      o.namespace !== undefined
        ? `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/${resource}`
        : `/api/v1/${resource}`;
    const query: Record<string, string | number | boolean> = { allowWatchBookmarks: true };
    if (o.resourceVersion !== '') query.resourceVersion = o.resourceVersion;
    if (o.fieldSelector !== undefined && o.fieldSelector !== '') query.fieldSelector = o.fieldSelector;
    if (o.labelSelector !== undefined && o.labelSelector !== '') query.labelSelector = o.labelSelector;
    if (o.timeoutSeconds !== undefined) query.timeoutSeconds = o.timeoutSeconds;
    let settle!: (e: Error | undefined) => void;
    const ended = new Promise<Error | undefined>((resolve) => (settle = resolve));
    let aborted = false;
    const done = (err: unknown): void => {
      if (aborted || err === null || err === undefined) settle(undefined);
      else settle(toKubeError(err, req, this.config.server));
    };
    // The library resolves `watch()` only once the response headers arrive: an abort before that
    // settles at once and aborts the stream when it shows up.
    let controller: AbortController | undefined;
    const stop = (): void => {
      aborted = true;
      controller?.abort();
      settle(undefined);
    };
    if (signal !== undefined) {
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
      void ended.then(() => signal.removeEventListener('abort', stop));
    }
    const forward = (type: string, object: unknown): void => {
      if (!aborted) onEvent({ type: type as KubeWatchEvent['type'], object: object as KubeJson });
    };
    this.watcher.watch(path, query, forward, done).then(
      (c) => {
        controller = c;
        if (aborted) c.abort();
      },
      (e: unknown) => settle(toKubeError(e, req, this.config.server)),
    );
    return { ended };
  }
}

function selectors(o: KubeListOptions): { fieldSelector?: string; labelSelector?: string } {
  return {
    ...(o.fieldSelector !== undefined && o.fieldSelector !== '' ? { fieldSelector: o.fieldSelector } : {}),
    ...(o.labelSelector !== undefined && o.labelSelector !== '' ? { labelSelector: o.labelSelector } : {}),
  };
}
