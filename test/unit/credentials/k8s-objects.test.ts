/**
 * Manifests and pull Secrets: reading what `kubectl apply -f` takes, decoding Secrets, and the
 * pod / ServiceAccount / Secret resolution of kubelet and the ServiceAccount admission plugin
 * (upstream `pkg/credentialprovider/secrets/secrets_test.go` for the Secret shapes).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildKeyring,
  failedPullSecretNames,
  decodeSecret,
  parseKubernetesObjects,
  pullSecretsFromObjects,
  readKubernetesObjects,
  resolvePodPullSecrets,
} from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const CFG = (user: string, key = 'reg.io'): string =>
  JSON.stringify({ auths: { [key]: { auth: b64(`${user}:pw-${user}`) } } });

function secretYaml(
  name: string,
  opts: { ns?: string; type?: string; key?: string; value?: string; uid?: string } = {},
): string {
  const type = opts.type ?? 'kubernetes.io/dockerconfigjson';
  const key = opts.key ?? '.dockerconfigjson';
  return [
    'apiVersion: v1',
    'kind: Secret',
    'metadata:',
    `  name: ${name}`,
    ...(opts.ns !== undefined ? [`  namespace: ${opts.ns}`] : []),
    ...(opts.uid !== undefined ? [`  uid: ${opts.uid}`] : []),
    `type: ${type}`,
    'data:',
    `  ${key}: ${b64(opts.value ?? CFG(name))}`,
  ].join('\n');
}

describe('parseKubernetesObjects', () => {
  test('YAML multi-document with empty documents and a List', () => {
    const text = [
      secretYaml('a'),
      '---',
      '---',
      '# comment only',
      '---',
      'apiVersion: v1\nkind: List\nitems:\n- ' + secretYaml('b').split('\n').join('\n  '),
    ].join('\n');
    const objs = parseKubernetesObjects(text, 'm.yaml');
    assert.deepEqual(
      objs.map((o) => [o.kind, o.name, o.file]),
      [
        ['Secret', 'a', 'm.yaml'],
        ['Secret', 'b', 'm.yaml'],
      ],
    );
  });
  test('typed lists give their items the kind', () => {
    const objs = parseKubernetesObjects(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'SecretList',
        items: [{ metadata: { name: 'x' }, type: 'Opaque' }],
      }),
    );
    assert.deepEqual(
      objs.map((o) => [o.apiVersion, o.kind, o.name]),
      [['v1', 'Secret', 'x']],
    );
  });
  test('a JSON stream of objects', () => {
    const objs = parseKubernetesObjects(
      `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"}}\n{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"b"}}`,
    );
    assert.deepEqual(
      objs.map((o) => o.kind),
      ['Secret', 'ServiceAccount'],
    );
  });
  test('YAML 1.1 scalars, timestamps kept as strings', () => {
    const [o] = parseKubernetesObjects(
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: yes, b: 2001-12-14, c: 1:20}\n',
    );
    assert.deepEqual(o?.object.data, { a: true, b: '2001-12-14', c: '1:20' });
  });
  test('errors are CONFIG_INVALID naming the file', () => {
    for (const bad of [
      'a: [',
      'a: 1\na: 2',
      '- just\n- a list',
      'kind: Secret',
      '{"kind": "Secret"',
      '"x"',
    ]) {
      assert.throws(
        () => parseKubernetesObjects(bad, 'bad.yaml'),
        (e: unknown) => isKimgError(e, 'CONFIG_INVALID') && e.message.includes('bad.yaml'),
        bad,
      );
    }
  });
});

describe('decodeSecret', () => {
  test('data is base64 (Go StdEncoding rules), stringData wins over data', () => {
    const [o] = parseKubernetesObjects(
      'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: YQ==, b: Yg==}\nstringData: {b: plain}\n',
    );
    const s = decodeSecret(o!);
    assert.equal(s.namespace, 'default');
    assert.equal(s.type, 'Opaque');
    assert.equal(s.data.get('a')?.toString(), 'a');
    assert.equal(s.data.get('b')?.toString(), 'plain');
  });
  test('invalid base64 or wrong types are SECRET_INVALID naming the key, not the value', () => {
    for (const data of ['{k: "not base64!"}', '{k: YQ}', '{k: 5}', '[x]']) {
      const [o] = parseKubernetesObjects(
        `apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: ${data}\n`,
      );
      assert.throws(
        () => decodeSecret(o!),
        (e: unknown) => isKimgError(e, 'SECRET_INVALID') && !e.message.includes('not base64!'),
        data,
      );
    }
  });
});

describe('resolvePodPullSecrets', () => {
  const objects = parseKubernetesObjects(
    [
      secretYaml('cfgjson', { ns: 'app', uid: 'uid-1' }),
      secretYaml('legacy', {
        ns: 'app',
        type: 'kubernetes.io/dockercfg',
        key: '.dockercfg',
        value: JSON.stringify({ 'reg.io': { auth: b64('legacy:pw') } }),
      }),
      secretYaml('opaque', { ns: 'app', type: 'Opaque', key: 'x' }),
      secretYaml('wrongkey', { ns: 'app', key: '.dockercfg' }),
      secretYaml('elsewhere', { ns: 'other' }),
      secretYaml('sa-secret', { ns: 'app' }),
      'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: app}\nimagePullSecrets: [{name: sa-secret}]',
      'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: app}\nimagePullSecrets: [{name: legacy}]',
    ].join('\n---\n'),
    'objects.yaml',
  );
  const pod = (spec: Record<string, unknown>, ns = 'app'): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: ns },
    spec,
  });

  test("the pod's Secrets in order; both pull types; other types, missing keys, namespaces and names reported", () => {
    const r = resolvePodPullSecrets(
      pod({
        imagePullSecrets: [
          { name: 'cfgjson' },
          { name: '' },
          { name: 'legacy' },
          { name: 'opaque' },
          { name: 'wrongkey' },
          { name: 'elsewhere' },
          { name: 'missing' },
        ],
      }),
      objects,
    );
    assert.deepEqual(
      r.secrets.map((s) => [s.name, s.format, s.via, s.uid]),
      [
        ['cfgjson', 'config.json', 'pod', 'uid-1'],
        ['legacy', 'dockercfg', 'pod', undefined],
      ],
    );
    assert.deepEqual(
      r.problems.map((p) => [p.name, p.kind, p.code]),
      [
        ['opaque', 'wrong-type', 'SECRET_INVALID'],
        ['wrongkey', 'missing-key', 'SECRET_INVALID'],
        ['elsewhere', 'wrong-namespace', 'SECRET_NOT_FOUND'],
        ['missing', 'not-found', 'SECRET_NOT_FOUND'],
      ],
    );
    assert.ok(r.problems[0]?.message.includes('kubernetes.io/dockerconfigjson'));
  });
  test('strict mode throws the first problem', () => {
    assert.throws(
      () => resolvePodPullSecrets(pod({ imagePullSecrets: [{ name: 'opaque' }] }), objects, { strict: true }),
      (e: unknown) => isKimgError(e, 'SECRET_INVALID'),
    );
    assert.throws(
      () =>
        resolvePodPullSecrets(pod({ imagePullSecrets: [{ name: 'elsewhere' }] }), objects, { strict: true }),
      (e: unknown) => isKimgError(e, 'SECRET_NOT_FOUND'),
    );
  });
  test("the ServiceAccount's Secrets apply only when the pod lists none", () => {
    const viaSa = resolvePodPullSecrets(pod({ serviceAccountName: 'builder' }), objects);
    assert.deepEqual(
      viaSa.secrets.map((s) => [s.name, s.via, s.serviceAccount]),
      [['sa-secret', 'service-account', 'builder']],
    );
    const defaultSa = resolvePodPullSecrets(pod({}), objects);
    assert.deepEqual(
      defaultSa.secrets.map((s) => [s.name, s.via]),
      [['legacy', 'service-account']],
    );
    const podWins = resolvePodPullSecrets(
      pod({ serviceAccountName: 'builder', imagePullSecrets: [{ name: 'cfgjson' }] }),
      objects,
    );
    assert.deepEqual(
      podWins.secrets.map((s) => s.name),
      ['cfgjson'],
    );
    const noSa = resolvePodPullSecrets(pod({ serviceAccountName: 'ghost' }), objects);
    assert.deepEqual(
      noSa.problems.map((p) => p.kind),
      ['service-account-not-found'],
    );
  });
  test("a pull Secret with an invalid payload is the pod's keyring error (kubelet fails that pod's keyring build), not a throw", () => {
    const bad = parseKubernetesObjects(
      [
        secretYaml('bad', { value: '{"auths": {"r": {"password": "hunter2-XYZ", "auth": 5}}}' }),
        secretYaml('good'),
      ].join('\n---\n'),
    );
    const p = pod({ imagePullSecrets: [{ name: 'bad' }, { name: 'good' }, { name: 'gone' }] }, 'default');
    const r = resolvePodPullSecrets(p, bad);
    assert.ok(isKimgError(r.keyringError, 'SECRET_INVALID'));
    assert.ok(r.keyringError.message.includes('default/bad') && !r.keyringError.message.includes('hunter2'));
    assert.deepEqual(
      r.problems.map((x) => [x.kind, x.name]),
      [
        ['undecodable', 'bad'],
        ['not-found', 'gone'],
      ],
    );
    assert.deepEqual(failedPullSecretNames(r), ['bad', 'gone']);
    // strict mode (the CLI's explicit checks) still throws it
    assert.throws(
      () => resolvePodPullSecrets(p, bad, { strict: true }),
      (e: unknown) => isKimgError(e, 'SECRET_INVALID') && !e.message.includes('hunter2'),
    );
  });
  test('all Secrets go into one keyring group: the key sort decides the order, not the list order', () => {
    const objs = parseKubernetesObjects(
      [
        secretYaml('first', { value: CFG('first', 'reg.io') }),
        secretYaml('second', { value: CFG('second', 'reg.io/team') }),
      ].join('\n---\n'),
    );
    const r = resolvePodPullSecrets(
      pod({ imagePullSecrets: [{ name: 'first' }, { name: 'second' }] }, 'default'),
      objs,
    );
    const k = buildKeyring({ podSecrets: r });
    assert.deepEqual(
      k.lookup('reg.io/team/app').map((m) => [m.auth.username, m.source.kind, m.source.name]),
      [
        ['second', 'secret', 'second'],
        ['first', 'secret', 'first'],
      ],
    );
  });
  test('without a pod: every Secret of the namespace is offered', () => {
    const r = pullSecretsFromObjects(objects, { namespace: 'app' });
    assert.deepEqual(
      r.secrets.map((s) => s.name),
      ['cfgjson', 'legacy', 'sa-secret'],
    );
    assert.deepEqual(
      r.problems.map((p) => [p.name, p.kind]),
      [
        ['opaque', 'wrong-type'],
        ['wrongkey', 'missing-key'],
        ['elsewhere', 'wrong-namespace'],
      ],
    );
  });
});

describe('readKubernetesObjects', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('creds-obj-');
  });
  after(async () => {
    await removeTempDir(dir);
  });
  test('reads several files in order; a missing file is FILE_NOT_FOUND', async () => {
    await writeFile(join(dir, 'a.yaml'), secretYaml('a'));
    await writeFile(
      join(dir, 'b.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'b' } }),
    );
    const objs = await readKubernetesObjects([join(dir, 'a.yaml'), join(dir, 'b.json')]);
    assert.deepEqual(
      objs.map((o) => o.name),
      ['a', 'b'],
    );
    await assert.rejects(readKubernetesObjects([join(dir, 'none.yaml')]), (e: unknown) =>
      isKimgError(e, 'FILE_NOT_FOUND'),
    );
  });
});
