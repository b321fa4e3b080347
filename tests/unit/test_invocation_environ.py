"""Invocations on threads each see their own `_X_AMZN_TRACE_ID`, as botocore and Powertools read it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from botocore.handlers import add_recursion_detection_header

from shared.concurrency import WORKERS
from shared.runtime import invocation_environ
from shared.runtime.invocation_environ import TRACE_ID_VARIABLE


@pytest.fixture
def per_invocation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original = os.environ
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "t-trace")
    invocation_environ.install()
    yield
    os.environ = original  # noqa: B003 (the process's own mapping, put back)


def _trace_header() -> str | None:
    request: dict = {"headers": {}}
    add_recursion_detection_header(request)
    return request["headers"].get("X-Amzn-Trace-Id")


def test_each_thread_sees_the_trace_id_its_invocation_set(per_invocation: None) -> None:
    both_set = threading.Barrier(2)
    seen: dict[str, tuple[str | None, str | None, str | None, str | None]] = {}

    def invocation(trace: str) -> None:
        os.environ[TRACE_ID_VARIABLE] = trace
        both_set.wait()  # the other invocation has written its own by now
        in_pool = WORKERS.submit(os.getenv, TRACE_ID_VARIABLE).result()
        seen[trace] = (os.environ.get(TRACE_ID_VARIABLE), os.getenv(TRACE_ID_VARIABLE), _trace_header(), in_pool)

    threads = [threading.Thread(target=invocation, args=(f"Root=1-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {trace: (trace, trace, trace, trace) for trace in ("Root=1-0", "Root=1-1")}


def test_an_invocation_without_a_trace_has_none_and_other_variables_are_the_process(
    per_invocation: None,
) -> None:
    os.environ[TRACE_ID_VARIABLE] = "Root=1-main"
    seen: list[str | None] = []
    thread = threading.Thread(target=lambda: seen.append(os.environ.get(TRACE_ID_VARIABLE)))
    thread.start()
    thread.join()
    assert seen == [None]
    assert os.environ.pop(TRACE_ID_VARIABLE) == "Root=1-main"
    assert TRACE_ID_VARIABLE not in os.environ
    os.environ["T_PROCESS_WIDE"] = "yes"
    shared: list[str | None] = []
    thread = threading.Thread(target=lambda: shared.append(os.getenv("T_PROCESS_WIDE")))
    thread.start()
    thread.join()
    assert shared == ["yes"]
    del os.environ["T_PROCESS_WIDE"]
