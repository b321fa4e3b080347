"""The OpenAI-compatible adapter against a tiny scripted SSE server on loopback."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local.processes import free_port
from shared.models import (
    Image,
    Message,
    ModelRequest,
    ModelSettings,
    ModelStreamInterrupted,
    ModelUnavailable,
    StreamEnd,
    SystemPrompt,
    TextDelta,
    Usage,
)
from shared.models.openai_compat import OpenAICompatibleModel, sse_data

REQUEST = ModelRequest(
    model_id="coach-model",
    system=SystemPrompt("You are Coach Sam.", "Today: legs."),
    messages=(Message("user", "How deep should I squat?"),),
    max_tokens=200,
)

CUT = "CUT"  # close the socket mid-body
Step = dict[str, Any] | str | float | threading.Event  # a chunk, "[DONE]" or CUT, a pause, a gate
Plan = Callable[["_Handler"], None]


def delta(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


FINISH = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.plans: deque[Plan] = deque()
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.written: list[str] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients time out and reset connections on purpose here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers.items()), body))
        plan = self.server.plans.popleft() if self.server.plans else sse(delta("ok"), FINISH, "[DONE]")
        try:
            plan(self)
        except OSError:
            self.close_connection = True


def sse(*steps: Step) -> Plan:
    """A chunked SSE answer: one `data:` event per chunk, written as the steps come."""

    def play(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for step in steps:
            if isinstance(step, float):
                threading.Event().wait(step)
            elif isinstance(step, threading.Event):
                step.wait(5)
            elif step == CUT:
                handler.close_connection = True
                handler.connection.shutdown(2)
                return
            else:
                data = step if isinstance(step, str) else json.dumps(step)
                event = f"data: {data}\n\n".encode()
                handler.server.written.append(data)
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        handler.wfile.write(b"0\r\n\r\n")

    return play


def status(code: int, body: dict[str, Any] | None = None) -> Plan:
    def play(handler: _Handler) -> None:
        data = json.dumps(body or {"error": {"message": f"status {code}"}}).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return play


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield running
    running.shutdown()
    running.server_close()


def adapter(server: _Server, suffix: str = "", api_key: str = "") -> OpenAICompatibleModel:
    host, port = server.server_address[:2]
    return OpenAICompatibleModel(
        ModelSettings(
            provider="openai",
            openai_base_url=f"http://{host}:{port}{suffix}",
            openai_api_key=api_key,
            read_timeout=0.3,
            connect_timeout=0.5,
        )
    )


def test_stream_yields_deltas_then_the_end(server: _Server) -> None:
    server.plans.append(sse(delta("Hip "), delta("crease"), FINISH, USAGE, "[DONE]"))
    events = list(adapter(server).stream(REQUEST))
    assert events[:2] == [TextDelta("Hip "), TextDelta("crease")]
    end = events[2]
    assert isinstance(end, StreamEnd)
    assert (end.stop_reason, end.usage, end.model_id, len(events)) == (
        "end_turn",
        Usage(11, 2),
        "coach-model",
        3,
    )


def test_deltas_arrive_while_the_server_is_still_writing(server: _Server) -> None:
    gate = threading.Event()
    server.plans.append(sse(delta("first"), gate, delta(" last"), FINISH, "[DONE]"))
    stream = adapter(server).stream(REQUEST)
    assert next(stream) == TextDelta("first")
    assert len(server.written) == 1
    gate.set()
    assert [type(e) for e in stream] == [TextDelta, StreamEnd]


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_request_shape(server: _Server, suffix: str) -> None:
    request = ModelRequest(
        model_id="coach-model",
        system=REQUEST.system,
        messages=(
            Message("user", "Form check", images=(Image(b"img", "jpeg"),)),
            Message("assistant", "Looks good"),
        ),
        max_tokens=50,
        temperature=0.2,
    )
    list(adapter(server, suffix, api_key="sk-test").stream(request))
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body == {
        "model": "coach-model",
        "messages": [
            {"role": "system", "content": "You are Coach Sam.\n\nToday: legs."},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,aW1n"}},
                    {"type": "text", "text": "Form check"},
                ],
            },
            {"role": "assistant", "content": "Looks good"},
        ],
        "max_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
    }


def test_no_authorization_header_without_a_key(server: _Server) -> None:
    list(adapter(server).stream(REQUEST))
    assert "Authorization" not in server.requests[0][1]


def test_throttling_is_retried_then_unavailable(server: _Server) -> None:
    server.plans.extend([status(429)] * 3)
    with pytest.raises(ModelUnavailable) as raised:
        list(adapter(server).stream(REQUEST))
    assert raised.value.cause == "HTTP429"
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server: _Server) -> None:
    server.plans.append(status(400, {"error": {"message": "bad model"}}))
    with pytest.raises(ModelUnavailable, match="bad model"):
        list(adapter(server).stream(REQUEST))
    assert len(server.requests) == 1


FAILURES_AFTER_TEXT: dict[str, tuple[Step, ...]] = {
    "cut connection": (CUT,),
    "stall beyond the read timeout": (2.0,),
    "ends without finish or [DONE]": (),
    "[DONE] without a finish_reason (a server that cut the stream)": ("[DONE]",),
    "not JSON": ("{not json",),
}


@pytest.mark.parametrize("failure", FAILURES_AFTER_TEXT.values(), ids=FAILURES_AFTER_TEXT.keys())
def test_failure_after_text_is_interrupted(server: _Server, failure: tuple[Step, ...]) -> None:
    server.plans.append(sse(delta("Keep your "), delta("chest up"), *failure))
    with pytest.raises(ModelStreamInterrupted) as raised:
        list(adapter(server).stream(REQUEST))
    assert raised.value.partial_text == "Keep your chest up"


@pytest.mark.parametrize("failure", FAILURES_AFTER_TEXT.values(), ids=FAILURES_AFTER_TEXT.keys())
def test_failure_before_text_is_unavailable(server: _Server, failure: tuple[Step, ...]) -> None:
    server.plans.append(sse(*failure))
    with pytest.raises(ModelUnavailable):
        list(adapter(server).stream(REQUEST))


def test_nothing_listening_is_unavailable() -> None:
    settings = ModelSettings(provider="openai", openai_base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ModelUnavailable, match="refused"):
        list(OpenAICompatibleModel(settings).stream(REQUEST))


def test_converse_returns_the_whole_reply(server: _Server) -> None:
    answer = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": '{"route": "chat"}'},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }
    server.plans.append(status(200, answer))
    reply = adapter(server).converse(REQUEST)
    assert (reply.text, reply.stop_reason, reply.usage) == ('{"route": "chat"}', "max_tokens", Usage(7, 3))
    assert server.requests[0][2]["stream"] is False


def test_converse_failures_are_unavailable(server: _Server) -> None:
    server.plans.extend([status(503)] * 3 + [status(200, {"unexpected": True})])
    model = adapter(server)
    with pytest.raises(ModelUnavailable, match="HTTP 503"):
        model.converse(REQUEST)
    with pytest.raises(ModelUnavailable):
        model.converse(REQUEST)


def test_sse_data_joins_multiline_events_and_skips_comments() -> None:
    lines = [b": keep-alive\n", b"data: a\r\n", b"data: b\n", b"\n", b"event: x\n", b"data:[DONE]\n"]
    assert list(sse_data(lines)) == ["a\nb", "[DONE]"]
