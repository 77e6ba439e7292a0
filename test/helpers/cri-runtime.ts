/**
 * A CRI RuntimeService client for tests: drives containerd's CRI plugin the way a kubelet does to run
 * a pod — RunPodSandbox, CreateContainer (with the image id PullImage returned), StartContainer,
 * ContainerStatus until the container exits, then StopPodSandbox and RemovePodSandbox. The wire
 * subset is `test/helpers/cri-runtime.proto` (package `runtime.v1`), loaded at run time with
 * @grpc/proto-loader (`keepCase`), so objects carry cri-api's field names. Image calls go through
 * kimg's own client (`CriImageService` in src/cri), exactly as the kubelet's image service would.
 *
 * Pods are host-network (`namespace_options.network = NODE`): the CRI plugin then sets up no network
 * namespace and calls no CNI plugin, so a node without CNI configuration runs them (containerd 1.6
 * `pkg/cri/server/sandbox_run.go` skips setupPodNetwork for host-network sandboxes).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { waitFor } from './proc.js';

// ---- wire shapes (keepCase, enums as strings, longs as numbers, defaults filled in) ---------------

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type ContainerState =
  'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface WireImageSpec {
  image: string;
  annotations?: Record<string, string>;
  user_specified_image?: string;
  runtime_handler?: string;
}

export interface WireNamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  target_id?: string;
}

export interface WirePodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  hostname?: string;
  log_directory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroup_parent?: string;
    security_context?: { namespace_options?: WireNamespaceOption; privileged?: boolean };
    sysctls?: Record<string, string>;
  };
}

export interface WireContainerConfig {
  metadata: { name: string; attempt: number };
  image: WireImageSpec;
  command?: string[];
  args?: string[];
  working_dir?: string;
  envs?: Array<{ key: string; value: string }>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  log_path?: string;
  linux?: { security_context?: { namespace_options?: WireNamespaceOption } };
}

export interface WireContainerStatus {
  id: string;
  metadata: { name: string; attempt: number } | null;
  state: ContainerState;
  created_at: number;
  started_at: number;
  finished_at: number;
  exit_code: number;
  image: WireImageSpec | null;
  image_ref: string;
  reason: string;
  message: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  log_path: string;
  image_id: string;
}

export interface WireContainer {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string; attempt: number } | null;
  image: WireImageSpec | null;
  image_ref: string;
  state: ContainerState;
  created_at: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  image_id: string;
}

export interface WirePodSandbox {
  id: string;
  metadata: { name: string; uid: string; namespace: string; attempt: number } | null;
  state: PodSandboxState;
  created_at: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtime_handler: string;
}

export interface WireRuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

type Unary = (
  req: unknown,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: unknown) => void,
) => grpc.ClientUnaryCall;

type RuntimeStub = grpc.Client & Record<string, Unary>;

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** `test/helpers/cri-runtime.proto`, found from `dist/test/helpers/` or `test/helpers/`. */
export function criRuntimeProtoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'test', 'helpers', 'cri-runtime.proto');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`test/helpers/cri-runtime.proto not found above ${fileURLToPath(import.meta.url)}`);
}

let stubConstructor: (new (address: string, creds: grpc.ChannelCredentials) => RuntimeStub) | undefined;

function runtimeStub(address: string): RuntimeStub {
  if (stubConstructor === undefined) {
    const def = protoLoader.loadSync(criRuntimeProtoPath(), LOADER_OPTIONS);
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: { v1: { RuntimeService: typeof stubConstructor } };
    };
    stubConstructor = pkg.runtime.v1.RuntimeService;
  }
  if (stubConstructor === undefined) throw new Error('cri-runtime.proto has no runtime.v1.RuntimeService');
  return new stubConstructor(address, grpc.credentials.createInsecure());
}

/** CRI RuntimeService over a unix socket (`unix:///…/containerd.sock`). Call `close()` when done. */
export class CriRuntimeClient {
  private readonly stub: RuntimeStub;

  constructor(
    readonly address: string,
    private readonly timeoutMs = 120_000,
  ) {
    this.stub = runtimeStub(address);
  }

  private call<T>(method: string, req: unknown): Promise<T> {
    const fn = this.stub[method];
    if (fn === undefined) throw new Error(`cri-runtime.proto declares no RuntimeService.${method}`);
    return new Promise<T>((resolve, reject) => {
      fn.call(this.stub, req, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) => {
        if (err)
          reject(
            new Error(`RuntimeService/${method}: ${grpc.status[err.code]}: ${err.details}`, { cause: err }),
          );
        else resolve(res as T);
      });
    });
  }

  version(): Promise<{
    version: string;
    runtime_name: string;
    runtime_version: string;
    runtime_api_version: string;
  }> {
    return this.call('Version', { version: 'v1' });
  }

  async status(): Promise<WireRuntimeCondition[]> {
    const r = await this.call<{ status: { conditions: WireRuntimeCondition[] } | null }>('Status', {});
    return r.status?.conditions ?? [];
  }

  async runPodSandbox(config: WirePodSandboxConfig, runtimeHandler = ''): Promise<string> {
    const r = await this.call<{ pod_sandbox_id: string }>('RunPodSandbox', {
      config,
      runtime_handler: runtimeHandler,
    });
    return r.pod_sandbox_id;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call('StopPodSandbox', { pod_sandbox_id: podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call('RemovePodSandbox', { pod_sandbox_id: podSandboxId });
  }

  async podSandboxStatus(podSandboxId: string): Promise<{ id: string; state: PodSandboxState }> {
    const r = await this.call<{ status: { id: string; state: PodSandboxState } }>('PodSandboxStatus', {
      pod_sandbox_id: podSandboxId,
    });
    return r.status;
  }

  async listPodSandbox(): Promise<WirePodSandbox[]> {
    const r = await this.call<{ items: WirePodSandbox[] }>('ListPodSandbox', {});
    return r.items;
  }

  async createContainer(
    podSandboxId: string,
    config: WireContainerConfig,
    sandboxConfig: WirePodSandboxConfig,
  ): Promise<string> {
    const r = await this.call<{ container_id: string }>('CreateContainer', {
      pod_sandbox_id: podSandboxId,
      config,
      sandbox_config: sandboxConfig,
    });
    return r.container_id;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call('StartContainer', { container_id: containerId });
  }

  async stopContainer(containerId: string, timeoutSeconds = 0): Promise<void> {
    await this.call('StopContainer', { container_id: containerId, timeout: timeoutSeconds });
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.call('RemoveContainer', { container_id: containerId });
  }

  async listContainers(filter: { pod_sandbox_id?: string } = {}): Promise<WireContainer[]> {
    const r = await this.call<{ containers: WireContainer[] }>('ListContainers', { filter });
    return r.containers;
  }

  async containerStatus(containerId: string): Promise<WireContainerStatus> {
    const r = await this.call<{ status: WireContainerStatus }>('ContainerStatus', {
      container_id: containerId,
    });
    return r.status;
  }

  close(): void {
    this.stub.close();
  }
}

/** What {@link hostNetworkPodConfig} needs. */
export interface HostNetworkPodOptions {
  name: string;
  /** Directory on the host for the containers' logs (the kubelet uses /var/log/pods/<ns>_<name>_<uid>). */
  logDirectory: string;
  namespace?: string;
  uid?: string;
  /** `linux.cgroup_parent` (the kubelet sends e.g. `/kubepods/besteffort/pod<uid>`); default none. */
  cgroupParent?: string;
}

/**
 * A pod sandbox config as the kubelet builds it for a `hostNetwork: true` pod: network namespace
 * NODE (no CNI), PID namespace per container, IPC shared by the pod, hostname = the node's.
 */
export function hostNetworkPodConfig(o: HostNetworkPodOptions): WirePodSandboxConfig {
  const namespace = o.namespace ?? 'default';
  const uid = o.uid ?? `uid-${o.name}`;
  return {
    metadata: { name: o.name, uid, namespace, attempt: 0 },
    log_directory: o.logDirectory,
    labels: {
      'io.kubernetes.pod.name': o.name,
      'io.kubernetes.pod.namespace': namespace,
      'io.kubernetes.pod.uid': uid,
    },
    annotations: { 'kubernetes.io/config.source': 'kimg-test' },
    linux: {
      ...(o.cgroupParent !== undefined ? { cgroup_parent: o.cgroupParent } : {}),
      security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
    },
  };
}

/**
 * A container config as the kubelet builds it: `image` is the reference the runtime resolves (the
 * kubelet sends the image_ref PullImage returned), `userSpecifiedImage` the pod spec's text, and
 * `log_path` = `<name>/0.log` under the sandbox's log directory.
 */
export function containerConfig(o: {
  name: string;
  image: string;
  userSpecifiedImage?: string;
  command?: string[];
  args?: string[];
}): WireContainerConfig {
  return {
    metadata: { name: o.name, attempt: 0 },
    image: { image: o.image, user_specified_image: o.userSpecifiedImage ?? o.image },
    ...(o.command !== undefined ? { command: o.command } : {}),
    ...(o.args !== undefined ? { args: o.args } : {}),
    labels: { 'io.kubernetes.container.name': o.name },
    log_path: `${o.name}/0.log`,
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

/** One CRI log line: `<RFC3339Nano time> <stream> <P|F> <text>` (kubelet's CRI log format). */
export interface CriLogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  /** 'F' = full line, 'P' = partial (continued by the next entry). */
  tag: 'F' | 'P';
  text: string;
}

/** Parses a CRI container log file; throws on a line that does not follow the format. */
export function parseCriLog(text: string): CriLogLine[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(l);
      if (m === null) throw new Error(`not a CRI log line: ${JSON.stringify(l)}`);
      return {
        time: m[1] as string,
        stream: m[2] as 'stdout' | 'stderr',
        tag: m[3] as 'F' | 'P',
        text: m[4] as string,
      };
    });
}

/** Polls ContainerStatus until the container has exited; returns the final status. */
export async function waitForContainerExit(
  rt: CriRuntimeClient,
  containerId: string,
  timeoutMs = 60_000,
): Promise<WireContainerStatus> {
  return waitFor(
    `container ${containerId} to exit`,
    async () => {
      const s = await rt.containerStatus(containerId);
      return s.state === 'CONTAINER_EXITED' ? s : undefined;
    },
    { timeoutMs, intervalMs: 50 },
  );
}

/** What {@link runPodToCompletion} observed. */
export interface PodRun {
  podSandboxId: string;
  containerId: string;
  status: WireContainerStatus;
  /** Absolute path of the container's CRI log file. */
  logFile: string;
  log: CriLogLine[];
  /** The containers listed in the pod while it ran (before teardown). */
  listed: WireContainer[];
}

/**
 * Runs a one-container host-network pod the way a kubelet does (RunPodSandbox → CreateContainer →
 * StartContainer → ContainerStatus until exited), reads the container's log, and tears the pod down
 * (StopPodSandbox → RemovePodSandbox) whatever happened.
 */
export async function runPodToCompletion(
  rt: CriRuntimeClient,
  o: { pod: HostNetworkPodOptions; container: Parameters<typeof containerConfig>[0] },
): Promise<PodRun> {
  const sandboxConfig = hostNetworkPodConfig(o.pod);
  const podSandboxId = await rt.runPodSandbox(sandboxConfig);
  try {
    const config = containerConfig(o.container);
    const containerId = await rt.createContainer(podSandboxId, config, sandboxConfig);
    await rt.startContainer(containerId);
    const status = await waitForContainerExit(rt, containerId);
    const listed = await rt.listContainers({ pod_sandbox_id: podSandboxId });
    const logFile = join(o.pod.logDirectory, config.log_path ?? '');
    const log = parseCriLog(await readFile(logFile, 'utf8'));
    return { podSandboxId, containerId, status, logFile, log, listed };
  } finally {
    await rt.stopPodSandbox(podSandboxId);
    await rt.removePodSandbox(podSandboxId);
  }
}
