#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/integration/browser), unless it is already there.
#
# Idempotent and quiet: exits 0 at once when /usr/bin/chromium exists. Needs root (or passwordless
# sudo) and apt; exits 3 when it cannot install, so a test setup can skip with a clear reason.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: apt-get not found; install Chromium yourself and set CHROMIUM" >&2
  exit 3
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "install-chromium: not root and no passwordless sudo; run: sudo apt-get install chromium" >&2
  exit 3
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "${SUDO[@]}" apt-get update -qq >"$log" 2>&1 \
  || ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >>"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "install-chromium: apt-get could not install chromium (no network?)" >&2
  exit 3
fi

if [ ! -x "$CHROMIUM" ]; then
  echo "install-chromium: chromium installed but $CHROMIUM is missing" >&2
  exit 3
fi
