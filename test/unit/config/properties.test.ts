/**
 * Property tests for src/config (fast-check, `fuzzParams()`: 10,000 runs each by default): the loader
 * never throws anything but a coded KimgError, whatever the text or the values; what it accepts is
 * valid; Go durations round-trip.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fuzzParams, onlyCodedErrors } from '../../helpers/fuzz.js';
import {
  goDurationString,
  goParseDuration,
  parseAllowlistPattern,
  parseNodeConfig,
  validateKubeletImageConfig,
} from '../../../src/config/index.js';

const IMAGE_FIELDS = [
  'serializeImagePulls',
  'maxParallelImagePulls',
  'registryPullQPS',
  'registryBurst',
  'imageGCHighThresholdPercent',
  'imageGCLowThresholdPercent',
  'imageMinimumGCAge',
  'imageMaximumGCAge',
  'imagePullCredentialsVerificationPolicy',
  'preloadedImagesVerificationAllowlist',
  'containerRuntimeEndpoint',
  'imageServiceEndpoint',
  'staticPodPath',
  'featureGates',
  'kimg',
  'bogus',
];

const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -5, max: 120 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(
    '2m',
    '-1s',
    '0',
    '1h30m',
    'NeverVerify',
    'AlwaysVerify',
    'unix:///x.sock',
    'tcp://x',
    'registry.example/*',
  ),
  fc.string(),
  fc.array(fc.oneof(fc.string(), fc.constantFrom('registry.example/app', 'a.example/*'), fc.integer()), {
    maxLength: 3,
  }),
  fc.dictionary(
    fc.constantFrom(
      'RuntimeClassInImageCriApi',
      'KubeletEnsureSecretPulledImages',
      'ImageMaximumGCAge',
      'rootDir',
      'listen',
      'x',
    ),
    fc.oneof(fc.boolean(), fc.string(), fc.integer()),
    { maxKeys: 3 },
  ),
);

const kubeletObject = fc
  .dictionary(fc.constantFrom(...IMAGE_FIELDS), value, { maxKeys: 8 })
  .map((o) => ({ apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', ...o }));

describe('config properties', () => {
  test('arbitrary text: a NodeConfig or a coded KimgError, never anything else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.json()), (text) => {
        onlyCodedErrors(text, () => parseNodeConfig(text));
      }),
      fuzzParams(),
    );
  });

  test('arbitrary values in the image fields: coded errors only, and what is accepted validates', () => {
    fc.assert(
      fc.property(kubeletObject, fc.boolean(), (obj, asJson) => {
        const text = asJson ? JSON.stringify(obj) : JSON.stringify(obj, null, 2);
        const cfg = onlyCodedErrors(obj, () => parseNodeConfig(text));
        if (cfg !== undefined) {
          assert.deepEqual(validateKubeletImageConfig(cfg.kubelet), []);
          assert.ok(!(cfg.kubelet.serializeImagePulls && (cfg.kubelet.maxParallelImagePulls ?? 0) > 1));
          assert.ok(cfg.kubelet.registryBurst > 0, 'registryBurst 0 becomes 10; negative is refused');
        }
      }),
      fuzzParams(),
    );
  });

  test('goParseDuration never throws, and what parses prints back to the same value', () => {
    const durationLike = fc.string({
      unit: fc.constantFrom(...'0123456789.-+hmsunµμ x'.split('')),
      maxLength: 24,
    });
    fc.assert(
      fc.property(fc.oneof(fc.string(), durationLike), (s) => {
        const r = goParseDuration(s);
        if (r.ok) {
          const back = goParseDuration(goDurationString(r.ns));
          assert.ok(back.ok);
          assert.equal(back.ns, r.ns);
        } else {
          assert.match(r.error, /^time: (invalid duration|missing unit in duration|unknown unit) /);
        }
      }),
      fuzzParams(),
    );
  });

  test('every int64 nanosecond count round-trips through Duration.String', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (ns) => {
        const r = goParseDuration(goDurationString(ns));
        assert.ok(r.ok, goDurationString(ns));
        assert.equal(r.ns, ns);
      }),
      fuzzParams(),
    );
  });

  test('parseAllowlistPattern never throws', () => {
    fc.assert(
      fc.property(fc.string(), (p) => {
        const r = parseAllowlistPattern(p);
        assert.equal(typeof r.ok, 'boolean');
      }),
      fuzzParams(),
    );
  });
});
