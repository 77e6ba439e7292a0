/**
 * The node agent's image and install, checked without a container builder: none runs on this machine
 * (a docker client without a daemon at most), so the image is not built here. What can go wrong
 * between the repository and a running DaemonSet is checked statically, against the real tools:
 *
 * - `deploy/node-agent/Containerfile` starts from an official Debian node image of a Node.js the
 *   package supports, copies exactly the file `npm pack` writes (its name from package.json's
 *   version), and its entrypoint is a bin of the package whose file is in the packed file list;
 * - the DaemonSet runs a real command with real flags (each one in `kimg node --help`);
 * - `kubectl kustomize deploy/node-agent/` (the manifests `kubectl apply -k` applies) gives the
 *   DaemonSet the image the install instructions build and push, in docs/cluster.md and the README.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { requireBinary } from '../helpers/components.js';
import { runCommand } from '../helpers/proc.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy', 'node-agent');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  engines: { node: string };
};

interface Containerfile {
  args: Map<string, string>;
  from: string;
  copies: { from: string; to: string }[];
  entrypoint: string[];
  cmd: string[];
}

/** The instructions this Containerfile uses (continuation lines joined, comments dropped). */
function parseContainerfile(text: string): Containerfile {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const out: Containerfile = { args: new Map(), from: '', copies: [], entrypoint: [], cmd: [] };
  const expand = (s: string): string =>
    s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => {
      const v = out.args.get(a ?? b ?? '');
      assert.ok(v !== undefined, `${a ?? b} has a default`);
      return v;
    });
  for (const l of lines) {
    const [op, ...rest] = l.split(/\s+/);
    const arg = rest.join(' ');
    switch (op!.toUpperCase()) {
      case 'ARG': {
        const [k, v] = arg.split('=');
        out.args.set(k!, v ?? '');
        break;
      }
      case 'FROM':
        out.from = expand(arg);
        break;
      case 'COPY':
        assert.equal(rest.length, 2, `one source, one destination: ${l}`);
        out.copies.push({ from: expand(rest[0]!), to: rest[1]! });
        break;
      case 'ENTRYPOINT':
        out.entrypoint = JSON.parse(arg) as string[];
        break;
      case 'CMD':
        out.cmd = JSON.parse(arg) as string[];
        break;
      case 'RUN':
        break;
      default:
        assert.fail(`unexpected instruction ${op}`);
    }
  }
  return out;
}

/** `npm pack`'s file name and packed paths, without writing the tarball. */
function packed(): { filename: string; files: string[] } {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [p] = JSON.parse(out) as [{ filename: string; files: { path: string }[] }];
  return { filename: p.filename, files: p.files.map((f) => f.path) };
}

describe('the node agent image and install (static: no container builder here)', () => {
  const cf = parseContainerfile(readFileSync(join(DEPLOY, 'Containerfile'), 'utf8'));

  test('the Containerfile: an official Debian node image, the npm pack file, a packaged bin', () => {
    const m = /^docker\.io\/library\/node:(\d+)-(bookworm|trixie)(-slim)?$/.exec(cf.from);
    assert.ok(m !== null, `official Debian node image: ${cf.from}`);
    const minimum = Number(/>=\s*(\d+)/.exec(PKG.engines.node)?.[1]);
    assert.ok(Number(m[1]) >= minimum && Number(m[1]) >= 20, `Node.js ${m[1]} >= ${minimum}`);
    const pack = packed();
    assert.equal(cf.args.get('KIMG_VERSION'), PKG.version);
    assert.deepEqual(
      cf.copies.map((c) => c.from),
      [pack.filename],
      'copies exactly the tarball npm pack writes',
    );
    const bin = cf.entrypoint[0]!;
    assert.ok(PKG.bin[bin] !== undefined, `the entrypoint ${bin} is a bin of the package`);
    assert.ok(pack.files.includes(PKG.bin[bin]!), `${PKG.bin[bin]} is in the package`);
  });

  test('the DaemonSet runs a real command with real flags; the default CMD too', async () => {
    const docs = parseAllDocuments(readFileSync(join(DEPLOY, 'daemonset.yaml'), 'utf8'));
    const ds = docs[0]!.toJS() as {
      spec: { template: { spec: { containers: { command?: string[]; args: string[] }[] } } };
    };
    const c = ds.spec.template.spec.containers[0]!;
    assert.equal(c.command, undefined, 'the image entrypoint (kimg) runs');
    for (const argv of [c.args, cf.cmd]) {
      const [command, ...rest] = argv;
      const help = await runCommand('node', [CLI, command!, '--help'], { timeoutMs: 60_000 });
      assert.equal(help.code, 0, help.stderr);
      for (const a of rest.filter((x) => x.startsWith('--'))) {
        const flag = a.split('=')[0]!;
        assert.match(help.stdout, new RegExp(`(^|\\s)${flag}[ ,<]`, 'm'), `kimg ${command} has ${flag}`);
      }
    }
  });

  test('kubectl kustomize gives the DaemonSet the image the install builds and pushes', async () => {
    const kubectl = requireBinary('kubectl');
    const r = await runCommand(kubectl, ['kustomize', DEPLOY], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS() as Record<string, unknown>);
    const ds = objects.find((o) => o.kind === 'DaemonSet') as {
      spec: { template: { spec: { containers: { image: string }[] } } };
    };
    const image = ds.spec.template.spec.containers[0]!.image;
    assert.equal(image.split(':').at(-1), PKG.version, 'tagged with the package version');
    for (const doc of ['docs/cluster.md', 'README.md']) {
      const text = readFileSync(join(ROOT, doc), 'utf8');
      const built = [...text.matchAll(/-f deploy\/node-agent\/Containerfile -t (\S+)/g)].map((x) => x[1]);
      const pushed = [...text.matchAll(/docker push (\S+)/g)].map((x) => x[1]);
      assert.deepEqual(built, [image], `${doc} builds the DaemonSet's image`);
      assert.deepEqual(pushed, [image], `${doc} pushes it`);
      assert.match(text, /npm pack --pack-destination dist\/image/, `${doc} packs into the build context`);
    }
  });
});
