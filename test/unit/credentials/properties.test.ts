/**
 * Property tests for src/credentials (fast-check, `fuzzParams()`: 10,000 runs each by default): the
 * docker config parser, Secret objects, CredentialProviderConfig and plugin responses throw only coded
 * KimgErrors, and no input makes an error message (or the error's JSON) contain the password or its
 * encodings; keyring matching never throws; the kubectl YAML printer always writes YAML that reads back
 * to the same strings.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import {
  buildKeyring,
  formatDockerRegistrySecret,
  Keyring,
  matchKey,
  normalizeKeyringKey,
  parseCredentialProviderConfig,
  parseCredentialProviderResponse,
  parseDockerConfig,
  parseKubernetesObjects,
  pullSecretsFromObjects,
  resolvePodPullSecrets,
  Secret,
  validateCredentialProviderConfig,
  type DockerRegistrySecretManifest,
} from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** Passwords carry a marker no generated structure can produce by accident. */
const password = fc
  .string({
    unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789!#%&()*+,-./:;<=>?@[]^_{|}~ '.split('')),
    minLength: 6,
    maxLength: 24,
  })
  .map((s) => `PwX7${s}`);

/** Forms of the password that must never leak. */
function forms(pw: string, user: string): string[] {
  return [pw, b64(pw), b64(`${user}:${pw}`), JSON.stringify(pw).slice(1, -1)];
}

/** Runs `fn`; any throwable must be a coded KimgError whose message and JSON hold no password form. */
function noLeak(input: unknown, leaks: string[], fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!isKimgError(e))
      throw new Error(`uncoded error for input ${JSON.stringify(input)?.slice(0, 300)}: ${String(e)}`, {
        cause: e,
      });
    const texts = [e.message, JSON.stringify(e)];
    for (const t of texts) {
      for (const l of leaks)
        if (l.length >= 6 && t.includes(l))
          throw new Error(`error leaks a secret: ${t.slice(0, 300)}`, { cause: e });
    }
  }
}

const junk = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 4 }), { maxLength: 2 }),
);
const key = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom(
    'reg.io',
    'https://index.docker.io/v1/',
    '*.example.com',
    'reg:5000/team',
    'http://reg',
    '%zz',
    'a b',
    'oci://x',
    '[::1]:5000',
  ),
);

/** A docker config entry object where secret-bearing fields hold the password (or junk). */
function entryFor(pw: string, user: string): fc.Arbitrary<Record<string, unknown>> {
  const field = (v: unknown): fc.Arbitrary<unknown> =>
    fc.oneof({ weight: 4, arbitrary: fc.constant(v) }, { weight: 1, arbitrary: junk });
  return fc.record(
    {
      username: field(user),
      password: field(pw),
      auth: fc.oneof(
        fc.constant(b64(`${user}:${pw}`)),
        fc.constant(b64(`${user}${pw}`)),
        fc.constant(pw),
        fc.constant(b64(`${user}:${pw}`).replace(/=+$/, '')),
        fc.constant(`${b64(`${user}:${pw}`)}=`),
        junk,
      ),
      Password: field(pw),
      email: field('a@b'),
      identitytoken: field(pw),
      registrytoken: field(pw),
      extra: junk,
    },
    { requiredKeys: [] },
  );
}

const configDoc = fc.tuple(password, fc.string({ maxLength: 8 })).chain(([pw, user]) =>
  fc
    .tuple(
      fc.constant(pw),
      fc.constant(user),
      fc.array(
        fc.tuple(key, fc.oneof({ weight: 5, arbitrary: entryFor(pw, user) }, { weight: 1, arbitrary: junk })),
        { maxLength: 4 },
      ),
      fc.constantFrom('config.json', 'dockercfg', 'wrapped-junk'),
      fc.option(fc.nat(), { nil: undefined }),
    )
    .map(([p, u, entries, shape, cut]) => {
      const map = Object.fromEntries(entries);
      const doc =
        shape === 'config.json'
          ? { auths: map, HttpHeaders: { a: 'b' } }
          : shape === 'dockercfg'
            ? map
            : { auths: pw, x: map };
      let text = JSON.stringify(doc);
      if (cut !== undefined && text.length > 0) text = text.slice(0, cut % text.length); // syntax errors mid-secret
      return { pw: p, user: u, text };
    }),
);

describe('properties', () => {
  test('docker config parser: only coded errors, never a password in the error', () => {
    fc.assert(
      fc.property(
        configDoc,
        fc.constantFrom<'auto' | 'config.json' | 'dockercfg'>('auto', 'config.json', 'dockercfg'),
        ({ pw, user, text }, format) => {
          noLeak(text, forms(pw, user), () => parseDockerConfig(text, { file: '/f.json', format }));
        },
      ),
      fuzzParams(),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        noLeak(text, [], () => parseDockerConfig(text));
      }),
      fuzzParams(),
    );
  });

  test('Secret objects and pull Secret resolution: only coded errors, no password in errors', () => {
    const secretDoc = fc.tuple(password, fc.string({ maxLength: 8 })).chain(([pw, user]) =>
      fc
        .tuple(
          fc.constant(pw),
          fc.constant(user),
          fc.constantFrom(
            'kubernetes.io/dockerconfigjson',
            'kubernetes.io/dockercfg',
            'Opaque',
            'kubernetes.io/basic-auth',
            5,
          ),
          fc.constantFrom('.dockerconfigjson', '.dockercfg', 'password', 'x'),
          configDoc.map((d) => d.text.split(d.pw).join(pw)),
          fc.constantFrom('data', 'stringData'),
          fc.constantFrom('yaml', 'json'),
          fc.option(fc.constantFrom('default', 'app', 'other'), { nil: undefined }),
          fc.boolean(),
        )
        .map(([p, u, type, k, payload, where, syntax, ns, corruptB64]) => {
          const value =
            where === 'data' ? (corruptB64 ? b64(payload).slice(1) + '!' + p : b64(payload)) : payload;
          const obj = {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name: 's', ...(ns !== undefined ? { namespace: ns } : {}) },
            type,
            [where]: { [k]: value },
          };
          const pod = {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'p', namespace: 'app' },
            spec: { imagePullSecrets: [{ name: 's' }] },
          };
          const text =
            syntax === 'json'
              ? JSON.stringify(obj) + JSON.stringify(pod)
              : `${JSON.stringify(obj)}\n---\n${JSON.stringify(pod)}\n`;
          return { pw: p, user: u, text, payload };
        }),
    );
    fc.assert(
      fc.property(secretDoc, ({ pw, user, text, payload }) => {
        const leaks = [...forms(pw, user), b64(payload)].filter((l) => l.length >= 6);
        noLeak(text, leaks, () => {
          const objs = parseKubernetesObjects(text, 'm.yaml');
          const pod = objs.find((o) => o.kind === 'Pod');
          const r = pod !== undefined ? resolvePodPullSecrets(pod, objs) : pullSecretsFromObjects(objs);
          for (const p of r.problems)
            for (const l of leaks) if (p.message.includes(l)) throw new Error(`problem leaks: ${p.message}`);
          buildKeyring({ podSecrets: r }).lookupRepository('reg.io/x');
          resolvePodPullSecrets(pod ?? { kind: 'Pod', spec: { imagePullSecrets: [{ name: 's' }] } }, objs, {
            strict: true,
          });
        });
      }),
      fuzzParams(),
    );
  });

  test('CredentialProviderConfig: only coded errors; env values never in messages', () => {
    const provider = (pw: string): fc.Arbitrary<Record<string, unknown>> =>
      fc.record(
        {
          name: fc.oneof(
            fc.constantFrom('ecr', 'a/b', '.', '..', 'x y', ''),
            fc.string({ maxLength: 6 }),
            junk,
          ),
          matchImages: fc.oneof(fc.array(fc.oneof(key, junk), { maxLength: 3 }), junk),
          defaultCacheDuration: fc.oneof(
            fc.constantFrom('10m', '0s', '-1m', '1h30m', '1.5s', 'bogus', '300ms'),
            junk,
          ),
          apiVersion: fc.oneof(
            fc.constantFrom(
              'credentialprovider.kubelet.k8s.io/v1',
              'credentialprovider.kubelet.k8s.io/v1alpha1',
              'x/v1',
            ),
            junk,
          ),
          args: fc.oneof(fc.array(fc.string({ maxLength: 5 }), { maxLength: 2 }), junk),
          env: fc.oneof(
            fc.array(
              fc.record({
                name: fc.constantFrom('TOKEN', 'X'),
                value: fc.oneof({ weight: 3, arbitrary: fc.constant(pw) }, { weight: 1, arbitrary: junk }),
              }),
              { maxLength: 2 },
            ),
            junk,
          ),
          tokenAttributes: fc.oneof(
            fc.record(
              {
                serviceAccountTokenAudience: fc.oneof(fc.constant('aud'), junk),
                cacheType: fc.oneof(fc.constantFrom('Token', 'ServiceAccount', 'x'), junk),
                requireServiceAccount: fc.oneof(fc.boolean(), junk),
                requiredServiceAccountAnnotationKeys: fc.oneof(
                  fc.array(fc.constantFrom('a.io/b', 'Bad-', 'x/y/z'), { maxLength: 2 }),
                  junk,
                ),
              },
              { requiredKeys: [] },
            ),
            junk,
          ),
          unknownField: junk,
        },
        { requiredKeys: ['name'] },
      );
    const doc = password.chain((pw) =>
      fc
        .tuple(
          fc.constant(pw),
          fc.array(provider(pw), { maxLength: 3 }),
          fc.constantFrom(
            'kubelet.config.k8s.io/v1',
            'kubelet.config.k8s.io/v1beta1',
            'kubelet.config.k8s.io/v1alpha1',
            'other/v1',
          ),
          fc.constantFrom('CredentialProviderConfig', 'KubeletConfiguration'),
          fc.boolean(),
        )
        .map(([p, providers, apiVersion, kind, asJson]) => {
          const obj = { kind, apiVersion, providers };
          return { pw: p, text: asJson ? JSON.stringify(obj) : JSON.stringify(obj, null, 1) };
        }),
    );
    fc.assert(
      fc.property(doc, ({ pw, text }) => {
        noLeak(text, [pw, JSON.stringify(pw).slice(1, -1)], () => {
          const specs = parseCredentialProviderConfig(text, 'c.yaml');
          for (const e of validateCredentialProviderConfig(specs))
            if (e.includes(pw)) throw new Error(`validation leaks: ${e}`);
        });
      }),
      fuzzParams(),
    );
  });

  test('plugin responses: only coded errors, never the password', () => {
    const V1 = 'credentialprovider.kubelet.k8s.io/v1';
    const resp = fc.tuple(password, fc.string({ maxLength: 6 })).chain(([pw, user]) =>
      fc
        .tuple(
          fc.constant(pw),
          fc.constant(user),
          fc.record(
            {
              kind: fc.oneof(fc.constant('CredentialProviderResponse'), junk),
              apiVersion: fc.oneof(
                { weight: 4, arbitrary: fc.constant(V1) },
                {
                  weight: 1,
                  arbitrary: fc.oneof(fc.constant('credentialprovider.kubelet.k8s.io/v1beta1'), junk),
                },
              ),
              cacheKeyType: fc.oneof(fc.constantFrom('Image', 'Registry', 'Global', 'Pod', ''), junk),
              cacheDuration: fc.oneof(fc.constantFrom('1m', '0s', '6h0m0s', 'x'), junk),
              auth: fc.oneof(
                fc.dictionary(
                  key,
                  fc.oneof(
                    {
                      weight: 4,
                      arbitrary: fc.record(
                        {
                          username: fc.oneof(fc.constant(user), junk),
                          password: fc.oneof(fc.constant(pw), junk),
                          token: junk,
                        },
                        { requiredKeys: [] },
                      ),
                    },
                    { weight: 1, arbitrary: junk },
                  ),
                  { maxKeys: 3 },
                ),
                junk,
              ),
              extra: junk,
            },
            { requiredKeys: [] },
          ),
          fc.option(fc.nat(), { nil: undefined }),
        )
        .map(([p, u, obj, cut]) => {
          let text = JSON.stringify(obj);
          if (cut !== undefined) text = text.slice(0, cut % (text.length + 1));
          return { pw: p, user: u, text };
        }),
    );
    fc.assert(
      fc.property(resp, ({ pw, user, text }) => {
        noLeak(text, forms(pw, user), () => parseCredentialProviderResponse(text, V1, 'p'));
      }),
      fuzzParams(),
    );
  });

  test('keyring: normalization, matching and lookup never throw, for any keys and names', () => {
    fc.assert(
      fc.property(
        fc.array(key, { maxLength: 5 }),
        fc.oneof(fc.string({ maxLength: 40 }), key),
        (keys, target) => {
          const k = new Keyring().add(
            keys.map((x) => ({ key: x, auth: { username: 'u', password: new Secret('p') } })),
            { kind: 'flag' },
          );
          k.lookupRepository(target);
          k.explainRepository(target, { all: true });
          for (const x of keys) {
            normalizeKeyringKey(x);
            matchKey(x, target);
          }
          try {
            k.lookup(target);
          } catch (e) {
            if (!isKimgError(e)) throw e;
          }
        },
      ),
      fuzzParams(),
    );
  });

  test('kubectl YAML printer: any name, namespace and data key read back unchanged', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 120 }),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.constantFrom(
        'yes',
        '012',
        '1:20',
        '- x',
        'a: b',
        ' x',
        'x ',
        '',
        '"',
        "'",
        '#x',
        'a #b',
        '\n',
        'a\n',
        ' a\nb',
        'a \nb',
        '\t',
      ),
    );
    fc.assert(
      fc.property(
        text,
        fc.option(text, { nil: undefined }),
        fc.string({ unit: fc.constantFrom(...'-._abcXYZ019'.split('')), minLength: 1, maxLength: 140 }),
        (name, namespace, dataKey) => {
          const secret: DockerRegistrySecretManifest = {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name, ...(namespace !== undefined ? { namespace } : {}), creationTimestamp: null },
            data: { [dataKey]: b64(name) },
            type: 'kubernetes.io/dockerconfigjson',
          };
          const out = formatDockerRegistrySecret(secret, 'yaml');
          const back = parseYaml(out, { schema: 'failsafe', uniqueKeys: false }) as Record<
            string,
            Record<string, string>
          >;
          // Lone surrogates cannot be written as UTF-8; everything else must survive.
          const wellFormed = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');
          assert.equal(back.metadata?.name, wellFormed(name), out);
          if (namespace !== undefined) assert.equal(back.metadata?.namespace, wellFormed(namespace), out);
          assert.equal(back.data?.[dataKey], b64(name), out);
          const json = JSON.parse(formatDockerRegistrySecret(secret, 'json')) as {
            metadata: { name: string };
          };
          assert.equal(json.metadata.name, wellFormed(name));
        },
      ),
      fuzzParams(),
    );
  });
});
