/**
 * The pre-puller's list: images to have on the node before any pod asks for them (the concept page's
 * point about pre-pulled images for static pods). A YAML or JSON file holding either a list or
 * `{images: [...]}`; each entry is an image string or `{image, platform?, secret?}` where `platform`
 * is `os/arch[/variant]` and `secret` names a pull Secret in the agent's secrets directory as
 * `namespace/name` (or `name` in namespace `default`). Every problem is reported at once
 * (`CONFIG_INVALID`, `details.items`).
 *
 * Under `NeverVerifyPreloadedImages` a pre-pulled image is not "preloaded": the pre-pull goes through
 * the image manager, so its pull intent and pulled record carry the credentials it was pulled with. An
 * image pre-pulled anonymously is recorded as pulled without credentials (every pod may use it, as any
 * pod could have pulled it); one pre-pulled with a Secret is recorded with that Secret, so a later pod
 * must hold the same credentials or pull again to prove access — the choice a node operator would
 * expect from an image that needed a Secret (docs/deliberate-differences.md).
 *
 * The agent pulls these after its pods' pulls (lower priority), through the same image manager — the
 * same puller queue, credentials, pull records and events — with `IfNotPresent`, and keeps them as in
 * use for image GC while they are listed.
 */
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { KimgError } from '../errors/index.js';
import { validatePrepullEntries, type PrepullImage } from '../config/index.js';

export type { PrepullImage };

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
  const out = validatePrepullEntries(entries, `${file}: images`, problems);
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
