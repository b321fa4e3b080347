"""Byte-exact Runtime API traffic of `@streaming_handler` under the loop, and its buffered twin."""

from __future__ import annotations

import io
import json
import os
import time
from typing import Any

import pytest

from shared.runtime.context import LambdaContext
from shared.runtime.stream import ResponseStream, current_stream
from tests.fixtures import stream_handlers
from tests.fixtures.capture_runtime import chunk, invoke
from tests.fixtures.events import function_url_event, rest_v1_event

NULS = b"\x00" * 8


def sse(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def test_stream_headers_prelude_and_one_chunk_per_event(runtime):
    request = invoke(runtime, stream_handlers.events, function_url_event(query="count=2"))

    assert request.method == "POST"
    assert request.path == "/2018-06-01/runtime/invocation/req-1/response"
    assert request.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert request.headers["Transfer-Encoding"] == "chunked"
    assert request.headers["Content-Type"] == "application/vnd.awslambda.http-integration-response"
    assert request.headers["Trailer"] == "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    assert "Content-Length" not in request.headers

    prelude = json.dumps(
        {
            "statusCode": 200,
            "headers": {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
            "cookies": [],
        }
    ).encode()
    body = request.raw_body
    assert body.startswith(chunk(prelude + NULS))
    chunks = body[len(chunk(prelude + NULS)) :]
    assert chunks.startswith(chunk(sse({"type": "start", "status": "initialized", "requestId": "req-1"})))
    assert chunks.endswith(b"0\r\n\r\n"), "no trailers on success"
    # one chunk per event: start, two pieces, complete
    frames = chunks.split(b"\n\n\r\n")
    assert len(frames) == 5
    assert frames[-1] == b"0\r\n\r\n"


def test_error_after_first_byte_ends_with_error_event_and_a_whole_response(runtime):
    """The error event is the stream's last word; no trailers, so no front door cuts it off."""
    request = invoke(runtime, stream_handlers.fails_mid_stream, function_url_event())

    error_event = sse({"type": "error", "code": "INTERNAL_ERROR", "message": "internal error"})
    assert request.raw_body.endswith(chunk(error_event) + b"0\r\n\r\n")
    assert b"secret internal detail" not in request.raw_body
    assert b"Lambda-Runtime-Function-Error-Type" not in request.raw_body


def test_contract_failure_mid_stream_keeps_its_code(runtime):
    request = invoke(runtime, stream_handlers.fails_mid_stream, function_url_event(query="kind=contract"))
    error_event = sse({"type": "error", "code": "MODEL_STREAM_INTERRUPTED", "message": "the model stopped"})
    assert request.raw_body.endswith(chunk(error_event) + b"0\r\n\r\n")


def test_empty_body_still_sends_the_prelude(runtime):
    request = invoke(runtime, stream_handlers.empty_body, function_url_event())
    prelude = json.dumps({"statusCode": 204, "headers": {}, "cookies": []}).encode()
    assert request.raw_body == chunk(prelude + NULS) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("handler", "status", "code"),
    [
        (stream_handlers.not_found_before_stream, 404, "NOT_FOUND"),
        (stream_handlers.crashes_before_stream, 500, "INTERNAL_ERROR"),
    ],
)
def test_errors_before_the_first_event_are_json_with_a_real_status(runtime, handler, status, code):
    request = invoke(runtime, handler, function_url_event())
    prelude_chunk, _, rest = request.raw_body.partition(NULS + b"\r\n")
    prelude = json.loads(prelude_chunk.split(b"\r\n", 1)[1])
    assert prelude["statusCode"] == status
    assert prelude["headers"]["Content-Type"] == "application/json"
    body = json.loads(rest.split(b"\r\n")[1])
    assert body["error"]["code"] == code
    assert b"hunter2" not in request.raw_body


V1_PRELUDE = {
    "statusCode": 201,
    "headers": {"Content-Type": "application/json"},
    "multiValueHeaders": {"Set-Cookie": ["a=1"]},
}
V2_PRELUDE = {"statusCode": 201, "headers": {"Content-Type": "application/json"}, "cookies": ["a=1"]}
PAYLOAD_VERSIONS = pytest.mark.parametrize(
    ("event", "expected"),
    [(rest_v1_event(body="hi"), V1_PRELUDE), (function_url_event(body="hi"), V2_PRELUDE)],
    ids=["rest-v1", "function-url-v2"],
)


@PAYLOAD_VERSIONS
def test_the_prelude_carries_cookies_as_the_payload_version_wants(runtime, event, expected):
    request = invoke(runtime, stream_handlers.json_answer, event)
    prelude = json.loads(request.raw_body.split(b"\r\n", 1)[1].partition(NULS)[0])
    assert prelude == expected


class RecordingStream(ResponseStream):
    """A stream with no loop and no Runtime API behind it: what the HTTP layer hands it, kept."""

    def __init__(self) -> None:
        self.prelude: Any = None
        self.data = b""
        self.error: BaseException | None = None

    def start(self, prelude: Any = None, *, content_type: str | None = None) -> None:
        self.started = True
        self.prelude = prelude

    def write(self, data: bytes) -> None:
        self.data += data

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error


@PAYLOAD_VERSIONS
def test_the_http_layer_builds_the_prelude_itself(event, expected):
    stream = RecordingStream()
    token = current_stream.set(stream)
    try:
        answer = stream_handlers.json_answer(event, LambdaContext.for_invocation("r", 0, "arn"))
    finally:
        current_stream.reset(token)
    assert answer is None, "a streamed answer returns nothing to the loop"
    assert stream.prelude == expected
    assert json.loads(stream.data) == {"echo": "hi", "path": "/x"}
    assert stream.error is None


def test_completion_invocation_is_acknowledged_quietly(runtime):
    request = invoke(runtime, stream_handlers.events, {"requestContext": {"apiId": "api", "stage": "prod"}})
    assert request.path.endswith("/response")
    assert "Lambda-Runtime-Function-Response-Mode" not in request.headers
    assert json.loads(request.raw_body) == {}


def test_non_http_event_gets_a_buffered_json_error(runtime):
    request = invoke(runtime, stream_handlers.events, {"Records": []})
    answer = json.loads(request.raw_body)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == "VALIDATION_ERROR"


def test_keep_alive_comment_after_silence(runtime, monkeypatch):
    monkeypatch.setenv("SSE_KEEP_ALIVE_SECONDS", "0.1")
    request = invoke(runtime, stream_handlers.sleeps, function_url_event(query="seconds=0.35"))
    body = request.raw_body
    assert body.count(chunk(b": keep-alive\n\n")) >= 2
    assert body.index(b"keep-alive") > body.index(b'"type":"start"')
    assert body.index(b"keep-alive") < body.index(b"woke")


def test_trace_id_and_context_follow_each_invocation(runtime, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    request = invoke(
        runtime,
        stream_handlers.events,
        function_url_event(query="count=0"),
        headers={"Lambda-Runtime-Trace-Id": "Root=1-abc"},
    )
    complete = json.loads(request.raw_body.split(b"data: ")[-1].split(b"\n\n")[0])
    assert complete["trace"] == "Root=1-abc"
    assert complete["remaining"] > 1_000_000  # the capture server's deadline is far away
    invoke(runtime, stream_handlers.events, function_url_event(query="count=0"), request_id="req-2")
    assert "_X_AMZN_TRACE_ID" not in os.environ


def test_powertools_decorated_handler_runs_under_the_loop(runtime, monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(stream_handlers.logger.registered_handler, "stream", log)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "coach-fn")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    request = invoke(runtime, stream_handlers.powertools_decorated, function_url_event(), request_id="pt-1")
    assert sse({"type": "chunk", "content": "coach-fn|1024"}) in request.raw_body
    log_lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    streamed = [line for line in log_lines if line.get("message") == "streaming"]
    assert streamed
    assert streamed[0]["function_request_id"] == "pt-1"
    assert streamed[0]["step"] == "first"


def test_buffered_delivery_returns_the_same_events():
    context = LambdaContext.for_invocation("buf-1", int(time.time() * 1000) + 60_000, "arn")
    answer = stream_handlers.events(function_url_event(query="count=2"), context)
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == "text/event-stream; charset=utf-8"
    assert answer["cookies"] == []
    assert answer["isBase64Encoded"] is False
    events = [json.loads(line[6:]) for line in answer["body"].split("\n\n") if line]
    assert [e["type"] for e in events] == ["start", "chunk", "chunk", "complete"]
    assert events[0]["requestId"] == "buf-1"


def test_buffered_errors_keep_their_status():
    context = LambdaContext.for_invocation("buf-2", int(time.time() * 1000) + 60_000, "arn")
    answer = stream_handlers.not_found_before_stream(function_url_event(), context)
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"]) == {"error": {"code": "NOT_FOUND", "message": "conversation not found"}}


def test_buffered_mid_stream_failure_ends_with_error_event():
    context = LambdaContext.for_invocation("buf-3", int(time.time() * 1000) + 60_000, "arn")
    answer = stream_handlers.fails_mid_stream(function_url_event(), context)
    assert answer["statusCode"] == 200
    assert answer["body"].endswith(
        sse({"type": "error", "code": "INTERNAL_ERROR", "message": "internal error"}).decode()
    )


def test_rest_responses_carry_cors_for_configured_origins(runtime, monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://app.example.com")
    event = rest_v1_event(body="hi")
    event["headers"]["Origin"] = "https://app.example.com"
    request = invoke(runtime, stream_handlers.json_answer, event)
    prelude = json.loads(request.raw_body.split(b"\r\n", 1)[1].partition(NULS)[0])
    assert prelude["headers"]["Access-Control-Allow-Origin"] == "https://app.example.com"
    event["headers"]["Origin"] = "https://evil.example"
    request = invoke(runtime, stream_handlers.json_answer, event, request_id="req-2")
    prelude = json.loads(request.raw_body.split(b"\r\n", 1)[1].partition(NULS)[0])
    assert "Access-Control-Allow-Origin" not in prelude["headers"]


def test_function_url_responses_leave_cors_to_the_url_configuration(runtime, monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://app.example.com")
    request = invoke(
        runtime, stream_handlers.json_answer, function_url_event(headers={"origin": "https://app.example.com"})
    )
    prelude = json.loads(request.raw_body.split(b"\r\n", 1)[1].partition(NULS)[0])
    assert "Access-Control-Allow-Origin" not in prelude["headers"]
