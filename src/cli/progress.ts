/**
 * Renders pull progress events (`ImagePullEvent`, src/pull): per-layer bars with rate and ETA on a
 * TTY (redrawn in place, at most 10 times a second; an image's bars become permanent lines when it
 * finishes, followed by a summary with its download rate), JSON lines otherwise (`--progress json`, or
 * stderr is not a terminal), nothing with `--progress none`. Progress goes to stderr so stdout stays
 * the result.
 *
 * JSON lines: `{"time", "image", "type", ...}` where `image` is the argument as given on the command
 * line (the key that groups one image's lines) and `name` the canonical name (on `resolved` and
 * `committed`); the event's own fields follow; one `{"type":"summary", "size", ...stats}` line per
 * pulled image.
 */
import type { Writable } from 'node:stream';
import type { ImagePullEvent, ImagePullStats } from '../pull/index.js';
import { humanSize, truncateId } from '../store/index.js';
import { KimgError } from '../errors/index.js';

export type ProgressMode = 'auto' | 'tty' | 'json' | 'none';

export function parseProgressMode(v: string): ProgressMode {
  if (v === 'auto' || v === 'tty' || v === 'json' || v === 'none') return v;
  throw new KimgError('USAGE', `unknown --progress ${JSON.stringify(v)}: use auto, tty, json or none`, {
    input: v,
  });
}

export interface ProgressRenderer {
  /** Handles one event of the pull of `image`. */
  event(image: string, e: ImagePullEvent): void;
  /** Final line(s) for one image. */
  summary(image: string, stats: ImagePullStats, sizeBytes: number): void;
  /** Stops redrawing. */
  close(): void;
}

/** A stream progress can go to; `columns` (a TTY's width) keeps bar lines from wrapping. */
export type ProgressStream = Writable & { isTTY?: boolean; columns?: number };

/** The renderer for `mode` (`auto`: bars when `out` is a TTY, JSON lines otherwise). */
export function createProgressRenderer(mode: ProgressMode, out: ProgressStream): ProgressRenderer {
  const resolved = mode === 'auto' ? (out.isTTY ? 'tty' : 'json') : mode;
  if (resolved === 'none') return { event() {}, summary() {}, close() {} };
  if (resolved === 'json') return new JsonRenderer(out);
  return new TtyRenderer(out);
}

class JsonRenderer implements ProgressRenderer {
  constructor(private readonly out: Writable) {}
  event(image: string, e: ImagePullEvent): void {
    const { type, ...fields } = e;
    const { image: name, ...rest } = fields as typeof fields & { image?: string };
    const line = {
      time: new Date().toISOString(),
      image,
      type,
      ...(name !== undefined ? { name } : {}),
      ...rest,
    };
    this.out.write(JSON.stringify(line) + '\n');
  }
  summary(image: string, stats: ImagePullStats, size: number): void {
    this.out.write(
      JSON.stringify({ time: new Date().toISOString(), image, type: 'summary', size, ...stats }) + '\n',
    );
  }
  close(): void {}
}

interface Bar {
  image: string;
  digest: string;
  kind: string;
  total: number;
  completed: number;
  startedAt: number;
  startBytes: number;
  state: 'downloading' | 'done' | 'cached' | 'failed';
}

const BAR_WIDTH = 30;
/** Redraws at most this often. */
const REDRAW_MS = 100;

class TtyRenderer implements ProgressRenderer {
  private readonly bars = new Map<string, Bar>();
  /** Lines of the live area (the bars) currently on screen, below the permanent lines. */
  private lines = 0;
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;

  constructor(private readonly out: ProgressStream) {}

  event(image: string, e: ImagePullEvent): void {
    const key = (d: string) => `${image} ${d}`;
    switch (e.type) {
      case 'resolved':
        this.print([`${image}: resolved to ${e.digest}${e.platform ? ` (${e.platform})` : ''}`]);
        return;
      case 'layer-start':
        // A second start for the same blob (a joined download taken over) replaces the bar.
        this.bars.set(key(e.digest), {
          image,
          digest: e.digest,
          kind: e.kind,
          total: e.size,
          completed: e.resumedFrom,
          startedAt: Date.now(),
          startBytes: e.resumedFrom,
          state: e.cached ? 'cached' : 'downloading',
        });
        break;
      case 'bytes': {
        const b = this.bars.get(key(e.digest));
        if (b) b.completed = e.completed;
        break;
      }
      case 'layer-done': {
        const b = this.bars.get(key(e.digest));
        if (b) {
          b.completed = b.total;
          b.state = e.downloaded ? 'done' : 'cached';
        }
        break;
      }
      case 'error':
        for (const b of this.bars.values())
          if (b.image === image && b.state === 'downloading') b.state = 'failed';
        this.finish(image, []);
        return;
      case 'committed':
        return;
    }
    this.schedule();
  }

  summary(image: string, stats: ImagePullStats, size: number): void {
    const rate = stats.seconds > 0 ? stats.bytesDownloaded / stats.seconds : 0;
    this.finish(image, [
      `${image}: ${stats.blobsDownloaded} blob(s) downloaded, ${stats.blobsReused} reused` +
        (stats.blobsResumed ? `, ${stats.blobsResumed} resumed` : '') +
        `; ${humanSize(stats.bytesDownloaded)} in ${stats.seconds.toFixed(2)}s (${humanSize(Math.round(rate))}/s); image size ${humanSize(size)}`,
    ]);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dirty) this.redraw();
  }

  /** Moves `image`'s bars (in their final state) out of the live area as permanent lines, then `after`. */
  private finish(image: string, after: string[]): void {
    const now = Date.now();
    const final: string[] = [];
    for (const [k, b] of this.bars) {
      if (b.image !== image) continue;
      final.push(renderBar(b, now));
      this.bars.delete(k);
    }
    this.print([...final, ...after]);
  }

  private schedule(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.redraw();
    }, REDRAW_MS);
    this.timer.unref?.();
  }

  /** Prints permanent lines above the bars. */
  private print(lines: string[]): void {
    this.clear();
    if (lines.length) this.out.write(lines.map((l) => this.fit(l)).join('\n') + '\n');
    this.draw();
  }

  /** Cursor up over the live area and erase to the end of the screen. */
  private clear(): void {
    if (this.lines > 0) this.out.write(`\x1b[${this.lines}A\x1b[J`);
    this.lines = 0;
  }

  private redraw(): void {
    this.dirty = false;
    this.clear();
    this.draw();
  }

  private draw(): void {
    const now = Date.now();
    const rows: string[] = [];
    for (const b of this.bars.values()) rows.push(this.fit(renderBar(b, now)));
    if (rows.length) this.out.write(rows.join('\n') + '\n');
    this.lines = rows.length;
    this.dirty = false;
  }

  /** Cuts a line to the terminal width: a wrapped line would break the cursor-up count. */
  private fit(line: string): string {
    const cols = this.out.columns;
    return cols !== undefined && cols > 1 && line.length >= cols ? line.slice(0, cols - 1) : line;
  }
}

function renderBar(b: Bar, now: number): string {
  const id = `${truncateId(b.digest)} ${b.kind === 'config' ? 'config' : 'layer '}`;
  if (b.state === 'cached') return `${id}  already present (${humanSize(b.total)})`;
  const frac = b.total > 0 ? Math.min(1, b.completed / b.total) : 1;
  const filled = Math.round(frac * BAR_WIDTH);
  const bar =
    '='.repeat(Math.max(0, filled - 1)) +
    (filled > 0 ? (frac >= 1 ? '=' : '>') : '') +
    ' '.repeat(BAR_WIDTH - filled);
  const elapsed = (now - b.startedAt) / 1000;
  const rate = elapsed > 0 ? (b.completed - b.startBytes) / elapsed : 0;
  const tail =
    b.state === 'failed'
      ? 'failed'
      : b.state === 'done'
        ? 'done'
        : rate > 0 && frac < 1
          ? `ETA ${Math.ceil((b.total - b.completed) / rate)}s`
          : '';
  return `${id}  [${bar}] ${humanSize(b.completed)}/${humanSize(b.total)}  ${humanSize(Math.round(rate))}/s  ${tail}`.trimEnd();
}
