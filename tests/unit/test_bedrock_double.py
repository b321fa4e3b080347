"""The Bedrock double, read by boto3 over loopback HTTP, so botocore's real parser judges the framing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError
from urllib3.exceptions import ProtocolError

from local.bedrock_double import (
    BedrockDouble,
    CoachResponder,
    Cut,
    Finish,
    RecordedRequest,
    Script,
    StreamException,
    Text,
    WaitFor,
)
from local.eventstream import event_message, exception_message
from tests.fixtures.aws import loopback_client

MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def double() -> Iterator[BedrockDouble]:
    with BedrockDouble(responder=CoachResponder(speed=50)) as running:
        yield running


@pytest.fixture
def client(double: BedrockDouble) -> Any:
    return loopback_client("bedrock-runtime", double.url, region="us-west-2", read_timeout=5)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def stream_events(client: Any, text: str = "hi", model_id: str = MODEL_ID) -> list[dict[str, Any]]:
    return list(client.converse_stream(modelId=model_id, messages=user(text))["stream"])


def test_eventstream_messages_decode_with_botocore_and_crcs_are_checked() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(event_message("messageStop", {"stopReason": "end_turn"}))
    buffer.add_data(exception_message("throttlingException", {"message": "slow down"}))
    first, second = list(buffer)
    assert first.headers == {
        ":event-type": "messageStop",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload) == {"stopReason": "end_turn"}
    assert second.headers[":exception-type"] == "throttlingException"
    assert second.headers[":message-type"] == "exception"

    damaged = bytearray(event_message("messageStop", {"stopReason": "end_turn"}))
    damaged[-6] ^= 0xFF  # a payload byte: only the message CRC can notice
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(damaged))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def test_stream_parses_into_every_event_type(double: BedrockDouble, client: Any) -> None:
    double.enqueue(Script.of(Text("Hello "), Text("there"), Finish("end_turn", 12, 3, 250)))

    assert stream_events(client) == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hello "}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": "there"}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {
            "metadata": {
                "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
                "metrics": {"latencyMs": 250},
            }
        },
    ]


def test_each_delta_reaches_the_client_before_the_next_is_written(double: BedrockDouble, client: Any) -> None:
    gate = threading.Event()
    double.enqueue(Script.of(Text("first "), WaitFor(gate), Text("last"), Finish()))
    stream = iter(client.converse_stream(modelId=MODEL_ID, messages=user("hi"))["stream"])

    assert next(stream) == {"messageStart": {"role": "assistant"}}
    assert next(stream)["contentBlockDelta"]["delta"]["text"] == "first "
    assert len(double.requests[0].delta_times) == 1  # the double is still holding "last"
    gate.set()
    assert [e["contentBlockDelta"]["delta"]["text"] for e in stream if "contentBlockDelta" in e] == ["last"]


def test_paced_deltas_arrive_when_written(double: BedrockDouble, client: Any) -> None:
    double.enqueue(Script.reply("a ", "b ", "c ", "d", delay=0.05))
    arrivals = [
        time.monotonic()
        for event in client.converse_stream(modelId=MODEL_ID, messages=user("hi"))["stream"]
        if "contentBlockDelta" in event
    ]
    written = double.requests[0].delta_times
    assert len(arrivals) == len(written) == 4
    assert all(arrived < next_written for arrived, next_written in zip(arrivals, written[1:], strict=False))
    assert arrivals[-1] - arrivals[0] >= 0.14


def test_requests_are_recorded_with_decoded_model_ids(double: BedrockDouble, client: Any) -> None:
    client.converse_stream(
        modelId=MODEL_ID,
        system=[{"text": "You are a coach."}, {"cachePoint": {"type": "default"}}],
        messages=[{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": b"PNG"}}}]}],
        inferenceConfig={"maxTokens": 100},
    )["stream"].close()
    client.converse(modelId="us.amazon.nova-micro-v1:0", messages=user("side task"))

    streamed, side = double.requests
    assert (streamed.operation, streamed.model_id) == ("converse-stream", MODEL_ID)
    assert streamed.body["system"] == [{"text": "You are a coach."}, {"cachePoint": {"type": "default"}}]
    assert streamed.body["messages"][0]["content"][0]["image"] == {
        "format": "png",
        "source": {"bytes": "UE5H"},
    }
    assert streamed.body["inferenceConfig"] == {"maxTokens": 100}
    assert (side.operation, side.model_id, side.last_user_text) == (
        "converse",
        "us.amazon.nova-micro-v1:0",
        "side task",
    )


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, "ValidationException"), (429, "ThrottlingException"), (500, "InternalServerException")],
)
def test_http_errors_raise_client_errors_with_their_code(
    double: BedrockDouble, client: Any, status: int, error_type: str
) -> None:
    double.enqueue(Script.error(status, error_type, "nope"), Script.error(status, error_type, "nope"))
    with pytest.raises(ClientError) as streamed:
        client.converse_stream(modelId=MODEL_ID, messages=user("hi"))
    with pytest.raises(ClientError) as whole:
        client.converse(modelId=MODEL_ID, messages=user("hi"))
    for raised in (streamed.value, whole.value):
        assert raised.response["Error"] == {"Code": error_type, "Message": "nope"}
        assert raised.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_exception_event_raises_event_stream_error_after_the_text(double: BedrockDouble, client: Any) -> None:
    double.enqueue(Script.of(Text("partial"), StreamException("modelStreamErrorException", "boom")))
    seen: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as raised:
        seen.extend(client.converse_stream(modelId=MODEL_ID, messages=user("hi"))["stream"])
    assert raised.value.response["Error"] == {"Code": "modelStreamErrorException", "Message": "boom"}
    assert seen[-1] == {"contentBlockDelta": {"delta": {"text": "partial"}, "contentBlockIndex": 0}}


def test_cut_and_unfinished_streams(double: BedrockDouble, client: Any) -> None:
    double.enqueue(Script.of(Text("half"), Cut()), Script.of(Text("no stop")))
    with pytest.raises(ProtocolError):  # botocore lets urllib3's error through while iterating
        stream_events(client)
    unfinished = stream_events(client)
    assert unfinished[-1] == {"contentBlockDelta": {"delta": {"text": "no stop"}, "contentBlockIndex": 0}}


def test_script_rejects_steps_after_the_end() -> None:
    with pytest.raises(ValueError, match="last step"):
        Script.of(Finish(), Text("late"))
    with pytest.raises(ValueError, match="before any stream"):
        Script.of(Text("early"), *Script.error(429, "ThrottlingException").steps)


def test_a_callable_can_choose_the_script(double: BedrockDouble, client: Any) -> None:
    double.enqueue(lambda request: Script.reply(request.model_id))
    texts = [e["contentBlockDelta"]["delta"]["text"] for e in stream_events(client) if "contentBlockDelta" in e]
    assert texts == [MODEL_ID]


def test_default_coach_reply_uses_the_users_words_and_is_paced(client: Any) -> None:
    events = stream_events(client, "I squatted 100kg for five sets today")
    texts = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert len(texts) > 5
    assert "I squatted 100kg for five sets today" in "".join(texts)
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0


def test_default_converse_answers_json_when_asked(double: BedrockDouble, client: Any) -> None:
    answer = client.converse(
        modelId="us.amazon.nova-micro-v1:0",
        system=[{"text": "Classify the message. Answer with JSON only."}],
        messages=user("log my bench press"),
    )
    assert json.loads(answer["output"]["message"]["content"][0]["text"])["summary"] == "log my bench press"
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"]["totalTokens"] == answer["usage"]["inputTokens"] + answer["usage"]["outputTokens"]

    def router(request: RecordedRequest) -> dict[str, Any] | None:
        return {"route": "workout"} if "bench" in request.last_user_text else None

    assert isinstance(double.responder, CoachResponder)
    double.responder.add_json_responder(router)
    answer = client.converse(modelId="m", system=[{"text": "Reply in JSON"}], messages=user("bench day"))
    assert json.loads(answer["output"]["message"]["content"][0]["text"]) == {"route": "workout"}


def test_runs_standalone_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.bedrock_double", "--port", "0", "--speed", "50"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=url,
            region_name="eu-west-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        assert client.converse(modelId=MODEL_ID, messages=user("hello"))["stopReason"] == "end_turn"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
