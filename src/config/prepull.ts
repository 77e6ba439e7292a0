/**
 * Pre-pull entries: images the node agent pulls ahead of pods, at lower priority, through the
 * same queue, credentials and records. They come from a `kimg prepull -f FILE` list or the `prepull:`
 * list of the node config's kimg section; both are validated here, every problem listed.
 */
import { parsePlatform } from '../platform/index.js';
import { applyDefaultTag } from '../reference/index.js';

/** One image to pre-pull. */
export interface PrepullImage {
  image: string;
  /** `os/arch[/variant]`; default the node's platform. */
  platform?: string;
  /**
   * A pull Secret from the secrets directory: `namespace/name`, or `name` in namespace `default`. The
   * pre-pull runs as a pod of that namespace (pods use pull Secrets of their own namespace only).
   */
  secret?: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * A pre-pull secret reference, `namespace/name` or `name` (namespace `default`); undefined when it is
 * neither (the namespace must be a DNS label, the name a DNS subdomain, as the API server requires).
 */
export function parseSecretRef(ref: string): { namespace: string; name: string } | undefined {
  const parts = ref.split('/');
  if (parts.length > 2) return undefined;
  const [namespace, name] = parts.length === 2 ? [parts[0]!, parts[1]!] : ['default', parts[0]!];
  if (namespace.length > 63 || !DNS_LABEL.test(namespace)) return undefined;
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) return undefined;
  return { namespace, name };
}

/**
 * Validates a list of pre-pull entries (each an image string or `{image, platform, secret}`), pushing
 * one message per problem (prefixed with `where[i]`) and returning the valid entries.
 */
export function validatePrepullEntries(
  entries: readonly unknown[],
  where: string,
  problems: string[],
): PrepullImage[] {
  const out: PrepullImage[] = [];
  entries.forEach((e: unknown, i) => {
    const at = `${where}[${i}]`;
    const entry: Record<string, unknown> =
      typeof e === 'string'
        ? { image: e }
        : typeof e === 'object' && e !== null
          ? (e as Record<string, unknown>)
          : {};
    for (const k of Object.keys(entry)) {
      if (!['image', 'platform', 'secret'].includes(k))
        problems.push(`${at}: unknown field ${JSON.stringify(k)}`);
    }
    const image = entry.image;
    if (typeof image !== 'string' || image === '') {
      problems.push(`${at}: image must be a non-empty string`);
      return;
    }
    try {
      applyDefaultTag(image);
    } catch (err) {
      problems.push(`${at}: ${JSON.stringify(image)} is not a valid image name (${(err as Error).message})`);
    }
    const item: PrepullImage = { image };
    if (entry.platform !== undefined) {
      if (typeof entry.platform !== 'string')
        problems.push(`${at}: platform must be a string like linux/arm64`);
      else {
        try {
          parsePlatform(entry.platform);
          item.platform = entry.platform;
        } catch (err) {
          problems.push(`${at}: platform ${JSON.stringify(entry.platform)}: ${(err as Error).message}`);
        }
      }
    }
    if (entry.secret !== undefined) {
      if (typeof entry.secret !== 'string' || parseSecretRef(entry.secret) === undefined)
        problems.push(
          `${at}: secret ${JSON.stringify(entry.secret)} must name a pull Secret as namespace/name or name (namespace default)`,
        );
      else item.secret = entry.secret;
    }
    out.push(item);
  });
  return out;
}
