// The one list of system components (scripts/components.txt), for scripts/run-tests.mjs's preflight.
// test/helpers/components.ts reads the same file for the tests' own checks.
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export const COMPONENTS_FILE = new URL('../components.txt', import.meta.url);

/** `[{ component, pkg }]` in file order: `component` is an executable name or an absolute file path. */
export function readComponents() {
  return readFileSync(COMPONENTS_FILE, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [component, pkg] = l.split(/\s+/);
      return { component, pkg };
    });
}

/** Whether `component` is present: an absolute path exists, or an executable is on PATH (+ sbin dirs). */
export function isPresent(component) {
  const candidates = isAbsolute(component)
    ? [component]
    : [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']
        .filter((d) => d !== '')
        .map((d) => join(d, component));
  return candidates.some((c) => {
    try {
      accessSync(c, isAbsolute(component) ? constants.R_OK : constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The components that are missing, with the one command that installs all of their packages. */
export function missingComponents() {
  const missing = readComponents().filter((c) => !isPresent(c.component));
  const pkgs = [...new Set(missing.map((c) => c.pkg))];
  return {
    missing,
    install: pkgs.length
      ? `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs.join(' ')}`
      : '',
  };
}
