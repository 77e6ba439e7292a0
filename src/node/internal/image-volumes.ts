/**
 * Image volumes (KEP-4639, `volumes[].image`): each one is pulled through the image manager exactly
 * like a container image of the pod (the pod's pull policy rules, its pull Secrets, the back-off keyed
 * by pod uid and reference, events and pull records), then materialised into
 * `<state>/volumes/<pod-uid>/<volume-name>` with `materializeImageVolume`: an image's layers, or an OCI
 * artifact's titled blobs as files.
 *
 * Read-only: the agent runs no containers, so there is no `ro` bind mount to make; the materialised
 * tree itself is made read-only instead (write bits cleared on every file, directories 0555), which
 * stops every non-root writer; root ignores modes, so a runtime mounting the directory must still
 * bind it `ro` (docs/design/unpack.md).
 *
 * Idempotent across resyncs: a volume whose directory already holds the same manifest digest is left
 * alone; a new digest (an `Always` pull that found a new image) is materialised next to it and swapped
 * in. A pod's volumes are removed when the pod goes away.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../durable/index.js';
import { KimgError, toKimgError } from '../../errors/index.js';
import type { EnsureImageResult, ImageManager, PodInfo } from '../../manager/index.js';
import { lookupImage } from '../../store/index.js';
import { materializeImageVolume, type UnpackSource } from '../../unpack/index.js';
import type { ImageVolumeState } from '../pod-state.js';

/** An image volume of a pod spec, after defaulting. */
export interface ImageVolumeSpec {
  name: string;
  reference: string;
  /** '' when the manifest sets none and was not defaulted (the manager defaults it then). */
  pullPolicy: string;
}

/** The image volumes of a pod object (`spec.volumes[]` entries with an `image` source), in order. */
export function podImageVolumes(object: unknown): ImageVolumeSpec[] {
  const spec = (object as { spec?: { volumes?: unknown } } | null)?.spec;
  if (spec === undefined || spec === null || !Array.isArray(spec.volumes)) return [];
  const out: ImageVolumeSpec[] = [];
  for (const v of spec.volumes as unknown[]) {
    if (typeof v !== 'object' || v === null) continue;
    const { name, image } = v as { name?: unknown; image?: unknown };
    if (typeof image !== 'object' || image === null) continue;
    const { reference, pullPolicy } = image as { reference?: unknown; pullPolicy?: unknown };
    out.push({
      name: typeof name === 'string' ? name : '',
      reference: typeof reference === 'string' ? reference : '',
      pullPolicy: typeof pullPolicy === 'string' ? pullPolicy : '',
    });
  }
  return out;
}

/** The state of a volume not synced yet. */
export function initialVolumeStates(object: unknown): ImageVolumeState[] {
  return podImageVolumes(object).map(waitingState);
}

/** A volume waiting for its first sync: nothing pulled, no reason yet. */
function waitingState(v: ImageVolumeSpec): ImageVolumeState {
  return {
    name: v.name,
    reference: v.reference,
    pullPolicy: v.pullPolicy,
    state: 'Waiting',
    reason: '',
    message: '',
    imageRef: '',
    digest: '',
  };
}

/** What the volumes need from the agent. */
export interface ImageVolumesOptions {
  /** The directory holding `<pod-uid>/<volume-name>` (the agent's `<store root>/volumes`). */
  root: string;
  /** kimg's store to materialise from; undefined when images live elsewhere (containerd). */
  source: UnpackSource | undefined;
}

/** The file next to a volume's directory holding the manifest digest it was materialised from. */
const DIGEST_SUFFIX = '.digest';

/** Pulls and materialises the pods' image volumes (see the module comment). */
export class ImageVolumes {
  constructor(private readonly options: ImageVolumesOptions) {}

  /** The directory of a pod's volume. */
  volumeDir(uid: string, name: string): string {
    return join(this.options.root, uid, name);
  }

  /**
   * Ensures every image volume of `object` for the pod `pod` (as `ensurePodImages` named it) and
   * returns their states; `runtimeHandler` as for the pod's containers.
   */
  async sync(
    manager: ImageManager,
    pod: PodInfo,
    object: unknown,
    options: {
      runtimeHandler?: string;
      signal?: AbortSignal;
      /** Each volume's ensure result (metrics, logs, last-used times), before materialising. */
      onResult?: (volume: ImageVolumeSpec, result: EnsureImageResult) => Promise<void>;
    } = {},
  ): Promise<ImageVolumeState[]> {
    const out: ImageVolumeState[] = [];
    for (const v of podImageVolumes(object)) {
      const state = waitingState(v);
      out.push(state);
      // The container name is left empty: the manager's events then name the pod, not a container.
      const r = await manager.ensureImageExists({
        pod,
        container: {
          name: '',
          image: v.reference,
          ...(v.pullPolicy !== '' ? { imagePullPolicy: v.pullPolicy } : {}),
        },
        ...(options.runtimeHandler !== undefined ? { runtimeHandler: options.runtimeHandler } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
      await options.onResult?.(v, r);
      state.pullPolicy = r.pullPolicy;
      state.message = r.message;
      if (!r.ok) {
        state.reason = r.reason ?? 'ErrImagePull';
        if (r.reason !== 'ImagePullBackOff') state.lastError = `${state.reason}: ${r.message}`;
        continue;
      }
      state.imageRef = r.imageRef;
      state.path = this.volumeDir(pod.uid, v.name);
      try {
        await this.materialize(pod.uid, v, state, options);
      } catch (e) {
        const err = toKimgError(e);
        state.reason = 'CreateContainerConfigError';
        state.message = `image volume ${v.name}: ${err.code}: ${err.message}`;
        state.lastError = state.message;
      }
    }
    return out;
  }

  /** Materialises one pulled volume unless its directory already holds the same manifest digest. */
  private async materialize(
    uid: string,
    v: ImageVolumeSpec,
    state: ImageVolumeState,
    options: { runtimeHandler?: string; signal?: AbortSignal },
  ): Promise<void> {
    const source = this.options.source;
    if (source === undefined) {
      throw new KimgError(
        'IMAGE_NOT_PRESENT',
        `${v.reference} is not in kimg's store: image volumes are materialised from kimg's store only`,
      );
    }
    const dir = this.volumeDir(uid, v.name);
    const marker = dir + DIGEST_SUFFIX;
    const spec = {
      ...(options.runtimeHandler !== undefined ? { runtimeHandler: options.runtimeHandler } : {}),
    };
    const previous = readMarker(marker);
    const record = await lookupImage(source.images, v.reference, {
      runtimeHandler: options.runtimeHandler ?? '',
    });
    if (previous !== undefined && previous.digest === record.manifestDigest && exists(dir)) {
      setReady(state, previous);
      return;
    }
    const tmp = `${dir}.tmp-${process.pid}`;
    removeTree(tmp);
    mkdirSync(join(this.options.root, uid), { recursive: true, mode: 0o700 });
    // Materialise into a fresh directory first: the digest decides whether anything changes.
    const result = await materializeImageVolume(source, v.reference, tmp, {
      ...spec,
      rootless: process.getuid?.() !== 0,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    makeReadOnly(tmp);
    removeTree(marker);
    removeTree(dir);
    renameSync(tmp, dir);
    const done: Marker = { digest: result.manifestDigest, kind: result.kind, files: result.files ?? [] };
    await writeFileAtomic(marker, JSON.stringify(done) + '\n');
    setReady(state, done);
  }

  /** Removes every volume of a pod (the pod went away). */
  remove(uid: string): void {
    removeTree(join(this.options.root, uid));
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** What a volume's digest file records. */
interface Marker {
  digest: string;
  kind: 'image' | 'artifact';
  files: string[];
}

function setReady(state: ImageVolumeState, m: Marker): void {
  state.state = 'Ready';
  state.reason = '';
  state.digest = m.digest;
  state.kind = m.kind;
  if (m.kind === 'artifact') state.files = m.files;
}

function readMarker(file: string): Marker | undefined {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as { digest?: unknown; kind?: unknown; files?: unknown };
    if (typeof v.digest !== 'string') return undefined;
    return {
      digest: v.digest,
      kind: v.kind === 'artifact' ? 'artifact' : 'image',
      files: Array.isArray(v.files) ? v.files.filter((f): f is string => typeof f === 'string') : [],
    };
  } catch {
    return undefined;
  }
}

/** Clears every write bit under `dir` (directories last, so the walk can still descend). Symlinks keep theirs. */
function makeReadOnly(dir: string): void {
  const st = lstatSync(dir);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    for (const e of readdirSync(dir)) makeReadOnly(join(dir, e));
    chmodSync(dir, 0o555);
    return;
  }
  chmodSync(dir, st.mode & 0o7555 & ~0o7000);
}

/** Removes a tree made read-only (directories made writable again first; symlinks never followed). */
function removeTree(p: string): void {
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    chmodSync(p, 0o700);
    for (const e of readdirSync(p)) removeTree(join(p, e));
  }
  rmSync(p, { recursive: true, force: true });
}
