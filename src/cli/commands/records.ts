/**
 * `kimg records ls [-o table|json|yaml]` and `kimg records prune [-o …]`: the image pull records
 * (KEP-2535) kept under the store root (`<root>/pull-records/`) by `kimg ensure` and the node agent:
 * pull intents (pulls in flight, or interrupted), pulled records (which credentials pulled each image
 * id, credential hashes shortened), and files that are not readable records.
 *
 * `prune` does what the agent does on start and after image GC: intents of images now present become
 * records with no credentials (pods must verify again), unreadable files are repaired fail safe
 * (replaced by an empty record when they belong to a present image, removed otherwise), and records of
 * images no longer in the store are removed. Run it while no pull is in progress. Exit status 7 when
 * something could not be repaired (each is reported as a warning).
 *
 * Source: kubernetes `pkg/kubelet/images/pullmanager/image_pull_manager.go` (initialize,
 * PruneUnknownRecords).
 */
import type { Command } from 'commander';
import {
  FilePullRecords,
  redactPulledRecord,
  type ImageInfo,
  type ImagePullCredentials,
  type ImagePulledRecord,
  type PullRecordProblem,
} from '../../manager/index.js';
import { resolveStoreRoot, type ImageRecord } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { ExitStatus } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { loadCliNodeConfig } from '../pod-options.js';
import { addStoreOptions, type StoreCliOptions } from '../store-options.js';
import { openNodeRuntime } from '../../runtime/index.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

interface RecordsOptions extends StoreCliOptions {
  output: string;
}

/** `-o json` of `kimg records ls`. */
export interface RecordsListOutput {
  root: string;
  intents: string[];
  pulled: ImagePulledRecord[];
  problems: PullRecordProblem[];
}

function describeCredentials(c: ImagePullCredentials): string {
  if (c.nodePodsAccessible === true) return 'node-wide/anonymous';
  const parts: string[] = [];
  for (const s of c.kubernetesSecrets ?? [])
    parts.push(`secret ${s.namespace}/${s.name} ${s.credentialHash}`);
  for (const a of c.kubernetesServiceAccounts ?? []) parts.push(`serviceaccount ${a.namespace}/${a.name}`);
  return parts.length === 0 ? '(none: must verify)' : parts.join(', ');
}

/** The present images of the store as the image service lists them (ids, tags, digests). */
function imagesOf(records: ImageRecord[]): ImageInfo[] {
  const byId = new Map<string, ImageInfo>();
  for (const r of records) {
    const info = byId.get(r.imageId) ?? {
      id: r.imageId,
      repoTags: [],
      repoDigests: [],
      size: r.size,
      pinned: false,
    };
    const at = r.name.indexOf('@');
    const base = at >= 0 ? r.name.slice(0, at) : r.name;
    const slash = base.lastIndexOf('/');
    const colon = base.lastIndexOf(':');
    const repo = colon > slash ? base.slice(0, colon) : base;
    if (at < 0 && colon > slash) info.repoTags.push(r.name);
    info.repoDigests.push(`${repo}@${r.digest}`);
    byId.set(r.imageId, info);
  }
  return [...byId.values()];
}

export const registerRecords: RegisterCommand = (program: Command, ctx: CliContext) => {
  const records = program
    .command('records')
    .description(
      'show or prune the image pull records (which credentials pulled each image) under the store root',
    );

  addStoreOptions(
    records
      .command('ls')
      .description('list pull intents, pulled records (credential hashes shortened) and unreadable files')
      .option('-o, --output <format>', 'output format: table, json or yaml', 'table'),
  ).action(async (opts: RecordsOptions) => {
    const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
    const root = resolveStoreRoot({ root: opts.root, env: ctx.env });
    const accessor = new FilePullRecords(root);
    const intents = await accessor.listImagePullIntents();
    const pulled = await accessor.listImagePulledRecords();
    const out: RecordsListOutput = {
      root,
      intents: intents.items.map((i) => i.image).sort(),
      pulled: pulled.items.map(redactPulledRecord).sort((a, b) => (a.imageRef < b.imageRef ? -1 : 1)),
      problems: [...intents.problems, ...pulled.problems],
    };
    if (format === 'json') ctx.stdout.write(toJson(out));
    else if (format === 'yaml') ctx.stdout.write(toYaml(out));
    else {
      const rows: string[][] = [];
      for (const r of out.pulled) {
        const names = Object.keys(r.credentialMapping).sort();
        if (names.length === 0) rows.push([r.imageRef, '', '(none: must verify)', r.lastUpdatedTime]);
        for (const n of names) {
          rows.push([r.imageRef, n, describeCredentials(r.credentialMapping[n] ?? {}), r.lastUpdatedTime]);
        }
      }
      ctx.stdout.write(toTable(['IMAGE ID', 'NAME', 'CREDENTIALS', 'UPDATED'], rows));
      if (out.intents.length > 0) {
        ctx.stdout.write('\nPull intents (in flight or interrupted):\n');
        for (const i of out.intents) ctx.stdout.write(`  ${i}\n`);
      }
      for (const p of out.problems) {
        ctx.stderr.write(
          `warning: ${escapeTerminal(`${p.file}: ${p.problem}: ${p.detail}`)} (kimg records prune repairs it)\n`,
        );
      }
    }
  });

  addStoreOptions(
    records
      .command('prune')
      .description(
        'reconcile interrupted pulls, repair unreadable record files and remove records of images no longer stored',
      )
      .option('-o, --output <format>', 'output format: table, json or yaml', 'table'),
  ).action(async (opts: RecordsOptions) => {
    const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
    // The runtime's verifier, opened read-only (nothing reconciled at open): prune reconciles here.
    const notices: string[] = [];
    const runtime = await openNodeRuntime(await loadCliNodeConfig(undefined), {
      env: ctx.env,
      ...(opts.root !== undefined ? { root: opts.root } : {}),
      credentials: false,
      verification: 'read-only',
      onNotice: (m) => notices.push(m),
    });
    const result = await (async () => {
      try {
        const images = imagesOf(await runtime.store.images.list());
        const report = await runtime.verifier.initialize({ listImages: async () => images });
        const removed = await runtime.verifier.pruneUnknownRecords(
          images.map((i) => i.id),
          Date.now(),
        );
        return { root: runtime.store.root, ...report, removedRecords: removed, notices };
      } finally {
        await runtime.close();
      }
    })();
    if (format === 'json') ctx.stdout.write(toJson(result));
    else if (format === 'yaml') ctx.stdout.write(toYaml(result));
    else {
      for (const r of result.reconciled)
        ctx.stdout.write(`reconciled intent ${r.image} → record of ${r.imageRef} (no credentials)\n`);
      for (const k of result.kept) ctx.stdout.write(`kept intent ${k} (image not present)\n`);
      for (const r of result.repairs) {
        ctx.stdout.write(
          `${r.action} ${r.file}${r.imageRef !== undefined ? ` (empty record for ${r.imageRef})` : ''}\n`,
        );
      }
      for (const id of result.removedRecords)
        ctx.stdout.write(`removed record of ${id} (image not stored)\n`);
      for (const n of result.notices) ctx.stderr.write(`warning: ${escapeTerminal(n)}\n`);
      if (
        result.reconciled.length +
          result.repairs.length +
          result.removedRecords.length +
          result.kept.length ===
        0
      ) {
        ctx.stdout.write('nothing to prune\n');
      }
    }
    if (result.notices.length > 0) ctx.exitStatus = ExitStatus.STORE;
  });
};
