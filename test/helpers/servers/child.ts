/**
 * Plumbing shared by the fixture servers that run as child processes of a test (token server, blob
 * host): config from a JSON file named on the command line, a ready file written atomically once
 * listening (the parent polls for it), JSON-lines request logs appended synchronously *before* the
 * response is sent (so a client that got its answer can read the log entry at once), and exit when
 * the parent test process is gone.
 */
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

/** Reads the JSON config file given as the first argument. */
export function readChildConfig<T>(): T {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node <server>.js CONFIG.json\n');
    process.exit(2);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

/** Exits when the parent process is gone (reparented), as a second line behind setpriv --pdeathsig. */
export function exitWithParent(): void {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 250).unref();
  process.on('SIGTERM', () => process.exit(0));
}

/** Writes `value` as JSON to `file` atomically (tmp + rename). */
export function writeReadyFile(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(value));
  renameSync(`${file}.tmp`, file);
}

/** Appends one JSON line to `file` synchronously. */
export function appendJsonLine(file: string, value: unknown): void {
  appendFileSync(file, JSON.stringify({ time: new Date().toISOString(), ...(value as object) }) + '\n');
}
