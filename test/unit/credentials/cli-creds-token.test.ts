/**
 * `kimg creds explain` and service-account token providers (`tokenAttributes`): every plugin asked is
 * listed with its mode — a token provider with its audience and the ServiceAccount it ran for — and a
 * skipped one says why (no token source, no pod, a required annotation missing, no token file), in
 * the table and in `-o json`. The token itself is never printed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { kimg, writeScript } from './helpers.js';

const TOKEN = 'sa-token-Canary-5e07';
const V1 = 'credentialprovider.kubelet.k8s.io/v1';

interface PluginRow {
  plugin: string;
  serviceAccountToken?: { audience: string; serviceAccount?: string };
  credentials: number;
  cached: boolean;
  skipped?: string;
}

describe('kimg creds explain: service-account token providers', () => {
  let dir = '';
  let tokens = '';
  const response = (user: string) =>
    `cat > /dev/null\necho '${JSON.stringify({ kind: 'CredentialProviderResponse', apiVersion: V1, cacheKeyType: 'Image', auth: { 'reg.io': { username: user, password: 'pw' } } })}'`;

  before(async () => {
    dir = await makeTempDir('creds-token-');
    tokens = join(dir, 'tokens');
    await mkdir(join(tokens, 'app', 'builder'), { recursive: true });
    await writeFile(join(tokens, 'app', 'builder', 'token'), `${TOKEN}\n`);
    const bin = join(dir, 'bin');
    await mkdir(bin);
    await writeScript(bin, 'plain-plugin', response('plain-user'));
    await writeScript(bin, 'sa-plugin', response('sa-user'));
    await writeFile(
      join(dir, 'plugins.yaml'),
      [
        'apiVersion: kubelet.config.k8s.io/v1',
        'kind: CredentialProviderConfig',
        'providers:',
        '  - name: plain-plugin',
        '    matchImages: ["reg.io"]',
        '    defaultCacheDuration: 0s',
        `    apiVersion: ${V1}`,
        '  - name: sa-plugin',
        '    matchImages: ["reg.io"]',
        '    defaultCacheDuration: 0s',
        `    apiVersion: ${V1}`,
        '    tokenAttributes:',
        '      serviceAccountTokenAudience: reg.io/audience',
        '      cacheType: ServiceAccount',
        '      requireServiceAccount: true',
        '      requiredServiceAccountAnnotationKeys: ["reg.io/role"]',
        '',
      ].join('\n'),
    );
    const sa = (name: string, annotated: boolean) =>
      `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}\n  namespace: app\n  uid: uid-${name}\n${annotated ? '  annotations: {reg.io/role: puller}\n' : ''}`;
    const pod = (name: string, account: string) =>
      `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: app, uid: pod-${name}}\nspec:\n  serviceAccountName: ${account}\n  containers: [{name: c, image: reg.io/app:1}]\n`;
    await writeFile(
      join(dir, 'objects.yaml'),
      [
        sa('builder', true),
        sa('plain', false),
        sa('untokened', true),
        pod('web', 'builder'),
        pod('bare', 'plain'),
        pod('lost', 'untokened'),
      ].join('---\n'),
    );
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  const explain = (extra: string[]) =>
    kimg(
      [
        'creds',
        'explain',
        'reg.io/app:1',
        '--no-node-config',
        '--image-credential-provider-config',
        join(dir, 'plugins.yaml'),
        '--image-credential-provider-bin-dir',
        join(dir, 'bin'),
        ...extra,
      ],
      { HOME: dir, PATH: process.env.PATH ?? '/usr/bin:/bin' },
    );
  const json = async (extra: string[]): Promise<PluginRow[]> => {
    const r = await explain([...extra, '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { plugins: PluginRow[] }).plugins;
  };
  const objects = () => ['-f', join(dir, 'objects.yaml')];

  test('no token source: the token provider is skipped and says so; the plain one runs', async () => {
    const r = await explain([...objects(), '--pod', 'web']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Credential provider plugins:\n/);
    assert.match(r.stdout, /plain-plugin +plain +1 credential\n/);
    assert.match(
      r.stdout,
      /sa-plugin +service-account token \(audience reg\.io\/audience\) +skipped: no service-account token source is configured .*ServiceAccount "app\/builder"/,
    );
    const rows = await json([...objects(), '--pod', 'web']);
    assert.deepEqual(rows[0], { plugin: 'plain-plugin', credentials: 1, cached: false });
    assert.equal(rows[1]?.plugin, 'sa-plugin');
    assert.deepEqual(rows[1]?.serviceAccountToken, { audience: 'reg.io/audience' });
    assert.match(rows[1]?.skipped ?? '', /^no service-account token source is configured/);
  });

  test('no pod: a provider that requires a ServiceAccount is skipped', async () => {
    const r = await explain(['--service-account-token-dir', tokens]);
    assert.match(r.stdout, /skipped: the provider requires a ServiceAccount and the lookup is for no pod/);
    const rows = await json(['--service-account-token-dir', tokens]);
    assert.match(rows[1]?.skipped ?? '', /requires a ServiceAccount and the lookup is for no pod/);
  });

  test('a required annotation missing, and a ServiceAccount without a token file', async () => {
    const bare = [...objects(), '--pod', 'bare', '--service-account-token-dir', tokens];
    assert.match(
      (await explain(bare)).stdout,
      /skipped: required annotation reg\.io\/role not found on ServiceAccount "app\/plain"/,
    );
    assert.match((await json(bare))[1]?.skipped ?? '', /required annotation reg\.io\/role not found/);
    const lost = [...objects(), '--pod', 'lost', '--service-account-token-dir', tokens];
    const r = await explain(lost);
    assert.match(
      r.stdout,
      /skipped: the service account token for ServiceAccount "app\/untokened" could not be obtained: no token for ServiceAccount app\/untokened: .*untokened\/token cannot be read \(ENOENT\)/,
    );
    assert.match((await json(lost))[1]?.skipped ?? '', /could not be obtained: .*ENOENT/);
  });

  test("with the token: the provider runs for the pod's ServiceAccount; the token is not printed", async () => {
    const args = [...objects(), '--pod', 'web', '--service-account-token-dir', tokens];
    const r = await explain(args);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /sa-plugin +service-account token \(audience reg\.io\/audience, app\/builder\) +1 credential\n/,
    );
    assert.match(r.stdout, /sa-user/);
    const rows = await json(args);
    assert.deepEqual(rows[1], {
      plugin: 'sa-plugin',
      serviceAccountToken: { audience: 'reg.io/audience', serviceAccount: 'app/builder' },
      credentials: 1,
      cached: false,
    });
    assert.ok(!(r.stdout + r.stderr).includes(TOKEN));
  });
});
