"""The generic runtime on its own: the loop, the Runtime API client, raw and prelude streams.

Nothing here uses `@streaming_handler`: the runtime must work, and stay importable, without HTTP.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.runtime.bootstrap import init_objects_kept, load_handler
from shared.runtime.context import LambdaContext
from shared.runtime.stream import current_stream
from tests.fixtures import stream_handlers
from tests.fixtures.capture_runtime import CaptureRuntimeApi, chunk, invoke
from tests.fixtures.events import rest_v1_event

REPO = Path(__file__).resolve().parents[2]
NULS = b"\x00" * 8

# Imports every module of the package, then prints the top-level names it brought in beyond `shared`.
IMPORT_PROBE = """
import json, pkgutil, importlib, sys
before = set(sys.modules)
import shared.runtime
for module in pkgutil.iter_modules(shared.runtime.__path__):
    importlib.import_module(f"shared.runtime.{module.name}")
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_runtime_imports_the_standard_library_alone():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    )
    imported = json.loads(result.stdout)
    assert "shared.runtime.bootstrap" in imported and "shared.runtime.api_stream" in imported
    assert "shared.runtime.log_frames" in imported and "shared.runtime.log_records" in imported
    ours = [name for name in imported if name == "shared" or name.startswith("shared.")]
    assert all(name == "shared" or name.startswith("shared.runtime") for name in ours), ours
    foreign = {name.split(".")[0] for name in imported} - set(sys.stdlib_module_names) - {"shared"}
    assert not foreign, f"the runtime imported {sorted(foreign)}"
    assert not [name for name in imported if name.startswith("pydantic")]


def streams(prelude: dict[str, Any] | None, *pieces: bytes) -> Callable[[Any, Any], None]:
    """A handler that streams `pieces` under `prelude`, knowing nothing of what the event is."""

    def handler(event: Any, context: Any) -> None:
        stream = current_stream.get()
        assert stream is not None
        stream.start(prelude)
        for piece in pieces:
            stream.write(piece)
        stream.finish()

    return handler


def starts_twice(event: Any, context: Any) -> None:
    stream = current_stream.get()
    assert stream is not None
    stream.start()
    stream.start()


def test_a_stream_with_a_prelude_writes_it_then_eight_nuls_as_an_http_integration(runtime):
    prelude = {"statusCode": 418, "anything": ["the handler", "decides"]}
    request = invoke(runtime, streams(prelude, b"body"), {"any": "event"})
    assert request.path == "/2018-06-01/runtime/invocation/req-1/response"
    assert request.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert request.headers["Content-Type"] == "application/vnd.awslambda.http-integration-response"
    assert request.raw_body == chunk(json.dumps(prelude).encode() + NULS) + chunk(b"body") + b"0\r\n\r\n"


def test_a_stream_without_a_prelude_is_the_raw_body_whatever_the_event(runtime):
    # A REST API event: the loop does not look at it, so it cannot add an HTTP prelude.
    request = invoke(runtime, streams(None, b"raw ", b"bytes"), rest_v1_event(body="hi"))
    assert request.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert request.headers["Transfer-Encoding"] == "chunked"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.raw_body == chunk(b"raw ") + chunk(b"bytes") + b"0\r\n\r\n"
    assert NULS not in request.raw_body


def test_a_stream_starts_once(runtime):
    request = invoke(runtime, starts_twice, {})
    assert b"Lambda-Runtime-Function-Error-Type: RuntimeError\r\n" in request.raw_body


def test_a_handler_that_returns_is_posted_buffered(runtime):
    request = invoke(runtime, stream_handlers.plain_dict, rest_v1_event())
    assert request.path == "/2018-06-01/runtime/invocation/req-1/response"
    assert "Lambda-Runtime-Function-Response-Mode" not in request.headers
    assert json.loads(request.raw_body) == {"statusCode": 200, "body": "plain"}


def test_exception_escaping_before_first_byte_goes_to_error_endpoint(runtime):
    request = invoke(runtime, stream_handlers.plain_raises, {})
    assert request.path == "/2018-06-01/runtime/invocation/req-1/error"
    assert request.headers["Lambda-Runtime-Function-Error-Type"] == "ValueError"
    document = json.loads(request.raw_body)
    assert document["errorType"] == "ValueError"
    assert document["errorMessage"] == "plain failure"
    assert isinstance(document["stackTrace"], list)


def test_context_remaining_time_follows_the_deadline():
    context = LambdaContext.for_invocation("r", int(time.time() * 1000) + 5000, "arn")
    assert 4000 < context.get_remaining_time_in_millis() <= 5000


def test_load_handler_accepts_slash_paths_and_names_missing_functions():
    assert load_handler("tests/fixtures/stream_handlers.events") is stream_handlers.events
    with pytest.raises(Exception, match="missing"):
        load_handler("tests.fixtures.stream_handlers.nope")


def test_init_error_is_posted_and_the_process_exits(runtime: CaptureRuntimeApi):
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "_HANDLER": "tests.fixtures.nope.handler",
        "LAMBDA_TASK_ROOT": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-m", "shared.runtime.bootstrap"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    request = runtime.requests[-1]
    assert request.path == "/2018-06-01/runtime/init/error"
    assert json.loads(request.raw_body)["errorType"] == "ModuleNotFoundError"


def test_init_runs_without_the_collector_and_what_it_made_is_frozen_before_the_first_invocation():
    frozen = gc.get_freeze_count()
    try:
        with init_objects_kept():
            assert not gc.isenabled()
            made = [{"kept": n} for n in range(1000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(made)
    finally:
        gc.unfreeze()  # the test process's own objects back in the collector's reach
