/**
 * The pre-puller's list: images to have on the node before any pod asks for them (the concept page's
 * point about pre-pulled images for static pods). A YAML or JSON file holding either a list or
 * `{images: [...]}`; each entry is an image string or `{image, platform?, secret?}` where `platform`
 * is `os/arch[/variant]` and `secret` names a pull Secret (in the agent's secrets directory, namespace
 * `default`). Every problem is reported at once (`CONFIG_INVALID`, `details.items`).
 *
 * The agent pulls these after its pods' pulls (lower priority), through the same image manager — the
 * same puller queue, credentials, pull records and events — with `IfNotPresent`, and keeps them as in
 * use for image GC while they are listed.
 */
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { KimgError } from '../errors/index.js';
import { parsePlatform } from '../platform/index.js';
import { applyDefaultTag } from '../reference/index.js';

/** One image to pre-pull. */
export interface PrepullImage {
  image: string;
  /** `os/arch[/variant]`; default the node's platform. */
  platform?: string;
  /** A pull Secret's name (namespace `default`) from the secrets directory. */
  secret?: string;
}

/** The state of one pre-pull (served on `/api/prepull`). */
export interface PrepullState extends PrepullImage {
  state: 'Pending' | 'Pulling' | 'Present' | 'Failed';
  /** The image id once present. */
  imageRef: string;
  /** The waiting reason / failure message. */
  reason: string;
  message: string;
  /** The failure's error code (`NOT_FOUND`, `UNAUTHORIZED`, …). */
  code?: string;
}

/**
 * Parses a pre-pull list (see the module comment).
 * @throws KimgError `CONFIG_INVALID` listing every problem.
 */
export function parsePrepullList(text: string, file = '<input>'): PrepullImage[] {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const problems: string[] = [];
  let data: unknown;
  for (const d of list) {
    if (d.errors.length > 0) {
      throw new KimgError('CONFIG_INVALID', `${file} is not valid YAML/JSON: ${d.errors[0]?.message ?? ''}`, {
        file,
      });
    }
    const js: unknown = d.toJS();
    if (js === null || js === undefined) continue;
    if (data !== undefined) problems.push(`${file}: one document expected`);
    data = js;
  }
  const entries: unknown =
    typeof data === 'object' && data !== null && !Array.isArray(data)
      ? (data as { images?: unknown }).images
      : data;
  if (!Array.isArray(entries)) {
    throw new KimgError(
      'CONFIG_INVALID',
      `${file}: expected a list of images (or {images: [...]}), each an image or {image, platform, secret}`,
      { file },
    );
  }
  const out: PrepullImage[] = [];
  entries.forEach((e: unknown, i) => {
    const where = `${file}: images[${i}]`;
    const entry: Record<string, unknown> =
      typeof e === 'string'
        ? { image: e }
        : typeof e === 'object' && e !== null
          ? (e as Record<string, unknown>)
          : {};
    for (const k of Object.keys(entry)) {
      if (!['image', 'platform', 'secret'].includes(k))
        problems.push(`${where}: unknown field ${JSON.stringify(k)}`);
    }
    const image = entry.image;
    if (typeof image !== 'string' || image === '') {
      problems.push(`${where}: image must be a non-empty string`);
      return;
    }
    try {
      applyDefaultTag(image);
    } catch (err) {
      problems.push(
        `${where}: ${JSON.stringify(image)} is not a valid image name (${(err as Error).message})`,
      );
    }
    const item: PrepullImage = { image };
    if (entry.platform !== undefined) {
      if (typeof entry.platform !== 'string')
        problems.push(`${where}: platform must be a string like linux/arm64`);
      else {
        try {
          parsePlatform(entry.platform);
          item.platform = entry.platform;
        } catch (err) {
          problems.push(`${where}: platform ${JSON.stringify(entry.platform)}: ${(err as Error).message}`);
        }
      }
    }
    if (entry.secret !== undefined) {
      if (typeof entry.secret !== 'string' || entry.secret === '')
        problems.push(`${where}: secret must be the name of a pull Secret`);
      else item.secret = entry.secret;
    }
    out.push(item);
  });
  if (problems.length > 0) {
    throw new KimgError(
      'CONFIG_INVALID',
      `${file} is not a valid pre-pull list:\n  ${problems.join('\n  ')}`,
      {
        file,
        items: problems,
      },
    );
  }
  return out;
}

/** Reads a pre-pull list file. @throws KimgError `FILE_NOT_FOUND`, `CONFIG_INVALID`. */
export async function loadPrepullList(file: string): Promise<PrepullImage[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new KimgError('FILE_NOT_FOUND', `pre-pull list ${file} cannot be read: give an existing file`, {
      file,
      cause: e,
    });
  }
  return parsePrepullList(text, file);
}
