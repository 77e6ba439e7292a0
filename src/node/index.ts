/**
 * The node agent (`kimg node`): static pod manifests in, the kubelet's image side out — pods' image
 * states (waiting reasons, pull progress, back-off), events, image GC, the CRI ImageService socket, and
 * an HTTP endpoint with Prometheus metrics, `/healthz`, a live status page and a JSON API that
 * `kimg get pods` / `kimg describe pod` read.
 *
 * Follows kubernetes `pkg/kubelet/config/file.go` (static pods), `pkg/kubelet/images`,
 * `pkg/kubelet/metrics/metrics.go`; see the module files for details.
 *
 * Failure codes: `CONFIG_INVALID`, `FILE_NOT_FOUND`, `CREDENTIAL_PROVIDER_CONFIG_INVALID`, store codes,
 * `INVALID_ARGUMENT` (listen address); clients: `AGENT_UNAVAILABLE`, `POD_NOT_FOUND`.
 */
export {
  startNodeAgent,
  type NodeAgent,
  type NodeAgentOptions,
  type NodeAgentClusterOptions,
} from './agent.js';
export type { AgentLogEntry, AgentLog, StoreSummary, GcRunSummary } from './types.js';
export {
  PodStateStore,
  podStatus,
  podReady,
  type PodView,
  type ContainerImageState,
  type ImageVolumeState,
  type LayerProgress,
  type NodeEvent,
  type PodStateStoreOptions,
} from './pod-state.js';
export { ManifestWatcher, type ManifestPod, type ManifestWatcherOptions } from './watcher.js';
export { NodeMetrics, imageSizeBucket, IMAGE_SIZE_BUCKETS, IMAGE_PULL_DURATION_BUCKETS } from './metrics.js';
export { startAgentHttpServer, parseHostPort, type AgentHttpServer, type AgentHttpSource } from './http.js';
export { STATUS_PAGE_HTML } from './status-page.js';
export { fetchAgentPods, fetchAgentPod, DEFAULT_AGENT_SERVER } from './client.js';
export { parsePrepullList, loadPrepullList, type PrepullImage, type PrepullState } from './prepull.js';
