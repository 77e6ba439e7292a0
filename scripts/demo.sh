#!/usr/bin/env bash
# kimg demo — the README's main-job command. On a fresh Debian machine (as root) it installs what is
# missing (the registry, skopeo, htpasswd; npm dependencies), builds kimg, then runs scripts/demo.mjs:
# local registries (one with Basic auth) seeded with example images (one multi-arch), a node config and
# four static pods (public, private with a pull Secret, a typo, Never with an absent image), and the node
# agent `kimg node` on them, printing where to look (status page, kimg get pods / describe / explain,
# metrics). Ctrl-C stops everything it started. Options are passed to demo.mjs:
#   --ci    stop once the pods have settled, check their states, exit 0 (as expected) or 1
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(docker-registry skopeo busybox-static apache2-utils openssl curl ca-certificates)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "demo: missing packages: ${missing[*]} — run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "demo: installing ${missing[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d node_modules ]; then
  echo "demo: npm ci ..."
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "demo: building ..."
npm run --silent build
exec node scripts/demo.mjs "$@"
