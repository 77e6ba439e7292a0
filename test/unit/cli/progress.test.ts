/**
 * The pull progress renderer (src/cli/progress.ts) against fake streams: JSON lines when the stream
 * is not a TTY, bars redrawn in place on a TTY (checked with a tiny terminal emulator that applies the
 * cursor-up/erase sequences), permanent lines and a summary with the rate when an image finishes.
 * Timers and the clock are mocked, so redraws happen exactly when the test advances time.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { createProgressRenderer, parseProgressMode } from '../../../src/cli/progress.js';
import { isKimgError } from '../../../src/errors/index.js';
import type { ImagePullEvent, ImagePullStats } from '../../../src/pull/index.js';

const D1 = `sha256:${'a1'.repeat(32)}`;
const D2 = `sha256:${'b2'.repeat(32)}`;
const D3 = `sha256:${'c3'.repeat(32)}`;
const IMG = 'example.com/app:1';

/** A stream that records every write; `isTTY`/`columns` as a terminal would have them. */
class FakeStream extends Writable {
  writes: string[] = [];
  constructor(
    readonly isTTY: boolean,
    readonly columns?: number,
  ) {
    super();
  }
  override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.writes.push(c.toString('utf8'));
    cb();
  }
  get text(): string {
    return this.writes.join('');
  }
}

const ESC = '\u001b';
/** Cursor up n lines, erase to the end of the screen. */
const CURSOR = new RegExp(`${ESC}\\[(\\d+)A${ESC}\\[J`, 'g');

/** Applies the output to a screen: text lines, and `ESC[nA ESC[J` = go up n lines, erase below. */
function screen(text: string): string[] {
  const lines: string[] = [];
  let pending = '';
  let last = 0;
  const addText = (t: string) => {
    const parts = (pending + t).split('\n');
    pending = parts.pop() ?? '';
    lines.push(...parts);
  };
  for (const m of text.matchAll(CURSOR)) {
    addText(text.slice(last, m.index));
    assert.equal(pending, '', 'the cursor is at the start of a line before moving up');
    const n = Number(m[1]);
    assert.ok(n <= lines.length, `moves up ${n} lines but only ${lines.length} are on screen`);
    lines.splice(lines.length - n, n);
    last = (m.index ?? 0) + m[0].length;
  }
  addText(text.slice(last));
  assert.equal(pending, '', 'output ends with a newline');
  return lines;
}

const stats = (over: Partial<ImagePullStats> = {}): ImagePullStats => ({
  blobsDownloaded: 2,
  blobsReused: 1,
  blobsResumed: 0,
  bytesDownloaded: 0,
  seconds: 0,
  ...over,
});

describe('parseProgressMode', () => {
  test('accepts auto, tty, json and none; anything else is USAGE', () => {
    for (const m of ['auto', 'tty', 'json', 'none'] as const) assert.equal(parseProgressMode(m), m);
    for (const bad of ['', 'bars', 'JSON', 'true']) {
      assert.throws(
        () => parseProgressMode(bad),
        (e: unknown) => isKimgError(e, 'USAGE') && e.message.includes(JSON.stringify(bad)),
      );
    }
  });
});

describe('JSON lines', () => {
  test('one JSON object per event: image as given, the canonical name apart, a summary line', () => {
    const out = new FakeStream(false);
    const r = createProgressRenderer('auto', out);
    const events: ImagePullEvent[] = [
      {
        type: 'resolved',
        image: 'docker.io/library/app:1',
        digest: D1,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        manifestDigest: D1,
        platform: 'linux/amd64',
      },
      { type: 'layer-start', digest: D2, size: 10, kind: 'layer', cached: false, resumedFrom: 0 },
      { type: 'bytes', digest: D2, completed: 10, total: 10 },
      { type: 'layer-done', digest: D2, size: 10, downloaded: true },
      { type: 'committed', image: 'docker.io/library/app:1', id: D3, digest: D1, size: 99 },
    ];
    for (const e of events) r.event('app:1', e);
    r.summary('app:1', stats({ bytesDownloaded: 10, seconds: 0.5 }), 99);
    r.close();
    const lines = out.text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 6);
    for (const l of lines) {
      assert.equal(l.image, 'app:1', 'image is the argument as given');
      assert.ok(!Number.isNaN(Date.parse(String(l.time))));
    }
    assert.deepEqual(
      lines.map((l) => l.type),
      ['resolved', 'layer-start', 'bytes', 'layer-done', 'committed', 'summary'],
    );
    assert.equal(lines[0]?.name, 'docker.io/library/app:1');
    assert.equal(lines[0]?.digest, D1);
    assert.equal(lines[0]?.platform, 'linux/amd64');
    assert.deepEqual(
      { ...lines[2], time: 0 },
      { time: 0, image: 'app:1', type: 'bytes', digest: D2, completed: 10, total: 10 },
    );
    assert.equal(lines[4]?.name, 'docker.io/library/app:1');
    assert.equal(lines[4]?.id, D3);
    assert.deepEqual(
      { ...lines[5], time: 0 },
      { time: 0, image: 'app:1', type: 'summary', size: 99, ...stats({ bytesDownloaded: 10, seconds: 0.5 }) },
    );
    assert.ok(!out.text.includes('\x1b'), 'no escape sequences in JSON mode');
  });

  test('--progress json on a TTY is JSON too; none writes nothing', () => {
    const tty = new FakeStream(true, 80);
    const j = createProgressRenderer('json', tty);
    j.event(IMG, { type: 'layer-done', digest: D1, size: 1, downloaded: true });
    assert.equal((JSON.parse(tty.text) as { type: string }).type, 'layer-done');
    for (const s of [new FakeStream(true, 80), new FakeStream(false)]) {
      const n = createProgressRenderer('none', s);
      n.event(IMG, { type: 'layer-done', digest: D1, size: 1, downloaded: true });
      n.summary(IMG, stats(), 1);
      n.close();
      assert.deepEqual(s.writes, []);
    }
  });
});

describe('TTY bars', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  test('bars redraw in place at most every 100 ms; finished images leave permanent lines and a summary with MB/s', () => {
    const out = new FakeStream(true, 200);
    const r = createProgressRenderer('auto', out);
    r.event(IMG, {
      type: 'resolved',
      image: IMG,
      digest: D1,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifestDigest: D2,
      platform: 'linux/arm64/v8',
    });
    assert.deepEqual(
      screen(out.text),
      [`${IMG}: resolved to ${D1} (linux/arm64/v8)`],
      'resolved prints at once',
    );

    r.event(IMG, {
      type: 'layer-start',
      digest: D2,
      size: 500,
      kind: 'config',
      cached: false,
      resumedFrom: 0,
    });
    r.event(IMG, {
      type: 'layer-start',
      digest: D3,
      size: 2_000_000,
      kind: 'layer',
      cached: false,
      resumedFrom: 0,
    });
    const before = out.writes.length;
    for (let i = 1; i <= 50; i++)
      r.event(IMG, { type: 'bytes', digest: D3, completed: i * 1000, total: 2_000_000 });
    assert.equal(out.writes.length, before, 'nothing is drawn before the redraw interval');
    mock.timers.tick(1000);
    r.event(IMG, { type: 'bytes', digest: D3, completed: 1_000_000, total: 2_000_000 });
    mock.timers.tick(100);
    let s = screen(out.text);
    assert.equal(s.length, 3, `one permanent line and two bars: ${JSON.stringify(s)}`);
    assert.equal(s[1], `${D2.slice(7, 20)} config  [                              ] 0B/500B  0B/s`);
    assert.equal(
      s[2],
      `${D3.slice(7, 20)} layer   [==============>               ] 1MB/2MB  909kB/s  ETA 2s`,
    );

    // More progress: the bars are redrawn over themselves, the screen does not grow.
    const redrawStart = out.text.length;
    r.event(IMG, { type: 'bytes', digest: D2, completed: 500, total: 500 });
    r.event(IMG, { type: 'layer-done', digest: D2, size: 500, downloaded: true });
    r.event(IMG, { type: 'bytes', digest: D3, completed: 1_500_000, total: 2_000_000 });
    mock.timers.tick(100);
    const redraw = out.text.slice(redrawStart);
    assert.equal([...redraw.matchAll(CURSOR)].length, 1, 'exactly one redraw for the interval');
    assert.ok(redraw.startsWith('\x1b[2A\x1b[J'), 'up over the two bars, erase, draw again');
    s = screen(out.text);
    assert.equal(s.length, 3);
    assert.match(s[1]!, /config {2}\[={30}\] 500B\/500B {2}\d+B\/s {2}done$/);
    assert.match(s[2]!, /layer {3}\[={22}> {7}\] 1\.5MB\/2MB .* ETA 1s$/);

    r.event(IMG, { type: 'layer-done', digest: D3, size: 2_000_000, downloaded: true });
    r.event(IMG, { type: 'committed', image: IMG, id: D2, digest: D1, size: 2_000_600 });
    r.summary(
      IMG,
      stats({
        blobsDownloaded: 2,
        blobsReused: 0,
        blobsResumed: 1,
        bytesDownloaded: 2_000_500,
        seconds: 0.5,
      }),
      2_000_600,
    );
    s = screen(out.text);
    assert.equal(s.length, 4, JSON.stringify(s));
    assert.match(s[1]!, /config .* done$/);
    assert.match(s[2]!, /layer .*\[={30}\] 2MB\/2MB .* done$/);
    assert.equal(
      s[3],
      `${IMG}: 2 blob(s) downloaded, 0 reused, 1 resumed; 2MB in 0.50s (4MB/s); image size 2MB`,
    );
    // The finished image's lines are permanent: nothing redraws them any more.
    const end = out.text.length;
    mock.timers.tick(1000);
    r.close();
    assert.equal(out.text.length, end, 'no live area left to redraw');
  });

  test('cached layers, a resumed layer, two images, failure, and lines cut to the terminal width', () => {
    const out = new FakeStream(true, 80);
    const A = 'registry.example.com/team/a:1';
    const r = createProgressRenderer('tty', out);
    r.event(A, { type: 'layer-start', digest: D1, size: 1234, kind: 'layer', cached: true, resumedFrom: 0 });
    r.event(A, { type: 'layer-done', digest: D1, size: 1234, downloaded: false });
    r.event('b:1', {
      type: 'layer-start',
      digest: D2,
      size: 1000,
      kind: 'layer',
      cached: false,
      resumedFrom: 400,
    });
    mock.timers.tick(100);
    let s = screen(out.text);
    assert.deepEqual(s, [
      `${D1.slice(7, 20)} layer   already present (1.23kB)`,
      `${D2.slice(7, 20)} layer   [===========>                  ] 400B/1kB  0B/s`,
    ]);
    r.event('b:1', { type: 'error', code: 'NOT_FOUND', message: 'gone' });
    r.summary(A, stats({ blobsDownloaded: 0, blobsReused: 1 }), 1234);
    s = screen(out.text);
    assert.equal(s.length, 3);
    assert.match(
      s[0]!,
      /\[={11}> {18}\] 400B\/1kB {2}0B\/s {2}failed$/,
      'the failed image keeps its last state',
    );
    assert.match(s[1]!, /already present/);
    const summary = `${A}: 0 blob(s) downloaded, 1 reused; 0B in 0.00s (0B/s); image size 1.23kB`;
    assert.ok(summary.length > 80);
    assert.equal(s[2], summary.slice(0, 79), 'cut to 79 columns: a wrapped line would break the redraw');
    for (const line of s) assert.ok(line.length < 80, `${JSON.stringify(line)} fits the terminal`);
    r.close();
  });
});
