/**
 * Comparing CRI views of an image: what a CRI ImageStatus says that an image service decides (id,
 * repo tags, repo digests, size, user, pinned), in a form `assert.deepEqual` compares, and a poll for
 * containerd's CRI plugin, which learns of image records another client creates from containerd's
 * image events, asynchronously.
 */
import type { CriImageService } from '../../src/cri/index.js';
import type { ImageInfo } from '../../src/manager/index.js';

/** The comparable part of an ImageStatus answer (`'absent'` when there is none). */
export function observeImage(i: ImageInfo | undefined): unknown {
  if (i === undefined) return 'absent';
  return {
    id: i.id,
    repoTags: [...i.repoTags].sort(),
    repoDigests: [...i.repoDigests].sort(),
    size: i.size,
    uid: i.uid ?? null,
    username: i.username ?? null,
    pinned: i.pinned,
  };
}

/**
 * Polls `cri`'s ImageStatus of `image` until its observation equals `expected`; returns the last
 * observation (equal, or what it was after about 10 s).
 */
export async function criEventually(
  cri: CriImageService,
  image: string,
  expected: unknown,
): Promise<unknown> {
  let last: unknown;
  for (let i = 0; i < 200; i++) {
    last = observeImage(await cri.imageStatus({ image }));
    if (JSON.stringify(last) === JSON.stringify(expected)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  return last;
}
