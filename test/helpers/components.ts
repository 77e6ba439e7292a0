/**
 * Real external components the tests drive (distribution registry, skopeo, umoci, openssl, ...).
 *
 * Project rule: a test that needs a real component
 * FAILS with a clear message when it is missing - it never skips, with or without CI=true. The
 * message names the Debian package to install; scripts/components.txt lists every component and
 * `bash scripts/demo.sh` installs all of them.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { delimiter, isAbsolute, join } from 'node:path';

/** Where the one list of system components lives (read by the demo, `.ci/run` and the test runner too). */
export const COMPONENTS_FILE = fileURLToPath(new URL('../../../scripts/components.txt', import.meta.url));

/**
 * Executable name (or absolute file path) → the Debian (bookworm) package that ships it, from
 * scripts/components.txt.
 */
export const COMPONENT_PACKAGES: Readonly<Record<string, string>> = Object.fromEntries(
  readFileSync(COMPONENTS_FILE, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(/\s+/) as [string, string]),
);

const resolved = new Map<string, string>();

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Absolute path of the executable `name`, searched on PATH (plus /usr/sbin and /sbin; cached). Throws an
 * `Error` naming the missing component and the apt package to install; never skips.
 */
export function requireBinary(name: string): string {
  const cached = resolved.get(name);
  if (cached !== undefined) return cached;
  const candidates = isAbsolute(name)
    ? [name]
    : [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']
        .filter((d) => d !== '')
        .map((d) => join(d, name));
  for (const c of candidates) {
    if (isExecutable(c)) {
      resolved.set(name, c);
      return c;
    }
  }
  const pkg = COMPONENT_PACKAGES[name];
  const how = pkg
    ? `install it with: apt-get update && apt-get install -y --no-install-recommends ${pkg}`
    : 'it is not in scripts/components.txt: add it there with its Debian package';
  throw new Error(
    `required test component "${name}" was not found on PATH; this test needs the real component and does not skip: ${how} (or run "bash scripts/demo.sh" as root: it installs every component of scripts/components.txt)`,
  );
}
