/**
 * CredentialProviderConfig decoding and validation (upstream `pkg/credentialprovider/plugin/config_test.go`:
 * Test_readCredentialProviderConfigFile, Test_validateCredentialProviderConfig; messages as in
 * `config.go` @ fde22c3f).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  loadCredentialProviderConfig,
  parseCredentialProviderConfig,
  validateCredentialProviderConfig,
  type CredentialProviderSpec,
} from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const MIN = 60_000_000_000n;

function spec(over: Partial<CredentialProviderSpec> = {}): CredentialProviderSpec {
  return {
    name: 'foobar',
    matchImages: ['foobar.registry.io'],
    defaultCacheDuration: MIN,
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1alpha1',
    args: [],
    env: [],
    ...over,
  };
}

describe('decoding (upstream Test_readCredentialProviderConfigFile)', () => {
  test('one plugin, args and env', () => {
    const p = parseCredentialProviderConfig(`---
kind: CredentialProviderConfig
apiVersion: kubelet.config.k8s.io/v1alpha1
providers:
  - name: test
    matchImages:
    - "registry.io/foobar"
    defaultCacheDuration: 10m
    apiVersion: credentialprovider.kubelet.k8s.io/v1alpha1
    args:
    - --v=5
    env:
    - name: FOO
      value: BAR`);
    assert.deepEqual(p, [
      {
        name: 'test',
        matchImages: ['registry.io/foobar'],
        defaultCacheDuration: 10n * MIN,
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1alpha1',
        args: ['--v=5'],
        env: [{ name: 'FOO', value: 'BAR' }],
      },
    ]);
  });
  for (const v of ['v1alpha1', 'v1beta1', 'v1']) {
    test(`config ${v} with several providers`, () => {
      const p = parseCredentialProviderConfig(`kind: CredentialProviderConfig
apiVersion: kubelet.config.k8s.io/${v}
providers:
  - name: test1
    matchImages: ["registry.io/one"]
    defaultCacheDuration: 10m
    apiVersion: credentialprovider.kubelet.k8s.io/${v}
  - name: test2
    matchImages: ["registry.io/two", "registry.io/*"]
    defaultCacheDuration: 1h30m
    apiVersion: credentialprovider.kubelet.k8s.io/${v}`);
      assert.deepEqual(
        p.map((x) => [x.name, x.matchImages, x.defaultCacheDuration]),
        [
          ['test1', ['registry.io/one'], 10n * MIN],
          ['test2', ['registry.io/two', 'registry.io/*'], 90n * MIN],
        ],
      );
    });
  }
  const errors: Array<[string, string, string]> = [
    [
      'wrong kind',
      'kind: WrongKind\napiVersion: kubelet.config.k8s.io/v1alpha1\nproviders: []',
      'no kind "WrongKind" is registered for version "kubelet.config.k8s.io/v1alpha1"',
    ],
    [
      'wrong apiVersion',
      'kind: CredentialProviderConfig\napiVersion: foobar/v1alpha1\nproviders: []',
      'no kind "CredentialProviderConfig" is registered for version "foobar/v1alpha1"',
    ],
    [
      'unknown field',
      'kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n  - name: test\n    matchImages: ["r"]\n    defaultCacheDuration: 10m\n    unknownField: should not be here\n    apiVersion: credentialprovider.kubelet.k8s.io/v1alpha1',
      'strict decoding error: unknown field "providers[0].unknownField"',
    ],
    [
      'tokenAttributes in v1alpha1',
      'kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1alpha1\nproviders:\n  - name: test\n    matchImages: ["r"]\n    defaultCacheDuration: 10m\n    apiVersion: credentialprovider.kubelet.k8s.io/v1alpha1\n    tokenAttributes:\n      serviceAccountTokenAudience: audience',
      'strict decoding error: unknown field "providers[0].tokenAttributes"',
    ],
    [
      'tokenAttributes in v1beta1',
      'kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1beta1\nproviders:\n  - name: test\n    matchImages: ["r"]\n    defaultCacheDuration: 10m\n    apiVersion: credentialprovider.kubelet.k8s.io/v1beta1\n    tokenAttributes:\n      serviceAccountTokenAudience: audience',
      'strict decoding error: unknown field "providers[0].tokenAttributes"',
    ],
    ['missing kind', 'apiVersion: kubelet.config.k8s.io/v1\nproviders: []', "Object 'Kind' is missing"],
    ['empty file', '', "Object 'Kind' is missing"],
    [
      'bad duration',
      'kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n  - name: t\n    defaultCacheDuration: 10 minutes',
      'time: invalid duration "10 minutes"',
    ],
    [
      'duration as number',
      'kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n  - name: t\n    defaultCacheDuration: 0',
      'cannot unmarshal number',
    ],
    [
      'name as number',
      'kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n  - name: 123',
      'cannot unmarshal number into Go struct field providers[0].name of type string',
    ],
    [
      'duplicate key',
      'kind: CredentialProviderConfig\nkind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1',
      'invalid YAML',
    ],
  ];
  for (const [name, text, want] of errors) {
    test(name, () => {
      assert.throws(
        () => parseCredentialProviderConfig(text, 'c.yaml'),
        (e: unknown) =>
          isKimgError(e, 'CREDENTIAL_PROVIDER_CONFIG_INVALID') &&
          e.message.includes(want) &&
          e.message.startsWith('error decoding config "c.yaml": '),
        name,
      );
    });
  }
  test('tokenAttributes decode in v1', () => {
    const [p] = parseCredentialProviderConfig(`kind: CredentialProviderConfig
apiVersion: kubelet.config.k8s.io/v1
providers:
  - name: t
    matchImages: ["*.reg.io"]
    defaultCacheDuration: 0s
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    tokenAttributes:
      serviceAccountTokenAudience: aud
      cacheType: ServiceAccount
      requireServiceAccount: true
      requiredServiceAccountAnnotationKeys: [example.com/role]`);
    assert.deepEqual(p?.tokenAttributes, {
      serviceAccountTokenAudience: 'aud',
      cacheType: 'ServiceAccount',
      requireServiceAccount: true,
      requiredServiceAccountAnnotationKeys: ['example.com/role'],
      optionalServiceAccountAnnotationKeys: [],
    });
    assert.equal(p?.defaultCacheDuration, 0n);
  });
});

describe('validation (upstream Test_validateCredentialProviderConfig)', () => {
  const ta = (over: Record<string, unknown> = {}): CredentialProviderSpec['tokenAttributes'] => ({
    serviceAccountTokenAudience: 'audience',
    cacheType: 'ServiceAccount',
    requireServiceAccount: true,
    requiredServiceAccountAnnotationKeys: [],
    optionalServiceAccountAnnotationKeys: [],
    ...over,
  });
  const v1 = 'credentialprovider.kubelet.k8s.io/v1';
  const cases: Array<[string, CredentialProviderSpec[], string[], boolean?]> = [
    ['no providers', [], ['providers: Required value: at least 1 item in plugins is required']],
    [
      'no matchImages',
      [spec({ matchImages: [] })],
      ['providers.matchImages: Required value: at least 1 item in matchImages is required'],
    ],
    [
      'no default cache duration',
      [(({ defaultCacheDuration: _d, ...rest }) => rest)(spec())],
      ['providers.defaultCacheDuration: Required value'],
    ],
    [
      "name contains '/'",
      [spec({ name: 'foo/../bar' })],
      [`providers.name: Invalid value: "foo/../bar": provider name cannot contain '/'`],
    ],
    [
      "name is '.'",
      [spec({ name: '.' })],
      [`providers.name: Invalid value: ".": provider name cannot be '.'`],
    ],
    [
      "name is '..'",
      [spec({ name: '..' })],
      [`providers.name: Invalid value: "..": provider name cannot be '..'`],
    ],
    [
      'name contains spaces',
      [spec({ name: 'foo bar' })],
      ['providers.name: Invalid value: "foo bar": provider name cannot contain spaces'],
    ],
    [
      'duplicate names',
      [spec(), spec({ matchImages: ['bar.registry.io'] })],
      ['providers.name: Duplicate value: "foobar"'],
    ],
    ['no apiVersion', [spec({ apiVersion: '' })], ['providers.apiVersion: Required value']],
    [
      'invalid apiVersion',
      [spec({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1alpha0' })],
      [
        'providers.apiVersion: Unsupported value: "credentialprovider.kubelet.k8s.io/v1alpha0": supported values: "credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1alpha1", "credentialprovider.kubelet.k8s.io/v1beta1"',
      ],
    ],
    [
      'negative default cache duration',
      [spec({ defaultCacheDuration: -MIN })],
      ['providers.defaultCacheDuration: Invalid value: -1m0s: must be greater than or equal to 0'],
    ],
    [
      'invalid match image',
      [spec({ matchImages: ['%invalid%'] })],
      [
        'providers.matchImages: Invalid value: "%invalid%": match image is invalid: parse "https://%invalid%": invalid URL escape "%in"',
      ],
    ],
    [
      // Go's %q (strconv.Quote) writes a control character as \x01, where JSON would write \u0001.
      'match image with a control character',
      [spec({ matchImages: ['reg\x01.io'] })],
      [
        String.raw`providers.matchImages: Invalid value: "reg\x01.io": match image is invalid: parse "https://reg\x01.io": net/url: invalid control character in URL`,
      ],
    ],
    ['valid', [spec()], []],
    [
      'token attributes with the feature gate disabled',
      [spec({ apiVersion: v1, tokenAttributes: ta() })],
      [
        'providers.tokenAttributes: Forbidden: tokenAttributes is not supported when KubeletServiceAccountTokenForCredentialProviders feature gate is disabled',
      ],
      false,
    ],
    [
      'empty audience',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: ta({
            serviceAccountTokenAudience: '',
            requiredServiceAccountAnnotationKeys: ['prefix.io/annotation-1', 'prefix.io/annotation-2'],
          }),
        }),
      ],
      ['providers.tokenAttributes.serviceAccountTokenAudience: Required value'],
    ],
    [
      'requireServiceAccount unset',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: (({ requireServiceAccount: _r, ...rest }) => rest)(
            ta({ requiredServiceAccountAnnotationKeys: ['prefix.io/annotation-1'] })!,
          ),
        }),
      ],
      ['providers.tokenAttributes.requireServiceAccount: Required value'],
    ],
    [
      'required annotation key not a qualified name',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: ta({
            requiredServiceAccountAnnotationKeys: ['cantendwithadash-', 'now-with-dashes/simple'],
          }),
        }),
      ],
      [
        "providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Invalid value: \"cantendwithadash-\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
      ],
    ],
    [
      'optional annotation key not a qualified name',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: ta({
            optionalServiceAccountAnnotationKeys: ['cantendwithadash-', 'now-with-dashes/simple'],
          }),
        }),
      ],
      [
        "providers.tokenAttributes.optionalServiceAccountAnnotationKeys: Invalid value: \"cantendwithadash-\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
      ],
    ],
    [
      'duplicate required annotation keys',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: ta({
            requiredServiceAccountAnnotationKeys: ['now-with-dashes/simple', 'now-with-dashes/simple'],
          }),
        }),
      ],
      [
        'providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Duplicate value: "now-with-dashes/simple"',
      ],
    ],
    [
      'duplicate optional annotation keys',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: ta({
            optionalServiceAccountAnnotationKeys: ['now-with-dashes/simple', 'now-with-dashes/simple'],
          }),
        }),
      ],
      [
        'providers.tokenAttributes.optionalServiceAccountAnnotationKeys: Duplicate value: "now-with-dashes/simple"',
      ],
    ],
    [
      'key both required and optional',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: ta({
            requiredServiceAccountAnnotationKeys: ['now-with-dashes/simple-1', 'now-with-dashes/simple-2'],
            optionalServiceAccountAnnotationKeys: ['now-with-dashes/simple-2', 'now-with-dashes/simple-3'],
          }),
        }),
      ],
      [
        'providers.tokenAttributes: Invalid value: []string{"now-with-dashes/simple-2"}: annotation keys cannot be both required and optional',
      ],
    ],
    [
      'required keys with requireServiceAccount false',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: ta({
            requireServiceAccount: false,
            requiredServiceAccountAnnotationKeys: ['now-with-dashes/simple-1'],
          }),
        }),
      ],
      [
        'providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Forbidden: requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set',
      ],
    ],
    [
      'valid token attributes',
      [
        spec({
          apiVersion: v1,
          tokenAttributes: ta({
            requiredServiceAccountAnnotationKeys: ['now-with-dashes/simple-1'],
            optionalServiceAccountAnnotationKeys: ['now-with-dashes/simple-3'],
          }),
        }),
      ],
      [],
    ],
    [
      'token attributes with the v1alpha1 plugin API',
      [spec({ tokenAttributes: ta() })],
      [
        'providers.tokenAttributes: Forbidden: tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1 API version',
      ],
    ],
    [
      'cacheType missing',
      [spec({ apiVersion: v1, tokenAttributes: ta({ cacheType: '' }) })],
      [
        'providers.tokenAttributes.cacheType: Required value: cacheType is required to be set when tokenAttributes is specified. Supported values are: ServiceAccount, Token',
      ],
    ],
    [
      'cacheType unknown',
      [spec({ apiVersion: v1, tokenAttributes: ta({ cacheType: 'Pod' }) })],
      [
        'providers.tokenAttributes.cacheType: Unsupported value: "Pod": supported values: "ServiceAccount", "Token"',
      ],
    ],
  ];
  for (const [name, providers, want, gate] of cases) {
    test(name, () => {
      assert.deepEqual(
        validateCredentialProviderConfig(providers, {
          serviceAccountTokenForCredentialProviders: gate ?? true,
        }),
        want,
      );
    });
  }
});

describe('loadCredentialProviderConfig', () => {
  let dir: string;
  const doc = (name: string): string =>
    `kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders:\n  - name: ${name}\n    matchImages: ["reg.io"]\n    defaultCacheDuration: 1m\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n`;
  before(async () => {
    dir = await makeTempDir('creds-pc-');
  });
  after(async () => {
    await removeTempDir(dir);
  });
  test('a directory: *.json/*.yaml/*.yml in lexicographic order, merged; other files ignored', async () => {
    const d = join(dir, 'conf.d');
    await mkdir(join(d, 'sub.yaml'), { recursive: true });
    await writeFile(join(d, 'b.yaml'), doc('b'));
    await writeFile(join(d, 'a.yml'), doc('a'));
    await writeFile(
      join(d, 'c.json'),
      JSON.stringify({
        kind: 'CredentialProviderConfig',
        apiVersion: 'kubelet.config.k8s.io/v1',
        providers: [
          {
            name: 'c',
            matchImages: ['x'],
            defaultCacheDuration: '0s',
            apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
          },
        ],
      }),
    );
    await writeFile(join(d, 'readme.txt'), 'ignored');
    const c = await loadCredentialProviderConfig(d);
    assert.deepEqual(
      c.providers.map((p) => p.name),
      ['a', 'b', 'c'],
    );
    assert.match(c.hash, /^sha256:[0-9a-f]{64}$/);
  });
  test('errors: duplicate names across files, empty dir, missing path, validation', async () => {
    const d = join(dir, 'dup');
    await mkdir(d, { recursive: true });
    await writeFile(join(d, '1.yaml'), doc('x'));
    await writeFile(join(d, '2.yaml'), doc('x'));
    await assert.rejects(
      loadCredentialProviderConfig(d),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_CONFIG_INVALID') &&
        e.message === 'duplicate provider name "x" found in configuration file(s)',
    );
    const empty = join(dir, 'empty');
    await mkdir(empty, { recursive: true });
    await assert.rejects(
      loadCredentialProviderConfig(empty),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_CONFIG_INVALID') &&
        e.message === `no configuration files found in directory "${empty}"`,
    );
    await assert.rejects(loadCredentialProviderConfig(join(dir, 'nope.yaml')), (e: unknown) =>
      isKimgError(e, 'FILE_NOT_FOUND'),
    );
    const invalid = join(dir, 'invalid.yaml');
    await writeFile(invalid, doc('a/b').replace('    defaultCacheDuration: 1m\n', ''));
    await assert.rejects(
      loadCredentialProviderConfig(invalid),
      (e: unknown) =>
        isKimgError(e, 'CREDENTIAL_PROVIDER_CONFIG_INVALID') &&
        e.message ===
          `failed to validate credential provider config: [providers.name: Invalid value: "a/b": provider name cannot contain '/', providers.defaultCacheDuration: Required value]`,
    );
  });
});
