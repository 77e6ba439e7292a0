/**
 * `kimg cri …` (crictl-style client) against an in-process CRI server with a scripted image service:
 * crictl's table layouts, `-o json|yaml`, exit statuses for an absent image and an unreachable socket,
 * and `kimg serve` refusing client-side credential flags.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import type { CliContext } from '../../../src/cli/context.js';
import { runCli } from '../../../src/cli/program.js';
import { startCriServer, type CriServer } from '../../../src/cri/index.js';
import { KimgError } from '../../../src/errors/index.js';
import type { AuthConfig } from '../../../src/credentials/index.js';
import type { ImageInfo, ImageService, ImageSpec } from '../../../src/manager/index.js';
import { Sink } from '../../helpers/output.js';

const ID = 'sha256:0123456789abcdef' + '0'.repeat(48);
const IMAGES: ImageInfo[] = [
  {
    id: ID,
    repoTags: ['r.io/team/app:1', 'r.io/team/app:latest'],
    repoDigests: ['r.io/team/app@sha256:' + 'e'.repeat(64)],
    size: 12_345_678,
    pinned: false,
  },
  {
    id: 'sha256:' + 'f'.repeat(64),
    repoTags: [],
    repoDigests: ['r.io/untagged@sha256:' + 'a'.repeat(64)],
    size: 1000,
    pinned: true,
  },
];

class Fake implements ImageService {
  removed: string[] = [];
  lastAuth: AuthConfig | undefined;
  async imageStatus(spec: ImageSpec) {
    return IMAGES.find((i) => i.id === spec.image || i.repoTags.includes(spec.image));
  }
  async pullImage(spec: ImageSpec, auth: AuthConfig | undefined) {
    this.lastAuth = auth;
    if (spec.image === 'r.io/missing:1') throw new KimgError('NOT_FOUND', 'r.io/missing:1: not found');
    return ID;
  }
  async listImages() {
    return IMAGES;
  }
  async removeImage(spec: ImageSpec) {
    this.removed.push(spec.image);
  }
  async imageFsInfo() {
    return [
      {
        timestamp: 1_700_000_000_000_000_000,
        mountpoint: '/var/lib/kimg',
        usedBytes: 2_000_000,
        inodesUsed: 12,
      },
    ];
  }
}

describe('kimg cri (CLI)', () => {
  let dir = '';
  let server: CriServer;
  const fake = new Fake();

  async function kimg(...args: string[]) {
    const stdout = new Sink();
    const stderr = new Sink();
    const ctx: CliContext = { stdout, stderr, env: {}, exitStatus: 0 };
    const status = await runCli(['node', 'kimg', 'cri', '--endpoint', server.address, ...args], ctx);
    return { status, stdout: stdout.text, stderr: stderr.text };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kimg-cricli-'));
    server = await startCriServer({
      listen: join(dir, 'k.sock'),
      imageService: fake,
      version: { runtimeVersion: '1.2.3' },
    });
  });
  after(async () => {
    await server?.close({ drainTimeoutMs: 100 });
    await rm(dir, { recursive: true, force: true });
  });

  test('version: crictl layout and JSON', async () => {
    const t = await kimg('version');
    assert.equal(
      t.stdout,
      'Version:  0.1.0\nRuntimeName:  kimg\nRuntimeVersion:  1.2.3\nRuntimeApiVersion:  v1\n',
    );
    const j = JSON.parse((await kimg('version', '-o', 'json')).stdout);
    assert.deepEqual(j, {
      version: '0.1.0',
      runtimeName: 'kimg',
      runtimeVersion: '1.2.3',
      runtimeApiVersion: 'v1',
    });
  });

  test('images: one row per tag, <none> for untagged, 13-character ids; json and yaml carry the full Image', async () => {
    const t = await kimg('images');
    const lines = t.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^IMAGE\s+TAG\s+IMAGE ID\s+SIZE$/);
    assert.match(lines[1]!, /^r\.io\/team\/app\s+1\s+0123456789abc\s+12\.3MB$/);
    assert.match(lines[2]!, /^r\.io\/team\/app\s+latest\s+0123456789abc\s+12\.3MB$/);
    assert.match(lines[3]!, /^r\.io\/untagged\s+<none>\s+fffffffffffff\s+1kB$/);
    const j = JSON.parse((await kimg('images', '-o', 'json')).stdout) as { images: ImageInfo[] };
    assert.deepEqual(j.images, IMAGES);
    const y = parseYaml((await kimg('images', '-o', 'yaml')).stdout) as { images: ImageInfo[] };
    assert.deepEqual(y.images, IMAGES);
  });

  test('inspecti: JSON status; absent image → exit 3 with a message', async () => {
    const r = await kimg('inspecti', 'r.io/team/app:1');
    assert.equal(r.status, 0);
    assert.equal((JSON.parse(r.stdout) as { status: ImageInfo }).status.id, ID);
    const m = await kimg('inspecti', 'r.io/nope:1');
    assert.equal(m.status, 3);
    assert.match(m.stderr, /no such image "r\.io\/nope:1" present/);
  });

  test('pull: crictl message; --auth base64 becomes username/password; NOT_FOUND → exit 3', async () => {
    const p = await kimg('pull', 'r.io/team/app:1', '--auth', Buffer.from('u:sec-ret').toString('base64'));
    assert.equal(p.stdout, `Image is up to date for ${ID}\n`);
    assert.equal(fake.lastAuth?.username, 'u');
    assert.equal(fake.lastAuth?.password?.reveal(), 'sec-ret');
    assert.ok(!p.stdout.includes('sec-ret') && !p.stderr.includes('sec-ret'));
    const nf = await kimg('pull', 'r.io/missing:1');
    assert.equal(nf.status, 3);
    assert.match(nf.stderr, /NotFound/);
  });

  test('rmi: removes by id and prints Deleted per tag; absent → exit 3', async () => {
    const r = await kimg('rmi', 'r.io/team/app:1');
    assert.equal(r.stdout, 'Deleted: r.io/team/app:1\nDeleted: r.io/team/app:latest\n');
    assert.deepEqual(fake.removed, [ID]);
    assert.equal((await kimg('rmi', 'r.io/nope:1')).status, 3);
  });

  test('imagefsinfo: JSON by default, table on request', async () => {
    const j = JSON.parse((await kimg('imagefsinfo')).stdout) as {
      imageFilesystems: Array<{ mountpoint: string; usedBytes: number }>;
    };
    assert.equal(j.imageFilesystems[0]?.mountpoint, '/var/lib/kimg');
    assert.equal(j.imageFilesystems[0]?.usedBytes, 2_000_000);
    assert.match(
      (await kimg('imagefsinfo', '-o', 'table')).stdout,
      /\/var\/lib\/kimg\s+2MB\s+12\s+2023-11-14T/,
    );
  });

  test('an unreachable socket fails with RUNTIME_UNAVAILABLE (exit 5) naming it', async () => {
    const stdout = new Sink();
    const stderr = new Sink();
    const sock = join(dir, 'nobody.sock');
    const status = await runCli(['node', 'kimg', 'cri', '--endpoint', `unix://${sock}`, 'images'], {
      stdout,
      stderr,
      env: {},
      exitStatus: 0,
    });
    assert.equal(status, 5);
    assert.ok(stderr.text.includes(sock), stderr.text);
    // The system error in kimg's words, not grpc-js's connection text with its empty resolver note.
    assert.match(stderr.text, /the socket does not exist \(ENOENT\); check that it is running/);
    assert.doesNotMatch(stderr.text, /Resolution note|Last error|: ;/);
  });

  test('kimg serve has no --creds (credentials come with each PullImage)', async () => {
    const stdout = new Sink();
    const stderr = new Sink();
    const status = await runCli(
      ['node', 'kimg', 'serve', '--listen', join(dir, 's.sock'), '--creds', 'u:p'],
      {
        stdout,
        stderr,
        env: {},
        exitStatus: 0,
      },
    );
    assert.equal(status, 2);
    assert.match(stderr.text, /unknown option '--creds'/);
  });
});
