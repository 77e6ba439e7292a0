/**
 * src/config: Go durations, the kubelet's defaults and validation messages for the image fields, the
 * allowlist patterns, notices for unknown fields, the `kimg:` extension and the sibling
 * KimgConfiguration file, and file loading.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KimgError } from '../../../src/errors/index.js';
import {
  DEFAULT_CONTAINER_RUNTIME_ENDPOINT,
  goDurationString,
  goParseDuration,
  goQuote,
  loadNodeConfig,
  parseAllowlistPattern,
  parseNodeConfig,
  parseNodeConfigs,
  parseSecretRef,
  type NodeConfig,
} from '../../../src/config/index.js';

const HEAD = 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n';

function kubelet(body: string): NodeConfig {
  return parseNodeConfig(HEAD + body);
}

/** The problems of an invalid configuration (without the `<config>: ` prefix). */
function problems(text: string): string[] {
  try {
    parseNodeConfig(text);
  } catch (e) {
    assert.ok(e instanceof KimgError, `not a KimgError: ${String(e)}`);
    assert.equal(e.code, 'CONFIG_INVALID');
    return (e.details.items ?? []).map((i) => i.replace(/^<config>: /, ''));
  }
  return [];
}

describe('Go durations (time.ParseDuration / Duration.String)', () => {
  const valid: Array<[string, string]> = [
    ['2m', '2m0s'],
    ['1h30m', '1h30m0s'],
    ['300ms', '300ms'],
    ['1.5h', '1h30m0s'],
    ['.5s', '500ms'],
    ['1.s', '1s'],
    ['-1.5h', '-1h30m0s'],
    ['+5s', '5s'],
    ['0', '0s'],
    ['-0', '0s'],
    ['0s', '0s'],
    ['1us', '1µs'],
    ['1\u00b5s', '1µs'],
    ['1\u03bcs', '1µs'],
    ['100ns', '100ns'],
    ['1h1m1s1ms1us1ns', '1h1m1.001001001s'],
    ['9223372036854775807ns', '2562047h47m16.854775807s'],
    ['-9223372036854775808ns', '-2562047h47m16.854775808s'],
    ['2562047h47m16.854775807s', '2562047h47m16.854775807s'],
    ['0.000000001s', '1ns'],
    ['1.0000000000000000000001s', '1s'],
  ];
  for (const [input, printed] of valid) {
    test(`${JSON.stringify(input)} → ${printed}`, () => {
      const r = goParseDuration(input);
      assert.ok(r.ok, r.ok ? '' : r.error);
      assert.equal(goDurationString(r.ns), printed);
    });
  }
  const invalid: Array<[unknown, string]> = [
    ['', 'time: invalid duration ""'],
    ['-', 'time: invalid duration "-"'],
    ['1', 'time: missing unit in duration "1"'],
    ['1.5.5s', 'time: missing unit in duration "1.5.5s"'],
    ['1x', 'time: unknown unit "x" in duration "1x"'],
    ['1e3s', 'time: unknown unit "e" in duration "1e3s"'],
    ['1 s', 'time: unknown unit " s" in duration "1 s"'],
    ['.s', 'time: invalid duration ".s"'],
    ['s', 'time: invalid duration "s"'],
    ['\u00b5s', 'time: invalid duration "\\xc2\\xb5s"'],
    ['9223372036854775808ns', 'time: invalid duration "9223372036854775808ns"'],
    ['2562047h47m16.854775808s', 'time: invalid duration "2562047h47m16.854775808s"'],
    ['3000000h', 'time: invalid duration "3000000h"'],
    ['1"s', 'time: unknown unit "\\"s" in duration "1\\"s"'],
    [120, 'time: invalid duration "120"'],
  ];
  for (const [input, error] of invalid) {
    test(`${JSON.stringify(input)} → ${error}`, () => {
      assert.deepEqual(goParseDuration(input), { ok: false, error });
    });
  }

  test('goQuote is Go %q', () => {
    assert.equal(goQuote('a"b\\c\n\u0007\u00e9\u200b'), '"a\\"b\\\\c\\n\\aé\\u200b"');
  });
});

describe('kubelet defaults for the image fields (v1beta1 defaults.go)', () => {
  test('an empty KubeletConfiguration gets every default', () => {
    const { kubelet: k, notices } = kubelet('');
    assert.deepEqual(notices, []);
    assert.equal(k.serializeImagePulls, true);
    assert.equal(k.maxParallelImagePulls, null);
    assert.equal(k.registryPullQPS, 5);
    assert.equal(k.registryBurst, 10);
    assert.equal(k.imageGCHighThresholdPercent, 85);
    assert.equal(k.imageGCLowThresholdPercent, 80);
    assert.deepEqual(k.imageMinimumGCAge, { text: '2m0s', ms: 120_000 });
    assert.deepEqual(k.imageMaximumGCAge, { text: '0s', ms: 0 });
    assert.equal(k.imagePullCredentialsVerificationPolicy, 'NeverVerifyPreloadedImages');
    assert.deepEqual(k.preloadedImagesVerificationAllowlist, []);
    assert.equal(k.containerRuntimeEndpoint, DEFAULT_CONTAINER_RUNTIME_ENDPOINT);
    assert.equal(k.imageServiceEndpoint, DEFAULT_CONTAINER_RUNTIME_ENDPOINT);
    assert.equal(k.featureGates.RuntimeClassInImageCriApi, false);
    assert.equal(k.featureGates.KubeletEnsureSecretPulledImages, true);
  });

  test('zero values the kubelet replaces: registryBurst 0 → 10, imageMinimumGCAge 0s → 2m; registryPullQPS 0 stays (unlimited)', () => {
    const { kubelet: k } = kubelet('registryBurst: 0\nimageMinimumGCAge: 0s\nregistryPullQPS: 0\n');
    assert.equal(k.registryBurst, 10);
    assert.equal(k.imageMinimumGCAge.text, '2m0s');
    assert.equal(k.registryPullQPS, 0);
  });

  test('serializeImagePulls defaults to false once maxParallelImagePulls ≥ 2 is set, true for 1', () => {
    assert.equal(kubelet('maxParallelImagePulls: 2\n').kubelet.serializeImagePulls, false);
    assert.equal(kubelet('maxParallelImagePulls: 1\n').kubelet.serializeImagePulls, true);
    const explicit = kubelet('serializeImagePulls: false\n').kubelet;
    assert.equal(explicit.serializeImagePulls, false);
    assert.equal(explicit.maxParallelImagePulls, null);
  });

  test("the concept page's spelling NeverVerifyAllowListedImages is accepted as NeverVerifyAllowlistedImages", () => {
    const cfg = kubelet(
      'imagePullCredentialsVerificationPolicy: NeverVerifyAllowListedImages\npreloadedImagesVerificationAllowlist: ["registry.example/app"]\n',
    );
    assert.equal(cfg.kubelet.imagePullCredentialsVerificationPolicy, 'NeverVerifyAllowlistedImages');
    assert.deepEqual(cfg.kubelet.preloadedImagesVerificationAllowlist, ['registry.example/app']);
  });

  test('the verification policy default needs the gate; imageServiceEndpoint falls back to the runtime endpoint', () => {
    const off = kubelet('featureGates:\n  KubeletEnsureSecretPulledImages: false\n').kubelet;
    assert.equal(off.imagePullCredentialsVerificationPolicy, '');
    const ep = kubelet('containerRuntimeEndpoint: unix:///run/crio/crio.sock\n').kubelet;
    assert.equal(ep.imageServiceEndpoint, 'unix:///run/crio/crio.sock');
    const own = kubelet('imageServiceEndpoint: unix:///run/kimg/kimg.sock\n').kubelet;
    assert.equal(own.imageServiceEndpoint, 'unix:///run/kimg/kimg.sock');
    assert.equal(own.containerRuntimeEndpoint, DEFAULT_CONTAINER_RUNTIME_ENDPOINT);
  });

  test('YAML 1.1 booleans like the kubelet (yes/no/on/off); JSON strings stay strings', () => {
    assert.equal(kubelet('serializeImagePulls: no\n').kubelet.serializeImagePulls, false);
    assert.deepEqual(
      problems(
        '{"apiVersion":"kubelet.config.k8s.io/v1beta1","kind":"KubeletConfiguration","serializeImagePulls":"no"}',
      ),
      ['serializeImagePulls: must be true or false, got the string "no"'],
    );
  });
});

describe('kubelet validation messages (validation.go), all reported at once', () => {
  const cases: Array<[string, string, string[]]> = [
    [
      'GC thresholds out of range and inverted',
      'imageGCHighThresholdPercent: 101\nimageGCLowThresholdPercent: -1\n',
      [
        'invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive',
        'invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) -1 must be between 0 and 100, inclusive',
      ],
    ],
    [
      'low ≥ high',
      'imageGCHighThresholdPercent: 70\n',
      [
        'invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 80 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 70',
      ],
    ],
    [
      'imageMaximumGCAge needs its gate',
      'imageMaximumGCAge: 1h\nfeatureGates:\n  ImageMaximumGCAge: false\n',
      [
        'invalid configuration: ImageMaximumGCAge feature gate is required for Kubelet configuration option imageMaximumGCAge',
      ],
    ],
    [
      'negative ages; maximum not above minimum',
      'imageMinimumGCAge: -1m\nimageMaximumGCAge: -5s\n',
      [
        'invalid configuration: imageMinimumGCAge -1m0s must not be negative',
        'invalid configuration: imageMaximumGCAge -5s must not be negative',
      ],
    ],
    [
      'maximum ≤ minimum',
      'imageMinimumGCAge: 5m\nimageMaximumGCAge: 300s\n',
      ['invalid configuration: imageMaximumGCAge 5m0s must be greater than imageMinimumGCAge 5m0s'],
    ],
    [
      'negative QPS and burst',
      'registryPullQPS: -1\nregistryBurst: -2\n',
      [
        'invalid configuration: registryBurst (--registry-burst) -2 must not be a negative number',
        'invalid configuration: registryPullQPS (--registry-qps) -1 must not be a negative number',
      ],
    ],
    [
      'maxParallelImagePulls 0',
      'maxParallelImagePulls: 0\n',
      ['invalid configuration: maxParallelImagePulls 0 must be a positive number'],
    ],
    [
      'maxParallelImagePulls ≥ 2 with serializeImagePulls: true (the kubelet refuses to start)',
      'serializeImagePulls: true\nmaxParallelImagePulls: 2\n',
      [
        'invalid configuration: maxParallelImagePulls cannot be larger than 1 unless SerializeImagePulls (--serialize-image-pulls) is set to false',
      ],
    ],
    [
      'unknown verification policy',
      'imagePullCredentialsVerificationPolicy: VerifySometimes\n',
      [
        'invalid configuration: option "VerifySometimes" specified for imagePullCredentialsVerificationPolicy. Valid options are "NeverVerify", "NeverVerifyPreloadedImages", "NeverVerifyAllowlistedImages" or "AlwaysVerify"',
      ],
    ],
    [
      'an allowlist without the allowlist policy (upstream typo kept)',
      'imagePullCredentialsVerificationPolicy: AlwaysVerify\npreloadedImagesVerificationAllowlist: [registry.example/app]\n',
      [
        'invalid configuration: can\'t set `preloadedImagesVerificationAllowlist` if `imagePullCredentialsVertificationPolicy` is not "NeverVerifyAllowlistedImages"',
      ],
    ],
    [
      'a bad allowlist pattern (only the first is reported, as upstream)',
      'imagePullCredentialsVerificationPolicy: NeverVerifyAllowlistedImages\npreloadedImagesVerificationAllowlist: ["registry.example/app:1.0", "/*"]\n',
      [
        'invalid configuration: invalid image pattern in `preloadedImagesVerificationAllowlist`: neither tag nor digest is accepted in an image reference: registry.example/app:1.0',
      ],
    ],
    [
      'policy and allowlist with the gate off',
      'featureGates: {KubeletEnsureSecretPulledImages: false}\nimagePullCredentialsVerificationPolicy: AlwaysVerify\npreloadedImagesVerificationAllowlist: [a.example/b]\n',
      [
        'invalid configuration: `imagePullCredentialsVerificationPolicy` must not be set if KubeletEnsureSecretPulledImages feature gate is not enabled',
        'invalid configuration: `preloadedImagesVerificationAllowlist` must not be set if KubeletEnsureSecretPulledImages feature gate is not enabled',
      ],
    ],
    [
      'wrong types are decoding problems',
      'registryPullQPS: "5"\nmaxParallelImagePulls: 2.5\nimageMinimumGCAge: 120\nimageMaximumGCAge: soon\nserializeImagePulls: 1\npreloadedImagesVerificationAllowlist: [1]\nfeatureGates: {RuntimeClassInImageCriApi: maybe}\nregistryBurst: 3000000000\n',
      [
        'serializeImagePulls: must be true or false, got number 1',
        'maxParallelImagePulls: must be a 32-bit integer, got number 2.5',
        'registryPullQPS: must be a 32-bit integer, got the string "5"',
        'registryBurst: must be a 32-bit integer, got number 3000000000',
        'imageMinimumGCAge: must be a duration string such as "2m" or "1h30m", got number 120',
        'imageMaximumGCAge: time: invalid duration "soon"',
        'preloadedImagesVerificationAllowlist[0]: must be a string, got number 1',
        'featureGates.RuntimeClassInImageCriApi: must be true or false, got the string "maybe"',
      ],
    ],
    [
      'endpoints kimg cannot dial',
      'containerRuntimeEndpoint: tcp://10.0.0.1:1234\nimageServiceEndpoint: containerd.sock\n',
      [
        'containerRuntimeEndpoint: protocol "tcp" not supported: only unix:// (and npipe:// on Windows) endpoints are',
        'imageServiceEndpoint: "containerd.sock" is not an endpoint: write unix:///path/to/socket',
      ],
    ],
  ];
  for (const [name, body, expected] of cases) {
    test(name, () => assert.deepEqual(problems(HEAD + body), expected));
  }

  test('every problem in one CONFIG_INVALID: message aggregates, items list, file named', () => {
    try {
      parseNodeConfig(HEAD + 'registryPullQPS: -1\nmaxParallelImagePulls: 0\nkimg: {bogus: 1}\n', {
        file: '/etc/kubernetes/kubelet.yaml',
      });
      assert.fail('expected CONFIG_INVALID');
    } catch (e) {
      assert.ok(e instanceof KimgError);
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.equal(e.details.file, '/etc/kubernetes/kubelet.yaml');
      assert.equal(e.details.items?.length, 3);
      assert.ok(e.details.items?.every((i) => i.startsWith('/etc/kubernetes/kubelet.yaml: ')));
      assert.match(
        e.message,
        /^\[\/etc\/kubernetes\/kubelet\.yaml: invalid configuration: registryPullQPS .*\]; fix these 3 problems and retry$/,
      );
    }
  });
});

describe('preloadedImagesVerificationAllowlist patterns (getAllowlistImagePattern)', () => {
  const ok: Array<[string, unknown]> = [
    ['registry.example/app', { kind: 'exact', image: 'registry.example/app' }],
    ['docker.io/library/nginx', { kind: 'exact', image: 'docker.io/library/nginx' }],
    ['registry.example/team/*', { kind: 'prefix', prefix: 'registry.example/team/' }],
    ['registry.example/*', { kind: 'prefix', prefix: 'registry.example/' }],
  ];
  for (const [p, want] of ok)
    test(`${p} accepted`, () => assert.deepEqual(parseAllowlistPattern(p), { ok: true, pattern: want }));
  const bad: Array<[string, string]> = [
    [' registry.example/app', 'leading/trailing spaces are not allowed:  registry.example/app'],
    ['', 'the supplied pattern is too short: '],
    ['/*', 'at least registry hostname is required'],
    ['*', "not a valid wildcard pattern, only patterns ending with '/*' are allowed: *"],
    [
      'registry.example/*/app',
      "not a valid wildcard pattern, only patterns ending with '/*' are allowed: registry.example/*/app",
    ],
    [
      'registry.example/app@sha256:' + 'a'.repeat(64),
      `neither tag nor digest is accepted in an image reference: registry.example/app@sha256:${'a'.repeat(64)}`,
    ],
    ['nginx', 'neither tag nor digest is accepted in an image reference: nginx'],
    [
      'registry.example/App',
      'failed to parse as an image name: invalid reference format: repository name (App) must be lowercase',
    ],
    ['registry.example/app!', 'failed to parse as an image name: invalid reference format'],
  ];
  for (const [p, error] of bad)
    test(`${JSON.stringify(p)} refused`, () =>
      assert.deepEqual(parseAllowlistPattern(p), { ok: false, error }));
});

describe('notices, kinds and documents', () => {
  test('unknown kubelet fields and gates are notices; known kubelet fields are silent', () => {
    const { notices, kubelet: k } = kubelet(
      'address: 0.0.0.0\nevictionHard: {memory.available: 100Mi}\nSerializeImagePulls: false\nimagePulls: 3\nfeatureGates: {NodeSwap: true, RuntimeClassInImageCriApi: true}\n',
    );
    assert.deepEqual(notices, [
      '<config>: unknown field "SerializeImagePulls" ignored (not a KubeletConfiguration v1beta1 field; did you mean "serializeImagePulls"?)',
      '<config>: unknown field "imagePulls" ignored (not a KubeletConfiguration v1beta1 field)',
      '<config>: featureGates.NodeSwap: not a gate kimg models (kimg reads RuntimeClassInImageCriApi, KubeletEnsureSecretPulledImages, ImageMaximumGCAge, KubeletServiceAccountTokenForCredentialProviders); kept as given',
    ]);
    assert.equal(k.serializeImagePulls, true, 'a miscased field is not read');
    assert.equal(k.featureGates['NodeSwap'], true);
    assert.equal(k.featureGates.RuntimeClassInImageCriApi, true);
  });

  test("a schemeless socket path is accepted with the kubelet's deprecation notice", () => {
    const { notices } = kubelet('containerRuntimeEndpoint: /run/containerd/containerd.sock\n');
    assert.equal(notices.length, 1);
    assert.match(notices[0] ?? '', /has no scheme/);
  });

  const structural: Array<[string, string, RegExp]> = [
    ['missing kind', 'apiVersion: kubelet.config.k8s.io/v1beta1\n', /Object 'Kind' is missing/],
    [
      'wrong version',
      'apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n',
      /no kind "KubeletConfiguration" is registered for version "kubelet.config.k8s.io\/v1alpha1"/,
    ],
    ['other kind', 'apiVersion: v1\nkind: Pod\n', /kind "Pod" is not a configuration kimg reads/],
    ['empty', '# nothing\n', /is empty/],
    ['a list', '- a\n- b\n', /is not a mapping/],
    ['two documents', HEAD + '---\n' + HEAD, /holds 2 YAML documents/],
    ['YAML syntax', HEAD + 'registryBurst: [1\n', /not valid YAML: .*line \d+, column \d+/],
    [
      'duplicate keys',
      HEAD + 'registryBurst: 1\nregistryBurst: 2\n',
      /not valid YAML: Map keys must be unique/,
    ],
  ];
  for (const [name, text, re] of structural) {
    test(name, () => {
      const ps = problems(text);
      assert.equal(ps.length, 1, JSON.stringify(ps));
      assert.match(ps[0] ?? '', re);
    });
  }

  test('JSON works as well as YAML', () => {
    const c = parseNodeConfig(
      JSON.stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        serializeImagePulls: false,
        maxParallelImagePulls: 4,
      }),
    );
    assert.equal(c.kubelet.maxParallelImagePulls, 4);
  });
});

describe('kimg settings: the kimg: key and the KimgConfiguration sibling', () => {
  test('the kimg: section, with relative paths resolved against the file', () => {
    const c = parseNodeConfig(
      HEAD +
        'staticPodPath: manifests\nkimg:\n  rootDir: state\n  defaultRegistry: registry.example:5000\n  hostsDir: /etc/containerd/certs.d\n  imageCredentialProviderConfig: providers.yaml\n  imageCredentialProviderBinDir: /usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec\n  serviceAccountTokenDir: sa-tokens\n  listen:\n    cri: unix:///run/kimg/kimg.sock\n    metrics: 127.0.0.1:10259\n',
      { file: '/etc/kubernetes/kubelet.yaml' },
    );
    assert.deepEqual(c.kimg, {
      rootDir: '/etc/kubernetes/state',
      defaultRegistry: 'registry.example:5000',
      hostsDir: '/etc/containerd/certs.d',
      imageCredentialProviderConfig: '/etc/kubernetes/providers.yaml',
      imageCredentialProviderBinDir: '/usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec',
      serviceAccountTokenDir: '/etc/kubernetes/sa-tokens',
      pinnedImages: [],
      prepull: [],
      listen: { cri: 'unix:///run/kimg/kimg.sock', metrics: '127.0.0.1:10259' },
    });
    assert.equal(c.kubelet.staticPodPath, '/etc/kubernetes/manifests');
    assert.deepEqual(c.notices, [], 'the kimg key is not an unknown kubelet field');
  });

  test('kimg.pinnedImages: image GC never removes them; each must be an image reference', () => {
    const ok = parseNodeConfig(HEAD + 'kimg:\n  pinnedImages: ["registry.k8s.io/pause:3.10.2", busybox]\n');
    assert.deepEqual(ok.kimg.pinnedImages, ['registry.k8s.io/pause:3.10.2', 'busybox']);
    const bad = problems(HEAD + 'kimg:\n  pinnedImages: ["Bad/Name", 3]\n');
    assert.equal(bad.length, 2);
    assert.match(bad[0] ?? '', /^kimg\.pinnedImages\[0\]: invalid reference format/);
    assert.equal(bad[1], 'kimg.pinnedImages[1]: must be a string');
  });

  test('kimg.prepull: images the agent pre-pulls, validated like a kimg prepull list', () => {
    const ok = parseNodeConfig(
      HEAD +
        'kimg:\n  prepull: [busybox:1.36, {image: "registry.example/app:1", platform: linux/arm64, secret: regcred}]\n',
    );
    assert.deepEqual(ok.kimg.prepull, [
      { image: 'busybox:1.36' },
      { image: 'registry.example/app:1', platform: 'linux/arm64', secret: 'regcred' },
    ]);
    const bad = problems(
      HEAD + 'kimg:\n  prepull: [{image: "Bad/Name"}, {image: x, platform: "*"}, {img: y}]\n',
    );
    assert.equal(bad.length, 4);
    assert.match(bad[0] ?? '', /^kimg\.prepull\[0\]: "Bad\/Name" is not a valid image name/);
    assert.match(bad[1] ?? '', /^kimg\.prepull\[1\]: platform "\*"/);
    assert.equal(bad[2], 'kimg.prepull[2]: unknown field "img"');
    assert.equal(bad[3], 'kimg.prepull[2]: image must be a non-empty string');
  });

  test('kimg.prepull secret references: namespace/name, or name in namespace default', () => {
    const ok = parseNodeConfig(
      HEAD + 'kimg:\n  prepull: [{image: x, secret: team-a/regcred}, {image: busybox, secret: regcred}]\n',
    );
    assert.deepEqual(
      ok.kimg.prepull?.map((p) => p.secret),
      ['team-a/regcred', 'regcred'],
    );
    assert.deepEqual(parseSecretRef('team-a/regcred'), { namespace: 'team-a', name: 'regcred' });
    assert.deepEqual(parseSecretRef('regcred'), { namespace: 'default', name: 'regcred' });
    for (const bad of ['a/b/c', '/x', 'x/', 'Team/x', 'a/B', ''])
      assert.equal(parseSecretRef(bad), undefined, bad);
    const bad = problems(HEAD + 'kimg:\n  prepull: [{image: x, secret: "a/b/c"}]\n');
    assert.deepEqual(bad, [
      'kimg.prepull[0]: secret "a/b/c" must name a pull Secret as namespace/name or name (namespace default)',
    ]);
  });

  test('kimg settings are strict: unknown fields and bad values are problems', () => {
    assert.deepEqual(
      problems(
        HEAD +
          'kimg:\n  rootdir: /x\n  defaultRegistry: "not a host"\n  listen: {cri: "tcp://1.2.3.4:1", metrics: "localhost", grpc: x}\n',
      ).map((p) => p.replace(/defaultRegistry: .*/, 'defaultRegistry: <reference error>')),
      [
        'kimg.rootdir: unknown field; kimg settings are rootDir, defaultRegistry, hostsDir, imageCredentialProviderConfig, imageCredentialProviderBinDir, serviceAccountTokenDir, pinnedImages, prepull, listen, containerd',
        'kimg.defaultRegistry: <reference error>',
        'kimg.listen.grpc: unknown field; listen has cri and metrics',
        'kimg.listen.cri: "tcp://1.2.3.4:1" is not a socket endpoint: write unix:///run/kimg/kimg.sock',
        'kimg.listen.metrics: "localhost" is not host:port (port 0–65535; IPv6 hosts in brackets, e.g. [::1]:10259)',
      ],
    );
  });

  test('kimg.containerd: address (path or unix:// URL) required; namespace, snapshotter, directWrite and localApply optional', () => {
    const ok = parseNodeConfig(
      HEAD +
        'kimg:\n  containerd: {address: /run/containerd/containerd.sock, namespace: k8s.io, snapshotter: native}\n',
    );
    assert.deepEqual(ok.kimg.containerd, {
      address: '/run/containerd/containerd.sock',
      namespace: 'k8s.io',
      snapshotter: 'native',
    });
    assert.deepEqual(
      parseNodeConfig(HEAD + 'kimg:\n  containerd: {address: "unix:///x.sock"}\n').kimg.containerd,
      { address: 'unix:///x.sock' },
    );
    assert.equal(parseNodeConfig(HEAD).kimg.containerd, undefined);
    assert.deepEqual(problems(HEAD + 'kimg:\n  containerd: {namespace: k8s.io, socket: x}\n'), [
      'kimg.containerd.socket: unknown field; containerd has address, namespace, snapshotter, directWrite, localApply',
      "kimg.containerd.address: required (containerd's socket, e.g. /run/containerd/containerd.sock)",
    ]);
    assert.deepEqual(problems(HEAD + 'kimg:\n  containerd: {address: "tcp://1.2.3.4:1"}\n'), [
      'kimg.containerd.address: "tcp://1.2.3.4:1" is not a unix socket path or unix:// URL',
    ]);
    // directWrite: a boolean; false sends every blob byte through containerd's content Write protocol.
    assert.deepEqual(
      parseNodeConfig(HEAD + 'kimg:\n  containerd: {address: /c.sock, directWrite: false}\n').kimg.containerd,
      { address: '/c.sock', directWrite: false },
    );
    assert.deepEqual(problems(HEAD + 'kimg:\n  containerd: {address: /c.sock, directWrite: "no"}\n'), [
      'kimg.containerd.directWrite: must be true or false',
    ]);
    // localApply: a boolean; false unpacks every layer through containerd's Diff.Apply.
    assert.deepEqual(
      parseNodeConfig(HEAD + 'kimg:\n  containerd: {address: /c.sock, localApply: false}\n').kimg.containerd,
      { address: '/c.sock', localApply: false },
    );
    assert.deepEqual(problems(HEAD + 'kimg:\n  containerd: {address: /c.sock, localApply: 1}\n'), [
      'kimg.containerd.localApply: must be true or false',
    ]);
  });

  test('a KimgConfiguration alone gives kubelet defaults; with a kimg: key as well it is refused', () => {
    const kimgText = 'apiVersion: config.kimg.io/v1alpha1\nkind: KimgConfiguration\nrootDir: /var/lib/kimg\n';
    const alone = parseNodeConfig(kimgText);
    assert.equal(alone.kimg.rootDir, '/var/lib/kimg');
    assert.equal(alone.kubelet.serializeImagePulls, true);
    const both = parseNodeConfigs([
      { text: HEAD + 'maxParallelImagePulls: 2\n', file: 'kubelet.yaml' },
      { text: kimgText, file: 'kimg.yaml' },
    ]);
    assert.equal(both.kubelet.maxParallelImagePulls, 2);
    assert.equal(both.kimg.rootDir, '/var/lib/kimg');
    assert.throws(
      () =>
        parseNodeConfigs([
          { text: HEAD + 'kimg: {rootDir: /a}\n', file: 'kubelet.yaml' },
          { text: kimgText, file: 'kimg.yaml' },
        ]),
      (e: unknown) =>
        e instanceof KimgError && e.code === 'CONFIG_INVALID' && /kimg settings given twice/.test(e.message),
    );
  });
});

describe('loadNodeConfig', () => {
  test('reads files, resolves relative paths against their directory, names missing files', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kimg-config-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, 'etc'));
    const file = join(dir, 'etc', 'kubelet.yaml');
    await writeFile(file, HEAD + 'staticPodPath: ./manifests\nkimg: {rootDir: ../state}\n');
    const c = await loadNodeConfig(file);
    assert.deepEqual(c.files, [file]);
    assert.equal(c.kubelet.staticPodPath, join(dir, 'etc', 'manifests'));
    assert.equal(c.kimg.rootDir, join(dir, 'state'));
    await assert.rejects(
      loadNodeConfig(join(dir, 'missing.yaml')),
      (e: unknown) => e instanceof KimgError && e.code === 'FILE_NOT_FOUND',
    );
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, HEAD + 'registryBurst: -1\n');
    await assert.rejects(
      loadNodeConfig(bad),
      (e: unknown) => e instanceof KimgError && e.code === 'CONFIG_INVALID' && e.details.file === bad,
    );
  });
});
