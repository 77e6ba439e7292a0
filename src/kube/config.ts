/**
 * Client configuration, resolved the way kubectl resolves it (client-go
 * `tools/clientcmd/loader.go` `ClientConfigLoadingRules`, `client_config.go`
 * `DeferredLoadingClientConfig`, `rest/config.go` `InClusterConfig`):
 *
 * 1. `--kubeconfig FILE` when given: that file only (a missing file is an error);
 * 2. else `KUBECONFIG` (a `:`-separated list; files that do not exist are skipped, the rest merged,
 *    the first file to define a name wins);
 * 3. else `~/.kube/config` when it exists;
 * 4. else, when none of those yields a cluster and the process runs in a pod
 *    (`KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` set, the service account token file
 *    present), the in-cluster configuration: the token file, its CA and namespace files. The client
 *    library's token-file authenticator re-reads the token when its copy is over 60 s old (client-go
 *    re-reads it every minute too), so a projected token the kubelet rotated (at 80% of its
 *    lifetime, an hour by default) is picked up long before the old one expires.
 *
 * `--context` selects a context of the merged file; the namespace is the context's, else (in a
 * cluster) the service account's namespace file, else `default`. The client library
 * (`@kubernetes/client-node`) does the transport: TLS, bearer tokens, client certificates, exec and
 * auth-provider plugins.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadClientLibrary, type ClientLibrary } from './internal/library.js';
import { KimgError, quote } from '../errors/index.js';

/** The service account directory kubelet mounts into every pod. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Options of {@link loadKubeClientConfig}. */
export interface KubeConfigOptions {
  /** `--kubeconfig`: use this file only. */
  kubeconfig?: string;
  /** `--context`: a context of the kubeconfig (default its `current-context`). */
  context?: string;
  /** `-n` / `--namespace`: overrides the context's namespace. */
  namespace?: string;
  /** Environment (`KUBECONFIG`, `KUBERNETES_SERVICE_HOST/PORT`, `HOME`). Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The service account directory for in-cluster configuration. Default {@link SERVICE_ACCOUNT_DIR}. */
  serviceAccountDir?: string;
}

/** A resolved client configuration. */
export interface KubeClientConfig {
  /** The client library's configuration (current context set). */
  readonly kubeConfig: KubeConfig;
  /** The API server URL. */
  readonly server: string;
  /** The namespace for namespaced requests without `-n`. */
  readonly namespace: string;
  /** The context used (`inClusterContext` in a pod). */
  readonly context: string;
  /** Where the configuration came from: a kubeconfig file list, or `in-cluster`. */
  readonly source:
    { kind: 'kubeconfig'; files: string[] } | { kind: 'in-cluster'; serviceAccountDir: string };
}

function loadFile(kc: KubeConfig, file: string): void {
  try {
    kc.loadFromFile(file);
  } catch (e) {
    throw new KimgError(
      'KUBE_CONFIG_INVALID',
      `kubeconfig ${quote(file)} cannot be loaded: ${(e as Error).message}`,
      {
        file,
        cause: e,
      },
    );
  }
}

/** Merges `next` into `into` with client-go's rule: the first file to define a name wins. */
function mergeFirstWins(into: KubeConfig, next: KubeConfig): void {
  const has = <T extends { name: string }>(list: readonly T[], name: string): boolean =>
    list.some((x) => x.name === name);
  const clusters = [...into.clusters, ...next.clusters.filter((c) => !has(into.clusters, c.name))];
  const users = [...into.users, ...next.users.filter((u) => !has(into.users, u.name))];
  const contexts = [...into.contexts, ...next.contexts.filter((c) => !has(into.contexts, c.name))];
  const current = into.currentContext !== '' ? into.currentContext : next.currentContext;
  into.loadFromOptions({ clusters, users, contexts, currentContext: current });
}

/**
 * Resolves the client configuration (see the module comment).
 *
 * @throws KimgError `KUBE_CONFIG_INVALID` when `--kubeconfig` names a missing or unreadable file, no
 * source yields a cluster, or `--context` names a context the kubeconfig does not have.
 */
export async function loadKubeClientConfig(options: KubeConfigOptions = {}): Promise<KubeClientConfig> {
  const lib = await loadClientLibrary();
  return resolveConfig(lib, options);
}

function resolveConfig(lib: ClientLibrary, options: KubeConfigOptions): KubeClientConfig {
  const env = options.env ?? process.env;
  const kc = new lib.KubeConfig();
  let files: string[] = [];
  if (options.kubeconfig !== undefined && options.kubeconfig !== '') {
    if (!existsSync(options.kubeconfig)) {
      throw new KimgError('KUBE_CONFIG_INVALID', `kubeconfig ${quote(options.kubeconfig)} does not exist`, {
        file: options.kubeconfig,
      });
    }
    files = [options.kubeconfig];
  } else if ((env.KUBECONFIG ?? '') !== '') {
    files = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '' && existsSync(f));
  } else {
    const home = env.HOME ?? homedir();
    const file = join(home, '.kube', 'config');
    if (existsSync(file)) files = [file];
  }
  for (const [i, file] of files.entries()) {
    if (i === 0) loadFile(kc, file);
    else {
      const next = new lib.KubeConfig();
      loadFile(next, file);
      mergeFirstWins(kc, next);
    }
  }
  if (kc.clusters.length > 0) {
    if (options.context !== undefined && options.context !== '') {
      if (kc.getContextObject(options.context) === null) {
        throw new KimgError(
          'KUBE_CONFIG_INVALID',
          `context ${quote(options.context)} is not in the kubeconfig (${files.join(delimiter)}); it has ${kc.contexts.map((c) => quote(c.name)).join(', ') || 'none'}`,
          { input: options.context, items: kc.contexts.map((c) => c.name) },
        );
      }
      kc.setCurrentContext(options.context);
    }
    const ctx = kc.getContextObject(kc.getCurrentContext());
    const cluster = kc.getCurrentCluster();
    if (ctx === null || cluster === null) {
      throw new KimgError(
        'KUBE_CONFIG_INVALID',
        `the kubeconfig (${files.join(delimiter)}) has no usable current context: pass --context NAME`,
        { items: kc.contexts.map((c) => c.name) },
      );
    }
    return {
      kubeConfig: kc,
      server: cluster.server,
      namespace:
        options.namespace ??
        (ctx.namespace !== undefined && ctx.namespace !== '' ? ctx.namespace : 'default'),
      context: ctx.name,
      source: { kind: 'kubeconfig', files },
    };
  }
  const saDir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '';
  const tokenFile = join(saDir, 'token');
  if (host !== '' && port !== '' && existsSync(tokenFile)) {
    const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    kc.loadFromClusterAndUser(
      { name: 'inCluster', server, caFile: join(saDir, 'ca.crt'), skipTLSVerify: false },
      { name: 'inClusterUser', authProvider: { name: 'tokenFile', config: { tokenFile } } },
    );
    kc.setCurrentContext('loaded-context');
    let namespace = 'default';
    try {
      namespace = readFileSync(join(saDir, 'namespace'), 'utf8').trim() || 'default';
    } catch {
      // No namespace file: `default`, as client-go.
    }
    return {
      kubeConfig: kc,
      server,
      namespace: options.namespace ?? namespace,
      context: kc.getCurrentContext(),
      source: { kind: 'in-cluster', serviceAccountDir: saDir },
    };
  }
  throw new KimgError(
    'KUBE_CONFIG_INVALID',
    'no Kubernetes client configuration: pass --kubeconfig FILE, set KUBECONFIG, create ~/.kube/config, or run in a pod with a service account',
  );
}
