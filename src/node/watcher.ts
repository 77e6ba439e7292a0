/**
 * The static pod source: the kubelet's `staticPodPath` directory (or a single file), read on change
 * (`fs.watch`, debounced) and on a periodic rescan (the kubelet's `fileCheckFrequency`, 20 s), as the
 * kubelet's file source does. Every regular file whose name does not start with `.` is a manifest
 * (YAML or JSON, one or more documents); its `kind: Pod` objects are the file's pods, keyed by
 * `<namespace>/<name>` (namespace `default` when unset). A file that cannot be read or parsed keeps
 * the pods it had (a half-written file does not delete a pod) and is reported through `onProblem`.
 * Two files with the same pod: the first file in name order wins.
 *
 * Source: kubernetes `pkg/kubelet/config/file.go`, `file_linux.go` (watch + periodic listing, dot
 * files ignored), `common.go` (namespace default).
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readBoundedText } from '../bounded/index.js';
import { MANIFEST_LIMITS, parseKubernetesObjects } from '../credentials/index.js';
import { toKimgError } from '../errors/index.js';

/** A pod read from a manifest file. */
export interface ManifestPod {
  /** `<namespace>/<name>`. */
  key: string;
  name: string;
  namespace: string;
  file: string;
  /** The Pod object as written (before defaulting). */
  object: Record<string, unknown>;
  /** sha256 of the object's JSON: changes when the manifest changes. */
  hash: string;
}

/** Options of {@link ManifestWatcher}. */
export interface ManifestWatcherOptions {
  /** The directory (or file) to read. */
  path: string;
  /** Called with the full set of pods after every scan that changed it. */
  onPods: (pods: Map<string, ManifestPod>) => void;
  /** A file could not be read or parsed (its previous pods are kept). */
  onProblem?: (file: string, message: string) => void;
  /** Rescan period; default 20 000 ms (kubelet `fileCheckFrequency`). */
  rescanMs?: number;
  /** Debounce of watch events; default 100 ms. */
  debounceMs?: number;
}

/** Watches a static pod path (see the module comment). */
export class ManifestWatcher {
  private readonly byFile = new Map<string, ManifestPod[]>();
  private lastSignature = '';
  private fsWatcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(private readonly options: ManifestWatcherOptions) {}

  /** Scans once, then watches. Resolves after the first scan. */
  async start(): Promise<void> {
    await this.scan();
    try {
      this.fsWatcher = watch(this.options.path, { persistent: false }, () => this.kick());
      this.fsWatcher.on('error', () => undefined);
    } catch {
      // No watch (missing dir, platform limits): the periodic rescan still works.
    }
    this.timer = setInterval(() => void this.scan(), this.options.rescanMs ?? 20_000);
    this.timer.unref();
  }

  private kick(): void {
    if (this.closed) return;
    if (this.debounce !== undefined) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.scan(), this.options.debounceMs ?? 100);
    this.debounce.unref();
  }

  /** Reads the path now (serialized: a scan requested during one runs right after it). */
  scan(): Promise<void> {
    if (this.scanning !== undefined) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.again = false;
          await this.scanOnce();
        } while (this.again && !this.closed);
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private async listFiles(): Promise<string[]> {
    const p = this.options.path;
    let st;
    try {
      st = await stat(p);
    } catch {
      return [];
    }
    if (st.isFile()) return [p];
    const names = (await readdir(p).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
    const files: string[] = [];
    for (const n of names) {
      const f = join(p, n);
      const s = await stat(f).catch(() => undefined);
      if (s?.isFile()) files.push(f);
    }
    return files;
  }

  private async scanOnce(): Promise<void> {
    if (this.closed) return;
    const files = await this.listFiles();
    const present = new Set(files);
    for (const f of [...this.byFile.keys()]) if (!present.has(f)) this.byFile.delete(f);
    for (const file of files) {
      try {
        const text = await readBoundedText(file, {
          maxBytes: MANIFEST_LIMITS.maxFileBytes,
          code: 'CONFIG_INVALID',
          what: 'static pod manifest',
        });
        const pods: ManifestPod[] = [];
        for (const o of parseKubernetesObjects(text, file)) {
          if (o.kind !== 'Pod') continue;
          const namespace = o.namespace !== undefined && o.namespace !== '' ? o.namespace : 'default';
          if (o.name === '') {
            this.options.onProblem?.(file, `a Pod in ${file} has no metadata.name: it is ignored`);
            continue;
          }
          const hash = createHash('sha256').update(JSON.stringify(o.object)).digest('hex');
          pods.push({ key: `${namespace}/${o.name}`, name: o.name, namespace, file, object: o.object, hash });
        }
        this.byFile.set(file, pods);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          this.byFile.delete(file);
          continue;
        }
        this.options.onProblem?.(file, toKimgError(e).message);
      }
    }
    const all = new Map<string, ManifestPod>();
    for (const file of [...this.byFile.keys()].sort()) {
      for (const pod of this.byFile.get(file) ?? []) {
        const prev = all.get(pod.key);
        if (prev !== undefined) {
          this.options.onProblem?.(
            file,
            `pod ${pod.key} is also defined in ${prev.file}: the one in ${prev.file} is used`,
          );
          continue;
        }
        all.set(pod.key, pod);
      }
    }
    const signature = [...all.values()].map((p) => `${p.key}@${p.hash}@${p.file}`).join('\n');
    if (signature === this.lastSignature) return;
    this.lastSignature = signature;
    this.options.onPods(all);
  }

  /** Stops watching. */
  close(): void {
    this.closed = true;
    this.fsWatcher?.close();
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.debounce !== undefined) clearTimeout(this.debounce);
  }
}
