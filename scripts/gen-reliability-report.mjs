#!/usr/bin/env node
// Regenerates docs/reliability.md: runs the reliability tests — crash points, fault
// kinds, property tests of every parser, the canary run, the soak — with KIMG_RELIABILITY_DIR set so
// each writes a JSON summary, then tabulates what was tried and the result.
//
//   node scripts/gen-reliability-report.mjs [--fuzz-runs N] [--soak-short] [--crash-points N]
//
// --fuzz-runs: cases per property (default 10000, what `npm test` runs; `npm run fuzz` uses 100000).
// --soak-short: run the short soak test (40 pulls, 4 clients, 8 images) instead of `bench/soak.ts` at
// its full size (200 pulls, 16 clients, 20 images; a few seconds here). --crash-points: SIGKILL points of the pull crash test (default: its own, 100).
// Needs `npm run build` first (`npm run docs:reliability` does both). Exit 1 when a test failed (the
// report is written all the same, saying so).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    'fuzz-runs': { type: 'string', default: '10000' },
    'soak-short': { type: 'boolean', default: false },
    'crash-points': { type: 'string' },
  },
});
const repo = new URL('..', import.meta.url).pathname;
const dist = join(repo, 'dist');
const out = mkdtempSync(join(tmpdir(), 'kimg-reliability-'));
const fuzzRuns = Number(values['fuzz-runs']);

/** Runs node --test on compiled files; returns {ok, pass, fail, ms, tail}. */
function runTests(files, env = {}) {
  const t0 = Date.now();
  const r = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-timeout=600000', ...files.map((f) => join(dist, f))],
    {
      env: { ...process.env, KIMG_RELIABILITY_DIR: out, ...env },
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  const text = `${r.stdout}\n${r.stderr}`;
  const num = (k) => Number(new RegExp(`^# ${k} (\\d+)`, 'm').exec(r.stdout)?.[1] ?? 0);
  const res = { ok: r.status === 0, pass: num('pass'), fail: num('fail'), ms: Date.now() - t0, text };
  process.stderr.write(
    `  ${files.join(' ')}: ${res.ok ? 'ok' : 'FAILED'} (${res.pass} pass, ${res.fail} fail, ${(res.ms / 1000).toFixed(1)} s)\n`,
  );
  if (!res.ok)
    process.stderr.write(
      text
        .split('\n')
        .filter((l) => /not ok|error|Error/.test(l))
        .slice(0, 20)
        .join('\n') + '\n',
    );
  return res;
}
const json = (name) => {
  const p = join(out, name);
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : undefined;
};
const count = (file, re) => (readFileSync(join(repo, file), 'utf8').match(re) ?? []).length;

process.stderr.write(`reliability report: summaries in ${out}\n`);

// 1. crash consistency
const crash = runTests(
  ['test/integration/crash-100.test.js'],
  values['crash-points'] ? { KIMG_CRASH_POINTS: values['crash-points'] } : {},
);
const c = json('crash-100.json');

// 2. faults
const faults = runTests(['test/unit/registry/faults.test.js', 'test/unit/registry/faults-more.test.js']);
const fm = json('faults-more.json');
const faultTests = count('test/unit/registry/faults.test.ts', /^\s+test\('/gm);

// 3. fuzzing: every parser's property tests
const parsers = [
  ['image references', 'test/unit/reference/properties.test.js'],
  ['platforms', 'test/unit/platform/platform.test.js'],
  [
    'docker config.json, Secrets, CredentialProviderConfig, plugin responses, keyring',
    'test/unit/credentials/properties.test.js',
  ],
  ['KubeletConfiguration / KimgConfiguration', 'test/unit/config/properties.test.js'],
  ['WWW-Authenticate', 'test/unit/registry/www-authenticate.test.js'],
  ['hosts.toml', 'test/unit/registry/hosts.test.js'],
  [
    'registry manifests / indexes and token responses (over HTTP)',
    'test/unit/registry/manifest-properties.test.js',
  ],
  ['store records, index.json, manifest blobs', 'test/unit/store/records.test.js'],
  ['pull records', 'test/unit/manager/pull-records-properties.test.js'],
  ['HTTP/1.1 response heads and body framing (blob client)', 'test/unit/registry/h1.test.js'],
];
const fuzz = parsers.map(([name, file]) => {
  const src = file.replace(/\.js$/, '.ts');
  const properties = count(src, /fc\.assert\(/g);
  // A property with a fixed count (`fuzzParams(40)`: one that talks to a socket per case) runs that
  // many cases whatever KIMG_FUZZ_RUNS says.
  const text = readFileSync(join(repo, src), 'utf8');
  const fixed = [...text.matchAll(/fuzzParams\((\d+)\)/g)].map((m) => Number(m[1]));
  const runs = (properties - fixed.length) * fuzzRuns + fixed.reduce((a, b) => a + b, 0);
  const r = runTests([file], { KIMG_FUZZ_RUNS: String(fuzzRuns) });
  // onlyCodedErrors / the manifest properties fail with "uncoded error for …": count those failures
  const uncoded = (r.text.match(/uncoded error for /g) ?? []).length;
  return { name, file: src, properties, runs, ok: r.ok, uncoded };
});

// 4. canaries
const canary = runTests(['test/integration/canary.test.js']);
const cn = json('canary.json');

// 5. soak
let soak;
let soakOk;
if (!values['soak-short']) {
  const r = spawnSync(process.execPath, [join(dist, 'bench/soak.js'), '--out', join(out, 'soak.json')], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  soakOk = r.status === 0;
  soak = json('soak.json');
} else {
  const r = runTests(['test/integration/soak-short.test.js']);
  soakOk = r.ok;
  soak = json('soak-short.json');
}

// 6. hostile inputs: registries, pod specs, layouts, plugins, floods (docs/security.md)
const hostileFiles = [
  ['terminal output', 'test/unit/gotext/terminal.test.js'],
  ['CLI output', 'test/unit/cli/hostile-output.test.js'],
  ['bounded reads', 'test/unit/bounded/bounded.test.js'],
  ['pod specs, secrets, plugins, --creds', 'test/unit/credentials/hostile-inputs.test.js'],
  ['OCI layouts (`kimg load`)', 'test/unit/store/hostile-layout.test.js'],
  ['registry against the pull', 'test/unit/pull/hostile-registry.test.js'],
  ['admission floods', 'test/unit/admission/flood.test.js'],
  ['status page streams', 'test/unit/node/status-stream.test.js'],
  ['`pin` manifests and stdin, unbound --creds', 'test/unit/cli/pin-bounded.test.js'],
  // Files that also test other things: only the cases whose names match are listed.
  ['node agent exit status', 'test/integration/node-agent.test.js', /--once/],
];
const hostile = hostileFiles.map(([area, file, only]) => {
  const r = runTests([file]);
  const lines = r.text.split('\n');
  const cases = [];
  lines.forEach((l, i) => {
    const m = /^\s*(ok|not ok) \d+ - (.+)$/.exec(l);
    if (!m) return;
    // Suites (describe blocks) report too: keep the tests only.
    if (lines.slice(i + 1, i + 6).some((x) => /type: 'suite'/.test(x))) return;
    if (only !== undefined && !only.test(m[2])) return;
    cases.push({ name: m[2], ok: m[1] === 'ok' });
  });
  return { area, file: file.replace(/\.js$/, '.ts'), ok: r.ok, cases };
});

const yes = (b) => (b ? 'pass' : '**FAIL**');
const lines = [];
const L = (s = '') => lines.push(s);
L('# Reliability and security proofs');
L();
L(
  `Generated by \`npm run docs:reliability\` (\`scripts/gen-reliability-report.mjs\`) on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.`,
);
L(
  'Every number below comes from a run of the tests named, not from their constants; re-run the script to refresh it.',
);
L();
L('| Area | What was tried | Result |');
L('| --- | --- | --- |');
if (c) {
  L(
    `| Crash consistency (\`test/integration/crash-100.test.ts\`, seed ${c.seed}) | SIGKILL at **${c.pull.kills}** points over \`kimg pull\` of a 6 × 2 MiB image (${c.pull.rounds} rounds, ${c.pull.completingPulls} completing pulls, ${c.pull.resumedPulls} resumed), **${c.rmi.kills}** during \`kimg rmi a b c …\` (${c.rmi.midway} left it half done), **${c.gc.kills}** during \`kimg store gc\` (${c.gc.midway} half done); after each kill: every blob re-hashed, index.json and records parsed, every committed image checked whole; a completing pull (resuming) + \`kimg store verify\` every 20th pull round and at the end, a completing rmi/gc + verify after every rmi/gc kill | ${yes(crash.ok)}: **${c.corruptBlobs}** corrupt blobs, **${c.lostImages}** lost images |`,
  );
} else L(`| Crash consistency | crash-100 did not write its summary | ${yes(false)} |`);
L(
  `| Fault injection (\`faults.test.ts\`, \`faults-more.test.ts\`) | ${faultTests} scripted-server scenarios (truncation, ignored Range, wrong bytes, 429 + Retry-After, 503 bursts, stalls, abort, unreachable, cross-host redirect, auth and token faults, manifests, mirrors, push) + **${fm?.kinds.length ?? 0}** more fault cases (table below): ${fm ? [...new Set(fm.kinds.map((k) => k.kind.replace(/ (\(.*\)|".*")$/, '')))].join('; ') : '—'} | ${yes(faults.ok)}: each ends in a documented code or a correct retry (${fm ? [...new Set(fm.kinds.map((k) => k.outcome))].join(', ') : ''}) |`,
);
const totalRuns = fuzz.reduce((n, f) => n + f.runs, 0);
L(
  `| Fuzzing (fast-check, ${fuzzRuns.toLocaleString('en')} cases per property unless fixed) | **${fuzz.reduce((n, f) => n + f.properties, 0)}** properties over ${fuzz.length} parser groups, **${totalRuns.toLocaleString('en')}** cases | ${yes(fuzz.every((f) => f.ok))}: **${fuzz.reduce((n, f) => n + f.uncoded, 0)}** uncoded errors |`,
);
if (cn) {
  L(
    `| Secrets (\`canary.test.ts\`) | one canary password through **${cn.sources.length}** sources (${cn.sources.join(', ')}); ${cn.commands} kimg commands with \`KIMG_DEBUG=1\`; searched stdout/stderr of all, the \`kimg serve\` and \`kimg node\` logs, the node agent's metrics scrape, status page HTML and JSON API, ${cn.filesSearched} files under the store roots (records, pull records, back-off, blobs): ${(cn.bytesSearched / 1024).toFixed(0)} KiB | ${yes(canary.ok)}: **${cn.leaks}** leaked canaries, **${cn.modeViolations}** files/dirs not 0600/0700, **${cn.blobHostAuthorization}** Authorization headers on the redirect blob host |`,
  );
} else L(`| Secrets | canary did not write its summary | ${yes(false)} |`);
if (soak) {
  L(
    `| Load (${values['soak-short'] ? '`soak-short.test.ts`; `npm run soak` is 200 / 16 / 20' : '`bench/soak.ts`, as `npm run soak`; `soak-short.test.ts` in `npm test` is 40 / 4 / 8'}, seed ${soak.seed}) | ${soak.pulls} PullImage calls of ${soak.images} images with overlapping layers from ${soak.clients} concurrent CRI clients through \`kimg serve\`; ${soak.cancelled} cancelled, ${soak.removes} RemoveImage | ${yes(soakOk)}: ${soak.completed} completed, ${soak.failed.length} failed, no deadlock; ${soak.pullsPerSecond} pulls/s, p50 ${soak.latencyMs.p50} ms, p99 ${soak.latencyMs.p99} ms; ${soak.registry.fullBlobGets} whole blob GETs for ${soak.registry.blobDigests} digests (${soak.registry.extraFullGets} extra, after cancellations); RSS ${(soak.rssBytes.afterWarmup / 2 ** 20).toFixed(1)} → ${(soak.rssBytes.end / 2 ** 20).toFixed(1)} MiB (×${soak.rssBytes.ratio}); store verify ${soak.verifyClean ? 'clean' : 'NOT clean'} |`,
  );
} else L(`| Load | the soak did not write its summary | ${yes(false)} |`);
L();
L('## Property tests per parser');
L();
L('| Parser | Test file | Properties | Cases | Result |');
L('| --- | --- | --- | --- | --- |');
for (const f of fuzz)
  L(`| ${f.name} | \`${f.file}\` | ${f.properties} | ${f.runs.toLocaleString('en')} | ${yes(f.ok)} |`);
L();
L('## Fault kinds added in `faults-more.test.ts`');
L();
L('| Fault | Outcome |');
L('| --- | --- |');
for (const k of fm?.kinds ?? []) L(`| ${k.kind.replace(/\|/g, '\\|')} | ${k.outcome} |`);
L();
L('## Hostile inputs');
L();
L('What an attacker or an unlucky operator can hand kimg (the trust boundaries of `docs/security.md`),');
L('each case run against the real component: a scripted registry, crafted files, real plugin processes.');
L();
L('| Area | Test file | Case | Result |');
L('| --- | --- | --- | --- |');
for (const h of hostile)
  for (const c of h.cases)
    L(`| ${h.area} | \`${h.file}\` | ${c.name.replace(/\|/g, '\\|')} | ${yes(c.ok)} |`);
L();
L('## How to reproduce');
L();
L(
  '- `npm test` runs the short versions: crash-100 (100 pull kills, 15 rmi, 15 gc), faults, properties at 10,000 cases, canary, soak-short.',
);
L('- `npm run fuzz`: every property at 100,000 cases. `npm run soak`: the full soak.');
L(
  '- Replay: `KIMG_CRASH_SEED`, `KIMG_FUZZ_SEED`, `KIMG_SOAK_SEED`; scale: `KIMG_CRASH_POINTS`, `KIMG_CRASH_OP_POINTS`, `KIMG_FUZZ_RUNS`.',
);
L();
L('Also in `npm test`, not counted above: `pull-crash.test.ts` (22 kills of a 64 MiB pull) and');
L('`store-crash.test.ts` (24 kills of random store writes).');
L();
const doc = join(repo, 'docs', 'reliability.md');
writeFileSync(doc, lines.join('\n'));
// `npm run lint` checks docs with prettier: format the tables as it would
const prettier = join(repo, 'node_modules', '.bin', 'prettier');
if (existsSync(prettier)) spawnSync(prettier, ['--write', doc], { stdio: 'ignore' });
rmSync(out, { recursive: true, force: true });
const ok =
  crash.ok && faults.ok && fuzz.every((f) => f.ok) && canary.ok && soakOk && hostile.every((h) => h.ok);
process.stderr.write(`wrote docs/reliability.md (${ok ? 'all passed' : 'SOME FAILED'})\n`);
process.exit(ok ? 0 : 1);
