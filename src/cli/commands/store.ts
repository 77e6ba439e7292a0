/**
 * `kimg store verify|gc|df`: maintenance of the local store.
 *
 * - `verify [--repair]` re-hashes every blob, parses every record and `index.json`, finds dangling
 *   references; `--repair` quarantines damaged files under `<root>/quarantine/` and rebuilds
 *   `index.json`. Exit status 7 when problems remain.
 * - `gc [--dry-run] [--ingest-max-age 24h]` sweeps blobs no image needs and old ingests.
 * - `df` shows where the bytes are.
 */
import type { Command } from 'commander';
import { KimgError } from '../../errors/index.js';
import { durationToMs, goParseDuration } from '../../gotext/index.js';
import { humanSize, type VerifyResult } from '../../store/index.js';
import type { CliContext } from '../context.js';
import { ExitStatus } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import { addStoreOptions, withStore, type StoreCliOptions } from '../store-options.js';

/**
 * `--ingest-max-age`: a Go duration (`time.ParseDuration`, gotext's: `24h`, `1h30m`, `90s`, `0`) in
 * ms. A negative age is refused.
 */
export function parseDurationMs(text: string): number {
  const d = goParseDuration(text);
  if (!d.ok || d.ns < 0n) {
    throw new KimgError(
      'USAGE',
      `invalid duration ${JSON.stringify(text)}: write it like 24h, 90m or 1h30m${d.ok ? ' (not negative)' : ''}`,
      { input: text },
    );
  }
  return durationToMs(d.ns);
}

function renderVerify(r: VerifyResult): string {
  const head = `${r.records} image(s), ${r.blobsChecked} blob(s) checked (${humanSize(r.bytesChecked)} re-hashed)`;
  if (r.problems.length === 0) return `${head}: no problems\n`;
  const rows = r.problems.map((p) => [
    p.kind,
    p.image ?? p.file ?? p.digest ?? '',
    p.message,
    p.repaired ?? (r.repair ? 'not repaired' : ''),
  ]);
  const summary = r.ok
    ? 'all problems repaired'
    : r.repair
      ? 'problems remain'
      : 'run `kimg store verify --repair` to fix';
  return (
    `${head}: ${r.problems.length} problem(s), ${summary}\n` +
    toTable(['PROBLEM', 'WHERE', 'DETAIL', 'REPAIR'], rows)
  );
}

export function registerStore(program: Command, ctx: CliContext): void {
  const store = program.command('store').description('maintain the local store: verify, gc, df');

  addStoreOptions(
    store
      .command('verify')
      .description('re-hash every blob, check records and index.json, find dangling references')
      .option('--repair', 'quarantine damaged files and rebuild index.json', false)
      .option('-o, --output <format>', 'output format: table, json or yaml', 'table'),
  ).action(async (opts: StoreCliOptions & { repair: boolean; output: string }) => {
    const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
    const result = await withStore(opts, ctx, (s) => s.verify({ repair: opts.repair }), { reconcile: false });
    ctx.stdout.write(
      format === 'json' ? toJson(result) : format === 'yaml' ? toYaml(result) : renderVerify(result),
    );
    if (!result.ok) ctx.exitStatus = ExitStatus.STORE;
  });

  addStoreOptions(
    store
      .command('gc')
      .description('remove blobs no image needs, and ingests not updated for --ingest-max-age')
      .option('--dry-run', 'only report what would be removed', false)
      .option('--ingest-max-age <duration>', 'remove unlocked ingests older than this', '24h')
      .option('-o, --output <format>', 'output format: table, json or yaml', 'table'),
  ).action(async (opts: StoreCliOptions & { dryRun: boolean; ingestMaxAge: string; output: string }) => {
    const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
    const ingestMaxAgeMs = parseDurationMs(opts.ingestMaxAge);
    const r = await withStore(opts, ctx, (s) => s.gc({ dryRun: opts.dryRun, ingestMaxAgeMs }));
    if (format === 'json') ctx.stdout.write(toJson(r));
    else if (format === 'yaml') ctx.stdout.write(toYaml(r));
    else {
      const verb = r.dryRun ? 'Would remove' : 'Removed';
      for (const b of r.removed) ctx.stdout.write(`${verb} blob ${b.digest} (${humanSize(b.size)})\n`);
      for (const i of r.ingestsRemoved) ctx.stdout.write(`${verb} ingest ${i.ref} (${humanSize(i.bytes)})\n`);
      ctx.stdout.write(
        `${verb} ${r.removed.length} blob(s), ${humanSize(r.bytesFreed)}; ${r.ingestsRemoved.length} ingest(s); kept ${r.referenced} referenced` +
          (r.protected ? ` and ${r.protected} protected by a live pull` : '') +
          '\n',
      );
    }
  });

  addStoreOptions(
    store
      .command('df')
      .description('show disk usage of the store')
      .option('-o, --output <format>', 'output format: table, json or yaml', 'table'),
  ).action(async (opts: StoreCliOptions & { output: string }) => {
    const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
    const u = await withStore(opts, ctx, (s) => s.df());
    if (format === 'json') ctx.stdout.write(toJson(u));
    else if (format === 'yaml') ctx.stdout.write(toYaml(u));
    else {
      const row = (kind: string, c: { count: number; bytes: number }) => [
        kind,
        String(c.count),
        humanSize(c.bytes),
      ];
      ctx.stdout.write(
        `Store ${u.root}: ${u.images} image(s)\n` +
          toTable(
            ['KIND', 'COUNT', 'SIZE'],
            [
              row('blobs', u.blobs),
              row('referenced', u.referenced),
              row('reclaimable', u.reclaimable),
              row('ingests', u.ingests),
              row('quarantine', u.quarantine),
            ],
          ) +
          `Filesystem: ${humanSize(u.filesystem.totalBytes)} total, ${humanSize(u.filesystem.availableBytes)} available\n`,
      );
    }
  });
}
