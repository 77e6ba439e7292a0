/**
 * Real external components the tests drive (distribution registry, skopeo, umoci, openssl, ...).
 *
 * Project rule: a test that needs a real component
 * FAILS with a clear message when it is missing - it never skips, with or without CI=true. The
 * message names the Debian package to install (`.ci/run` installs all of them).
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** Binary name → the Debian (bookworm) package that ships it. */
export const COMPONENT_PACKAGES: Readonly<Record<string, string>> = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  umoci: 'umoci',
  htpasswd: 'apache2-utils',
  openssl: 'openssl',
  containerd: 'containerd',
  ctr: 'containerd',
  runc: 'runc',
  curl: 'curl',
  setpriv: 'util-linux',
  // Static build: the runnable test images copy it into an otherwise empty root filesystem.
  busybox: 'busybox-static',
};

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
    ? `install it with: apt-get install -y --no-install-recommends ${pkg}`
    : 'install the package that provides it';
  throw new Error(
    `required test component "${name}" was not found on PATH; this test needs the real component and does not skip: ${how} (or run .ci/run, which installs every component)`,
  );
}
