#!/usr/bin/env bash
# kimg demo — the README's first command. On a fresh Debian machine (as root) it installs what is
# missing — every system component of scripts/components.txt (the registry, skopeo, containerd, runc,
# umoci, Chromium, ...: all the test suite needs, so `npm test` passes next) and the npm
# dependencies — builds kimg, then runs scripts/demo.mjs:
# local registries (one with Basic auth) seeded with example images (one multi-arch), a node config and
# four static pods (public, private with a pull Secret, a typo, Never with an absent image), and the node
# agent `kimg node` on them, printing where to look (status page, kimg get pods / describe / explain,
# metrics). Ctrl-C stops everything it started. Options are passed to demo.mjs:
#   --ci    stop once the pods have settled, check their states, exit 0 (as expected) or 1
set -euo pipefail
cd "$(dirname "$0")/.."

# Node and npm are the one prerequisite the demo does not install: Debian 12's own nodejs package is
# Node 18, older than the Node 20 kimg needs.
node_major="$(node --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p')"
if [ -z "$node_major" ] || [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
  echo "demo: kimg needs Node.js 20 or later with npm (found: $(node --version 2>/dev/null || echo 'no node'), $(npm --version 2>/dev/null || echo 'no npm'))." >&2
  echo "demo: install them from https://nodejs.org/en/download (or NodeSource's Debian packages), then run: bash scripts/demo.sh" >&2
  exit 1
fi

# shellcheck source=lib/components.sh
source scripts/lib/components.sh
kimg_install_components
if [ ! -d node_modules ]; then
  echo "demo: npm ci ..."
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "demo: building ..."
npm run --silent build
exec node scripts/demo.mjs "$@"
