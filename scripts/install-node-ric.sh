#!/usr/bin/env bash
# Installs AWS's Node.js runtime interface client (aws-lambda-ric, pinned in tests/runtime_peers/node)
# for the runtime peer tests (tests/integration/test_runtime_peers.py), unless it is already there.
#
# Idempotent and quiet: exits 0 at once when the pinned version is built. Its native addon builds
# libcurl and aws-lambda-cpp from source, which needs a C/C++ toolchain, autotools and cmake: missing
# Debian packages are installed with apt-get (root or passwordless sudo). Exits 3 when it cannot
# install (no node/npm, no apt, not root, no network), so a test setup can skip with a clear reason.
set -euo pipefail

PEER_DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/runtime_peers/node"
RIC="$PEER_DIR/node_modules/aws-lambda-ric"
BUILD_PACKAGES=(autoconf automake libtool libcurl4-openssl-dev cmake make g++ python3)

pinned() {
  sed -n 's/^ *"aws-lambda-ric": *"\([^"]*\)".*/\1/p' "$PEER_DIR/package.json" | head -n 1
}

installed() {
  [ -f "$RIC/dist/rapid-client.node" ] \
    && grep -q "^ *\"version\": *\"$(pinned)\"" "$RIC/package.json" 2>/dev/null
}

if installed; then
  exit 0
fi

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-node-ric: $tool not found; install Node.js 20 and npm" >&2
    exit 3
  fi
done

# Two test sessions may start at once: one builds, the other waits and finds it built.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${TMPDIR:-/tmp}/install-node-ric.$(id -u).lock"
  flock 9
  if installed; then
    exit 0
  fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

"$(dirname "$0")/apt-install.sh" "${BUILD_PACKAGES[@]}"

# node-gyp builds against the installed Node's own headers rather than downloading them.
node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node.h" ]; then
  export npm_config_nodedir="$node_prefix"
fi

# The native build runs make without -j; MAKEFLAGS lets it use every core.
export MAKEFLAGS="${MAKEFLAGS:--j$(nproc 2>/dev/null || echo 2)}"
if ! (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  if grep -Eq 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH' "$log"; then
    echo "install-node-ric: npm ci could not reach the registry for aws-lambda-ric" >&2
    exit 3
  fi
  echo "install-node-ric: npm ci failed to build aws-lambda-ric $(pinned)" >&2
  exit 1
fi

if ! installed; then
  echo "install-node-ric: npm ci succeeded but $RIC/dist/rapid-client.node is missing" >&2
  exit 1
fi
