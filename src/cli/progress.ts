/**
 * Renders pull progress events (`ImagePullEvent`, src/store/pull.ts): per-layer bars with rate and ETA on a
 * TTY (redrawn in place, at most 10 times a second), JSON lines otherwise (`--progress json`, or stderr
 * is not a terminal), nothing with `--progress none`. Progress goes to stderr so stdout stays the result.
 */
import type { Writable } from 'node:stream';
import type { ImagePullEvent, ImagePullStats } from '../store/index.js';
import { humanSize, truncateId } from '../store/index.js';
import { KimgError } from '../errors/index.js';

export type ProgressMode = 'auto' | 'tty' | 'json' | 'none';

export function parseProgressMode(v: string): ProgressMode {
  if (v === 'auto' || v === 'tty' || v === 'json' || v === 'none') return v;
  throw new KimgError('USAGE', `unknown --progress ${JSON.stringify(v)}: use auto, tty, json or none`, { input: v });
}

export interface ProgressRenderer {
  /** Handles one event of the pull of `image`. */
  event(image: string, e: ImagePullEvent): void;
  /** Final line(s) for one image. */
  summary(image: string, stats: ImagePullStats, sizeBytes: number): void;
  /** Stops redrawing. */
  close(): void;
}

export function createProgressRenderer(mode: ProgressMode, out: Writable & { isTTY?: boolean }): ProgressRenderer {
  const resolved = mode === 'auto' ? (out.isTTY ? 'tty' : 'json') : mode;
  if (resolved === 'none') return { event() {}, summary() {}, close() {} };
  if (resolved === 'json') return new JsonRenderer(out);
  return new TtyRenderer(out);
}

class JsonRenderer implements ProgressRenderer {
  constructor(private readonly out: Writable) {}
  event(image: string, e: ImagePullEvent): void {
    this.out.write(JSON.stringify({ time: new Date().toISOString(), image, ...e }) + '\n');
  }
  summary(image: string, stats: ImagePullStats, size: number): void {
    this.out.write(JSON.stringify({ time: new Date().toISOString(), image, type: 'summary', size, ...stats }) + '\n');
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
  state: 'waiting' | 'downloading' | 'done' | 'cached';
}

const BAR_WIDTH = 30;

class TtyRenderer implements ProgressRenderer {
  private readonly bars = new Map<string, Bar>();
  private lines = 0;
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;

  constructor(private readonly out: Writable) {}

  event(image: string, e: ImagePullEvent): void {
    const key = (d: string) => `${image} ${d}`;
    switch (e.type) {
      case 'resolved':
        this.print(`${image}: resolved to ${e.digest}${e.platform ? ` (${e.platform})` : ''}`);
        return;
      case 'layer-start':
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
      case 'committed':
      case 'error':
        break;
    }
    this.schedule();
  }

  summary(image: string, stats: ImagePullStats, size: number): void {
    this.redraw();
    const rate = stats.seconds > 0 ? stats.bytesDownloaded / stats.seconds : 0;
    this.print(
      `${image}: ${stats.blobsDownloaded} blob(s) downloaded, ${stats.blobsReused} reused` +
        (stats.blobsResumed ? `, ${stats.blobsResumed} resumed` : '') +
        `; ${humanSize(stats.bytesDownloaded)} in ${stats.seconds.toFixed(2)}s (${humanSize(Math.round(rate))}/s); image size ${humanSize(size)}`,
    );
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dirty) this.redraw();
  }

  private schedule(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.redraw();
    }, 100);
    this.timer.unref();
  }

  /** Prints a permanent line above the bars. */
  private print(line: string): void {
    this.clear();
    this.out.write(line + '\n');
    this.draw();
  }

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
    for (const b of this.bars.values()) rows.push(renderBar(b, now));
    if (rows.length) this.out.write(rows.join('\n') + '\n');
    this.lines = rows.length;
  }
}

function renderBar(b: Bar, now: number): string {
  const id = `${truncateId(b.digest)} ${b.kind === 'config' ? 'config' : 'layer '}`;
  if (b.state === 'cached') return `${id}  already present (${humanSize(b.total)})`;
  const frac = b.total > 0 ? Math.min(1, b.completed / b.total) : 1;
  const filled = Math.round(frac * BAR_WIDTH);
  const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? (frac >= 1 ? '=' : '>') : '') + ' '.repeat(BAR_WIDTH - filled);
  const elapsed = (now - b.startedAt) / 1000;
  const rate = elapsed > 0 ? (b.completed - b.startBytes) / elapsed : 0;
  const eta = rate > 0 && frac < 1 ? `ETA ${Math.ceil((b.total - b.completed) / rate)}s` : b.state === 'done' ? 'done' : '';
  return `${id}  [${bar}] ${humanSize(b.completed)}/${humanSize(b.total)}  ${humanSize(Math.round(rate))}/s  ${eta}`.trimEnd();
}
