/**
 * Loading kimg's node configuration: a kubelet configuration file (the same file the node's kubelet
 * reads) plus kimg's own settings.
 *
 * Where kimg's settings go. The kubelet decodes `KubeletConfiguration` strictly first and, for
 * v1beta1, falls back to lenient decoding with a logged warning when a field is unknown; so a top-level
 * `kimg:` key in the kubelet's file is tolerated by the kubelet and read by kimg:
 *
 * ```yaml
 * apiVersion: kubelet.config.k8s.io/v1beta1
 * kind: KubeletConfiguration
 * serializeImagePulls: false
 * maxParallelImagePulls: 3
 * kimg:
 *   rootDir: /var/lib/kimg
 *   defaultRegistry: docker.io
 *   hostsDir: /etc/containerd/certs.d
 *   imageCredentialProviderConfig: /etc/kubernetes/credential-providers.yaml
 *   imageCredentialProviderBinDir: /usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec
 *   serviceAccountTokenDir: /var/run/kimg/sa-tokens
 *   listen:
 *     cri: unix:///run/kimg/kimg.sock
 *     metrics: 127.0.0.1:10259
 *   containerd:                 # optional: pull into containerd's store instead of kimg's own
 *     address: /run/containerd/containerd.sock
 *     namespace: k8s.io
 *     snapshotter: overlayfs
 *     directWrite: true         # blob bytes into containerd's content directory when writable
 *     localApply: false         # true: kimg extracts layers into the overlayfs snapshotter (root, same host)
 * ```
 *
 * Where the kubelet's file must stay untouched, the same settings go in a sibling file
 * `{apiVersion: config.kimg.io/v1alpha1, kind: KimgConfiguration, rootDir: …}` passed next to it.
 *
 * Rules: YAML (1.1, as the kubelet's `sigs.k8s.io/yaml`) or JSON; one document per file; relative
 * paths are resolved against the file's directory (as the kubelet does for `staticPodPath`); unknown
 * kubelet fields are notices, unknown `kimg` fields are problems (kimg's schema is strict); ALL problems
 * are reported at once in one `CONFIG_INVALID` error (`details.items`, `details.file`).
 */
import { validatePrepullEntries, type PrepullImage } from './prepull.js';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KimgError, quote } from '../errors/index.js';
import { parseReference } from '../reference/index.js';
import {
  KUBELET_CONFIG_API_VERSION,
  KUBELET_CONFIG_KIND,
  decodeKubeletImageConfig,
  defaultKubeletImageConfig,
  readString,
  type DecodeContext,
  type KubeletImageConfig,
} from './kubelet-config.js';

/** The sibling file's API version and kind. */
export const KIMG_CONFIG_API_VERSION = 'config.kimg.io/v1alpha1';
export const KIMG_CONFIG_KIND = 'KimgConfiguration';

/** kimg's own node settings (the `kimg:` section or a `KimgConfiguration` file). */
export interface KimgSettings {
  /** The store root (`--root`); unset = kimg's default resolution (`$KIMG_ROOT`, `/var/lib/kimg`, …). */
  rootDir?: string;
  /** Registry for names without one. Default `docker.io` (the kubelet's and containerd's). */
  defaultRegistry: string;
  /** containerd-style registry hosts directory (`certs.d`, one `hosts.toml` per registry). */
  hostsDir?: string;
  /** The kubelet's `--image-credential-provider-config` (a file or a directory). */
  imageCredentialProviderConfig?: string;
  /** The kubelet's `--image-credential-provider-bin-dir`. */
  imageCredentialProviderBinDir?: string;
  /**
   * Standalone nodes: projected service-account tokens for credential providers with
   * `tokenAttributes`, one file per ServiceAccount at `<dir>/<namespace>/<serviceaccount>/token`
   * (`ProjectedTokenFileSource`). Unset: such providers are skipped and say why.
   */
  serviceAccountTokenDir?: string;
  /**
   * Images image GC never removes, besides those marked pinned in the store: typically the
   * sandbox image, like containerd's `pinned_images.sandbox`. Each must parse as an image reference.
   */
  pinnedImages: string[];
  /** Images the node agent pre-pulls, like a `kimg prepull` list. */
  prepull: PrepullImage[];
  /** Where the agent listens. */
  listen: {
    /** The CRI ImageService socket: `unix:///run/kimg/kimg.sock` (or `npipe://…` on Windows). */
    cri?: string;
    /** The metrics endpoint, `host:port` (port 0–65535). */
    metrics?: string;
  };
  /**
   * containerd as the image store (`--containerd`): its socket (`/run/containerd/containerd.sock` or a
   * `unix://` URL), the namespace (default `k8s.io`) and the snapshotter to unpack into (default
   * `overlayfs`). `directWrite: false` sends every blob byte through containerd's content Write
   * protocol even when kimg can write containerd's content directory (default true). `localApply:
   * true` has kimg extract layers into the overlayfs snapshotter itself instead of containerd's
   * Diff.Apply (default false). Unset: kimg's own store.
   */
  containerd?: {
    address: string;
    namespace?: string;
    snapshotter?: string;
    directWrite?: boolean;
    localApply?: boolean;
  };
}

/** kimg's defaults for `KimgSettings`. */
export const KIMG_SETTINGS_DEFAULTS: Readonly<KimgSettings> = Object.freeze({
  defaultRegistry: 'docker.io',
  pinnedImages: Object.freeze([]) as unknown as string[],
  prepull: Object.freeze([]) as unknown as PrepullImage[],
  listen: Object.freeze({}),
});

/** The fields a `kimg:` section (or `KimgConfiguration`) may hold. */
export const KIMG_SETTINGS_FIELDS: readonly string[] = Object.freeze([
  'rootDir',
  'defaultRegistry',
  'hostsDir',
  'imageCredentialProviderConfig',
  'imageCredentialProviderBinDir',
  'serviceAccountTokenDir',
  'pinnedImages',
  'prepull',
  'listen',
  'containerd',
]);

/** The result of loading: the kubelet's image configuration, kimg's settings and notices. */
export interface NodeConfig {
  /** The files read, in order (empty for text parsed without a file name). */
  files: string[];
  kubelet: KubeletImageConfig;
  kimg: KimgSettings;
  /** Things worth telling the user that are not errors: unknown kubelet fields, gates kimg does not model. */
  notices: string[];
}

/** Options of `parseNodeConfig`. */
export interface ParseNodeConfigOptions {
  /** The file the text came from: named in messages; relative paths are resolved against its directory. */
  file?: string;
}

type Obj = Record<string, unknown>;

function isMapping(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function resolvePath(p: string | undefined, baseDir: string | undefined): string | undefined {
  if (p === undefined || p === '' || baseDir === undefined || isAbsolute(p)) return p === '' ? undefined : p;
  return resolve(baseDir, p);
}

function checkListenEndpoint(ctx: DecodeContext, field: string, v: string | undefined): void {
  if (v === undefined) return;
  if (!/^(unix|npipe):\/\/./.test(v) && !v.startsWith('/')) {
    ctx.problems.push(`${field}: ${quote(v)} is not a socket endpoint: write unix:///run/kimg/kimg.sock`);
  }
}

function checkHostPort(ctx: DecodeContext, field: string, v: string | undefined): void {
  if (v === undefined) return;
  const m = /^(.*):(\d{1,5})$/.exec(v);
  const port = m === null ? NaN : Number(m[2]);
  const host = m?.[1] ?? '';
  if (m === null || port > 65535 || (host.includes(':') && !/^\[[0-9A-Fa-f:.]+\]$/.test(host))) {
    ctx.problems.push(
      `${field}: ${quote(v)} is not host:port (port 0–65535; IPv6 hosts in brackets, e.g. [::1]:10259)`,
    );
  }
}

/** Decodes a `kimg:` section (or the top level of a `KimgConfiguration`, `skip` naming TypeMeta keys). */
function decodeKimgSettings(
  ctx: DecodeContext,
  prefix: string,
  obj: Obj,
  baseDir: string | undefined,
  skip: readonly string[] = [],
): KimgSettings {
  for (const key of Object.keys(obj)) {
    if (skip.includes(key)) continue;
    if (!KIMG_SETTINGS_FIELDS.includes(key)) {
      ctx.problems.push(
        `${prefix}${key}: unknown field; kimg settings are ${KIMG_SETTINGS_FIELDS.join(', ')}`,
      );
    }
  }
  const str = (k: string): string | undefined => readString(ctx, `${prefix}${k}`, obj[k]);
  const out: KimgSettings = {
    defaultRegistry: KIMG_SETTINGS_DEFAULTS.defaultRegistry,
    pinnedImages: [],
    prepull: [],
    listen: {},
  };
  const rootDir = resolvePath(str('rootDir'), baseDir);
  if (rootDir !== undefined) out.rootDir = rootDir;
  const registry = str('defaultRegistry');
  if (registry !== undefined) {
    try {
      parseReference('kimg-config-check', { defaultRegistry: registry });
      out.defaultRegistry = registry;
    } catch (e) {
      ctx.problems.push(`${prefix}defaultRegistry: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  for (const k of [
    'hostsDir',
    'imageCredentialProviderConfig',
    'imageCredentialProviderBinDir',
    'serviceAccountTokenDir',
  ] as const) {
    const v = resolvePath(str(k), baseDir);
    if (v !== undefined) out[k] = v;
  }
  const pinned = obj['pinnedImages'];
  if (pinned !== undefined && pinned !== null) {
    if (!Array.isArray(pinned)) {
      ctx.problems.push(`${prefix}pinnedImages: must be a list of image references`);
    } else {
      pinned.forEach((v, i) => {
        if (typeof v !== 'string') {
          ctx.problems.push(`${prefix}pinnedImages[${i}]: must be a string`);
          return;
        }
        try {
          parseReference(v);
          out.pinnedImages.push(v);
        } catch (e) {
          ctx.problems.push(`${prefix}pinnedImages[${i}]: ${e instanceof Error ? e.message : String(e)}`);
        }
      });
    }
  }
  const prepull = obj['prepull'];
  if (prepull !== undefined && prepull !== null) {
    if (!Array.isArray(prepull))
      ctx.problems.push(`${prefix}prepull: must be a list of images or {image, platform, secret}`);
    else out.prepull = validatePrepullEntries(prepull, `${prefix}prepull`, ctx.problems);
  }
  const listen = obj['listen'];
  if (listen !== undefined && listen !== null) {
    if (!isMapping(listen)) {
      ctx.problems.push(`${prefix}listen: must be a mapping with cri and/or metrics`);
    } else {
      for (const key of Object.keys(listen)) {
        if (key !== 'cri' && key !== 'metrics') {
          ctx.problems.push(`${prefix}listen.${key}: unknown field; listen has cri and metrics`);
        }
      }
      const cri = readString(ctx, `${prefix}listen.cri`, listen['cri']);
      const metrics = readString(ctx, `${prefix}listen.metrics`, listen['metrics']);
      checkListenEndpoint(ctx, `${prefix}listen.cri`, cri);
      checkHostPort(ctx, `${prefix}listen.metrics`, metrics);
      if (cri !== undefined && cri !== '') out.listen.cri = cri;
      if (metrics !== undefined && metrics !== '') out.listen.metrics = metrics;
    }
  }
  const containerd = obj['containerd'];
  if (containerd !== undefined && containerd !== null) {
    if (!isMapping(containerd)) {
      ctx.problems.push(
        `${prefix}containerd: must be a mapping with address, namespace, snapshotter, directWrite and localApply`,
      );
    } else {
      for (const key of Object.keys(containerd)) {
        if (!['address', 'namespace', 'snapshotter', 'directWrite', 'localApply'].includes(key))
          ctx.problems.push(
            `${prefix}containerd.${key}: unknown field; containerd has address, namespace, snapshotter, directWrite, localApply`,
          );
      }
      const address = readString(ctx, `${prefix}containerd.address`, containerd['address']);
      const namespace = readString(ctx, `${prefix}containerd.namespace`, containerd['namespace']);
      const snapshotter = readString(ctx, `${prefix}containerd.snapshotter`, containerd['snapshotter']);
      const directWrite = containerd['directWrite'];
      if (directWrite !== undefined && typeof directWrite !== 'boolean')
        ctx.problems.push(`${prefix}containerd.directWrite: must be true or false`);
      const localApply = containerd['localApply'];
      if (localApply !== undefined && typeof localApply !== 'boolean')
        ctx.problems.push(`${prefix}containerd.localApply: must be true or false`);
      if (address === undefined || address === '') {
        ctx.problems.push(
          `${prefix}containerd.address: required (containerd's socket, e.g. /run/containerd/containerd.sock)`,
        );
      } else {
        const addr =
          address.startsWith('unix://') || address.startsWith('/') ? address : resolvePath(address, baseDir)!;
        if (/^[a-z][a-z0-9+.-]*:\/\//i.test(addr) && !addr.startsWith('unix://'))
          ctx.problems.push(
            `${prefix}containerd.address: ${quote(address)} is not a unix socket path or unix:// URL`,
          );
        out.containerd = {
          address: addr,
          ...(namespace !== undefined && namespace !== '' ? { namespace } : {}),
          ...(snapshotter !== undefined && snapshotter !== '' ? { snapshotter } : {}),
          ...(typeof directWrite === 'boolean' ? { directWrite } : {}),
          ...(typeof localApply === 'boolean' ? { localApply } : {}),
        };
      }
    }
  }
  return out;
}

/** Parses one file's text to a single mapping, or records why not. */
function parseDocument(ctx: DecodeContext, text: string): Obj | undefined {
  let docs;
  try {
    docs = parseAllDocuments(text, { version: '1.1', prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    ctx.problems.push(`not YAML or JSON: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
  const list = Array.isArray(docs) ? docs : [docs];
  const real = list.filter((d) => d.contents !== null || d.errors.length > 0);
  if (real.length > 1) {
    ctx.problems.push(`holds ${real.length} YAML documents; a configuration file holds exactly one`);
    return undefined;
  }
  const doc = real[0];
  if (doc === undefined) {
    ctx.problems.push('is empty; expected a KubeletConfiguration or KimgConfiguration');
    return undefined;
  }
  if (doc.errors.length > 0) {
    // With prettyErrors the first line reads `<what> at line L, column C:`.
    for (const err of doc.errors)
      ctx.problems.push(`not valid YAML: ${(err.message.split('\n')[0] ?? '').replace(/:$/, '')}`);
    return undefined;
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    ctx.problems.push(`cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
  if (!isMapping(value)) {
    ctx.problems.push('is not a mapping; expected a KubeletConfiguration or KimgConfiguration');
    return undefined;
  }
  return value;
}

interface FileResult {
  kind: 'kubelet' | 'kimg' | 'invalid';
  kubelet?: KubeletImageConfig;
  kimg?: KimgSettings;
}

function decodeFile(ctx: DecodeContext, text: string, file: string | undefined): FileResult {
  const obj = parseDocument(ctx, text);
  if (obj === undefined) return { kind: 'invalid' };
  const baseDir = file === undefined ? undefined : dirname(resolve(file));
  const kind = obj['kind'];
  const apiVersion = obj['apiVersion'];
  if (kind === KUBELET_CONFIG_KIND) {
    if (apiVersion !== KUBELET_CONFIG_API_VERSION) {
      ctx.problems.push(
        `no kind "KubeletConfiguration" is registered for version ${JSON.stringify(String(apiVersion ?? ''))}: use apiVersion ${KUBELET_CONFIG_API_VERSION}`,
      );
      return { kind: 'invalid' };
    }
    const kubelet = decodeKubeletImageConfig(ctx, obj);
    const sp = resolvePath(kubelet.staticPodPath, baseDir);
    kubelet.staticPodPath = sp ?? '';
    const section = obj['kimg'];
    let kimg: KimgSettings | undefined;
    if (section !== undefined && section !== null) {
      if (isMapping(section)) kimg = decodeKimgSettings(ctx, 'kimg.', section, baseDir);
      else ctx.problems.push('kimg: must be a mapping of kimg settings');
    }
    return kimg === undefined ? { kind: 'kubelet', kubelet } : { kind: 'kubelet', kubelet, kimg };
  }
  if (kind === KIMG_CONFIG_KIND) {
    if (apiVersion !== KIMG_CONFIG_API_VERSION) {
      ctx.problems.push(
        `no kind "KimgConfiguration" is registered for version ${JSON.stringify(String(apiVersion ?? ''))}: use apiVersion ${KIMG_CONFIG_API_VERSION}`,
      );
      return { kind: 'invalid' };
    }
    return { kind: 'kimg', kimg: decodeKimgSettings(ctx, '', obj, baseDir, ['kind', 'apiVersion']) };
  }
  ctx.problems.push(
    kind === undefined
      ? `Object 'Kind' is missing: set kind: ${KUBELET_CONFIG_KIND} (apiVersion ${KUBELET_CONFIG_API_VERSION}) or kind: ${KIMG_CONFIG_KIND} (apiVersion ${KIMG_CONFIG_API_VERSION})`
      : `kind ${JSON.stringify(String(kind))} is not a configuration kimg reads: use ${KUBELET_CONFIG_KIND} or ${KIMG_CONFIG_KIND}`,
  );
  return { kind: 'invalid' };
}

function aggregate(items: readonly string[]): string {
  return items.length === 1 ? (items[0] ?? '') : `[${items.join(', ')}]`;
}

/** One input of `parseNodeConfigs`: a file's text and, optionally, its name. */
export interface ConfigSource {
  text: string;
  file?: string;
}

/**
 * Combines the configuration sources (at most one KubeletConfiguration and at most one set of kimg
 * settings, from a `kimg:` key or a KimgConfiguration file) into a `NodeConfig`. Missing parts take
 * their defaults. Every problem across all sources is collected.
 *
 * @throws KimgError `CONFIG_INVALID` listing every problem (`details.items`, each prefixed with its
 *   file; `details.file` is the first file with a problem). Never throws any other error.
 */
export function parseNodeConfigs(sources: readonly ConfigSource[]): NodeConfig {
  const problems: string[] = [];
  const notices: string[] = [];
  let kubelet: KubeletImageConfig | undefined;
  let kimg: KimgSettings | undefined;
  let firstBad: string | undefined;
  const files: string[] = [];
  for (const [i, src] of sources.entries()) {
    const name = src.file ?? (sources.length > 1 ? `<config ${i + 1}>` : '<config>');
    if (src.file !== undefined) files.push(src.file);
    const ctx: DecodeContext = { problems: [], notices: [] };
    const text = typeof src.text === 'string' ? src.text : '';
    if (typeof src.text !== 'string') ctx.problems.push('configuration text must be a string');
    const r = decodeFile(ctx, text, src.file);
    if (r.kubelet !== undefined) {
      if (kubelet !== undefined) ctx.problems.push('a second KubeletConfiguration; give exactly one');
      else kubelet = r.kubelet;
    }
    if (r.kimg !== undefined) {
      if (kimg !== undefined) {
        ctx.problems.push('kimg settings given twice (a kimg: key and a KimgConfiguration file?); keep one');
      } else kimg = r.kimg;
    }
    if (ctx.problems.length > 0) firstBad ??= src.file ?? name;
    problems.push(...ctx.problems.map((p) => `${name}: ${p}`));
    notices.push(...ctx.notices.map((n) => `${name}: ${n}`));
  }
  if (problems.length > 0) {
    const options: { items: string[]; file?: string } = { items: problems };
    if (firstBad !== undefined) options.file = firstBad;
    throw new KimgError(
      'CONFIG_INVALID',
      `${aggregate(problems)}; fix ${problems.length === 1 ? 'it' : `these ${problems.length} problems`} and retry`,
      options,
    );
  }
  return {
    files,
    kubelet: kubelet ?? defaultKubeletImageConfig(),
    kimg: kimg ?? {
      defaultRegistry: KIMG_SETTINGS_DEFAULTS.defaultRegistry,
      pinnedImages: [],
      prepull: [],
      listen: {},
    },
    notices,
  };
}

/**
 * Parses one configuration text (a KubeletConfiguration, optionally with a `kimg:` key, or a
 * KimgConfiguration). See `parseNodeConfigs`.
 *
 * @throws KimgError `CONFIG_INVALID` listing every problem.
 */
export function parseNodeConfig(text: string, options: ParseNodeConfigOptions = {}): NodeConfig {
  return parseNodeConfigs([options.file === undefined ? { text } : { text, file: options.file }]);
}

/**
 * Reads and parses configuration files (typically the kubelet's config file, optionally followed by a
 * KimgConfiguration sibling).
 *
 * @throws KimgError `FILE_NOT_FOUND` for a missing file, `CONFIG_INVALID` for an unreadable one or for
 *   any problem in the contents (all listed at once).
 */
export async function loadNodeConfig(files: string | readonly string[]): Promise<NodeConfig> {
  const list = typeof files === 'string' ? [files] : [...files];
  const sources: ConfigSource[] = [];
  for (const file of list) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new KimgError(
          'FILE_NOT_FOUND',
          `configuration file ${quote(file)} does not exist: check the path`,
          {
            file,
            cause: e,
          },
        );
      }
      throw new KimgError(
        'CONFIG_INVALID',
        `configuration file ${quote(file)} cannot be read (${code ?? 'error'}): check its permissions`,
        { file, items: [`${file}: cannot be read (${code ?? 'error'})`], cause: e },
      );
    }
    sources.push({ text, file });
  }
  return parseNodeConfigs(sources);
}
