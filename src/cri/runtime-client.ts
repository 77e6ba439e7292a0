/**
 * A minimal client of a CRI runtime's `RuntimeService`: the containers it knows (`ListContainers`),
 * which is what image garbage collection needs from a runtime. The kubelet's image GC keeps the image
 * of every container the runtime reports, running or not (kubernetes
 * `pkg/kubelet/images/image_gc_manager.go` detectImages), and a runtime's RemoveImage does not check
 * its containers itself (containerd's CRI RemoveImage removes the image of a running container), so
 * kimg asks the runtime on every GC run, as the kubelet does.
 *
 * Same conventions as {@link CriImageService}: a deadline on every call (`timeoutMs`, default the
 * kubelet's `runtimeRequestTimeout`), the 16 MiB receive limit, errors mapped once by `fromGrpcError`.
 */
import * as grpc from '@grpc/grpc-js';
import type { ImageServiceCallOptions, ImageSpec } from '../manager/index.js';
import { CRI_CLIENT_DEFAULTS, unaryCall, type CriClientOptions } from './client.js';
import { imageSpecFieldsFromWire } from './convert.js';
import {
  loadCriPackage,
  type RuntimeServiceClient,
  type WireContainer,
  type WireContainerState,
} from './proto.js';
import { unixSocketPath } from './server.js';

/** A container as the runtime reports it (CRI `Container`). */
export interface CriContainer {
  id: string;
  podSandboxId: string;
  /** The name and attempt the kubelet gave it; undefined when the runtime sent none. */
  metadata: { name: string; attempt: number } | undefined;
  /** The image the container was created from, as the creator named it (a reference or an id). */
  image: ImageSpec | undefined;
  /** containerd: the image id (config digest); cri-api now describes it as a digested reference. */
  imageRef: string;
  /** The image id, equal to PullImage's `image_ref` (newer runtimes; '' from older ones). */
  imageId: string;
  state: WireContainerState;
  /** Nanoseconds since the epoch. */
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** What {@link CriRuntimeService.listContainers} filters on; unset fields do not filter. */
export interface CriContainerFilter {
  id?: string;
  state?: WireContainerState;
  podSandboxId?: string;
  labelSelector?: Record<string, string>;
}

/** Converts a wire `Container` (exported for tests). */
export function containerFromWire(c: WireContainer): CriContainer {
  const spec = c.image;
  return {
    id: c.id,
    podSandboxId: c.pod_sandbox_id,
    metadata: c.metadata ? { name: c.metadata.name, attempt: c.metadata.attempt } : undefined,
    image: spec ? imageSpecFieldsFromWire(spec) : undefined,
    imageRef: c.image_ref,
    imageId: c.image_id ?? '',
    state: c.state,
    createdAt: c.created_at,
    labels: { ...(c.labels ?? {}) },
    annotations: { ...(c.annotations ?? {}) },
  };
}

/**
 * The image a container keeps in use, as image GC's in-use input takes it (an id or a name): the
 * image id (`image_id`, which cri-api requires to equal PullImage's `image_ref`), else `image_ref`
 * (what containerd sets to the image id, and the kubelet's image GC reads), else the image the
 * container was created from (`image.image`); undefined for a container that names none.
 */
export function criContainerImageInUse(
  c: Pick<CriContainer, 'imageId' | 'imageRef' | 'image'>,
): string | undefined {
  if (c.imageId !== '') return c.imageId;
  if (c.imageRef !== '') return c.imageRef;
  const name = c.image?.image ?? '';
  return name !== '' ? name : undefined;
}

/** The RuntimeService of a CRI runtime socket (containers only). Call `close()` when done. */
export class CriRuntimeService {
  /** `unix://<path>`. */
  readonly endpoint: string;
  private readonly client: RuntimeServiceClient;
  private readonly timeoutMs: number;

  /** @throws KimgError `INVALID_ARGUMENT` for an endpoint that is not an absolute unix socket path. */
  constructor(options: CriClientOptions) {
    this.endpoint = `unix://${unixSocketPath(options.endpoint)}`;
    this.timeoutMs = options.timeoutMs ?? CRI_CLIENT_DEFAULTS.timeoutMs;
    this.client = new (loadCriPackage().RuntimeService)(this.endpoint, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': CRI_CLIENT_DEFAULTS.maxReceiveMessageBytes,
    });
  }

  /**
   * `ListContainers`: every container the runtime knows (running, created, exited), or those matching
   * `filter`.
   * @throws KimgError `RUNTIME_UNAVAILABLE` (the socket does not answer), `RUNTIME_ERROR`, and what
   *   `fromGrpcError` maps the runtime's status to.
   */
  async listContainers(
    filter: CriContainerFilter = {},
    options?: ImageServiceCallOptions,
  ): Promise<CriContainer[]> {
    const wire = {
      ...(filter.id !== undefined ? { id: filter.id } : {}),
      ...(filter.state !== undefined ? { state: { state: filter.state } } : {}),
      ...(filter.podSandboxId !== undefined ? { pod_sandbox_id: filter.podSandboxId } : {}),
      ...(filter.labelSelector !== undefined ? { label_selector: filter.labelSelector } : {}),
    };
    const r = await unaryCall(
      this.client,
      this.client.ListContainers,
      'ListContainers',
      Object.keys(wire).length > 0 ? { filter: wire as never } : {},
      { endpoint: this.endpoint, timeoutMs: this.timeoutMs, deadline: true, signal: options?.signal },
    );
    return (r.containers ?? []).map(containerFromWire);
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}
