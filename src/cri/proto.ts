/**
 * Loading kimg's CRI subset (`proto/kimg-cri.proto`, package `runtime.v1`) and the TypeScript shape of
 * its messages as @grpc/proto-loader presents them.
 *
 * Decision: the `.proto` is loaded at run time with @grpc/proto-loader and `keepCase: true` rather than
 * compiled into generated classes. Why: (1) no code generator (protoc, ts-proto) is needed in the build
 * or CI, and none is a dependency today; (2) `keepCase` keeps the wire names (`repo_tags`,
 * `runtime_handler`), so objects read exactly like cri-api's field list and crictl's JSON, which is
 * what the differential tests compare; (3) the subset is small (a dozen messages), so hand-written
 * interfaces below cost less than a generated tree and stay reviewable next to the `.proto`. The price
 * is that the interfaces must match the file by hand: `test/unit/cri/proto.test.ts` round-trips every
 * message through the loaded definition to catch drift.
 *
 * Loader options: `longs: Number` (sizes and nanosecond timestamps fit a double closely enough for
 * disk sizes; timestamps lose sub-microsecond digits, which CRI consumers ignore), `defaults: true`
 * (absent scalars read as '' / 0 / false / [], absent messages as null, as Go's zero values would).
 *
 * The file is found relative to this module, walking up to the package root, so it works both from
 * `src/` (ts-node style) and from `dist/src/` (the build), and from an installed package (`files`
 * includes `proto/`).
 *
 * Source of the field numbers: k8s.io/cri-api `pkg/apis/runtime/v1/api.proto` @ 791729b2 (see
 * docs/design/upstream-parity.md).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { KimgError } from '../errors/index.js';

/** The proto file name under the package's `proto/` directory. */
export const CRI_PROTO_FILE = 'kimg-cri.proto';

/** The CRI API version kimg speaks (`VersionResponse.runtime_api_version`). */
export const CRI_API_VERSION = 'v1';

/** Options given to proto-loader; exported so tests load the file the same way. */
export const CRI_PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

// --- wire messages (keepCase names) ------------------------------------------------------------

export interface WireImageSpec {
  image: string;
  annotations: Record<string, string>;
  user_specified_image?: string;
  runtime_handler: string;
  image_ref?: string;
}

export interface WireAuthConfig {
  username: string;
  password: string;
  auth: string;
  server_address: string;
  identity_token: string;
  registry_token: string;
}

export interface WirePodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface WirePodSandboxConfig {
  metadata: WirePodSandboxMetadata | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface WireInt64Value {
  value: number;
}

export interface WireImage {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: number;
  uid: WireInt64Value | null;
  username: string;
  spec: WireImageSpec | null;
  pinned: boolean;
}

export interface WireVersionRequest {
  version: string;
}
export interface WireVersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}
export interface WireListImagesRequest {
  filter: { image: WireImageSpec | null } | null;
}
export interface WireListImagesResponse {
  images: WireImage[];
}
export interface WireImageStatusRequest {
  image: WireImageSpec | null;
  verbose: boolean;
}
export interface WireImageStatusResponse {
  image: WireImage | null;
  info: Record<string, string>;
}
export interface WirePullImageRequest {
  image: WireImageSpec | null;
  auth: WireAuthConfig | null;
  sandbox_config: WirePodSandboxConfig | null;
}
export interface WirePullImageResponse {
  image_ref: string;
}
export interface WireRemoveImageRequest {
  image: WireImageSpec | null;
}
export type WireRemoveImageResponse = Record<string, never>;
export type WireImageFsInfoRequest = Record<string, never>;
export interface WireFilesystemUsage {
  timestamp: number;
  fs_id: { mountpoint: string } | null;
  used_bytes: { value: number } | null;
  inodes_used: { value: number } | null;
}
export interface WireImageFsInfoResponse {
  image_filesystems: WireFilesystemUsage[];
  container_filesystems: WireFilesystemUsage[];
}

export type WireContainerState =
  'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export interface WireContainerFilter {
  id: string;
  state: { state: WireContainerState } | null;
  pod_sandbox_id: string;
  label_selector: Record<string, string>;
}
export interface WireListContainersRequest {
  filter: WireContainerFilter | null;
}
export interface WireContainer {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string; attempt: number } | null;
  image: WireImageSpec | null;
  image_ref: string;
  state: WireContainerState;
  created_at: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  image_id: string;
}
export interface WireListContainersResponse {
  containers: WireContainer[];
}

/** A unary client method as grpc-js generates it. */
export type UnaryMethod<Req, Res> = (
  request: Partial<Req>,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

/** The generated `runtime.v1.ImageService` client. */
export interface ImageServiceClient extends grpc.Client {
  ListImages: UnaryMethod<WireListImagesRequest, WireListImagesResponse>;
  ImageStatus: UnaryMethod<WireImageStatusRequest, WireImageStatusResponse>;
  PullImage: UnaryMethod<WirePullImageRequest, WirePullImageResponse>;
  RemoveImage: UnaryMethod<WireRemoveImageRequest, WireRemoveImageResponse>;
  ImageFsInfo: UnaryMethod<WireImageFsInfoRequest, WireImageFsInfoResponse>;
}

/** The generated `runtime.v1.RuntimeService` client (the subset's calls). */
export interface RuntimeServiceClient extends grpc.Client {
  Version: UnaryMethod<WireVersionRequest, WireVersionResponse>;
  ListContainers: UnaryMethod<WireListContainersRequest, WireListContainersResponse>;
}

type ClientConstructor<C> = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => C;

/** The loaded package: service definitions (for the server) and client constructors. */
export interface CriPackage {
  ImageService: ClientConstructor<ImageServiceClient> & { service: grpc.ServiceDefinition };
  RuntimeService: ClientConstructor<RuntimeServiceClient> & { service: grpc.ServiceDefinition };
}

/**
 * Finds `proto/kimg-cri.proto` by walking up from this module's directory.
 * @throws KimgError `INTERNAL` when the file is not shipped (a broken install).
 */
export function criProtoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto', CRI_PROTO_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new KimgError(
    'INTERNAL',
    `proto/${CRI_PROTO_FILE} was not found above ${fileURLToPath(import.meta.url)}: the kimg package is incomplete; reinstall it`,
  );
}

let cached: CriPackage | undefined;

/**
 * Loads (once per process) the CRI subset and returns its services.
 * @throws KimgError `INTERNAL` when the proto file is missing or does not parse.
 */
export function loadCriPackage(): CriPackage {
  if (cached) return cached;
  const file = criProtoPath();
  let def: protoLoader.PackageDefinition;
  try {
    def = protoLoader.loadSync(file, CRI_PROTO_LOADER_OPTIONS);
  } catch (e) {
    throw new KimgError('INTERNAL', `cannot load ${file}: ${(e as Error).message}`, { file, cause: e });
  }
  const root = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: CriPackage } };
  cached = root.runtime.v1;
  return cached;
}
