/**
 * Image pull records (KEP-2535 "ensure secret pulled images"): what the node remembers about the pulls
 * it made, so that a pod asking for an image that is already present can be checked against the
 * credentials that pulled it without asking the registry again.
 *
 * Two kinds of record, both keyed by a string and stored one JSON document per key:
 * - an **intent** (`ImagePullIntent`) is written before a pull starts and removed when it ends; it is
 *   keyed by the container's `image` string exactly as the pod spells it. An intent left behind by a
 *   crash tells the next start that the image may have been pulled by the node;
 * - a **pulled record** (`ImagePulledRecord`) is keyed by the image id (CRI imageRef = config digest)
 *   and maps each image name (normalized, without tag or digest) to the credentials that pulled it:
 *   Kubernetes Secret coordinates plus a hash of the credential material, ServiceAccount coordinates
 *   (a credential plugin in service-account token mode), or `nodePodsAccessible` (node-wide
 *   credentials or an anonymous pull: any pod on the node may use the image).
 *
 * The documents use the kubelet's encoding (`kubelet.config.k8s.io/v1beta1`, `v1alpha1` accepted on
 * read), so records are interchangeable with the kubelet's. On disk (`FilePullRecords`):
 * `<root>/pull-records/intents/sha256-<hex>` and `<root>/pull-records/pulled/sha256-<hex>`, where
 * `<hex>` is the SHA-256 of the key; directories 0700, files 0600, written atomically (temp file,
 * fsync, rename, directory fsync). Readers skip nothing silently: a file that is not a record
 * (unknown name, leftover temp file, bad JSON, wrong kind, key mismatch) is reported as a
 * `PullRecordProblem` by the list calls and can be removed with `removeProblem`; it never crashes the
 * caller. `MemoryPullRecords` is the in-memory implementation with the same contract (tests, and
 * nodes that want no persistence).
 *
 * Source: kubernetes `pkg/kubelet/images/pullmanager/{interfaces.go,fs_pullrecords.go,
 * mem_pullrecords.go}`, staging kubelet `config/v1beta1/types.go` (ImagePullIntent,
 * ImagePulledRecord); docs/design/upstream-parity.md. Differences: kimg's directory names
 * (`pull-records/{intents,pulled}` instead of `image_manager/{pulling,pulled}`), no LRU cache in front
 * of the files, and problems are reported rather than only logged.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { ensureDir, errnoCode, fsyncDir, isNotFound, writeFileAtomic } from '../durable/index.js';
import { KimgError, quote, quoteValue } from '../errors/index.js';

/** The API version kimg writes (the kubelet's since 1.35). */
export const PULL_RECORDS_API_VERSION = 'kubelet.config.k8s.io/v1beta1';
/** API versions accepted on read. */
export const PULL_RECORDS_READ_VERSIONS = Object.freeze([
  'kubelet.config.k8s.io/v1beta1',
  'kubelet.config.k8s.io/v1alpha1',
] as const);
/** The directory under the node root that holds the records. */
export const PULL_RECORDS_DIR = 'pull-records';

/** A pull in progress (or interrupted) for the container image string `image`. */
export interface ImagePullIntent {
  /** The container's `image` field as the pod spells it (`app:1`, `registry.example/app@sha256:…`). */
  image: string;
}

/** A Kubernetes Secret that pulled an image, with the hash of the credential it held then. */
export interface ImagePullSecretRef {
  uid: string;
  namespace: string;
  name: string;
  /** Hex SHA-256 of the credential material (`credentialHash`); never the credential itself. */
  credentialHash: string;
}

/** A ServiceAccount whose token a credential plugin exchanged for the credential that pulled. */
export interface ImagePullServiceAccountRef {
  uid: string;
  namespace: string;
  name: string;
}

/** The credentials recorded for one image name. */
export interface ImagePullCredentials {
  /** Sorted by namespace, name, uid; unique per (namespace, name, uid). */
  kubernetesSecrets?: ImagePullSecretRef[];
  /** Sorted by namespace, name, uid; unique. */
  kubernetesServiceAccounts?: ImagePullServiceAccountRef[];
  /** Pulled with node-wide credentials or anonymously: every pod on the node may use the image. */
  nodePodsAccessible?: boolean;
}

/** What the node knows about the pulls of one image id. */
export interface ImagePulledRecord {
  /** The image id (CRI imageRef, the config digest). */
  imageRef: string;
  /** RFC 3339 time of the last change. */
  lastUpdatedTime: string;
  /** Normalized image name without tag or digest (`docker.io/library/nginx`) → credentials. */
  credentialMapping: Record<string, ImagePullCredentials>;
}

/** A file in the records directories that is not a readable record. */
export interface PullRecordProblem {
  /** Which directory it is in. */
  kind: 'intent' | 'pulled';
  /** The file (full path for `FilePullRecords`, `memory:<key>` for `MemoryPullRecords`). */
  file: string;
  /** The file's base name (`sha256-<hex>` for a record-shaped name). */
  name: string;
  /** `temp` (an unfinished atomic write), `unknown-name`, `unreadable`, `invalid` or `key-mismatch`. */
  problem: 'temp' | 'unknown-name' | 'unreadable' | 'invalid' | 'key-mismatch';
  /** Human-readable detail. */
  detail: string;
  /** Last modification time (file implementation), so a repair can spare a write still in progress. */
  mtimeMs?: number;
}

/** A list call's result: the records that read, and the files that did not. */
export interface PullRecordsList<T> {
  items: T[];
  problems: PullRecordProblem[];
}

/**
 * Access to the pull records (`pullmanager.PullRecordsAccessor`). Implementations do no locking of
 * their own beyond single-call atomicity: the verifier serializes access per key.
 *
 * Failure codes: `STORE_IO` (the file system failed), `STORE_CORRUPT` (`getImagePulledRecord` found a
 * file for the key that cannot be read as a record). List calls never throw for a bad file: they
 * report it in `problems`.
 */
export interface PullRecordsAccessor {
  /** Every intent that reads, plus the files that do not. */
  listImagePullIntents(): Promise<PullRecordsList<ImagePullIntent>>;
  /** Whether an intent for this exact image string exists (a corrupt file for the key counts as existing). */
  imagePullIntentExists(image: string): Promise<boolean>;
  /** Writes (or rewrites) the intent for `image`. */
  writeImagePullIntent(image: string): Promise<void>;
  /** Removes the intent for `image`; absent = success. */
  deleteImagePullIntent(image: string): Promise<void>;
  /** Every pulled record that reads, plus the files that do not. */
  listImagePulledRecords(): Promise<PullRecordsList<ImagePulledRecord>>;
  /**
   * The record for `imageRef`, or undefined when there is none (a file whose embedded `imageRef` is not
   * the key counts as none, as upstream). @throws KimgError `STORE_CORRUPT` for an unreadable record.
   */
  getImagePulledRecord(imageRef: string): Promise<ImagePulledRecord | undefined>;
  /** Writes (or replaces) the record for `record.imageRef`. @throws KimgError `INVALID_ARGUMENT` for a bad record. */
  writeImagePulledRecord(record: ImagePulledRecord): Promise<void>;
  /** Removes the record for `imageRef`; absent = success. */
  deleteImagePulledRecord(imageRef: string): Promise<void>;
  /** Removes the file behind a reported problem; already gone = success. */
  removeProblem(problem: PullRecordProblem): Promise<void>;
}

// --- encoding ------------------------------------------------------------------------------------

/** The file name of a key: `sha256-` + hex SHA-256 of the key (the kubelet's naming). */
export function pullRecordFileName(key: string): string {
  return 'sha256-' + createHash('sha256').update(key, 'utf8').digest('hex');
}

const NAME_RE = /^sha256-[0-9a-f]{64}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkFields(obj: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new Error(`${what}: unknown field ${quote(k)}`);
  }
}

function readString(obj: Record<string, unknown>, key: string, what: string): string {
  const v = obj[key];
  if (typeof v !== 'string') throw new Error(`${what}: ${key} must be a string`);
  return v;
}

function coordLess(a: { namespace: string; name: string; uid: string }, b: typeof a): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  if (a.uid !== b.uid) return a.uid < b.uid ? -1 : 1;
  return 0;
}

function decodeCredentials(v: unknown, what: string): ImagePullCredentials {
  if (!isObject(v)) throw new Error(`${what} must be an object`);
  checkFields(v, ['kubernetesSecrets', 'kubernetesServiceAccounts', 'nodePodsAccessible'], what);
  const out: ImagePullCredentials = {};
  if (v['kubernetesSecrets'] !== undefined && v['kubernetesSecrets'] !== null) {
    const list = v['kubernetesSecrets'];
    if (!Array.isArray(list)) throw new Error(`${what}.kubernetesSecrets must be a list`);
    out.kubernetesSecrets = list.map((s, i) => {
      const w = `${what}.kubernetesSecrets[${i}]`;
      if (!isObject(s)) throw new Error(`${w} must be an object`);
      checkFields(s, ['uid', 'namespace', 'name', 'credentialHash'], w);
      return {
        uid: readString(s, 'uid', w),
        namespace: readString(s, 'namespace', w),
        name: readString(s, 'name', w),
        credentialHash: readString(s, 'credentialHash', w),
      };
    });
  }
  if (v['kubernetesServiceAccounts'] !== undefined && v['kubernetesServiceAccounts'] !== null) {
    const list = v['kubernetesServiceAccounts'];
    if (!Array.isArray(list)) throw new Error(`${what}.kubernetesServiceAccounts must be a list`);
    out.kubernetesServiceAccounts = list.map((s, i) => {
      const w = `${what}.kubernetesServiceAccounts[${i}]`;
      if (!isObject(s)) throw new Error(`${w} must be an object`);
      checkFields(s, ['uid', 'namespace', 'name'], w);
      return {
        uid: readString(s, 'uid', w),
        namespace: readString(s, 'namespace', w),
        name: readString(s, 'name', w),
      };
    });
  }
  if (v['nodePodsAccessible'] !== undefined) {
    if (typeof v['nodePodsAccessible'] !== 'boolean')
      throw new Error(`${what}.nodePodsAccessible must be a boolean`);
    if (v['nodePodsAccessible']) out.nodePodsAccessible = true;
  }
  return out;
}

function decodeHeader(text: string, kind: string): Record<string, unknown> {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (!isObject(obj)) throw new Error('not a JSON object');
  if (obj['kind'] !== kind) throw new Error(`kind is ${quoteValue(obj['kind'])}, expected ${quote(kind)}`);
  if (!(PULL_RECORDS_READ_VERSIONS as readonly unknown[]).includes(obj['apiVersion'])) {
    throw new Error(`apiVersion ${quoteValue(obj['apiVersion'])} is not supported`);
  }
  return obj;
}

/** Parses an intent document. @throws Error with the reason (callers wrap it). */
export function decodePullIntent(text: string): ImagePullIntent {
  const obj = decodeHeader(text, 'ImagePullIntent');
  checkFields(obj, ['kind', 'apiVersion', 'image'], 'ImagePullIntent');
  const image = readString(obj, 'image', 'ImagePullIntent');
  if (image === '') throw new Error('ImagePullIntent: image is empty');
  return { image };
}

/** Parses a pulled-record document. @throws Error with the reason (callers wrap it). */
export function decodePulledRecord(text: string): ImagePulledRecord {
  const obj = decodeHeader(text, 'ImagePulledRecord');
  checkFields(
    obj,
    ['kind', 'apiVersion', 'imageRef', 'lastUpdatedTime', 'credentialMapping'],
    'ImagePulledRecord',
  );
  const imageRef = readString(obj, 'imageRef', 'ImagePulledRecord');
  if (imageRef === '') throw new Error('ImagePulledRecord: imageRef is empty');
  const lastUpdatedTime = readString(obj, 'lastUpdatedTime', 'ImagePulledRecord');
  if (Number.isNaN(Date.parse(lastUpdatedTime)))
    throw new Error(`ImagePulledRecord: lastUpdatedTime ${quote(lastUpdatedTime)} is not a time`);
  const mapping = credentialMappingOf();
  const raw = obj['credentialMapping'];
  if (raw !== undefined && raw !== null) {
    if (!isObject(raw)) throw new Error('ImagePulledRecord: credentialMapping must be an object');
    for (const [name, creds] of Object.entries(raw)) {
      setCredentials(mapping, name, decodeCredentials(creds, `credentialMapping[${quote(name)}]`));
    }
  }
  return { imageRef, lastUpdatedTime, credentialMapping: mapping };
}

/** The intent document kimg writes. */
export function encodePullIntent(intent: ImagePullIntent): string {
  return (
    JSON.stringify({ kind: 'ImagePullIntent', apiVersion: PULL_RECORDS_API_VERSION, image: intent.image }) +
    '\n'
  );
}

/** Unique by (namespace, name, uid), the last occurrence winning, sorted by namespace, name, uid. */
function uniqueSorted<T extends { namespace: string; name: string; uid: string }>(list: readonly T[]): T[] {
  const byKey = new Map<string, T>();
  for (const x of list) byKey.set(`${x.namespace}\u0000${x.name}\u0000${x.uid}`, x);
  return [...byKey.values()].sort(coordLess);
}

/**
 * Deep copy in canonical form: Secret and ServiceAccount lists unique by coordinates (last wins) and
 * sorted by namespace, name, uid; fields in the kubelet's order (`uid`, `namespace`, `name`,
 * `credentialHash`); empty parts omitted (the kubelet's `omitempty`).
 */
export function canonicalCredentials(c: ImagePullCredentials): ImagePullCredentials {
  const out: ImagePullCredentials = {};
  if (c.kubernetesSecrets !== undefined && c.kubernetesSecrets.length > 0) {
    out.kubernetesSecrets = uniqueSorted(c.kubernetesSecrets).map((s) => ({
      uid: s.uid,
      namespace: s.namespace,
      name: s.name,
      credentialHash: s.credentialHash,
    }));
  }
  if (c.kubernetesServiceAccounts !== undefined && c.kubernetesServiceAccounts.length > 0) {
    out.kubernetesServiceAccounts = uniqueSorted(c.kubernetesServiceAccounts).map((s) => ({
      uid: s.uid,
      namespace: s.namespace,
      name: s.name,
    }));
  }
  if (c.nodePodsAccessible === true) out.nodePodsAccessible = true;
  return out;
}

/** An empty credential mapping. */
export function credentialMappingOf(): Record<string, ImagePullCredentials> {
  return {};
}

/**
 * Sets `mapping[name]` as an own data property. Keys are image names read from files, so a key such as
 * `__proto__` must be stored as data, not replace the object's prototype (plain assignment would).
 */
export function setCredentials(
  mapping: Record<string, ImagePullCredentials>,
  name: string,
  creds: ImagePullCredentials,
): void {
  Object.defineProperty(mapping, name, {
    value: creds,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** A deep copy of a record. */
export function clonePulledRecord(r: ImagePulledRecord): ImagePulledRecord {
  const mapping = credentialMappingOf();
  for (const [k, v] of Object.entries(r.credentialMapping))
    setCredentials(mapping, k, canonicalCredentials(v));
  return { imageRef: r.imageRef, lastUpdatedTime: r.lastUpdatedTime, credentialMapping: mapping };
}

/** The pulled-record document kimg writes (mapping keys sorted, like Go's encoder). */
export function encodePulledRecord(record: ImagePulledRecord): string {
  const doc: Record<string, unknown> = {
    kind: 'ImagePulledRecord',
    apiVersion: PULL_RECORDS_API_VERSION,
    lastUpdatedTime: record.lastUpdatedTime,
    imageRef: record.imageRef,
  };
  const names = Object.keys(record.credentialMapping).sort();
  if (names.length > 0) {
    const mapping = credentialMappingOf();
    for (const n of names)
      setCredentials(mapping, n, canonicalCredentials(record.credentialMapping[n] ?? {}));
    doc['credentialMapping'] = mapping;
  }
  return JSON.stringify(doc) + '\n';
}

function validateForWrite(record: ImagePulledRecord): void {
  const bad = (what: string) =>
    new KimgError('INVALID_ARGUMENT', `invalid image pulled record: ${what}`, { input: what });
  if (!isObject(record)) throw bad('not an object');
  if (typeof record.imageRef !== 'string' || record.imageRef === '') throw bad('imageRef is empty');
  if (typeof record.lastUpdatedTime !== 'string' || Number.isNaN(Date.parse(record.lastUpdatedTime)))
    throw bad('lastUpdatedTime is not a time');
  if (!isObject(record.credentialMapping)) throw bad('credentialMapping is not an object');
  // Round-trip through the decoder: whatever we write must read back.
  try {
    decodePulledRecord(encodePulledRecord(record));
  } catch (e) {
    throw bad(e instanceof Error ? e.message : String(e));
  }
}

function corruptRecord(file: string, detail: string): KimgError {
  return new KimgError(
    'STORE_CORRUPT',
    `image pull record ${quote(file)} is not valid: ${detail}: run \`kimg records prune\` to repair it`,
    { file },
  );
}

// --- file implementation -------------------------------------------------------------------------

/** Record-file failures name the node root (records may live under the kubelet's root, not a store). */
function ioError(op: string, path: string, cause: unknown): KimgError {
  return new KimgError(
    'STORE_IO',
    `cannot ${op} ${quote(path)}: ${errnoCode(cause) ?? (cause instanceof Error ? cause.message : String(cause))}: check the permissions and free space of the node root`,
    { file: path, cause },
  );
}

/** `<name>.<pid>-<random>.tmp`, next to the record: the `.tmp` suffix is what readers skip. */
function recordTempPath(file: string): string {
  return `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
}

/** `.tmp` suffix: readers and the kubelet skip such files. */
function isTempName(name: string): boolean {
  return name.endsWith('.tmp');
}

/**
 * Decodes one record file's text and checks that its key hashes to the file name; reports `invalid`
 * or `key-mismatch` through `problem` and returns undefined for a bad file (shared by both accessors).
 */
function decodeRecordFile<T>(
  name: string,
  text: string,
  decode: (text: string) => T,
  keyOf: (item: T) => string,
  problem: (kind: 'invalid' | 'key-mismatch', message: string) => void,
): T | undefined {
  let item: T;
  try {
    item = decode(text);
  } catch (e) {
    problem('invalid', e instanceof Error ? e.message : String(e));
    return undefined;
  }
  if (pullRecordFileName(keyOf(item)) !== name) {
    problem('key-mismatch', `the record's key ${quote(keyOf(item))} does not hash to the file name`);
    return undefined;
  }
  return item;
}

/**
 * Pull records as files under `<root>/pull-records/` (see the module comment). The directories are
 * created on first write; a missing directory lists as empty.
 */
export class FilePullRecords implements PullRecordsAccessor {
  readonly intentsDir: string;
  readonly pulledDir: string;

  /** @param root The node root (kimg's store root, or the kubelet root). */
  constructor(readonly root: string) {
    this.intentsDir = join(root, PULL_RECORDS_DIR, 'intents');
    this.pulledDir = join(root, PULL_RECORDS_DIR, 'pulled');
  }

  private async writeAtomic(dir: string, name: string, data: string): Promise<void> {
    await ensureDir(dir, { ioError });
    await writeFileAtomic(join(dir, name), data, { ioError, tempPath: recordTempPath });
  }

  private async readIfExists(file: string): Promise<string | undefined> {
    try {
      return await fsp.readFile(file, 'utf8');
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw ioError('read', file, e);
    }
  }

  private async remove(dir: string, name: string): Promise<void> {
    const file = join(dir, name);
    try {
      await fsp.rm(file, { force: true });
    } catch (e) {
      throw ioError('remove', file, e);
    }
    await fsyncDir(dir, ioError).catch(() => undefined);
  }

  private async scan<T>(
    kind: 'intent' | 'pulled',
    dir: string,
    decode: (text: string) => T,
    keyOf: (item: T) => string,
  ): Promise<PullRecordsList<T>> {
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).sort();
    } catch (e) {
      if (isNotFound(e)) return { items: [], problems: [] };
      throw ioError('list', dir, e);
    }
    const items: T[] = [];
    const problems: PullRecordProblem[] = [];
    for (const name of names) {
      const file = join(dir, name);
      const problem = (p: PullRecordProblem['problem'], detail: string, mtimeMs?: number) =>
        problems.push({
          kind,
          file,
          name,
          problem: p,
          detail,
          ...(mtimeMs !== undefined ? { mtimeMs } : {}),
        });
      if (isTempName(name)) {
        const st = await fsp.stat(file).catch(() => undefined);
        problem('temp', 'an unfinished write (left by a crash, or in progress)', st?.mtimeMs);
        continue;
      }
      if (!NAME_RE.test(name)) {
        problem('unknown-name', 'not a record file name (expected sha256-<64 hex>)');
        continue;
      }
      let text: string | undefined;
      try {
        text = await this.readIfExists(file);
      } catch (e) {
        problem('unreadable', e instanceof Error ? e.message : String(e));
        continue;
      }
      if (text === undefined) continue; // removed meanwhile
      const item = decodeRecordFile(name, text, decode, keyOf, problem);
      if (item !== undefined) items.push(item);
    }
    return { items, problems };
  }

  listImagePullIntents(): Promise<PullRecordsList<ImagePullIntent>> {
    return this.scan('intent', this.intentsDir, decodePullIntent, (i) => i.image);
  }

  async imagePullIntentExists(image: string): Promise<boolean> {
    const file = join(this.intentsDir, pullRecordFileName(image));
    try {
      await fsp.stat(file);
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw ioError('stat', file, e);
    }
  }

  writeImagePullIntent(image: string): Promise<void> {
    if (typeof image !== 'string' || image === '') {
      return Promise.reject(new KimgError('INVALID_ARGUMENT', 'a pull intent needs a non-empty image'));
    }
    return this.writeAtomic(this.intentsDir, pullRecordFileName(image), encodePullIntent({ image }));
  }

  deleteImagePullIntent(image: string): Promise<void> {
    return this.remove(this.intentsDir, pullRecordFileName(image));
  }

  listImagePulledRecords(): Promise<PullRecordsList<ImagePulledRecord>> {
    return this.scan('pulled', this.pulledDir, decodePulledRecord, (r) => r.imageRef);
  }

  async getImagePulledRecord(imageRef: string): Promise<ImagePulledRecord | undefined> {
    const file = join(this.pulledDir, pullRecordFileName(imageRef));
    const text = await this.readIfExists(file);
    if (text === undefined) return undefined;
    let record: ImagePulledRecord;
    try {
      record = decodePulledRecord(text);
    } catch (e) {
      throw corruptRecord(file, e instanceof Error ? e.message : String(e));
    }
    return record.imageRef === imageRef ? record : undefined;
  }

  writeImagePulledRecord(record: ImagePulledRecord): Promise<void> {
    try {
      validateForWrite(record);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.writeAtomic(this.pulledDir, pullRecordFileName(record.imageRef), encodePulledRecord(record));
  }

  deleteImagePulledRecord(imageRef: string): Promise<void> {
    return this.remove(this.pulledDir, pullRecordFileName(imageRef));
  }

  async removeProblem(problem: PullRecordProblem): Promise<void> {
    const dir = problem.kind === 'intent' ? this.intentsDir : this.pulledDir;
    if (problem.name.includes('/') || problem.name === '' || problem.name === '.' || problem.name === '..') {
      throw new KimgError('INVALID_ARGUMENT', `not a pull record file name: ${quote(problem.name)}`);
    }
    try {
      await fsp.rm(join(dir, problem.name), { force: true, recursive: true });
    } catch (e) {
      throw ioError('remove', join(dir, problem.name), e);
    }
    await fsyncDir(dir, ioError).catch(() => undefined);
  }
}

// --- memory implementation -----------------------------------------------------------------------

/**
 * Pull records in memory, with the file implementation's contract. `rawIntents` / `rawPulled` hold the
 * encoded documents by file name, so tests can plant corrupt entries exactly as on disk.
 */
export class MemoryPullRecords implements PullRecordsAccessor {
  /** File name → document text. */
  readonly rawIntents = new Map<string, string>();
  readonly rawPulled = new Map<string, string>();

  private list<T>(
    kind: 'intent' | 'pulled',
    raw: Map<string, string>,
    decode: (text: string) => T,
    keyOf: (item: T) => string,
  ): PullRecordsList<T> {
    const items: T[] = [];
    const problems: PullRecordProblem[] = [];
    for (const name of [...raw.keys()].sort()) {
      const text = raw.get(name) ?? '';
      const problem = (p: PullRecordProblem['problem'], detail: string) =>
        problems.push({ kind, file: `memory:${name}`, name, problem: p, detail });
      if (isTempName(name)) {
        problem('temp', 'an unfinished write (left by a crash)');
        continue;
      }
      if (!NAME_RE.test(name)) {
        problem('unknown-name', 'not a record file name (expected sha256-<64 hex>)');
        continue;
      }
      const item = decodeRecordFile(name, text, decode, keyOf, problem);
      if (item !== undefined) items.push(item);
    }
    return { items, problems };
  }

  async listImagePullIntents(): Promise<PullRecordsList<ImagePullIntent>> {
    return this.list('intent', this.rawIntents, decodePullIntent, (i) => i.image);
  }

  async imagePullIntentExists(image: string): Promise<boolean> {
    return this.rawIntents.has(pullRecordFileName(image));
  }

  async writeImagePullIntent(image: string): Promise<void> {
    if (typeof image !== 'string' || image === '') {
      throw new KimgError('INVALID_ARGUMENT', 'a pull intent needs a non-empty image');
    }
    this.rawIntents.set(pullRecordFileName(image), encodePullIntent({ image }));
  }

  async deleteImagePullIntent(image: string): Promise<void> {
    this.rawIntents.delete(pullRecordFileName(image));
  }

  async listImagePulledRecords(): Promise<PullRecordsList<ImagePulledRecord>> {
    return this.list('pulled', this.rawPulled, decodePulledRecord, (r) => r.imageRef);
  }

  async getImagePulledRecord(imageRef: string): Promise<ImagePulledRecord | undefined> {
    const name = pullRecordFileName(imageRef);
    const text = this.rawPulled.get(name);
    if (text === undefined) return undefined;
    let record: ImagePulledRecord;
    try {
      record = decodePulledRecord(text);
    } catch (e) {
      throw corruptRecord(`memory:${name}`, e instanceof Error ? e.message : String(e));
    }
    return record.imageRef === imageRef ? record : undefined;
  }

  async writeImagePulledRecord(record: ImagePulledRecord): Promise<void> {
    validateForWrite(record);
    this.rawPulled.set(pullRecordFileName(record.imageRef), encodePulledRecord(record));
  }

  async deleteImagePulledRecord(imageRef: string): Promise<void> {
    this.rawPulled.delete(pullRecordFileName(imageRef));
  }

  async removeProblem(problem: PullRecordProblem): Promise<void> {
    (problem.kind === 'intent' ? this.rawIntents : this.rawPulled).delete(problem.name);
  }
}
