import { readFileSync } from 'node:fs';

/** kimg's version, read from package.json next to dist/ (works from src via tsc output layout). */
export function kimgVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'kimg' && pkg.version) return pkg.version;
    } catch {
      // try the next layout
    }
  }
  return '0.0.0-unknown';
}
