"""Docker-free bundling of one catalog function into the directory layout Lambda runs.

The asset of a function is, at its root (`/var/task`):

    <runtime wheels>            pip install --target, Linux wheels for the runtime's Python and CPU,
                                botocore's models and endpoints for the services we call only
                                (`prune_sdk_models`)
    __pycache__/ (everywhere)   bytecode compiled by the runtime's Python version (`compile_bytecode`)
    shared/                     everything the functions share, the exec wrapper still executable
    functions/__init__.py       so `functions.<folder>.handler` imports as a package
    functions/catalog.py
    functions/<folder>/         this function's entry point

Wheels come from a wheelhouse under the user's cache directory: the registry is needed only the first
time for a given requirements set; after that bundling works offline. The asset hash is computed from
exactly the inputs above (the function's folder, `shared/`, the requirements and the bundling
parameters), so two functions never share an asset and an unchanged function is never re-bundled:
CDK skips bundling when `cdk.out/asset.<hash>` already exists.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.runtime_python import find_python, install_hint
from shared.aws_clients import SDK_SERVICES

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = "requirements.txt"
SHARED = "shared"
EXEC_WRAPPER = "shared/runtime/exec-wrapper"
PACKAGE_FILES = ("functions/__init__.py", "functions/catalog.py")
BUNDLING_FORMAT = "3"  # bump when the layout below changes, to invalidate every asset hash
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
_MACHINES = {"arm64": "aarch64", "aarch64": "aarch64", "x86_64": "x86_64", "amd64": "x86_64"}


class BundlingError(RuntimeError):
    pass


@dataclass(frozen=True)
class BundleSpec:
    """What decides an asset's content: the function's folder and the target runtime."""

    folder: str  # functions/<folder>; "" for a handler that lives in shared/
    python_version: str = "3.13"
    architecture: str = "arm64"  # arm64 | x86_64 (also accepts aarch64 / amd64)
    root: Path = REPO_ROOT

    @property
    def machine(self) -> str:
        try:
            return _MACHINES[self.architecture]
        except KeyError:
            raise BundlingError(f"unknown architecture {self.architecture!r}") from None

    @property
    def platforms(self) -> tuple[str, ...]:
        # Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): manylinux2014 wheels and
        # the newer glibc 2.28 tag both load there.
        return (f"manylinux2014_{self.machine}", f"manylinux_2_28_{self.machine}")

    @property
    def function_dir(self) -> Path | None:
        return self.root / "functions" / self.folder if self.folder else None

    def pip_platform_args(self) -> list[str]:
        args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python_version]
        for platform in self.platforms:
            args += ["--platform", platform]
        return args


def missing_sources(spec: BundleSpec) -> list[str]:
    """Inputs that do not exist (yet): a catalog entry whose folder has not landed, for one."""
    missing = [p for p in (REQUIREMENTS, SHARED, EXEC_WRAPPER, *PACKAGE_FILES) if not (spec.root / p).exists()]
    if spec.function_dir is not None and not (spec.function_dir / "handler.py").is_file():
        missing.append(f"functions/{spec.folder}/handler.py")
    return missing


def _walk(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.iterdir()):
        if path.name in _SKIP_DIRS or path.name.endswith(_SKIP_SUFFIXES):
            continue
        if path.is_dir():
            yield from _walk(path)
        elif path.is_file():
            yield path


def source_files(spec: BundleSpec) -> list[Path]:
    """Every file copied into the asset besides the wheels, in a stable order."""
    files: list[Path] = [spec.root / p for p in PACKAGE_FILES if (spec.root / p).is_file()]
    if (spec.root / SHARED).is_dir():
        files += _walk(spec.root / SHARED)
    if spec.function_dir is not None and spec.function_dir.is_dir():
        files += _walk(spec.function_dir)
    return files


def asset_hash(spec: BundleSpec) -> str:
    """sha256 of the bundling parameters, the requirements and every source file (path, run bit, bytes)."""
    digest = hashlib.sha256()
    params = (
        f"format={BUNDLING_FORMAT};folder={spec.folder};python={spec.python_version};"
        f"platforms={','.join(spec.platforms)}"
    )
    digest.update(params.encode())
    requirements = spec.root / REQUIREMENTS
    digest.update(b"\0requirements\0" + (requirements.read_bytes() if requirements.is_file() else b""))
    for path in source_files(spec):
        relative = path.relative_to(spec.root).as_posix()
        executable = b"x" if os.access(path, os.X_OK) else b"-"
        digest.update(b"\0" + relative.encode() + b"\0" + executable + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def default_wheelhouse() -> Path:
    configured = os.environ.get("COACH_WHEELHOUSE")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "coach-stream" / "wheelhouse"


def _pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603


def install_requirements(spec: BundleSpec, target: Path, wheelhouse: Path | None = None) -> None:
    """Linux wheels for the runtime into `target`: from the wheelhouse, filling it from the index once."""
    requirements = spec.root / REQUIREMENTS
    house = (wheelhouse or default_wheelhouse()) / f"cp{spec.python_version.replace('.', '')}-{spec.machine}"
    house.mkdir(parents=True, exist_ok=True)
    platform_args = spec.pip_platform_args()
    install = [
        "install",
        "--no-index",
        "--find-links",
        str(house),
        "--no-compile",  # .pyc files for this machine's Python would be dead weight in the runtime
        "--target",
        str(target),
        *platform_args,
        "-r",
        str(requirements),
    ]
    result = _pip(install)
    if result.returncode == 0:
        return
    # Not all wheels are in the wheelhouse yet (first run, or the requirements changed): fetch them.
    download = _pip(["download", "--dest", str(house), *platform_args, "-r", str(requirements)])
    if download.returncode != 0:
        raise BundlingError(
            f"pip could not fetch {spec.platforms[0]} wheels for Python {spec.python_version} into "
            f"{house} (the first bundling needs the package index; later ones run offline):\n"
            f"{download.stderr[-3000:]}"
        )
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    result = _pip(install)
    if result.returncode != 0:
        raise BundlingError(f"pip install from {house} failed:\n{result.stderr[-3000:]}")


def copy_sources(spec: BundleSpec, target: Path) -> None:
    """The project's own code, run bits kept (copy2), and the exec wrapper executable whatever happened."""
    for path in source_files(spec):
        destination = target / path.relative_to(spec.root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    wrapper = target / EXEC_WRAPPER
    if wrapper.exists():
        mode = wrapper.stat().st_mode
        wrapper.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def bundle(spec: BundleSpec, target: Path, wheelhouse: Path | None = None) -> Path:
    """Build the asset directory for `spec` in `target` (created if needed). Returns `target`."""
    missing = [m for m in missing_sources(spec) if m != f"functions/{spec.folder}/handler.py"]
    if missing:
        raise BundlingError(f"cannot bundle functions/{spec.folder}: missing {', '.join(missing)}")
    target.mkdir(parents=True, exist_ok=True)
    install_requirements(spec, target, wheelhouse)
    prune_sdk_models(target)
    copy_sources(spec, target)
    compile_bytecode(spec, target)
    return target


def prune_sdk_models(target: Path, services: frozenset[str] = SDK_SERVICES) -> list[str]:
    """Removes from the asset's botocore what concerns only services the functions never call (the ones they
    call are `shared.aws_clients.SDK_SERVICES`, the only services its clients may be made for): their models,
    and their entries in `endpoints.json`. The other files at the top of `botocore/data` (partitions, retry
    and default configuration) stay as they are. Returns the services removed.

    botocore ships some 440 services' models, about 28 MB, and its loader lists every one of their folders
    before it loads the first model of a process (a stat for each API version of each service, for each
    kind of model a client reads: about 45 ms of the first DynamoDB client's 120 ms on this machine). And
    the first client of a process parses `endpoints.json` whole, 1.2 MB for every service in every
    partition (9 ms; 27 KB and 0.2 ms for ours). A service kept here but missing from botocore is a name
    botocore does not know: bundling fails on it."""
    data = target / "botocore" / "data"
    if not data.is_dir():
        raise BundlingError(f"no botocore models in {target}: is boto3 still in {REQUIREMENTS}?")
    missing = sorted(name for name in services if not (data / name).is_dir())
    if missing:
        raise BundlingError(f"botocore has no models for {', '.join(missing)}: check SDK_SERVICES")
    removed = sorted(entry.name for entry in data.iterdir() if entry.is_dir() and entry.name not in services)
    for name in removed:
        shutil.rmtree(data / name)
    endpoints = data / "endpoints.json"
    prefixes = {endpoint_prefix(data / name) for name in services}
    document = pruned_endpoints(json.loads(endpoints.read_text()), prefixes)
    endpoints.write_text(json.dumps(document, separators=(",", ":")))
    return removed


def endpoint_prefix(service: Path) -> str:
    """The prefix by which `endpoints.json` knows a service: its latest model's `metadata.endpointPrefix`."""
    models = sorted(service.glob("*/service-2.json*"))
    if not models:
        raise BundlingError(f"no service model in {service}")
    latest = models[-1]
    raw = gzip.decompress(latest.read_bytes()) if latest.suffix == ".gz" else latest.read_bytes()
    return str(json.loads(raw)["metadata"]["endpointPrefix"])


def pruned_endpoints(document: dict[str, Any], prefixes: set[str]) -> dict[str, Any]:
    """`endpoints.json` with, in each partition, only the services whose endpoint prefix is in `prefixes`;
    the partitions themselves (regions, defaults, DNS suffixes) whole."""
    partitions = [
        {**partition, "services": {k: v for k, v in partition.get("services", {}).items() if k in prefixes}}
        for partition in document["partitions"]
    ]
    return {**document, "partitions": partitions}


def compile_bytecode(spec: BundleSpec, target: Path) -> bool:
    """Every module's bytecode, compiled by the runtime's Python version, beside its source in the asset.

    Lambda's task root is read-only, so an asset without bytecode is compiled from source at every cold
    start: measured for the conversation function on Python 3.13, its import took 840 ms without and 295 ms
    with. Each `.pyc` is "unchecked-hash": Python uses it without comparing it with its source's timestamp,
    which the deployment zip does not keep. An interpreter of another version ignores it (the magic number
    differs) and compiles as before. Without the runtime's Python on this machine the asset ships without
    bytecode, with a warning: it deploys and runs, only its cold starts are slower. Returns whether it was
    compiled."""
    python = find_python(spec.python_version)
    if python is None:
        print(
            f"warning: functions/{spec.folder} bundled without bytecode, each cold start compiles it "
            f"(about half a second): {install_hint(spec.python_version)}",
            file=sys.stderr,
        )
        return False
    command = [str(python.executable), "-I", "-m", "compileall", "-q", "-j", "0"]
    result = subprocess.run(  # noqa: S603
        [*command, "--invalidation-mode", "unchecked-hash", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BundlingError(f"compiling the bytecode of {target} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return True
