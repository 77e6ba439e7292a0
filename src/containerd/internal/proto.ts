/**
 * Loading kimg's subset of containerd's gRPC API (`proto/containerd/**`) and the TypeScript shape of its
 * messages as @grpc/proto-loader presents them.
 *
 * Same decision as the CRI subset (src/cri/proto.ts): the `.proto` files are loaded at run time with
 * `keepCase: true` (wire names, no code generator), `longs: Number` (blob sizes and offsets stay far
 * below 2^53), `enums: String`, `defaults: true` (absent scalars read as Go's zero values). Imports
 * between the files are relative to `proto/containerd/`; the google well-known types come with
 * proto-loader.
 *
 * Field numbers: containerd 1.6 / 2.x `api/services/<svc>/v1/*.proto`, `api/types/{descriptor,mount}.proto`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { KimgError } from '../../errors/index.js';

/** The files under `proto/containerd/` that make up the subset. */
export const CONTAINERD_PROTO_FILES = [
  'services/content/v1/content.proto',
  'services/images/v1/images.proto',
  'services/leases/v1/leases.proto',
  'services/snapshots/v1/snapshots.proto',
  'services/diff/v1/diff.proto',
  'services/namespaces/v1/namespace.proto',
  'services/containers/v1/containers.proto',
  'services/introspection/v1/introspection.proto',
] as const;

export const CONTAINERD_PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

// --- wire messages -------------------------------------------------------------------------------

export interface WireTimestamp {
  seconds: number;
  nanos: number;
}
export interface WireFieldMask {
  paths: string[];
}
export interface WireDescriptor {
  media_type: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}
export interface WireMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}
export interface WireContentInfo {
  digest: string;
  size: number;
  created_at: WireTimestamp | null;
  updated_at: WireTimestamp | null;
  labels: Record<string, string>;
}
export interface WireIngestStatus {
  started_at: WireTimestamp | null;
  updated_at: WireTimestamp | null;
  ref: string;
  offset: number;
  total: number;
  expected: string;
}
export type WireWriteAction = 'STAT' | 'WRITE' | 'COMMIT';
export interface WireWriteContentRequest {
  action: WireWriteAction;
  ref: string;
  total: number;
  expected: string;
  offset: number;
  data: Uint8Array;
  labels: Record<string, string>;
}
export interface WireWriteContentResponse {
  action: WireWriteAction;
  started_at: WireTimestamp | null;
  updated_at: WireTimestamp | null;
  offset: number;
  total: number;
  digest: string;
}
export interface WireImage {
  name: string;
  labels: Record<string, string>;
  target: WireDescriptor | null;
  created_at: WireTimestamp | null;
  updated_at: WireTimestamp | null;
}
export interface WireLease {
  id: string;
  created_at: WireTimestamp | null;
  labels: Record<string, string>;
}
export interface WireLeaseResource {
  id: string;
  type: string;
}
export type WireSnapshotKind = 'UNKNOWN' | 'VIEW' | 'ACTIVE' | 'COMMITTED';
export interface WireSnapshotInfo {
  name: string;
  parent: string;
  kind: WireSnapshotKind;
  created_at: WireTimestamp | null;
  updated_at: WireTimestamp | null;
  labels: Record<string, string>;
}
export interface WireNamespace {
  name: string;
  labels: Record<string, string>;
}
/** `google.protobuf.Any` as proto-loader decodes it (bytes as a Buffer). */
export interface WireAny {
  type_url: string;
  value: Buffer;
}
export interface WireContainer {
  id: string;
  labels: Record<string, string>;
  image: string;
  snapshotter: string;
  snapshot_key: string;
  created_at: WireTimestamp | null;
  updated_at: WireTimestamp | null;
  extensions: Record<string, WireAny>;
}

/** A unary client method as grpc-js generates it. */
export type Unary<Req, Res> = (
  request: Partial<Req>,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;
/** A server-streaming client method. */
export type ServerStream<Req, Res> = (
  request: Partial<Req>,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
) => grpc.ClientReadableStream<Res>;
/** A bidi-streaming client method. */
export type Bidi<Req, Res> = (
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
) => grpc.ClientDuplexStream<Partial<Req>, Res>;

type Empty = Record<string, never>;

export interface ContentClient extends grpc.Client {
  Info: Unary<{ digest: string }, { info: WireContentInfo | null }>;
  Update: Unary<
    { info: Partial<WireContentInfo>; update_mask: WireFieldMask },
    { info: WireContentInfo | null }
  >;
  List: ServerStream<{ filters: string[] }, { info: WireContentInfo[] }>;
  Delete: Unary<{ digest: string }, Empty>;
  Read: ServerStream<{ digest: string; offset: number; size: number }, { offset: number; data: Buffer }>;
  Status: Unary<{ ref: string }, { status: WireIngestStatus | null }>;
  ListStatuses: Unary<{ filters: string[] }, { statuses: WireIngestStatus[] }>;
  Write: Bidi<WireWriteContentRequest, WireWriteContentResponse>;
  Abort: Unary<{ ref: string }, Empty>;
}
export interface ImagesClient extends grpc.Client {
  Get: Unary<{ name: string }, { image: WireImage | null }>;
  List: Unary<{ filters: string[] }, { images: WireImage[] }>;
  Create: Unary<{ image: Partial<WireImage> }, { image: WireImage | null }>;
  Update: Unary<
    { image: Partial<WireImage>; update_mask: WireFieldMask | null },
    { image: WireImage | null }
  >;
  Delete: Unary<{ name: string; sync: boolean }, Empty>;
}
export interface LeasesClient extends grpc.Client {
  Create: Unary<{ id: string; labels: Record<string, string> }, { lease: WireLease | null }>;
  Delete: Unary<{ id: string; sync: boolean }, Empty>;
  List: Unary<{ filters: string[] }, { leases: WireLease[] }>;
  AddResource: Unary<{ id: string; resource: WireLeaseResource }, Empty>;
  DeleteResource: Unary<{ id: string; resource: WireLeaseResource }, Empty>;
  ListResources: Unary<{ id: string }, { resources: WireLeaseResource[] }>;
}
export interface SnapshotsClient extends grpc.Client {
  Prepare: Unary<
    { snapshotter: string; key: string; parent: string; labels: Record<string, string> },
    { mounts: WireMount[] }
  >;
  View: Unary<
    { snapshotter: string; key: string; parent: string; labels: Record<string, string> },
    { mounts: WireMount[] }
  >;
  Mounts: Unary<{ snapshotter: string; key: string }, { mounts: WireMount[] }>;
  Commit: Unary<{ snapshotter: string; name: string; key: string; labels: Record<string, string> }, Empty>;
  Remove: Unary<{ snapshotter: string; key: string }, Empty>;
  Stat: Unary<{ snapshotter: string; key: string }, { info: WireSnapshotInfo | null }>;
  List: ServerStream<{ snapshotter: string; filters: string[] }, { info: WireSnapshotInfo[] }>;
  Usage: Unary<{ snapshotter: string; key: string }, { size: number; inodes: number }>;
}
export interface DiffClient extends grpc.Client {
  Apply: Unary<{ diff: Partial<WireDescriptor>; mounts: WireMount[] }, { applied: WireDescriptor | null }>;
}
export interface NamespacesClient extends grpc.Client {
  Get: Unary<{ name: string }, { namespace: WireNamespace | null }>;
  List: Unary<{ filter: string }, { namespaces: WireNamespace[] }>;
  Create: Unary<{ namespace: WireNamespace }, { namespace: WireNamespace | null }>;
}
export interface WirePlugin {
  type: string;
  id: string;
  requires: string[];
  exports: Record<string, string>;
  capabilities: string[];
}
export interface IntrospectionClient extends grpc.Client {
  Plugins: Unary<{ filters: string[] }, { plugins: WirePlugin[] }>;
}
export interface ContainersClient extends grpc.Client {
  Get: Unary<{ id: string }, { container: WireContainer | null }>;
  List: Unary<{ filters: string[] }, { containers: WireContainer[] }>;
}

type Ctor<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => C;

/** The loaded services' client constructors. */
export interface ContainerdPackage {
  Content: Ctor<ContentClient>;
  Images: Ctor<ImagesClient>;
  Leases: Ctor<LeasesClient>;
  Snapshots: Ctor<SnapshotsClient>;
  Diff: Ctor<DiffClient>;
  Namespaces: Ctor<NamespacesClient>;
  Containers: Ctor<ContainersClient>;
  Introspection: Ctor<IntrospectionClient>;
}

/**
 * Finds `proto/containerd/` by walking up from this module (works from `src/`, `dist/src/` and an
 * installed package).
 * @throws KimgError `INTERNAL` when the files are not shipped.
 */
export function containerdProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto', 'containerd');
    if (existsSync(join(candidate, CONTAINERD_PROTO_FILES[0]))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new KimgError(
    'INTERNAL',
    `proto/containerd/ was not found above ${fileURLToPath(import.meta.url)}: the kimg package is incomplete; reinstall it`,
  );
}

let cached: ContainerdPackage | undefined;

/**
 * Loads (once per process) the containerd subset.
 * @throws KimgError `INTERNAL` when a file is missing or does not parse.
 */
export function loadContainerdPackage(): ContainerdPackage {
  if (cached) return cached;
  const dir = containerdProtoDir();
  let def: protoLoader.PackageDefinition;
  try {
    def = protoLoader.loadSync(
      CONTAINERD_PROTO_FILES.map((f) => join(dir, f)),
      { ...CONTAINERD_PROTO_LOADER_OPTIONS, includeDirs: [dir] },
    );
  } catch (e) {
    throw new KimgError('INTERNAL', `cannot load the containerd protos in ${dir}: ${(e as Error).message}`, {
      file: dir,
      cause: e,
    });
  }
  type Svc<K extends string, V> = { [P in K]: { v1: V } };
  const root = grpc.loadPackageDefinition(def) as unknown as {
    containerd: {
      services: Svc<'content', { Content: Ctor<ContentClient> }> &
        Svc<'images', { Images: Ctor<ImagesClient> }> &
        Svc<'leases', { Leases: Ctor<LeasesClient> }> &
        Svc<'snapshots', { Snapshots: Ctor<SnapshotsClient> }> &
        Svc<'diff', { Diff: Ctor<DiffClient> }> &
        Svc<'namespaces', { Namespaces: Ctor<NamespacesClient> }> &
        Svc<'containers', { Containers: Ctor<ContainersClient> }> &
        Svc<'introspection', { Introspection: Ctor<IntrospectionClient> }>;
    };
  };
  const s = root.containerd.services;
  cached = {
    Content: s.content.v1.Content,
    Images: s.images.v1.Images,
    Leases: s.leases.v1.Leases,
    Snapshots: s.snapshots.v1.Snapshots,
    Diff: s.diff.v1.Diff,
    Namespaces: s.namespaces.v1.Namespaces,
    Containers: s.containers.v1.Containers,
    Introspection: s.introspection.v1.Introspection,
  };
  return cached;
}
