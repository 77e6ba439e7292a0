/**
 * Following a pull progress stream (`/api/pulls/progress` of the node agent and of `kimg serve --http`):
 * the JSON lines it has sent so far, parsed as they arrive, until the caller closes it.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { PullProgressLine } from '../../src/pull/index.js';
import type { GeneratedImage } from './images.js';
import { waitFor } from './proc.js';

/** An open progress stream at `url`: its lines so far, and how to end it (asserts 200 and NDJSON). */
export function followProgress(url: string): Promise<{ lines: PullProgressLine[]; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      // Checked here and rejected, not thrown: a throw in this callback would never settle the promise.
      const type = String(res.headers['content-type']);
      if (res.statusCode !== 200 || !type.startsWith('application/x-ndjson')) {
        req.destroy();
        reject(new Error(`${url}: HTTP ${res.statusCode}, content-type ${type}: not a progress stream`));
        return;
      }
      const lines: PullProgressLine[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          try {
            lines.push(JSON.parse(line) as PullProgressLine);
          } catch {
            // Kept as an error line, which the caller's checks then name.
            lines.push({ name: '', image: '', progress: 0, total: 0, error: `not JSON: ${line}` });
          }
        }
      });
      res.on('error', () => {});
      resolve({ lines, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Waits for the final line of `image`'s pull on `stream` and checks the whole stream of it: the final
 * line is `done` with the image's blob bytes (`img`'s first manifest: config and layers); every blob's
 * lines name the blob, carry its size as total, never go past it nor back, and end at it. `minSteps`:
 * the first layer must show in at least that many lines (a pull caught in flight over a slow link).
 */
export async function assertStreamedToTheEnd(
  stream: { lines: PullProgressLine[] },
  image: string,
  img: GeneratedImage,
  options: { timeoutMs?: number; minSteps?: number } = {},
): Promise<void> {
  const final = await waitFor(
    'the final line of the pull',
    () => stream.lines.find((l) => l.name === image && (l.done === true || l.error !== undefined)),
    {
      timeoutMs: options.timeoutMs ?? 60_000,
      intervalMs: 20,
      describe: async () => JSON.stringify(stream.lines.slice(-5)),
    },
  );
  const m = img.manifests[0]!;
  const blobs = [m.config, ...m.layers];
  assert.deepEqual(final, {
    name: image,
    image,
    progress: final.total,
    total: blobs.reduce((n, b) => n + b.size, 0),
    done: true,
  });
  for (const b of blobs) {
    const steps = stream.lines.filter((l) => l.layer === b.digest);
    assert.ok(steps.length >= 1, `lines for ${b.digest}`);
    for (const l of steps) {
      assert.equal(l.image, image);
      assert.equal(l.name, b.digest);
      assert.equal(l.total, b.size);
    }
    const progress = steps.map((l) => l.progress);
    assert.deepEqual(
      progress,
      [...progress].sort((x, y) => x - y),
      `${b.digest}: progress never goes back`,
    );
    assert.equal(progress.at(-1), b.size);
  }
  const first = stream.lines.filter((l) => l.layer === m.layers[0]!.digest);
  assert.ok(
    first.length >= (options.minSteps ?? 1),
    `the first layer shows in steps: ${first.map((l) => l.progress).join(',')}`,
  );
}
