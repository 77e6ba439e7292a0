/**
 * Parsing and normalizing image references, following distribution/reference @ 0965666a (= v0.6.0):
 * `Parse` (`reference.go`), `ParseNormalizedNamed`, `ParseNamed`, `ParseAnyReference`, `ParseDockerRef`,
 * `splitDockerDomain` and `familiarizeName` (`normalize.go`), `FamiliarName` / `FamiliarString`
 * (`helpers.go`). Digests are validated like go-digest v1.0.0 (see `digest.ts`).
 *
 * A reference names an image in a registry: `[host[:port]/]path[:tag][@digest]`. Users write the short
 * "familiar" form (`busybox`, `bitnami/redis:7`); everything below the CLI works on the normalized form
 * (`docker.io/library/busybox`, `docker.io/bitnami/redis:7`). Normalization decides what the first
 * component is:
 *
 * - no `/` at all → the default registry; on docker.io the path gets `library/` (`busybox` →
 *   `docker.io/library/busybox`). This holds even for a bare `localhost` or `example.com` (upstream FIXME).
 * - first component `localhost`, or containing `.` or `:`, or containing uppercase → it is the registry.
 * - first component `index.docker.io` → `docker.io`.
 * - anything else → the default registry, and the whole input is the path (`bitnami/redis`).
 *
 * Configured default registry (`defaultRegistry`, containerd/CRI-O style "unqualified-search registry"
 * with one entry): a name whose first component is not a host goes to that registry instead of docker.io,
 * with no `library/` prefix — `library/` is a Docker Hub convention, applied only when the registry is
 * docker.io (also when the user writes `docker.io/busybox` explicitly). The familiar form drops the
 * domain only when it is the configured default registry, so familiar names re-parse to the same name
 * under the same options. With the default (`docker.io`) everything is exactly upstream.
 *
 * Known upstream ambiguity, kept on purpose: `docker.io/a.b/c` has the familiar name `a.b/c`, which parses
 * back as registry `a.b` (the same holds for a first path component `localhost`).
 */
import { KimgError, quote } from '../errors/index.js';
import { type ParsedDigest, validateDigest } from './digest.js';
import {
  type Failure,
  type ReferenceErrorCode,
  failure,
  failureError,
  isFailure,
  printable,
} from './failure.js';
import {
  MAX_PATH_LENGTH,
  MAX_TAG_LENGTH,
  asciiLowerForMatch,
  isDigestSyntax,
  isDomainAndPort,
  isIdentifier,
  isRemoteName,
  isTag,
  matchName,
  matchReference,
} from './grammar.js';

/** Docker Hub's registry name in normalized references (`defaultDomain`). */
export const DEFAULT_REGISTRY = 'docker.io';
/** The legacy Docker Hub name, rewritten to `docker.io` when it is the first component. */
export const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
/** The namespace of Docker Hub's official images (`officialRepoPrefix`). */
export const OFFICIAL_REPO_PREFIX = 'library/';
/** The tag assumed when a reference has neither tag nor digest (`defaultTag`). */
export const DEFAULT_TAG = 'latest';

/** Options of the normalizing parsers. */
export interface ParseOptions {
  /**
   * Registry for names without one. Default `docker.io` (upstream behaviour, `library/` for single
   * component names). Must be `host[:port]` and look like a host (contain `.` or `:`, or be
   * `localhost`); `index.docker.io` means `docker.io`. Any other value gives
   * containerd/CRI-O style resolution: `pause` → `<registry>/pause`, no `library/`.
   */
  defaultRegistry?: string;
}

/** The defaults of `ParseOptions`, in one place. */
export const DEFAULT_PARSE_OPTIONS: Readonly<Required<ParseOptions>> = Object.freeze({
  defaultRegistry: DEFAULT_REGISTRY,
});

/** A parsed image reference (a repository name with an optional tag and digest). Immutable. */
export interface Reference {
  readonly kind: 'named';
  /**
   * Registry host and optional port (`docker.io`, `registry.k8s.io`, `[::1]:5000`). '' from `parseStrict`
   * for host-less names, and (as upstream) from normalization when the first component contains `.` or `:`
   * but is not a valid host (`foo_bar.com/x` is all path).
   */
  readonly domain: string;
  /** Repository path inside the registry (`library/busybox`). */
  readonly path: string;
  /** `domain/path`, the fully qualified repository name (upstream `Name()`); `path` when domain is ''. */
  readonly name: string;
  /** The tag the input gave, if any. */
  readonly tag?: string;
  /** The digest the input gave, if any (validated `algorithm:hex`). */
  readonly digest?: string;
  /** The familiar name: `name` without `docker.io/`, and without `library/` when nothing nests below it. */
  readonly familiar: string;
  /** `familiar[:tag][@digest]` (upstream `FamiliarString`). */
  readonly familiarString: string;
  /** `name[:tag][@digest]` exactly as given after normalization (upstream `String()`); no default tag. */
  readonly normalized: string;
  /** `name:tag` (or `name:latest` when there is neither tag nor digest), then `@digest` when present. */
  readonly canonical: string;
  /**
   * What a runtime pulls (upstream `ParseDockerRef`, containerd CRI): `name@digest` when there is a digest
   * (a tag next to it is ignored), else `name:tag`, else `name:latest`.
   */
  readonly pullRef: string;
  /** `normalized`. */
  toString(): string;
  /** Plain data for JSON: `{name, domain, path, tag, digest, familiar, canonical}` (absent tag/digest: null). */
  toJSON(): Record<string, string | null>;
}

/** A bare digest or 64-hex image ID, as `parseAnyReference` returns it. */
export interface DigestReference {
  readonly kind: 'digest';
  /** `sha256:<hex>` etc. */
  readonly digest: string;
  readonly algorithm: ParsedDigest['algorithm'];
  readonly encoded: string;
  /** The digest. */
  toString(): string;
}

/** The pieces of a reference to format; a `Reference` is accepted as is. */
export interface ReferenceParts {
  /** Registry host[:port]; omitted or '' for none. */
  domain?: string;
  path: string;
  tag?: string;
  digest?: string;
}

/** Result of the non-throwing parsers. */
export type ParseResult =
  { ok: true; reference: Reference } | { ok: false; error: KimgError<ReferenceErrorCode> };

class NamedReference implements Reference {
  readonly kind = 'named' as const;
  readonly domain: string;
  readonly path: string;
  readonly name: string;
  readonly tag?: string;
  readonly digest?: string;
  readonly familiar: string;
  readonly familiarString: string;
  readonly normalized: string;
  readonly canonical: string;
  readonly pullRef: string;

  constructor(
    domain: string,
    path: string,
    tag: string | undefined,
    digest: string | undefined,
    registry: string,
  ) {
    this.domain = domain;
    this.path = path;
    this.name = domain === '' ? path : `${domain}/${path}`;
    if (tag !== undefined) this.tag = tag;
    if (digest !== undefined) this.digest = digest;
    const suffix = (tag === undefined ? '' : `:${tag}`) + (digest === undefined ? '' : `@${digest}`);
    this.familiar = familiarize(domain, path, registry);
    this.familiarString = this.familiar + suffix;
    this.normalized = this.name + suffix;
    this.canonical =
      tag === undefined && digest === undefined ? `${this.name}:${DEFAULT_TAG}` : this.normalized;
    this.pullRef = digest !== undefined ? `${this.name}@${digest}` : `${this.name}:${tag ?? DEFAULT_TAG}`;
    Object.freeze(this);
  }

  toString(): string {
    return this.normalized;
  }

  /** Plain data (no methods) for JSON output. */
  toJSON(): Record<string, string | null> {
    return {
      name: this.name,
      domain: this.domain,
      path: this.path,
      tag: this.tag ?? null,
      digest: this.digest ?? null,
      familiar: this.familiar,
      canonical: this.canonical,
    };
  }
}

/** upstream `familiarizeName`, generalized to the configured default registry (see the header). */
function familiarize(domain: string, path: string, registry: string): string {
  if (domain === '') return path;
  if (domain !== registry) return `${domain}/${path}`;
  if (registry === DEFAULT_REGISTRY && path.startsWith(OFFICIAL_REPO_PREFIX)) {
    const rest = path.slice(OFFICIAL_REPO_PREFIX.length);
    if (!rest.includes('/')) return rest;
  }
  return path;
}

// ---------------------------------------------------------------------------------------------------
// Parse (non-normalizing)

interface StrictPieces {
  domain: string;
  path: string;
  tag: string | undefined;
  digest: string | undefined;
}

/** upstream `Parse`: never throws, returns the pieces or a failure. */
function parsePieces(s: string): StrictPieces | Failure {
  if (s === '') {
    return failure(
      'NAME_EMPTY',
      'repository name must have at least one component',
      'the reference is empty: give an image name such as "busybox" or "registry.k8s.io/pause:3.10"',
    );
  }
  const m = matchReference(s);
  if (m === undefined) {
    const lower = asciiLowerForMatch(s);
    if (lower !== undefined && lower !== s && matchReference(lower) !== undefined) {
      return failure(
        'NAME_CONTAINS_UPPERCASE',
        'repository name must be lowercase',
        'repository paths are lowercase; only the registry host and the tag may contain uppercase letters',
      );
    }
    return failure('INVALID_REFERENCE_FORMAT', 'invalid reference format', diagnose(s));
  }
  if (m.path.length > MAX_PATH_LENGTH) {
    return failure(
      'NAME_TOO_LONG',
      `repository name must not be more than ${MAX_PATH_LENGTH} characters`,
      `the repository path has ${m.path.length} characters; the limit counts the path without the registry host`,
    );
  }
  if (m.digest !== undefined) {
    const d = validateDigest(m.digest);
    if (isFailure(d)) return d;
  }
  return m;
}

/** Says which part of a reference that failed the grammar is wrong (failure path only). */
function diagnose(s: string): string {
  const atSign = s.indexOf('@');
  const nameEnd = atSign < 0 ? s.length : atSign;
  if (atSign >= 0 && !isDigestSyntax(s, atSign + 1, s.length)) {
    return 'the digest after "@" must be algorithm:hex with at least 32 hex characters, for example sha256:<64 hex>';
  }
  const lastSlash = s.lastIndexOf('/', nameEnd - 1);
  const colon = s.indexOf(':', lastSlash + 1);
  let repoEnd = nameEnd;
  if (colon >= 0 && colon < nameEnd) {
    const tagLength = nameEnd - colon - 1;
    if (tagLength > MAX_TAG_LENGTH) {
      return `the tag has ${tagLength} characters; a tag has at most ${MAX_TAG_LENGTH}`;
    }
    if (!isTag(s, colon + 1, nameEnd)) {
      return 'the tag after ":" must be [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
    }
    repoEnd = colon;
  }
  if (repoEnd === 0) return 'the repository name before the tag or digest is missing';
  return (
    'the name must be [host[:port]/]path: path components of lowercase [a-z0-9] joined by ".", "_", "__" ' +
    'or "-", separated by "/"; a host of letters, digits, "-" and ".", or an IPv6 address in brackets'
  );
}

// ---------------------------------------------------------------------------------------------------
// Normalization

/** Validates and normalizes `defaultRegistry`. */
function registryOf(opts: ParseOptions | undefined): string {
  const r = opts?.defaultRegistry;
  if (r === undefined || r === DEFAULT_REGISTRY) return DEFAULT_REGISTRY;
  // The registry must also be recognizable as a host when it leads a name (see splitDockerDomain), or
  // the normalized names under it would not parse back to themselves: `reg/x` would become `reg/reg/x`.
  if (typeof r !== 'string' || !isDomainAndPort(r) || !takenAsDomain(r)) {
    throw new KimgError(
      'INVALID_ARGUMENT',
      `invalid default registry ${quote(String(r))}: expected host[:port] containing "." or ":" (or localhost), ` +
        'such as docker.io, registry.example or registry:5000',
      { input: String(r) },
    );
  }
  return r === LEGACY_DEFAULT_REGISTRY ? DEFAULT_REGISTRY : r;
}

/** Whether `splitDockerDomain` takes `first` (a first `/` component) as the registry. */
function takenAsDomain(first: string): boolean {
  return first === 'localhost' || first.includes('.') || first.includes(':') || first.toLowerCase() !== first;
}

/**
 * upstream `splitDockerDomain`: splits a (tagged, digested) name into its registry and the rest, filling
 * in the default registry and Docker Hub's `library/`. The input is not validated.
 */
function splitDockerDomain(name: string, registry: string): { domain: string; remainder: string } {
  const slash = name.indexOf('/');
  if (slash < 0) {
    return {
      domain: registry,
      remainder: registry === DEFAULT_REGISTRY ? OFFICIAL_REPO_PREFIX + name : name,
    };
  }
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let domain: string;
  let remainder: string;
  if (first === LEGACY_DEFAULT_REGISTRY) {
    [domain, remainder] = [DEFAULT_REGISTRY, rest];
  } else if (takenAsDomain(first)) {
    // localhost; contains "." or ":" (a host name, IP address or host:port); or not lowercase (paths are).
    [domain, remainder] = [first, rest];
  } else {
    [domain, remainder] = [registry, name];
  }
  if (domain === DEFAULT_REGISTRY && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/** upstream `ParseNormalizedNamed`: never throws (except for bad options), returns a Reference or a failure. */
function parseNormalized(s: string, registry: string): NamedReference | Failure {
  if (s === '') {
    // Upstream parses "docker.io/library/" here and fails with ErrReferenceInvalidFormat (not ErrNameEmpty,
    // which only the non-normalizing Parse returns); same code and text, a clearer hint.
    return failure(
      'INVALID_REFERENCE_FORMAT',
      'invalid reference format',
      'the reference is empty: give an image name such as "busybox" or "registry.k8s.io/pause:3.10"',
    );
  }
  if (isIdentifier(s)) {
    return failure(
      'INVALID_REFERENCE_FORMAT',
      `invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`,
      'a bare 64-hex string is an image ID, not a repository: qualify the name (docker.io/<name>) or use sha256:<hex>',
    );
  }
  const { domain, remainder } = splitDockerDomain(s, registry);
  const colon = remainder.indexOf(':');
  const remote = colon < 0 ? remainder : remainder.slice(0, colon);
  if (remote.toLowerCase() !== remote) {
    return failure(
      'NAME_CONTAINS_UPPERCASE',
      `invalid reference format: repository name (${printable(remote)}) must be lowercase`,
      'repository paths are lowercase; only the registry host and the tag may contain uppercase letters',
    );
  }
  const p = parsePieces(`${domain}/${remainder}`);
  if (isFailure(p)) return p;
  return new NamedReference(p.domain, p.path, p.tag, p.digest, registry);
}

function checkInput(input: unknown): asserts input is string {
  if (typeof input !== 'string') {
    throw new KimgError('INVALID_ARGUMENT', `an image reference must be a string, got ${typeof input}`);
  }
}

/** Internal (not re-exported by index.ts): `ParseNormalizedNamed` returning the failure value. */
export function parseNormalizedResult(input: string, opts?: ParseOptions): Reference | Failure {
  checkInput(input);
  return parseNormalized(input, registryOf(opts));
}

// ---------------------------------------------------------------------------------------------------
// Public API

/**
 * Parses and normalizes an image reference like upstream `ParseNormalizedNamed` (what the kubelet and
 * containerd use): `busybox` → domain `docker.io`, path `library/busybox`.
 *
 * @throws KimgError `NAME_EMPTY` (''), `INVALID_REFERENCE_FORMAT` (grammar, or a bare 64-hex string),
 *   `NAME_CONTAINS_UPPERCASE`, `NAME_TOO_LONG` (path over 255), `DIGEST_INVALID_FORMAT`,
 *   `DIGEST_INVALID_LENGTH`, `DIGEST_UNSUPPORTED`; `INVALID_ARGUMENT` for a bad `defaultRegistry`.
 *   Messages start with upstream's exact error text, then the quoted input and a hint.
 */
export function parseReference(input: string, opts?: ParseOptions): Reference {
  checkInput(input);
  const r = parseNormalized(input, registryOf(opts));
  if (isFailure(r)) throw failureError(r, input);
  return r;
}

/**
 * `parseReference` without exceptions for invalid input (batch use). Still throws `INVALID_ARGUMENT` for
 * a bad `defaultRegistry`, which is the caller's bug rather than the input's.
 */
export function tryParseReference(input: string, opts?: ParseOptions): ParseResult {
  checkInput(input);
  const r = parseNormalized(input, registryOf(opts));
  if (isFailure(r)) return { ok: false, error: failureError(r, input) };
  return { ok: true, reference: r };
}

/**
 * Parses without normalizing, like upstream `Parse`: `busybox` has domain '' and path `busybox`;
 * `a/b` has domain `a` (the grammar takes any valid host as the domain). `familiar` follows docker.io.
 *
 * @throws KimgError the codes of `parseReference` except the 64-hex rule and the normalized-form
 *   lowercase check (which here is `repository name must be lowercase`).
 */
export function parseStrict(input: string): Reference {
  checkInput(input);
  const p = parsePieces(input);
  if (isFailure(p)) throw failureError(p, input);
  return new NamedReference(p.domain, p.path, p.tag, p.digest, DEFAULT_REGISTRY);
}

/**
 * Parses a reference that must already be in normalized form, like upstream `ParseNamed`:
 * `docker.io/library/busybox` is accepted, `busybox` and `docker.io/busybox` are not.
 *
 * @throws KimgError `NAME_NOT_CANONICAL` when normalizing changes the string; else as `parseReference`.
 */
export function parseNamed(input: string, opts?: ParseOptions): Reference {
  const r = parseReference(input, opts);
  if (r.normalized !== input) {
    throw failureError(
      failure(
        'NAME_NOT_CANONICAL',
        'repository name must be canonical',
        `write it fully qualified as ${quote(r.normalized)}`,
      ),
      input,
    );
  }
  return r;
}

/**
 * Parses a reference that may also be an image ID, like upstream `ParseAnyReference`: 64 lowercase hex
 * characters become the digest `sha256:<hex>`, a valid digest string stays a digest, anything else is
 * parsed with `parseReference`.
 *
 * @throws KimgError as `parseReference`.
 */
export function parseAnyReference(input: string, opts?: ParseOptions): Reference | DigestReference {
  checkInput(input);
  const d = validateDigest(isIdentifier(input) ? `sha256:${input}` : input);
  if (!isFailure(d)) {
    return Object.freeze({
      kind: 'digest' as const,
      digest: d.digest,
      algorithm: d.algorithm,
      encoded: d.encoded,
      toString: () => d.digest,
    });
  }
  return parseReference(input, opts);
}

/**
 * upstream `ParseDockerRef` (containerd CRI's normalization of what to pull): normalizes, then drops the
 * tag when a digest is present, or adds `latest` when neither is. `.normalized` of the result is the
 * string containerd resolves (same as `parseReference(input).pullRef`).
 *
 * @throws KimgError as `parseReference`.
 */
export function parseDockerRef(input: string, opts?: ParseOptions): Reference {
  const registry = registryOf(opts);
  const r = parseReference(input, opts);
  if (r.digest !== undefined) {
    return r.tag === undefined ? r : new NamedReference(r.domain, r.path, undefined, r.digest, registry);
  }
  return r.tag !== undefined ? r : new NamedReference(r.domain, r.path, DEFAULT_TAG, undefined, registry);
}

/**
 * Splits a name into registry and remainder the way normalization does (upstream `splitDockerDomain`):
 * `busybox` → {`docker.io`, `library/busybox`}; `foo/bar:1` → {`docker.io`, `foo/bar:1`};
 * `localhost:5000/x` → {`localhost:5000`, `x`}. A tag or digest stays in `remainder`. Does not validate;
 * use `parseReference` for that.
 *
 * @throws KimgError `INVALID_ARGUMENT` for a bad `defaultRegistry`.
 */
export function splitDomain(name: string, opts?: ParseOptions): { domain: string; remainder: string } {
  checkInput(name);
  return splitDockerDomain(name, registryOf(opts));
}

/**
 * The familiar name (upstream `FamiliarName`): `docker.io/library/busybox` → `busybox`,
 * `docker.io/bitnami/redis` → `bitnami/redis`, `registry.k8s.io/pause` → `registry.k8s.io/pause`. A
 * string is parsed with `parseReference` first (so its tag and digest are dropped).
 *
 * @throws KimgError as `parseReference` when given an invalid string.
 */
export function familiarName(ref: Reference | string, opts?: ParseOptions): string {
  return typeof ref === 'string' ? parseReference(ref, opts).familiar : ref.familiar;
}

/**
 * Formats reference parts as `[domain/]path[:tag][@digest]`, validating each part the way upstream
 * `WithName`, `WithTag` and `WithDigest` do, plus the digest checks of go-digest, so the result always
 * parses back (with `parseStrict`) to the same string.
 *
 * @throws KimgError `INVALID_REFERENCE_FORMAT` (domain or path outside the grammar), `NAME_TOO_LONG`,
 *   `TAG_INVALID_FORMAT`, `DIGEST_INVALID_FORMAT`, `DIGEST_INVALID_LENGTH`, `DIGEST_UNSUPPORTED`.
 */
export function formatReference(parts: ReferenceParts | Reference): string {
  const domain = parts.domain ?? '';
  const name = domain === '' ? parts.path : `${domain}/${parts.path}`;
  if (typeof parts.path !== 'string' || (domain !== '' && !isDomainAndPort(domain))) {
    throw failureError(
      failure('INVALID_REFERENCE_FORMAT', 'invalid reference format', 'the domain must be host[:port]'),
      String(name),
    );
  }
  const m = matchName(name);
  if (m === undefined || !isRemoteName(parts.path)) {
    throw failureError(
      failure(
        'INVALID_REFERENCE_FORMAT',
        'invalid reference format',
        'the path must be lowercase [a-z0-9] components',
      ),
      name,
    );
  }
  if (m.path.length > MAX_PATH_LENGTH) {
    throw failureError(
      failure(
        'NAME_TOO_LONG',
        `repository name must not be more than ${MAX_PATH_LENGTH} characters`,
        `the repository path has ${m.path.length} characters`,
      ),
      name,
    );
  }
  let out = name;
  if (parts.tag !== undefined) {
    if (!isTag(parts.tag)) {
      throw failureError(
        failure('TAG_INVALID_FORMAT', 'invalid tag format', 'a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}'),
        parts.tag,
      );
    }
    out += `:${parts.tag}`;
  }
  if (parts.digest !== undefined) {
    if (!isDigestSyntax(parts.digest)) {
      throw failureError(
        failure(
          'DIGEST_INVALID_FORMAT',
          'invalid digest format',
          'a digest is algorithm:hex, for example sha256:<64 hex>',
        ),
        parts.digest,
      );
    }
    const d = validateDigest(parts.digest);
    if (isFailure(d)) throw failureError(d, parts.digest);
    out += `@${parts.digest}`;
  }
  return out;
}

/**
 * Validates a digest like go-digest v1.0.0 `Parse` with sha256 (64 hex), sha384 (96) and sha512 (128).
 *
 * @throws KimgError `DIGEST_INVALID_FORMAT` (`invalid checksum digest format`), `DIGEST_INVALID_LENGTH`,
 *   `DIGEST_UNSUPPORTED`.
 */
export function parseDigest(input: string): ParsedDigest {
  checkInput(input);
  const d = validateDigest(input);
  if (isFailure(d)) throw failureError(d, input);
  return d;
}

/** True when `input` is a valid digest (see `parseDigest`). Never throws. */
export function isDigest(input: unknown): input is string {
  return typeof input === 'string' && !isFailure(validateDigest(input));
}
