/**
 * The pods bound to one node, as the kubelet's API source sees them (`pkg/kubelet/config/apiserver.go`:
 * a list + watch of pods with the field selector `spec.nodeName=<node>`). Only pods the scheduler has
 * bound to this node arrive; a pod created later is an `ADDED` event, an edit `MODIFIED`, a deletion
 * `DELETED`. See `informer.ts` for resume, relist and resync.
 */
import type { KubeClient } from './client.js';
import { KubeInformer, type InformerHandlers } from './informer.js';

/** Options of {@link nodePodInformer}. */
export interface NodePodInformerOptions extends InformerHandlers {
  client: KubeClient;
  nodeName: string;
  /** Re-deliver every cached pod this often (ms, 0 = never). Default 0. */
  resyncMs?: number;
  /** Server-side watch timeout (s). Default 300. */
  watchTimeoutSeconds?: number;
  /** First retry delay after a failure (ms). Default 800. */
  initialBackoffMs?: number;
}

/** An informer over the pods bound to `nodeName` (not started). */
export function nodePodInformer(options: NodePodInformerOptions): KubeInformer {
  const { nodeName, ...rest } = options;
  return new KubeInformer({ ...rest, resource: 'pods', fieldSelector: `spec.nodeName=${nodeName}` });
}
