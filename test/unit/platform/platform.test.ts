import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isKimgError } from '../../../src/errors/index.js';
import type { Descriptor } from '../../../src/oci/index.js';
import {
  defaultMatcher,
  formatPlatform,
  formatPlatformAll,
  hostPlatform,
  normalizePlatform,
  orderManifests,
  parsePlatform,
  parseWindowsVersion,
  platformMatcher,
  platformVector,
  selectManifest,
  strictMatcher,
  toOciPlatform,
  toPlatform,
  windowsHostCanRun,
  type Platform,
} from '../../../src/platform/index.js';
import { fuzzParams, onlyCodedErrors } from '../../helpers/fuzz.js';
import {
  COMPARE_OS_FEATURES,
  CPU_VARIANT_FROM_ARCH,
  FORMAT_ALL_ENCODING,
  HOST,
  INVALID_SPECIFIERS,
  ONLY_CASES,
  ONLY_STRICT_CASES,
  PARSE_CASES,
  WINDOWS_ABI_MATCH,
  WINDOWS_COMPAT,
} from './upstream-tables.js';

const opts = { host: HOST };
const parse = (s: string) => parsePlatform(s, opts);

function expectInvalid(input: string): void {
  assert.throws(
    () => parsePlatform(input, opts),
    (e: unknown) => {
      assert.ok(
        isKimgError(e, 'PLATFORM_INVALID'),
        `expected PLATFORM_INVALID for ${JSON.stringify(input)}, got ${String(e)}`,
      );
      assert.equal(e.details.input, input);
      assert.ok(
        e.message.includes(JSON.stringify(input)) || input === '',
        `message names the input: ${e.message}`,
      );
      assert.match(e.message, /for example linux\/amd64/);
      return true;
    },
  );
}

describe('normalizePlatform (containerd/platforms database.go)', () => {
  const table: Array<[string, string, string, string]> = [
    // arch, variant → arch, variant
    ['i386', 'whatever', '386', ''],
    ['x86_64', '', 'amd64', ''],
    ['x86-64', 'v1', 'amd64', ''],
    ['AMD64', 'V1', 'amd64', ''],
    ['amd64', 'v3', 'amd64', 'v3'],
    ['aarch64', '', 'arm64', ''],
    ['arm64', '8', 'arm64', ''],
    ['arm64', 'v8', 'arm64', ''],
    ['arm64', 'v8.0', 'arm64', ''],
    ['arm64', 'v8.2', 'arm64', 'v8.2'],
    ['arm64', '9', 'arm64', 'v9'],
    ['arm64', '9.0', 'arm64', 'v9'],
    ['arm64', 'v9.0', 'arm64', 'v9'],
    ['armhf', '', 'arm', 'v7'],
    ['armhf', 'v6', 'arm', 'v7'],
    ['armel', '', 'arm', 'v6'],
    ['arm', '', 'arm', 'v7'],
    ['arm', '7', 'arm', 'v7'],
    ['arm', '5', 'arm', 'v5'],
    ['arm', '6', 'arm', 'v6'],
    ['arm', '8', 'arm', 'v8'],
    ['arm', 'v6', 'arm', 'v6'],
    ['S390X', '', 's390x', ''],
  ];
  for (const [arch, variant, wantArch, wantVariant] of table) {
    test(`${arch}/${variant} → ${wantArch}/${wantVariant}`, () => {
      const n = normalizePlatform({ os: 'linux', architecture: arch, variant }, opts);
      assert.equal(n.architecture, wantArch);
      assert.equal(n.variant ?? '', wantVariant);
    });
  }

  test('OS: empty is the host OS, macos is darwin, case folded', () => {
    assert.equal(
      normalizePlatform({ os: '', architecture: 'amd64' }, { host: { os: 'windows', architecture: 'amd64' } })
        .os,
      'windows',
    );
    assert.equal(normalizePlatform({ os: 'MacOS', architecture: 'arm64' }, opts).os, 'darwin');
    assert.equal(normalizePlatform({ os: 'Linux', architecture: 'amd64' }, opts).os, 'linux');
  });

  test('OS features are sorted and de-duplicated; os.version untouched', () => {
    assert.deepEqual(
      normalizePlatform(
        {
          os: 'windows',
          architecture: 'amd64',
          osVersion: '10.0.17763.5458',
          osFeatures: ['win32k', 'a', 'win32k'],
        },
        opts,
      ),
      {
        os: 'windows',
        architecture: 'amd64',
        osVersion: '10.0.17763.5458',
        osFeatures: ['a', 'win32k'],
      },
    );
  });

  test('reads OCI platform objects (os.version / os.features)', () => {
    const oci = {
      os: 'windows',
      architecture: 'AMD64',
      'os.version': '10.0.20348.1',
      'os.features': ['win32k'],
    };
    assert.deepEqual(normalizePlatform(oci, opts), {
      os: 'windows',
      architecture: 'amd64',
      osVersion: '10.0.20348.1',
      osFeatures: ['win32k'],
    });
    assert.deepEqual(toOciPlatform(toPlatform(oci)), { ...oci, architecture: 'AMD64' });
  });
});

describe('parsePlatform (TestParseSelector)', () => {
  for (const c of PARSE_CASES) {
    test(c.input, () => {
      const p = parse(c.input);
      assert.deepEqual(p, c.expected);
      const m = strictMatcher(p, opts);
      assert.ok(m.match(c.expected), 'matches its own expected platform');
      for (const other of c.matches ?? []) assert.ok(m.match(other), `matches ${JSON.stringify(other)}`);
      const format = c.all ? formatPlatformAll : formatPlatform;
      const formatted = format(p);
      assert.equal(formatted, c.formatted);
      assert.equal(format(parse(formatted)), formatted, 'round trip is stable');
    });
  }

  test('a single known OS on an ARM host takes the host variant unless it is v7', () => {
    assert.deepEqual(parsePlatform('linux', { host: { os: 'linux', architecture: 'arm', variant: 'v6' } }), {
      os: 'linux',
      architecture: 'arm',
      variant: 'v6',
    });
    assert.deepEqual(parsePlatform('linux', { host: { os: 'linux', architecture: 'arm', variant: 'v7' } }), {
      os: 'linux',
      architecture: 'arm',
    });
    assert.deepEqual(
      parsePlatform('windows', { host: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
      {
        os: 'windows',
        architecture: 'arm64',
      },
    );
  });

  test('three-part arm64 that normalizes to no variant keeps v8; amd64/v1 drops it', () => {
    assert.deepEqual(parse('linux/aarch64/8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(parse('linux/amd64/v1'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(parse('linux/arm/7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  });

  test('FormatAll encoding round-trips (TestFormatAllEncoding)', () => {
    for (const { platform, expected } of FORMAT_ALL_ENCODING) {
      assert.equal(formatPlatformAll(platform), expected);
      const back = parse(expected);
      assert.equal(back.osVersion ?? '', platform.osVersion ?? '');
      assert.deepEqual(back.osFeatures ?? [], platform.osFeatures ?? []);
    }
  });

  test('FormatAll skips empty OS features; a platform without OS is "unknown"', () => {
    assert.equal(
      formatPlatformAll({ os: 'linux', architecture: 'amd64', osFeatures: ['', 'gpu', '', 'simd'] }),
      'linux(+gpu+simd)/amd64',
    );
    assert.equal(formatPlatform({ os: '', architecture: 'amd64' }), 'unknown');
    assert.equal(formatPlatformAll({ os: '', architecture: 'amd64', osVersion: '1' }), 'unknown');
  });

  test('characters upstream would write raw are escaped so the result re-parses', () => {
    const p: Platform = { os: 'windows', architecture: 'amd64', osVersion: 'a b*é' };
    const f = formatPlatformAll(p);
    assert.equal(f, 'windows(a%20b%2A%C3%A9)/amd64');
    assert.equal(parse(f).osVersion, 'a b*é');
  });

  test('invalid specifiers (TestParseSelectorInvalid) are PLATFORM_INVALID naming the input', () => {
    for (const s of INVALID_SPECIFIERS) expectInvalid(s);
  });

  test('wildcards are refused like upstream', () => {
    for (const s of ['*', 'linux/*', '*/arm64', 'linux/arm/*']) {
      expectInvalid(s);
      assert.throws(() => parse(s), /wildcards not yet supported: invalid argument/);
    }
  });

  test('unknown single tokens, bad escapes and empty features are refused', () => {
    assert.throws(() => parse('plan10'), /"plan10": unknown operating system or architecture/);
    assert.throws(
      () => parse('windows(10%zz)/amd64'),
      /invalid OS version "10%zz": invalid URL escape "%zz"/,
    );
    assert.throws(() => parse('windows(1%2)/amd64'), /invalid URL escape "%2\)"|invalid URL escape "%2"/);
    assert.throws(
      () => parse('linux(++gpu)/amd64'),
      /is an invalid OS component of "linux\(\+\+gpu\)\/amd64"/,
    );
    assert.throws(() => parse('linux/arm/foo/bar'), /cannot parse platform specifier/);
    for (const s of ['plan10', 'windows(10%zz)/amd64', 'linux(++gpu)/amd64', 'linux/a b']) expectInvalid(s);
  });
});

function matchTable(name: string, cases: typeof ONLY_CASES, make: typeof platformMatcher): void {
  describe(name, () => {
    for (const c of cases) {
      test(c.platform, () => {
        const m = make(parse(c.platform), opts);
        for (const s of c.yes)
          assert.equal(m.match(parse(s)), true, `${name}(${c.platform}) should match ${s}`);
        for (const s of c.no)
          assert.equal(m.match(parse(s)), false, `${name}(${c.platform}) should not match ${s}`);
      });
    }
  });
}
matchTable('platformMatcher = Only (TestOnly)', ONLY_CASES, platformMatcher);
matchTable('strictMatcher = OnlyStrict (TestOnlyStrict)', ONLY_STRICT_CASES, strictMatcher);

describe('ranking', () => {
  test('fallback vectors, best first', () => {
    const v = (s: string) => platformVector(normalizePlatform(parse(s), opts)).map(formatPlatform);
    assert.deepEqual(v('linux/amd64'), ['linux/amd64', 'linux/386']);
    assert.deepEqual(v('linux/amd64/v3'), [
      'linux/amd64/v3',
      'linux/amd64/v2',
      'linux/amd64/v1',
      'linux/386',
    ]);
    assert.deepEqual(v('linux/arm/v8'), ['linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']);
    assert.deepEqual(v('linux/arm/v6'), ['linux/arm/v6', 'linux/arm/v5']);
    assert.deepEqual(v('linux/arm64'), [
      'linux/arm64/v8',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ]);
    assert.deepEqual(v('linux/arm64/v8.2'), [
      'linux/arm64/v8.2',
      'linux/arm64/v8.1',
      'linux/arm64/v8',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ]);
    assert.deepEqual(v('linux/arm64/v9.1'), [
      'linux/arm64/v9.1',
      'linux/arm64/v9',
      'linux/arm64/v8.6',
      'linux/arm64/v8.5',
      'linux/arm64/v8.4',
      'linux/arm64/v8.3',
      'linux/arm64/v8.2',
      'linux/arm64/v8.1',
      'linux/arm64/v8',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ]);
    assert.deepEqual(v('linux/arm64/v8.10'), [], 'an arm64 variant outside the table matches nothing');
    assert.deepEqual(v('linux/s390x'), ['linux/s390x']);
  });

  test('rank is the vector position; -1 when no match', () => {
    const m = platformMatcher(parse('linux/arm64'), opts);
    assert.equal(m.rank(parse('linux/arm64/v8')), 0);
    assert.equal(m.rank(parse('linux/arm/v7')), 2);
    assert.equal(m.rank(parse('linux/amd64')), -1);
  });

  for (const [requested, candidates, expected] of COMPARE_OS_FEATURES) {
    test(`TestCompareOSFeatures ${requested}`, () => {
      for (const make of [platformMatcher, strictMatcher]) {
        const m = make(parse(requested), opts);
        const sorted = candidates.map(parse).sort((a, b) => m.compare(a, b));
        assert.deepEqual(sorted.map(formatPlatformAll), expected);
      }
    });
  }
});

describe('Windows', () => {
  test('host/container compatibility (Test_PlatformCompat), LTSC 20348 and 26100', () => {
    for (const [host, ctr, ok] of WINDOWS_COMPAT) {
      assert.equal(
        windowsHostCanRun({ major: 10, minor: 0, build: host }, { major: 10, minor: 0, build: ctr }),
        ok,
        `host ${host} ctr ${ctr}`,
      );
    }
    assert.equal(
      windowsHostCanRun({ major: 10, minor: 0, build: 26200 }, { major: 10, minor: 0, build: 26100 }),
      true,
    );
    assert.equal(
      windowsHostCanRun({ major: 10, minor: 0, build: 26200 }, { major: 10, minor: 0, build: 22621 }),
      false,
    );
    assert.equal(
      windowsHostCanRun({ major: 10, minor: 1, build: 20348 }, { major: 10, minor: 0, build: 20348 }),
      false,
    );
  });

  test('os.version parsing uses only major.minor.build', () => {
    assert.deepEqual(parseWindowsVersion('10.0.17763.5458'), { major: 10, minor: 0, build: 17763 });
    assert.deepEqual(parseWindowsVersion('10.0'), { major: 0, minor: 0, build: 0 });
    assert.deepEqual(parseWindowsVersion('256.0.1'), { major: 0, minor: 0, build: 0 });
    assert.deepEqual(parseWindowsVersion('10.0.70000'), { major: 0, minor: 0, build: 0 });
  });

  test('matcher OS-version rule (TestMatchComparerMatch_ABICheckWCOW)', () => {
    for (const [host, image, ok] of WINDOWS_ABI_MATCH) {
      const m = strictMatcher({ os: 'windows', architecture: 'amd64', osVersion: host }, opts);
      assert.equal(
        m.match({ os: 'windows', architecture: 'amd64', osVersion: image }),
        ok,
        `host ${host} image ${image}`,
      );
    }
  });

  test('an unparsable host version accepts an image without one (TestFallbackOnOSVersion)', () => {
    assert.ok(
      strictMatcher({ os: 'windows', architecture: 'amd64', osVersion: '99.99.99.99' }, opts).match({
        os: 'windows',
        architecture: 'amd64',
      }),
    );
  });

  test('win32k on an index entry is ignored on Windows, not on Linux', () => {
    const w = strictMatcher({ os: 'windows', architecture: 'amd64' }, opts);
    assert.ok(w.match({ os: 'windows', architecture: 'amd64', osFeatures: ['win32k'] }));
    const l = strictMatcher({ os: 'linux', architecture: 'amd64' }, opts);
    assert.ok(!l.match({ os: 'linux', architecture: 'amd64', osFeatures: ['win32k'] }));
  });

  test('the Windows host matcher prefers the higher os.version (TestWindowsMatchComparerLess)', () => {
    const host: Platform = { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763.1' };
    const m = defaultMatcher(host);
    const list: Platform[] = [
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.17764.1' },
      { os: 'windows', architecture: 'amd64' },
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763.1' },
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763.2' },
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.17762.1' },
    ];
    assert.deepEqual(
      list.sort((a, b) => m.compare(a, b)).map((p) => p.osVersion ?? ''),
      ['10.0.17763.2', '10.0.17763.1', '', '10.0.17764.1', '10.0.17762.1'],
    );
    assert.ok(!m.match({ os: 'windows', architecture: '386' }), 'no 386 fallback on Windows hosts');
    assert.ok(!m.match({ os: 'linux', architecture: 'amd64' }));
  });

  test('Server 2022 / 2025 hosts pick their own image (Test_PlatformOrder)', () => {
    const linux: Platform = { os: 'linux', architecture: 'amd64' };
    const ws2022: Platform = { os: 'windows', architecture: 'amd64', osVersion: '10.0.20348.3091' };
    const ws2025: Platform = { os: 'windows', architecture: 'amd64', osVersion: '10.0.26100.2894' };
    const ws2025r: Platform = { os: 'windows', architecture: 'amd64', osVersion: '10.0.26100.3000' };
    const best = (host: Platform, ps: Platform[]) =>
      [...ps].sort((a, b) => defaultMatcher(host).compare(a, b))[0];
    assert.deepEqual(best(ws2022, [linux, ws2022, ws2025]), ws2022);
    assert.deepEqual(best(ws2025, [linux, ws2022, ws2025]), ws2025);
    assert.deepEqual(best(ws2025, [linux, ws2022, ws2025r]), ws2025r);
  });
});

describe('hostPlatform', () => {
  const cpuinfo = (arch: string, model = 'ARMv7 Processor rev 4 (v7l)') =>
    `processor\t: 0\nmodel name\t: ${model}\nBogoMIPS\t: 38.40\nCPU architecture: ${arch}\nCPU variant\t: 0x0\n`;

  test('maps Node names to Go names', () => {
    assert.deepEqual(hostPlatform({ platform: 'linux', arch: 'x64' }), {
      os: 'linux',
      architecture: 'amd64',
    });
    assert.deepEqual(hostPlatform({ platform: 'linux', arch: 'ia32' }), { os: 'linux', architecture: '386' });
    assert.deepEqual(hostPlatform({ platform: 'linux', arch: 'ppc64', endianness: 'LE' }), {
      os: 'linux',
      architecture: 'ppc64le',
    });
    assert.deepEqual(hostPlatform({ platform: 'linux', arch: 's390x' }), {
      os: 'linux',
      architecture: 's390x',
    });
    assert.deepEqual(hostPlatform({ platform: 'darwin', arch: 'arm64' }), {
      os: 'darwin',
      architecture: 'arm64',
      variant: 'v8',
    });
  });

  test('Linux ARM variant from /proc/cpuinfo, with the Raspberry Pi ARMv6 quirk', () => {
    const linuxArm = (text: string, arch = 'arm') =>
      hostPlatform({ platform: 'linux', arch, readCpuInfo: () => text, machine: () => 'armv7l' });
    assert.deepEqual(linuxArm(cpuinfo('7')), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(linuxArm(cpuinfo('7', 'ARMv6-compatible processor rev 7 (v6l)')), {
      os: 'linux',
      architecture: 'arm',
      variant: 'v6',
    });
    assert.deepEqual(linuxArm(cpuinfo('5TEJ')), { os: 'linux', architecture: 'arm', variant: 'v5' });
    assert.deepEqual(linuxArm(cpuinfo('8'), 'arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(linuxArm(cpuinfo('?(12)')), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(linuxArm(cpuinfo('42')), { os: 'linux', architecture: 'arm', variant: 'unknown' });
  });

  test('without the cpuinfo field the machine name decides (TestGetCPUVariantFromArch)', () => {
    const want: Record<string, string> = {
      '8': 'v8',
      '7': 'v7',
      '6': 'v6',
      '5': 'v5',
      '4': 'v4',
      '3': 'v3',
      unknown: 'unknown',
    };
    for (const [machine, n] of CPU_VARIANT_FROM_ARCH) {
      const p = hostPlatform({
        platform: 'linux',
        arch: 'arm',
        readCpuInfo: () => 'processor\t: 0\n',
        machine: () => machine,
      });
      assert.equal(p.variant ?? '', n === undefined ? '' : want[n], machine);
    }
  });

  test('unreadable /proc/cpuinfo leaves the variant empty; non-ARM hosts never read it', () => {
    const failing = () => {
      throw new Error('EACCES');
    };
    assert.deepEqual(hostPlatform({ platform: 'linux', arch: 'arm', readCpuInfo: failing }), {
      os: 'linux',
      architecture: 'arm',
    });
    assert.deepEqual(hostPlatform({ platform: 'linux', arch: 'x64', readCpuInfo: failing }), {
      os: 'linux',
      architecture: 'amd64',
    });
  });

  test('Windows hosts carry major.minor.build', () => {
    assert.deepEqual(hostPlatform({ platform: 'win32', arch: 'x64', osRelease: () => '10.0.20348' }), {
      os: 'windows',
      architecture: 'amd64',
      osVersion: '10.0.20348',
    });
  });

  test('the real host is consistent with Node', () => {
    const h = hostPlatform();
    assert.equal(h.os, process.platform === 'win32' ? 'windows' : process.platform);
    assert.deepEqual(hostPlatform(), h, 'cached and stable');
  });
});

/** The harness's multi:1 image: four platforms, Windows with os.version (tools/README.md). */
function desc(n: number, platform?: Descriptor['platform']): Descriptor {
  const d: Descriptor = {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${String(n).repeat(64)}`,
    size: 100 + n,
  };
  if (platform) d.platform = platform;
  return d;
}
const MULTI: Descriptor[] = [
  desc(1, { architecture: 'amd64', os: 'linux' }),
  desc(2, { architecture: 'arm64', os: 'linux', variant: 'v8' }),
  desc(3, { architecture: 'arm', os: 'linux', variant: 'v7' }),
  desc(4, { architecture: 'amd64', os: 'windows', 'os.version': '10.0.17763.5458' }),
];

describe('selectManifest on the harness multi-arch image', () => {
  const pick = (spec: string) => selectManifest(MULTI, parse(spec), opts).digest[7];
  test('linux/amd64', () => assert.equal(pick('linux/amd64'), '1'));
  test('linux/arm64/v8 and arm64 pick the arm64 entry', () => {
    assert.equal(pick('linux/arm64/v8'), '2');
    assert.equal(pick('linux/arm64'), '2');
    assert.equal(pick('arm64'), '2');
  });
  test('linux/arm/v7 and linux/arm', () => {
    assert.equal(pick('linux/arm/v7'), '3');
    assert.equal(pick('linux/arm'), '3');
  });
  test('windows/amd64 (any os.version) and a Server 2019 host', () => {
    assert.equal(pick('windows/amd64'), '4');
    assert.equal(pick('windows(10.0.17763)/amd64'), '4');
    assert.equal(
      selectManifest(MULTI, undefined, {
        host: { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763' },
      }).digest[7],
      '4',
    );
  });
  test('default = host platform', () => {
    assert.equal(
      selectManifest(MULTI, undefined, { host: { os: 'linux', architecture: 'amd64' } }).digest[7],
      '1',
    );
    assert.equal(
      selectManifest(MULTI, undefined, { host: { os: 'linux', architecture: 'arm64', variant: 'v8' } })
        .digest[7],
      '2',
    );
  });
  test('fallbacks: 32-bit arm/v8 host takes arm/v7; arm64 without an arm64 entry takes arm/v7; arm/v6 host takes arm/v5', () => {
    assert.equal(pick('linux/arm/v8'), '3');
    assert.equal(
      selectManifest(
        MULTI.filter((d) => d.digest[7] !== '2'),
        parse('linux/arm64'),
        opts,
      ).digest[7],
      '3',
    );
    const withV5 = [...MULTI, desc(5, { architecture: 'arm', os: 'linux', variant: 'v5' })];
    assert.equal(
      selectManifest(withV5, undefined, { host: { os: 'linux', architecture: 'arm', variant: 'v6' } })
        .digest[7],
      '5',
    );
    assert.equal(
      selectManifest(
        [...MULTI, desc(6, { architecture: '386', os: 'linux' })].slice(1),
        parse('linux/amd64'),
        opts,
      ).digest[7],
      '6',
    );
  });
  test('a Windows Server 2022 host cannot run the 17763 image', () => {
    assert.throws(
      () => selectManifest(MULTI, { os: 'windows', architecture: 'amd64', osVersion: '10.0.20348' }, opts),
      (e: unknown) => isKimgError(e, 'PLATFORM_NOT_FOUND'),
    );
  });
  test('an arm/v6 host (Raspberry Pi) cannot run arm/v7: the error lists what the index offers and what was asked', () => {
    const piHost = hostPlatform({
      platform: 'linux',
      arch: 'arm',
      readCpuInfo: () => 'model name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n',
    });
    assert.throws(
      () => selectManifest(MULTI, undefined, { host: piHost, index: 'sha256:' + 'a'.repeat(64) }),
      (e: unknown) => {
        assert.ok(isKimgError(e, 'PLATFORM_NOT_FOUND'));
        assert.equal(
          e.message,
          `no match for platform in manifest sha256:${'a'.repeat(64)}: not found: linux/arm/v6 (this host's platform) was requested ` +
            'but the image index offers only linux/amd64, linux/arm64/v8, linux/arm/v7, windows(10.0.17763.5458)/amd64; ' +
            'request one of the offered platforms or use an image built for linux/arm/v6',
        );
        assert.equal(e.details.input, 'linux/arm/v6');
        assert.deepEqual(e.details.items, [
          'linux/amd64',
          'linux/arm64/v8',
          'linux/arm/v7',
          'windows(10.0.17763.5458)/amd64',
        ]);
        return true;
      },
    );
  });
  test('no match for an explicit platform; empty index', () => {
    assert.throws(
      () => selectManifest(MULTI, parse('linux/s390x'), opts),
      /not found: linux\/s390x was requested but the image index offers only/,
    );
    assert.throws(() => selectManifest([], parse('linux/amd64'), opts), /the image index lists no manifests/);
  });
  test('entries without a platform are last-resort candidates; attestation entries never match', () => {
    const attest = desc(7, { architecture: 'unknown', os: 'unknown' });
    const bare = desc(8);
    assert.deepEqual(
      orderManifests([bare, attest, ...MULTI], parse('linux/amd64'), opts).map((d) => d.digest[7]),
      ['1', '8'],
    );
    assert.equal(selectManifest([attest, bare], parse('linux/s390x'), opts).digest[7], '8');
  });
  test('a matcher can be passed instead of a platform', () => {
    assert.equal(selectManifest(MULTI, strictMatcher(parse('linux/arm/v7'), opts)).digest[7], '3');
    assert.throws(
      () => selectManifest(MULTI, strictMatcher(parse('linux/arm/v8'), opts)),
      (e: unknown) => isKimgError(e, 'PLATFORM_NOT_FOUND'),
    );
  });
});

describe('properties', () => {
  const tokens = [
    'linux',
    'windows',
    'Linux',
    'darwin',
    'macos',
    'amd64',
    'x86_64',
    'arm',
    'arm64',
    'aarch64',
    'armhf',
    'armel',
    'i386',
    '386',
    's390x',
    'v5',
    'v6',
    'v7',
    'v8',
    'v8.2',
    'v9',
    '8',
    '/',
    '/',
    '(',
    ')',
    '+',
    '%',
    '%2B',
    '%25',
    '%zz',
    '%FF',
    '%C3%A9',
    '.',
    '..',
    '-',
    '_',
    '*',
    '10.0.17763',
    'win32k',
    'gpu',
    ' ',
    'é',
    '\n',
    '',
  ];
  const specifier = fc.oneof(
    fc.array(fc.constantFrom(...tokens), { maxLength: 10 }).map((a) => a.join('')),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ maxLength: 40 }),
  );

  test('parsePlatform never throws anything but a coded KimgError', () => {
    fc.assert(
      fc.property(specifier, (s) => {
        onlyCodedErrors(s, () => parsePlatform(s, opts));
      }),
      fuzzParams(),
    );
  });

  const platformArb = fc.record(
    {
      os: fc.oneof(fc.constantFrom('', 'linux', 'Windows', 'macOS', 'plan9'), fc.string({ maxLength: 6 })),
      architecture: fc.oneof(
        fc.constantFrom('amd64', 'x86_64', 'ARM', 'arm64', 'aarch64', 'armhf', 'armel', 'i386'),
        fc.string({ maxLength: 6 }),
      ),
      variant: fc.oneof(
        fc.constantFrom('', '5', '6', '7', '8', 'v1', 'V8', 'v8.0', '9', 'v9.0', 'v3'),
        fc.string({ maxLength: 4 }),
      ),
      osVersion: fc.string({ maxLength: 12 }),
      osFeatures: fc.array(fc.string({ maxLength: 5 }), { maxLength: 4 }),
    },
    { requiredKeys: ['os', 'architecture'] },
  );

  test('normalizePlatform is idempotent', () => {
    fc.assert(
      fc.property(platformArb, (p) => {
        const once = normalizePlatform(p, opts);
        assert.deepEqual(normalizePlatform(once, opts), once);
      }),
      fuzzParams(),
    );
  });

  test('format ∘ parse ∘ format is stable (formatPlatform and formatPlatformAll)', () => {
    fc.assert(
      fc.property(specifier, (s) => {
        const p = onlyCodedErrors(s, () => parsePlatform(s, opts));
        if (p === undefined) return;
        for (const format of [formatPlatform, formatPlatformAll]) {
          const f = format(p);
          assert.equal(format(parsePlatform(f, opts)), f, `${JSON.stringify(s)} → ${JSON.stringify(f)}`);
        }
      }),
      fuzzParams(),
    );
  });

  test('every match of platformMatcher ranks before every non-match', () => {
    fc.assert(
      fc.property(platformArb, platformArb, platformArb, (req, a, b) => {
        const m = platformMatcher(req, opts);
        if (m.match(a) && !m.match(b)) assert.ok(m.compare(a, b) < 0);
        assert.equal(m.match(a), m.rank(a) >= 0);
      }),
      fuzzParams(),
    );
  });
});
