/**
 * Service-account tokens for credential provider plugins in token mode (KEP-4412, `tokenAttributes`).
 * The kubelet asks the API server for a token bound to the pod (TokenRequest) with the provider's
 * audience and hands it to the plugin as `serviceAccountToken`. kimg's plugin manager takes the token
 * from a {@link TokenSource}:
 *
 * - {@link ProjectedTokenFileSource}: a projected token file per ServiceAccount,
 *   `<dir>/<namespace>/<serviceaccount>/token` (what a projected `serviceAccountToken` volume writes),
 *   re-read on every request so a rotated token is used at once. The file must hold a token for the
 *   provider's audience; kimg does not mint tokens. Standalone nodes use this.
 * - In cluster mode `TokenRequestSource` (src/kube) asks the API server's TokenRequest API.
 *
 * A token is a secret: it is never logged, never put in errors, and reaches the plugin only on stdin.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { KimgError } from '../errors/index.js';

/** What a token is asked for: the ServiceAccount, the pod it is bound to, and the audience. */
export interface ServiceAccountTokenRequest {
  namespace: string;
  name: string;
  uid: string;
  audience: string;
  podName: string;
  podUid: string;
}

/** Issues service-account tokens for the plugins' token mode. */
export interface TokenSource {
  /** The token; rejects with a coded KimgError (never naming the token) when there is none. */
  token(request: ServiceAccountTokenRequest): Promise<string>;
}

/** Tokens larger than this are refused (a JWT is a few KiB). */
export const TOKEN_FILE_MAX_BYTES = 64 * 1024;

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Tokens from projected token files, `<dir>/<namespace>/<serviceaccount>/token` (see the module comment). */
export class ProjectedTokenFileSource implements TokenSource {
  constructor(readonly dir: string) {}

  /** The file a ServiceAccount's token is read from. */
  fileFor(namespace: string, name: string): string {
    if (!NAME.test(namespace) || !NAME.test(name))
      throw new KimgError(
        'INVALID_ARGUMENT',
        `ServiceAccount ${JSON.stringify(`${namespace}/${name}`)} is not a valid name`,
      );
    return join(this.dir, namespace, name, 'token');
  }

  async token(request: ServiceAccountTokenRequest): Promise<string> {
    const file = this.fileFor(request.namespace, request.name);
    let text: string;
    try {
      const fh = await open(file, 'r');
      try {
        const buf = Buffer.alloc(TOKEN_FILE_MAX_BYTES + 1);
        const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
        if (bytesRead > TOKEN_FILE_MAX_BYTES)
          throw new KimgError(
            'SECRET_INVALID',
            `the token file ${file} is larger than ${TOKEN_FILE_MAX_BYTES} bytes`,
            { file },
          );
        text = buf.subarray(0, bytesRead).toString('utf8').trim();
      } finally {
        await fh.close();
      }
    } catch (e) {
      if (e instanceof KimgError) throw e;
      throw new KimgError(
        'SECRET_NOT_FOUND',
        `no token for ServiceAccount ${request.namespace}/${request.name}: ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
        { file },
      );
    }
    if (text === '') throw new KimgError('SECRET_INVALID', `the token file ${file} is empty`, { file });
    return text;
  }
}
