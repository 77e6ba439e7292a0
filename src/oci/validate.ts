/**
 * The one set of rules for what a manifest, an index, a descriptor and a config may be — applied by the
 * registry client when it fetches, by the store when it reads its own layout, by `kimg load` and by
 * `kimg store verify`. What the pull accepts, the store can read; what `save` writes, `load` takes.
 *
 * Limits: manifests and indexes are capped at containerd's `4*1048*1048` bytes
 * (containerd/containerd `core/remotes/docker/fetcher.go` `maxManifestSize`), so kimg accepts exactly
 * what containerd accepts. Configs have the same cap, checked against the descriptor before any byte is
 * downloaded. Descriptor sizes are JSON integers as Go's decoder reads them into `int64`: no fraction,
 * no exponent (`6.5536e4` is refused, as image-spec's Go types refuse it).
 */

/** The largest manifest or index kimg fetches, stores or loads (containerd's cap). */
export const MAX_MANIFEST_BYTES = 4 * 1048 * 1048;
/** The largest image config kimg fetches, stores or loads (the manifest cap). */
export const MAX_CONFIG_BYTES = MAX_MANIFEST_BYTES;

const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * What is wrong with a descriptor, or undefined: an object with a non-empty `mediaType`, a supported
 * lowercase digest, a non-negative safe-integer `size`, `annotations` mapping strings to strings and
 * a `platform` object with string `os` and `architecture`. `where` names it (`layers[2]`).
 */
export function descriptorProblem(v: unknown, where: string): string | undefined {
  if (!isObject(v)) return `${where} is not an object`;
  if (typeof v.mediaType !== 'string' || v.mediaType === '') return `${where}.mediaType is missing`;
  if (typeof v.digest !== 'string' || !DIGEST.test(v.digest))
    return `${where}.digest is missing or not a sha256/sha384/sha512 digest`;
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0)
    return `${where}.size is not a non-negative integer`;
  if (v.annotations !== undefined) {
    if (!isObject(v.annotations) || Object.values(v.annotations).some((x) => typeof x !== 'string'))
      return `${where}.annotations must map strings to strings`;
  }
  if (
    v.platform !== undefined &&
    (!isObject(v.platform) ||
      typeof v.platform.os !== 'string' ||
      typeof v.platform.architecture !== 'string')
  ) {
    return `${where}.platform needs os and architecture`;
  }
  return undefined;
}

/**
 * What is wrong with a manifest (`isIndex` false) or an index document, or undefined: schemaVersion 2,
 * every descriptor valid (`config`, `layers[]` or `manifests[]`), annotations strings.
 */
export function manifestDocumentProblem(v: unknown, isIndex: boolean): string | undefined {
  if (!isObject(v)) return 'not a JSON object';
  if (v.schemaVersion !== 2) return `schemaVersion is ${JSON.stringify(v.schemaVersion)}, expected 2`;
  if (v.annotations !== undefined) {
    if (!isObject(v.annotations) || Object.values(v.annotations).some((x) => typeof x !== 'string'))
      return 'annotations must map strings to strings';
  }
  if (isIndex) {
    if (!Array.isArray(v.manifests)) return 'manifests is not an array';
    for (const [i, d] of v.manifests.entries()) {
      const p = descriptorProblem(d, `manifests[${i}]`);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  const c = descriptorProblem(v.config, 'config');
  if (c !== undefined) return c;
  if (!Array.isArray(v.layers)) return 'layers is not an array';
  for (const [i, d] of v.layers.entries()) {
    const p = descriptorProblem(d, `layers[${i}]`);
    if (p !== undefined) return p;
  }
  return undefined;
}

/**
 * What is wrong with the `size` numbers of a JSON text, or undefined. `JSON.parse` reads `6.5536e4` and
 * `65536.0` as 65536; Go's decoder refuses both for an `int64` field, so kimg refuses them too. Only
 * `"size"` keys are looked at: a key cannot appear inside a JSON string without escaped quotes.
 */
export function jsonSizeProblem(text: string): string | undefined {
  const re = /"size"\s*:\s*(-?[0-9][0-9.eE+-]*)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const n = m[1] ?? '';
    if (!/^-?(?:0|[1-9][0-9]*)$/.test(n)) return `size ${n} is not an integer (no fraction, no exponent)`;
  }
  return undefined;
}
