# Sourced by scripts/demo.sh and .ci/run: installs the Debian packages of the components of
# scripts/components.txt that are missing (the one list of system components; see that file). A
# component counts as present when its executable is on PATH (or in /usr/sbin, /sbin) or its file
# exists, however it was installed. Needs root when something is missing; otherwise prints the single
# command that installs it.
kimg_install_components() {
  local list component pkg missing=()
  list="${BASH_SOURCE[0]%/*}/../components.txt"
  while read -r component pkg; do
    case "$component" in '' | '#'*) continue ;; esac
    if [[ "$component" == /* ]]; then
      [ -e "$component" ] && continue
    else
      PATH="$PATH:/usr/sbin:/sbin" command -v "$component" >/dev/null 2>&1 && continue
    fi
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
  done <"$list"
  if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} — run as root, or: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    return 1
  fi
  echo "installing ${missing[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
