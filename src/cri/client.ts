/**
 * A CRI client as an {@link ImageService}: the image manager (and `kimg cri`, `kimg ensure
 * --image-service`) talk to any CRI runtime socket — containerd, CRI-O, or `kimg serve` — through it,
 * exactly as the kubelet's cri-client does (`k8s.io/cri-client` `pkg/remote_image.go`):
 * - every RPC but PullImage has a deadline (`timeoutMs`, default 2 min = kubelet
 *   `runtimeRequestTimeout`); PullImage has none (only the caller's AbortSignal);
 * - receive limit 16 MiB (cri-client's `maxMsgSize`);
 * - ImageStatus with `image` unset means absent (undefined), not an error.
 * Errors are mapped back to KimgError codes once, in `fromGrpcError` (`src/cri/errors.ts`); the
 * messages are what the kubelet would show.
 */
import * as grpc from '@grpc/grpc-js';
import type { AuthConfig } from '../credentials/index.js';
import type {
  ImageFsUsage,
  ImageInfo,
  ImageService,
  ImageServiceCallOptions,
  ImageSpec,
  PodSandboxInfo,
} from '../manager/index.js';
import { authToWire, fsUsageFromWire, imageFromWire, sandboxToWire, specToWire } from './convert.js';
import { fromGrpcError } from './errors.js';
import {
  loadCriPackage,
  type ImageServiceClient,
  type RuntimeServiceClient,
  type UnaryMethod,
} from './proto.js';
import { unixSocketPath } from './server.js';

/** Options of {@link CriImageService}. */
export interface CriClientOptions {
  /** `unix:///run/containerd/containerd.sock` (or an absolute socket path). */
  endpoint: string;
  /** Deadline of every RPC except PullImage. Default 120 000 (kubelet `runtimeRequestTimeout`). */
  timeoutMs?: number;
}

/** Defaults of {@link CriClientOptions}. */
export const CRI_CLIENT_DEFAULTS = { timeoutMs: 120_000, maxReceiveMessageBytes: 16 * 1024 * 1024 } as const;

/** `RuntimeService.Version`'s answer. */
export interface RuntimeVersion {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

/** ImageStatus with the verbose `info` map. */
export interface ImageStatusResult {
  image: ImageInfo | undefined;
  info: Record<string, string>;
}

/**
 * One unary CRI call on `client`: a deadline of `timeoutMs` when asked, cancelled by `signal`, and a
 * gRPC error mapped to a KimgError once (`fromGrpcError`, naming the call, the endpoint and the image).
 */
export function unaryCall<Req, Res>(
  client: grpc.Client,
  method: UnaryMethod<Req, Res>,
  rpc: string,
  request: Partial<Req>,
  opts: {
    endpoint: string;
    timeoutMs: number;
    deadline: boolean;
    signal?: AbortSignal | undefined;
    image?: string;
  },
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const ctx = {
      rpc,
      endpoint: opts.endpoint,
      ...(opts.image !== undefined ? { image: opts.image } : {}),
    };
    if (opts.signal?.aborted) {
      reject(
        fromGrpcError(
          { code: grpc.status.CANCELLED, details: `${rpc} was cancelled`, metadata: new grpc.Metadata() },
          ctx,
        ),
      );
      return;
    }
    const callOptions: grpc.CallOptions = opts.deadline ? { deadline: Date.now() + opts.timeoutMs } : {};
    const c = method.call(client, request, new grpc.Metadata(), callOptions, (err, res) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(fromGrpcError(err, ctx));
      else resolve(res as Res);
    });
    const onAbort = () => c.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The CRI ImageService of a runtime socket, as an {@link ImageService}. Call `close()` when done. */
export class CriImageService implements ImageService {
  /** `unix://<path>`. */
  readonly endpoint: string;
  private readonly images: ImageServiceClient;
  private readonly runtime: RuntimeServiceClient;
  private readonly timeoutMs: number;

  /** @throws KimgError `INVALID_ARGUMENT` for an endpoint that is not an absolute unix socket path. */
  constructor(options: CriClientOptions) {
    this.endpoint = `unix://${unixSocketPath(options.endpoint)}`;
    this.timeoutMs = options.timeoutMs ?? CRI_CLIENT_DEFAULTS.timeoutMs;
    const pkg = loadCriPackage();
    const channelOptions: grpc.ClientOptions = {
      'grpc.max_receive_message_length': CRI_CLIENT_DEFAULTS.maxReceiveMessageBytes,
    };
    this.images = new pkg.ImageService(this.endpoint, grpc.credentials.createInsecure(), channelOptions);
    // Share one channel between both services, like cri-client's single connection.
    this.runtime = new pkg.RuntimeService(this.endpoint, grpc.credentials.createInsecure(), {
      ...channelOptions,
      channelOverride: this.images.getChannel(),
    });
  }

  private call<Req, Res>(
    client: grpc.Client,
    method: UnaryMethod<Req, Res>,
    rpc: string,
    request: Partial<Req>,
    opts: { deadline: boolean; signal?: AbortSignal | undefined; image?: string },
  ): Promise<Res> {
    return unaryCall(client, method, rpc, request, {
      ...opts,
      endpoint: this.endpoint,
      timeoutMs: this.timeoutMs,
    });
  }

  /** `RuntimeService.Version`. @throws KimgError `RUNTIME_UNAVAILABLE`, `RUNTIME_ERROR`. */
  async version(options?: ImageServiceCallOptions): Promise<RuntimeVersion> {
    const r = await this.call(
      this.runtime,
      this.runtime.Version,
      'Version',
      { version: 'v1' },
      {
        deadline: true,
        signal: options?.signal,
      },
    );
    return {
      version: r.version,
      runtimeName: r.runtime_name,
      runtimeVersion: r.runtime_version,
      runtimeApiVersion: r.runtime_api_version,
    };
  }

  /** ImageStatus with `verbose` and the runtime's `info` map. @throws KimgError (see `fromGrpcError`). */
  async imageStatusVerbose(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<ImageStatusResult> {
    const r = await this.call(
      this.images,
      this.images.ImageStatus,
      'ImageStatus',
      { image: specToWire(spec) as never, verbose: true },
      { deadline: true, signal: options?.signal, image: spec.image },
    );
    return { image: r.image ? imageFromWire(r.image) : undefined, info: { ...(r.info ?? {}) } };
  }

  /** ImageStatus; undefined when the runtime reports the image absent. */
  async imageStatus(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<ImageInfo | undefined> {
    const r = await this.call(
      this.images,
      this.images.ImageStatus,
      'ImageStatus',
      { image: specToWire(spec) as never, verbose: false },
      { deadline: true, signal: options?.signal, image: spec.image },
    );
    return r.image ? imageFromWire(r.image) : undefined;
  }

  /** PullImage (no deadline, like the kubelet); resolves the runtime's image ref. */
  async pullImage(
    spec: ImageSpec,
    auth: AuthConfig | undefined,
    sandbox?: PodSandboxInfo,
    options?: ImageServiceCallOptions,
  ): Promise<string> {
    const req: Record<string, unknown> = { image: specToWire(spec) };
    if (auth) req.auth = authToWire(auth);
    if (sandbox) req.sandbox_config = sandboxToWire(sandbox);
    const r = await this.call(this.images, this.images.PullImage, 'PullImage', req as never, {
      deadline: false,
      signal: options?.signal,
      image: spec.image,
    });
    return r.image_ref;
  }

  /** ListImages (no filter: containerd ignores it). */
  async listImages(options?: ImageServiceCallOptions): Promise<ImageInfo[]> {
    const r = await this.call(
      this.images,
      this.images.ListImages,
      'ListImages',
      {},
      { deadline: true, signal: options?.signal },
    );
    return (r.images ?? []).map(imageFromWire);
  }

  /** RemoveImage (absent = success, per the CRI contract). */
  async removeImage(spec: ImageSpec, options?: ImageServiceCallOptions): Promise<void> {
    await this.call(
      this.images,
      this.images.RemoveImage,
      'RemoveImage',
      { image: specToWire(spec) as never },
      {
        deadline: true,
        signal: options?.signal,
        image: spec.image,
      },
    );
  }

  /** ImageFsInfo's image filesystems (first one authoritative). */
  async imageFsInfo(options?: ImageServiceCallOptions): Promise<ImageFsUsage[]> {
    const r = await this.call(
      this.images,
      this.images.ImageFsInfo,
      'ImageFsInfo',
      {},
      { deadline: true, signal: options?.signal },
    );
    return (r.image_filesystems ?? []).map(fsUsageFromWire);
  }

  /** Closes the channel. */
  close(): void {
    this.runtime.close();
    this.images.close();
  }
}
