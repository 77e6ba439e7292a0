/**
 * Kubernetes objects for pull credentials: reading the manifests `kubectl apply -f` takes (YAML or JSON,
 * one or many documents, `List` kinds), decoding Secrets, and resolving which pull Secrets a pod uses.
 *
 * Which Secrets apply (kubelet `pkg/kubelet/kubelet_pods.go`, `pkg/credentialprovider/secrets`; the
 * ServiceAccount admission plugin `plugin/pkg/admission/serviceaccount`):
 * - the pod's `spec.imagePullSecrets`, looked up by name in the pod's namespace; entries with an empty
 *   name are skipped; a missing Secret is skipped (kubelet warns `FailedToRetrieveImagePullSecret`);
 * - when the pod lists none, the ServiceAccount's `imagePullSecrets` (admission copies them into the
 *   pod only in that case; kubelet itself reads only the pod);
 * - only type `kubernetes.io/dockerconfigjson` with a non-empty `.dockerconfigjson` key and type
 *   `kubernetes.io/dockercfg` with a non-empty `.dockercfg` key carry credentials; any other Secret is
 *   ignored by kubelet. kimg reports each ignored or missing Secret as a problem (and `strict: true`
 *   turns the first problem into an error);
 * - a Secret of the right type whose payload is not valid JSON fails the whole lookup, as in kubelet.
 *
 * YAML is read with YAML 1.1 scalars (`yes` is a boolean, `0777` octal) as Kubernetes' go-yaml does;
 * timestamps and sexagesimal numbers stay strings, as they do there.
 */
import { KimgError, quote } from '../errors/index.js';
import { readBoundedText } from '../bounded/index.js';
import { parseKubeYamlDocuments } from './internal/kube-yaml.js';
import { dns1123LabelProblem, dns1123SubdomainProblem } from './internal/object-names.js';
import { parseDockerConfig, type DockerConfig, type DockerConfigFormat } from './docker-config.js';
import { goBase64Decode } from './internal/go-base64.js';
import { GoJsonSyntaxError, parseGoJsonStream } from './internal/go-json.js';

/** One object read from a manifest file. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  /** `metadata.name` ('' when absent). */
  name: string;
  /** `metadata.namespace`, when set. */
  namespace?: string;
  /** The whole object as plain data. */
  object: Record<string, unknown>;
  /** The file it came from and its position (document index, then list item index). */
  file: string;
  position: string;
}

/** The Secret types kubelet reads pull credentials from, and their keys. */
export const SECRET_TYPE_DOCKER_CONFIG_JSON = 'kubernetes.io/dockerconfigjson';
export const SECRET_TYPE_DOCKERCFG = 'kubernetes.io/dockercfg';
export const DOCKER_CONFIG_JSON_KEY = '.dockerconfigjson';
export const DOCKERCFG_KEY = '.dockercfg';

/**
 * Parses one manifest text: a JSON stream (text starting with `{` or `[`) or YAML documents separated
 * by `---`; empty documents are skipped; `List` kinds (`v1/List`, `SecretList`, ...) are flattened,
 * items of a typed list inheriting its kind.
 *
 * @throws KimgError `CONFIG_INVALID` naming the file and position for syntax errors, duplicate keys,
 * non-object documents and objects without `apiVersion`/`kind`.
 */
export function parseKubernetesObjects(
  text: string,
  file = '<input>',
  limits: Pick<ManifestLimits, 'maxDocuments'> = MANIFEST_LIMITS,
): KubeObject[] {
  // Counted before parsing: a file of 100,000 documents costs a scan, not the memory of parsing them.
  const count = countDocuments(text);
  if (count > limits.maxDocuments) {
    throw new KimgError(
      'CONFIG_INVALID',
      `${quote(file)} holds ${count} documents, more than the ${Math.max(limits.maxDocuments, 0)} this invocation still reads (at most ${MANIFEST_LIMITS.maxDocuments} in all): split the manifests`,
      { file },
    );
  }
  const docs: unknown[] = [];
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      docs.push(...parseGoJsonStream(text).map(toPlain));
    } catch (e) {
      const why = e instanceof GoJsonSyntaxError ? `${e.reason} at offset ${e.offset}` : 'unreadable';
      throw new KimgError('CONFIG_INVALID', `${quote(file)} is not valid JSON: ${why}`, { file });
    }
  } else {
    const parsed = parseKubeYamlDocuments(text);
    const list = Array.isArray(parsed) ? parsed : [];
    for (let i = 0; i < list.length; i++) {
      const doc = list[i]!;
      const err = doc.errors[0];
      if (err !== undefined) {
        const line = err.linePos?.[0];
        const at = line === undefined ? '' : ` at line ${line.line}, column ${line.col}`;
        throw new KimgError(
          'CONFIG_INVALID',
          `${quote(file)} document ${i + 1} is not valid YAML${at}: ${err.code}`,
          { file },
        );
      }
      let js: unknown;
      try {
        js = doc.toJS({ maxAliasCount: 100 });
      } catch (e) {
        throw new KimgError(
          'CONFIG_INVALID',
          `${quote(file)} document ${i + 1} cannot be read: ${(e as Error).message}`,
          { file, cause: e },
        );
      }
      if (js === null || js === undefined) continue;
      docs.push(js);
    }
  }
  if (docs.length > limits.maxDocuments) {
    throw new KimgError(
      'CONFIG_INVALID',
      `${quote(file)} holds ${docs.length} documents, more than the ${Math.max(limits.maxDocuments, 0)} this invocation still reads: split the manifests`,
      { file },
    );
  }
  const out: KubeObject[] = [];
  docs.forEach((d, i) => flatten(d, file, `document ${i + 1}`, out, undefined));
  return out;
}

function toPlain(v: import('./internal/go-json.js').GoJsonValue): unknown {
  switch (v.kind) {
    case 'object': {
      const o: Record<string, unknown> = {};
      for (const [k, x] of v.members) {
        if (Object.prototype.hasOwnProperty.call(o, k))
          throw new GoJsonSyntaxError(0, `duplicate key ${quote(k, 100)}`);
        Object.defineProperty(o, k, {
          value: toPlain(x),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return o;
    }
    case 'array':
      return v.items.map(toPlain);
    case 'string':
      return v.value;
    case 'number':
      return Number(v.raw);
    case 'bool':
      return v.value;
    case 'null':
      return null;
  }
}

function flatten(
  d: unknown,
  file: string,
  position: string,
  out: KubeObject[],
  inherited: { apiVersion: string; kind: string } | undefined,
): void {
  if (Array.isArray(d)) {
    d.forEach((x, i) => flatten(x, file, `${position} item ${i + 1}`, out, inherited));
    return;
  }
  if (typeof d !== 'object' || d === null) {
    throw new KimgError(
      'CONFIG_INVALID',
      `${quote(file)} ${position} is not a Kubernetes object (expected a mapping)`,
      { file },
    );
  }
  const o = d as Record<string, unknown>;
  const apiVersion =
    typeof o.apiVersion === 'string' && o.apiVersion !== '' ? o.apiVersion : inherited?.apiVersion;
  const kind = typeof o.kind === 'string' && o.kind !== '' ? o.kind : inherited?.kind;
  if (apiVersion === undefined || kind === undefined) {
    throw new KimgError(
      'CONFIG_INVALID',
      `${quote(file)} ${position} has no apiVersion/kind: every object needs both`,
      { file },
    );
  }
  if (kind.endsWith('List') && Array.isArray(o.items)) {
    const itemKind = kind === 'List' ? undefined : { apiVersion, kind: kind.slice(0, -'List'.length) };
    o.items.forEach((x, i) => flatten(x, file, `${position} item ${i + 1}`, out, itemKind));
    return;
  }
  const meta = (typeof o.metadata === 'object' && o.metadata !== null ? o.metadata : {}) as Record<
    string,
    unknown
  >;
  const name = typeof meta.name === 'string' ? meta.name : '';
  const namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : undefined;
  validateObjectNames(kind, name, namespace, file, position);
  out.push({
    apiVersion,
    kind,
    name,
    ...(namespace !== undefined ? { namespace } : {}),
    object: { ...o, apiVersion, kind },
    file,
    position,
  });
}

/**
 * Bounds of the manifests one invocation reads (`-f` files, the static pod directory's files, a
 * secrets directory): pod specs are untrusted input. 32 MiB per file is ten times the API server's
 * request limit (3 MiB); 10,000 documents is far beyond any node's pods and Secrets.
 */
export interface ManifestLimits {
  /** Largest manifest file in bytes (default 32 MiB). */
  maxFileBytes: number;
  /** Most YAML documents / JSON values read by one call (default 10,000). */
  maxDocuments: number;
}

/** The defaults of `ManifestLimits`. */
export const MANIFEST_LIMITS: ManifestLimits = { maxFileBytes: 32 * 1024 * 1024, maxDocuments: 10_000 };

/**
 * An upper bound of the documents in a manifest text, without parsing: YAML document markers at
 * the start of a line, plus one; a JSON stream counts as its top-level values (at most one per `{`/`[`
 * at the start of a line — a cheap over-estimate only used against the cap).
 */
function countDocuments(text: string): number {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) return (text.match(/^[{[]/gm) ?? []).length || 1;
  return (text.match(/^---/gm) ?? []).length + 1;
}

/** The kinds kimg reads whose names the API server validates as DNS-1123 subdomains. */
const SUBDOMAIN_NAMED_KINDS = new Set(['Pod', 'Secret', 'ServiceAccount', 'RuntimeClass']);

/**
 * Refuses names the API server would refuse: the name of a Pod, Secret, ServiceAccount or RuntimeClass
 * must be a DNS-1123 subdomain, any namespace a DNS-1123 label (an empty name is left to the caller:
 * `generateName` objects have none).
 */
function validateObjectNames(
  kind: string,
  name: string,
  namespace: string | undefined,
  file: string,
  position: string,
): void {
  const problems: string[] = [];
  if (name !== '' && SUBDOMAIN_NAMED_KINDS.has(kind)) {
    const p = dns1123SubdomainProblem(name);
    if (p !== undefined) problems.push(`metadata.name: Invalid value: ${quote(name, 100)}: ${p}`);
  }
  if (namespace !== undefined) {
    const p = dns1123LabelProblem(namespace);
    if (p !== undefined) problems.push(`metadata.namespace: Invalid value: ${quote(namespace, 100)}: ${p}`);
  }
  if (problems.length > 0) {
    throw new KimgError(
      'CONFIG_INVALID',
      `${quote(file)} ${position}: ${kind} is invalid: ${problems.join(', ')}`,
      {
        file,
      },
    );
  }
}

/**
 * Reads one manifest file: a regular file of at most `limits.maxFileBytes` (a FIFO or a link to a
 * device is refused, never read).
 *
 * @throws KimgError `FILE_NOT_FOUND` for a missing file, `CONFIG_INVALID` for one that cannot be read.
 */
export async function readManifestFile(
  file: string,
  limits: Pick<ManifestLimits, 'maxFileBytes'> = MANIFEST_LIMITS,
): Promise<string> {
  try {
    return await readBoundedText(file, {
      maxBytes: limits.maxFileBytes,
      code: 'CONFIG_INVALID',
      what: 'manifest file',
    });
  } catch (e) {
    if (e instanceof KimgError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new KimgError('FILE_NOT_FOUND', `manifest file ${quote(file)} does not exist`, {
        file,
        cause: e,
      });
    throw new KimgError(
      'CONFIG_INVALID',
      `manifest file ${quote(file)} cannot be read (${code ?? 'error'})`,
      { file, cause: e },
    );
  }
}

/**
 * Reads every object from manifest files (the files `kubectl apply -f` takes).
 *
 * @throws KimgError `FILE_NOT_FOUND` for a missing file, `CONFIG_INVALID` for unreadable or invalid
 * content (see `parseKubernetesObjects`).
 */
export async function readKubernetesObjects(
  files: readonly string[],
  limits: ManifestLimits = MANIFEST_LIMITS,
): Promise<KubeObject[]> {
  const out: KubeObject[] = [];
  let documents = 0;
  for (const file of files) {
    const text = await readManifestFile(file, limits);
    const objects = parseKubernetesObjects(text, file, {
      ...limits,
      maxDocuments: limits.maxDocuments - documents,
    });
    documents += countDocuments(text);
    out.push(...objects);
  }
  return out;
}

// --- Secrets ------------------------------------------------------------------------------------------

/** A decoded Secret: `data` base64-decoded, `stringData` merged over it (as the API server does). */
export interface DecodedSecret {
  name: string;
  namespace: string;
  uid?: string;
  type: string;
  /** Decoded values by key. Holds credentials: never print. */
  data: Map<string, Buffer>;
  file: string;
  position: string;
}

function secretWhere(o: KubeObject, namespace: string): string {
  return `Secret ${quote(`${namespace}/${o.name}`)} (${o.file}, ${o.position})`;
}

/**
 * Decodes a Secret object. Namespace defaults to `defaultNamespace`, type to `Opaque`.
 *
 * @throws KimgError `SECRET_INVALID` naming the Secret and the key for a non-string value or a `data`
 * value that is not valid base64 (never the value itself).
 */
export function decodeSecret(o: KubeObject, defaultNamespace = 'default'): DecodedSecret {
  const namespace = o.namespace ?? defaultNamespace;
  const where = secretWhere(o, namespace);
  const obj = o.object;
  const type = obj.type === undefined || obj.type === null ? 'Opaque' : obj.type;
  if (typeof type !== 'string')
    throw new KimgError('SECRET_INVALID', `${where}: "type" must be a string`, { file: o.file });
  const meta = (obj.metadata ?? {}) as Record<string, unknown>;
  const uid = typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : undefined;
  const data = new Map<string, Buffer>();
  for (const field of ['data', 'stringData'] as const) {
    const m = obj[field];
    if (m === undefined || m === null) continue;
    if (typeof m !== 'object' || Array.isArray(m)) {
      throw new KimgError('SECRET_INVALID', `${where}: "${field}" must be a map of strings`, {
        file: o.file,
      });
    }
    for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
      if (v === null) {
        data.set(k, Buffer.alloc(0));
        continue;
      }
      if (typeof v !== 'string') {
        throw new KimgError('SECRET_INVALID', `${where}: ${field}[${quote(k, 100)}] must be a string`, {
          file: o.file,
          key: k,
        });
      }
      if (field === 'data') {
        const b = goBase64Decode(v, true);
        if (b === undefined) {
          throw new KimgError(
            'SECRET_INVALID',
            `${where}: data[${quote(k, 100)}] is not valid base64; put plain text under stringData instead`,
            {
              file: o.file,
              key: k,
            },
          );
        }
        data.set(k, b);
      } else {
        data.set(k, Buffer.from(v, 'utf8'));
      }
    }
  }
  return {
    name: o.name,
    namespace,
    ...(uid !== undefined ? { uid } : {}),
    type,
    data,
    file: o.file,
    position: o.position,
  };
}

/** A pull Secret kubelet would use, with its parsed docker config. */
export interface ResolvedPullSecret {
  namespace: string;
  name: string;
  uid?: string;
  file: string;
  type: string;
  format: DockerConfigFormat;
  config: DockerConfig;
  /** `pod` when the pod lists it, `service-account` when it came from the ServiceAccount. */
  via: 'pod' | 'service-account';
  /** The ServiceAccount that listed it (`via: 'service-account'`). */
  serviceAccount?: string;
}

/** Why a referenced or supplied Secret gives no credentials. */
export interface PullSecretProblem {
  kind:
    | 'not-found'
    | 'wrong-namespace'
    | 'wrong-type'
    | 'missing-key'
    | 'undecodable'
    | 'service-account-not-found';
  /** `SECRET_NOT_FOUND` or `SECRET_INVALID`: what `strict` mode throws. */
  code: 'SECRET_NOT_FOUND' | 'SECRET_INVALID';
  name: string;
  namespace: string;
  message: string;
  file?: string;
}

/** `resolvePodPullSecrets` result. */
export interface PodPullSecrets {
  namespace: string;
  serviceAccountName: string;
  /** The pod's or ServiceAccount's Secrets that carry credentials, in the order listed. */
  secrets: ResolvedPullSecret[];
  problems: PullSecretProblem[];
  /**
   * A pull Secret whose docker config does not decode: the kubelet's keyring fails to build, which
   * fails this pod's pulls (and only this pod's) with this error; see `PodCredentials.resolver`.
   */
  keyringError?: KimgError;
}

/**
 * The names of the pod's pull Secrets the kubelet could not retrieve or decode — missing, in another
 * namespace, or undecodable — for its Warning `FailedToRetrieveImagePullSecret`.
 */
export function failedPullSecretNames(secrets: PodPullSecrets | undefined): string[] {
  if (secrets === undefined) return [];
  const names = secrets.problems
    .filter((p) => p.kind === 'not-found' || p.kind === 'wrong-namespace' || p.kind === 'undecodable')
    .map((p) => p.name);
  return [...new Set(names)];
}

/** Options of `resolvePodPullSecrets` and `pullSecretsFromObjects`. */
export interface ResolvePullSecretsOptions {
  /** Throw the first problem as a `KimgError` instead of reporting it. */
  strict?: boolean;
}

/**
 * Resolves the pull Secrets of a Pod object against the given objects (Secrets and ServiceAccounts):
 * the pod's `imagePullSecrets`, or the ServiceAccount's when the pod lists none.
 *
 * @throws KimgError `SECRET_INVALID` when a Secret of a pull type has an unparsable payload (names the
 * Secret and key), `INVALID_ARGUMENT` when `pod` is not a Pod, and with `strict` the first problem
 * (`SECRET_NOT_FOUND` / `SECRET_INVALID`).
 */
export function resolvePodPullSecrets(
  pod: KubeObject | Record<string, unknown>,
  objects: readonly KubeObject[],
  options: ResolvePullSecretsOptions = {},
): PodPullSecrets {
  const podObj =
    'object' in pod && 'file' in pod ? (pod as KubeObject).object : (pod as Record<string, unknown>);
  if (podObj.kind !== undefined && podObj.kind !== 'Pod') {
    throw new KimgError('INVALID_ARGUMENT', `expected a Pod, got kind ${quote(String(podObj.kind))}`);
  }
  const meta = (podObj.metadata ?? {}) as Record<string, unknown>;
  const spec = (podObj.spec ?? {}) as Record<string, unknown>;
  const namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
  const explicitSa =
    typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== ''
      ? spec.serviceAccountName
      : typeof spec.serviceAccount === 'string' && spec.serviceAccount !== ''
        ? spec.serviceAccount
        : undefined;
  const serviceAccountName = explicitSa ?? 'default';
  const problems: PullSecretProblem[] = [];
  let names = refNames(spec.imagePullSecrets);
  let via: 'pod' | 'service-account' = 'pod';
  if (names.length === 0) {
    const sa = objects.find(
      (o) =>
        o.kind === 'ServiceAccount' &&
        o.name === serviceAccountName &&
        (o.namespace ?? 'default') === namespace,
    );
    if (sa !== undefined) {
      names = refNames(sa.object.imagePullSecrets);
      via = 'service-account';
    } else if (explicitSa !== undefined) {
      problems.push({
        kind: 'service-account-not-found',
        code: 'SECRET_NOT_FOUND',
        name: serviceAccountName,
        namespace,
        message: `ServiceAccount ${quote(`${namespace}/${serviceAccountName}`)} is not in the given files, so its imagePullSecrets were not considered`,
      });
    }
  }
  const secrets: ResolvedPullSecret[] = [];
  let keyringError: KimgError | undefined;
  for (const name of names) {
    const found = objects.find(
      (o) => o.kind === 'Secret' && o.name === name && (o.namespace ?? namespace) === namespace,
    );
    if (found === undefined) {
      const elsewhere = objects.find((o) => o.kind === 'Secret' && o.name === name);
      if (elsewhere !== undefined) {
        problems.push({
          kind: 'wrong-namespace',
          code: 'SECRET_NOT_FOUND',
          name,
          namespace,
          file: elsewhere.file,
          message: `Secret ${quote(name)} is in namespace ${quote(elsewhere.namespace ?? 'default')}, but the pod is in ${quote(namespace)}: pods can use pull Secrets of their own namespace only`,
        });
      } else {
        problems.push({
          kind: 'not-found',
          code: 'SECRET_NOT_FOUND',
          name,
          namespace,
          message: `Secret ${quote(`${namespace}/${name}`)} referenced by ${via === 'pod' ? 'the pod' : `ServiceAccount ${quote(serviceAccountName)}`} was not found; the pull goes on without it`,
        });
      }
      continue;
    }
    let r: ReturnType<typeof usePullSecret>;
    try {
      r = usePullSecret(found, namespace, via, via === 'service-account' ? serviceAccountName : undefined);
    } catch (e) {
      // An undecodable Secret fails this pod's pulls only, like the kubelet's keyring error.
      if (!(e instanceof KimgError) || e.code !== 'SECRET_INVALID' || options.strict === true) throw e;
      keyringError ??= e;
      problems.push({
        kind: 'undecodable',
        code: 'SECRET_INVALID',
        name,
        namespace,
        file: found.file,
        message: e.message,
      });
      continue;
    }
    if ('problem' in r) problems.push(r.problem);
    else secrets.push(r.secret);
  }
  if (options.strict === true && problems[0] !== undefined) {
    const p = problems[0];
    throw new KimgError(p.code, p.message, { ...(p.file !== undefined ? { file: p.file } : {}) });
  }
  return {
    namespace,
    serviceAccountName,
    secrets,
    problems,
    ...(keyringError !== undefined ? { keyringError } : {}),
  };
}

/**
 * Without a pod: every Secret in `objects` is offered as a pull Secret of a pod in `namespace`
 * (default `default`). Secrets of other namespaces and other types are reported as problems.
 *
 * @throws as `resolvePodPullSecrets`.
 */
export function pullSecretsFromObjects(
  objects: readonly KubeObject[],
  options: ResolvePullSecretsOptions & { namespace?: string } = {},
): PodPullSecrets {
  const namespace = options.namespace ?? 'default';
  const secrets: ResolvedPullSecret[] = [];
  const problems: PullSecretProblem[] = [];
  for (const o of objects) {
    if (o.kind !== 'Secret') continue;
    const ns = o.namespace ?? namespace;
    if (ns !== namespace) {
      problems.push({
        kind: 'wrong-namespace',
        code: 'SECRET_NOT_FOUND',
        name: o.name,
        namespace,
        file: o.file,
        message: `Secret ${quote(`${ns}/${o.name}`)} is in namespace ${quote(ns)}, not ${quote(namespace)}: pods can use pull Secrets of their own namespace only`,
      });
      continue;
    }
    const r = usePullSecret(o, namespace, 'pod', undefined);
    if ('problem' in r) problems.push(r.problem);
    else secrets.push(r.secret);
  }
  if (options.strict === true && problems[0] !== undefined) {
    const p = problems[0];
    throw new KimgError(p.code, p.message, { ...(p.file !== undefined ? { file: p.file } : {}) });
  }
  return { namespace, serviceAccountName: 'default', secrets, problems };
}

function refNames(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const r of list) {
    const name = typeof r === 'object' && r !== null ? (r as Record<string, unknown>).name : undefined;
    if (typeof name === 'string' && name !== '') out.push(name);
  }
  return out;
}

function usePullSecret(
  o: KubeObject,
  namespace: string,
  via: 'pod' | 'service-account',
  serviceAccount: string | undefined,
): { secret: ResolvedPullSecret } | { problem: PullSecretProblem } {
  const s = decodeSecret(o, namespace);
  const where = secretWhere(o, namespace);
  let format: DockerConfigFormat;
  let key: string;
  if (s.type === SECRET_TYPE_DOCKER_CONFIG_JSON) {
    format = 'config.json';
    key = DOCKER_CONFIG_JSON_KEY;
  } else if (s.type === SECRET_TYPE_DOCKERCFG) {
    format = 'dockercfg';
    key = DOCKERCFG_KEY;
  } else {
    return {
      problem: {
        kind: 'wrong-type',
        code: 'SECRET_INVALID',
        name: o.name,
        namespace,
        file: o.file,
        message: `${where} has type ${quote(s.type)}; pull Secrets must be ${SECRET_TYPE_DOCKER_CONFIG_JSON} (key ${DOCKER_CONFIG_JSON_KEY}) or ${SECRET_TYPE_DOCKERCFG} (key ${DOCKERCFG_KEY}), so kubelet ignores it`,
      },
    };
  }
  const payload = s.data.get(key);
  if (payload === undefined || payload.length === 0) {
    return {
      problem: {
        kind: 'missing-key',
        code: 'SECRET_INVALID',
        name: o.name,
        namespace,
        file: o.file,
        message: `${where} of type ${s.type} has no non-empty ${quote(key)} key, so kubelet ignores it`,
      },
    };
  }
  let config: DockerConfig;
  try {
    config = parseDockerConfig(payload.toString('utf8'), { format });
  } catch (e) {
    const detail = e instanceof KimgError ? e.message.replace(/^docker config:?\s*/, '') : 'invalid';
    throw new KimgError('SECRET_INVALID', `${where}: ${key} is not a valid docker config: ${detail}`, {
      file: o.file,
      key,
      cause: e,
    });
  }
  return {
    secret: {
      namespace,
      name: o.name,
      ...(s.uid !== undefined ? { uid: s.uid } : {}),
      file: o.file,
      type: s.type,
      format,
      config: { ...config, file: o.file },
      via,
      ...(serviceAccount !== undefined ? { serviceAccount } : {}),
    },
  };
}
