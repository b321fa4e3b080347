"""An interpreter of the deployed Lambda runtime's Python version on this machine.

Bundling compiles each asset's bytecode with it (`infra.bundling`), and tests run deployed assets on it.
It is asked for its version, never guessed from its name: pyenv's versions, then `python<version>` on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_PROBE = "import json, sys; print(json.dumps([list(sys.version_info[:2]), sys.executable, sys.base_prefix]))"


@dataclass(frozen=True)
class PythonInstall:
    executable: Path  # the real binary (a pyenv shim resolved), as the worker's /proc/<pid>/exe shows it
    prefix: Path  # sys.base_prefix: its standard library and its own site-packages lie under it
    version: str


def install_hint(version: str) -> str:
    return (
        f"Python {version}, the deployed Lambda runtime, is not installed on this machine. Install it: "
        f"`pyenv install {version}` (found through `pyenv prefix {version}`), or a python{version} package "
        f"of your OS on PATH (Debian/Ubuntu: `apt-get install python{version}` where the release has it)."
    )


def _candidates(version: str) -> list[str]:
    found: list[str] = []
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        found.append(sys.executable)
    pyenv = shutil.which("pyenv")
    if pyenv:
        prefix = subprocess.run(  # noqa: S603
            [pyenv, "prefix", version], capture_output=True, text=True, timeout=30, check=False
        )
        if prefix.returncode == 0:
            found += [str(Path(p) / "bin" / f"python{version}") for p in prefix.stdout.strip().split(":") if p]
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found += [str(p) for p in sorted((root / "versions").glob(f"{version}*/bin/python{version}"), reverse=True)]
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(on_path)
    return found


def find_python(version: str) -> PythonInstall | None:
    """An interpreter that really is Python `version` (asked, not guessed from its name), or None."""
    for candidate in _candidates(version):
        try:
            probe = subprocess.run(  # noqa: S603
                [candidate, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode != 0:
            continue
        (major, minor), executable, prefix = json.loads(probe.stdout)
        if f"{major}.{minor}" == version:
            return PythonInstall(Path(executable).resolve(), Path(prefix).resolve(), version)
    return None
