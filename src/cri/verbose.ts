/**
 * The `info` map of a verbose CRI ImageStatus, in containerd's shape: one key `info` whose value is the
 * JSON document `{"chainID": "...", "imageSpec": <the OCI image config>}` (containerd
 * `pkg/cri/server/image_status.go`, `toCRIImageInfo` and `verboseImageInfo`). The same answer for
 * images in kimg's store ({@link storeVerboseInfo}) and in containerd's ({@link configVerboseInfo} over
 * the containerd image service's config reader).
 *
 * The chain id is the OCI image-spec ChainID of the config's `rootfs.diff_ids` (`config.md`, "Layer
 * ChainID"): ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
 *
 * `imageSpec` is not the config blob as stored: containerd decodes the blob into the image-spec's Go
 * `Image` struct and encodes that again. {@link goImageSpecJson} renders a config the same way, so
 * kimg's `info` is byte for byte containerd's (checked against containerd 1.6 by the CRI differential
 * suites):
 * - only the image-spec fields, in the struct's order: fields outside the spec (Docker's `container`,
 *   `container_config`, `docker_version`, `config.Hostname`, `config.Healthcheck` …) are dropped;
 *   JSON keys match field names case-insensitively, the last one in the document wins;
 * - empty optional fields are left out; `architecture`, `os`, `config`, `rootfs`, `rootfs.type` and
 *   `rootfs.diff_ids` always appear (`config: {}`, `diff_ids: null` when absent);
 * - map keys (`ExposedPorts`, `Volumes`, `Labels`) are sorted by their bytes;
 * - timestamps are RFC 3339 with the fraction trimmed of trailing zeros and `Z` for a zero offset;
 * - strings escape `<`, `>`, `&`, U+2028 and U+2029 as `\u00XX`, and backspace and form feed as
 *   `\u0008` / `\u000c`, as Go's encoder (before Go 1.22) writes them.
 * A value of the wrong JSON type or a timestamp that is not RFC 3339, either of which makes containerd
 * refuse the whole image, is left out here.
 */
import { createHash } from 'node:crypto';
import type { ImageInfo, ImageSpec } from '../manager/index.js';
import type { Store } from '../store/index.js';
import { MAX_CONFIG_BYTES } from '../oci/index.js';

/** OCI ChainID of a list of layer diff ids ('' for none). */
export function chainId(diffIds: readonly string[]): string {
  let chain = '';
  for (const d of diffIds) {
    chain = chain === '' ? d : `sha256:${createHash('sha256').update(`${chain} ${d}`).digest('hex')}`;
  }
  return chain;
}

/** A `verboseInfo` callback of `startCriServer`. */
export type VerboseInfo = (image: ImageInfo, spec: ImageSpec) => Promise<Record<string, string>>;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value Go's decoder assigns to field `name`: the last key equal to it ignoring case. */
function field(obj: Json, name: string): unknown {
  let value: unknown;
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k === name || k.toLowerCase() === lower) value = obj[k];
  return value;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A JSON string as Go's encoding/json writes it (see the module comment). */
function goString(s: string): string {
  return JSON.stringify(s.replace(LONE_SURROGATE, '\ufffd')).replace(/\\.|[<>&\u2028\u2029]/g, (m) =>
    m === '\\b'
      ? '\\u0008'
      : m === '\\f'
        ? '\\u000c'
        : m.length === 1
          ? `\\u${m.charCodeAt(0).toString(16).padStart(4, '0')}`
          : m,
  );
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * A timestamp as Go's `time.Time` encodes it after decoding (RFC3339Nano); undefined for text Go's
 * decoder refuses (left out, as every value containerd could not decode).
 */
function goTime(s: string): string | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const frac = (m[2] ?? '').slice(0, 9).replace(/0+$/, '');
  const zone = m[3] === '+00:00' || m[3] === '-00:00' ? 'Z' : m[3]!;
  return `${m[1]!}${frac === '' ? '' : `.${frac}`}${zone}`;
}

/** Members of a JSON object in order, without the left-out ones, as `"key":value`. */
function members(entries: ReadonlyArray<readonly [string, string | undefined]>): string {
  const kept = entries.filter((e): e is readonly [string, string] => e[1] !== undefined);
  return `{${kept.map(([k, v]) => `${goString(k)}:${v}`).join(',')}}`;
}

function str(v: unknown, keepEmpty = false): string | undefined {
  return typeof v === 'string' && (keepEmpty || v !== '') ? goString(v) : keepEmpty ? '""' : undefined;
}

function time(v: unknown): string | undefined {
  const t = typeof v === 'string' ? goTime(v) : undefined;
  return t !== undefined ? goString(t) : undefined;
}

function bool(v: unknown): string | undefined {
  return v === true ? 'true' : undefined;
}

function strings(v: unknown, keepEmpty = false): string | undefined {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return keepEmpty ? 'null' : undefined;
  if (v.length === 0 && !keepEmpty) return undefined;
  return `[${(v as string[]).map(goString).join(',')}]`;
}

/** A Go map's keys: sorted by their UTF-8 bytes. */
function sortedKeys(obj: Json): string[] {
  return Object.keys(obj).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** `map[string]struct{}`: each key with `{}`. */
function set(v: unknown): string | undefined {
  if (!isObject(v)) return undefined;
  const keys = sortedKeys(v).filter((k) => v[k] === null || isObject(v[k]));
  return keys.length === 0 ? undefined : `{${keys.map((k) => `${goString(k)}:{}`).join(',')}}`;
}

/** `map[string]string` (a JSON null value decodes to ""). */
function labels(v: unknown): string | undefined {
  if (!isObject(v)) return undefined;
  const keys = sortedKeys(v).filter((k) => v[k] === null || typeof v[k] === 'string');
  if (keys.length === 0) return undefined;
  return `{${keys.map((k) => `${goString(k)}:${goString((v[k] as string | null) ?? '')}`).join(',')}}`;
}

function imageConfig(v: unknown): string {
  const c = isObject(v) ? v : {};
  const f = (name: string): unknown => field(c, name);
  return members([
    ['User', str(f('User'))],
    ['ExposedPorts', set(f('ExposedPorts'))],
    ['Env', strings(f('Env'))],
    ['Entrypoint', strings(f('Entrypoint'))],
    ['Cmd', strings(f('Cmd'))],
    ['Volumes', set(f('Volumes'))],
    ['WorkingDir', str(f('WorkingDir'))],
    ['Labels', labels(f('Labels'))],
    ['StopSignal', str(f('StopSignal'))],
    ['ArgsEscaped', bool(f('ArgsEscaped'))],
  ]);
}

function history(v: unknown): string | undefined {
  if (!Array.isArray(v) || v.length === 0 || !v.every((h) => h === null || isObject(h))) return undefined;
  const one = (h: Json | null): string => {
    const f = (name: string): unknown => (h === null ? undefined : field(h, name));
    return members([
      ['created', time(f('created'))],
      ['created_by', str(f('created_by'))],
      ['author', str(f('author'))],
      ['comment', str(f('comment'))],
      ['empty_layer', bool(f('empty_layer'))],
    ]);
  };
  return `[${(v as Array<Json | null>).map(one).join(',')}]`;
}

/**
 * The image config `config` as containerd's CRI plugin renders it in a verbose ImageStatus (the
 * image-spec Go struct encoded again; see the module comment).
 */
export function goImageSpecJson(config: Json): string {
  const f = (name: string): unknown => field(config, name);
  const rootfs = f('rootfs');
  const r = isObject(rootfs) ? rootfs : {};
  return members([
    ['created', time(f('created'))],
    ['author', str(f('author'))],
    ['architecture', str(f('architecture'), true)],
    ['variant', str(f('variant'))],
    ['os', str(f('os'), true)],
    ['os.version', str(f('os.version'))],
    ['os.features', strings(f('os.features'))],
    ['config', imageConfig(f('config'))],
    [
      'rootfs',
      members([
        ['type', str(field(r, 'type'), true)],
        ['diff_ids', strings(field(r, 'diff_ids'), true)],
      ]),
    ],
    ['history', history(f('history'))],
  ]);
}

/**
 * The verbose `info` map of an image whose config blob is `configBytes`: `{info: {chainID, imageSpec}}`
 * as containerd answers it; empty when the blob is not a JSON object (containerd cannot load such an
 * image at all).
 */
export function verboseInfoFromConfig(configBytes: Buffer | string): Record<string, string> {
  let config: unknown;
  try {
    config = JSON.parse(typeof configBytes === 'string' ? configBytes : configBytes.toString('utf8'));
  } catch {
    return {};
  }
  if (!isObject(config)) return {};
  const rootfs = field(config, 'rootfs');
  const diffIds = isObject(rootfs) ? field(rootfs, 'diff_ids') : undefined;
  const ids = Array.isArray(diffIds) ? diffIds.filter((d): d is string => typeof d === 'string') : [];
  return { info: `{"chainID":${goString(chainId(ids))},"imageSpec":${goImageSpecJson(config)}}` };
}

/**
 * A `verboseInfo` callback for `startCriServer` over any store that reads an image's config blob by
 * the image id (its config digest), e.g. the containerd image service's `readImageConfig`.
 * @throws whatever `readConfig` throws (the server answers the call with that error).
 */
export function configVerboseInfo(readConfig: (id: string) => Promise<Buffer>): VerboseInfo {
  return async (image) => verboseInfoFromConfig(await readConfig(image.id));
}

/**
 * A `verboseInfo` callback for `startCriServer` reading the image's config (its id) from `store`.
 * @throws KimgError store codes (`BLOB_NOT_FOUND`, `STORE_IO`) when the config cannot be read.
 */
export function storeVerboseInfo(store: Store): VerboseInfo {
  return configVerboseInfo((id) => store.content.readBlob(id, { maxBytes: MAX_CONFIG_BYTES }));
}
