/**
 * A client of containerd's own gRPC API (not CRI): content, images, leases, snapshots, diff,
 * namespaces and containers, over one channel to containerd's socket.
 *
 * Every call carries the `containerd-namespace` header (containerd refuses metadata calls without one;
 * kimg's default is `k8s.io`, the namespace of containerd's CRI plugin) and, when the caller gives
 * one, the `containerd-lease` header: while it is present containerd adds what the call creates or
 * touches (ingests, committed or already-present content, snapshots) to that lease, so its garbage
 * collector keeps them until the lease is deleted (containerd/containerd `leases/grpc.go`,
 * `metadata/content.go`).
 *
 * Errors: gRPC statuses become KimgErrors once, here. `CONTAINERD_UNAVAILABLE` when the socket cannot
 * be reached; `CONTAINERD_ERROR` for anything else, with the gRPC code name in `details.actual`
 * (`NOT_FOUND`, `ALREADY_EXISTS`, `FAILED_PRECONDITION`, ...) so callers branch on
 * {@link containerdStatus} rather than on text. Lookups of absent objects resolve `undefined` instead.
 */
import { isAbsolute, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { KimgError, isKimgError, unreachableSocket } from '../errors/index.js';
import {
  loadContainerdPackage,
  type ContainersClient,
  type IntrospectionClient,
  type ContentClient,
  type DiffClient,
  type ImagesClient,
  type LeasesClient,
  type NamespacesClient,
  type SnapshotsClient,
  type Unary,
  type WireContainer,
  type WireContentInfo,
  type WireDescriptor,
  type WireImage,
  type WireIngestStatus,
  type WireLease,
  type WireMount,
  type WireSnapshotInfo,
} from './internal/proto.js';

/** The metadata key naming the namespace of a call (containerd `namespaces/grpc.go`). */
export const NAMESPACE_HEADER = 'containerd-namespace';
/** The metadata key naming the lease of a call (containerd `leases/grpc.go`). */
export const LEASE_HEADER = 'containerd-lease';

/** Defaults of {@link ContainerdClientOptions}. */
export const DEFAULT_CONTAINERD_OPTIONS = Object.freeze({
  /** containerd's CRI plugin keeps its images, containers and snapshots in `k8s.io`. */
  namespace: 'k8s.io',
  /** containerd's default socket (`ctr --address` default). */
  address: '/run/containerd/containerd.sock',
  /** Unary calls that take longer are cancelled (an Apply of a large layer is bounded separately). */
  callTimeoutMs: 120_000,
  /** Diff.Apply decompresses and writes a whole layer. */
  applyTimeoutMs: 30 * 60_000,
});

/** Options of {@link ContainerdClient}. */
export interface ContainerdClientOptions {
  /** The socket: `/run/containerd/containerd.sock`, `unix:///run/containerd/containerd.sock`. */
  address?: string;
  /** Namespace of every call. Default `k8s.io`. */
  namespace?: string;
  /** Deadline of unary calls in ms. Default 120 s. */
  callTimeoutMs?: number;
}

/** Per-call options. */
export interface ContainerdCallOptions {
  /** Lease the call's effects are added to. */
  lease?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Overrides the client's namespace for this call. */
  namespace?: string | undefined;
  timeoutMs?: number | undefined;
}

/** A descriptor as containerd's API carries it. */
export interface ContainerdDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** Content store metadata of a committed blob. */
export interface ContentInfo {
  digest: string;
  size: number;
  createdAt?: Date;
  updatedAt?: Date;
  labels: Record<string, string>;
}

/** An ingest in progress (`ctr content active`). */
export interface IngestStatus {
  ref: string;
  offset: number;
  total: number;
  expected: string;
  startedAt?: Date;
  updatedAt?: Date;
}

/** An image record (name → target). */
export interface ContainerdImage {
  name: string;
  labels: Record<string, string>;
  target: ContainerdDescriptor;
  createdAt?: Date;
  updatedAt?: Date;
}

export interface ContainerdLease {
  id: string;
  createdAt?: Date;
  labels: Record<string, string>;
}

export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: 'UNKNOWN' | 'VIEW' | 'ACTIVE' | 'COMMITTED';
  labels: Record<string, string>;
  createdAt?: Date;
}

export interface ContainerdMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface ContainerdContainer {
  id: string;
  /** The image name the container was created from ('' when none). */
  image: string;
  labels: Record<string, string>;
  snapshotter: string;
  snapshotKey: string;
  /** Client data by key: the type URL and the encoded value (containerd's CRI plugin stores JSON). */
  extensions: Record<string, { typeUrl: string; value: Uint8Array }>;
}

/** gRPC status code names as containerd's errdefs map them. */
export type ContainerdStatus =
  | 'OK'
  | 'CANCELLED'
  | 'UNKNOWN'
  | 'INVALID_ARGUMENT'
  | 'DEADLINE_EXCEEDED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'ABORTED'
  | 'OUT_OF_RANGE'
  | 'UNIMPLEMENTED'
  | 'INTERNAL'
  | 'UNAVAILABLE'
  | 'DATA_LOSS'
  | 'UNAUTHENTICATED';

/** The gRPC status of a containerd call's KimgError (`details.actual`), or undefined. */
export function containerdStatus(e: unknown): ContainerdStatus | undefined {
  if (!isKimgError(e)) return undefined;
  if (e.code !== 'CONTAINERD_ERROR' && e.code !== 'CONTAINERD_UNAVAILABLE') return undefined;
  const a = (e as KimgError).details.actual;
  return typeof a === 'string' ? (a as ContainerdStatus) : undefined;
}

/**
 * The gRPC target for a containerd address as `ctr --address` takes it: an absolute socket path, a
 * relative one (resolved against the working directory) or a `unix://` URL.
 * @throws KimgError `INVALID_ARGUMENT` for anything else (tcp, empty).
 */
export function containerdTarget(address: string): { target: string; socket: string } {
  let path = address.trim();
  if (path.startsWith('unix://')) path = path.slice('unix://'.length);
  else if (path.startsWith('unix:')) path = path.slice('unix:'.length);
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path) || path === '') {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `containerd address ${JSON.stringify(address)} is not a unix socket: give the socket path (/run/containerd/containerd.sock) or a unix:// URL`,
      { input: address },
    );
  }
  if (!isAbsolute(path)) path = resolve(path);
  return { target: `unix://${path}`, socket: path };
}

function toDate(t: { seconds: number; nanos: number } | null | undefined): Date | undefined {
  if (!t) return undefined;
  return new Date(t.seconds * 1000 + Math.floor(t.nanos / 1e6));
}

function fromWireDescriptor(d: WireDescriptor | null): ContainerdDescriptor {
  const out: ContainerdDescriptor = {
    mediaType: d?.media_type ?? '',
    digest: d?.digest ?? '',
    size: d?.size ?? 0,
  };
  if (d && Object.keys(d.annotations ?? {}).length > 0) out.annotations = { ...d.annotations };
  return out;
}

/** Wire form of a descriptor. */
export function toWireDescriptor(d: ContainerdDescriptor): Partial<WireDescriptor> {
  return {
    media_type: d.mediaType,
    digest: d.digest,
    size: d.size,
    annotations: d.annotations ?? {},
  };
}

function fromWireInfo(i: WireContentInfo | null, digest: string): ContentInfo {
  const out: ContentInfo = {
    digest: i?.digest ?? digest,
    size: i?.size ?? 0,
    labels: { ...(i?.labels ?? {}) },
  };
  const c = toDate(i?.created_at);
  const u = toDate(i?.updated_at);
  if (c) out.createdAt = c;
  if (u) out.updatedAt = u;
  return out;
}

function fromWireStatus(s: WireIngestStatus): IngestStatus {
  const out: IngestStatus = { ref: s.ref, offset: s.offset, total: s.total, expected: s.expected };
  const st = toDate(s.started_at);
  const up = toDate(s.updated_at);
  if (st) out.startedAt = st;
  if (up) out.updatedAt = up;
  return out;
}

function fromWireImage(i: WireImage): ContainerdImage {
  const out: ContainerdImage = {
    name: i.name,
    labels: { ...(i.labels ?? {}) },
    target: fromWireDescriptor(i.target),
  };
  const c = toDate(i.created_at);
  const u = toDate(i.updated_at);
  if (c) out.createdAt = c;
  if (u) out.updatedAt = u;
  return out;
}

function fromWireSnapshot(i: WireSnapshotInfo | null, key: string): SnapshotInfo {
  const out: SnapshotInfo = {
    name: i?.name ?? key,
    parent: i?.parent ?? '',
    kind: i?.kind ?? 'UNKNOWN',
    labels: { ...(i?.labels ?? {}) },
  };
  const c = toDate(i?.created_at);
  if (c) out.createdAt = c;
  return out;
}

function fromWireLease(l: WireLease | null, id: string): ContainerdLease {
  const out: ContainerdLease = { id: l?.id ?? id, labels: { ...(l?.labels ?? {}) } };
  const c = toDate(l?.created_at);
  if (c) out.createdAt = c;
  return out;
}

function fromWireContainer(c: WireContainer): ContainerdContainer {
  return {
    id: c.id,
    image: c.image,
    labels: { ...(c.labels ?? {}) },
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshot_key,
    extensions: Object.fromEntries(
      Object.entries(c.extensions ?? {}).map(([k, v]) => [k, { typeUrl: v.type_url, value: v.value }]),
    ),
  };
}

const STATUS_NAMES: Record<number, ContainerdStatus> = Object.fromEntries(
  Object.entries(grpc.status)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k as ContainerdStatus]),
);

/** What connecting to containerd's socket ran into, in kimg's words, and what to check. */
interface UnreachableReason {
  reason: string;
  hint: string;
  /** The system error of the connect (`ENOENT`, `ECONNREFUSED`, `EACCES`), when grpc-js named one. */
  errno?: string;
}

const CHECK_RUNNING = 'check that containerd is running and that the socket path is right';

/** Why a call found no containerd (src/errors `unreachableSocket`), and what to do about it. */
function unreachableReason(details: string): UnreachableReason {
  const why = unreachableSocket(details);
  const hint = why.permission
    ? "run kimg as a user that may open containerd's socket (root, or the socket's group)"
    : CHECK_RUNNING;
  return { ...(why.errno !== undefined ? { errno: why.errno } : {}), reason: why.reason, hint };
}

/** Converts a grpc-js error of a containerd call into a KimgError (see the module comment). */
export function fromContainerdError(e: unknown, rpc: string, address: string, what?: string): KimgError {
  if (isKimgError(e)) return e as KimgError;
  const se = e as Partial<grpc.ServiceError>;
  if (typeof se !== 'object' || se === null || typeof se.code !== 'number') {
    return new KimgError(
      'CONTAINERD_ERROR',
      `containerd ${rpc} failed: ${String((e as Error)?.message ?? e)}`,
      {
        cause: e,
        method: rpc,
        actual: 'UNKNOWN',
      },
    );
  }
  const status = STATUS_NAMES[se.code] ?? 'UNKNOWN';
  const details = se.details ?? se.message ?? '';
  const about = what !== undefined ? ` (${what})` : '';
  // Unavailable without an answer is the socket; containerd's own "ref … locked" is Unavailable too
  // (another writer holds an ingest) and must not read as a dead daemon.
  if (se.code === grpc.status.UNAVAILABLE && !/\blocked\b/.test(details)) {
    const why = unreachableReason(details);
    return new KimgError(
      'CONTAINERD_UNAVAILABLE',
      `containerd at ${address} is unavailable (${rpc}${about}): ${why.reason}; ${why.hint}`,
      {
        cause: e,
        method: rpc,
        actual: status,
        host: address,
        retryable: true,
        ...(why.errno !== undefined ? { items: [why.errno] } : {}),
      },
    );
  }
  return new KimgError('CONTAINERD_ERROR', `containerd ${rpc}${about}: ${details} (${status})`, {
    cause: e,
    method: rpc,
    actual: status,
    ...(what !== undefined ? { input: what } : {}),
  });
}

/** A connected client; see the module comment. Cheap to keep open; `close()` when done. */
export class ContainerdClient {
  /** The address as given. */
  readonly address: string;
  /** The socket path. */
  readonly socket: string;
  readonly namespace: string;
  private readonly callTimeoutMs: number;
  private readonly channel: grpc.Channel;
  private readonly content: ContentClient;
  private readonly images: ImagesClient;
  private readonly leases: LeasesClient;
  private readonly snapshots: SnapshotsClient;
  private readonly diff: DiffClient;
  private readonly namespaces: NamespacesClient;
  private readonly containers: ContainersClient;
  private readonly introspection: IntrospectionClient;

  constructor(options: ContainerdClientOptions = {}) {
    this.address = options.address ?? DEFAULT_CONTAINERD_OPTIONS.address;
    const { target, socket } = containerdTarget(this.address);
    this.socket = socket;
    this.namespace = options.namespace ?? DEFAULT_CONTAINERD_OPTIONS.namespace;
    validateNamespace(this.namespace);
    this.callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CONTAINERD_OPTIONS.callTimeoutMs;
    const pkg = loadContainerdPackage();
    const channelOptions: grpc.ChannelOptions = {
      // containerd's own clients raise the limits to 16 MiB (containerd `defaults.DefaultMaxRecvMsgSize`).
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      'grpc.max_send_message_length': 16 * 1024 * 1024,
      // A unix socket: the authority is only a name.
      'grpc.default_authority': 'localhost',
    };
    const creds = grpc.credentials.createInsecure();
    this.channel = new grpc.Channel(target, creds, channelOptions);
    const opts = { channelOverride: this.channel };
    this.content = new pkg.Content(target, creds, opts);
    this.images = new pkg.Images(target, creds, opts);
    this.leases = new pkg.Leases(target, creds, opts);
    this.snapshots = new pkg.Snapshots(target, creds, opts);
    this.diff = new pkg.Diff(target, creds, opts);
    this.namespaces = new pkg.Namespaces(target, creds, opts);
    this.containers = new pkg.Containers(target, creds, opts);
    this.introspection = new pkg.Introspection(target, creds, opts);
  }

  /** Closes the channel; calls in flight fail. */
  close(): void {
    for (const c of [
      this.content,
      this.images,
      this.leases,
      this.snapshots,
      this.diff,
      this.namespaces,
      this.containers,
      this.introspection,
    ])
      c.close();
    this.channel.close();
  }

  /** The metadata of a call: namespace and, optionally, lease. */
  metadata(o: ContainerdCallOptions = {}): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(NAMESPACE_HEADER, o.namespace ?? this.namespace);
    if (o.lease !== undefined && o.lease !== '') md.set(LEASE_HEADER, o.lease);
    return md;
  }

  /** Runs a unary call with the namespace/lease headers, a deadline and the signal. */
  private unary<Req, Res>(
    client: grpc.Client,
    method: Unary<Req, Res>,
    rpc: string,
    req: Partial<Req>,
    o: ContainerdCallOptions = {},
    what?: string,
  ): Promise<Res> {
    return new Promise<Res>((resolvePromise, reject) => {
      if (o.signal?.aborted) {
        reject(new KimgError('ABORTED', `containerd ${rpc} was cancelled`, { cause: o.signal.reason }));
        return;
      }
      const call = method.call(
        client,
        req,
        this.metadata(o),
        { deadline: Date.now() + (o.timeoutMs ?? this.callTimeoutMs) },
        (err, res) => {
          o.signal?.removeEventListener('abort', onAbort);
          if (err) reject(fromContainerdError(err, rpc, this.address, what));
          else resolvePromise(res as Res);
        },
      );
      const onAbort = (): void => call.cancel();
      o.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Like `unary`, but NOT_FOUND resolves undefined. */
  private async lookup<Req, Res>(
    client: grpc.Client,
    method: Unary<Req, Res>,
    rpc: string,
    req: Partial<Req>,
    o: ContainerdCallOptions = {},
    what?: string,
  ): Promise<Res | undefined> {
    try {
      return await this.unary(client, method, rpc, req, o, what);
    } catch (e) {
      if (containerdStatus(e) === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  // --- content ------------------------------------------------------------------------------------

  /** Info of a committed blob in this namespace; undefined when absent here. */
  async contentInfo(digest: string, o?: ContainerdCallOptions): Promise<ContentInfo | undefined> {
    const r = await this.lookup(this.content, this.content.Info, 'Content.Info', { digest }, o, digest);
    return r ? fromWireInfo(r.info, digest) : undefined;
  }

  /**
   * Sets (value) or removes (`undefined`) labels of a committed blob; other labels are kept (mask
   * paths `labels.<key>`). Resolves the updated info.
   */
  async contentSetLabels(
    digest: string,
    labels: Record<string, string | undefined>,
    o?: ContainerdCallOptions,
  ): Promise<ContentInfo> {
    const set: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels)) if (v !== undefined) set[k] = v;
    const r = await this.unary(
      this.content,
      this.content.Update,
      'Content.Update',
      {
        info: { digest, labels: set },
        update_mask: { paths: Object.keys(labels).map((k) => `labels.${k}`) },
      },
      o,
      digest,
    );
    return fromWireInfo(r.info, digest);
  }

  /** Every committed blob visible in this namespace (optionally filtered, containerd filter syntax). */
  async contentList(filters: string[] = [], o: ContainerdCallOptions = {}): Promise<ContentInfo[]> {
    const out: ContentInfo[] = [];
    await new Promise<void>((resolvePromise, reject) => {
      const stream = this.content.List({ filters }, this.metadata(o), {
        deadline: Date.now() + (o.timeoutMs ?? this.callTimeoutMs),
      });
      stream.on('data', (r: { info: WireContentInfo[] }) => {
        for (const i of r.info) out.push(fromWireInfo(i, i.digest));
      });
      stream.on('error', (e) => reject(fromContainerdError(e, 'Content.List', this.address)));
      stream.on('end', () => resolvePromise());
    });
    return out;
  }

  /** Deletes a blob from this namespace; absent = success. */
  async contentDelete(digest: string, o?: ContainerdCallOptions): Promise<void> {
    await this.lookup(this.content, this.content.Delete, 'Content.Delete', { digest }, o, digest);
  }

  /**
   * Reads a whole (small) blob: manifests, indexes, configs.
   * @throws `CONTAINERD_ERROR` (NOT_FOUND) when absent; `INVALID_ARGUMENT` when larger than `maxBytes`.
   */
  async contentRead(digest: string, o: ContainerdCallOptions & { maxBytes?: number } = {}): Promise<Buffer> {
    const max = o.maxBytes ?? 4 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let total = 0;
    await new Promise<void>((resolvePromise, reject) => {
      const stream = this.content.Read({ digest, offset: 0, size: 0 }, this.metadata(o), {
        deadline: Date.now() + (o.timeoutMs ?? this.callTimeoutMs),
      });
      stream.on('data', (r: { data: Buffer }) => {
        total += r.data.length;
        if (total > max) {
          stream.cancel();
          reject(
            new KimgError('INVALID_ARGUMENT', `blob ${digest} is larger than ${max} bytes`, {
              input: digest,
            }),
          );
          return;
        }
        chunks.push(r.data);
      });
      stream.on('error', (e: grpc.ServiceError) => {
        if (e.code === grpc.status.CANCELLED && total > max) return;
        reject(fromContainerdError(e, 'Content.Read', this.address, digest));
      });
      stream.on('end', () => resolvePromise());
    });
    return Buffer.concat(chunks, total);
  }

  /** The ingest for `ref`, or undefined. */
  async contentStatus(ref: string, o?: ContainerdCallOptions): Promise<IngestStatus | undefined> {
    const r = await this.lookup(this.content, this.content.Status, 'Content.Status', { ref }, o, ref);
    return r?.status ? fromWireStatus(r.status) : undefined;
  }

  /** Every ingest in this namespace (`ctr content active`). */
  async contentListStatuses(filters: string[] = [], o?: ContainerdCallOptions): Promise<IngestStatus[]> {
    const r = await this.unary(
      this.content,
      this.content.ListStatuses,
      'Content.ListStatuses',
      { filters },
      o,
    );
    return r.statuses.map(fromWireStatus);
  }

  /** Abandons an ingest; absent = success. */
  async contentAbort(ref: string, o?: ContainerdCallOptions): Promise<void> {
    await this.lookup(this.content, this.content.Abort, 'Content.Abort', { ref }, o, ref);
  }

  /** The raw Write stream (see `content-writer.ts`, which speaks its protocol). */
  contentWriteStream(o: ContainerdCallOptions = {}): ReturnType<ContentClient['Write']> {
    return this.content.Write(this.metadata(o), {});
  }

  // --- images -------------------------------------------------------------------------------------

  async imageGet(name: string, o?: ContainerdCallOptions): Promise<ContainerdImage | undefined> {
    const r = await this.lookup(this.images, this.images.Get, 'Images.Get', { name }, o, name);
    return r?.image ? fromWireImage(r.image) : undefined;
  }

  async imageList(filters: string[] = [], o?: ContainerdCallOptions): Promise<ContainerdImage[]> {
    const r = await this.unary(this.images, this.images.List, 'Images.List', { filters }, o);
    return r.images.map(fromWireImage);
  }

  /** Creates a record. @throws `CONTAINERD_ERROR` ALREADY_EXISTS when the name is taken. */
  async imageCreate(image: ContainerdImage, o?: ContainerdCallOptions): Promise<ContainerdImage> {
    const r = await this.unary(
      this.images,
      this.images.Create,
      'Images.Create',
      {
        image: {
          name: image.name,
          labels: image.labels,
          target: toWireDescriptor(image.target) as WireDescriptor,
        },
      },
      o,
      image.name,
    );
    return r.image ? fromWireImage(r.image) : image;
  }

  /** Updates the fields named by `paths` (`target`, `labels`, `labels.<key>`). */
  async imageUpdate(
    image: ContainerdImage,
    paths: string[],
    o?: ContainerdCallOptions,
  ): Promise<ContainerdImage> {
    const r = await this.unary(
      this.images,
      this.images.Update,
      'Images.Update',
      {
        image: {
          name: image.name,
          labels: image.labels,
          target: toWireDescriptor(image.target) as WireDescriptor,
        },
        update_mask: { paths },
      },
      o,
      image.name,
    );
    return r.image ? fromWireImage(r.image) : image;
  }

  /** Deletes a record; absent = success. `sync` runs containerd's GC before answering. */
  async imageDelete(name: string, o: ContainerdCallOptions & { sync?: boolean } = {}): Promise<void> {
    await this.lookup(
      this.images,
      this.images.Delete,
      'Images.Delete',
      { name, sync: o.sync === true },
      o,
      name,
    );
  }

  // --- leases -------------------------------------------------------------------------------------

  async leaseCreate(
    id: string,
    labels: Record<string, string>,
    o?: ContainerdCallOptions,
  ): Promise<ContainerdLease> {
    const r = await this.unary(this.leases, this.leases.Create, 'Leases.Create', { id, labels }, o, id);
    return fromWireLease(r.lease, id);
  }

  /** Deletes a lease; absent = success. */
  async leaseDelete(id: string, o: ContainerdCallOptions & { sync?: boolean } = {}): Promise<void> {
    await this.lookup(this.leases, this.leases.Delete, 'Leases.Delete', { id, sync: o.sync === true }, o, id);
  }

  async leaseList(filters: string[] = [], o?: ContainerdCallOptions): Promise<ContainerdLease[]> {
    const r = await this.unary(this.leases, this.leases.List, 'Leases.List', { filters }, o);
    return r.leases.map((l) => fromWireLease(l, l.id));
  }

  /** Adds a resource (`content` digest, `ingests` ref, `snapshots/<snapshotter>` key) to a lease. */
  async leaseAddResource(
    id: string,
    resource: { id: string; type: string },
    o?: ContainerdCallOptions,
  ): Promise<void> {
    await this.unary(this.leases, this.leases.AddResource, 'Leases.AddResource', { id, resource }, o, id);
  }

  async leaseResources(id: string, o?: ContainerdCallOptions): Promise<{ id: string; type: string }[]> {
    const r = await this.unary(this.leases, this.leases.ListResources, 'Leases.ListResources', { id }, o, id);
    return r.resources.map((x) => ({ id: x.id, type: x.type }));
  }

  // --- snapshots and diff -------------------------------------------------------------------------

  async snapshotStat(
    snapshotter: string,
    key: string,
    o?: ContainerdCallOptions,
  ): Promise<SnapshotInfo | undefined> {
    const r = await this.lookup(
      this.snapshots,
      this.snapshots.Stat,
      'Snapshots.Stat',
      { snapshotter, key },
      o,
      key,
    );
    return r ? fromWireSnapshot(r.info, key) : undefined;
  }

  /** Prepares an active snapshot. @throws ALREADY_EXISTS (label `containerd.io/snapshot.ref` taken), NOT_FOUND (parent). */
  async snapshotPrepare(
    snapshotter: string,
    key: string,
    parent: string,
    labels: Record<string, string>,
    o?: ContainerdCallOptions,
  ): Promise<ContainerdMount[]> {
    const r = await this.unary(
      this.snapshots,
      this.snapshots.Prepare,
      'Snapshots.Prepare',
      { snapshotter, key, parent, labels },
      o,
      key,
    );
    return r.mounts.map(fromWireMount);
  }

  async snapshotCommit(
    snapshotter: string,
    name: string,
    key: string,
    labels: Record<string, string>,
    o?: ContainerdCallOptions,
  ): Promise<void> {
    await this.unary(
      this.snapshots,
      this.snapshots.Commit,
      'Snapshots.Commit',
      { snapshotter, name, key, labels },
      o,
      name,
    );
  }

  /** Removes a snapshot; absent = success. */
  async snapshotRemove(snapshotter: string, key: string, o?: ContainerdCallOptions): Promise<void> {
    await this.lookup(
      this.snapshots,
      this.snapshots.Remove,
      'Snapshots.Remove',
      { snapshotter, key },
      o,
      key,
    );
  }

  async snapshotList(snapshotter: string, o: ContainerdCallOptions = {}): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    await new Promise<void>((resolvePromise, reject) => {
      const stream = this.snapshots.List({ snapshotter, filters: [] }, this.metadata(o), {
        deadline: Date.now() + (o.timeoutMs ?? this.callTimeoutMs),
      });
      stream.on('data', (r: { info: WireSnapshotInfo[] }) => {
        for (const i of r.info) out.push(fromWireSnapshot(i, i.name));
      });
      stream.on('error', (e) => reject(fromContainerdError(e, 'Snapshots.List', this.address)));
      stream.on('end', () => resolvePromise());
    });
    return out;
  }

  async snapshotUsage(
    snapshotter: string,
    key: string,
    o?: ContainerdCallOptions,
  ): Promise<{ size: number; inodes: number }> {
    return this.unary(this.snapshots, this.snapshots.Usage, 'Snapshots.Usage', { snapshotter, key }, o, key);
  }

  /**
   * Applies a layer blob (read by containerd from its content store, same namespace) onto `mounts`;
   * resolves the uncompressed descriptor (its digest is the diff ID).
   */
  async diffApply(
    layer: ContainerdDescriptor,
    mounts: ContainerdMount[],
    o: ContainerdCallOptions = {},
  ): Promise<ContainerdDescriptor> {
    const r = await this.unary(
      this.diff,
      this.diff.Apply,
      'Diff.Apply',
      { diff: toWireDescriptor(layer), mounts },
      { ...o, timeoutMs: o.timeoutMs ?? DEFAULT_CONTAINERD_OPTIONS.applyTimeoutMs },
      layer.digest,
    );
    return fromWireDescriptor(r.applied);
  }

  // --- namespaces and containers ------------------------------------------------------------------

  async namespaceList(o?: ContainerdCallOptions): Promise<string[]> {
    const r = await this.unary(this.namespaces, this.namespaces.List, 'Namespaces.List', { filter: '' }, o);
    return r.namespaces.map((n) => n.name);
  }

  /** Containers of this namespace (for "image in use"). */
  async containerList(filters: string[] = [], o?: ContainerdCallOptions): Promise<ContainerdContainer[]> {
    const r = await this.unary(this.containers, this.containers.List, 'Containers.List', { filters }, o);
    return r.containers.map(fromWireContainer);
  }

  // --- introspection ------------------------------------------------------------------------------

  /**
   * What containerd's plugins export (`ctr plugins ls -d`), e.g. the content store's `root`; `filters`
   * in containerd's filter syntax (`type==io.containerd.content.v1`).
   */
  async plugins(
    filters: string[] = [],
    o?: ContainerdCallOptions,
  ): Promise<{ type: string; id: string; exports: Record<string, string> }[]> {
    const r = await this.unary(
      this.introspection,
      this.introspection.Plugins,
      'Introspection.Plugins',
      { filters },
      o,
    );
    return r.plugins.map((p) => ({ type: p.type, id: p.id, exports: { ...p.exports } }));
  }
}

function fromWireMount(m: WireMount): ContainerdMount {
  return { type: m.type, source: m.source, target: m.target, options: [...m.options] };
}

/**
 * containerd's identifier rule for namespaces: alphanumeric components joined by `.`, `_` or `-`,
 * at most 76 characters (containerd `identifiers/validate.go`).
 * @throws KimgError `INVALID_ARGUMENT`.
 */
export function validateNamespace(ns: string): void {
  if (ns.length === 0 || ns.length > 76 || !/^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/.test(ns)) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `containerd namespace ${JSON.stringify(ns)} is not valid: alphanumeric parts joined by '.', '_' or '-', at most 76 characters`,
      { input: ns },
    );
  }
}
