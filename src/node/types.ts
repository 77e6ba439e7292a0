/**
 * The node agent's public data types shared by its parts and faces: the structured log line and the
 * store summary served on `/api/store`.
 */
import type { PrepullState } from './prepull.js';

/** A structured log line (written as one JSON object). Never holds a credential. */
export interface AgentLogEntry {
  level: 'info' | 'warn' | 'error';
  msg: string;
  [field: string]: unknown;
}

/** Where the agent's log lines go. */
export type AgentLog = (entry: AgentLogEntry) => void;

/** The last image GC run as the store summary shows it. */
export interface GcRunSummary {
  at: number;
  removed: number;
  bytes: number;
  reclaimed: number;
  error?: string;
}

/** `/api/store`: images, sizes, disk usage vs the GC thresholds, the last GC run. */
export interface StoreSummary {
  root: string;
  images: {
    names: string[];
    id: string;
    size: number;
    pinned: boolean;
    inUse: boolean;
    lastUsed?: string;
  }[];
  totalBytes: number;
  prepull: PrepullState[];
  usage?: { capacityBytes: number; availableBytes: number; usedPercent: number };
  gc: {
    highThresholdPercent: number;
    lowThresholdPercent: number;
    periodMs: number;
    lastRun?: GcRunSummary;
  };
}
