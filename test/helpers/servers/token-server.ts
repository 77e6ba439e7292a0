/**
 * A registry token server: the issuer side of the Docker/OCI "Bearer" auth flow that distribution's
 * `auth.token` trusts (docs: distribution `docs/spec/auth/token.md`, `jwt.md`, `oauth.md`).
 *
 *   GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...][&offline_token=true]
 *        credentials, if any, as HTTP Basic (docker/skopeo style)
 *   POST /token  application/x-www-form-urlencoded: grant_type=password (username, password) or
 *        grant_type=refresh_token (refresh_token); service, scope, client_id, access_type=offline
 *        (containerd style)
 *   → 200 {"token", "access_token", "expires_in", "issued_at"[, "refresh_token"]}
 *
 * Policy (a test fixture, not a product): valid credentials get every action asked for; no credentials
 * get `pull` on repositories when `anonymousPull`, otherwise 401; wrong credentials or an unknown
 * refresh token get 401. Refresh tokens are issued only when asked for (offline_token=true /
 * access_type=offline). Each request is appended to a JSON-lines log before the response is sent; the
 * log holds the user name and scopes, never a password or token.
 *
 * The token is a JWT signed RS256; its header names the key with the libtrust `kid` that distribution
 * 2.8 matches against the certificates of its `rootcertbundle`. Claims: iss, sub, aud (the service, a
 * string), exp, nbf, iat, jti, access[{type, name, actions}].
 *
 * Run as a child process: `node token-server.js CONFIG.json` (see `TokenServerConfig`); writes `{ port }`
 * to readyFile once listening.
 */
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { appendJsonLine, exitWithParent, readChildConfig, writeReadyFile } from './child.js';

/** Config file of the token server (written by the harness, mode 0600). */
export interface TokenServerConfig {
  host: string;
  issuer: string;
  service: string;
  keyPem: string;
  kid: string;
  users: Record<string, string>;
  anonymousPull: boolean;
  ttlSeconds: number;
  readyFile: string;
  logFile: string;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

const cfg = readChildConfig<TokenServerConfig>();
const privateKey = createPrivateKey(cfg.keyPem);
const refreshTokens = new Map<string, string>();
exitWithParent();

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function issue(subject: string, access: Access[]): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'RS256', kid: cfg.kid };
  const claims = {
    iss: cfg.issuer,
    sub: subject,
    aud: cfg.service,
    exp: now + cfg.ttlSeconds,
    nbf: now - 10,
    iat: now,
    jti: randomBytes(12).toString('hex'),
    access,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), privateKey))}`;
}

/** `type:name:actions`; the name may itself contain ':' (first and last colon split). */
function parseScope(s: string): Access | undefined {
  const first = s.indexOf(':');
  const last = s.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  return {
    type: s.slice(0, first),
    name: s.slice(first + 1, last),
    actions: s
      .slice(last + 1)
      .split(',')
      .filter((a) => a !== ''),
  };
}

function grant(user: string | undefined, wanted: Access[]): Access[] {
  if (user !== undefined) return wanted.map((a) => ({ ...a, actions: [...a.actions] }));
  return wanted.map((a) => ({
    ...a,
    actions: cfg.anonymousPull && a.type === 'repository' ? a.actions.filter((x) => x === 'pull') : [],
  }));
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > 1 << 20) throw new Error('body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://token-server');
  if (url.pathname !== '/token') {
    send(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'only /token is served here' }] });
    return;
  }
  const method = req.method === 'POST' ? 'POST' : req.method === 'GET' ? 'GET' : undefined;
  if (method === undefined) {
    send(res, 405, { error: 'method not allowed' });
    return;
  }
  let params = url.searchParams;
  let user: string | undefined;
  let password: string | undefined;
  let refresh: string | undefined;
  let grantType: string | undefined;
  let offline: boolean;
  if (method === 'POST') {
    params = new URLSearchParams(await readBody(req));
    grantType = params.get('grant_type') ?? undefined;
    offline = params.get('access_type') === 'offline';
    if (grantType === 'password') {
      user = params.get('username') ?? undefined;
      password = params.get('password') ?? undefined;
    } else if (grantType === 'refresh_token') {
      refresh = params.get('refresh_token') ?? '';
    }
  } else {
    const h = req.headers.authorization ?? '';
    if (/^basic /i.test(h)) {
      const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
      const k = decoded.indexOf(':');
      user = k < 0 ? decoded : decoded.slice(0, k);
      password = k < 0 ? '' : decoded.slice(k + 1);
    }
    offline = params.get('offline_token') === 'true';
  }
  const service = params.get('service') ?? undefined;
  const scopes = params
    .getAll('scope')
    .flatMap((s) => s.split(' '))
    .filter((s) => s !== '');
  const wanted = scopes.map(parseScope).filter((a): a is Access => a !== undefined);
  const base = { method, user, grantType, service, scopes };
  const refuse = (
    status: number,
    reason: string,
    body: unknown,
    headers: Record<string, string> = {},
  ): void => {
    appendJsonLine(cfg.logFile, { ...base, granted: false, grantedAccess: [], status, reason });
    send(res, status, body, headers);
  };

  if (method === 'POST' && grantType !== 'password' && grantType !== 'refresh_token') {
    refuse(400, 'unsupported grant_type', { error: 'unsupported_grant_type' });
    return;
  }
  if (method === 'POST' && grantType === 'password' && (user === undefined || password === undefined)) {
    refuse(400, 'username and password are required', { error: 'invalid_request' });
    return;
  }
  if (service !== undefined && service !== cfg.service) {
    refuse(400, `unknown service ${service}`, {
      error: 'invalid_request',
      error_description: 'unknown service',
    });
    return;
  }
  let subject: string | undefined;
  if (refresh !== undefined) {
    subject = refreshTokens.get(refresh);
    if (subject === undefined) {
      refuse(401, 'unknown refresh token', { error: 'invalid_grant' });
      return;
    }
    base.user = subject;
  } else if (user !== undefined) {
    if (!Object.hasOwn(cfg.users, user) || cfg.users[user] !== password) {
      refuse(
        401,
        'bad credentials',
        { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] },
        { 'www-authenticate': 'Basic realm="kimg-token-server"' },
      );
      return;
    }
    subject = user;
  } else if (!cfg.anonymousPull) {
    refuse(
      401,
      'anonymous access not allowed',
      { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] },
      { 'www-authenticate': 'Basic realm="kimg-token-server"' },
    );
    return;
  }
  const access = grant(subject, wanted);
  const token = issue(subject ?? '', access);
  const body: Record<string, unknown> = {
    token,
    access_token: token,
    expires_in: cfg.ttlSeconds,
    issued_at: new Date().toISOString(),
  };
  let refreshIssued = false;
  if (subject !== undefined && offline) {
    const rt = randomBytes(24).toString('base64url');
    refreshTokens.set(rt, subject);
    body.refresh_token = rt;
    refreshIssued = true;
  }
  const granted = wanted.every((w, i) => w.actions.every((a) => access[i]?.actions.includes(a) === true));
  appendJsonLine(cfg.logFile, {
    ...base,
    granted,
    grantedAccess: access,
    status: 200,
    refreshToken: refreshIssued,
  });
  send(res, 200, body);
}

const server = createServer((req, res) => {
  handle(req, res).catch((e: unknown) => {
    if (!res.headersSent) send(res, 500, { error: String(e) });
    else res.destroy();
  });
});

server.listen(0, cfg.host, () => {
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('token server: no port');
  writeReadyFile(cfg.readyFile, { port: addr.port });
});
