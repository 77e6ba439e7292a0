/**
 * The credential keyring: which docker-config credentials apply to an image, in which order, exactly as
 * kubelet decides (`pkg/credentialprovider/keyring.go`, `BasicDockerKeyring`, `UnionDockerKeyring`).
 *
 * Keys. A key is written as a host, `host:port`, a URL with `https://` or `http://` and a path, or a
 * glob. kubelet prefixes `https://` when neither scheme is there, parses with Go's `url.Parse`, drops the
 * scheme, cuts a leading `/v1/` or `/v2/` from the path, and drops a path of `/`: so
 * `https://index.docker.io/v1/` becomes `index.docker.io` and `http://reg:5000` becomes `reg:5000`. A
 * key Go cannot parse is ignored.
 *
 * Matching a key against the image's repository (`docker.io/library/nginx`, no tag):
 * 1. the ports must be equal as strings (no port is not `443`);
 * 2. the hosts must have the same number of dot-separated labels (`*.example.com` never matches
 *    `example.com`, and `*` never spans a dot);
 * 3. the key's path must be a plain string prefix of the image's path (`reg.io/foo` matches
 *    `reg.io/foobar/x`: not a path-boundary check);
 * 4. every label must match as a `filepath.Match` glob (`*`, `?`, `[a-z]`), case-sensitively.
 *
 * Order. The keys of one keyring are de-duplicated and sorted in reverse byte order, which puts longer,
 * more specific keys before their prefixes and literal labels before `*`; every matching key
 * contributes its credentials in that order, credentials under one key in insertion order. If nothing
 * matched and the image is on Docker Hub, the credentials stored under exactly `index.docker.io` apply:
 * the only way `https://index.docker.io/v1/` reaches `docker.io/...` images.
 *
 * Sources. kubelet keeps one keyring per source group and concatenates them: the pod's pull Secrets
 * (including those the ServiceAccount admission copied in), then the node-wide docker config, then the
 * exec credential plugins (`Union{secrets, Union{node, plugins}}`). Each group sorts and falls back on
 * its own. kimg's `Keyring` keeps those three groups internally, chosen by the source kind; `--docker-
 * config` files (`flag`) join the node group.
 */
import { quote } from '../errors/index.js';
import { parseImageName } from '../reference/index.js';
import type { DockerConfigEntry } from './docker-config.js';
import { compileGlob, globMatch, goParseUrl, goSplitHostPort } from './internal/go-url.js';
import type { AuthConfig } from './secret.js';

/** Where a credential came from. Never holds a credential value. */
export interface CredentialSource {
  /**
   * - `secret`: a pull Secret the pod lists;
   * - `service-account`: a pull Secret listed by the pod's ServiceAccount (admission copies these into
   *   the pod when the pod lists none; kubelet then treats them as pod Secrets);
   * - `node`: the node-wide docker config kubelet finds in its search path;
   * - `flag`: a docker config named on kimg's command line (`--docker-config`);
   * - `plugin`: an exec credential provider plugin.
   */
  kind: 'secret' | 'service-account' | 'node' | 'flag' | 'plugin';
  /** Secret coordinates (`secret`, `service-account`). */
  namespace?: string;
  name?: string;
  uid?: string;
  /** The file the credential was read from (docker config file, or the manifest holding the Secret). */
  file?: string;
  /** The ServiceAccount whose `imagePullSecrets` listed the Secret (`service-account`). */
  serviceAccount?: string;
  /** The plugin name (`plugin`). */
  plugin?: string;
  /** For a plugin running in service-account token mode: the ServiceAccount the token was for. */
  pluginServiceAccount?: { namespace: string; name: string; uid: string };
}

/** One credential the keyring returns for an image, in the order kubelet tries them. */
export interface CredentialMatch {
  /** The normalized key that matched (`index.docker.io`, `reg.io/team`, `*.example.com`). */
  key: string;
  /** The key as written in its file or Secret. */
  entryKey: string;
  auth: AuthConfig;
  source: CredentialSource;
  /** True when the credential applies only through the Docker Hub `index.docker.io` fallback. */
  fallback?: boolean;
}

/** Why a key did not match (first failing check, in kubelet's order). */
export type NearMissReason =
  | { kind: 'invalid-key'; error: string }
  | { kind: 'scheme'; scheme: string }
  | { kind: 'port'; keyPort: string; imagePort: string }
  | { kind: 'label-count'; keyLabels: number; imageLabels: number }
  | { kind: 'path-prefix'; keyPath: string; imagePath: string; trailingSlash: boolean }
  | { kind: 'bad-glob'; pattern: string }
  | { kind: 'label'; index: number; pattern: string; label: string; caseOnly: boolean }
  | { kind: 'fallback-shadowed' };

/** A key that did not match the image, with the reason. */
export interface NearMiss {
  /** The normalized key (or the key as written when it could not be parsed). */
  key: string;
  entryKey: string;
  source: CredentialSource;
  reason: NearMissReason;
  /** The reason in words. */
  message: string;
}

/** `Keyring.explain` result. */
export interface KeyringExplanation {
  repository: string;
  matches: CredentialMatch[];
  nearMisses: NearMiss[];
}

interface Stored {
  key: string;
  entryKey: string;
  auth: AuthConfig;
  source: CredentialSource;
}

interface Rejected {
  entryKey: string;
  source: CredentialSource;
  error: string;
}

/** Docker Hub's legacy key host, used only as the fallback (`defaultRegistryHost`). */
export const DOCKER_HUB_FALLBACK_KEY = 'index.docker.io';

class Group {
  index: string[] = [];
  creds = new Map<string, Stored[]>();
  rejected: Rejected[] = [];

  add(entries: readonly DockerConfigEntry[], source: CredentialSource): void {
    for (const e of entries) {
      const n = normalizeKeyringKey(e.key);
      if ('error' in n) {
        this.rejected.push({ entryKey: e.key, source, error: n.error });
        continue;
      }
      const list = this.creds.get(n.key) ?? [];
      list.push({ key: n.key, entryKey: e.key, auth: e.auth, source });
      this.creds.set(n.key, list);
    }
    this.index = [...this.creds.keys()].sort(reverseByteOrder);
  }

  lookup(repository: string): CredentialMatch[] {
    const out: CredentialMatch[] = [];
    for (const k of this.index) {
      if (matchKey(k, repository) === undefined) out.push(...(this.creds.get(k) ?? []).map(toMatch));
    }
    if (out.length > 0) return out;
    if (isDefaultRegistryMatch(repository)) {
      const hub = this.creds.get(DOCKER_HUB_FALLBACK_KEY);
      if (hub !== undefined) return hub.map((s) => ({ ...toMatch(s), fallback: true }));
    }
    return [];
  }

  explain(repository: string, all: boolean): { matches: CredentialMatch[]; nearMisses: NearMiss[] } {
    const matches = this.lookup(repository);
    const matchedKeys = new Set(matches.map((m) => m.key));
    const nearMisses: NearMiss[] = [];
    for (const r of this.rejected) {
      const reason: NearMissReason = unsupportedScheme(r.entryKey) ?? { kind: 'invalid-key', error: r.error };
      nearMisses.push({
        key: r.entryKey,
        entryKey: r.entryKey,
        source: r.source,
        reason,
        message: describeReason(reason),
      });
    }
    for (const k of this.index) {
      if (matchedKeys.has(k)) continue;
      let reason = matchKey(k, repository);
      if (reason === undefined) continue;
      if (k === DOCKER_HUB_FALLBACK_KEY && isDefaultRegistryMatch(repository))
        reason = { kind: 'fallback-shadowed' };
      const stored = this.creds.get(k) ?? [];
      const first = stored[0];
      const scheme = first === undefined ? undefined : unsupportedScheme(first.entryKey);
      if (scheme !== undefined) reason = scheme;
      if (!all && !isNear(k, repository, reason)) continue;
      for (const s of stored) {
        nearMisses.push({
          key: k,
          entryKey: s.entryKey,
          source: s.source,
          reason,
          message: describeReason(reason),
        });
      }
    }
    return { matches, nearMisses };
  }
}

function toMatch(s: Stored): CredentialMatch {
  return { key: s.key, entryKey: s.entryKey, auth: s.auth, source: s.source };
}

/** The three source groups, in kubelet's union order. */
type GroupName = 'pod' | 'node' | 'plugin';

function groupOf(kind: CredentialSource['kind']): GroupName {
  switch (kind) {
    case 'secret':
    case 'service-account':
      return 'pod';
    case 'node':
    case 'flag':
      return 'node';
    case 'plugin':
      return 'plugin';
  }
}

/**
 * kubelet's keyring, with the three source groups of its union (pod Secrets, node config, plugins).
 * `add` files credentials under the group of their source kind; `lookup` returns each group's matches
 * in group order.
 */
export class Keyring {
  private readonly groups: Record<GroupName, Group> = {
    pod: new Group(),
    node: new Group(),
    plugin: new Group(),
  };

  /**
   * Adds docker config entries from one source. Keys Go's `url.Parse` rejects are skipped (kubelet logs
   * `Entry %q in dockercfg invalid (%v), ignoring`); `explain` reports them.
   */
  add(entries: readonly DockerConfigEntry[], source: CredentialSource): this {
    this.groups[groupOf(source.kind)].add(entries, source);
    return this;
  }

  /** A copy with the same credentials (for adding per-image plugin credentials without touching this one). */
  clone(): Keyring {
    const k = new Keyring();
    for (const name of ['pod', 'node', 'plugin'] as const) {
      const src = this.groups[name];
      const dst = k.groups[name];
      dst.index = [...src.index];
      dst.creds = new Map([...src.creds].map(([key, list]) => [key, [...list]]));
      dst.rejected = [...src.rejected];
    }
    return k;
  }

  /** Number of credentials held (valid keys only). */
  get size(): number {
    let n = 0;
    for (const g of Object.values(this.groups)) for (const list of g.creds.values()) n += list.length;
    return n;
  }

  /**
   * The credentials to try for a container `image` (`nginx:1.25`, `reg:5000/team/app@sha256:…`), in
   * the order kubelet tries them: the image is normalized with kubelet's `ParseImageName` and its
   * repository (`docker.io/library/nginx`) looked up.
   *
   * @throws KimgError with a reference code (`INVALID_REFERENCE_FORMAT`, …) when `image` does not parse.
   */
  lookup(image: string): CredentialMatch[] {
    return this.lookupRepository(imageRepository(image));
  }

  /** `lookup` plus near misses (see `explainRepository`). @throws as `lookup`. */
  explain(image: string, options: { all?: boolean } = {}): KeyringExplanation {
    return this.explainRepository(imageRepository(image), options);
  }

  /**
   * The credentials to try for `repository`, in order. `repository` is matched exactly as given, as
   * kubelet's `Lookup(repoToPull)` does: pass the normalized name without tag or digest
   * (`docker.io/library/nginx`, `reg:5000/team/app`). Never throws.
   */
  lookupRepository(repository: string): CredentialMatch[] {
    return [
      ...this.groups.pod.lookup(repository),
      ...this.groups.node.lookup(repository),
      ...this.groups.plugin.lookup(repository),
    ];
  }

  /**
   * `lookupRepository` plus every near miss: keys that did not match and why (scheme, trailing slash,
   * port, label count, path prefix, glob label, unparsable key, Docker Hub fallback shadowed). By
   * default only keys that look related to the image are reported; `all: true` reports every key.
   */
  explainRepository(repository: string, options: { all?: boolean } = {}): KeyringExplanation {
    const all = options.all === true;
    const parts = (['pod', 'node', 'plugin'] as const).map((g) => this.groups[g].explain(repository, all));
    return {
      repository,
      matches: parts.flatMap((p) => p.matches),
      nearMisses: parts.flatMap((p) => p.nearMisses),
    };
  }
}

/**
 * The repository kubelet looks credentials up for: `parsers.ParseImageName(image)` without tag or
 * digest (`nginx:1.25` → `docker.io/library/nginx`).
 *
 * @throws KimgError with a reference code when `image` does not parse.
 */
export function imageRepository(image: string): string {
  return parseImageName(image).repo;
}

// --- key normalization and matching ----------------------------------------------------------------

/**
 * kubelet's key normalization (`BasicDockerKeyring.Add`): prefix `https://` unless the key starts with
 * `https://` or `http://`, parse, keep host + path with a leading `/v1/` or `/v2/` cut to `/` and a path
 * of `/` dropped. Returns Go's parse error for keys kubelet ignores.
 */
export function normalizeKeyringKey(entryKey: string): { key: string } | { error: string } {
  const value =
    entryKey.startsWith('https://') || entryKey.startsWith('http://') ? entryKey : 'https://' + entryKey;
  const parsed = goParseUrl(value);
  if ('error' in parsed) return { error: parsed.error };
  let path = parsed.path;
  if (path.startsWith('/v2/') || path.startsWith('/v1/')) path = path.slice(3);
  return { key: path.length > 0 && path !== '/' ? parsed.host + path : parsed.host };
}

function reverseByteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(b, 'utf8'), Buffer.from(a, 'utf8'));
}

/**
 * kubelet's `URLsMatchStr(glob, target)`: undefined when `glob` matches `target`, otherwise the first
 * failing check.
 */
export function matchKey(glob: string, target: string): NearMissReason | undefined {
  const g = goParseUrl('https://' + glob);
  if ('error' in g) return { kind: 'invalid-key', error: g.error };
  const t = goParseUrl('https://' + target);
  if ('error' in t) return { kind: 'invalid-key', error: `image name: ${t.error}` };
  const gh = goSplitHostPort(g.host);
  const th = goSplitHostPort(t.host);
  if (gh.port !== th.port) return { kind: 'port', keyPort: gh.port, imagePort: th.port };
  const gl = gh.host.split('.');
  const tl = th.host.split('.');
  if (gl.length !== tl.length) return { kind: 'label-count', keyLabels: gl.length, imageLabels: tl.length };
  if (!t.path.startsWith(g.path)) {
    const trailingSlash = g.path.endsWith('/') && (t.path + '/').startsWith(g.path);
    return { kind: 'path-prefix', keyPath: g.path, imagePath: t.path, trailingSlash };
  }
  for (let i = 0; i < gl.length; i++) {
    const pattern = gl[i] as string;
    const label = tl[i] as string;
    const tokens = compileGlob(pattern);
    if (tokens === undefined) return { kind: 'bad-glob', pattern };
    if (!globMatch(tokens, label)) {
      const folded = compileGlob(pattern.toLowerCase());
      const caseOnly = folded !== undefined && globMatch(folded, label.toLowerCase());
      return { kind: 'label', index: i, pattern, label, caseOnly };
    }
  }
  return undefined;
}

/**
 * kubelet's `isDefaultRegistryMatch`: the image is on Docker Hub when its first component is empty-free
 * and either the only component, `docker.io`, `index.docker.io`, or has no `.` and no `:`.
 */
export function isDefaultRegistryMatch(image: string): boolean {
  const slash = image.indexOf('/');
  const first = slash < 0 ? image : image.slice(0, slash);
  if (first.length === 0) return false;
  if (slash < 0) return true;
  if (first === 'docker.io' || first === 'index.docker.io') return true;
  return !/[.:]/.test(first);
}

/** A key with a scheme kubelet does not strip (`oci://`, `HTTPS://`): it never matches as intended. */
function unsupportedScheme(entryKey: string): NearMissReason | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(entryKey);
  if (m === null) return undefined;
  if (entryKey.startsWith('https://') || entryKey.startsWith('http://')) return undefined;
  return { kind: 'scheme', scheme: (m[1] ?? '') + '://' };
}

/** Whether a non-matching key is related enough to the image to be worth reporting. */
function isNear(key: string, repository: string, reason: NearMissReason): boolean {
  if (reason.kind === 'invalid-key' || reason.kind === 'fallback-shadowed' || reason.kind === 'bad-glob')
    return true;
  const kh = hostLabels(reason.kind === 'scheme' ? key.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '') : key);
  const ih = hostLabels(repository);
  if (kh.length === 0 || ih.length === 0) return false;
  if (kh.join('.') === ih.join('.')) return true;
  const lastK = kh[kh.length - 1] as string;
  const lastI = ih[ih.length - 1] as string;
  if (lastK !== lastI && !/[*?[]/.test(lastK)) return false;
  if (kh.length < 2 || ih.length < 2) return kh.length === ih.length;
  const k2 = kh[kh.length - 2] as string;
  const i2 = ih[ih.length - 2] as string;
  return k2 === i2 || /[*?[]/.test(k2);
}

function hostLabels(s: string): string[] {
  const slash = s.indexOf('/');
  const hostport = slash < 0 ? s : s.slice(0, slash);
  return goSplitHostPort(hostport).host.toLowerCase().split('.');
}

/** The near-miss reason in words. */
export function describeReason(r: NearMissReason): string {
  switch (r.kind) {
    case 'invalid-key':
      return `key cannot be parsed as a URL and is ignored (${r.error})`;
    case 'scheme':
      return `scheme ${quote(r.scheme)} is not stripped (only https:// and http:// are); write the key without it`;
    case 'port':
      if (r.keyPort === '')
        return `missing port: the image names port ${r.imagePort}, the key has none (ports must match exactly)`;
      if (r.imagePort === '')
        return `port: the key names port ${r.keyPort}, the image has none (no port is not 443)`;
      return `different port: key ${r.keyPort}, image ${r.imagePort}`;
    case 'label-count':
      return `host label count differs: key has ${r.keyLabels}, image has ${r.imageLabels} (a glob label never spans a dot; *.example.com does not match example.com)`;
    case 'path-prefix':
      return r.trailingSlash
        ? `trailing slash: key path ${quote(r.keyPath)} is not a prefix of image path ${quote(r.imagePath)}; drop the trailing /`
        : `path prefix: key path ${quote(r.keyPath)} is not a prefix of image path ${quote(r.imagePath)}`;
    case 'bad-glob':
      return `malformed glob label ${quote(r.pattern)} never matches`;
    case 'label':
      return r.caseOnly
        ? `host label ${r.index + 1}: ${quote(r.pattern)} differs from ${quote(r.label)} only in case (matching is case-sensitive)`
        : `host label ${r.index + 1}: ${quote(r.pattern)} does not match ${quote(r.label)}`;
    case 'fallback-shadowed':
      return 'Docker Hub fallback key: used only when no other key of the same source group matches';
  }
}
