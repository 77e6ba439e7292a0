/**
 * Forcing image GC in a test without filling a disk: a kubelet configuration whose ages make every
 * image unused for 1 s collectable once GC has run for 1 s, the wait past that age, and `kimg gc -o json`
 * read back as image id → `action:reason`.
 */

/** Image GC forced by age: anything unused for 1 s goes once GC has run for 1 s; usage never triggers. */
export const FORCED_GC_CONFIG: readonly string[] = [
  'apiVersion: kubelet.config.k8s.io/v1beta1',
  'kind: KubeletConfiguration',
  'imageGCHighThresholdPercent: 100',
  'imageGCLowThresholdPercent: 99',
  // The kubelet wants the maximum age above the minimum (default 2m; 0 also means 2m).
  'imageMinimumGCAge: 1ms',
  'imageMaximumGCAge: 1s',
];

/** Past the 1 s maximum age (real time: the CLI and the agent read the system clock). */
export const pastMaxAge = (): Promise<void> => new Promise((r) => setTimeout(r, 1100));

/** An image pushed for a GC test. */
export interface PushedImage {
  ref: string;
  /** The config digest: the image id containerd's CRI reports. */
  id: string;
}

/** `kimg gc -o json`'s document (the parts the tests read). */
export interface GcDocument {
  images: { id: string; action: string; reason: string }[];
  unmatched: { inUse: string[] };
  error: string | null;
}

/** Each image's `action:reason` by id. */
export function gcActions(doc: GcDocument): Record<string, string> {
  return Object.fromEntries(doc.images.map((i) => [i.id, `${i.action}:${i.reason}`]));
}
