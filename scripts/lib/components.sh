# Sourced by scripts/demo.sh and .ci/run: installs the Debian packages of scripts/components.txt that are
# not installed yet (the one list of system components; see that file). Needs root when something is
# missing; otherwise prints the single command that installs it.
kimg_install_components() {
  local list missing=()
  list="$(dirname "${BASH_SOURCE[0]}")/../components.txt"
  local pkgs
  pkgs=$(grep -v '^[[:space:]]*\(#\|$\)' "$list" | awk '{print $2}' | sort -u)
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} — run as root, or: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    return 1
  fi
  echo "installing ${missing[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
