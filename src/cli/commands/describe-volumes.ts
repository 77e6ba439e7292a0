/**
 * The `Volumes:` block of `kimg describe pod` for a pod's image volumes, as `kubectl describe pod`
 * prints an image volume (`Type: Image (a container image or OCI artifact)`, `Reference`,
 * `PullPolicy`), plus what the node agent knows: the manifest digest materialised, where, the state
 * while waiting (reason, message, back-off) and an artifact's files.
 *
 * Source: kubectl `pkg/describe/describe.go` (printImageVolumeSource).
 */
import type { ImageVolumeState } from '../../node/index.js';
import { humanDuration } from './ensure.js';

/** The block; '' for a pod without image volumes. */
export function describeImageVolumes(
  volumes: readonly ImageVolumeState[] | undefined,
  nowMs: number,
): string {
  if (volumes === undefined || volumes.length === 0) return '';
  const kv = (k: string, v: string, indent = '    '): string =>
    `${indent}${(k + ':').padEnd(Math.max(16 - indent.length, k.length + 2))}${v}\n`;
  let out = 'Volumes:\n';
  for (const v of volumes) {
    out += `  ${v.name}:\n`;
    out += kv('Type', 'Image (a container image or OCI artifact)');
    out += kv('Reference', v.reference);
    out += kv('PullPolicy', v.pullPolicy);
    out += kv('Digest', v.digest === '' ? '<none>' : v.digest);
    if (v.state === 'Ready') {
      out += kv('State', v.kind === 'artifact' ? 'Materialized (artifact)' : 'Materialized (image)');
      if (v.path !== undefined) out += kv('Path', `${v.path} (read-only)`);
      if (v.files !== undefined && v.files.length > 0) out += kv('Files', v.files.join(', '));
    } else {
      out += kv('State', 'Waiting');
      out += kv('Reason', v.reason || 'Pending', '      ');
      if (v.message !== '') out += kv('Message', v.message, '      ');
    }
    if (v.nextRetryAt !== undefined)
      out += kv(
        'Next Retry',
        `${new Date(v.nextRetryAt).toISOString()} (in ${humanDuration(Math.max(0, v.nextRetryAt - nowMs))})`,
      );
    if (v.lastError !== undefined) out += kv('Last Error', v.lastError);
  }
  return out;
}
