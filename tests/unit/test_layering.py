"""The layers, checked: runtime -> HTTP -> flows -> ports <- adapters, and nothing pointing back up.

Read from the source with `ast` (every import, also the lazy ones inside functions), and from a
fresh interpreter with `-X importtime` (what importing really pulls in).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SDK = ("boto3", "botocore", "aws_lambda_powertools")
HTTP = ("shared.http", "shared.api", "shared.runtime", "shared.composition")
ADAPTERS = ("shared.store.dynamodb", "shared.store.s3_images", "shared.jobs.lambda_async", "shared.models.bedrock")
DOMAIN = (*SDK, *HTTP, *ADAPTERS, "shared.observability")  # what flows, ports and neutral modules never import

# module globs -> import prefixes they must not use
RULES: dict[str, tuple[str, ...]] = {
    "shared/coach_conversation/*.py": DOMAIN,
    "shared/coach_creator/*.py": DOMAIN,
    "shared/reply_stream.py": DOMAIN,
    "shared/deadline.py": DOMAIN,
    "shared/errors.py": DOMAIN,
    "shared/events.py": DOMAIN,
    "shared/clock.py": DOMAIN,
    "shared/json_text.py": DOMAIN,
    "shared/images.py": DOMAIN,
    "shared/store/ports.py": DOMAIN,
    "shared/store/records.py": DOMAIN,
    "shared/store/errors.py": DOMAIN,
    "shared/store/dynamodb/*.py": HTTP,
    "shared/store/s3_images.py": HTTP,
    "shared/models/*.py": HTTP,
    "shared/jobs/*.py": HTTP,
    "shared/runtime/*.py": (*SDK, "shared", "pydantic"),
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _violations(pattern: str, forbidden: tuple[str, ...]) -> list[str]:
    package = pattern.rsplit("/", 1)[0].replace("/", ".")
    # a package may import its own modules even where a rule forbids everything around it ("shared")
    refused = tuple(prefix for prefix in forbidden if not _within(package, (prefix,)))
    found = []
    for path in sorted(ROOT.glob(pattern)):
        for name in imported_modules(path):
            if _within(name, refused) or (_within(name, forbidden) and not _within(name, (package,))):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize(("pattern", "forbidden"), RULES.items(), ids=list(RULES))
def test_no_module_imports_a_layer_above_it(pattern: str, forbidden: tuple[str, ...]) -> None:
    assert list(ROOT.glob(pattern)), f"{pattern} matches nothing: the rule is stale"
    assert _violations(pattern, forbidden) == []


def test_the_rules_catch_a_domain_module_importing_http(tmp_path: Path) -> None:
    module = tmp_path / "leaky.py"
    module.write_text("def f():\n    from shared.http.errors import Problem\n    return Problem\n")
    assert imported_modules(module) == {"shared.http.errors"}


def _imported_at_runtime(module: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]


@pytest.mark.parametrize(
    "module",
    [
        "shared.store.ports",
        "shared.coach_conversation.pipeline",
        "shared.coach_creator.pipeline",
        "shared.reply_stream",
    ],
)
def test_importing_a_port_or_a_flow_imports_no_sdk(module: str) -> None:
    loaded = _imported_at_runtime(module)
    assert module in loaded
    assert [name for name in loaded if name.split(".")[0] in SDK] == []
