/**
 * Test tables of containerd/platforms @ 09756f59 (v1.0.0-rc.4), as data: platforms_test.go
 * (TestParseSelector, TestFormatAllEncoding, TestParseSelectorInvalid), compare_test.go (TestOnly,
 * TestOnlyStrict, TestCompareOSFeatures), platform_windows_compat_test.go, defaults_test.go,
 * defaults_windows_test.go, platforms_windows_test.go and cpuinfo_linux_test.go. Upstream's host is
 * fixed here to linux/amd64 (the tables' `defaultOS`/`defaultArch`).
 */
import type { Platform } from '../../../src/platform/index.js';

export const HOST: Platform = { os: 'linux', architecture: 'amd64' };

export interface ParseCase {
  input: string;
  expected: Platform;
  matches?: Platform[];
  formatted: string;
  /** Use formatPlatformAll (upstream FormatAll) rather than formatPlatform. */
  all?: boolean;
}

export const PARSE_CASES: ParseCase[] = [
  {
    input: 'linux/arm64',
    expected: { os: 'linux', architecture: 'arm64' },
    matches: [
      { os: 'linux', architecture: 'aarch64' },
      { os: 'linux', architecture: 'aarch64', variant: 'v8' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ],
    formatted: 'linux/arm64',
  },
  {
    input: 'linux/arm64/v8',
    expected: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    matches: [
      { os: 'linux', architecture: 'aarch64' },
      { os: 'linux', architecture: 'aarch64', variant: 'v8' },
      { os: 'linux', architecture: 'arm64' },
    ],
    formatted: 'linux/arm64/v8',
  },
  {
    input: 'linux/arm',
    expected: { os: 'linux', architecture: 'arm' },
    matches: [
      { os: 'linux', architecture: 'arm', variant: 'v7' },
      { os: 'linux', architecture: 'armhf' },
      { os: 'linux', architecture: 'arm', variant: '7' },
    ],
    formatted: 'linux/arm',
  },
  {
    input: 'linux/arm/v6',
    expected: { os: 'linux', architecture: 'arm', variant: 'v6' },
    matches: [{ os: 'linux', architecture: 'armel' }],
    formatted: 'linux/arm/v6',
  },
  {
    input: 'linux/arm/v7',
    expected: { os: 'linux', architecture: 'arm', variant: 'v7' },
    matches: [
      { os: 'linux', architecture: 'arm' },
      { os: 'linux', architecture: 'armhf' },
    ],
    formatted: 'linux/arm/v7',
  },
  { input: 'arm', expected: { os: 'linux', architecture: 'arm' }, formatted: 'linux/arm' },
  {
    input: 'armel',
    expected: { os: 'linux', architecture: 'arm', variant: 'v6' },
    formatted: 'linux/arm/v6',
  },
  { input: 'armhf', expected: { os: 'linux', architecture: 'arm' }, formatted: 'linux/arm' },
  { input: 'Aarch64', expected: { os: 'linux', architecture: 'arm64' }, formatted: 'linux/arm64' },
  { input: 'x86_64', expected: { os: 'linux', architecture: 'amd64' }, formatted: 'linux/amd64' },
  { input: 'Linux/x86_64', expected: { os: 'linux', architecture: 'amd64' }, formatted: 'linux/amd64' },
  { input: 'i386', expected: { os: 'linux', architecture: '386' }, formatted: 'linux/386' },
  { input: 'linux', expected: { os: 'linux', architecture: 'amd64' }, formatted: 'linux/amd64' },
  { input: 's390x', expected: { os: 'linux', architecture: 's390x' }, formatted: 'linux/s390x' },
  { input: 'linux/s390x', expected: { os: 'linux', architecture: 's390x' }, formatted: 'linux/s390x' },
  { input: 'macOS', expected: { os: 'darwin', architecture: 'amd64' }, formatted: 'darwin/amd64' },
  { input: 'windows', expected: { os: 'windows', architecture: 'amd64' }, formatted: 'windows/amd64' },
  {
    input: 'windows()',
    expected: { os: 'windows', architecture: 'amd64' },
    formatted: 'windows/amd64',
    all: true,
  },
  {
    input: 'windows(10.0.17763)',
    expected: { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763' },
    formatted: 'windows(10.0.17763)/amd64',
    all: true,
  },
  {
    input: 'windows(10.0.17763+win32k)',
    expected: { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763', osFeatures: ['win32k'] },
    formatted: 'windows(10.0.17763+win32k)/amd64',
    all: true,
  },
  {
    input: 'linux(+gpu)',
    expected: { os: 'linux', architecture: 'amd64', osFeatures: ['gpu'] },
    formatted: 'linux(+gpu)/amd64',
    all: true,
  },
  {
    input: 'linux(+gpu+simd)',
    expected: { os: 'linux', architecture: 'amd64', osFeatures: ['gpu', 'simd'] },
    formatted: 'linux(+gpu+simd)/amd64',
    all: true,
  },
  {
    input: 'linux(+unsorted+erofs)',
    expected: { os: 'linux', architecture: 'amd64', osFeatures: ['unsorted', 'erofs'] },
    formatted: 'linux(+erofs+unsorted)/amd64',
    all: true,
  },
  {
    input: 'windows(10.0.17763%2Bbuild.42)',
    expected: { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763+build.42' },
    formatted: 'windows(10.0.17763%2Bbuild.42)/amd64',
    all: true,
  },
  {
    input: 'windows(10.0.17763%2Bbuild.42+win32k)',
    expected: {
      os: 'windows',
      architecture: 'amd64',
      osVersion: '10.0.17763+build.42',
      osFeatures: ['win32k'],
    },
    formatted: 'windows(10.0.17763%2Bbuild.42+win32k)/amd64',
    all: true,
  },
  {
    input: 'windows(50%25done)',
    expected: { os: 'windows', architecture: 'amd64', osVersion: '50%done' },
    formatted: 'windows(50%25done)/amd64',
    all: true,
  },
];

export const FORMAT_ALL_ENCODING: Array<{ platform: Platform; expected: string }> = [
  {
    platform: { os: 'windows', osVersion: '10.0.17763+build.42', architecture: 'amd64' },
    expected: 'windows(10.0.17763%2Bbuild.42)/amd64',
  },
  {
    platform: {
      os: 'windows',
      osVersion: '10.0.17763+build.42',
      osFeatures: ['win32k'],
      architecture: 'amd64',
    },
    expected: 'windows(10.0.17763%2Bbuild.42+win32k)/amd64',
  },
  {
    platform: { os: 'windows', osVersion: '50%done', architecture: 'amd64' },
    expected: 'windows(50%25done)/amd64',
  },
  {
    platform: { os: 'windows', osVersion: '1.0(beta)', architecture: 'amd64' },
    expected: 'windows(1.0%28beta%29)/amd64',
  },
  { platform: { os: 'windows', osVersion: 'a/b', architecture: 'amd64' }, expected: 'windows(a%2Fb)/amd64' },
  {
    platform: { os: 'windows', osVersion: '10.0.17763', architecture: 'amd64' },
    expected: 'windows(10.0.17763)/amd64',
  },
  {
    platform: { os: 'linux', osFeatures: ['feat+v2'], architecture: 'amd64' },
    expected: 'linux(+feat%2Bv2)/amd64',
  },
  {
    platform: { os: 'linux', osFeatures: ['100%gpu'], architecture: 'amd64' },
    expected: 'linux(+100%25gpu)/amd64',
  },
  {
    platform: { os: 'windows', osVersion: '10.0+build', osFeatures: ['feat+1'], architecture: 'amd64' },
    expected: 'windows(10.0%2Bbuild+feat%2B1)/amd64',
  },
];

export const INVALID_SPECIFIERS = [
  '',
  '/linux/arm',
  'linux/arm/',
  'linux /arm',
  'linux/&arm',
  'linux/arm/foo/bar',
];

export interface MatchCase {
  platform: string;
  yes: string[];
  no: string[];
}

export const ONLY_CASES: MatchCase[] = [
  {
    platform: 'linux/amd64',
    yes: ['linux/amd64', 'linux/386'],
    no: ['linux/amd64/v2', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    platform: 'linux/amd64/v2',
    yes: ['linux/amd64', 'linux/amd64/v1', 'linux/amd64/v2', 'linux/386'],
    no: ['linux/amd64/v3', 'linux/amd64/v4', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    platform: 'linux/386',
    yes: ['linux/386'],
    no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    platform: 'windows/amd64',
    yes: ['windows/amd64', 'windows(10.0.17763)/amd64'],
    no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/arm'],
  },
  {
    platform: 'linux/arm/v8',
    yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8'],
    no: ['linux/amd64', 'linux/arm/v4', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    platform: 'linux/arm/v7',
    yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7'],
    no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    platform: 'linux/arm/v6',
    yes: ['linux/arm/v5', 'linux/arm/v6'],
    no: [
      'linux/amd64',
      'linux/arm',
      'linux/arm/v4',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm/v5',
    yes: ['linux/arm/v5'],
    no: [
      'linux/amd64',
      'linux/arm',
      'linux/arm/v4',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm/v4',
    yes: ['linux/arm/v4'],
    no: [
      'linux/amd64',
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm64/v9.6',
    yes: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'linux/arm64/v8',
      'linux/arm64/v8.1',
      'linux/arm64/v8.2',
      'linux/arm64/v8.3',
      'linux/arm64/v8.4',
      'linux/arm64/v8.5',
      'linux/arm64/v8.6',
      'linux/arm64/v8.7',
      'linux/arm64/v8.8',
      'linux/arm64/v8.9',
      'linux/arm64/v9',
      'linux/arm64/v9.0',
      'linux/arm64/v9.1',
      'linux/arm64/v9.2',
      'linux/arm64/v9.3',
      'linux/arm64/v9.4',
      'linux/arm64/v9.5',
      'linux/arm64/v9.6',
    ],
    no: ['linux/amd64', 'linux/arm/v4', 'windows/amd64', 'windows/arm', 'linux/arm64/v8.10'],
  },
  {
    platform: 'linux/arm64/v9',
    yes: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'linux/arm64/v8',
      'linux/arm64/v8.1',
      'linux/arm64/v8.2',
      'linux/arm64/v8.3',
      'linux/arm64/v8.4',
      'linux/arm64/v8.5',
      'linux/arm64/v9',
      'linux/arm64/v9.0',
    ],
    no: ['linux/amd64', 'linux/arm/v4', 'windows/amd64', 'windows/arm', 'linux/arm64/v8.6'],
  },
  {
    platform: 'linux/arm64/v8.1',
    yes: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'linux/arm64/v8',
      'linux/arm64/v8.1',
    ],
    no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v9', 'linux/arm64/v9', 'windows/amd64', 'windows/arm'],
  },
  {
    platform: 'linux/arm64',
    yes: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'linux/arm64/v8',
    ],
    no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v9', 'linux/arm64/v9', 'windows/amd64', 'windows/arm'],
  },
];

export const ONLY_STRICT_CASES: MatchCase[] = [
  {
    platform: 'linux/amd64',
    yes: ['linux/amd64'],
    no: ['linux/386', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    platform: 'linux/386',
    yes: ['linux/386'],
    no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    platform: 'windows/amd64',
    yes: ['windows/amd64', 'windows(10.0.17763)/amd64'],
    no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/arm'],
  },
  {
    platform: 'windows(10.0.17763)/amd64',
    yes: ['windows/amd64', 'windows(10.0.17763)/amd64'],
    no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/arm'],
  },
  {
    platform: 'linux/arm/v8',
    yes: ['linux/arm/v8'],
    no: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/amd64',
      'linux/arm/v4',
      'linux/arm64',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm/v7',
    yes: ['linux/arm', 'linux/arm/v7'],
    no: [
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/amd64',
      'linux/arm/v4',
      'linux/arm/v8',
      'linux/arm64',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm/v6',
    yes: ['linux/arm/v6'],
    no: [
      'linux/arm/v5',
      'linux/amd64',
      'linux/arm',
      'linux/arm/v4',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm/v5',
    yes: ['linux/arm/v5'],
    no: [
      'linux/amd64',
      'linux/arm',
      'linux/arm/v4',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm/v4',
    yes: ['linux/arm/v4'],
    no: [
      'linux/amd64',
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/arm64',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm64/v9.5',
    yes: ['linux/arm64/v9.5'],
    no: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/amd64',
      'linux/arm/v4',
      'linux/arm64/v8',
      'linux/arm64/v8.1',
      'linux/arm64/v9',
      'linux/arm64/v9.1',
      'linux/arm64/v9.4',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm64/v9',
    yes: ['linux/arm64/v9', 'linux/arm64/v9.0'],
    no: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/amd64',
      'linux/arm/v4',
      'linux/arm/v9',
      'linux/arm64/v8',
      'linux/arm64/v8.1',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm64/v8.1',
    yes: ['linux/arm64/v8.1'],
    no: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/amd64',
      'linux/arm/v4',
      'linux/arm/v9',
      'linux/arm64/v8',
      'linux/arm64/v9',
      'windows/amd64',
      'windows/arm',
    ],
  },
  {
    platform: 'linux/arm64',
    yes: ['linux/arm64', 'linux/arm64/v8'],
    no: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v6',
      'linux/arm/v7',
      'linux/arm/v8',
      'linux/amd64',
      'linux/arm/v4',
      'linux/arm/v9',
      'linux/arm64/v9',
      'windows/amd64',
      'windows/arm',
    ],
  },
];

/** TestCompareOSFeatures: [requested, candidates, expected order]; same result for Only and OnlyStrict. */
export const COMPARE_OS_FEATURES: Array<[string, string[], string[]]> = [
  [
    'linux/amd64',
    ['windows/amd64', 'linux/amd64', 'linux(+other)/amd64', 'linux/arm64'],
    ['linux/amd64', 'linux(+other)/amd64', 'windows/amd64', 'linux/arm64'],
  ],
  [
    'linux(+none)/amd64',
    ['windows/amd64', 'linux/amd64', 'linux/arm64', 'linux(+other)/amd64'],
    ['linux/amd64', 'linux(+other)/amd64', 'windows/amd64', 'linux/arm64'],
  ],
  [
    'linux(+other)/amd64',
    ['windows/amd64', 'linux/amd64', 'linux/arm64', 'linux(+other)/amd64'],
    ['linux(+other)/amd64', 'linux/amd64', 'windows/amd64', 'linux/arm64'],
  ],
  [
    'linux(+af+other+zf)/amd64',
    ['windows/amd64', 'linux/amd64', 'linux/arm64', 'linux(+other)/amd64'],
    ['linux(+other)/amd64', 'linux/amd64', 'windows/amd64', 'linux/arm64'],
  ],
  [
    'linux(+f1+f2)/amd64',
    ['linux/amd64', 'linux(+f2)/amd64', 'linux(+f1)/amd64', 'linux(+f1+f2)/amd64'],
    ['linux(+f1+f2)/amd64', 'linux(+f2)/amd64', 'linux(+f1)/amd64', 'linux/amd64'],
  ],
  [
    'linux(7.2+other)/amd64',
    ['linux/amd64', 'linux(+other)/amd64', 'linux(7.1)/amd64', 'linux(7.2+other)/amd64'],
    ['linux(+other)/amd64', 'linux(7.2+other)/amd64', 'linux/amd64', 'linux(7.1)/amd64'],
  ],
];

/** Test_PlatformCompat: [host build, container build, can run]. */
export const WINDOWS_COMPAT: Array<[number, number, boolean]> = [
  [17763, 17763, true],
  [17763, 20348, false],
  [20348, 17763, false],
  [20348, 20348, true],
  [22621, 17763, false],
  [22621, 20348, true],
  [25398, 17763, false],
  [25398, 20348, true],
  [26100, 20348, true],
  [20348, 26100, false],
  [20348, 22621, false],
  [26100, 22621, true],
];

/** TestMatchComparerMatch_ABICheckWCOW: [host os.version, image os.version, match]. */
export const WINDOWS_ABI_MATCH: Array<[string, string, boolean]> = [
  ['10.0.17763', '10.0.17763', true],
  ['10.0.17763', '10.0.20348', false],
  ['10.0.20348', '10.0.17763', false],
  ['10.0.20348', '10.0.20348', true],
  ['10.0.22621', '10.0.17763', false],
  ['10.0.22621', '10.0.20348', true],
  ['', '10.0.17763', true],
  ['', '', true],
  ['', '10.0.22621', true],
];

/** TestGetCPUVariantFromArch: [uname machine, variant number or undefined for an error]. */
export const CPU_VARIANT_FROM_ARCH: Array<[string, string | undefined]> = [
  ['aarch64', '8'],
  ['Armv8', '8'],
  ['armv7', '7'],
  ['armv6', '6'],
  ['armv5', '5'],
  ['armv4', '4'],
  ['armv3', '3'],
  ['armv9', 'unknown'],
  ['armxxxx', undefined],
  ['armv', undefined],
];
