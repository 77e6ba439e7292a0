/**
 * The "other host" behind a registry redirect: a static, read-only file server standing in for the CDN
 * or object store that distribution's `redirect` storage middleware sends blob downloads to
 * (GET/HEAD /v2/<name>/blobs/<digest> → 307 <baseurl>/docker/registry/v2/blobs/sha256/<xx>/<hex>/data).
 * It serves the registry's own storage directory, supports single byte ranges, and logs per request
 * whether an `Authorization` header arrived - it never should: a client must not send credentials to a
 * different host after a redirect.
 *
 * Run as a child process: `node blob-server.js CONFIG.json` with
 * `{ host, root, readyFile, logFile }`; writes `{ port }` to readyFile once listening.
 */
import { createReadStream, stat } from 'node:fs';
import { createServer } from 'node:http';
import { resolve, sep } from 'node:path';
import { appendJsonLine, exitWithParent, readChildConfig, writeReadyFile } from './child.js';

interface BlobServerConfig {
  host: string;
  root: string;
  readyFile: string;
  logFile: string;
}

const cfg = readChildConfig<BlobServerConfig>();
const root = resolve(cfg.root);
exitWithParent();

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://blob-host');
  const path = url.pathname;
  const entry = {
    method: req.method ?? '',
    path,
    authorization: req.headers.authorization !== undefined,
    range: req.headers.range,
  };
  const finish = (status: number, headers: Record<string, string | number> = {}, bytes = 0): void => {
    appendJsonLine(cfg.logFile, { ...entry, status, bytes });
    res.writeHead(status, headers);
  };
  let file: string;
  try {
    file = resolve(root, '.' + decodeURIComponent(path));
  } catch {
    finish(400);
    res.end();
    return;
  }
  if (!file.startsWith(root + sep) || (req.method !== 'GET' && req.method !== 'HEAD')) {
    finish(403);
    res.end();
    return;
  }
  stat(file, (err, st) => {
    if (err || !st.isFile()) {
      finish(404);
      res.end();
      return;
    }
    let start = 0;
    let end = st.size - 1;
    let status = 200;
    const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && (m[1] !== '' || m[2] !== '')) {
      if (m[1] !== '') {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(Number(m[2]), end);
      } else {
        start = Math.max(0, st.size - Number(m[2]));
      }
      if (start > end) {
        finish(416, { 'content-range': `bytes */${st.size}` });
        res.end();
        return;
      }
      status = 206;
    }
    const length = end - start + 1;
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'content-length': length,
      'accept-ranges': 'bytes',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    finish(status, headers, req.method === 'HEAD' ? 0 : length);
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    createReadStream(file, { start, end }).pipe(res);
  });
});

server.listen(0, cfg.host, () => {
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('blob server: no port');
  writeReadyFile(cfg.readyFile, { port: addr.port });
});
