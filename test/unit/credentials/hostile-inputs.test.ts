/**
 * Hostile inputs at the credentials seam: pod manifests named like markup or escape sequences, YAML
 * scalars that the YAML 1.1 float rule would turn into NaN, floods of documents, FIFOs among the
 * secrets, credential plugins that leave grandchildren behind, print without end or write escape
 * sequences on stderr, and `--creds` that must go to one registry host only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryResolver } from '../../../src/admission/index.js';
import {
  ExecCredentialProvider,
  MANIFEST_LIMITS,
  Secret,
  credentialsBindTo,
  parseKubernetesObjects,
  readKubernetesObjects,
} from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { readSecretObjects } from '../../../src/node/internal/pod-secrets.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { startFaultServer, type FaultServer } from '../../helpers/fault-server.js';
import { isProcessAlive } from '../../helpers/proc.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { FakeClock, writeScript } from './helpers.js';

// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

let dir: string;
before(async () => {
  dir = await makeTempDir('hostile-creds-');
});
after(async () => {
  await removeTempDir(dir);
});

const pod = (name: string, namespace = 'default'): string =>
  `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${JSON.stringify(name)}\n  namespace: ${JSON.stringify(namespace)}\nspec:\n  containers:\n  - name: c\n    image: nginx\n`;

describe('pod names and YAML scalars', () => {
  test('a pod named e404 keeps its name (go-yaml reads it as a string, not NaN)', () => {
    const objs = parseKubernetesObjects('apiVersion: v1\nkind: Pod\nmetadata:\n  name: e404\n');
    assert.equal(objs[0]?.name, 'e404');
    const more = parseKubernetesObjects(
      'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  a: .\n  b: -e5\n  c: 1e3\n',
    );
    const data = (more[0]?.object as { data: Record<string, unknown> }).data;
    assert.deepEqual(data, { a: '.', b: '-e5', c: 1000 });
  });

  test('a pod name with markup is refused like the API server refuses it', () => {
    assert.throws(
      () => parseKubernetesObjects(pod('"><img src=x onerror=alert(1)>'), 'p.yaml'),
      (e) => {
        assert.ok(isKimgError(e, 'CONFIG_INVALID'));
        assert.match(e.message, /metadata\.name: Invalid value: .*RFC 1123 subdomain/);
        return true;
      },
    );
  });

  test('a namespace with an escape sequence and an upper-case Secret name are refused', () => {
    assert.throws(() => parseKubernetesObjects(pod('ok', 'ns\x1b[2J')), /metadata\.namespace: Invalid value/);
    assert.throws(
      () => parseKubernetesObjects('apiVersion: v1\nkind: Secret\nmetadata:\n  name: Creds\n'),
      /metadata\.name: Invalid value: "Creds"/,
    );
    assert.equal(parseKubernetesObjects(pod('web-1.a', 'kube-system'))[0]?.name, 'web-1.a');
  });
});

describe('bounded manifests', () => {
  test('a flood of documents is refused before it is parsed', () => {
    const text = Array.from({ length: 100_000 }, () => 'a: 1').join('\n---\n');
    assert.throws(() => parseKubernetesObjects(text, 'flood.yaml'), /100000 documents/);
  });

  test('the document cap holds across the files of one invocation', async () => {
    const half = Array.from({ length: 6 }, (_, i) => pod(`p${i}`)).join('---\n');
    await writeFile(join(dir, 'a.yaml'), half);
    await writeFile(join(dir, 'b.yaml'), half);
    const files = [join(dir, 'a.yaml'), join(dir, 'b.yaml')];
    assert.equal((await readKubernetesObjects(files)).length, 12);
    await assert.rejects(readKubernetesObjects(files, { ...MANIFEST_LIMITS, maxDocuments: 10 }), /documents/);
  });

  test('a manifest that is a FIFO or a symlink to /dev/zero is refused, not read', async () => {
    execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
    await symlink('/dev/zero', join(dir, 'zero.yaml'));
    await assert.rejects(readKubernetesObjects([join(dir, 'fifo.yaml')]), /a FIFO/);
    await assert.rejects(readKubernetesObjects([join(dir, 'zero.yaml')]), /a character device/);
  });

  test('the secrets directory warns for a bad file and goes on', async () => {
    const secrets = join(dir, 'secrets');
    await mkdir(secrets);
    await writeFile(
      join(secrets, 'good.yaml'),
      'apiVersion: v1\nkind: Secret\nmetadata:\n  name: good\ntype: Opaque\n',
    );
    await writeFile(join(secrets, 'broken.yaml'), 'apiVersion: v1\nkind: [unclosed\n');
    execFileSync('mkfifo', [join(secrets, 'pipe.yaml')]);
    const warnings: string[] = [];
    const objs = await readSecretObjects(secrets, (m) => warnings.push(m));
    assert.deepEqual(
      objs.map((o) => o.name),
      ['good'],
    );
    assert.equal(warnings.length, 2);
    assert.ok(warnings.some((w) => /broken\.yaml/.test(w)));
    assert.ok(warnings.some((w) => /pipe\.yaml.*a FIFO/.test(w)));
  });
});

describe('credential plugins', () => {
  let bin: string;
  before(async () => {
    bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
  });

  const provider = (name: string, timeoutMs = 60_000): ExecCredentialProvider =>
    new ExecCredentialProvider(
      {
        name,
        matchImages: ['reg.io'],
        defaultCacheDuration: 0n,
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        args: [],
        env: [],
      },
      {
        binDir: bin,
        clock: new FakeClock(),
        environ: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        timeoutMs,
      },
    );

  async function waitDead(pid: number): Promise<boolean> {
    for (let i = 0; i < 100; i++) {
      if (!isProcessAlive(pid)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  test('on timeout the whole process group dies: a grandchild holding stdout does not survive', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    await writeScript(bin, 'hang', `sleep 300 &\necho $! > '${pidFile}'\nwait`);
    await assert.rejects(provider('hang', 500).provide('reg.io/app'), /context deadline exceeded/);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    assert.ok(await waitDead(pid), `grandchild ${pid} survived the plugin's timeout`);
  });

  test('a plugin that exits but leaves a grandchild on its pipes is cut at the timeout, grandchild killed', async () => {
    const pidFile = join(dir, 'left.pid');
    await writeScript(bin, 'leaver', `sleep 300 &\necho $! > '${pidFile}'\nexit 0`);
    await assert.rejects(provider('leaver', 500).provide('reg.io/app'), /context deadline exceeded/);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    assert.ok(await waitDead(pid), `grandchild ${pid} survived`);
  });

  test('1 GiB on stdout: the plugin is killed at the cap, memory flat, no V8 error as the message', async () => {
    await writeScript(bin, 'flood', `head -c 1073741824 /dev/zero`);
    const before = process.resourceUsage().maxRSS * 1024;
    await assert.rejects(provider('flood').provide('reg.io/app'), (e) => {
      assert.ok(isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED'));
      assert.match(e.message, /more than 1048576 bytes on stdout/);
      return true;
    });
    const growth = process.resourceUsage().maxRSS * 1024 - before;
    assert.ok(growth < 128 * 1024 * 1024, `peak RSS grew by ${growth} bytes`);
  });

  test('stderr with escape sequences and 100 KB of text is escaped and cut in the message', async () => {
    await writeScript(
      bin,
      'noisy',
      `printf '\\033]0;pwned\\007\\033[2J\\nerror: forged line\\n' >&2\nyes 'no key here' | head -c 100000 >&2\nexit 3`,
    );
    await assert.rejects(provider('noisy').provide('reg.io/app'), (e) => {
      assert.ok(isKimgError(e, 'CREDENTIAL_PROVIDER_FAILED'));
      assert.doesNotMatch(e.message, RAW_CONTROL);
      assert.doesNotMatch(e.message, /\n/);
      assert.match(e.message, /exit status 3: .*pwned/);
      assert.ok(e.message.length < 2000, `message of ${e.message.length} characters`);
      assert.match(e.message, /more characters\)$/);
      return true;
    });
  });
});

describe('--creds bind to one registry host', () => {
  let fault: FaultServer;
  before(async () => {
    fault = await startFaultServer();
    const digest = `sha256:${'a'.repeat(64)}`;
    fault.route('HEAD', /^\/v2\/app\/manifests\/1$/, (req, res) => {
      if (req.headers.authorization === undefined) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="kimg"' }).end();
        return;
      }
      res
        .writeHead(200, {
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
          'docker-content-digest': digest,
          'content-length': '100',
        })
        .end();
    });
  });
  after(async () => {
    await fault.close();
  });

  test('the host rule: same host and port; Docker Hub aliases are one host; unbound goes anywhere', () => {
    assert.ok(credentialsBindTo('reg.example:5000', 'reg.example:5000'));
    assert.ok(!credentialsBindTo('reg.example:5000', 'reg.example'));
    assert.ok(!credentialsBindTo('reg.example', 'attacker.example'));
    assert.ok(credentialsBindTo('index.docker.io', 'docker.io'));
    assert.ok(credentialsBindTo(undefined, 'anything.example'));
  });

  test('a pod naming another registry never receives the bound password', async () => {
    const client = new RegistryClient({ plainHttp: [fault.host] });
    try {
      const auth = { username: 'u', password: new Secret('kimgCANARY-bound') };
      const bound = registryResolver({ client, auth, authHost: 'registry.example' });
      await assert.rejects(bound(`${fault.host}/app:1`), (e) => isKimgError(e, 'UNAUTHORIZED'));
      assert.ok(fault.requests.every((r) => r.headers.authorization === undefined));
      const own = registryResolver({ client, auth, authHost: fault.host });
      assert.match(await own(`${fault.host}/app:1`), /^sha256:a{64}$/);
      assert.ok(fault.requests.some((r) => r.headers.authorization?.startsWith('Basic ')));
    } finally {
      await client.close();
    }
  });
});
