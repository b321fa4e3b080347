"""The local Lambda against what Lambda does: the Runtime API's hold on an invocation, what a Function
URL makes of a runtime's stream, its backlog, and how the functions scale and throttle."""

from __future__ import annotations

import http.client
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from local.function_url import FunctionUrlServer
from local.functions import REPO_ROOT, FunctionRuntime, FunctionSpec, LocalFunction
from local.runtime_api import API_PREFIX, Invocation, Outcome, RuntimeApiServer, Throttled
from tests.fixtures.raw_http import RawResponse, request

NEXT = f"{API_PREFIX}/runtime/invocation/next"
HANDLERS = "tests.fixtures.local_lambda_handlers"


class ScriptedFunction:
    """A function whose invocations answer with outcomes given up front: the front door alone is tested."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.spec = SimpleNamespace(name="scripted")
        self.outcomes = outcomes

    def invoke(self, event: Any) -> Invocation:
        invocation = Invocation(event=event, timeout_seconds=5)
        for outcome in self.outcomes:
            invocation.deliver(outcome)
        return invocation


def through_function_url(*outcomes: Outcome) -> RawResponse:
    with behind_a_url(ScriptedFunction(*outcomes)) as post:
        return post()


def prelude(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode() + b"\x00" * 8


HTTP_INTEGRATION = {"content-type": "application/vnd.awslambda.http-integration-response"}


# --- what a Function URL makes of a stream -------------------------------------------------------------


def test_a_stream_without_a_prelude_streams_with_the_runtimes_content_type() -> None:
    answer = through_function_url(
        Outcome("stream", headers={"content-type": "text/plain"}),
        Outcome("chunk", b"hello "),
        Outcome("chunk", b"world"),
        Outcome("end"),
    )
    assert (answer.status, answer.header("Content-Type"), answer.body) == (200, "text/plain", b"hello world")
    assert answer.complete


def test_a_prelude_without_status_code_keeps_its_headers_and_cookies() -> None:
    fields = {"headers": {"x-peer": "python"}, "cookies": ["a=1", "b=2; Secure"]}
    answer = through_function_url(
        Outcome("stream", headers=HTTP_INTEGRATION),
        Outcome("chunk", prelude(fields) + b"body"),
        Outcome("end"),
    )
    assert answer.status == 200
    assert answer.header("x-peer") == "python"
    assert answer.all("Set-Cookie") == ["a=1", "b=2; Secure"]
    assert answer.body == b"body" and answer.complete


@pytest.mark.parametrize(
    "end",
    [
        Outcome("end", headers={"Lambda-Runtime-Function-Error-Type": "RuntimeError"}),
        Outcome("error", b"{}", {"error-type": "Runtime.ExitError"}),
    ],
    ids=["error trailers", "error posted after the stream began"],
)
def test_a_stream_that_fails_after_its_first_byte_is_cut_not_ended(end: Outcome) -> None:
    answer = through_function_url(
        Outcome("stream", headers=HTTP_INTEGRATION),
        Outcome("chunk", prelude({"statusCode": 200}) + b"data: one\n\n"),
        end,
    )
    assert answer.status == 200 and answer.body == b"data: one\n\n"
    assert not answer.complete, "the client must be able to tell a failed stream from a finished one"


def test_a_stream_that_fails_before_its_prelude_is_whole_is_a_502() -> None:
    answer = through_function_url(
        Outcome("stream", headers=HTTP_INTEGRATION),
        Outcome("end", headers={"Lambda-Runtime-Function-Error-Type": "RuntimeError"}),
    )
    assert answer.status == 502 and answer.complete


# --- the Runtime API holds an invocation until its response is complete --------------------------------


@pytest.fixture
def runtime_api() -> Iterator[tuple[RuntimeApiServer, queue.Queue[Invocation]]]:
    invocations: queue.Queue[Invocation] = queue.Queue()
    server = RuntimeApiServer("race", invocations).start()
    yield server, invocations
    server.shutdown()
    server.server_close()


def _next(address: str) -> str:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", NEXT)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.headers["Lambda-Runtime-Aws-Request-Id"]


def test_next_waits_for_an_open_stream_and_its_late_end_is_taken(
    runtime_api: tuple[RuntimeApiServer, queue.Queue[Invocation]],
) -> None:
    """AWS's Node client asks for the next event before it ends a failed stream; Lambda takes the end."""
    server, invocations = runtime_api
    first, second = Invocation(event={"n": 1}, timeout_seconds=30), Invocation(event={"n": 2}, timeout_seconds=30)
    invocations.put(first)
    invocations.put(second)
    assert _next(server.address) == first.request_id
    host, port = server.address.split(":")
    stream = socket.create_connection((host, int(port)), timeout=10)
    stream.sendall(
        f"POST {API_PREFIX}/runtime/invocation/{first.request_id}/response HTTP/1.1\r\nHost: x\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/octet-stream\r\n\r\n5\r\nhello\r\n".encode()
    )
    taken: list[str] = []
    poll = threading.Thread(target=lambda: taken.append(_next(server.address)))
    poll.start()
    poll.join(0.5)
    assert poll.is_alive() and not taken, "the environment still holds the streaming invocation"
    stream.sendall(b"0\r\nLambda-Runtime-Function-Error-Type: Runtime.UnhandledPromiseRejection\r\n\r\n")
    assert stream.recv(1024).startswith(b"HTTP/1.1 202")
    stream.close()
    poll.join(5)
    assert taken == [second.request_id]
    outcomes = [first.outcomes.get_nowait() for _ in range(first.outcomes.qsize())]
    assert [o.kind for o in outcomes] == ["stream", "chunk", "end"]
    assert outcomes[-1].headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.UnhandledPromiseRejection"


# --- front doors take a burst of connections -----------------------------------------------------------


def test_a_front_door_queues_a_burst_of_200_connections_without_resets() -> None:
    server = FunctionUrlServer(ScriptedFunction(Outcome("buffered", b'{"statusCode": 204}')), 0)
    host, port = server.server_address[:2]
    clients = []
    try:
        for _ in range(200):  # nothing accepts them yet: each waits in the listen backlog
            client = socket.socket()
            client.settimeout(2)
            client.connect((host, port))
            clients.append(client)
        server.start()
        for client in clients:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = [client.recv(64) for client in clients]
    finally:
        for client in clients:
            client.close()
        server.shutdown()
        server.server_close()
    assert all(answer.startswith(b"HTTP/1.1 204") for answer in answers)


# --- scaling like Lambda: a new environment when all are busy, then 429 --------------------------------


def _function(handler: str, *, concurrency: int, streaming: bool = False, timeout: float = 20) -> LocalFunction:
    spec = FunctionSpec(
        name=f"t-{handler}",
        handler=f"{HANDLERS}.{handler}",
        streaming=streaming,
        timeout_seconds=timeout,
        concurrency=concurrency,
        runtime=FunctionRuntime(task_root=REPO_ROOT),
    )
    return LocalFunction(spec, {"PATH": "/usr/bin:/bin"}).start()


@contextmanager
def behind_a_url(function: LocalFunction | ScriptedFunction) -> Iterator[Callable[[], RawResponse]]:
    """The function behind a local Function URL, ready; yields a call that POSTs once. Stops both."""
    server = FunctionUrlServer(function, 0).start()  # type: ignore[arg-type]
    host, port = server.server_address[:2]
    try:
        if isinstance(function, LocalFunction):
            assert function.wait_ready(30)
        yield lambda: request(str(host), int(port), body=b"{}")
    finally:
        server.shutdown()
        server.server_close()
        if isinstance(function, LocalFunction):
            function.stop()


def _result(invocation: Invocation) -> Outcome:
    return invocation.outcomes.get(timeout=30)


def test_a_busy_function_starts_another_environment_then_throttles(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="local.functions")
    function = _function("slow", concurrency=2)
    try:
        assert function.wait_ready(30)
        first = function.invoke({"seconds": 1.5})
        second = function.invoke({"seconds": 0.1})
        assert len(function.environments) == 2, "all busy: a second environment starts"
        with pytest.raises(Throttled):
            function.invoke({"seconds": 0.1})
        answers = [json.loads(_result(invocation).data)["body"] for invocation in (first, second)]
        assert answers[0] != answers[1], "two environments, two processes"
        third = function.invoke({"seconds": 0.1})
        assert _result(third).kind == "buffered" and len(function.environments) == 2, "a free one is reused"
    finally:
        function.stop()
    reports = [r.getMessage() for r in caplog.records if "REPORT RequestId" in r.getMessage()]
    assert sum("Init Duration" in line for line in reports) == 2, reports  # one cold start per environment
    assert any("INIT_START environment 2" in r.getMessage() for r in caplog.records)


def test_a_function_url_answers_a_throttled_invocation_with_429() -> None:
    function = _function("slow", concurrency=1)
    with behind_a_url(function) as post:
        function.invoke({"seconds": 2})
        answer = post()
    assert answer.status == 429
    assert json.loads(answer.body) == {"Message": "Rate Exceeded."}


def test_a_worker_killed_mid_stream_cuts_the_clients_response() -> None:
    with behind_a_url(_function("die_mid_stream", concurrency=1, streaming=True)) as post:
        started = time.monotonic()
        answer = post()
    assert answer.status == 200 and answer.body == b"data: one\n\n"
    assert not answer.complete
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("handler", "complete"), [("fail_mid_stream", False), ("complete_stream", True)])
def test_the_adapter_ends_a_stream_cleanly_only_when_it_succeeded(handler: str, complete: bool) -> None:
    with behind_a_url(_function(handler, concurrency=1, streaming=True)) as post:
        answer = post()
    assert answer.status == 200 and answer.body.startswith(b"data: one\n\n")
    assert answer.complete is complete


# --- Managed Instances: one environment, N invocations at once ------------------------------------------


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_one_environment_serves_n_invocations_at_once(workers: str) -> None:
    spec = FunctionSpec(
        name="t-managed",
        handler=f"{HANDLERS}.slow",
        environment={"RUNTIME_WORKERS": workers},
        timeout_seconds=20,
        concurrency=1,
        environment_concurrency=4,
        runtime=FunctionRuntime(task_root=REPO_ROOT),
    )
    function = LocalFunction(spec, {"PATH": "/usr/bin:/bin"}).start()
    try:
        assert function.wait_ready(30)
        started = time.monotonic()
        invocations = [function.invoke({"seconds": 1.0}) for _ in range(4)]
        with pytest.raises(Throttled):
            function.invoke({"seconds": 0.1})  # one environment, four slots, all taken
        bodies = [json.loads(_result(invocation).data)["body"] for invocation in invocations]
        elapsed = time.monotonic() - started
    finally:
        function.stop()
    assert len(function.environments) == 1
    assert elapsed < 2.5, f"four 1-second invocations ran at once, not one after another ({elapsed:.1f} s)"
    assert len(set(bodies)) == 4, "each invocation had a worker of its own"
    processes = {body.split("/")[0] for body in bodies}
    assert len(processes) == (1 if workers == "threads" else 4)


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_a_worker_that_dies_is_replaced(workers: str) -> None:
    """A forked worker is re-forked and the environment lives on; a threaded one takes the process, and
    the environment starts anew, as Lambda would start it."""
    spec = FunctionSpec(
        name="t-managed-crash",
        handler=f"{HANDLERS}.die_mid_stream",
        environment={"RUNTIME_WORKERS": workers},
        streaming=True,
        timeout_seconds=20,
        concurrency=1,
        environment_concurrency=2,
        runtime=FunctionRuntime(task_root=REPO_ROOT),
    )
    function = LocalFunction(spec, {"PATH": "/usr/bin:/bin"}).start()
    with behind_a_url(function) as post:
        answers = [post() for _ in range(3)]
    assert [(a.status, a.body, a.complete) for a in answers] == [(200, b"data: one\n\n", False)] * 3
    assert len(function.environments) == 1


def test_an_environment_started_from_a_requests_thread_outlives_that_thread() -> None:
    """A front door starts environments from its request threads, which end with their requests."""
    function = _function("slow", concurrency=2)
    try:
        assert function.wait_ready(30)
        function.invoke({"seconds": 1.5})
        answers: list[Outcome] = []
        request = threading.Thread(target=lambda: answers.append(_result(function.invoke({"seconds": 0.1}))))
        request.start()
        request.join()
        assert answers[0].kind == "buffered" and len(function.environments) == 2
        worker = function.environments[1]._process
        assert worker is not None
        time.sleep(0.5)
        assert worker.poll() is None, "the worker must not die with the request's thread"
        assert function.environments[1]._process is worker
    finally:
        function.stop()
