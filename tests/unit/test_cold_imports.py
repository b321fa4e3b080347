"""What a streaming function's cold start imports: no tracing SDK at all (Lambda's active tracing needs none).

Each handler module is imported in a fresh interpreter with its settings model's required variables
set, as Lambda's init would import it; `sys.modules` afterwards is what the init paid for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.catalog import STREAM_COACH_CONVERSATION, STREAM_COACH_CREATOR_SESSION, FunctionDefinition

ROOT = Path(__file__).resolve().parents[2]
NOT_AT_IMPORT = ("aws_xray_sdk",)


def _loaded_by_import(definition: FunctionDefinition) -> set[str]:
    required = {name: "1" for name, needed in definition.settings.variables().items() if needed}
    module = definition.handler.rpartition(".")[0]
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **required},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split())


@pytest.mark.parametrize("definition", [STREAM_COACH_CONVERSATION, STREAM_COACH_CREATOR_SESSION], ids=lambda d: d.name)
def test_a_streaming_handler_imports_no_tracing_sdk(definition):
    loaded = _loaded_by_import(definition)
    assert definition.handler.rpartition(".")[0] in loaded
    assert sorted(name for name in loaded if name.split(".")[0] in NOT_AT_IMPORT) == []
