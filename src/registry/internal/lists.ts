/**
 * Listings: a repository's tags and the registry's catalog, page by page (`n`, then the `Link:
 * <…>; rel="next"` target on the endpoint that served the first page).
 */
import { KimgError } from '../../errors/index.js';
import type { RegistryEndpoint } from '../hosts.js';
import { repositoryScope } from '../auth.js';
import type { CallOptions, RepositoryRef } from '../types.js';
import { readCapped } from './body.js';
import type { Op, RequestCore } from './request.js';
import { header } from './transport.js';

/**
 * Lists a repository's tags, following pagination (`n`, `last`, `Link: <…>; rel="next"`).
 * @throws `NOT_FOUND` (repository unknown), auth and registry errors.
 */
export async function listTags(
  core: RequestCore,
  repo: RepositoryRef,
  opts: CallOptions & { pageSize?: number; limit?: number } = {},
): Promise<string[]> {
  return paginate(
    core,
    repo.domain,
    repo.path,
    `/${repo.path}/tags/list`,
    'tags',
    [repositoryScope(repo.path, ['pull'])],
    opts,
  );
}

/**
 * Lists the registry's repositories (`GET /v2/_catalog`), following pagination.
 * @throws auth and registry errors (many registries deny the catalog).
 */
export async function listRepositories(
  core: RequestCore,
  registry: string,
  opts: CallOptions & { pageSize?: number; limit?: number } = {},
): Promise<string[]> {
  return paginate(core, registry, undefined, '/_catalog', 'repositories', ['registry:catalog:*'], opts);
}

async function paginate(
  core: RequestCore,
  registry: string,
  repository: string | undefined,
  path: string,
  field: 'tags' | 'repositories',
  scopes: string[],
  opts: CallOptions & { pageSize?: number; limit?: number },
): Promise<string[]> {
  const out: string[] = [];
  const limit = opts.limit ?? Number.MAX_SAFE_INTEGER;
  let next: { url: URL; endpoint: RegistryEndpoint } | undefined;
  for (let page = 0; page < 100_000; page++) {
    const op: Op = {
      registry,
      repository,
      capability: 'pull',
      method: 'GET',
      scopes,
      ctx: { registry, repository, kind: field === 'tags' ? 'tags' : 'catalog', action: 'pull' },
      followRedirects: true,
      call: opts,
      accept: (s) => s === 200,
      headers: { accept: 'application/json' },
    };
    if (next) {
      op.url = next.url;
      op.endpoint = next.endpoint;
    } else {
      op.path = path;
      if (opts.pageSize) op.query = [['n', String(opts.pageSize)]];
    }
    const { res, endpoint } = await core.execute(op);
    const { bytes, truncated } = await readCapped(res.body, 16 * 1024 * 1024);
    if (truncated)
      throw new KimgError(
        'REGISTRY_PROTOCOL_ERROR',
        `registry ${registry} sent a ${field} page larger than 16 MiB`,
        { host: res.url.host },
      );
    let list: unknown;
    try {
      list = (JSON.parse(bytes.toString('utf8')) as Record<string, unknown>)[field];
    } catch (e) {
      throw new KimgError(
        'REGISTRY_PROTOCOL_ERROR',
        `registry ${registry} sent an unreadable ${field} list: ${(e as Error).message}`,
        { host: res.url.host, cause: e },
      );
    }
    if (
      list !== null &&
      list !== undefined &&
      !(Array.isArray(list) && list.every((t) => typeof t === 'string'))
    ) {
      throw new KimgError(
        'REGISTRY_PROTOCOL_ERROR',
        `registry ${registry} sent a ${field} list that is not an array of strings`,
        { host: res.url.host },
      );
    }
    for (const t of (list as string[] | null) ?? []) {
      out.push(t);
      if (out.length >= limit) return out;
    }
    const link = nextLink(header(res.headers, 'link'));
    if (!link) return out;
    next = { url: new URL(link, res.url), endpoint };
  }
  throw new KimgError('REGISTRY_PROTOCOL_ERROR', `registry ${registry} kept paginating the ${field} list`, {
    host: registry,
  });
}

/** The `rel="next"` target of a `Link` header, if any. */
export function nextLink(v: string | undefined): string | undefined {
  if (!v) return undefined;
  for (const part of v.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*(.*)$/.exec(part);
    if (!m) continue;
    if (/(?:^|;)\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?\s*(?:;|$)/i.test(m[2] ?? '')) return m[1];
  }
  return undefined;
}
