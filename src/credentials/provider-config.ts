/**
 * `CredentialProviderConfig`: the kubelet file (`--image-credential-provider-config`) that declares exec
 * credential provider plugins. Decoding and validation follow kubelet
 * (`pkg/credentialprovider/plugin/config.go` @ fde22c3f, types in `k8s.io/kubelet/config/v1*`):
 *
 * - the path is a file or a directory; a directory contributes every `*.json`, `*.yaml`, `*.yml` file in
 *   lexicographic order, merged, and a provider name may appear only once across them;
 * - kind `CredentialProviderConfig`, apiVersion `kubelet.config.k8s.io/v1alpha1|v1beta1|v1`, strict
 *   decoding (unknown fields are errors; `tokenAttributes` exists only in v1);
 * - validation: at least one provider; names without `/`, spaces, `.`/`..`, unique; a supported
 *   plugin `apiVersion` (`credentialprovider.kubelet.k8s.io/v1alpha1|v1beta1|v1`); at least one
 *   `matchImages` entry, each parsable as a URL; `defaultCacheDuration` required and ≥ 0;
 *   `tokenAttributes` (service-account token mode) only with the v1 plugin API, with an audience,
 *   `requireServiceAccount` and `cacheType` (`Token` or `ServiceAccount`), and qualified, unique,
 *   non-overlapping annotation keys.
 *
 * Validation messages are kubelet's field errors (`providers.name: Invalid value: "a/b": provider name
 * cannot contain '/'`), aggregated as `[e1, e2]` when there are several. Environment values may be
 * secrets and never appear in a message.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { KimgError, quote } from '../errors/index.js';
import { parseKubeYamlDocuments } from './internal/kube-yaml.js';
import { formatGoDuration, parseGoDuration } from './internal/go-duration.js';
import { goParseUrl } from './internal/go-url.js';
import { goQuote } from '../gotext/index.js';

/** The config file's own API group and versions. */
export const CREDENTIAL_PROVIDER_CONFIG_VERSIONS = [
  'kubelet.config.k8s.io/v1alpha1',
  'kubelet.config.k8s.io/v1beta1',
  'kubelet.config.k8s.io/v1',
] as const;
/** The exec plugin protocol versions (the provider's `apiVersion`), sorted as kubelet lists them. */
export const CREDENTIAL_PROVIDER_API_VERSIONS = [
  'credentialprovider.kubelet.k8s.io/v1',
  'credentialprovider.kubelet.k8s.io/v1alpha1',
  'credentialprovider.kubelet.k8s.io/v1beta1',
] as const;
/** Service-account token cache types, sorted. */
export const SERVICE_ACCOUNT_TOKEN_CACHE_TYPES = ['ServiceAccount', 'Token'] as const;

/** Service-account token mode settings of a provider (`tokenAttributes`, config v1 only). */
export interface TokenAttributes {
  serviceAccountTokenAudience: string;
  cacheType: string;
  requireServiceAccount?: boolean;
  requiredServiceAccountAnnotationKeys: string[];
  optionalServiceAccountAnnotationKeys: string[];
}

/** One provider of the config. */
export interface CredentialProviderSpec {
  /** The plugin binary's file name in the plugin bin dir. */
  name: string;
  /** Globs of images the plugin is asked about (keyring matching rules). */
  matchImages: string[];
  /** Nanoseconds; undefined when absent (a validation error). */
  defaultCacheDuration?: bigint;
  /** The plugin protocol version (`credentialprovider.kubelet.k8s.io/v1`). */
  apiVersion: string;
  args: string[];
  /** Extra environment for the plugin; values may be secrets. */
  env: Array<{ name: string; value: string }>;
  tokenAttributes?: TokenAttributes;
}

/** A decoded (and, from `loadCredentialProviderConfig`, validated) config. */
export interface CredentialProviderConfig {
  providers: CredentialProviderSpec[];
  /** The files read, in order. */
  files: string[];
  /** `sha256:<hex>` over the raw files, each prefixed with its length (kubelet's config hash metric). */
  hash: string;
}

// --- strict decoding ------------------------------------------------------------------------------------

type FieldType =
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'duration' }
  | { t: 'list'; of: FieldType }
  | { t: 'struct'; goName: string; fields: Record<string, FieldType> };

const STR: FieldType = { t: 'string' };
const STRS: FieldType = { t: 'list', of: STR };

function providerType(withTokenAttributes: boolean): FieldType {
  const fields: Record<string, FieldType> = {
    name: STR,
    matchImages: STRS,
    defaultCacheDuration: { t: 'duration' },
    apiVersion: STR,
    args: STRS,
    env: { t: 'list', of: { t: 'struct', goName: 'ExecEnvVar', fields: { name: STR, value: STR } } },
  };
  if (withTokenAttributes) {
    fields.tokenAttributes = {
      t: 'struct',
      goName: 'ServiceAccountTokenAttributes',
      fields: {
        serviceAccountTokenAudience: STR,
        cacheType: STR,
        requireServiceAccount: { t: 'bool' },
        requiredServiceAccountAnnotationKeys: STRS,
        optionalServiceAccountAnnotationKeys: STRS,
      },
    };
  }
  return { t: 'struct', goName: 'CredentialProvider', fields };
}

class DecodeError extends Error {}

function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return 'object';
  return typeof v === 'boolean' ? 'bool' : typeof v;
}

function goTypeName(t: FieldType): string {
  switch (t.t) {
    case 'string':
      return 'string';
    case 'bool':
      return 'bool';
    case 'duration':
      return 'string';
    case 'list':
      return '[]' + goTypeName(t.of);
    case 'struct':
      return t.goName;
  }
}

/** Decodes `v` against `type`; unknown fields go to `unknown`; type errors throw `DecodeError`. */
function decodeValue(v: unknown, type: FieldType, path: string, unknown: string[]): unknown {
  if (v === null || v === undefined) return undefined;
  const mismatch = (): never => {
    throw new DecodeError(
      `json: cannot unmarshal ${jsonKind(v)} into Go struct field ${path} of type ${goTypeName(type)}`,
    );
  };
  switch (type.t) {
    case 'string':
      return typeof v === 'string' ? v : mismatch();
    case 'bool':
      return typeof v === 'boolean' ? v : mismatch();
    case 'duration': {
      if (typeof v !== 'string')
        throw new DecodeError(`json: cannot unmarshal ${jsonKind(v)} into Go value of type string`);
      const ns = parseGoDuration(v);
      if (ns === undefined) throw new DecodeError(`time: invalid duration ${quote(v, 100)}`);
      return ns;
    }
    case 'list': {
      if (!Array.isArray(v)) return mismatch();
      return v.map((x, i) => decodeValue(x, type.of, `${path}[${i}]`, unknown));
    }
    case 'struct': {
      if (typeof v !== 'object' || Array.isArray(v)) return mismatch();
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const ft = type.fields[k];
        if (ft === undefined) {
          unknown.push(path === '' ? k : `${path}.${k}`);
          continue;
        }
        const d = decodeValue(x, ft, path === '' ? k : `${path}.${k}`, unknown);
        if (d !== undefined) out[k] = d;
      }
      return out;
    }
  }
}

/**
 * Decodes one config document (YAML or JSON) strictly, without validating it.
 *
 * @throws KimgError `CREDENTIAL_PROVIDER_CONFIG_INVALID`: `error decoding config "<file>": <reason>`
 * (syntax, duplicate keys, kind/apiVersion, unknown fields, wrong types, bad durations).
 */
export function parseCredentialProviderConfig(text: string, file = '<input>'): CredentialProviderSpec[] {
  const fail = (why: string, cause?: unknown): KimgError =>
    new KimgError('CREDENTIAL_PROVIDER_CONFIG_INVALID', `error decoding config ${quote(file)}: ${why}`, {
      file,
      ...(cause !== undefined ? { cause } : {}),
    });
  const docs = parseKubeYamlDocuments(text);
  const first = Array.isArray(docs) ? docs[0] : undefined;
  if (first === undefined) throw fail("Object 'Kind' is missing");
  const err = first.errors[0];
  if (err !== undefined) {
    const line = err.linePos?.[0];
    throw fail(
      `invalid YAML${line === undefined ? '' : ` at line ${line.line}, column ${line.col}`}: ${err.code}`,
    );
  }
  let root: unknown;
  try {
    root = first.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw fail((e as Error).message, e);
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root))
    throw fail("Object 'Kind' is missing");
  const obj = root as Record<string, unknown>;
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  const apiVersion = typeof obj.apiVersion === 'string' ? obj.apiVersion : '';
  if (kind === '') throw fail("Object 'Kind' is missing");
  if (
    !(CREDENTIAL_PROVIDER_CONFIG_VERSIONS as readonly string[]).includes(apiVersion) ||
    kind !== 'CredentialProviderConfig'
  ) {
    throw fail(
      `no kind ${quote(kind, 100)} is registered for version ${quote(apiVersion, 100)}; use kind CredentialProviderConfig with apiVersion ${CREDENTIAL_PROVIDER_CONFIG_VERSIONS.join(', ')}`,
    );
  }
  const v1 = apiVersion === 'kubelet.config.k8s.io/v1';
  const unknown: string[] = [];
  let providers: Array<Record<string, unknown>>;
  try {
    const top = decodeValue(
      obj,
      {
        t: 'struct',
        goName: 'CredentialProviderConfig',
        fields: { apiVersion: STR, kind: STR, providers: { t: 'list', of: providerType(v1) } },
      },
      '',
      unknown,
    ) as Record<string, unknown>;
    providers = (top.providers as Array<Record<string, unknown>> | undefined) ?? [];
  } catch (e) {
    if (e instanceof DecodeError) throw fail(e.message);
    throw e;
  }
  if (unknown.length > 0)
    throw fail(`strict decoding error: ${unknown.map((u) => `unknown field ${quote(u, 200)}`).join(', ')}`);
  return providers.map((p) => {
    const ta = p.tokenAttributes as Record<string, unknown> | undefined;
    const spec: CredentialProviderSpec = {
      name: (p.name as string | undefined) ?? '',
      matchImages: ((p.matchImages as Array<string | undefined> | undefined) ?? []).map((x) => x ?? ''),
      apiVersion: (p.apiVersion as string | undefined) ?? '',
      args: ((p.args as Array<string | undefined> | undefined) ?? []).map((x) => x ?? ''),
      env: ((p.env as Array<Record<string, string> | undefined> | undefined) ?? []).map((e) => ({
        name: e?.name ?? '',
        value: e?.value ?? '',
      })),
    };
    if (p.defaultCacheDuration !== undefined) spec.defaultCacheDuration = p.defaultCacheDuration as bigint;
    if (ta !== undefined) {
      spec.tokenAttributes = {
        serviceAccountTokenAudience: (ta.serviceAccountTokenAudience as string | undefined) ?? '',
        cacheType: (ta.cacheType as string | undefined) ?? '',
        ...(ta.requireServiceAccount !== undefined
          ? { requireServiceAccount: ta.requireServiceAccount as boolean }
          : {}),
        requiredServiceAccountAnnotationKeys: (
          (ta.requiredServiceAccountAnnotationKeys as Array<string | undefined> | undefined) ?? []
        ).map((x) => x ?? ''),
        optionalServiceAccountAnnotationKeys: (
          (ta.optionalServiceAccountAnnotationKeys as Array<string | undefined> | undefined) ?? []
        ).map((x) => x ?? ''),
      };
    }
    return spec;
  });
}

// --- validation -------------------------------------------------------------------------------------------

/** Options of validation. */
export interface CredentialProviderConfigOptions {
  /**
   * Feature gate `KubeletServiceAccountTokenForCredentialProviders` (beta, on by default since 1.34):
   * when false, `tokenAttributes` is rejected.
   */
  serviceAccountTokenForCredentialProviders?: boolean;
}

/** Go's `%q` of a value in a field error (capped: a configuration file can hold anything). */
const goq = (s: string): string => goQuote(s.length > 10_000 ? s.slice(0, 10_000) + '…' : s);

/**
 * kubelet's `validateCredentialProviderConfig`: every field error, in kubelet's order and wording.
 * Empty when valid.
 */
export function validateCredentialProviderConfig(
  providers: readonly CredentialProviderSpec[],
  options: CredentialProviderConfigOptions = {},
): string[] {
  const gate = options.serviceAccountTokenForCredentialProviders ?? true;
  const errs: string[] = [];
  if (providers.length === 0) errs.push('providers: Required value: at least 1 item in plugins is required');
  const seen = new Set<string>();
  for (const p of providers) {
    if (p.name.includes('/'))
      errs.push(`providers.name: Invalid value: ${goq(p.name)}: provider name cannot contain '/'`);
    if (p.name.includes(' '))
      errs.push(`providers.name: Invalid value: ${goq(p.name)}: provider name cannot contain spaces`);
    if (p.name === '.')
      errs.push(`providers.name: Invalid value: ${goq(p.name)}: provider name cannot be '.'`);
    if (p.name === '..')
      errs.push(`providers.name: Invalid value: ${goq(p.name)}: provider name cannot be '..'`);
    if (seen.has(p.name)) errs.push(`providers.name: Duplicate value: ${goq(p.name)}`);
    seen.add(p.name);
    if (p.apiVersion === '') errs.push('providers.apiVersion: Required value');
    else if (!(CREDENTIAL_PROVIDER_API_VERSIONS as readonly string[]).includes(p.apiVersion)) {
      errs.push(
        `providers.apiVersion: Unsupported value: ${goq(p.apiVersion)}: supported values: ${CREDENTIAL_PROVIDER_API_VERSIONS.map(goq).join(', ')}`,
      );
    }
    if (p.matchImages.length === 0)
      errs.push('providers.matchImages: Required value: at least 1 item in matchImages is required');
    for (const m of p.matchImages) {
      const r = goParseUrl('https://' + m);
      if ('error' in r)
        errs.push(`providers.matchImages: Invalid value: ${goq(m)}: match image is invalid: ${r.error}`);
    }
    if (p.defaultCacheDuration === undefined) errs.push('providers.defaultCacheDuration: Required value');
    else if (p.defaultCacheDuration < 0n) {
      errs.push(
        `providers.defaultCacheDuration: Invalid value: ${formatGoDuration(p.defaultCacheDuration)}: must be greater than or equal to 0`,
      );
    }
    const ta = p.tokenAttributes;
    if (ta !== undefined) {
      const fp = 'providers.tokenAttributes';
      if (!gate)
        errs.push(
          `${fp}: Forbidden: tokenAttributes is not supported when KubeletServiceAccountTokenForCredentialProviders feature gate is disabled`,
        );
      if (ta.serviceAccountTokenAudience === '')
        errs.push(`${fp}.serviceAccountTokenAudience: Required value`);
      if (ta.requireServiceAccount === undefined) errs.push(`${fp}.requireServiceAccount: Required value`);
      if (p.apiVersion !== 'credentialprovider.kubelet.k8s.io/v1') {
        errs.push(
          `${fp}: Forbidden: tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1 API version`,
        );
      }
      if (ta.requireServiceAccount === false && ta.requiredServiceAccountAnnotationKeys.length > 0) {
        errs.push(
          `${fp}.requiredServiceAccountAnnotationKeys: Forbidden: requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set`,
        );
      }
      errs.push(
        ...validateAnnotationKeys(
          `${fp}.requiredServiceAccountAnnotationKeys`,
          ta.requiredServiceAccountAnnotationKeys,
        ),
      );
      errs.push(
        ...validateAnnotationKeys(
          `${fp}.optionalServiceAccountAnnotationKeys`,
          ta.optionalServiceAccountAnnotationKeys,
        ),
      );
      const opt = new Set(ta.optionalServiceAccountAnnotationKeys);
      const both = [...new Set(ta.requiredServiceAccountAnnotationKeys.filter((k) => opt.has(k)))].sort();
      if (both.length > 0)
        errs.push(
          `${fp}: Invalid value: []string{${both.map(goq).join(', ')}}: annotation keys cannot be both required and optional`,
        );
      if (ta.cacheType === '') {
        errs.push(
          `${fp}.cacheType: Required value: cacheType is required to be set when tokenAttributes is specified. Supported values are: ${SERVICE_ACCOUNT_TOKEN_CACHE_TYPES.join(', ')}`,
        );
      } else if (!(SERVICE_ACCOUNT_TOKEN_CACHE_TYPES as readonly string[]).includes(ta.cacheType)) {
        errs.push(
          `${fp}.cacheType: Unsupported value: ${goq(ta.cacheType)}: supported values: ${SERVICE_ACCOUNT_TOKEN_CACHE_TYPES.map(goq).join(', ')}`,
        );
      }
    }
  }
  return errs;
}

const QNAME_MSG =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QNAME_FMT = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const QNAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** apimachinery `RegexError`: `msg (e.g. 'a',  or 'b', regex used for validation is 'fmt')`. */
function regexError(msg: string, fmt: string, ...examples: string[]): string {
  if (examples.length === 0) return `${msg} (regex used for validation is '${fmt}')`;
  return `${msg} (e.g. ${examples.map((e) => `'${e}', `).join(' or ')}regex used for validation is '${fmt}')`;
}

/** apimachinery `IsQualifiedName`. */
export function isQualifiedName(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) name = parts[0] as string;
  else if (parts.length === 2) {
    const prefix = parts[0] as string;
    name = parts[1] as string;
    if (prefix.length === 0) errs.push('prefix part must be non-empty');
    else {
      if (prefix.length > 253) errs.push('prefix part must be no more than 253 characters');
      if (!DNS1123_SUBDOMAIN_RE.test(prefix))
        errs.push('prefix part ' + regexError(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, 'example.com'));
    }
  } else {
    return [
      'a qualified name ' +
        regexError(QNAME_MSG, QNAME_FMT, 'MyName', 'my.name', '123-abc') +
        " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ];
  }
  if (name.length === 0) errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push('name part must be no more than 63 characters');
  if (!QNAME_RE.test(name))
    errs.push('name part ' + regexError(QNAME_MSG, QNAME_FMT, 'MyName', 'my.name', '123-abc'));
  return errs;
}

function validateAnnotationKeys(path: string, keys: readonly string[]): string[] {
  const errs: string[] = [];
  const seen = new Set<string>();
  for (const k of keys) {
    for (const msg of isQualifiedName(k.toLowerCase()))
      errs.push(`${path}: Invalid value: ${goq(k)}: ${msg}`);
    if (seen.has(k)) errs.push(`${path}: Duplicate value: ${goq(k)}`);
    seen.add(k);
  }
  return errs;
}

/** apimachinery's aggregate error text: the error itself, or `[e1, e2]`. */
export function aggregateMessage(errs: readonly string[]): string {
  return errs.length === 1 ? (errs[0] as string) : `[${errs.join(', ')}]`;
}

/**
 * Reads, decodes, merges and validates the config at `path` (a file, or a directory of
 * `*.json|*.yaml|*.yml` files read in lexicographic order).
 *
 * @throws KimgError `FILE_NOT_FOUND` when the path does not exist; `CREDENTIAL_PROVIDER_CONFIG_INVALID`
 * for an empty path, an empty directory, decoding errors (`error decoding config "<file>": …`), a
 * provider name repeated across files, or validation errors
 * (`failed to validate credential provider config: …`).
 */
export async function loadCredentialProviderConfig(
  path: string,
  options: CredentialProviderConfigOptions = {},
): Promise<CredentialProviderConfig> {
  if (path === '')
    throw new KimgError('CREDENTIAL_PROVIDER_CONFIG_INVALID', 'credential provider config path is empty');
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KimgError(
      code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'CREDENTIAL_PROVIDER_CONFIG_INVALID',
      `unable to access path ${quote(path)}: ${code ?? 'error'}`,
      {
        file: path,
        cause: e,
      },
    );
  }
  let files: string[];
  if (isDir) {
    const entries = await readdir(path, { withFileTypes: true });
    files = entries
      .filter((e) => !e.isDirectory() && ['.json', '.yaml', '.yml'].includes(extname(e.name)))
      .map((e) => join(path, e.name))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    if (files.length === 0) {
      throw new KimgError(
        'CREDENTIAL_PROVIDER_CONFIG_INVALID',
        `no configuration files found in directory ${quote(path)}`,
        { file: path },
      );
    }
  } else {
    files = [path];
  }
  const hasher = createHash('sha256');
  const providers: CredentialProviderSpec[] = [];
  const names = new Set<string>();
  for (const f of files) {
    let data: Buffer;
    try {
      data = await readFile(f);
    } catch (e) {
      throw new KimgError(
        'CREDENTIAL_PROVIDER_CONFIG_INVALID',
        `unable to read file ${quote(f)}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
        { file: f, cause: e },
      );
    }
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(data.length));
    hasher.update(len).update(data);
    for (const p of parseCredentialProviderConfig(data.toString('utf8'), f)) {
      if (names.has(p.name)) {
        throw new KimgError(
          'CREDENTIAL_PROVIDER_CONFIG_INVALID',
          `duplicate provider name ${quote(p.name)} found in configuration file(s)`,
          { file: f },
        );
      }
      names.add(p.name);
      providers.push(p);
    }
  }
  const errs = validateCredentialProviderConfig(providers, options);
  if (errs.length > 0) {
    throw new KimgError(
      'CREDENTIAL_PROVIDER_CONFIG_INVALID',
      `failed to validate credential provider config: ${aggregateMessage(errs)}`,
      {
        file: path,
        items: errs,
      },
    );
  }
  return { providers, files, hash: `sha256:${hasher.digest('hex')}` };
}
