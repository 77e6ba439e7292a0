/** Shutdown steps run in reverse order of registration; a failing step is logged, the others still run. */
import { toKimgError } from '../../errors/index.js';
import type { AgentLog } from './log.js';

export class Cleanups {
  private readonly steps: (() => Promise<void> | void)[] = [];

  constructor(private readonly log: AgentLog) {}

  /** Registers a step (run before every step registered earlier). */
  push(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }

  /** Runs every step once, last registered first. */
  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (e) {
        this.log({ level: 'warn', msg: `shutdown: ${toKimgError(e).message}` });
      }
    }
  }
}
