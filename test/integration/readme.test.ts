/**
 * Every code block of README.md runs, so the README cannot rot. Blocks are found generically (each
 * fenced block, by its language), so sections added later are covered without touching this file:
 *
 * - `sh`/`bash`/`shell`: run by bash (`set -euo pipefail`) with `kimg` on PATH (the package's bin),
 *   KIMG_ROOT, HOME and TMPDIR in a temporary directory, from the repository root.
 * - `ts`/`typescript`/`js`/`javascript`: type annotations stripped (esbuild), run as an ES module that
 *   imports the package by name (`kimg`, `kimg/reference`, ...).
 * - `yaml`: parsed; a `KubeletConfiguration` or `KimgConfiguration` must load without problems.
 *
 * Registry address `127.0.0.1:5000` and store root `/var/lib/kimg` in a block stand for a local
 * registry started here (seeded with the images in SEED below) and a temporary root. A block that
 * cannot run here (it needs a real cluster, or it is the suite itself) is marked on the line before it
 * with `<!-- readme-test: skip (why) -->`; any other block in another language fails this test.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import { parseAllDocuments } from 'yaml';
import { parseNodeConfig } from '../../src/config/index.js';
import { requireBinary } from '../helpers/components.js';
import { generateImage } from '../helpers/images.js';
import { startRegistry, type StartedRegistry } from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const README_REGISTRY = '127.0.0.1:5000';
const README_ROOT = '/var/lib/kimg';
/** Images the README's examples pull: repository:tag → generated layers. */
const SEED = {
  'small:1': [{ size: 4096 }, { size: 4096 }],
};
const SKIP = /^<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->$/;

interface Block {
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  /** Why it does not run, from its marker. */
  skip?: string;
}

/** The fenced code blocks of a Markdown text, with the skip marker on the line before each. */
export function codeBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && !/^```\s*$/.test(lines[j]!)) j++;
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const marker = k >= 0 ? SKIP.exec(lines[k]!.trim()) : null;
    blocks.push({
      line: i + 1,
      lang: open[1]!,
      code: lines.slice(i + 1, j).join('\n') + '\n',
      ...(marker ? { skip: marker[1]! } : {}),
    });
    i = j;
  }
  return blocks;
}

let work: string;
let reg: StartedRegistry;
let env: NodeJS.ProcessEnv;
let app: string;

const localize = (code: string): string =>
  code.replaceAll(README_REGISTRY, reg.host).replaceAll(README_ROOT, join(work, 'var-lib-kimg'));

before(async () => {
  requireBinary('docker-registry');
  requireBinary('skopeo');
  work = await makeTempDir('kimg-readme-');
  reg = await startRegistry({ mode: 'plain' });
  for (const [repoTag, layers] of Object.entries(SEED)) {
    const img = await generateImage(join(work, 'seed', repoTag.replace(':', '-')), {
      name: repoTag.split(':')[0]!,
      layers,
    });
    await skopeoPush(img, reg, repoTag);
  }
  // `kimg` on PATH: the package's bin, as `npm link` or a global install would put it.
  const bin = join(work, 'bin');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'kimg'),
    `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist/bin/kimg.js')}" "$@"\n`,
  );
  chmodSync(join(bin, 'kimg'), 0o755);
  for (const d of ['home', 'tmp', 'root']) mkdirSync(join(work, d));
  env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    HOME: join(work, 'home'),
    TMPDIR: join(work, 'tmp'),
    KIMG_ROOT: join(work, 'root'),
  };
  // An application directory that depends on kimg by name (this checkout).
  app = join(work, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  symlinkSync(ROOT, join(app, 'node_modules', 'kimg'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
});

after(async () => {
  await reg?.stop();
  if (work) await removeTempDir(work);
});

test('the block finder sees fences, languages and skip markers', () => {
  const md =
    'x\n<!-- readme-test: skip (needs a cluster) -->\n\n```sh\nkubectl get pods\n```\n\n```ts\nlet a = 1;\n```\n';
  assert.deepEqual(codeBlocks(md), [
    { line: 4, lang: 'sh', code: 'kubectl get pods\n', skip: 'needs a cluster' },
    { line: 8, lang: 'ts', code: 'let a = 1;\n' },
  ]);
});

test('README.md has runnable blocks of each kind, and skips only with a reason', () => {
  const blocks = codeBlocks(README);
  const run = blocks.filter((b) => b.skip === undefined).map((b) => b.lang);
  for (const lang of ['sh', 'ts', 'yaml']) assert.ok(run.includes(lang), `a runnable ${lang} block`);
  for (const b of blocks)
    if (b.skip !== undefined) assert.ok(b.skip.length > 10, `README.md:${b.line} says why`);
});

for (const block of codeBlocks(README)) {
  const name = `README.md:${block.line} (${block.lang || 'no language'})`;
  if (block.skip !== undefined) {
    test(`${name} is marked not-run: ${block.skip}`, () => undefined);
    continue;
  }
  test(`${name} runs`, () => {
    switch (block.lang) {
      case 'sh':
      case 'bash':
      case 'shell': {
        const r = spawnSync('bash', ['-c', `set -euo pipefail\n${localize(block.code)}`], {
          cwd: ROOT,
          env,
          encoding: 'utf8',
        });
        assert.equal(r.status, 0, `${name} failed:\n${r.stdout}\n${r.stderr}`);
        return;
      }
      case 'ts':
      case 'typescript':
      case 'js':
      case 'javascript': {
        const { code } = transformSync(localize(block.code), {
          loader: 'ts',
          format: 'esm',
          target: 'node20',
        });
        const file = join(app, `readme-${block.line}.mjs`);
        writeFileSync(file, code);
        const r = spawnSync(process.execPath, [file], { cwd: app, env, encoding: 'utf8' });
        assert.equal(r.status, 0, `${name} failed:\n${r.stdout}\n${r.stderr}`);
        return;
      }
      case 'yaml': {
        const docs = parseAllDocuments(block.code);
        for (const d of docs) assert.deepEqual(d.errors, [], name);
        for (const d of docs) {
          const kind = (d.toJS() as { kind?: unknown } | null)?.kind;
          if (kind === 'KubeletConfiguration' || kind === 'KimgConfiguration') {
            const cfg = parseNodeConfig(d.toString());
            assert.ok(cfg, name);
          }
        }
        return;
      }
      default:
        assert.fail(
          `${name}: no way to run a "${block.lang}" block; use sh, ts or yaml, or mark it <!-- readme-test: skip (why) -->`,
        );
    }
  });
}
