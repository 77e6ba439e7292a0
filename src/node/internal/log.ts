/**
 * The agent's structured log: one JSON object per line, and a once-only warning for problems that
 * every sync would otherwise repeat (a missing Secret, an unreadable manifest).
 */
import type { AgentLog, AgentLogEntry } from '../types.js';

export type { AgentLog };

/** The default sink: one JSON object per line on stderr, with a timestamp. */
export function jsonLogger(entry: AgentLogEntry): void {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
}

/** A warning logger that writes each distinct message once for the agent's lifetime. */
export function warnOnceLogger(log: AgentLog): (message: string, fields?: Record<string, unknown>) => void {
  const warned = new Set<string>();
  return (message, fields = {}) => {
    if (warned.has(message)) return;
    warned.add(message);
    log({ level: 'warn', msg: message, ...fields });
  };
}
