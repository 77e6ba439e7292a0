import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isKimgError } from '../../../src/errors/index.js';
import {
  applyDefaultTag,
  familiarName,
  formatReference,
  isDigest,
  isValidImageName,
  parseAnyReference,
  parseDigest,
  parseDockerRef,
  parseImageName,
  parseNamed,
  parseReference,
  parseStrict,
  splitDomain,
  tryParseReference,
  type ReferenceErrorCode,
} from '../../../src/reference/index.js';
import { isDomainAndPort, matchName } from '../../../src/reference/grammar.js';
import {
  ANY_REFERENCE,
  DIGEST_CASES,
  DOCKER_REF,
  DOMAIN_CASES,
  IMAGE_NAME_CASES,
  NAME_CASES,
  NORMALIZED_INVALID,
  NORMALIZED_SPLIT,
  NORMALIZED_VALID,
  PARSE_NAMED,
  PAUSE_DIGEST,
  REPOSITORY_INFO,
  SEED_NAMES,
  SHA_F,
  STRICT_CASES,
} from './tables.js';

/** Runs fn and returns the KimgError code it throws (assertion failure when it does not throw one). */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isKimgError(e), `expected a KimgError, got ${String(e)}`);
    return e.code;
  }
  assert.fail('expected an error');
}

function errorOf(fn: () => unknown): Error & { code: string; details: { input?: string } } {
  try {
    fn();
  } catch (e) {
    assert.ok(isKimgError(e), `expected a KimgError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

const short = (s: string): string => (s.length > 60 ? `${s.slice(0, 60)}…(${s.length})` : s);

describe('Parse (non-normalizing): distribution/reference TestReferenceParse', () => {
  for (const c of STRICT_CASES) {
    test(JSON.stringify(short(c.input)), () => {
      if (c.err) {
        assert.equal(
          codeOf(() => parseStrict(c.input)),
          c.err,
        );
        return;
      }
      const r = parseStrict(c.input);
      assert.equal(r.normalized, c.input, 'String() round-trips the input');
      assert.equal(String(r), c.input);
      assert.equal(r.name, c.name);
      assert.equal(r.domain, c.domain ?? '');
      assert.equal(r.tag, c.tag);
      assert.equal(r.digest, c.digest);
    });
  }
});

describe('name grammar: TestFullNameRegexp', () => {
  for (const [input, want] of NAME_CASES) {
    test(JSON.stringify(short(input)), () => {
      const m = matchName(input);
      assert.deepEqual(m === undefined ? null : [m.domain, m.path], want);
    });
  }
});

describe('domain grammar: TestDomainRegexp', () => {
  for (const [input, want] of DOMAIN_CASES) {
    test(JSON.stringify(input), () => assert.equal(isDomainAndPort(input), want));
  }
});

describe('ParseNormalizedNamed: TestValidateReferenceName / TestValidateRemoteName', () => {
  for (const input of NORMALIZED_VALID) {
    test(`valid ${JSON.stringify(input)}`, () => {
      const r = parseReference(input);
      assert.equal(parseReference(r.normalized).normalized, r.normalized);
    });
  }
  for (const [input, code] of NORMALIZED_INVALID) {
    test(`invalid ${JSON.stringify(short(input))} → ${code}`, () => {
      assert.equal(
        codeOf(() => parseReference(input)),
        code,
      );
      const t = tryParseReference(input);
      assert.equal(t.ok, false);
      if (!t.ok) assert.equal(t.error.code, code);
    });
  }
});

describe('familiar and full names: TestParseRepositoryInfo', () => {
  for (const c of REPOSITORY_INFO) {
    for (const spelling of [c.familiar, c.full, c.ambiguous].filter((s) => s !== '')) {
      test(`${spelling} → ${c.full}`, () => {
        const r = parseReference(spelling);
        assert.equal(r.familiar, c.familiar);
        assert.equal(familiarName(r), c.familiar);
        assert.equal(familiarName(spelling), c.familiar);
        assert.equal(r.normalized, c.full);
        assert.equal(r.name, c.full);
        assert.equal(r.domain, c.domain);
        assert.equal(r.path, c.remote);
      });
    }
  }
});

test('TestParseReferenceWithTagAndDigest: both kept, familiar string is the short input', () => {
  const short = 'busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa';
  const r = parseReference(short);
  assert.equal(r.normalized, `docker.io/library/${short}`);
  assert.equal(r.tag, 'latest');
  assert.equal(r.digest, 'sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa');
  assert.equal(r.familiarString, short);
});

describe('TestNormalizedSplitHostname', () => {
  for (const [input, domain, path] of NORMALIZED_SPLIT) {
    test(input, () => {
      const r = parseReference(input);
      assert.equal(r.domain, domain);
      assert.equal(r.path, path);
    });
  }
});

describe('ParseNamed: TestParseNamed', () => {
  for (const [input, want] of PARSE_NAMED) {
    test(input, () => {
      if (typeof want === 'string') {
        assert.equal(
          codeOf(() => parseNamed(input)),
          want,
        );
        return;
      }
      const r = parseNamed(input);
      assert.deepEqual([r.domain, r.path], want);
    });
  }
  test('the NAME_NOT_CANONICAL message says what to write instead', () => {
    const e = errorOf(() => parseNamed('foo'));
    assert.match(
      e.message,
      /^repository name must be canonical: "foo"; write it fully qualified as "docker\.io\/library\/foo"$/,
    );
  });
});

describe('ParseAnyReference: TestParseAnyReference', () => {
  for (const c of ANY_REFERENCE) {
    test(c.input, () => {
      const r = parseAnyReference(c.input);
      assert.equal(String(r), c.equivalent);
      assert.equal(r.kind, c.digest ? 'digest' : 'named');
    });
  }
});

describe('ParseDockerRef: TestParseDockerRef (what containerd pulls)', () => {
  for (const [input, want] of DOCKER_REF) {
    test(input, () => {
      const r = parseDockerRef(input);
      assert.equal(r.normalized, want);
      assert.equal(parseReference(input).pullRef, want);
      assert.equal(parseStrict(r.normalized).normalized, want, 'the result is itself a valid reference');
    });
  }
});

describe('go-digest TestParseDigest', () => {
  for (const [input, want] of DIGEST_CASES) {
    test(JSON.stringify(input), () => {
      if (typeof want === 'string') {
        assert.equal(
          codeOf(() => parseDigest(input)),
          want,
        );
        assert.equal(isDigest(input), false);
        return;
      }
      const d = parseDigest(input);
      assert.deepEqual([d.algorithm, d.encoded, d.digest], [...want, input]);
      assert.equal(isDigest(input), true);
    });
  }
  test('isDigest never throws on non-strings', () => {
    for (const v of [undefined, null, 1, {}, []]) assert.equal(isDigest(v), false);
  });
});

describe('kubernetes TestParseImageName', () => {
  for (const [input, want] of IMAGE_NAME_CASES) {
    test(input, () => {
      if (typeof want === 'string') {
        const e = errorOf(() => parseImageName(input));
        assert.ok(e.message.includes(want), e.message);
        assert.ok(e.message.startsWith(`couldn't parse image name ${JSON.stringify(input)}: `), e.message);
        return;
      }
      const r = parseImageName(input);
      assert.deepEqual([r.repo, r.tag ?? '', r.digest ?? ''], want);
    });
  }
});

describe('kubelet applyDefaultImageTag', () => {
  test('appends :latest to the ORIGINAL string, never the normalized one', () => {
    assert.equal(applyDefaultTag('busybox'), 'busybox:latest');
    assert.equal(applyDefaultTag('library/busybox'), 'library/busybox:latest');
    assert.equal(applyDefaultTag('index.docker.io/busybox'), 'index.docker.io/busybox:latest');
    assert.equal(applyDefaultTag('localhost:5000/a/b'), 'localhost:5000/a/b:latest');
    assert.equal(applyDefaultTag('[::1]:5000/a'), '[::1]:5000/a:latest');
  });
  test('tagged and digested images are unchanged', () => {
    assert.equal(applyDefaultTag('busybox:latest'), 'busybox:latest');
    assert.equal(applyDefaultTag('busybox:1.36'), 'busybox:1.36');
    assert.equal(applyDefaultTag(`busybox@${SHA_F}`), `busybox@${SHA_F}`);
    assert.equal(applyDefaultTag(`busybox:1.36@${SHA_F}`), `busybox:1.36@${SHA_F}`);
  });
  test('errors carry the kubelet text and the reference code', () => {
    const e = errorOf(() => applyDefaultTag('Busybox'));
    assert.equal(e.code, 'NAME_CONTAINS_UPPERCASE');
    assert.equal(
      e.message,
      `couldn't parse image name "Busybox": invalid reference format: repository name (library/Busybox) must be lowercase`,
    );
    assert.equal(e.details.input, 'Busybox');
    const e2 = errorOf(() => applyDefaultTag(''));
    assert.equal(e2.code, 'INVALID_REFERENCE_FORMAT');
    assert.equal(e2.message, `couldn't parse image name "": invalid reference format`);
  });
  test('isValidImageName', () => {
    assert.equal(isValidImageName('busybox'), true);
    assert.equal(isValidImageName('Busybox'), false);
    assert.equal(isValidImageName(42), false);
  });
});

describe('the seed page "Image names" examples', () => {
  for (const c of SEED_NAMES) {
    test(c.input, () => {
      const r = parseReference(c.input);
      assert.equal(applyDefaultTag(c.input), c.kubelet);
      assert.equal(r.name, c.name);
      assert.equal(r.canonical, c.canonical);
      assert.equal(r.pullRef, c.pull);
      assert.equal(parseDockerRef(c.input).normalized, c.pull);
    });
  }
  test('a tag and a digest together: only the digest is pulled', () => {
    const r = parseReference(`registry.k8s.io/pause:3.5@${PAUSE_DIGEST}`);
    assert.equal(r.tag, '3.5');
    assert.equal(r.digest, PAUSE_DIGEST);
    assert.equal(r.pullRef, `registry.k8s.io/pause@${PAUSE_DIGEST}`);
    assert.equal(parseDockerRef(`pause:3.5@${PAUSE_DIGEST}`).tag, undefined);
  });
  test('the tag regex from the page: up to 128 characters, mixed case allowed', () => {
    assert.equal(parseReference(`busybox:${'A_b.-'.repeat(25)}abc`).tag?.length, 128);
    assert.equal(
      codeOf(() => parseReference(`busybox:${'a'.repeat(129)}`)),
      'INVALID_REFERENCE_FORMAT',
    );
  });
});

describe('limits', () => {
  test('255 characters of path, counted without the domain', () => {
    const path255 = 'a'.repeat(255);
    assert.equal(parseReference(`registry.example/${path255}`).path, path255);
    assert.equal(parseReference(`${'d'.repeat(300)}.example/${path255}`).path, path255);
    assert.equal(
      codeOf(() => parseReference(`registry.example/${path255}b`)),
      'NAME_TOO_LONG',
    );
    // A single docker.io name gets `library/`, which counts: 247 is the most a bare name may have.
    assert.equal(parseReference('a'.repeat(247)).path.length, 255);
    assert.equal(
      codeOf(() => parseReference('a'.repeat(248))),
      'NAME_TOO_LONG',
    );
  });
  test('NAME_TOO_LONG message: upstream text, input and the count', () => {
    const e = errorOf(() => parseReference(`x.io/${'a'.repeat(256)}`));
    assert.ok(
      e.message.startsWith('repository name must not be more than 255 characters: "x.io/aaa'),
      e.message,
    );
    assert.match(e.message, /has 256 characters/);
  });
  test('64-hex repository names are rejected unless qualified', () => {
    const hex = 'a'.repeat(64);
    const e = errorOf(() => parseReference(hex));
    assert.equal(e.code, 'INVALID_REFERENCE_FORMAT');
    assert.ok(
      e.message.startsWith(`invalid repository name (${hex}), cannot specify 64-byte hexadecimal strings`),
    );
    assert.equal(parseReference(`docker.io/${hex}`).path, `library/${hex}`);
    assert.equal(parseReference(`library/${hex}`).path, `library/${hex}`);
    // Uppercase hex is not an identifier: it fails the lowercase rule instead.
    assert.equal(
      codeOf(() => parseReference('A'.repeat(64))),
      'NAME_CONTAINS_UPPERCASE',
    );
  });
});

describe('IPv6, localhost and ports', () => {
  const cases: [string, string, string][] = [
    ['[::1]/foo', '[::1]', 'foo'],
    ['[::1]:5000/foo:1', '[::1]:5000', 'foo'],
    ['[2001:db8::1]:443/a/b', '[2001:db8::1]:443', 'a/b'],
    ['[FC00::1]/x', '[FC00::1]', 'x'],
    ['localhost/foo', 'localhost', 'foo'],
    ['localhost:5000/foo', 'localhost:5000', 'foo'],
    ['127.0.0.1:5000/foo', '127.0.0.1:5000', 'foo'],
    ['registry:5000/foo', 'registry:5000', 'foo'],
    ['registry.example:10443/imagename', 'registry.example:10443', 'imagename'],
  ];
  for (const [input, domain, path] of cases) {
    test(input, () => {
      const r = parseReference(input);
      assert.equal(r.domain, domain);
      assert.equal(r.path, path);
      assert.equal(r.familiar, `${domain}/${path}`, 'a non-docker.io domain stays in the familiar name');
    });
  }
  for (const input of [
    '::1/foo',
    '[::1%lo]/foo',
    '[::1]:/foo',
    '[::1]:http/foo',
    'host:-1/foo',
    '[::1]',
    'localhost:5000',
  ]) {
    test(`${input} is not a reference with a host`, () => {
      const r = tryParseReference(input);
      if (r.ok) {
        // `localhost:5000` alone is the docker.io image "localhost" with tag "5000" (upstream FIXME).
        assert.equal(input, 'localhost:5000');
        assert.equal(r.reference.normalized, 'docker.io/library/localhost:5000');
      } else {
        assert.equal(r.error.code, 'INVALID_REFERENCE_FORMAT');
      }
    });
  }
});

describe('error messages start with the upstream sentinel text and name the input', () => {
  const cases: [string, ReferenceErrorCode, string][] = [
    [
      'Uppercase:tag',
      'NAME_CONTAINS_UPPERCASE',
      'invalid reference format: repository name (library/Uppercase) must be lowercase: "Uppercase:tag"; ',
    ],
    ['foo bar', 'INVALID_REFERENCE_FORMAT', 'invalid reference format: "foo bar"; '],
    ['', 'INVALID_REFERENCE_FORMAT', 'invalid reference format: ""; the reference is empty'],
    [
      'repo@sha256:abc',
      'INVALID_REFERENCE_FORMAT',
      'invalid reference format: "repo@sha256:abc"; the digest',
    ],
    [
      `repo@sha256:${'a'.repeat(40)}`,
      'DIGEST_INVALID_LENGTH',
      'invalid checksum digest length: "repo@sha256:aaaa',
    ],
    [
      `repo@sha256:${'A'.repeat(64)}`,
      'DIGEST_INVALID_FORMAT',
      'invalid checksum digest format: "repo@sha256:AAAA',
    ],
    [`repo@md5:${'a'.repeat(32)}`, 'DIGEST_UNSUPPORTED', 'unsupported digest algorithm: "repo@md5:aaaa'],
    [`repo:${'a'.repeat(129)}`, 'INVALID_REFERENCE_FORMAT', 'invalid reference format: "repo:aaaa'],
    ['foo:\u212a', 'NAME_CONTAINS_UPPERCASE', 'repository name must be lowercase: "foo:\u212a"'],
  ];
  for (const [input, code, prefix] of cases) {
    test(`${JSON.stringify(short(input))} → ${code}`, () => {
      const e = errorOf(() => parseReference(input));
      assert.equal(e.code, code);
      assert.ok(e.message.startsWith(prefix), e.message);
      assert.equal(e.details.input, input);
    });
  }
  test('parseStrict("") is NAME_EMPTY with upstream text', () => {
    const e = errorOf(() => parseStrict(''));
    assert.equal(e.code, 'NAME_EMPTY');
    assert.ok(e.message.startsWith('repository name must have at least one component: ""'));
  });
  test('a tag over 128 characters is diagnosed', () => {
    assert.match(
      errorOf(() => parseReference(`repo:${'a'.repeat(129)}`)).message,
      /the tag has 129 characters; a tag has at most 128/,
    );
  });
  test('messages escape control characters and cut long inputs', () => {
    const e = errorOf(() => parseReference(`A\u0000${'B'.repeat(5000)}`));
    assert.equal(e.code, 'NAME_CONTAINS_UPPERCASE');
    assert.ok(!e.message.includes('\u0000'));
    assert.ok(e.message.includes('\\u0000'));
    assert.ok(e.message.length < 1000, `message length ${e.message.length}`);
  });
});

describe('a configured default registry (containerd/CRI-O style)', () => {
  const opts = { defaultRegistry: 'registry.example:5000' };
  test('single names get the registry and no library/', () => {
    const r = parseReference('pause:3.10', opts);
    assert.equal(r.name, 'registry.example:5000/pause');
    assert.equal(r.familiar, 'pause');
    assert.equal(r.canonical, 'registry.example:5000/pause:3.10');
  });
  test('namespaced names without a host go to the registry too', () => {
    assert.equal(parseReference('team/app', opts).name, 'registry.example:5000/team/app');
  });
  test('explicit hosts are kept; explicit docker.io still gets library/', () => {
    assert.equal(parseReference('registry.k8s.io/pause', opts).name, 'registry.k8s.io/pause');
    const d = parseReference('docker.io/busybox', opts);
    assert.equal(d.name, 'docker.io/library/busybox');
    assert.equal(
      d.familiar,
      'docker.io/library/busybox',
      'familiar keeps docker.io when it is not the default',
    );
    assert.equal(parseReference(d.familiar, opts).name, d.name);
  });
  test('hosts that look like hosts are accepted: localhost, host:port, uppercase', () => {
    assert.equal(parseReference('x', { defaultRegistry: 'localhost' }).name, 'localhost/x');
    assert.equal(parseReference('x', { defaultRegistry: 'registry:5000' }).name, 'registry:5000/x');
    assert.equal(parseReference('x', { defaultRegistry: '[::1]:5000' }).name, '[::1]:5000/x');
    assert.equal(parseReference('x', { defaultRegistry: 'REG' }).name, 'REG/x');
  });
  test('index.docker.io as the default means docker.io', () => {
    assert.equal(
      parseReference('busybox', { defaultRegistry: 'index.docker.io' }).name,
      'docker.io/library/busybox',
    );
  });
  test('an invalid default registry is INVALID_ARGUMENT', () => {
    // `registry` alone is a valid host name but would not be taken as one when it leads a name.
    for (const bad of ['', 'bad host', 'https://x', '-x', 'registry']) {
      assert.equal(
        codeOf(() => parseReference('busybox', { defaultRegistry: bad })),
        'INVALID_ARGUMENT',
      );
    }
  });
  test('splitDomain follows the same rules', () => {
    assert.deepEqual(splitDomain('busybox'), { domain: 'docker.io', remainder: 'library/busybox' });
    assert.deepEqual(splitDomain('foo/bar:1'), { domain: 'docker.io', remainder: 'foo/bar:1' });
    assert.deepEqual(splitDomain('index.docker.io/foo'), { domain: 'docker.io', remainder: 'library/foo' });
    assert.deepEqual(splitDomain('busybox', opts), { domain: 'registry.example:5000', remainder: 'busybox' });
    assert.deepEqual(splitDomain('Foo/bar'), { domain: 'Foo', remainder: 'bar' });
  });
});

describe('formatReference (WithName / WithTag / WithDigest)', () => {
  test('formats and validates each part', () => {
    assert.equal(formatReference({ domain: 'test.com', path: 'foo', tag: 'tag' }), 'test.com/foo:tag');
    assert.equal(formatReference({ path: 'foo', tag: 'tag2' }), 'foo:tag2');
    assert.equal(
      formatReference({ domain: 'test.com:8000', path: 'foo', tag: 'TAG5' }),
      'test.com:8000/foo:TAG5',
    );
    assert.equal(
      formatReference({ domain: 'test.com:8000', path: 'foo', tag: 'latest', digest: SHA_F }),
      `test.com:8000/foo:latest@${SHA_F}`,
    );
    const r = parseReference(`pause:3.5@${PAUSE_DIGEST}`);
    assert.equal(formatReference(r), r.normalized);
  });
  test('errors: each part has its own code', () => {
    assert.equal(
      codeOf(() => formatReference({ path: 'foo', tag: '-foo' })),
      'TAG_INVALID_FORMAT',
    );
    assert.equal(
      codeOf(() => formatReference({ path: 'foo', digest: 'foo' })),
      'DIGEST_INVALID_FORMAT',
    );
    assert.equal(
      codeOf(() => formatReference({ path: 'foo', digest: 'sha256:1234567890098765432112345667890098765' })),
      'DIGEST_INVALID_LENGTH',
    );
    assert.equal(
      codeOf(() => formatReference({ path: 'Foo' })),
      'INVALID_REFERENCE_FORMAT',
    );
    assert.equal(
      codeOf(() => formatReference({ domain: 'bad host', path: 'foo' })),
      'INVALID_REFERENCE_FORMAT',
    );
    assert.equal(
      codeOf(() => formatReference({ domain: 'x.io', path: 'a'.repeat(256) })),
      'NAME_TOO_LONG',
    );
    assert.ok(
      errorOf(() => formatReference({ path: 'foo', tag: '-foo' })).message.startsWith(
        'invalid tag format: "-foo"',
      ),
    );
    assert.ok(
      errorOf(() => formatReference({ path: 'foo', digest: 'foo' })).message.startsWith(
        'invalid digest format: "foo"',
      ),
    );
  });
});

describe('hostile input: coded errors, quickly', () => {
  const ten = 10 * 1024 * 1024;
  const inputs: [string, string][] = [
    ['10 MB of a', 'a'.repeat(ten)],
    ['10 MB of A', 'A'.repeat(ten)],
    ['10 MB of /', '/'.repeat(ten)],
    ['10 MB of a/', 'a/'.repeat(ten / 2)],
    ['10 MB of a-', 'a-'.repeat(ten / 2) + '/a'],
    ['10 MB tag', 'a:' + 'b'.repeat(ten)],
    ['10 MB digest', 'a@sha256:' + 'a'.repeat(ten)],
    ['10 MB domain, uppercase path', 'a.'.repeat(ten / 2) + 'io/X'],
    ['10 MB of [', '['.repeat(ten)],
    ['10 MB of NUL', '\u0000'.repeat(ten)],
    ['10 MB of lone surrogates', '\ud800'.repeat(ten)],
    ['10 MB of emoji', '🐳'.repeat(ten / 2)],
    ['10 MB of :', ':'.repeat(ten)],
    ['10 MB of @', '@'.repeat(ten)],
  ];
  for (const [what, input] of inputs) {
    test(what, () => {
      const r = tryParseReference(input);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.ok(isKimgError(r.error));
        assert.ok(r.error.message.length < 2000, `message length ${r.error.message.length}`);
      }
      codeOf(() => parseStrict(input));
      codeOf(() => parseDigest(input));
      codeOf(() => applyDefaultTag(input));
    });
  }
  test('a 10 MB domain with a short path is valid, as upstream (no limit on domains)', () => {
    const domain = 'a.'.repeat(ten / 2) + 'io';
    assert.equal(parseReference(`${domain}/x`).path, 'x');
  });
  test('non-string input is INVALID_ARGUMENT, not a TypeError', () => {
    for (const v of [undefined, null, 42, {}, ['busybox']]) {
      assert.equal(
        codeOf(() => parseReference(v as unknown as string)),
        'INVALID_ARGUMENT',
      );
      assert.equal(
        codeOf(() => parseStrict(v as unknown as string)),
        'INVALID_ARGUMENT',
      );
    }
  });
});

test('Reference objects are frozen and serialize to plain data', () => {
  const r = parseReference('busybox:1.36');
  assert.ok(Object.isFrozen(r));
  assert.deepEqual(JSON.parse(JSON.stringify(r)), {
    name: 'docker.io/library/busybox',
    domain: 'docker.io',
    path: 'library/busybox',
    tag: '1.36',
    digest: null,
    familiar: 'busybox',
    canonical: 'docker.io/library/busybox:1.36',
  });
  assert.equal(`${r}`, 'docker.io/library/busybox:1.36');
});
