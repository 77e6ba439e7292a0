/**
 * The table of every error code kimg raises. One row per code: the module that owns it and a one-line
 * summary for `docs/errors.md` (generated from this table by `npm run docs:errors`).
 *
 * Codes are stable API: callers branch on them (`isKimgError(e, 'NOT_FOUND')`), the faces translate
 * them (CLI → exit status in `src/cli/exit-codes.ts`, CRI → gRPC status, manager → event reason).
 * Never rename a code; add a new one.
 */
export const ERROR_CODES = {
  // --- reference: mirror distribution/reference and go-digest sentinels one to one -------------
  INVALID_REFERENCE_FORMAT: {
    module: 'reference',
    summary:
      'The image reference does not match the reference grammar (distribution/reference ErrReferenceInvalidFormat).',
  },
  TAG_INVALID_FORMAT: {
    module: 'reference',
    summary: 'The tag does not match `[\\w][\\w.-]{0,127}` (ErrTagInvalidFormat).',
  },
  DIGEST_INVALID_FORMAT: {
    module: 'reference',
    summary: 'The digest is not `algorithm:encoded` with lowercase hex (ErrDigestInvalidFormat).',
  },
  DIGEST_INVALID_LENGTH: {
    module: 'reference',
    summary:
      "The digest's encoded part has the wrong length for its algorithm (go-digest ErrDigestInvalidLength).",
  },
  DIGEST_UNSUPPORTED: {
    module: 'reference',
    summary:
      'The digest algorithm is well formed but not supported: only sha256, sha384, sha512 (go-digest ErrDigestUnsupported).',
  },
  NAME_CONTAINS_UPPERCASE: {
    module: 'reference',
    summary: 'The repository path contains uppercase letters (ErrNameContainsUppercase).',
  },
  NAME_EMPTY: { module: 'reference', summary: 'The repository name is empty (ErrNameEmpty).' },
  NAME_TOO_LONG: {
    module: 'reference',
    summary: 'The repository path is longer than 255 characters (ErrNameTooLong).',
  },
  NAME_NOT_CANONICAL: {
    module: 'reference',
    summary: 'The name is not in canonical form where one was required (ErrNameNotCanonical).',
  },

  // --- platform -------------------------------------------------------------------------------
  PLATFORM_INVALID: {
    module: 'platform',
    summary: 'A platform specifier (`os/arch[/variant]`) could not be parsed.',
  },
  PLATFORM_NOT_FOUND: {
    module: 'platform',
    summary:
      'No entry of an image index matches the requested platform; the message lists what the index offers.',
  },

  // --- registry (OCI distribution client) -------------------------------------------------------
  REGISTRY_UNAVAILABLE: {
    module: 'registry',
    summary: 'The registry host could not be reached (DNS, refused, reset, timeout) or kept answering 5xx.',
  },
  TLS_ERROR: {
    module: 'registry',
    summary: 'The TLS handshake with the registry failed (unknown CA, bad certificate, protocol mismatch).',
  },
  UNAUTHORIZED: {
    module: 'registry',
    summary: 'The registry accepted none of the credentials offered (HTTP 401).',
  },
  TOKEN_REFUSED: {
    module: 'registry',
    summary: 'The token endpoint named by the registry refused the credentials.',
  },
  DENIED: {
    module: 'registry',
    summary: 'The credentials are valid but lack access to the requested scope (HTTP 403 / DENIED).',
  },
  NOT_FOUND: {
    module: 'registry',
    summary: 'The registry says the repository, tag, manifest or blob does not exist.',
  },
  TOO_MANY_REQUESTS: {
    module: 'registry',
    summary: 'The registry rate-limited the request (HTTP 429); carries Retry-After.',
  },
  DIGEST_MISMATCH: {
    module: 'registry',
    summary: 'Content did not hash to the expected digest; carries expected and actual.',
  },
  SIZE_MISMATCH: {
    module: 'registry',
    summary: 'Content length differs from the descriptor size; carries expected and actual.',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    module: 'registry',
    summary: 'A manifest or descriptor has a media type kimg does not handle; names the type.',
  },
  MANIFEST_TOO_LARGE: {
    module: 'registry',
    summary: "A manifest or index exceeds the 4,393,216-byte cap (containerd's 4*1048*1048).",
  },
  MANIFEST_INVALID: {
    module: 'registry',
    summary: 'A manifest or index is not valid JSON of the expected shape.',
  },
  REGISTRY_PROTOCOL_ERROR: {
    module: 'registry',
    summary: 'The registry (or token server) answered in a way the distribution spec does not allow.',
  },
  REGISTRY_ERROR: {
    module: 'registry',
    summary:
      "The registry answered with an unexpected HTTP status; carries status and the registry's errors[].",
  },
  STALLED: {
    module: 'registry',
    summary: 'No bytes arrived for the stall window; names the bytes received and the host.',
  },
  ABORTED: { module: 'registry', summary: 'The operation was cancelled through its AbortSignal.' },
  HOSTS_CONFIG_INVALID: {
    module: 'registry',
    summary: 'A containerd-style hosts.toml file could not be parsed or has invalid values.',
  },

  // --- store ------------------------------------------------------------------------------------
  STORE_CORRUPT: {
    module: 'store',
    summary: 'A store file (index.json, record, blob) is unreadable or fails verification; names the file.',
  },
  STORE_LOCKED: {
    module: 'store',
    summary: 'A store lock is held by another holder; says by whom and since when.',
  },
  STORE_IO: {
    module: 'store',
    summary: 'A filesystem operation on the store failed (permissions, disk full).',
  },
  IMAGE_NOT_PRESENT: { module: 'store', summary: 'The image is not present in the local store.' },
  LAYOUT_INVALID: { module: 'store', summary: 'An OCI image layout given to load/save is not valid.' },
  BLOB_NOT_FOUND: {
    module: 'store',
    summary: 'A blob (manifest, config, layer) is not in the local content store; names the digest.',
  },
  STORE_VERSION_UNSUPPORTED: {
    module: 'store',
    summary:
      'The store root was written by a newer kimg (on-disk format version too new); names the file and versions.',
  },

  // --- credentials --------------------------------------------------------------------------------
  DOCKER_CONFIG_INVALID: {
    module: 'credentials',
    summary: 'A docker config.json / .dockercfg file is invalid; names the file and key, never the secret.',
  },
  SECRET_INVALID: {
    module: 'credentials',
    summary: 'A Kubernetes Secret cannot be used as a pull secret (type, key, namespace, encoding).',
  },
  SECRET_NOT_FOUND: {
    module: 'credentials',
    summary: 'A Secret or ServiceAccount named by a pod was not found.',
  },
  CREDENTIAL_PROVIDER_CONFIG_INVALID: {
    module: 'credentials',
    summary: 'A CredentialProviderConfig file fails validation.',
  },
  CREDENTIAL_PROVIDER_FAILED: {
    module: 'credentials',
    summary:
      'An exec credential provider plugin failed, timed out or answered invalid JSON; names the plugin.',
  },
  NO_CREDENTIALS_ACCEPTED: {
    module: 'credentials',
    summary: 'Every matching credential was tried and refused; names the keys tried.',
  },

  // --- manager (kubelet image manager) -----------------------------------------------------------
  ERR_IMAGE_NEVER_PULL: {
    module: 'manager',
    summary: 'The image is not present (or not verified) and the pull policy is Never.',
  },
  IMAGE_PULL_BACKOFF: {
    module: 'manager',
    summary: 'A previous pull of this image for this pod failed and the back-off window has not passed.',
  },
  INVALID_IMAGE_NAME: { module: 'manager', summary: 'The container image string could not be parsed.' },
  IMAGE_INSPECT_ERROR: {
    module: 'manager',
    summary: 'The image service failed to report whether the image is present.',
  },
  CREDENTIALS_NOT_VERIFIED: {
    module: 'manager',
    summary: "The image is present but this pod's credentials were not verified for it.",
  },
  IMAGE_SERVICE_PROTOCOL_ERROR: {
    module: 'manager',
    summary:
      'The image service (kimg store or CRI runtime) answered outside the CRI contract: an empty image ref from PullImage, a present image without id or size.',
  },

  // --- cri (CRI client to a container runtime) --------------------------------------------------
  RUNTIME_UNAVAILABLE: {
    module: 'cri',
    summary:
      'The CRI runtime socket could not be reached (not listening, refused, timed out); names the endpoint.',
  },
  RUNTIME_ERROR: {
    module: 'cri',
    summary:
      "The CRI runtime answered an RPC with an error kimg cannot classify; carries the gRPC code and the runtime's message.",
  },

  // --- containerd (kimg's client of containerd's own gRPC API) -------------------------------------
  CONTAINERD_UNAVAILABLE: {
    module: 'containerd',
    summary:
      "containerd's socket could not be reached (not listening, refused, permission denied); names the address.",
  },
  CONTAINERD_ERROR: {
    module: 'containerd',
    summary:
      "containerd answered a content, images, leases, snapshots, diff, containers or namespaces call with an error kimg cannot classify; carries the gRPC code and containerd's message.",
  },

  // --- node (the node agent and the commands that talk to it) --------------------------------------
  AGENT_UNAVAILABLE: {
    module: 'node',
    summary:
      "The node agent's HTTP endpoint (`kimg node --metrics-addr`) could not be reached or answered badly; names the URL.",
  },
  POD_NOT_FOUND: {
    module: 'node',
    summary: 'No pod of that name is known to the node agent (kubectl `NotFound`).',
  },
  PODS_NOT_READY: {
    module: 'node',
    summary:
      "`kimg node --once` / `--exit-after-settle`: some pods' images did not become ready; names each pod, container and reason.",
  },

  // --- unpack (layers → rootfs / OCI runtime bundle) ---------------------------------------------
  LAYER_INVALID: {
    module: 'unpack',
    summary:
      'A layer tar is malformed (bad header, truncated, sparse, unknown type) or cannot be applied; names the entry and byte offset.',
  },
  UNPACK_UNSAFE: {
    module: 'unpack',
    summary:
      'A layer entry or image config value would reach outside the bundle (hardlink out of the root, root replaced, escaping whiteout, /proc working dir, out-of-range ids).',
  },
  TARGET_NOT_EMPTY: {
    module: 'unpack',
    summary: 'The unpack target directory exists and is not empty (use --force).',
  },
  USER_NOT_FOUND: {
    module: 'unpack',
    summary:
      "The image config's User names a user or group missing from the rootfs /etc/passwd or /etc/group.",
  },

  // --- kube (the Kubernetes API client of cluster mode) ------------------------------------------
  KUBE_CONFIG_INVALID: {
    module: 'kube',
    summary:
      'No usable client configuration: no kubeconfig found and not in a cluster, an unknown `--context`, or a kubeconfig that does not parse.',
  },
  KUBE_UNAVAILABLE: {
    module: 'kube',
    summary:
      'The Kubernetes API server could not be reached, or answered 429/5xx; retryable. Names the server and the request.',
  },
  KUBE_UNAUTHORIZED: {
    module: 'kube',
    summary: 'The API server did not accept the client credentials (HTTP 401).',
  },
  KUBE_FORBIDDEN: {
    module: 'kube',
    summary:
      'RBAC denied a request (HTTP 403): the message names the verb, the resource and the namespace that need a rule.',
  },
  KUBE_NOT_FOUND: {
    module: 'kube',
    summary: 'The named Kubernetes object does not exist (HTTP 404, reason NotFound).',
  },
  KUBE_GONE: {
    module: 'kube',
    summary:
      'The resource version a list or watch started from is too old (HTTP 410 / reason Expired); informers relist.',
  },
  KUBE_API_ERROR: {
    module: 'kube',
    summary:
      'The API server refused a request for another reason (conflict, invalid, bad request); carries the Status reason and code.',
  },

  // --- config / generic ----------------------------------------------------------------------------
  CONFIG_INVALID: {
    module: 'config',
    summary: 'A configuration file fails validation; every problem is listed.',
  },
  FILE_NOT_FOUND: {
    module: 'config',
    summary: 'A file named on the command line or in configuration does not exist.',
  },
  USAGE: {
    module: 'cli',
    summary: 'The command line is invalid (unknown flag, missing argument, bad value).',
  },
  INVALID_ARGUMENT: { module: 'core', summary: 'A library call was given an invalid argument.' },
  INTERNAL: {
    module: 'core',
    summary: 'An unexpected failure inside kimg (a bug): please report it with the message.',
  },
} as const satisfies Record<string, { module: string; summary: string }>;

/** Every error code kimg raises, as a literal union. */
export type KimgErrorCode = keyof typeof ERROR_CODES;

/** The codes in table order (stable). */
export const ALL_ERROR_CODES = Object.keys(ERROR_CODES) as KimgErrorCode[];
