"""What a streaming function's cold start imports and builds: only what its first byte needs.

Each handler module is imported in a fresh interpreter with its settings model's required variables
set, as Lambda's init would import it; what that interpreter holds afterwards is what the init paid for.
No tracing SDK (Lambda's active tracing needs none), not the catalog of every function, not the work of
other functions; and the validators of what a turn makes only after its first byte (its job) are built
when first used. Each of these is milliseconds of every cold start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from functions.catalog import STREAM_COACH_CONVERSATION, STREAM_COACH_CREATOR_SESSION, FunctionDefinition

ROOT = Path(__file__).resolve().parents[2]
STREAMING = [STREAM_COACH_CONVERSATION, STREAM_COACH_CREATOR_SESSION]
NOT_AT_IMPORT = (
    "aws_xray_sdk",  # Lambda's active tracing needs no SDK
    "functions.catalog",  # every function described for the CDK app and the local stack
    "shared.coach_creator.coach_builder",  # the coach build's function
    "shared.coach_conversation.post_turn_work",  # the post-turn function's
)
# Made by a turn only once its reply is stored, after the first byte: built then, not at import.
BUILT_WHEN_USED = (
    "shared.coach_conversation.post_turn.PostTurnJob",
    "shared.coach_creator.build_job.BuildCoachJob",
)

_REPORT = """
import json, sys
import {module} as handler

def built(path):
    module, _, name = path.rpartition(".")
    return module in sys.modules and getattr(sys.modules[module], name).__pydantic_complete__

tokenize = sys.modules.get("tokenize")
settings = type(handler.SETTINGS)
print(json.dumps({{
    "modules": sorted(sys.modules),
    "settings": f"{{settings.__module__}}.{{settings.__qualname__}}",
    "built": [path for path in {built!r} if built(path)],
    "tokenize_patterns": tokenize._compile.cache_info().currsize if tokenize else 0,
}}))
"""


def _cold_start(definition: FunctionDefinition) -> dict[str, Any]:
    return _cold_start_of(definition.name)  # one interpreter per function for all the tests below


@cache
def _cold_start_of(function_name: str) -> dict[str, Any]:
    definition = next(d for d in STREAMING if d.name == function_name)
    required = {name: "1" for name, needed in definition.settings.variables().items() if needed}
    module = definition.handler.rpartition(".")[0]
    result = subprocess.run(
        [sys.executable, "-c", _REPORT.format(module=module, built=BUILT_WHEN_USED)],
        cwd=ROOT,
        env={**os.environ, **required},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


streaming = pytest.mark.parametrize("definition", STREAMING, ids=lambda d: d.name)


@streaming
def test_a_streaming_handler_imports_nothing_its_first_byte_does_not_need(definition):
    loaded = _cold_start(definition)["modules"]
    assert definition.handler.rpartition(".")[0] in loaded
    assert [name for name in loaded if any(name == n or name.startswith(n + ".") for n in NOT_AT_IMPORT)] == []


@streaming
def test_a_streaming_handler_loads_the_settings_model_the_catalog_names(definition):
    assert _cold_start(definition)["settings"] == f"{definition.settings.__module__}.{definition.settings.__qualname__}"


@streaming
def test_a_streaming_handler_builds_no_validator_for_what_comes_after_its_first_byte(definition):
    assert _cold_start(definition)["built"] == []


@streaming
def test_a_streaming_handler_compiles_no_tokenize_pattern(definition):
    """A model field whose default factory is a builtin (`list`) makes pydantic read its signature from text
    through `tokenize`, which compiles its large pattern (2 ms): `shared.store.records._empty_list` does not."""
    assert _cold_start(definition)["tokenize_patterns"] == 0
