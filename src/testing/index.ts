/**
 * Test doubles for code that embeds kimg: in-memory event recorders and a disk-usage source with set
 * numbers. They implement the manager's seams (`EventRecorder`, `ImageGCEventRecorder`,
 * `FsUsageSource`) and are published as `kimg/testing`, not from the main entry, so production code
 * does not pick them up by accident. (kimg's own fake clock lives in its test helpers: the `Clock`
 * interface of `kimg/clock` is two methods.)
 */
import type { KimgError } from '../errors/index.js';
import type {
  EventRecorder,
  FsUsageSource,
  ImageFsStats,
  ImageGCEvent,
  ImageGCEventRecorder,
  ManagerEvent,
} from '../manager/index.js';

/** Keeps the image manager's events in memory, in order. */
export class MemoryEventRecorder implements EventRecorder {
  readonly events: ManagerEvent[] = [];

  record(event: ManagerEvent): void {
    this.events.push(event);
  }

  clear(): void {
    this.events.length = 0;
  }
}

/** Keeps image GC events in memory, in order. */
export class MemoryImageGCEventRecorder implements ImageGCEventRecorder {
  readonly events: ImageGCEvent[] = [];

  record(event: ImageGCEvent): void {
    this.events.push(event);
  }
}

/** An image filesystem usage source with set numbers (tests, simulations). */
export class FakeUsageSource implements FsUsageSource {
  constructor(
    public capacityBytes: number,
    public availableBytes: number,
  ) {}

  /** Thrown by the next reads while set. */
  error: KimgError | undefined;

  async imageFsStats(): Promise<ImageFsStats> {
    if (this.error) throw this.error;
    return { capacityBytes: this.capacityBytes, availableBytes: this.availableBytes };
  }
}
