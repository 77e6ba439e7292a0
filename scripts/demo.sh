#!/usr/bin/env bash
# kimg demo — the README's main-job command. On a fresh Debian machine (as root) it installs what is
# missing (the registry, skopeo, umoci, htpasswd; npm dependencies), builds kimg, then runs
# scripts/demo.mjs: a local registry with Basic auth seeded with example images, and kimg doing its
# job on them (names, pod defaulting, credentials, pulls with platform selection, the store).
# Everything it starts is stopped at the end or on Ctrl-C.  Options are passed to demo.mjs:
#   --keep   leave the registry running until Ctrl-C, printing how to talk to it
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(docker-registry skopeo umoci apache2-utils openssl curl ca-certificates)
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
