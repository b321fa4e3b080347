"""The loop outlives a Runtime API connection that drops, closes or refuses, and never posts a response twice."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from shared.runtime import client as client_module
from shared.runtime.bootstrap import EXIT_RUNTIME_API_UNREACHABLE, run_invocation, serve
from shared.runtime.client import Reconnect, RuntimeApiClient, RuntimeApiUnreachable
from shared.runtime.stream import current_stream
from tests.fixtures.capture_runtime import CaptureRuntimeApi, chunk, invoke
from tests.unit.test_runtime_logging import interpreters

REPO = Path(__file__).resolve().parents[2]
RESPONSE = "/2018-06-01/runtime/invocation/{}/response"


def answers(event: Any, context: Any) -> dict[str, str]:
    return {"answered": context.aws_request_id}


def streams(event: Any, context: Any) -> None:
    stream = current_stream.get()
    assert stream is not None
    stream.start()
    stream.write(b"streamed")
    stream.finish()


def queue(runtime: CaptureRuntimeApi, *request_ids: str) -> None:
    runtime.events.extend((request_id, {}, {}) for request_id in request_ids)


def serve_one(client: RuntimeApiClient, handler: Any = answers) -> None:
    run_invocation(client, handler, client.next_invocation())


def responses(runtime: CaptureRuntimeApi) -> list[str]:
    return [request.path for request in runtime.requests]


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


def test_a_connection_dropped_while_waiting_on_next_is_reopened_and_the_invocation_served(runtime):
    runtime.hang_ups = 1
    request = invoke(runtime, answers, {"any": "event"}, request_id="req-1")
    assert request.path == RESPONSE.format("req-1")
    assert json.loads(request.raw_body) == {"answered": "req-1"}
    assert runtime.connections == 2


def test_a_connection_closed_after_each_response_costs_a_reconnect_not_an_invocation(runtime):
    runtime.close_after_post = True
    queue(runtime, "req-1", "req-2", "req-3")
    client = RuntimeApiClient(runtime.address)
    serve_one(client)
    serve_one(client, streams)
    serve_one(client)
    assert responses(runtime) == [RESPONSE.format(r) for r in ("req-1", "req-2", "req-3")]
    assert runtime.requests[1].raw_body == chunk(b"streamed") + b"0\r\n\r\n"
    assert runtime.connections == 3


@pytest.mark.parametrize("handler", [answers, streams])
def test_a_response_goes_out_on_a_new_connection_when_the_event_s_one_was_closed(runtime, handler):
    runtime.close_after_next = True
    queue(runtime, "req-1", "req-2")

    def slow(event: Any, context: Any) -> Any:
        time.sleep(0.05)  # the server's close lands while the handler runs
        return handler(event, context)

    client = RuntimeApiClient(runtime.address)
    serve_one(client, slow)
    serve_one(client, slow)
    assert responses(runtime) == [RESPONSE.format("req-1"), RESPONSE.format("req-2")]
    assert runtime.connections == 3  # each response on a new one, which the next /next reuses


def test_a_runtime_api_down_for_a_while_between_invocations_is_waited_for(runtime):
    queue(runtime, "req-1", "req-2")
    client = RuntimeApiClient(runtime.address)
    serve_one(client)
    runtime.pause(0.3)
    started = time.monotonic()
    serve_one(client)
    assert time.monotonic() - started >= 0.25
    assert responses(runtime) == [RESPONSE.format("req-1"), RESPONSE.format("req-2")]


def test_a_runtime_api_not_up_yet_is_waited_for(runtime):
    runtime.pause(0.3)
    request = invoke(runtime, answers, {}, request_id="req-1")
    assert request.path == RESPONSE.format("req-1")


def test_a_response_whose_answer_was_lost_is_not_posted_again(runtime, caplog):
    runtime.unanswered_posts = 1
    queue(runtime, "req-1", "req-2")
    client = RuntimeApiClient(runtime.address)
    with caplog.at_level(logging.ERROR, logger="shared.runtime.client"):
        serve_one(client)
        serve_one(client)
    assert responses(runtime) == [RESPONSE.format("req-1"), RESPONSE.format("req-2")]
    assert "not sent again" in caplog.text


class Scripted:
    """Stands in for one request-and-answer: raises the scripted failures in turn, then answers 202."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, *args: Any) -> tuple[int, Any, bytes]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return 202, {}, b""


def test_a_post_that_failed_while_being_written_is_sent_again(monkeypatch):
    client = RuntimeApiClient(f"127.0.0.1:{closed_port()}")
    once = Scripted(BrokenPipeError(), ConnectionRefusedError())
    monkeypatch.setattr(client, "_once", once)
    client.post_response("req-1", {"ok": True})
    assert once.calls == 3


def unanswered(cause: BaseException) -> BaseException:
    lost = client_module._Unanswered()
    lost.__cause__ = cause
    return lost


def test_a_post_whose_answer_broke_off_is_sent_once(monkeypatch):
    client = RuntimeApiClient(f"127.0.0.1:{closed_port()}")
    once = Scripted(unanswered(ConnectionResetError(104, "Connection reset by peer")))
    monkeypatch.setattr(client, "_once", once)
    client.post_response("req-1", {"ok": True})
    assert once.calls == 1


def test_a_post_reset_before_any_answer_was_never_read_and_is_sent_again(runtime):
    runtime.reset_posts = 1
    queue(runtime, "req-1")
    serve_one(RuntimeApiClient(runtime.address))
    assert responses(runtime) == [RESPONSE.format("req-1")]
    assert runtime.connections == 2


def test_the_reconnect_delays_double_to_a_ceiling(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", slept.append)
    policy = Reconnect(first_delay=0.01, max_delay=0.1, give_up_after=60)
    for attempt in range(1, 7):
        policy.pause(attempt, time.monotonic(), ConnectionResetError())
    assert slept == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.1, 0.1])


def test_a_runtime_api_that_never_comes_back_ends_the_loop_with_its_own_exit_code():
    client = RuntimeApiClient(f"127.0.0.1:{closed_port()}", Reconnect(give_up_after=0.3))
    started = time.monotonic()
    with pytest.raises(RuntimeApiUnreachable):
        client.next_invocation()
    assert time.monotonic() - started < 1.0
    with pytest.raises(SystemExit) as exited:
        serve(client, answers)
    assert exited.value.code == EXIT_RUNTIME_API_UNREACHABLE == 69


STDLIB_HANDLER = "def handler(event, context):\n    return {'answered': context.aws_request_id}\n"


@pytest.mark.parametrize("interpreter", interpreters())
def test_the_bootstrap_process_outlives_hang_ups_and_closed_connections(runtime, tmp_path, interpreter):
    (tmp_path / "plain.py").write_text(STDLIB_HANDLER)
    runtime.hang_ups = 1
    runtime.close_after_post = True
    queue(runtime, "req-1", "req-2")
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "_HANDLER": "plain.handler",
        "LAMBDA_TASK_ROOT": str(tmp_path),
    }
    process = subprocess.Popen(
        [interpreter, "-u", "-m", "shared.runtime.bootstrap"], env=env, cwd=REPO, stderr=subprocess.PIPE
    )
    try:
        assert runtime.done.wait(30), "the loop never came back for more"
        assert process.poll() is None
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=10)
    assert responses(runtime) == [RESPONSE.format("req-1"), RESPONSE.format("req-2")], stderr.decode(errors="replace")
