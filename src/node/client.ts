/**
 * A client of the node agent's JSON API (`kimg get pods`, `kimg describe pod`): the pods, one pod with
 * its events. The agent's address is `--server`, `$KIMG_NODE_SERVER`, else `http://127.0.0.1:10259`.
 */
import { KimgError } from '../errors/index.js';
import type { NodeEvent, PodView } from './pod-state.js';

/** The agent's default address (the HTTP endpoint's default). */
export const DEFAULT_AGENT_SERVER = 'http://127.0.0.1:10259';

async function getJson(server: string, path: string): Promise<{ status: number; body: unknown }> {
  const url = `${server.replace(/\/+$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    throw new KimgError(
      'AGENT_UNAVAILABLE',
      `cannot reach the node agent at ${server}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}; is \`kimg node\` running (give its address with --server)?`,
      { input: server, cause: e },
    );
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch (e) {
    throw new KimgError(
      'AGENT_UNAVAILABLE',
      `the node agent at ${server} answered ${path} with something other than JSON (HTTP ${res.status})`,
      {
        input: server,
        cause: e,
      },
    );
  }
  return { status: res.status, body };
}

/** Every pod the agent knows. @throws KimgError `AGENT_UNAVAILABLE`. */
export async function fetchAgentPods(server: string): Promise<{ node: string; pods: PodView[] }> {
  const { status, body } = await getJson(server, '/api/pods');
  const b = body as { node?: string; pods?: PodView[] };
  if (status !== 200 || !Array.isArray(b.pods))
    throw new KimgError(
      'AGENT_UNAVAILABLE',
      `the node agent at ${server} answered /api/pods with HTTP ${status}`,
      {
        input: server,
      },
    );
  return { node: b.node ?? '', pods: b.pods };
}

/** One pod and its events. @throws KimgError `POD_NOT_FOUND`, `AGENT_UNAVAILABLE`. */
export async function fetchAgentPod(
  server: string,
  namespace: string,
  name: string,
): Promise<{ pod: PodView; events: NodeEvent[] }> {
  const { status, body } = await getJson(
    server,
    `/api/pods/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`,
  );
  if (status === 404)
    throw new KimgError('POD_NOT_FOUND', `pods "${name}" not found in namespace ${namespace}`, {
      input: name,
    });
  const b = body as { pod?: PodView; events?: NodeEvent[] };
  if (status !== 200 || b.pod === undefined)
    throw new KimgError('AGENT_UNAVAILABLE', `the node agent at ${server} answered with HTTP ${status}`, {
      input: server,
    });
  return { pod: b.pod, events: b.events ?? [] };
}
