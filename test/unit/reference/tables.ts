/**
 * Test tables (data only) for src/reference, taken from upstream's own tests:
 * - distribution/reference @ 0965666a: reference_test.go (TestReferenceParse, TestParseNamed,
 *   TestDomainAndPath, TestWithTag/TestWithDigest), normalize_test.go (TestValidateReferenceName,
 *   TestValidateRemoteName, TestParseRepositoryInfo, TestParseReferenceWithTagAndDigest,
 *   TestParseAnyReference, TestNormalizedSplitHostname, TestParseDockerRef), regexp_test.go
 *   (TestDomainRegexp, TestFullNameRegexp, TestReferenceRegexp, TestIdentifierRegexp);
 * - opencontainers/go-digest v1.0.0 digest_test.go (TestParseDigest);
 * - kubernetes pkg/util/parsers/parsers_test.go (TestParseImageName);
 * - the "Image names" section of the Kubernetes images concept page (the product's seed).
 * Differences from upstream's tables are marked KIMG: (kimg registers sha384/sha512 like the kubelet).
 */
import type { ReferenceErrorCode } from '../../../src/reference/index.js';

const F64 = 'f'.repeat(64);
export const SHA_F = `sha256:${F64}`;
export const PAUSE_DIGEST = 'sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07';

/** `Parse` (non-normalizing): input → domain/path/tag/digest, or an error code. */
export interface StrictCase {
  input: string;
  err?: ReferenceErrorCode;
  /** `Name()`: domain/path. */
  name?: string;
  domain?: string;
  tag?: string;
  digest?: string;
}

export const STRICT_CASES: StrictCase[] = [
  { input: 'test_com', name: 'test_com', domain: '' },
  { input: 'test.com:tag', name: 'test.com', domain: '', tag: 'tag' },
  { input: 'test.com:5000', name: 'test.com', domain: '', tag: '5000' },
  { input: 'test.com/repo:tag', domain: 'test.com', name: 'test.com/repo', tag: 'tag' },
  { input: 'test:5000/repo', domain: 'test:5000', name: 'test:5000/repo' },
  { input: 'test:5000/repo:tag', domain: 'test:5000', name: 'test:5000/repo', tag: 'tag' },
  { input: `test:5000/repo@${SHA_F}`, domain: 'test:5000', name: 'test:5000/repo', digest: SHA_F },
  {
    input: `test:5000/repo:tag@${SHA_F}`,
    domain: 'test:5000',
    name: 'test:5000/repo',
    tag: 'tag',
    digest: SHA_F,
  },
  { input: '', err: 'NAME_EMPTY' },
  { input: ':justtag', err: 'INVALID_REFERENCE_FORMAT' },
  { input: `@${SHA_F}`, err: 'INVALID_REFERENCE_FORMAT' },
  { input: 'repo@sha256:ffffffffffffffffffffffffffffffffff', err: 'DIGEST_INVALID_LENGTH' },
  { input: `validname@invaliddigest:${F64}`, err: 'DIGEST_UNSUPPORTED' },
  // KIMG: upstream's test expects ErrDigestUnsupported because it does not import crypto/sha512; the
  // kubelet does, so sha512 is valid here.
  {
    input: `validname@sha512:${'f'.repeat(128)}`,
    name: 'validname',
    domain: '',
    digest: `sha512:${'f'.repeat(128)}`,
  },
  { input: 'Uppercase:tag', err: 'NAME_CONTAINS_UPPERCASE' },
  // Upstream FIXME: "Uppercase" is taken as a domain here, so it passes.
  { input: 'Uppercase/lowercase:tag', domain: 'Uppercase', name: 'Uppercase/lowercase', tag: 'tag' },
  { input: 'test:5000/Uppercase/lowercase:tag', err: 'NAME_CONTAINS_UPPERCASE' },
  { input: 'lowercase:Uppercase', name: 'lowercase', domain: '', tag: 'Uppercase' },
  { input: 'domain/' + 'a'.repeat(256) + ':tag', err: 'NAME_TOO_LONG' },
  {
    input: 'a/'.repeat(127) + 'a:tag-puts-this-over-max',
    domain: 'a',
    name: 'a/'.repeat(127) + 'a',
    tag: 'tag-puts-this-over-max',
  },
  { input: 'aa/asdf$$^/aa', err: 'INVALID_REFERENCE_FORMAT' },
  {
    input: 'sub-dom1.foo.com/bar/baz/quux',
    domain: 'sub-dom1.foo.com',
    name: 'sub-dom1.foo.com/bar/baz/quux',
  },
  {
    input: 'sub-dom1.foo.com/bar/baz/quux:some-long-tag',
    domain: 'sub-dom1.foo.com',
    name: 'sub-dom1.foo.com/bar/baz/quux',
    tag: 'some-long-tag',
  },
  {
    input: 'b.gcr.io/test.example.com/my-app:test.example.com',
    domain: 'b.gcr.io',
    name: 'b.gcr.io/test.example.com/my-app',
    tag: 'test.example.com',
  },
  {
    input: 'xn--n3h.com/myimage:xn--n3h.com',
    domain: 'xn--n3h.com',
    name: 'xn--n3h.com/myimage',
    tag: 'xn--n3h.com',
  },
  {
    input: `xn--7o8h.com/myimage:xn--7o8h.com@${SHA_F}`,
    domain: 'xn--7o8h.com',
    name: 'xn--7o8h.com/myimage',
    tag: 'xn--7o8h.com',
    digest: SHA_F,
  },
  { input: 'foo_bar.com:8080', name: 'foo_bar.com', domain: '', tag: '8080' },
  { input: 'foo/foo_bar.com:8080', domain: 'foo', name: 'foo/foo_bar.com', tag: '8080' },
  { input: '192.168.1.1', name: '192.168.1.1', domain: '' },
  { input: '192.168.1.1:tag', name: '192.168.1.1', domain: '', tag: 'tag' },
  { input: '192.168.1.1:5000', name: '192.168.1.1', domain: '', tag: '5000' },
  { input: '192.168.1.1/repo', domain: '192.168.1.1', name: '192.168.1.1/repo' },
  { input: '192.168.1.1:5000/repo', domain: '192.168.1.1:5000', name: '192.168.1.1:5000/repo' },
  {
    input: '192.168.1.1:5000/repo:5050',
    domain: '192.168.1.1:5000',
    name: '192.168.1.1:5000/repo',
    tag: '5050',
  },
  { input: '[2001:db8::1]', err: 'INVALID_REFERENCE_FORMAT' },
  { input: '[2001:db8::1]:5000', err: 'INVALID_REFERENCE_FORMAT' },
  { input: '[2001:db8::1]:tag', err: 'INVALID_REFERENCE_FORMAT' },
  { input: '[2001:db8::1]/repo', domain: '[2001:db8::1]', name: '[2001:db8::1]/repo' },
  {
    input: '[2001:db8:1:2:3:4:5:6]/repo:tag',
    domain: '[2001:db8:1:2:3:4:5:6]',
    name: '[2001:db8:1:2:3:4:5:6]/repo',
    tag: 'tag',
  },
  { input: '[2001:db8::1]:5000/repo', domain: '[2001:db8::1]:5000', name: '[2001:db8::1]:5000/repo' },
  {
    input: '[2001:db8::1]:5000/repo:tag',
    domain: '[2001:db8::1]:5000',
    name: '[2001:db8::1]:5000/repo',
    tag: 'tag',
  },
  {
    input: `[2001:db8::1]:5000/repo@${SHA_F}`,
    domain: '[2001:db8::1]:5000',
    name: '[2001:db8::1]:5000/repo',
    digest: SHA_F,
  },
  {
    input: `[2001:db8::1]:5000/repo:tag@${SHA_F}`,
    domain: '[2001:db8::1]:5000',
    name: '[2001:db8::1]:5000/repo',
    tag: 'tag',
    digest: SHA_F,
  },
  { input: '[2001:db8::]:5000/repo', domain: '[2001:db8::]:5000', name: '[2001:db8::]:5000/repo' },
  { input: '[::1]:5000/repo', domain: '[::1]:5000', name: '[::1]:5000/repo' },
  { input: '[fe80::1%eth0]:5000/repo', err: 'INVALID_REFERENCE_FORMAT' },
  { input: '[fe80::1%@invalidzone]:5000/repo', err: 'INVALID_REFERENCE_FORMAT' },
  {
    input: 'example.com/' + 'a'.repeat(255) + ':tag',
    domain: 'example.com',
    name: 'example.com/' + 'a'.repeat(255),
    tag: 'tag',
  },
  // TestSerialization
  { input: 'example.com:8000/named', domain: 'example.com:8000', name: 'example.com:8000/named' },
  {
    input: 'example.com:8000/named:tagged',
    domain: 'example.com:8000',
    name: 'example.com:8000/named',
    tag: 'tagged',
  },
  {
    input: 'other.com/named@sha256:1234567890098765432112345667890098765432112345667890098765432112',
    domain: 'other.com',
    name: 'other.com/named',
    digest: 'sha256:1234567890098765432112345667890098765432112345667890098765432112',
  },
  // TestReferenceRegexp
  {
    input: 'registry.com:8080/myapp:tag',
    domain: 'registry.com:8080',
    name: 'registry.com:8080/myapp',
    tag: 'tag',
  },
  { input: 'registry.com:8080/myapp@sha256:badbadbadbad', err: 'INVALID_REFERENCE_FORMAT' },
  { input: 'registry.com:8080/myapp:invalid~tag', err: 'INVALID_REFERENCE_FORMAT' },
  { input: 'bad_hostname.com:8080/myapp:tag', err: 'INVALID_REFERENCE_FORMAT' },
  { input: `localhost:8080@${SHA_F}`, name: 'localhost', domain: '', tag: '8080', digest: SHA_F },
  {
    input: `localhost:8080/name@${SHA_F}`,
    domain: 'localhost:8080',
    name: 'localhost:8080/name',
    digest: SHA_F,
  },
  { input: `localhost:http/name@${SHA_F}`, err: 'INVALID_REFERENCE_FORMAT' },
  { input: `localhost@${SHA_F}`, name: 'localhost', domain: '', digest: SHA_F },
  { input: 'registry.com:8080/myapp@bad', err: 'INVALID_REFERENCE_FORMAT' },
  { input: 'registry.com:8080/myapp@2bad', err: 'INVALID_REFERENCE_FORMAT' },
  // Tag length: 128 is the limit (the tag regex), a longer tag fails the grammar.
  { input: 'repo:' + 'a'.repeat(128), name: 'repo', domain: '', tag: 'a'.repeat(128) },
  { input: 'repo:' + 'a'.repeat(129), err: 'INVALID_REFERENCE_FORMAT' },
  { input: 'repo:.tag', err: 'INVALID_REFERENCE_FORMAT' },
  { input: 'repo:-tag', err: 'INVALID_REFERENCE_FORMAT' },
  { input: 'repo:_tag', name: 'repo', domain: '', tag: '_tag' },
  { input: 'repo:', err: 'INVALID_REFERENCE_FORMAT' },
  { input: 'repo@', err: 'INVALID_REFERENCE_FORMAT' },
  // Digest validation after the grammar (go-digest v1.0.0 order: length before format).
  { input: `repo@sha256:${F64.toUpperCase()}`, err: 'DIGEST_INVALID_FORMAT' },
  { input: `repo@sha256:${'a'.repeat(63)}`, err: 'DIGEST_INVALID_LENGTH' },
  { input: `repo@sha256:${'a'.repeat(65)}`, err: 'DIGEST_INVALID_LENGTH' },
  { input: `repo@sha384:${'a'.repeat(96)}`, name: 'repo', domain: '', digest: `sha384:${'a'.repeat(96)}` },
  { input: `repo@sha512:${'a'.repeat(64)}`, err: 'DIGEST_INVALID_LENGTH' },
  { input: `repo@md5:${'a'.repeat(32)}`, err: 'DIGEST_UNSUPPORTED' },
  { input: `repo@SHA256:${F64}`, err: 'DIGEST_INVALID_FORMAT' },
  { input: `repo@sha256+b64:${F64}`, err: 'DIGEST_UNSUPPORTED' },
  { input: `repo@a.b-c_d+e:${F64}`, err: 'DIGEST_UNSUPPORTED' },
  { input: `repo@sha256:${'a'.repeat(31)}`, err: 'INVALID_REFERENCE_FORMAT' },
  { input: `repo@${SHA_F}@${SHA_F}`, err: 'INVALID_REFERENCE_FORMAT' },
  // Go's strings.ToLower maps KELVIN SIGN to "k": the lowercased input matches, so "must be lowercase".
  { input: 'repo:\u212a', err: 'NAME_CONTAINS_UPPERCASE' },
  { input: 'repo:\u0130', err: 'NAME_CONTAINS_UPPERCASE' },
  { input: 'r\u00e9po', err: 'INVALID_REFERENCE_FORMAT' },
];

/** `Parse` over the name grammar alone (TestFullNameRegexp): name → [domain, path], or null (no match). */
export const NAME_CASES: [string, [string, string] | null][] = [
  ['short', ['', 'short']],
  ['simple/name', ['simple', 'name']],
  ['library/ubuntu', ['library', 'ubuntu']],
  ['docker/stevvooe/app', ['docker', 'stevvooe/app']],
  ['aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb', ['aa', 'aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb']],
  ['aa/aa/bb/bb/bb', ['aa', 'aa/bb/bb/bb']],
  ['a/a/a/a', ['a', 'a/a/a']],
  ['a/a/a/a/', null],
  ['a//a/a', null],
  ['a', ['', 'a']],
  ['a/aa', ['a', 'aa']],
  ['a/aa/a', ['a', 'aa/a']],
  ['foo.com', ['', 'foo.com']],
  ['foo.com/', null],
  ['foo.com:8080/bar', ['foo.com:8080', 'bar']],
  ['foo.com:http/bar', null],
  ['foo.com/bar', ['foo.com', 'bar']],
  ['foo.com/bar/baz', ['foo.com', 'bar/baz']],
  ['localhost:8080/bar', ['localhost:8080', 'bar']],
  ['sub-dom1.foo.com/bar/baz/quux', ['sub-dom1.foo.com', 'bar/baz/quux']],
  ['blog.foo.com/bar/baz', ['blog.foo.com', 'bar/baz']],
  ['a^a', null],
  ['aa/asdf$$^/aa', null],
  ['asdf$$^/aa', null],
  ['aa-a/a', ['aa-a', 'a']],
  ['a/'.repeat(128) + 'a', ['a', 'a/'.repeat(127) + 'a']],
  ['a-/a/a/a', null],
  ['foo.com/a-/a/a', null],
  ['-foo/bar', null],
  ['foo/bar-', null],
  ['foo-/bar', null],
  ['foo/-bar', null],
  ['_foo/bar', null],
  ['foo_bar', ['', 'foo_bar']],
  ['foo_bar.com', ['', 'foo_bar.com']],
  ['foo_bar.com:8080', null],
  ['foo_bar.com:8080/app', null],
  ['foo.com/foo_bar', ['foo.com', 'foo_bar']],
  ['____/____', null],
  ['_docker/_docker', null],
  ['docker_/docker_', null],
  ['b.gcr.io/test.example.com/my-app', ['b.gcr.io', 'test.example.com/my-app']],
  ['xn--n3h.com/myimage', ['xn--n3h.com', 'myimage']],
  ['xn--7o8h.com/myimage', ['xn--7o8h.com', 'myimage']],
  ['example.com/xn--7o8h.com/myimage', ['example.com', 'xn--7o8h.com/myimage']],
  ['example.com/some_separator__underscore/myimage', ['example.com', 'some_separator__underscore/myimage']],
  ['example.com/__underscore/myimage', null],
  ['example.com/..dots/myimage', null],
  ['example.com/.dots/myimage', null],
  ['example.com/nodouble..dots/myimage', null],
  ['docker./docker', null],
  ['.docker/docker', null],
  ['docker-/docker', null],
  ['-docker/docker', null],
  ['do..cker/docker', null],
  ['do__cker:8080/docker', null],
  ['do__cker/docker', ['', 'do__cker/docker']],
  [
    'registry.io/foo/project--id.module--name.ver---sion--name',
    ['registry.io', 'foo/project--id.module--name.ver---sion--name'],
  ],
  ['Asdf.com/foo/bar', ['Asdf.com', 'foo/bar']],
  ['Foo/FarB', null],
  ['a___b', null],
  ['a._b', null],
  ['a-_b', null],
];

/** TestDomainRegexp: `domainAndPort` alone. */
export const DOMAIN_CASES: [string, boolean][] = [
  ['test.com', true],
  ['test.com:10304', true],
  ['test.com:http', false],
  ['localhost', true],
  ['localhost:8080', true],
  ['a', true],
  ['a.b', true],
  ['ab.cd.com', true],
  ['a-b.com', true],
  ['-ab.com', false],
  ['ab-.com', false],
  ['ab.c-om', true],
  ['ab.-com', false],
  ['ab.com-', false],
  ['0101.com', true],
  ['001a.com', true],
  ['b.gbc.io:443', true],
  ['b.gbc.io', true],
  ['xn--n3h.com', true],
  ['Asdf.com', true],
  ['192.168.1.1:75050', true],
  ['192.168.1.1:750050', true],
  ['[fd00:1:2::3]:75050', true],
  ['[fd00:1:2::3]75050', false],
  ['[fd00:1:2::3]::75050', false],
  ['[fd00:1:2::3%eth0]:75050', false],
  ['[fd00123123123]:75050', true],
  ['[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050', true],
  ['[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505', true],
  ['fd00:1:2::3:75050', false],
  ['[]', false],
  ['[::1]:', false],
  ['a..b', false],
  ['.a', false],
  ['a.', false],
  ['a:', false],
  ['', false],
];

/** TestValidateReferenceName + TestValidateRemoteName: `ParseNormalizedNamed` validity. */
export const NORMALIZED_VALID: string[] = [
  'docker/docker',
  'library/debian',
  'debian',
  'localhost/library/debian',
  'localhost/debian',
  'LOCALDOMAIN/library/debian',
  'LOCALDOMAIN/debian',
  'docker.io/docker/docker',
  'docker.io/library/debian',
  'docker.io/debian',
  'index.docker.io/docker/docker',
  'index.docker.io/library/debian',
  'index.docker.io/debian',
  '127.0.0.1:5000/docker/docker',
  '127.0.0.1:5000/library/debian',
  '127.0.0.1:5000/debian',
  '192.168.0.1',
  '192.168.0.1:80',
  '192.168.0.1:8/debian',
  '192.168.0.2:25000/debian',
  'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
  '[fc00::1]:5000/docker',
  '[fc00::1]:5000/docker/docker',
  '[fc00:1:2:3:4:5:6:7]:5000/library/debian',
  'docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a',
  'Docker/docker',
  'DOCKER/docker',
  'docker-rules/docker',
  'docker---rules/docker',
  'doc/docker',
  'd/docker',
  'jess/t',
  'dock__er/docker',
];

export const NORMALIZED_INVALID: [string, ReferenceErrorCode][] = [
  ['https://github.com/docker/docker', 'INVALID_REFERENCE_FORMAT'],
  ['docker/Docker', 'NAME_CONTAINS_UPPERCASE'],
  ['-docker', 'INVALID_REFERENCE_FORMAT'],
  ['-docker/docker', 'INVALID_REFERENCE_FORMAT'],
  ['-docker.io/docker/docker', 'INVALID_REFERENCE_FORMAT'],
  ['docker///docker', 'INVALID_REFERENCE_FORMAT'],
  ['docker.io/docker/Docker', 'NAME_CONTAINS_UPPERCASE'],
  ['docker.io/docker///docker', 'INVALID_REFERENCE_FORMAT'],
  ['[fc00::1]', 'INVALID_REFERENCE_FORMAT'],
  ['[fc00::1]:5000', 'INVALID_REFERENCE_FORMAT'],
  ['fc00::1:5000/debian', 'INVALID_REFERENCE_FORMAT'],
  ['[fe80::1%eth0]:5000/debian', 'INVALID_REFERENCE_FORMAT'],
  ['[2001:db8:3:4::192.0.2.33]:5000/debian', 'INVALID_REFERENCE_FORMAT'],
  ['1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a', 'INVALID_REFERENCE_FORMAT'],
  ['docker-/docker', 'INVALID_REFERENCE_FORMAT'],
  ['-docker-/docker', 'INVALID_REFERENCE_FORMAT'],
  ['____/____', 'INVALID_REFERENCE_FORMAT'],
  ['_docker/_docker', 'INVALID_REFERENCE_FORMAT'],
  ['dock..er/docker', 'INVALID_REFERENCE_FORMAT'],
  ['dock_.er/docker', 'INVALID_REFERENCE_FORMAT'],
  ['dock-.er/docker', 'INVALID_REFERENCE_FORMAT'],
  ['docker/', 'INVALID_REFERENCE_FORMAT'],
  [
    'this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker',
    'NAME_TOO_LONG',
  ],
  ['-foo', 'INVALID_REFERENCE_FORMAT'],
  // Upstream parses "docker.io/library/" for the empty string: invalid format, not ErrNameEmpty.
  ['', 'INVALID_REFERENCE_FORMAT'],
  ['Uppercase:tag', 'NAME_CONTAINS_UPPERCASE'],
  ['http://root', 'INVALID_REFERENCE_FORMAT'],
  ['ROOT', 'NAME_CONTAINS_UPPERCASE'],
];

/** TestParseRepositoryInfo: every spelling normalizes to FullName and familiarizes to FamiliarName. */
export interface RepositoryInfoCase {
  remote: string;
  familiar: string;
  full: string;
  ambiguous: string;
  domain: string;
}

export const REPOSITORY_INFO: RepositoryInfoCase[] = [
  {
    remote: 'fooo',
    familiar: 'localhost/fooo',
    full: 'localhost/fooo',
    ambiguous: 'localhost/fooo',
    domain: 'localhost',
  },
  {
    remote: 'fooo/bar',
    familiar: 'localhost/fooo/bar',
    full: 'localhost/fooo/bar',
    ambiguous: 'localhost/fooo/bar',
    domain: 'localhost',
  },
  {
    remote: 'fooo',
    familiar: 'LOCALDOMAIN/fooo',
    full: 'LOCALDOMAIN/fooo',
    ambiguous: 'LOCALDOMAIN/fooo',
    domain: 'LOCALDOMAIN',
  },
  {
    remote: 'fooo/bar',
    familiar: 'LOCALDOMAIN/fooo/bar',
    full: 'LOCALDOMAIN/fooo/bar',
    ambiguous: 'LOCALDOMAIN/fooo/bar',
    domain: 'LOCALDOMAIN',
  },
  {
    remote: 'fooo/bar',
    familiar: 'fooo/bar',
    full: 'docker.io/fooo/bar',
    ambiguous: 'index.docker.io/fooo/bar',
    domain: 'docker.io',
  },
  {
    remote: 'library/ubuntu',
    familiar: 'ubuntu',
    full: 'docker.io/library/ubuntu',
    ambiguous: 'library/ubuntu',
    domain: 'docker.io',
  },
  {
    remote: 'nonlibrary/ubuntu',
    familiar: 'nonlibrary/ubuntu',
    full: 'docker.io/nonlibrary/ubuntu',
    ambiguous: '',
    domain: 'docker.io',
  },
  {
    remote: 'other/library',
    familiar: 'other/library',
    full: 'docker.io/other/library',
    ambiguous: '',
    domain: 'docker.io',
  },
  {
    remote: 'private/moonbase',
    familiar: '127.0.0.1:8000/private/moonbase',
    full: '127.0.0.1:8000/private/moonbase',
    ambiguous: '',
    domain: '127.0.0.1:8000',
  },
  {
    remote: 'privatebase',
    familiar: '127.0.0.1:8000/privatebase',
    full: '127.0.0.1:8000/privatebase',
    ambiguous: '',
    domain: '127.0.0.1:8000',
  },
  {
    remote: 'private/moonbase',
    familiar: 'example.com/private/moonbase',
    full: 'example.com/private/moonbase',
    ambiguous: '',
    domain: 'example.com',
  },
  {
    remote: 'privatebase',
    familiar: 'example.com/privatebase',
    full: 'example.com/privatebase',
    ambiguous: '',
    domain: 'example.com',
  },
  {
    remote: 'private/moonbase',
    familiar: 'example.com:8000/private/moonbase',
    full: 'example.com:8000/private/moonbase',
    ambiguous: '',
    domain: 'example.com:8000',
  },
  {
    remote: 'privatebasee',
    familiar: 'example.com:8000/privatebasee',
    full: 'example.com:8000/privatebasee',
    ambiguous: '',
    domain: 'example.com:8000',
  },
  {
    remote: 'library/ubuntu-12.04-base',
    familiar: 'ubuntu-12.04-base',
    full: 'docker.io/library/ubuntu-12.04-base',
    ambiguous: 'index.docker.io/library/ubuntu-12.04-base',
    domain: 'docker.io',
  },
  {
    remote: 'library/foo',
    familiar: 'foo',
    full: 'docker.io/library/foo',
    ambiguous: 'docker.io/foo',
    domain: 'docker.io',
  },
  {
    remote: 'library/foo/bar',
    familiar: 'library/foo/bar',
    full: 'docker.io/library/foo/bar',
    ambiguous: '',
    domain: 'docker.io',
  },
  {
    remote: 'store/foo/bar',
    familiar: 'store/foo/bar',
    full: 'docker.io/store/foo/bar',
    ambiguous: '',
    domain: 'docker.io',
  },
  { remote: 'bar', familiar: 'Foo/bar', full: 'Foo/bar', ambiguous: '', domain: 'Foo' },
  { remote: 'bar', familiar: 'FOO/bar', full: 'FOO/bar', ambiguous: '', domain: 'FOO' },
];

/** TestNormalizedSplitHostname: input → [domain, path]. */
export const NORMALIZED_SPLIT: [string, string, string][] = [
  ['test.com/foo', 'test.com', 'foo'],
  ['test_com/foo', 'docker.io', 'test_com/foo'],
  ['docker/migrator', 'docker.io', 'docker/migrator'],
  ['test.com:8080/foo', 'test.com:8080', 'foo'],
  ['test-com:8080/foo', 'test-com:8080', 'foo'],
  ['foo', 'docker.io', 'library/foo'],
  ['xn--n3h.com/foo', 'xn--n3h.com', 'foo'],
  ['xn--n3h.com:18080/foo', 'xn--n3h.com:18080', 'foo'],
  ['docker.io/foo', 'docker.io', 'library/foo'],
  ['docker.io/library/foo', 'docker.io', 'library/foo'],
  ['docker.io/library/foo/bar', 'docker.io', 'library/foo/bar'],
  ['localhost/foo', 'localhost', 'foo'],
  ['localhost:5000/foo', 'localhost:5000', 'foo'],
  ['localhost', 'docker.io', 'library/localhost'],
  ['example.com', 'docker.io', 'library/example.com'],
  ['[::1]:5000/foo', '[::1]:5000', 'foo'],
  ['[fc00::1]:5000/docker', '[fc00::1]:5000', 'docker'],
  // A first component with "." is taken as a host by splitDockerDomain, then Parse finds it is not a valid
  // host ("_") and reads the whole string as a path: upstream returns a name with an empty domain.
  ['foo_bar.com/x', '', 'foo_bar.com/x'],
  ['a_a.a/a', '', 'a_a.a/a'],
];

/** TestParseNamed: input → [domain, path] or an error code (ErrNameNotCanonical). */
export const PARSE_NAMED: [string, [string, string] | ReferenceErrorCode][] = [
  ['test.com/foo', ['test.com', 'foo']],
  ['test:8080/foo', ['test:8080', 'foo']],
  ['test_com/foo', 'NAME_NOT_CANONICAL'],
  ['test.com', 'NAME_NOT_CANONICAL'],
  ['foo', 'NAME_NOT_CANONICAL'],
  ['library/foo', 'NAME_NOT_CANONICAL'],
  ['docker.io/library/foo', ['docker.io', 'library/foo']],
  ['docker.io/foo', 'NAME_NOT_CANONICAL'],
];

const REDIS_D = 'sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c';

/** TestParseAnyReference: input → String() of the result; `digest: true` when it is a bare digest. */
export const ANY_REFERENCE: { input: string; equivalent: string; digest?: boolean }[] = [
  { input: 'redis', equivalent: 'docker.io/library/redis' },
  { input: 'redis:latest', equivalent: 'docker.io/library/redis:latest' },
  { input: 'docker.io/library/redis:latest', equivalent: 'docker.io/library/redis:latest' },
  { input: `redis@${REDIS_D}`, equivalent: `docker.io/library/redis@${REDIS_D}` },
  { input: `docker.io/library/redis@${REDIS_D}`, equivalent: `docker.io/library/redis@${REDIS_D}` },
  { input: 'dmcgowan/myapp', equivalent: 'docker.io/dmcgowan/myapp' },
  { input: 'dmcgowan/myapp:latest', equivalent: 'docker.io/dmcgowan/myapp:latest' },
  { input: 'docker.io/mcgowan/myapp:latest', equivalent: 'docker.io/mcgowan/myapp:latest' },
  { input: `dmcgowan/myapp@${REDIS_D}`, equivalent: `docker.io/dmcgowan/myapp@${REDIS_D}` },
  { input: `docker.io/dmcgowan/myapp@${REDIS_D}`, equivalent: `docker.io/dmcgowan/myapp@${REDIS_D}` },
  { input: REDIS_D.slice(7), equivalent: REDIS_D, digest: true },
  { input: REDIS_D, equivalent: REDIS_D, digest: true },
  { input: REDIS_D.slice(7, -1), equivalent: `docker.io/library/${REDIS_D.slice(7, -1)}` },
  { input: 'dbcc1', equivalent: 'docker.io/library/dbcc1' },
];

const BUSY_D = 'sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582';

/** TestParseDockerRef: input → what is pulled. */
export const DOCKER_REF: [string, string][] = [
  ['busybox', 'docker.io/library/busybox:latest'],
  ['busybox:latest', 'docker.io/library/busybox:latest'],
  [`busybox@${BUSY_D}`, `docker.io/library/busybox@${BUSY_D}`],
  ['library/busybox', 'docker.io/library/busybox:latest'],
  ['docker.io/busybox', 'docker.io/library/busybox:latest'],
  ['docker.io/library/busybox', 'docker.io/library/busybox:latest'],
  ['docker.io/busybox:latest', 'docker.io/library/busybox:latest'],
  ['library/busybox:latest', 'docker.io/library/busybox:latest'],
  ['docker.io/library/busybox:latest', 'docker.io/library/busybox:latest'],
  ['gcr.io/library/busybox', 'gcr.io/library/busybox:latest'],
  [`gcr.io/library/busybox:latest@${BUSY_D}`, `gcr.io/library/busybox@${BUSY_D}`],
];

/** TestParseDigest (go-digest v1.0.0): input → [algorithm, encoded] or an error code. */
export const DIGEST_CASES: [string, [string, string] | ReferenceErrorCode][] = [
  [
    'sha256:e58fcf7418d4390dec8e8fb69d88c06ec07039d651fedd3aa72af9972e7d046b',
    ['sha256', 'e58fcf7418d4390dec8e8fb69d88c06ec07039d651fedd3aa72af9972e7d046b'],
  ],
  [
    'sha384:d3fc7881460b7e22e3d172954463dddd7866d17597e7248453c48b3e9d26d9596bf9c4a9cf8072c9d5bad76e19af801d',
    [
      'sha384',
      'd3fc7881460b7e22e3d172954463dddd7866d17597e7248453c48b3e9d26d9596bf9c4a9cf8072c9d5bad76e19af801d',
    ],
  ],
  [`sha512:${'0'.repeat(128)}`, ['sha512', '0'.repeat(128)]],
  ['sha256:', 'DIGEST_INVALID_FORMAT'],
  [':', 'DIGEST_INVALID_FORMAT'],
  ['', 'DIGEST_INVALID_FORMAT'],
  [':abc', 'DIGEST_INVALID_FORMAT'],
  ['d41d8cd98f00b204e9800998ecf8427e', 'DIGEST_INVALID_FORMAT'],
  ['sha256:d41d8cd98f00b204e9800m98ecf8427e', 'DIGEST_INVALID_LENGTH'],
  ['sha256:abcdef0123456789', 'DIGEST_INVALID_LENGTH'],
  ['sha512:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789', 'DIGEST_INVALID_LENGTH'],
  ['foo:d41d8cd98f00b204e9800998ecf8427e', 'DIGEST_UNSUPPORTED'],
  [
    'sha384__foo+bar:d3fc7881460b7e22e3d172954463dddd7866d17597e7248453c48b3e9d26d9596bf9c4a9cf8072c9d5bad76e19af801d',
    'DIGEST_INVALID_FORMAT',
  ],
  [
    'sha384.foo+bar:d3fc7881460b7e22e3d172954463dddd7866d17597e7248453c48b3e9d26d9596bf9c4a9cf8072c9d5bad76e19af801d',
    'DIGEST_UNSUPPORTED',
  ],
  [
    'sha384_foo+bar:d3fc7881460b7e22e3d172954463dddd7866d17597e7248453c48b3e9d26d9596bf9c4a9cf8072c9d5bad76e19af801d',
    'DIGEST_UNSUPPORTED',
  ],
  ['sha256+b64:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564', 'DIGEST_UNSUPPORTED'],
  ['sha256:E58FCF7418D4390DEC8E8FB69D88C06EC07039D651FEDD3AA72AF9972E7D046B', 'DIGEST_INVALID_FORMAT'],
  // Length is counted in UTF-8 bytes, as Go's len() does: 63 hex + "é" (2 bytes) is 65 bytes.
  [`sha256:${'a'.repeat(63)}\u00e9`, 'DIGEST_INVALID_LENGTH'],
  [`sha256:${'a'.repeat(62)}\u00e9`, 'DIGEST_INVALID_FORMAT'],
  [`sha256:${'a'.repeat(63)}G`, 'DIGEST_INVALID_FORMAT'],
  ['md5:ABC', 'DIGEST_UNSUPPORTED'],
  ['MD5:abc', 'DIGEST_INVALID_FORMAT'],
  ['sha256', 'DIGEST_INVALID_FORMAT'],
];

/** kubernetes TestParseImageName: input → [repo, tag, digest] ('' for none) or an error substring. */
export const IMAGE_NAME_CASES: [string, [string, string, string] | string][] = [
  ['root', ['docker.io/library/root', 'latest', '']],
  ['root:tag', ['docker.io/library/root', 'tag', '']],
  [
    `root@${'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'}`,
    ['docker.io/library/root', '', 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ],
  ['user/repo', ['docker.io/user/repo', 'latest', '']],
  ['user/repo:tag', ['docker.io/user/repo', 'tag', '']],
  [
    `user/repo@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`,
    ['docker.io/user/repo', '', 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ],
  ['url:5000/repo', ['url:5000/repo', 'latest', '']],
  ['url:5000/repo:tag', ['url:5000/repo', 'tag', '']],
  [
    `url:5000/repo@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`,
    ['url:5000/repo', '', 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ],
  [
    `url:5000/repo:latest@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`,
    ['url:5000/repo', 'latest', 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ],
  ['ROOT', 'must be lowercase'],
  ['http://root', 'invalid reference format'],
  [
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'cannot specify 64-byte hexadecimal strings',
  ],
];

/**
 * The seed page's "Image names" examples: input → what the kubelet sends (applyDefaultTag), the
 * normalized name, the canonical form and what a runtime pulls (digest only when both are given).
 */
export const SEED_NAMES: { input: string; kubelet: string; name: string; canonical: string; pull: string }[] =
  [
    {
      input: 'busybox',
      kubelet: 'busybox:latest',
      name: 'docker.io/library/busybox',
      canonical: 'docker.io/library/busybox:latest',
      pull: 'docker.io/library/busybox:latest',
    },
    {
      input: 'busybox:1.32.0',
      kubelet: 'busybox:1.32.0',
      name: 'docker.io/library/busybox',
      canonical: 'docker.io/library/busybox:1.32.0',
      pull: 'docker.io/library/busybox:1.32.0',
    },
    {
      input: 'registry.k8s.io/pause:latest',
      kubelet: 'registry.k8s.io/pause:latest',
      name: 'registry.k8s.io/pause',
      canonical: 'registry.k8s.io/pause:latest',
      pull: 'registry.k8s.io/pause:latest',
    },
    {
      input: 'registry.k8s.io/pause:3.5',
      kubelet: 'registry.k8s.io/pause:3.5',
      name: 'registry.k8s.io/pause',
      canonical: 'registry.k8s.io/pause:3.5',
      pull: 'registry.k8s.io/pause:3.5',
    },
    {
      input: 'pause:3.5',
      kubelet: 'pause:3.5',
      name: 'docker.io/library/pause',
      canonical: 'docker.io/library/pause:3.5',
      pull: 'docker.io/library/pause:3.5',
    },
    {
      input: `registry.k8s.io/pause@${PAUSE_DIGEST}`,
      kubelet: `registry.k8s.io/pause@${PAUSE_DIGEST}`,
      name: 'registry.k8s.io/pause',
      canonical: `registry.k8s.io/pause@${PAUSE_DIGEST}`,
      pull: `registry.k8s.io/pause@${PAUSE_DIGEST}`,
    },
    {
      input: `pause@${PAUSE_DIGEST}`,
      kubelet: `pause@${PAUSE_DIGEST}`,
      name: 'docker.io/library/pause',
      canonical: `docker.io/library/pause@${PAUSE_DIGEST}`,
      pull: `docker.io/library/pause@${PAUSE_DIGEST}`,
    },
    {
      input: `registry.k8s.io/pause:3.5@${PAUSE_DIGEST}`,
      kubelet: `registry.k8s.io/pause:3.5@${PAUSE_DIGEST}`,
      name: 'registry.k8s.io/pause',
      canonical: `registry.k8s.io/pause:3.5@${PAUSE_DIGEST}`,
      pull: `registry.k8s.io/pause@${PAUSE_DIGEST}`,
    },
    {
      input: `pause:3.5@${PAUSE_DIGEST}`,
      kubelet: `pause:3.5@${PAUSE_DIGEST}`,
      name: 'docker.io/library/pause',
      canonical: `docker.io/library/pause:3.5@${PAUSE_DIGEST}`,
      pull: `docker.io/library/pause@${PAUSE_DIGEST}`,
    },
    {
      input: 'example/mycontainer',
      kubelet: 'example/mycontainer:latest',
      name: 'docker.io/example/mycontainer',
      canonical: 'docker.io/example/mycontainer:latest',
      pull: 'docker.io/example/mycontainer:latest',
    },
    {
      input: 'fictional.registry.example:10443/imagename',
      kubelet: 'fictional.registry.example:10443/imagename:latest',
      name: 'fictional.registry.example:10443/imagename',
      canonical: 'fictional.registry.example:10443/imagename:latest',
      pull: 'fictional.registry.example:10443/imagename:latest',
    },
  ];
