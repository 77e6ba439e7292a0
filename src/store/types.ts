/**
 * The internal view of an open store that the maintenance operations (GC, verify, df, load/save)
 * work on. Not exported from the module; `Store` in `store.ts` is the public face.
 */
import type { LocalContentStore } from './content-store.js';
import type { HasherFactory } from './hasher.js';
import type { LocalImageStore, MetadataLock } from './image-store.js';
import type { StorePaths } from './paths.js';

export interface StoreContext {
  readonly paths: StorePaths;
  readonly content: LocalContentStore;
  readonly images: LocalImageStore;
  readonly hasher: HasherFactory;
  readonly withMetadataLock: MetadataLock;
  /** The start of the oldest live lease (blobs committed since then are protected from GC), if any. */
  oldestLiveLease(): Promise<Date | undefined>;
  /** Takes a lease for the duration of `fn`. */
  withLease<T>(holder: string, fn: () => Promise<T>): Promise<T>;
}
