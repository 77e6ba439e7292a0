/**
 * `kubectl create secret docker-registry` (kubectl `pkg/cmd/create/create_secret_docker.go`): the
 * Secret object it builds and prints with `--dry-run=client -o yaml|json`, byte for byte.
 *
 * - type `kubernetes.io/dockerconfigjson`, key `.dockerconfigjson`;
 * - from flags: `{"auths":{SERVER:{"username","password","email","auth"}}}` with empty fields omitted,
 *   `auth` = base64(`user:password`), Go's JSON encoding (HTML characters escaped), server default
 *   `https://index.docker.io/v1/`; username, password and server are required together;
 * - from files (`--from-file=[key=]path`, which wins over the flags): a source without `key=` gets
 *   the key `.dockerconfigjson`; the file content is copied as is (kubectl does not check it);
 *   directories, duplicate keys, empty parts and invalid key names are errors with kubectl's text;
 * - `metadata.namespace` only when a namespace is given; `creationTimestamp: null` as kubectl prints.
 */
import { readFile, stat } from 'node:fs/promises';
import { KimgError, quote } from '../errors/index.js';
import { base64Encode } from './internal/go-base64.js';
import { goJsonMarshal } from './internal/go-json.js';
import { toKubectlYaml } from './internal/kubectl-yaml.js';
import { DOCKER_CONFIG_JSON_KEY, SECRET_TYPE_DOCKER_CONFIG_JSON } from './k8s-objects.js';
import { Secret } from './secret.js';

/** kubectl's default `--docker-server`. */
export const DEFAULT_DOCKER_SERVER = 'https://index.docker.io/v1/';

/** Options of `buildDockerRegistrySecret` (the flags of `kubectl create secret docker-registry`). */
export interface DockerRegistrySecretOptions {
  name: string;
  /** Printed as `metadata.namespace` only when given (kubectl's `-n`). */
  namespace?: string;
  /** Default `https://index.docker.io/v1/`. */
  server?: string;
  username?: string;
  password?: string | Secret;
  email?: string;
  /** `--from-file` sources, `path` or `key=path`; when present the flags above are ignored. */
  fromFile?: readonly string[];
}

/** The Secret object kubectl prints. `data` values are base64 and hold credentials: print only on request. */
export interface DockerRegistrySecretManifest {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace?: string; creationTimestamp: null };
  data: Record<string, string>;
  type: typeof SECRET_TYPE_DOCKER_CONFIG_JSON;
}

/**
 * The `.dockerconfigjson` payload kubectl writes for one server (`handleDockerCfgJSONContent`).
 * Holds the password: never log it.
 */
export function dockerConfigJsonFor(server: string, username: string, password: string, email = ''): string {
  const entry = {
    username: username === '' ? undefined : username,
    password: password === '' ? undefined : password,
    email: email === '' ? undefined : email,
    auth: base64Encode(`${username}:${password}`),
  };
  return goJsonMarshal({ auths: { [server]: entry } });
}

const KEY_RE = /^[-._a-zA-Z0-9]+$/;

/** apimachinery `IsConfigMapKey` messages (empty when valid). */
function configMapKeyErrors(key: string): string[] {
  const errs: string[] = [];
  if (key.length > 253) errs.push('must be no more than 253 characters');
  if (!KEY_RE.test(key)) {
    errs.push(
      "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
    );
  }
  if (key === '.') errs.push("must not be '.'");
  else if (key === '..') errs.push("must not be '..'");
  else if (key.startsWith('..')) errs.push("must not start with '..'");
  return errs;
}

/**
 * Builds the Secret `kubectl create secret docker-registry` would create.
 *
 * @throws KimgError `USAGE` (`name must be specified`; `either --from-file or the combination of
 * --docker-username, --docker-password and --docker-server is required`), `INVALID_ARGUMENT` for bad
 * `--from-file` sources (kubectl's messages), `FILE_NOT_FOUND` for a missing file.
 */
export async function buildDockerRegistrySecret(
  options: DockerRegistrySecretOptions,
): Promise<DockerRegistrySecretManifest> {
  if (options.name === '') throw new KimgError('USAGE', 'name must be specified');
  const server = options.server ?? DEFAULT_DOCKER_SERVER;
  const username = options.username ?? '';
  const password = options.password instanceof Secret ? options.password.reveal() : (options.password ?? '');
  const sources = (options.fromFile ?? []).map((s) =>
    s.includes('=') ? s : `${DOCKER_CONFIG_JSON_KEY}=${s}`,
  );
  if (sources.length === 0 && (username === '' || password === '' || server === '')) {
    throw new KimgError(
      'USAGE',
      'either --from-file or the combination of --docker-username, --docker-password and --docker-server is required',
    );
  }
  const data: Record<string, string> = {};
  if (sources.length > 0) {
    for (const source of sources) {
      const eq = source.indexOf('=');
      const key = source.slice(0, eq);
      const path = source.slice(eq + 1);
      if (key === '')
        throw new KimgError('INVALID_ARGUMENT', `key name for file path ${path} missing`, { input: source });
      if (path === '')
        throw new KimgError('INVALID_ARGUMENT', `file path for key name ${key} missing`, { input: source });
      let isDir: boolean;
      try {
        isDir = (await stat(path)).isDirectory();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new KimgError(
          code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'INVALID_ARGUMENT',
          `error reading ${path}: ${code === 'ENOENT' ? 'no such file or directory' : (code ?? 'error')}`,
          {
            file: path,
            cause: e,
          },
        );
      }
      if (isDir)
        throw new KimgError('INVALID_ARGUMENT', 'cannot give a key name for a directory path', {
          file: path,
        });
      const errs = configMapKeyErrors(key);
      if (errs.length > 0)
        throw new KimgError(
          'INVALID_ARGUMENT',
          `${quote(key)} is not valid key name for a Secret ${errs.join(';')}`,
          { input: key },
        );
      if (Object.prototype.hasOwnProperty.call(data, key)) {
        throw new KimgError(
          'INVALID_ARGUMENT',
          `cannot add key ${key}, another key by that name already exists`,
          { input: key },
        );
      }
      let content: Buffer;
      try {
        content = await readFile(path);
      } catch (e) {
        throw new KimgError(
          'INVALID_ARGUMENT',
          `error reading ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
          { file: path, cause: e },
        );
      }
      Object.defineProperty(data, key, {
        value: content.toString('base64'),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  } else {
    data[DOCKER_CONFIG_JSON_KEY] = base64Encode(
      dockerConfigJsonFor(server, username, password, options.email ?? ''),
    );
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: options.name,
      ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
      creationTimestamp: null,
    },
    data,
    type: SECRET_TYPE_DOCKER_CONFIG_JSON,
  };
}

/**
 * Prints the Secret as `kubectl ... --dry-run=client -o yaml` or `-o json` does (kubectl v1.32
 * formatting: go-yaml v2 block style; JSON with 4-space indent, kind/apiVersion first, sorted data keys).
 */
export function formatDockerRegistrySecret(
  secret: DockerRegistrySecretManifest,
  format: 'yaml' | 'json',
): string {
  const dataKeys = Object.keys(secret.data).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  if (format === 'json') {
    return (
      goJsonMarshal(
        {
          kind: secret.kind,
          apiVersion: secret.apiVersion,
          metadata: {
            name: secret.metadata.name,
            namespace: secret.metadata.namespace,
            creationTimestamp: null,
          },
          data: Object.fromEntries(dataKeys.map((k) => [k, secret.data[k] as string])),
          type: secret.type,
        },
        '    ',
      ) + '\n'
    );
  }
  const metadata: Record<string, string | null> = { creationTimestamp: null, name: secret.metadata.name };
  if (secret.metadata.namespace !== undefined) metadata.namespace = secret.metadata.namespace;
  const data: Record<string, string> = {};
  for (const k of dataKeys)
    Object.defineProperty(data, k, {
      value: secret.data[k],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return toKubectlYaml({
    apiVersion: secret.apiVersion,
    data,
    kind: secret.kind,
    metadata,
    type: secret.type,
  });
}
