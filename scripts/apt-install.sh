#!/usr/bin/env bash
# Installs the named Debian packages that are missing, quietly: as root, or with passwordless sudo.
#
# Used by the scripts that set up a test's tools (install-chromium.sh, install-node-ric.sh) and by CI.
# Exits 0 when every package is there (at once when none is missing), 3 with a one-line reason when
# they cannot be installed (no apt, not root, no network), so a test setup can skip and say why.
set -euo pipefail

missing=()
for package in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ "${#missing[@]}" -gt 0 ] || exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-install: apt-get not found; install ${missing[*]} yourself" >&2
  exit 3
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "apt-install: not root and no passwordless sudo; run: sudo apt-get install ${missing[*]}" >&2
  exit 3
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
if ! "${apt[@]}" update -qq >"$log" 2>&1 \
  || ! "${apt[@]}" install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >>"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "apt-install: apt-get could not install ${missing[*]} (no network?)" >&2
  exit 3
fi
