/**
 * Service-account-token credential providers (KEP-4412) really run: a provider with `tokenAttributes`
 * gets its token from the configured token source (a projected token file per ServiceAccount), with
 * the ServiceAccount's required/optional annotations; `cacheType: Token` asks again when the token
 * rotates; without a token source, or without a required annotation, the provider is skipped and the
 * lookup says why. The token never appears in the lookup's printable output.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { inspect } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  PodCredentials,
  ProjectedTokenFileSource,
  parseKubernetesObjects,
  resolvePodPullSecrets,
  type TokenSource,
} from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { writeScript } from './helpers.js';

const TOKEN = 'projected-token-Canary-4412';

describe('service-account token providers with a token source', () => {
  let dir = '';
  let tokens = '';
  let bin = '';
  const config = (cacheType: string) =>
    [
      'apiVersion: kubelet.config.k8s.io/v1',
      'kind: CredentialProviderConfig',
      'providers:',
      '  - name: sa-plugin',
      '    matchImages: ["reg.io"]',
      '    defaultCacheDuration: 10m',
      '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
      '    tokenAttributes:',
      '      serviceAccountTokenAudience: reg.io',
      `      cacheType: ${cacheType}`,
      '      requireServiceAccount: true',
      '      requiredServiceAccountAnnotationKeys: ["reg.io/role"]',
      '      optionalServiceAccountAnnotationKeys: ["reg.io/team"]',
    ].join('\n');
  const objects = parseKubernetesObjects(
    [
      'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\n  namespace: app\n  uid: sa-uid\n  annotations:\n    reg.io/role: puller\n    reg.io/team: blue\n    other: x',
      'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: plain\n  namespace: app\n  uid: sa-uid-2',
    ].join('\n---\n'),
  );

  before(async () => {
    dir = await makeTempDir('sa-token-');
    tokens = join(dir, 'tokens');
    bin = join(dir, 'bin');
    await mkdir(join(tokens, 'app', 'builder'), { recursive: true });
    await writeFile(join(tokens, 'app', 'builder', 'token'), `${TOKEN}-1\n`);
    await mkdir(bin);
    // Records each request and answers with a fixed credential (Image cache key).
    await writeScript(
      bin,
      'sa-plugin',
      `cat >> "${join(dir, 'requests')}"\necho >> "${join(dir, 'requests')}"\necho '{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Image","auth":{"reg.io":{"username":"u","password":"from-plugin"}}}'`,
    );
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  async function open(cacheType: string, tokenSource?: TokenSource): Promise<PodCredentials> {
    const configPath = join(dir, `config-${cacheType}.yaml`);
    await writeFile(configPath, config(cacheType));
    return PodCredentials.open({
      nodeDockerConfig: false,
      env: {},
      objects,
      plugins: { configPath, binDir: bin, ...(tokenSource ? { tokenSource } : {}) },
    });
  }
  const pod = (sa: string) => ({ name: 'web', namespace: 'app', uid: `pod-${sa}`, sa });
  async function lookup(creds: PodCredentials, sa: string) {
    const p = pod(sa);
    const secrets = resolvePodPullSecrets(
      { kind: 'Pod', metadata: { name: p.name, namespace: p.namespace }, spec: { serviceAccountName: sa } },
      objects,
    );
    return creds.lookup('reg.io/app:1', { namespace: p.namespace, name: p.name, uid: p.uid, secrets });
  }
  const requests = async () =>
    (await readFile(join(dir, 'requests'), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  test('the plugin runs with the projected token and the ServiceAccount annotations', async () => {
    const creds = await open('ServiceAccount', new ProjectedTokenFileSource(tokens));
    const r = await lookup(creds, 'builder');
    assert.deepEqual(
      r.matches.map((m) => [m.key, m.auth.username, m.source.kind]),
      [['reg.io', 'u', 'plugin']],
    );
    const [req] = await requests();
    assert.equal(req?.serviceAccountToken, `${TOKEN}-1`);
    assert.deepEqual(req?.serviceAccountAnnotations, { 'reg.io/role': 'puller', 'reg.io/team': 'blue' });
    const printable = JSON.stringify(r.pluginResults) + inspect(r, { depth: 20 });
    assert.ok(!printable.includes(TOKEN), 'the token is not in the lookup output');
  });

  test('cacheType Token: a rotated token asks the plugin again; ServiceAccount cache does not', async () => {
    await writeFile(join(dir, 'requests'), '');
    const byToken = await open('Token', new ProjectedTokenFileSource(tokens));
    await lookup(byToken, 'builder');
    await writeFile(join(tokens, 'app', 'builder', 'token'), `${TOKEN}-2\n`);
    await lookup(byToken, 'builder');
    assert.deepEqual(
      (await requests()).map((r) => r.serviceAccountToken),
      [`${TOKEN}-1`, `${TOKEN}-2`],
    );
    await writeFile(join(dir, 'requests'), '');
    const bySa = await open('ServiceAccount', new ProjectedTokenFileSource(tokens));
    await lookup(bySa, 'builder');
    await writeFile(join(tokens, 'app', 'builder', 'token'), `${TOKEN}-3\n`);
    await lookup(bySa, 'builder');
    assert.equal((await requests()).length, 1, 'cached per ServiceAccount');
    await writeFile(join(tokens, 'app', 'builder', 'token'), `${TOKEN}-1\n`);
  });

  test('skipped, and why: no token source, a missing required annotation, no token file', async () => {
    const none = await open('ServiceAccount');
    const r1 = await lookup(none, 'builder');
    assert.equal(r1.matches.length, 0);
    assert.match(r1.pluginResults[0]?.skipped ?? '', /token source/);
    const withSource = await open('ServiceAccount', new ProjectedTokenFileSource(tokens));
    const r2 = await lookup(withSource, 'plain');
    assert.match(r2.pluginResults[0]?.skipped ?? '', /required annotation reg\.io\/role not found/);
    await assert.rejects(
      new ProjectedTokenFileSource(tokens).token({
        namespace: 'app',
        name: 'nobody',
        uid: 'u',
        audience: 'a',
        podName: 'p',
        podUid: 'pu',
      }),
      (e: unknown) => isKimgError(e, 'SECRET_NOT_FOUND'),
    );
  });
});
