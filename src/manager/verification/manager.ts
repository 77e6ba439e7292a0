/**
 * `PullRecordsVerifier`: the image manager's `CredentialVerifier` over a `PullRecordsAccessor` (the
 * state, `../pull-records.ts`) — pull intents around every pull, pulled records merged after it,
 * reconciliation of interrupted pulls on start, pruning after image removal (kubelet
 * `image_pull_manager.go`); and `openNodeVerifier`, which opens it over a node root.
 */
import { KimgError, quote, toKimgError } from '../../errors/index.js';
import type { ImagePullCredentialsVerificationPolicy, KubeletImageConfig } from '../../config/index.js';
import { systemClock, type Clock } from '../../clock/index.js';
import type { CredentialVerifier, VerificationRequest } from '../image-manager.js';
import type { CredentialCandidate, ImageInfo } from '../image-service.js';
import {
  FilePullRecords,
  credentialMappingOf,
  pullRecordFileName,
  type ImagePullCredentials,
  type ImagePulledRecord,
  type PullRecordProblem,
  type PullRecordsAccessor,
} from '../pull-records.js';
import {
  mergePulledRecord,
  podPullCredentials,
  pulledCredentialsFor,
  recordImageName,
} from './credentials.js';
import {
  type VerificationInput,
  type VerificationVerdict,
  describeVerdict,
  mustAttemptImagePull,
  redactPulledRecord,
  redactVerdict,
} from './decision.js';
import { AllowlistMatcher, TEMP_FILE_GRACE_MS, normalizeVerificationPolicy } from './policy.js';

/** Serializes async work per key. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** Something the verifier noticed and carried on from (a record write failed, a corrupt file). */
export interface VerifierNotice {
  message: string;
  image?: string;
  imageRef?: string;
  cause?: unknown;
}

/** Options of `PullRecordsVerifier`. */
export interface PullRecordsVerifierOptions {
  records: PullRecordsAccessor;
  /** `imagePullCredentialsVerificationPolicy`; default `NeverVerifyPreloadedImages`. */
  policy?: string;
  /** `preloadedImagesVerificationAllowlist` (only with `NeverVerifyAllowlistedImages`). */
  allowlist?: readonly string[];
  /** Default the system clock (record times). */
  clock?: Clock;
  /** Where failures the kubelet only logs go; default: dropped. Must not throw. */
  onNotice?: (notice: VerifierNotice) => void;
}

/** What `initialize` / `repair` did. */
export interface ReconcileReport {
  /** Intents found on start. */
  intents: string[];
  /** Intents whose image is present: turned into pulled records with no credentials, then deleted. */
  reconciled: Array<{ image: string; imageRef: string }>;
  /** Intents whose image is not present: kept (the image counts as pulled by the node if it shows up). */
  kept: string[];
  /** Files that were not readable records. */
  problems: PullRecordProblem[];
  /** What was done about each problem. */
  repairs: Array<{ file: string; action: 'removed' | 'replaced'; imageRef?: string }>;
}

/** `explain`'s answer. */
export interface VerificationExplanation {
  /** The policy in force (normalized). */
  policy: ImagePullCredentialsVerificationPolicy;
  /** The container image string and the present image's id. */
  image: string;
  imageRef: string;
  /** The decision; credential hashes shortened. */
  verdict: VerificationVerdict;
  /** Human-readable verdict. */
  summary: string;
  /** The pulled record used, redacted (hashes shortened). */
  record?: ImagePulledRecord;
  /** An intent file exists for the image string. */
  intent: boolean;
  /** Matched allowlist pattern (`NeverVerifyAllowlistedImages`). */
  allowlistedBy?: string;
}

/**
 * The kubelet's image pull manager over pull records: implements the image manager's
 * `CredentialVerifier` hook. Construct, then `initialize(imageService)` once before use (it reconciles
 * records left by an earlier run). Failures to write records after a pull are reported through
 * `onNotice` and never fail the pull (upstream logs them).
 *
 * @throws KimgError `CONFIG_INVALID` from the constructor for an unknown policy or an invalid allowlist.
 */
export class PullRecordsVerifier implements CredentialVerifier {
  readonly records: PullRecordsAccessor;
  readonly policy: ImagePullCredentialsVerificationPolicy;
  readonly allowlist: AllowlistMatcher;
  private readonly clock: Clock;
  private readonly notice: (n: VerifierNotice) => void;
  private readonly intentLocks = new KeyedMutex();
  private readonly pulledLocks = new KeyedMutex();
  private readonly intentCounts = new Map<string, number>();

  constructor(options: PullRecordsVerifierOptions) {
    this.records = options.records;
    this.policy = normalizeVerificationPolicy(options.policy);
    const allowlist = options.allowlist ?? [];
    if (allowlist.length > 0 && this.policy !== 'NeverVerifyAllowlistedImages') {
      throw new KimgError(
        'CONFIG_INVALID',
        'invalid configuration: can\'t set `preloadedImagesVerificationAllowlist` if `imagePullCredentialsVertificationPolicy` is not "NeverVerifyAllowlistedImages"',
      );
    }
    this.allowlist = new AllowlistMatcher(allowlist);
    this.clock = options.clock ?? systemClock;
    const sink = options.onNotice;
    this.notice = (n) => {
      try {
        sink?.(n);
      } catch {
        // A notice sink must not break a pull.
      }
    };
  }

  /** In-flight pulls of `image` in this process. */
  intentCount(image: string): number {
    return this.intentCounts.get(image) ?? 0;
  }

  /**
   * Reconciles records from an earlier run (upstream `initialize`): every intent whose image string is
   * one of a present image's `repoTags`/`repoDigests` becomes a pulled record with no credentials (so
   * the next pod must verify) and is deleted; other intents are kept. Then repairs unreadable files
   * (`repair`). Never throws for a bad file; a failing image service leaves the intents in place.
   */
  async initialize(imageService: { listImages(): Promise<ImageInfo[]> }): Promise<ReconcileReport> {
    const report: ReconcileReport = { intents: [], reconciled: [], kept: [], problems: [], repairs: [] };
    let images: ImageInfo[] = [];
    let imagesKnown = true;
    try {
      images = await imageService.listImages();
    } catch (e) {
      imagesKnown = false;
      this.notice({ message: 'failed to list images: pull intents stay as they are', cause: e });
    }
    const intents = await this.records.listImagePullIntents();
    report.problems.push(...intents.problems);
    report.intents = intents.items.map((i) => i.image);
    const pending = new Set(report.intents);
    if (imagesKnown) {
      for (const img of images) {
        for (const name of [...img.repoDigests, ...img.repoTags]) {
          if (!pending.has(name)) continue;
          try {
            await this.writePulledRecordIfChanged(name, img.id, undefined);
            await this.records.deleteImagePullIntent(name);
            pending.delete(name);
            report.reconciled.push({ image: name, imageRef: img.id });
          } catch (e) {
            this.notice({
              message: 'failed to turn a pull intent into a pulled record',
              image: name,
              imageRef: img.id,
              cause: e,
            });
          }
        }
      }
    }
    report.kept = [...pending];
    const pulled = await this.records.listImagePulledRecords();
    report.problems.push(...pulled.problems);
    if (imagesKnown) report.repairs = await this.repairProblems(report.problems, images);
    return report;
  }

  /**
   * Repairs unreadable record files without opening a hole (fail safe): a corrupt pulled record whose
   * file name is the hash of a present image's id is replaced by a record with no credentials (the
   * image stays "pulled by the node", so pods must verify); a corrupt intent whose name hashes to a
   * present image's tag or digest becomes such a record too; every other bad file (temp files older
   * than `TEMP_FILE_GRACE_MS`, unknown names, records of images no longer present) is removed.
   */
  async repairProblems(
    problems: readonly PullRecordProblem[],
    images: readonly ImageInfo[],
  ): Promise<ReconcileReport['repairs']> {
    const byId = new Map<string, string>();
    const byName = new Map<string, string>();
    for (const img of images) {
      byId.set(pullRecordFileName(img.id), img.id);
      for (const n of [...img.repoTags, ...img.repoDigests]) byName.set(pullRecordFileName(n), img.id);
    }
    const repairs: ReconcileReport['repairs'] = [];
    for (const p of problems) {
      if (p.problem === 'temp' && p.mtimeMs !== undefined && Date.now() - p.mtimeMs < TEMP_FILE_GRACE_MS)
        continue;
      try {
        const recordShaped = p.problem !== 'temp' && p.problem !== 'unknown-name';
        const imageRef = recordShaped
          ? p.kind === 'pulled'
            ? byId.get(p.name)
            : byName.get(p.name)
          : undefined;
        if (imageRef !== undefined) {
          await this.pulledLocks.run(imageRef, async () => {
            const fresh: ImagePulledRecord = {
              imageRef,
              lastUpdatedTime: new Date(this.clock.now()).toISOString(),
              credentialMapping: credentialMappingOf(),
            };
            if (p.kind === 'pulled') {
              await this.records.writeImagePulledRecord(fresh);
            } else {
              let existing: ImagePulledRecord | undefined;
              try {
                existing = await this.records.getImagePulledRecord(imageRef);
              } catch {
                existing = undefined;
              }
              if (existing === undefined) await this.records.writeImagePulledRecord(fresh);
              await this.records.removeProblem(p);
            }
          });
          repairs.push({ file: p.file, action: 'replaced', imageRef });
        } else {
          await this.records.removeProblem(p);
          repairs.push({ file: p.file, action: 'removed' });
        }
      } catch (e) {
        this.notice({ message: `failed to repair ${quote(p.file)}`, cause: e });
      }
    }
    return repairs;
  }

  /** Whether the node pulled the image (record or intent), and the record; throws on unreadable records. */
  private async readState(
    image: string,
    imageRef: string,
  ): Promise<{ record: ImagePulledRecord | undefined; pulledByKubelet: boolean; intent: boolean }> {
    return this.pulledLocks.run(imageRef, () =>
      this.intentLocks.run(image, async () => {
        const record = await this.records.getImagePulledRecord(imageRef);
        const intent = this.intentCount(image) > 0 || (await this.records.imagePullIntentExists(image));
        return { record, pulledByKubelet: record !== undefined || intent, intent };
      }),
    );
  }

  /**
   * Decides for one pod and one present image, merging matched credentials as upstream does. The
   * pod's credentials are resolved only when the records make them matter.
   *
   * @throws the error of `getPodCredentials` as it is (upstream returns it to the pod).
   */
  async decide(
    image: string,
    imageRef: string,
    getPodCredentials: () => Promise<CredentialCandidate[]>,
    mergeMatched = true,
  ): Promise<{ verdict: VerificationVerdict; record?: ImagePulledRecord; intent: boolean }> {
    const input: VerificationInput = {
      policy: this.policy,
      allowlist: this.allowlist,
      image,
      imageRef,
      pulledByKubelet: false,
      record: undefined,
    };
    let intent = false;
    if (imageRef !== '') {
      try {
        const state = await this.readState(image, imageRef);
        input.record = state.record;
        input.pulledByKubelet = state.pulledByKubelet;
        intent = state.intent;
      } catch (e) {
        this.notice({ message: 'unable to access the image pull records', image, imageRef, cause: e });
        input.recordsUnreadable = true;
      }
    }
    let verdict = mustAttemptImagePull(input);
    if (verdict.reason === 'credentials-needed') {
      input.podCredentials = podPullCredentials(await getPodCredentials());
      verdict = mustAttemptImagePull(input);
    }
    if (mergeMatched && verdict.merge !== undefined) {
      try {
        await this.writePulledRecordIfChanged(image, imageRef, { kubernetesSecrets: [verdict.merge] });
      } catch (e) {
        this.notice({ message: 'failed to write an image pulled record', image, imageRef, cause: e });
      }
    }
    const out: { verdict: VerificationVerdict; record?: ImagePulledRecord; intent: boolean } = {
      verdict,
      intent,
    };
    if (input.record !== undefined) out.record = input.record;
    return out;
  }

  /** The `CredentialVerifier` hook: true when the pod must pull. */
  async mustAttemptImagePull(request: VerificationRequest): Promise<boolean> {
    const { verdict } = await this.decide(request.image, request.imageRef, request.getPodCredentials);
    return verdict.mustPull;
  }

  /**
   * The decision with the record it used (redacted) and a one-line summary, for `kimg explain`.
   * Read-only: a rotated or foreign-coordinate match is reported in `verdict.merge` but not recorded.
   * Without `getPodCredentials` the pod's credentials count as none.
   */
  async explain(
    image: string,
    imageRef: string,
    getPodCredentials: () => Promise<CredentialCandidate[]> = async () => [],
  ): Promise<VerificationExplanation> {
    const { verdict, record, intent } = await this.decide(image, imageRef, getPodCredentials, false);
    const out: VerificationExplanation = {
      policy: this.policy,
      image,
      imageRef,
      verdict: redactVerdict(verdict),
      summary: describeVerdict(verdict, this.policy),
      intent,
    };
    if (record !== undefined) out.record = redactPulledRecord(record);
    const by = this.policy === 'NeverVerifyAllowlistedImages' ? this.allowlist.matchedBy(image) : undefined;
    if (by !== undefined) out.allowlistedBy = by;
    return out;
  }

  /** Before a pull: writes the intent and counts it. @throws KimgError `STORE_IO` (the pull must not start). */
  recordPullIntent(image: string): Promise<void> {
    return this.intentLocks.run(image, async () => {
      try {
        await this.records.writeImagePullIntent(image);
      } catch (e) {
        const err = toKimgError(e);
        throw new KimgError(err.code, `failed to record image pull intent: ${err.message}`, {
          input: image,
          cause: err,
        });
      }
      this.intentCounts.set(image, this.intentCount(image) + 1);
    });
  }

  /**
   * After a successful pull: merges the credential that worked into the record, then releases the
   * intent. If the record cannot be written the intent is kept, so the image still counts as pulled by
   * the node (and the next start reconciles it). Never throws.
   */
  async recordImagePulled(
    image: string,
    imageRef: string,
    credential: CredentialCandidate | undefined,
  ): Promise<void> {
    try {
      await this.writePulledRecordIfChanged(image, imageRef, pulledCredentialsFor(credential));
    } catch (e) {
      this.notice({ message: 'failed to write image pulled record', image, imageRef, cause: e });
      return;
    }
    await this.releaseIntent(image);
  }

  /** After a pull attempt that failed (or was refused by back-off): releases the intent. Never throws. */
  async recordImagePullFailed(image: string): Promise<void> {
    await this.releaseIntent(image);
  }

  private async releaseIntent(image: string): Promise<void> {
    await this.intentLocks.run(image, async () => {
      const count = this.intentCount(image);
      if (count <= 1) {
        try {
          await this.records.deleteImagePullIntent(image);
        } catch (e) {
          this.notice({ message: 'failed to remove image pull intent', image, cause: e });
          return;
        }
        this.intentCounts.delete(image);
        return;
      }
      this.intentCounts.set(image, count - 1);
    });
  }

  /**
   * Merges `creds` into the record of `imageRef` under the image's name and writes it when it changed.
   * `creds` undefined creates an empty record (image pulled under unknown circumstances).
   * @throws KimgError for an image string that does not parse, or from the accessor.
   */
  writePulledRecordIfChanged(
    image: string,
    imageRef: string,
    creds: ImagePullCredentials | undefined,
  ): Promise<void> {
    return this.pulledLocks.run(imageRef, async () => {
      const name = recordImageName(image);
      let existing: ImagePulledRecord | undefined;
      try {
        existing = await this.records.getImagePulledRecord(imageRef);
      } catch (e) {
        this.notice({
          message: 'failed to read an image pulled record: replacing it',
          image,
          imageRef,
          cause: e,
        });
        existing = undefined;
      }
      const { record, changed } = mergePulledRecord(existing, imageRef, name, creds, this.clock.now());
      if (changed) await this.records.writeImagePulledRecord(record);
    });
  }

  /**
   * Upstream `PruneUnknownRecords` (run after image GC): deletes pulled records whose image id is not
   * in `presentImageIds` and that were last updated before `untilMs`. Returns the image ids removed.
   * Listing problems are reported through `onNotice` and skipped.
   */
  async pruneUnknownRecords(presentImageIds: readonly string[], untilMs: number): Promise<string[]> {
    const { items, problems } = await this.records.listImagePulledRecords();
    for (const p of problems)
      this.notice({ message: `unreadable pull record ${quote(p.file)}: ${p.detail}` });
    const present = new Set(presentImageIds);
    const removed: string[] = [];
    for (const r of items) {
      if (!(Date.parse(r.lastUpdatedTime) < untilMs)) continue;
      if (present.has(r.imageRef)) continue;
      try {
        await this.pulledLocks.run(r.imageRef, () => this.records.deleteImagePulledRecord(r.imageRef));
        removed.push(r.imageRef);
      } catch (e) {
        this.notice({ message: 'failed to remove an image pulled record', imageRef: r.imageRef, cause: e });
      }
    }
    return removed;
  }
}

/** Options of `openNodeVerifier`. */
export interface OpenNodeVerifierOptions {
  /** The node root: records go to `<root>/pull-records/` (kimg's store root). */
  root: string;
  /** The kubelet configuration's policy and allowlist (`parseNodeConfig(...).kubelet`); default: the defaults. */
  config?: Pick<
    KubeletImageConfig,
    'imagePullCredentialsVerificationPolicy' | 'preloadedImagesVerificationAllowlist'
  >;
  /** Lists the present images for start-up reconciliation (the manager's image service). */
  imageService: { listImages(): Promise<ImageInfo[]> };
  clock?: Clock;
  onNotice?: (notice: VerifierNotice) => void;
}

/**
 * The node's verifier: `FilePullRecords` under `root`, the configured policy and allowlist, reconciled
 * with the present images. Pass the result to `new ImageManager({ verifier, ... })`; it is consulted only
 * while the `KubeletEnsureSecretPulledImages` gate is on.
 *
 * @throws KimgError `CONFIG_INVALID` (policy, allowlist), `STORE_IO` (the records directory cannot be listed).
 */
export async function openNodeVerifier(
  options: OpenNodeVerifierOptions,
): Promise<{ verifier: PullRecordsVerifier; report: ReconcileReport }> {
  const verifier = new PullRecordsVerifier({
    records: new FilePullRecords(options.root),
    policy: options.config?.imagePullCredentialsVerificationPolicy ?? '',
    allowlist: options.config?.preloadedImagesVerificationAllowlist ?? [],
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    ...(options.onNotice !== undefined ? { onNotice: options.onNotice } : {}),
  });
  const report = await verifier.initialize(options.imageService);
  return { verifier, report };
}
