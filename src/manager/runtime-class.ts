/**
 * A pod's runtime handler from its `runtimeClassName` (the kubelet's RuntimeClass lookup): the
 * RuntimeClass object's `handler` when the manifests have it, else the class name itself. With the
 * `RuntimeClassInImageCriApi` gate on, images are keyed by (image, handler).
 */

/** The parts of a Kubernetes object the lookup reads (`KubeObject` from src/credentials fits). */
export interface RuntimeClassSource {
  kind: string;
  name: string;
  object: Record<string, unknown>;
}

/** The pod's runtime handler, or undefined when it names no runtime class (the default runtime). */
export function runtimeHandlerFor(
  pod: Record<string, unknown>,
  objects: readonly RuntimeClassSource[],
): string | undefined {
  const spec = (pod.spec ?? {}) as Record<string, unknown>;
  const className = spec.runtimeClassName;
  if (typeof className !== 'string' || className === '') return undefined;
  const rc = objects.find((o) => o.kind === 'RuntimeClass' && o.name === className);
  const handler = rc?.object.handler;
  return typeof handler === 'string' && handler !== '' ? handler : className;
}
