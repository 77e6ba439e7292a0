/**
 * TLS settings from hosts.toml against an in-process HTTPS server that requires a client
 * certificate: `ca` + `client` pair work; without the client certificate the handshake fails with a
 * coded error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { isKimgError } from '../../../src/errors/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { requireBinary } from '../../helpers/components.js';
import { makeTlsFiles, type TlsFiles } from '../../helpers/certs.js';
import { runCommand } from '../../helpers/proc.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

describe('TLS client certificates from hosts.toml', () => {
  let dir = '';
  let tls: TlsFiles;
  let server: Server;
  let host = '';
  const clients: RegistryClient[] = [];

  before(async () => {
    dir = await makeTempDir('registry-mtls-');
    tls = await makeTlsFiles(join(dir, 'pki'));
    const openssl = requireBinary('openssl');
    const f = (n: string): string => join(dir, 'pki', n);
    // prettier-ignore
    await runCommand(openssl, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=kimg-client', '-keyout', f('client.key'), '-out', f('client.csr')]);
    await writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
    // prettier-ignore
    await runCommand(openssl, ['x509', '-req', '-in', f('client.csr'), '-CA', tls.caFile, '-CAkey', f('ca.key'), '-set_serial', '0x1234', '-days', '2', '-extfile', f('client.ext'), '-out', f('client.crt')]);
    server = createServer(
      {
        key: await readFile(tls.keyFile),
        cert: await readFile(tls.certFile),
        ca: await readFile(tls.caFile),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        if (req.url === '/v2/') return void res.writeHead(200).end('{}');
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ name: 'app', tags: ['mtls'] }));
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const hostDir = join(dir, 'certs.d', host.replace(/:(\d+)$/, '_$1_'));
    await mkdir(hostDir, { recursive: true });
    await writeFile(
      join(hostDir, 'hosts.toml'),
      `server = "https://${host}"\nca = "${tls.caFile}"\nclient = [["${f('client.crt')}", "${f('client.key')}"]]\n`,
    );
    const noClientDir = join(dir, 'certs-noclient.d', host);
    await mkdir(noClientDir, { recursive: true });
    await writeFile(join(noClientDir, 'hosts.toml'), `server = "https://${host}"\nca = "${tls.caFile}"\n`);
  });

  after(async () => {
    for (const c of clients) await c.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    if (dir) await removeTempDir(dir);
  });

  test('ca + client pair from hosts.toml: the request succeeds', async () => {
    const c = new RegistryClient({ hostsDir: join(dir, 'certs.d') });
    clients.push(c);
    assert.deepEqual(await c.listTags({ domain: host, path: 'app' }), ['mtls']);
  });

  test('without the client certificate the handshake fails with a coded error', async () => {
    const c = new RegistryClient({ hostsDir: join(dir, 'certs-noclient.d'), retry: { maxAttempts: 1 } });
    clients.push(c);
    // TLS 1.3 servers reject a missing client certificate after the handshake: the client sees either
    // an alert (TLS_ERROR) or a closed connection (REGISTRY_UNAVAILABLE), depending on timing
    await assert.rejects(c.listTags({ domain: host, path: 'app' }), (e: unknown) =>
      isKimgError(e, ['TLS_ERROR', 'REGISTRY_UNAVAILABLE']),
    );
  });

  test('a missing CA file is named in the error', async () => {
    const c = new RegistryClient({ caFiles: [join(dir, 'nope.pem')] });
    clients.push(c);
    await assert.rejects(
      c.listTags({ domain: host, path: 'app' }),
      (e: unknown) => isKimgError(e, 'FILE_NOT_FOUND') && e.message.includes('nope.pem'),
    );
  });
});
