/**
 * The node agent's Prometheus metrics (prom-client, one registry per agent), named as the kubelet and
 * containerd name them where they exist:
 * - `kubelet_image_pull_duration_seconds{image_size_in_bytes}`: histogram of successful pull times,
 *   labelled by the kubelet's image size bucket (`0-10MB`, `10MB-100MB`, … `GT100GB`);
 * - `kubelet_credential_provider_plugin_duration{plugin_name}` (histogram) and
 *   `kubelet_credential_provider_plugin_errors{plugin_name}` (counter): exec credential plugin runs;
 * - `kimg_image_pulls_in_progress` (gauge), `kimg_image_pull_errors_total{reason}` (counter; the
 *   error code, e.g. `NOT_FOUND`, `UNAUTHORIZED`), `kimg_image_pulls_total`;
 * - `kimg_image_gc_reclaimed_bytes_total` (blob sweep after image GC), besides the GC manager's own
 *   `kimg_image_garbage_collected_{total,bytes_total}{reason}`;
 * - `kimg_pods{status}`: pods by kubectl STATUS;
 * - `kimg_image_pull_progress_bytes` and `kimg_image_pull_progress_total_bytes` (gauges): bytes
 *   present and expected, summed over the blobs of every in-flight pull, read from the pull progress
 *   hub at scrape time (per image and per layer in the progress stream, not in labels).
 * No label ever carries an image name, a URL, a query or a credential: labels are bounded sets.
 *
 * Source: kubernetes `pkg/kubelet/metrics/metrics.go` (ImagePullDuration, GetImageSizeBucket),
 * `pkg/credentialprovider/plugin/metrics.go`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PullProgressHub } from '../pull/index.js';

const MB = 1024 * 1024;
const GB = 1024 * MB;

/** The kubelet's image size buckets (lower bound exclusive, label). */
export const IMAGE_SIZE_BUCKETS: readonly { lowerBound: number; label: string }[] = Object.freeze([
  { lowerBound: 0, label: '0-10MB' },
  { lowerBound: 10 * MB, label: '10MB-100MB' },
  { lowerBound: 100 * MB, label: '100MB-500MB' },
  { lowerBound: 500 * MB, label: '500MB-1GB' },
  { lowerBound: 1 * GB, label: '1GB-5GB' },
  { lowerBound: 5 * GB, label: '5GB-10GB' },
  { lowerBound: 10 * GB, label: '10GB-20GB' },
  { lowerBound: 20 * GB, label: '20GB-30GB' },
  { lowerBound: 30 * GB, label: '30GB-40GB' },
  { lowerBound: 40 * GB, label: '40GB-60GB' },
  { lowerBound: 60 * GB, label: '60GB-100GB' },
  { lowerBound: 100 * GB, label: 'GT100GB' },
]);

/** The kubelet's pull duration buckets, in seconds. */
export const IMAGE_PULL_DURATION_BUCKETS: readonly number[] = Object.freeze([
  1, 5, 10, 20, 30, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
]);

/** kubelet `GetImageSizeBucket`: the label for an image of `bytes` (`N/A` for 0). */
export function imageSizeBucket(bytes: number): string {
  if (!(bytes > 0)) return 'N/A';
  for (let i = IMAGE_SIZE_BUCKETS.length - 1; i >= 0; i--) {
    const b = IMAGE_SIZE_BUCKETS[i]!;
    if (bytes > b.lowerBound) return b.label;
  }
  return '0-10MB';
}

/** The agent's metrics (see the module comment). */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly pullDuration: Histogram<'image_size_in_bytes'>;
  readonly pullsInProgress: Gauge;
  readonly pullsTotal: Counter;
  readonly pullErrors: Counter<'reason'>;
  readonly gcReclaimedBytes: Counter;
  readonly pluginDuration: Histogram<'plugin_name'>;
  readonly pluginErrors: Counter<'plugin_name'>;
  readonly pods: Gauge<'status'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.pullDuration = new Histogram({
      name: 'kubelet_image_pull_duration_seconds',
      help: 'Duration in seconds to pull an image.',
      labelNames: ['image_size_in_bytes'],
      buckets: [...IMAGE_PULL_DURATION_BUCKETS],
      registers,
    });
    this.pullsInProgress = new Gauge({
      name: 'kimg_image_pulls_in_progress',
      help: 'Image pulls in progress.',
      registers,
    });
    this.pullsTotal = new Counter({
      name: 'kimg_image_pulls_total',
      help: 'Image pulls that succeeded.',
      registers,
    });
    this.pullErrors = new Counter({
      name: 'kimg_image_pull_errors_total',
      help: 'Image pulls that failed, by error code (NOT_FOUND, UNAUTHORIZED, REGISTRY_UNAVAILABLE, ...).',
      labelNames: ['reason'],
      registers,
    });
    this.gcReclaimedBytes = new Counter({
      name: 'kimg_image_gc_reclaimed_bytes_total',
      help: 'Bytes of blobs freed by the store sweep after image garbage collection.',
      registers,
    });
    this.pluginDuration = new Histogram({
      name: 'kubelet_credential_provider_plugin_duration',
      help: 'Duration of execution in seconds for credential provider plugin',
      labelNames: ['plugin_name'],
      registers,
    });
    this.pluginErrors = new Counter({
      name: 'kubelet_credential_provider_plugin_errors',
      help: 'Number of errors from credential provider plugin',
      labelNames: ['plugin_name'],
      registers,
    });
    this.pods = new Gauge({
      name: 'kimg_pods',
      help: 'Pods known to the node agent, by status (kubectl STATUS column).',
      labelNames: ['status'],
      registers,
    });
  }

  /** A successful pull of `bytes` that took `seconds`. */
  observePull(seconds: number, bytes: number): void {
    this.pullDuration.observe({ image_size_in_bytes: imageSizeBucket(bytes) }, seconds);
    this.pullsTotal.inc();
  }

  /** Sets the pod counts (every status seen so far is reset first). */
  setPodStatuses(statuses: readonly string[]): void {
    this.pods.reset();
    for (const s of statuses) this.pods.inc({ status: s });
  }

  /** Reports `hub`'s in-flight pulls in the progress gauges (once per agent). */
  trackPullProgress(hub: PullProgressHub): void {
    registerPullProgressMetrics(this.registry, hub);
  }

  /** The exposition text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * Registers `kimg_image_pull_progress_bytes` and `kimg_image_pull_progress_total_bytes` on
 * `registry`, read from `hub` at each scrape (no label: the image names stay out of the metrics).
 */
export function registerPullProgressMetrics(registry: Registry, hub: PullProgressHub): void {
  const sum = (field: 'progress' | 'total'): number => hub.inFlight().reduce((n, p) => n + p[field], 0);
  new Gauge({
    name: 'kimg_image_pull_progress_bytes',
    help: 'Bytes present of the blobs of image pulls in progress (downloaded, resumed or reused).',
    registers: [registry],
    collect() {
      this.set(sum('progress'));
    },
  });
  new Gauge({
    name: 'kimg_image_pull_progress_total_bytes',
    help: 'Bytes expected of the blobs of image pulls in progress (known once each manifest is resolved).',
    registers: [registry],
    collect() {
      this.set(sum('total'));
    },
  });
}
