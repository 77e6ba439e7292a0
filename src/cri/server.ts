/**
 * kimg's CRI server: `runtime.v1.ImageService` (+ `RuntimeService.Version`) on a unix socket, a thin
 * proto ↔ domain adapter over any {@link ImageService} the node runtime builds (kimg's store, or even
 * another runtime through `CriImageService`). Shape follows containerd's `internal/cri/server/images`
 * (GRPCCRIImageService → CRIImageService) and its instrumented service (one error translation at the
 * edge, `src/cri/errors.ts`).
 *
 * Socket handling (what a node daemon needs):
 * - `unix:///run/kimg/kimg.sock` (or a bare absolute path). The directory is created with mode 0700
 *   when missing; the socket is chmod 0600 once bound (only root, or the serving user, may talk to it).
 * - A socket file left by a crashed run is replaced: if connecting to it is refused it is stale and is
 *   unlinked; if something answers, another server owns it and starting fails. A path that exists but
 *   is not a socket is never removed.
 * - `close()` drains: no new calls are accepted, in-flight calls (pulls) run to their end; after
 *   `drainTimeoutMs` the remaining ones are cancelled (their AbortSignals fire) and the server stops.
 *
 * RPC semantics are the image service's (see `src/manager/image-service.ts`): ImageStatus of an absent
 * image is OK with `image` unset; RemoveImage of an absent image is OK. ListImages ignores its filter,
 * as containerd does ("TODO: add image list filters" in containerd's list_images.go); clients filter.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, isAbsolute } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { KimgError } from '../errors/index.js';
import type { ImageInfo, ImageService, ImageSpec } from '../manager/index.js';
import { tryParseReference } from '../reference/index.js';
import { authFromWire, fsUsageToWire, imageToWire, sandboxFromWire, specFromWire } from './convert.js';
import { pullFailure, toGrpcStatus, type GrpcStatusObject } from './errors.js';
import {
  CRI_API_VERSION,
  loadCriPackage,
  type WireImageFsInfoResponse,
  type WireImageStatusRequest,
  type WireImageStatusResponse,
  type WireListImagesResponse,
  type WirePullImageRequest,
  type WirePullImageResponse,
  type WireRemoveImageRequest,
  type WireVersionResponse,
} from './proto.js';

/** What `RuntimeService.Version` reports. */

/** A failure whose gRPC status is already decided (PullImage's containerd-shaped errors). */
class GrpcStatusError extends Error {
  constructor(readonly status: GrpcStatusObject) {
    super(status.details);
  }
}

export interface CriVersionInfo {
  /** Default `kimg`. */
  runtimeName?: string;
  /** Default `0.0.0`; `kimg serve` passes the package version. */
  runtimeVersion?: string;
}

/** Options of {@link startCriServer}. */
export interface CriServerOptions {
  /** `unix:///run/kimg/kimg.sock`, `unix:/path` or an absolute path. */
  listen: string;
  /** Every RPC delegates to it. */
  imageService: ImageService;
  version?: CriVersionInfo;
  /**
   * Extra `info` entries of a verbose ImageStatus (values are JSON documents), e.g.
   * {@link storeVerboseInfo}. Without it verbose status has an empty `info`.
   */
  verboseInfo?: (image: ImageInfo, spec: ImageSpec) => Promise<Record<string, string>>;
  /** How long `close()` waits for in-flight calls before cancelling them. Default 60 s. */
  drainTimeoutMs?: number;
  /** One line per failed RPC (method, code, message); never credentials. */
  log?: (line: string) => void;
}

/** Defaults of {@link CriServerOptions}. */
export const CRI_SERVER_DEFAULTS = {
  drainTimeoutMs: 60_000,
  runtimeName: 'kimg',
  runtimeVersion: '0.0.0',
} as const;

/** A running server. */
export interface CriServer {
  /** `unix://<socketPath>`. */
  readonly address: string;
  readonly socketPath: string;
  /** Calls currently being served. */
  inFlight(): number;
  /**
   * Stops accepting calls, waits for in-flight ones (up to `drainTimeoutMs`, default the server's),
   * cancels the rest, removes the socket. Idempotent.
   */
  close(options?: { drainTimeoutMs?: number }): Promise<void>;
}

/**
 * Parses a `--listen` / `--endpoint` value into a socket path.
 * @throws KimgError `INVALID_ARGUMENT` for anything but an absolute unix socket path.
 */
export function unixSocketPath(address: string): string {
  let path: string;
  if (address.startsWith('unix://')) path = address.slice('unix://'.length);
  else if (address.startsWith('unix:')) path = address.slice('unix:'.length);
  else path = address;
  if (!isAbsolute(path)) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `CRI address ${JSON.stringify(address)} is not a unix socket: use unix:///absolute/path.sock`,
      { input: address },
    );
  }
  if (Buffer.byteLength(path) > 107) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `unix socket path ${JSON.stringify(path)} is longer than 107 bytes; choose a shorter path`,
      {
        input: address,
      },
    );
  }
  return path;
}

/** Resolves true when something accepts connections on the unix socket `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Creates the socket directory (0700) and removes a stale socket. */
async function prepareSocket(path: string, listen: string): Promise<void> {
  const dir = dirname(path);
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined) await chmod(dir, 0o700);
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new KimgError('INVALID_ARGUMENT', `cannot inspect ${path}: ${(e as Error).message}`, {
      input: listen,
      cause: e,
    });
  }
  if (!st.isSocket()) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `${path} exists and is not a socket; remove it or choose another --listen path`,
      {
        input: listen,
        file: path,
      },
    );
  }
  if (await socketAnswers(path)) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `another server is already listening on ${path}; stop it or choose another --listen path`,
      {
        input: listen,
        file: path,
      },
    );
  }
  await unlink(path); // stale: left by a run that crashed
}

type Handler<Req, Res> = (req: Req, signal: AbortSignal) => Promise<Res>;

/**
 * Starts kimg's CRI server on a unix socket (see the module comment).
 * @throws KimgError `INVALID_ARGUMENT` (bad address, socket in use, path not a socket), `INTERNAL`
 *   (bind failed for another reason).
 */
export async function startCriServer(options: CriServerOptions): Promise<CriServer> {
  const socketPath = unixSocketPath(options.listen);
  const address = `unix://${socketPath}`;
  const svc = options.imageService;
  const log = options.log ?? (() => {});
  const pkg = loadCriPackage();
  await prepareSocket(socketPath, options.listen);

  const inflight = new Set<AbortController>();
  let closing: Promise<void> | undefined;

  function unary<Req, Res>(rpc: string, handler: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const ac = new AbortController();
      inflight.add(ac);
      call.on('cancelled', () => ac.abort(new KimgError('ABORTED', `${rpc} was cancelled by the client`)));
      handler(call.request, ac.signal).then(
        (res) => {
          inflight.delete(ac);
          callback(null, res);
        },
        (e: unknown) => {
          inflight.delete(ac);
          const st = e instanceof GrpcStatusError ? e.status : toGrpcStatus(e);
          log(`${rpc} failed: code=${grpc.status[st.code]} ${st.details}`);
          callback(st);
        },
      );
    };
  }

  const runtimeName = options.version?.runtimeName ?? CRI_SERVER_DEFAULTS.runtimeName;
  const runtimeVersion = options.version?.runtimeVersion ?? CRI_SERVER_DEFAULTS.runtimeVersion;

  const server = new grpc.Server();
  server.addService(pkg.RuntimeService.service, {
    Version: unary<unknown, WireVersionResponse>('Version', async () => ({
      version: '0.1.0',
      runtime_name: runtimeName,
      runtime_version: runtimeVersion,
      runtime_api_version: CRI_API_VERSION,
    })),
  });
  server.addService(pkg.ImageService.service, {
    ListImages: unary<unknown, Partial<WireListImagesResponse>>('ListImages', async (_req, signal) => ({
      images: (await svc.listImages({ signal })).map(imageToWire) as WireListImagesResponse['images'],
    })),
    ImageStatus: unary<WireImageStatusRequest, Partial<WireImageStatusResponse>>(
      'ImageStatus',
      async (req, signal) => {
        const spec = specFromWire(req.image, 'ImageStatus');
        const info = await svc.imageStatus(spec, { signal });
        if (info === undefined) return {}; // absent: OK with `image` unset (containerd, kubelet contract)
        const extra = req.verbose && options.verboseInfo ? await options.verboseInfo(info, spec) : {};
        return { image: imageToWire(info) as WireImageStatusResponse['image'], info: extra };
      },
    ),
    PullImage: unary<WirePullImageRequest, WirePullImageResponse>('PullImage', async (req, signal) => {
      const spec = specFromWire(req.image, 'PullImage');
      const auth = authFromWire(req.auth, spec.image);
      try {
        const ref = await svc.pullImage(spec, auth, sandboxFromWire(req.sandbox_config), { signal });
        return { image_ref: ref };
      } catch (e) {
        const parsed = tryParseReference(spec.image);
        throw new GrpcStatusError(
          pullFailure(e, spec.image, parsed.ok ? parsed.reference.pullRef : undefined),
        );
      }
    }),
    RemoveImage: unary<WireRemoveImageRequest, Record<string, never>>('RemoveImage', async (req, signal) => {
      await svc.removeImage(specFromWire(req.image, 'RemoveImage'), { signal });
      return {};
    }),
    ImageFsInfo: unary<unknown, Partial<WireImageFsInfoResponse>>('ImageFsInfo', async (_req, signal) => {
      const fs = svc.imageFsInfo ? await svc.imageFsInfo({ signal }) : [];
      return {
        image_filesystems: fs.map(fsUsageToWire) as WireImageFsInfoResponse['image_filesystems'],
        container_filesystems: [],
      };
    }),
  });

  await new Promise<void>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) {
        reject(
          new KimgError('INTERNAL', `cannot listen on ${address}: ${err.message}`, {
            input: options.listen,
            cause: err,
          }),
        );
      } else resolve();
    });
  });
  await chmod(socketPath, 0o600);

  const drainDefault = options.drainTimeoutMs ?? CRI_SERVER_DEFAULTS.drainTimeoutMs;

  return {
    address,
    socketPath,
    inFlight: () => inflight.size,
    close(closeOptions) {
      closing ??= (async () => {
        const drainMs = closeOptions?.drainTimeoutMs ?? drainDefault;
        const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), drainMs);
        });
        const outcome = await Promise.race([drained, timedOut]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
          for (const ac of inflight) ac.abort(new KimgError('ABORTED', 'the CRI server is shutting down'));
          server.forceShutdown();
        }
        await unlink(socketPath).catch(() => {});
      })();
      return closing;
    },
  };
}
