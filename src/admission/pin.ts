/**
 * Digest pinning: rewriting the `image` of every container of Pods and pod templates from a tag to
 * the digest the registry serves for it, so that "the running workload is defined based on an image
 * digest rather than a tag" (Images concept page, "Image pull operations"). A tag can be moved; a
 * digest names exactly one manifest. For a multi-arch image the digest is the index's, not one
 * platform's child manifest, so every node still picks its own platform.
 *
 * The ORIGINAL image string is kept and `@<digest>` appended (`nginx:1.27` →
 * `nginx:1.27@sha256:…`): the tag stays for readers and the runtime ignores it when a digest is
 * present (distribution/reference `ParseDockerRef`). With `dropTag` the tag is removed
 * (`nginx@sha256:…`). Images that already carry a digest are checked to exist and otherwise left alone.
 *
 * Text mode edits the source text only at the image scalars (found with the `yaml` Document API and
 * its node ranges), so comments, key order, quoting and every other byte of a YAML or JSON file stay
 * as they were. Resolution is injected (`ImageResolver`); `ResolutionCache` adds a TTL and
 * single-flight in front of a real registry.
 *
 * Sources: kubernetes `pkg/apis/core/pods/util.go` (VisitContainersWithPath: init, regular, ephemeral),
 * containerd `core/remotes/docker/resolver.go` (tag → descriptor by HEAD), distribution/reference.
 */
import { isAlias, isScalar, parseAllDocuments, type Document, type Scalar } from 'yaml';
import { KimgError, isKimgError, quote, toKimgError, type KimgErrorCode } from '../errors/index.js';
import { MANIFEST_LIMITS } from '../credentials/index.js';
import { CONTAINER_LISTS, POD_SPEC_PATHS } from '../manager/index.js';
import { parseDockerRef, parseReference } from '../reference/index.js';

/** Options of one resolution. */
export interface ResolveOptions {
  signal?: AbortSignal | undefined;
  /** The caller is answering a dry-run request: a cache may be read but must not be written. */
  dryRun?: boolean | undefined;
}

/**
 * Resolves an image reference to the digest of the manifest (or index) it names at its registry.
 * For a reference with a digest, confirms the digest exists and returns it.
 * Throws a coded KimgError (`NOT_FOUND`, `UNAUTHORIZED`, reference codes, …) on failure.
 */
export type ImageResolver = (image: string, options?: ResolveOptions) => Promise<string>;

/** Options of {@link pinImages} / {@link pinObjects}. */
export interface PinOptions {
  resolve: ImageResolver;
  /** `name@digest` instead of `name:tag@digest`. Default false. */
  dropTag?: boolean;
  /** Check that images already pinned exist at the registry. Default true. */
  verifyPinned?: boolean;
  /** Images left as they are (e.g. those an UPDATE's old object already had). */
  skipImages?: ReadonlySet<string>;
  /** Passed to every resolution. */
  resolveOptions?: ResolveOptions;
  /** Resolutions run at once. Default 8. */
  concurrency?: number;
  /**
   * Stop at the first image that fails: no further image is asked for and the ones in flight are
   * aborted (their outcome is not reported). For callers whose answer the first failure decides —
   * the webhook refuses, or leaves the object unpinned, on any failure — so a review naming 10,000
   * images costs at most `concurrency` requests past the first failure.
   */
  stopOnFirstError?: boolean;
  /**
   * Most YAML documents one text may hold (`pinImages`); counted before parsing, so a file of 100,000
   * documents is refused for the cost of a scan. Default `MANIFEST_LIMITS.maxDocuments` (10,000), the
   * bound every other manifest reader applies; callers reading several files pass what is left.
   */
  maxDocuments?: number;
}

/** Where a container image sits. */
export interface ImageSlot {
  /** Index of the document (text) or object (array input). */
  document: number;
  /** The object's kind (`Pod`, `Deployment`, …). */
  kind: string;
  /** `metadata.name` of the object ('' when absent). */
  name: string;
  /** JSON Pointer of the `image` field inside the document/object (`/spec/containers/0/image`). */
  pointer: string;
  /** Field path as the API server prints it (`spec.template.spec.containers[0].image`). */
  field: string;
  /** The container's name ('' when absent). */
  container: string;
  /** The image string as found (a non-string is reported as an error). */
  image: unknown;
}

/** One rewritten image. */
export interface PinChange extends Omit<ImageSlot, 'image'> {
  from: string;
  to: string;
  digest: string;
}

/** One image that could not be pinned. */
export interface PinError extends Omit<ImageSlot, 'image'> {
  image: string;
  code: KimgErrorCode;
  message: string;
}

/** Result of {@link pinImages} (text mode). */
export interface PinTextResult {
  /** The input with the resolved image scalars rewritten (every other byte unchanged). */
  text: string;
  changes: PinChange[];
  errors: PinError[];
}

/** Result of {@link pinObjects}. */
export interface PinObjectsResult {
  /** Copies of the inputs with the resolved images rewritten (inputs are not modified). */
  objects: unknown[];
  changes: PinChange[];
  errors: PinError[];
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Every container image of `obj`: a Pod, PodTemplate, ReplicationController, Deployment,
 * StatefulSet, DaemonSet, ReplicaSet, Job or CronJob (init, regular and ephemeral containers, in the
 * API server's order), or a `List`/`*List` of them. `kind` overrides `obj.kind` (an AdmissionReview
 * object may come without one). Other kinds give nothing. Never throws.
 */
export function findImageSlots(obj: unknown, document = 0, kind?: string): ImageSlot[] {
  const out: ImageSlot[] = [];
  walk(obj, document, kind, '', '', out, 0);
  return out;
}

function walk(
  obj: unknown,
  document: number,
  kindOverride: string | undefined,
  pointer: string,
  field: string,
  out: ImageSlot[],
  depth: number,
): void {
  if (!isObj(obj) || depth > 8) return;
  const kind = kindOverride ?? (typeof obj['kind'] === 'string' ? obj['kind'] : '');
  if (kind.endsWith('List') && Array.isArray(obj['items'])) {
    (obj['items'] as unknown[]).forEach((item, i) =>
      walk(item, document, undefined, `${pointer}/items/${i}`, `${field}items[${i}].`, out, depth + 1),
    );
    return;
  }
  const path = Object.prototype.hasOwnProperty.call(POD_SPEC_PATHS, kind) ? POD_SPEC_PATHS[kind] : undefined;
  if (path === undefined) return;
  let spec: unknown = obj;
  for (const k of path) spec = isObj(spec) ? spec[k] : undefined;
  if (!isObj(spec)) return;
  const meta = obj['metadata'];
  const name = isObj(meta) && typeof meta['name'] === 'string' ? meta['name'] : '';
  const specPointer = `${pointer}/${path.map(escapePointer).join('/')}`;
  const specField = `${field}${path.join('.')}`;
  for (const list of CONTAINER_LISTS) {
    const cs = spec[list];
    if (!Array.isArray(cs)) continue;
    cs.forEach((c, i) => {
      if (!isObj(c)) return;
      out.push({
        document,
        kind,
        name,
        pointer: `${specPointer}/${list}/${i}/image`,
        field: `${specField}.${list}[${i}].image`,
        container: typeof c['name'] === 'string' ? c['name'] : '',
        image: c['image'],
      });
    });
  }
}

/**
 * The pinned form of `image`: the original string with any digest removed and `@digest` appended;
 * with `dropTag`, the tag removed too. `nginx:1.27` → `nginx:1.27@sha256:…`.
 * @throws KimgError reference codes when `image` does not parse; `INVALID_ARGUMENT` for a bad digest.
 */
export function pinnedImage(image: string, digest: string, dropTag = false): string {
  const ref = parseReference(image);
  parseReference(`x@${digest}`); // validates the digest with the reference module's codes
  let base = ref.digest !== undefined ? image.slice(0, image.lastIndexOf('@')) : image;
  if (dropTag && ref.tag !== undefined && base.endsWith(`:${ref.tag}`)) {
    base = base.slice(0, base.length - ref.tag.length - 1);
  }
  return `${base}@${digest}`;
}

/** How one distinct image string fared. */
type Outcome = { ok: true; to: string; digest: string } | { ok: false; code: KimgErrorCode; message: string };

async function resolveAll(images: string[], options: PinOptions): Promise<Map<string, Outcome>> {
  const out = new Map<string, Outcome>();
  const queue = [...new Set(images)];
  const stop = new AbortController();
  const caller = options.resolveOptions?.signal;
  const resolveOptions: ResolveOptions = {
    ...options.resolveOptions,
    signal: caller === undefined ? stop.signal : AbortSignal.any([caller, stop.signal]),
  };
  const one = async (image: string): Promise<void> => {
    try {
      const ref = parseReference(image);
      const digest = await options.resolve(image, resolveOptions);
      if (ref.digest !== undefined && digest !== ref.digest) {
        throw new KimgError(
          'DIGEST_MISMATCH',
          `image ${quote(image)} is pinned to ${ref.digest} but the registry answered ${digest}`,
          { input: image, expected: ref.digest, actual: digest },
        );
      }
      out.set(image, { ok: true, to: pinnedImage(image, digest, options.dropTag === true), digest });
    } catch (e) {
      const err = isKimgError(e) ? e : toKimgError(e, `resolving ${quote(image)}`);
      // Cancelled because another image failed first: not this image's outcome. Failures of images
      // already in flight are still named.
      if (stop.signal.aborted && (err.code === 'ABORTED' || (e as Error).name === 'AbortError')) return;
      out.set(image, { ok: false, code: err.code, message: err.message });
      if (options.stopOnFirstError === true) stop.abort();
    }
  };
  const next = (): string | undefined => (stop.signal.aborted ? undefined : queue.shift());
  const workers = Array.from({ length: Math.max(1, options.concurrency ?? 8) }, async () => {
    for (let image = next(); image !== undefined; image = next()) await one(image);
  });
  await Promise.all(workers);
  return out;
}

/** Decides what to do with each slot: a change, an error, or nothing. */
async function plan(
  slots: ImageSlot[],
  options: PinOptions,
): Promise<{ changes: PinChange[]; errors: PinError[] }> {
  const changes: PinChange[] = [];
  const errors: PinError[] = [];
  const verifyPinned = options.verifyPinned !== false;
  const wanted: string[] = [];
  const local = new Map<string, Outcome>();
  for (const s of slots) {
    if (typeof s.image !== 'string' || s.image === '') {
      continue; // validated below
    }
    if (options.skipImages?.has(s.image)) continue;
    let hasDigest: boolean;
    try {
      hasDigest = parseReference(s.image).digest !== undefined;
    } catch (e) {
      const err = toKimgError(e);
      local.set(s.image, { ok: false, code: err.code, message: err.message });
      continue;
    }
    if (hasDigest && !verifyPinned) {
      const digest = s.image.slice(s.image.lastIndexOf('@') + 1);
      local.set(s.image, { ok: true, to: pinnedImage(s.image, digest, options.dropTag === true), digest });
      continue;
    }
    wanted.push(s.image);
  }
  const resolved = await resolveAll(wanted, options);
  for (const s of slots) {
    const { image, ...where } = s;
    if (typeof image !== 'string' || image === '') {
      errors.push({
        ...where,
        image: typeof image === 'string' ? image : '',
        code: 'INVALID_IMAGE_NAME',
        message: `${where.field} of ${where.kind} ${quote(where.name)} has no image string`,
      });
      continue;
    }
    if (options.skipImages?.has(image)) continue;
    const o = local.get(image) ?? resolved.get(image);
    if (o === undefined) continue;
    if (!o.ok) errors.push({ ...where, image, code: o.code, message: o.message });
    else if (o.to !== image) changes.push({ ...where, from: image, to: o.to, digest: o.digest });
  }
  return { changes, errors };
}

/**
 * Pins the images of already-parsed objects (Pods, workloads, Lists). `kinds[i]` overrides the kind
 * of `objects[i]` (AdmissionReview objects). Never throws; per-image failures are in `errors` and
 * those images are left unchanged in `objects`.
 */
export async function pinObjects(
  objects: readonly unknown[],
  options: PinOptions,
  kinds: readonly (string | undefined)[] = [],
): Promise<PinObjectsResult> {
  const copies = objects.map((o) => structuredClone(o));
  const slots = copies.flatMap((o, i) => findImageSlots(o, i, kinds[i]));
  const { changes, errors } = await plan(slots, options);
  for (const c of changes) setPointer(copies[c.document], c.pointer, c.to);
  return { objects: copies, changes, errors };
}

function setPointer(root: unknown, pointer: string, value: string): void {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let cur: unknown = root;
  for (const p of parts.slice(0, -1)) {
    cur = Array.isArray(cur) ? cur[Number(p)] : isObj(cur) ? cur[p] : undefined;
  }
  const last = parts[parts.length - 1];
  if (isObj(cur) && last !== undefined) cur[last] = value;
}

/** Renders `value` in the style of the scalar it replaces. */
function renderScalar(node: Scalar, source: string, value: string): string {
  switch (node.type) {
    case 'QUOTE_SINGLE':
      return `'${value.replace(/'/g, "''")}'`;
    case 'PLAIN':
      // An image reference is a safe plain scalar unless it holds ": " or " #" (it cannot: no spaces).
      return /^[A-Za-z0-9][A-Za-z0-9._/:@+\-[\]]*$/.test(value) ? value : JSON.stringify(value);
    case 'BLOCK_LITERAL':
    case 'BLOCK_FOLDED':
      return JSON.stringify(value) + (source.endsWith('\n') ? '\n' : '');
    default:
      return JSON.stringify(value);
  }
}

function pointerPath(pointer: string): Array<string | number> {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
}

/**
 * Pins every container image in Kubernetes YAML or JSON text (multi-document, `List`s, Pods and the
 * workload kinds of {@link findImageSlots}). Only the image scalars are rewritten; comments, order,
 * quoting and layout are kept byte for byte. Images that fail are listed in `errors` and left as
 * they were in `text` (callers that must write nothing on error check `errors`).
 *
 * @throws KimgError `CONFIG_INVALID` when the text is not valid YAML/JSON, naming the document.
 */
export async function pinImages(text: string, options: PinOptions, file = '<input>'): Promise<PinTextResult> {
  const docs = parseDocuments(text, file, options.maxDocuments ?? MANIFEST_LIMITS.maxDocuments);
  const objects = docs.map((d) => d.js);
  const slots = objects.flatMap((o, i) => findImageSlots(o, i));
  const { changes, errors } = await plan(slots, options);
  // Keyed by the scalar's start offset: an alias (`image: *img`) edits its anchored scalar once.
  const edits = new Map<number, { start: number; end: number; text: string }>();
  const kept: PinChange[] = [];
  for (const c of changes) {
    const doc = docs[c.document]?.doc;
    let node: unknown = doc?.getIn(pointerPath(c.pointer), true);
    if (isAlias(node) && doc !== undefined) node = node.resolve(doc);
    if (!isScalar(node) || node.range === undefined || node.range === null || node.value !== c.from) {
      errors.push({
        ...c,
        image: c.from,
        code: 'CONFIG_INVALID',
        message: `${file}: ${c.field} is not a plain YAML scalar; pin it by hand to ${c.to}`,
      });
      continue;
    }
    const [start, end] = node.range;
    edits.set(start, { start, end, text: renderScalar(node, text.slice(start, end), c.to) });
    kept.push(c);
  }
  const ordered = [...edits.values()];
  ordered.sort((a, b) => b.start - a.start);
  let out = text;
  for (const e of ordered) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return { text: out, changes: kept, errors };
}

/**
 * An upper bound of the YAML documents in a text, without parsing: document markers at the start of a
 * line, plus one (a JSON text is one YAML document). Used only against the document cap.
 */
export function countYamlDocuments(text: string): number {
  let n = 1;
  for (let i = text.indexOf('---'); i !== -1; i = text.indexOf('---', i + 3))
    if (i === 0 || text.charCodeAt(i - 1) === 10) n++;
  return n;
}

function parseDocuments(
  text: string,
  file: string,
  maxDocuments: number,
): Array<{ doc: Document; js: unknown }> {
  const count = countYamlDocuments(text);
  if (count > maxDocuments) {
    throw new KimgError(
      'CONFIG_INVALID',
      `${quote(file)} holds ${count} documents, more than the ${Math.max(maxDocuments, 0)} this invocation still reads (at most ${MANIFEST_LIMITS.maxDocuments} in all): split the manifests`,
      { file },
    );
  }
  let docs: Document[];
  try {
    const parsed = parseAllDocuments(text, { uniqueKeys: true, logLevel: 'error' });
    docs = Array.isArray(parsed) ? parsed : [];
  } catch (e) {
    throw new KimgError('CONFIG_INVALID', `${file} cannot be parsed as YAML or JSON: ${String(e)}`, {
      file,
      cause: e,
    });
  }
  return docs.map((doc, i) => {
    const err = doc.errors[0];
    if (err !== undefined) {
      throw new KimgError(
        'CONFIG_INVALID',
        `${file}: document ${i + 1} is not valid YAML: ${err.message.split('\n')[0] ?? ''}`,
        { file, cause: err },
      );
    }
    try {
      return { doc, js: doc.toJS({ maxAliasCount: 1000 }) as unknown };
    } catch (e) {
      throw new KimgError(
        'CONFIG_INVALID',
        `${file}: document ${i + 1} cannot be read: ${e instanceof Error ? e.message : String(e)}`,
        { file, cause: e },
      );
    }
  });
}

/** Options of {@link ResolutionCache}. */
export interface ResolutionCacheOptions {
  /** How long a resolution is reused, in ms (0 = never). */
  ttlMs: number;
  /** Clock in ms (tests). Default `Date.now`. */
  now?: () => number;
  /** Entries kept at most; the oldest is dropped first. Default 10,000. */
  maxEntries?: number;
}

/**
 * A TTL cache with single-flight in front of an {@link ImageResolver}: one registry request per
 * reference per `ttlMs`, concurrent askers share it. Keyed by the reference a runtime pulls
 * (`docker.io/library/nginx:latest` for `nginx`), so spellings of one image share an entry. Failures
 * are not cached. A `dryRun` resolution reads the cache but does not fill it.
 */
export class ResolutionCache {
  private readonly entries = new Map<string, { digest: string; expires: number }>();
  private readonly inFlight = new Map<string, Promise<string>>();
  private readonly now: () => number;
  private readonly maxEntries: number;

  constructor(
    private readonly inner: ImageResolver,
    private readonly options: ResolutionCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.maxEntries = options.maxEntries ?? 10_000;
  }

  /** Number of cached entries (expired ones included until looked up). */
  get size(): number {
    return this.entries.size;
  }

  /** Drops every entry. */
  clear(): void {
    this.entries.clear();
  }

  /** The resolver function bound to this cache. */
  get resolver(): ImageResolver {
    return (image, options) => this.resolve(image, options);
  }

  /**
   * Resolves `image` through the cache.
   * @throws what the inner resolver throws; reference codes when `image` does not parse.
   */
  async resolve(image: string, options: ResolveOptions = {}): Promise<string> {
    const key = parseDockerRef(image).pullRef;
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      if (hit.expires > this.now()) return hit.digest;
      this.entries.delete(key);
    }
    const flightKey = options.dryRun === true ? `dry:${key}` : key;
    const pending = this.inFlight.get(flightKey);
    if (pending !== undefined) return pending;
    const p = (async () => {
      try {
        const digest = await this.inner(image, options);
        if (options.dryRun !== true && this.options.ttlMs > 0) {
          if (this.entries.size >= this.maxEntries) {
            const oldest = this.entries.keys().next().value;
            if (oldest !== undefined) this.entries.delete(oldest);
          }
          this.entries.set(key, { digest, expires: this.now() + this.options.ttlMs });
        }
        return digest;
      } finally {
        this.inFlight.delete(flightKey);
      }
    })();
    this.inFlight.set(flightKey, p);
    return p;
  }
}
