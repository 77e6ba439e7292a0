/**
 * The pods' pull Secrets in the agent. Static pods cannot reference API objects, so their pull
 * Secrets and ServiceAccounts come from a directory of Kubernetes YAML (`secretsDir`), re-read at every
 * sync (a Secret written later is seen; an unreadable directory keeps the last objects read). Each
 * pod's Secrets are resolved at its sync and registered under its uid in the runtime's pod credential
 * resolver, where the image manager's lookup — the pod's Secrets, the node-wide docker config, the exec
 * plugins — finds them. Problems (a missing Secret) are logged once each.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  failedPullSecretNames,
  readKubernetesObjects,
  resolvePodPullSecrets,
  type KubeObject,
  type PodCredentials,
} from '../../credentials/index.js';
import { KimgError, toKimgError } from '../../errors/index.js';
import { STATIC_POD_OBJECTS_ORIGIN } from '../../manager/index.js';

/** Logs a warning once per distinct message. */
export type WarnOnce = (message: string, fields?: Record<string, unknown>) => void;

/** Where the objects of a secrets directory come from, in messages (`… is not in the secrets directory`). */
export const SECRETS_DIR_ORIGIN = STATIC_POD_OBJECTS_ORIGIN;

/**
 * Reads the Kubernetes objects of a secrets directory (`*.yaml`, `*.yml`, `*.json`, dot files skipped,
 * in name order); none without a directory. Each file is read on its own through the bounded reader
 * (a FIFO, a device or an oversized file is refused, not waited on): like the kubelet's file source, a
 * file that cannot be read or parsed is reported to `onFileProblem` and skipped, and the others are
 * used.
 * @throws KimgError `FILE_NOT_FOUND` (the directory cannot be read).
 */
export async function readSecretObjects(
  dir: string | undefined,
  onFileProblem: (message: string) => void,
): Promise<KubeObject[]> {
  if (dir === undefined) return [];
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.') && /\.(ya?ml|json)$/i.test(n)).sort();
  } catch (e) {
    throw new KimgError(
      'FILE_NOT_FOUND',
      `secrets directory ${dir} cannot be read: give an existing directory`,
      {
        file: dir,
        cause: e,
      },
    );
  }
  const out: KubeObject[] = [];
  for (const n of names) {
    try {
      out.push(...(await readKubernetesObjects([join(dir, n)])));
    } catch (e) {
      onFileProblem(`secrets directory: ${toKimgError(e).message}: the file is skipped`);
    }
  }
  return out;
}

/** The secrets directory over the runtime's credential resolver (see the module comment). */
export class AgentPodSecrets {
  constructor(
    private readonly credentials: PodCredentials,
    private readonly dir: string | undefined,
    private readonly warnOnce: WarnOnce,
  ) {}

  /** The objects last read (Secrets, ServiceAccounts, RuntimeClasses). */
  get objects(): readonly KubeObject[] {
    return this.credentials.objects;
  }

  /** Re-reads the directory; on failure warns once and keeps the objects read before. */
  async refresh(): Promise<void> {
    try {
      this.credentials.setObjects(await readSecretObjects(this.dir, (m) => this.warnOnce(m)));
    } catch (e) {
      this.warnOnce(toKimgError(e).message);
    }
  }

  /**
   * Resolves a pod's pull Secrets (or its ServiceAccount's) and registers them under its uid. Returns
   * the names of the Secrets that could not be retrieved or decoded (the pod's
   * `FailedToRetrieveImagePullSecret` event; an undecodable one also fails the pod's pulls).
   */
  resolvePod(uid: string, pod: Record<string, unknown>, fields: Record<string, unknown>): string[] {
    try {
      const secrets = resolvePodPullSecrets(pod, this.credentials.objects);
      for (const p of secrets.problems) this.warnOnce(p.message, fields);
      this.credentials.setPodSecrets(uid, secrets);
      return failedPullSecretNames(secrets);
    } catch (e) {
      this.warnOnce(toKimgError(e).message, fields);
      return [];
    }
  }

  /** Forgets a pod's Secrets (the pod is gone). */
  forgetPod(uid: string): void {
    this.credentials.forgetPod(uid);
  }
}
