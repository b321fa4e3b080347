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

"$(dirname "$0")/apt-install.sh" chromium

if [ ! -x "$CHROMIUM" ]; then
  echo "install-chromium: chromium installed but $CHROMIUM is missing" >&2
  exit 3
fi
