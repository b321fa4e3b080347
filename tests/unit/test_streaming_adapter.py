"""Byte-exact Runtime API traffic of the adapter, and its buffered twin."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.streaming.bootstrap import load_handler, run_invocation
from shared.streaming.context import LambdaContext
from shared.streaming.runtime_api import RuntimeApiClient
from tests.fixtures import stream_handlers
from tests.fixtures.capture_runtime import CaptureRuntimeApi
from tests.fixtures.events import function_url_event, rest_v1_event

REPO = Path(__file__).resolve().parents[2]
NULS = b"\x00" * 8


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


@pytest.fixture
def runtime():
    api = CaptureRuntimeApi()
    yield api
    api.close()


def invoke(runtime: CaptureRuntimeApi, handler, event, request_id="req-1", headers=None):
    runtime.events.append((request_id, event, headers or {}))
    client = RuntimeApiClient(runtime.address)
    run_invocation(client, handler, client.next_invocation())
    return runtime.requests[-1]


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


def test_error_after_first_byte_ends_with_error_event_and_trailers(runtime):
    request = invoke(runtime, stream_handlers.fails_mid_stream, function_url_event())

    error_event = sse({"type": "error", "code": "INTERNAL_ERROR", "message": "internal error"})
    assert chunk(error_event) in request.raw_body
    assert b"secret internal detail" not in request.raw_body.split(b"0\r\nLambda")[0]
    tail = request.raw_body[request.raw_body.index(b"0\r\nLambda") :]
    lines = tail.split(b"\r\n")
    assert lines[0] == b"0"
    assert lines[1] == b"Lambda-Runtime-Function-Error-Type: RuntimeError"
    name, _, value = lines[2].partition(b": ")
    assert name == b"Lambda-Runtime-Function-Error-Body"
    document = json.loads(base64.b64decode(value))
    assert document["errorType"] == "RuntimeError"
    assert document["errorMessage"] == "secret internal detail"
    assert tail.endswith(b"\r\n\r\n")


def test_contract_failure_mid_stream_keeps_its_code(runtime):
    request = invoke(runtime, stream_handlers.fails_mid_stream, function_url_event(query="kind=contract"))
    assert chunk(sse({"type": "error", "code": "MODEL_STREAM_INTERRUPTED", "message": "the model stopped"})) in (
        request.raw_body
    )
    assert b"Lambda-Runtime-Function-Error-Type: ReplyInterrupted\r\n" in request.raw_body


def test_exception_escaping_before_first_byte_goes_to_error_endpoint(runtime):
    request = invoke(runtime, stream_handlers.plain_raises, function_url_event())
    assert request.path == "/2018-06-01/runtime/invocation/req-1/error"
    assert request.headers["Lambda-Runtime-Function-Error-Type"] == "ValueError"
    document = json.loads(request.raw_body)
    assert document["errorType"] == "ValueError"
    assert document["errorMessage"] == "plain failure"
    assert isinstance(document["stackTrace"], list)


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


def test_rest_v1_event_gets_a_v1_prelude_with_multi_value_cookies(runtime):
    request = invoke(runtime, stream_handlers.json_answer, rest_v1_event(body="hi"))
    prelude = json.loads(request.raw_body.split(b"\r\n", 1)[1].partition(NULS)[0])
    assert prelude == {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Set-Cookie": ["a=1"]},
    }


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


def test_context_remaining_time_follows_the_deadline():
    context = LambdaContext.for_invocation("r", int(time.time() * 1000) + 5000, "arn")
    assert 4000 < context.get_remaining_time_in_millis() <= 5000


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


def test_load_handler_accepts_slash_paths_and_names_missing_functions():
    assert load_handler("tests/fixtures/stream_handlers.events") is stream_handlers.events
    with pytest.raises(Exception, match="missing"):
        load_handler("tests.fixtures.stream_handlers.nope")


def test_init_error_is_posted_and_the_process_exits(runtime):
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "_HANDLER": "tests.fixtures.nope.handler",
        "LAMBDA_TASK_ROOT": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-m", "shared.streaming.bootstrap"],
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
