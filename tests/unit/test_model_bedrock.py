"""The Bedrock adapter against the double: real boto3, real loopback HTTP, wired only by environment."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import pytest

from local.bedrock_double import (
    BedrockDouble,
    CoachResponder,
    Cut,
    Finish,
    Script,
    Stall,
    StreamException,
    Text,
    WaitFor,
)
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
    create_model_port,
)
from shared.models.bedrock import BedrockModel
from shared.models.settings import DEFAULT_REPLY_MODEL_ID, DEFAULT_SIDE_MODEL_ID
from shared.settings import SettingsError

REQUEST = ModelRequest(
    model_id=DEFAULT_REPLY_MODEL_ID,
    system=SystemPrompt(static="You are Coach Sam.", dynamic="Today the athlete trains legs."),
    messages=(Message("user", "How deep should I squat?"),),
    max_tokens=300,
    temperature=0.5,
)


@pytest.fixture(scope="module")
def double() -> Iterator[BedrockDouble]:
    """The double, and the environment a Lambda function would have locally: no endpoint in code.

    One double and one adapter for the module: a boto3 client costs a tenth of a second to create.
    """
    with BedrockDouble(responder=CoachResponder(speed=50)) as running, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", running.url)
        patch.setenv("AWS_ACCESS_KEY_ID", "test")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        patch.setenv("AWS_DEFAULT_REGION", "us-west-2")
        patch.setenv("MODEL_READ_TIMEOUT_SECONDS", "0.3")
        for name in ("MODEL_PROVIDER", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        yield running


@pytest.fixture(scope="module")
def model(double: BedrockDouble) -> BedrockModel:
    return BedrockModel(ModelSettings.from_env())


@pytest.fixture(autouse=True)
def fresh_double(double: BedrockDouble) -> None:
    double.reset()


def collect(model: BedrockModel, request: ModelRequest = REQUEST) -> tuple[str, StreamEnd]:
    events = list(model.stream(request))
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    end = events[-1]
    assert isinstance(end, StreamEnd)
    return "".join(e.text for e in events[:-1] if isinstance(e, TextDelta)), end


def test_stream_yields_deltas_then_the_end(double: BedrockDouble, model: BedrockModel) -> None:
    double.enqueue(Script.of(Text("Hip "), Text("crease "), Text("below knee."), Finish("end_turn", 40, 7, 321)))
    events = list(model.stream(REQUEST))
    assert events == [
        TextDelta("Hip "),
        TextDelta("crease "),
        TextDelta("below knee."),
        StreamEnd("end_turn", Usage(40, 7), 321, DEFAULT_REPLY_MODEL_ID),
    ]
    assert double.requests[0].model_id == DEFAULT_REPLY_MODEL_ID


def test_deltas_arrive_while_the_model_is_still_writing(double: BedrockDouble, model: BedrockModel) -> None:
    gate = threading.Event()
    double.enqueue(Script.of(Text("first"), WaitFor(gate), Text(" last"), Finish()))
    stream = model.stream(REQUEST)
    assert next(stream) == TextDelta("first")
    assert len(double.requests[0].delta_times) == 1  # " last" is not written yet
    gate.set()
    assert [type(e) for e in stream] == [TextDelta, StreamEnd]


def test_request_shape_cache_point_after_the_static_prompt(double: BedrockDouble, model: BedrockModel) -> None:
    request = ModelRequest(
        model_id=DEFAULT_REPLY_MODEL_ID,
        system=REQUEST.system,
        messages=(
            Message("user", "Check my form", images=(Image(b"\x89PNG", "png"),)),
            Message("assistant", "Send a side view."),
            Message("user", "Here it is"),
        ),
        max_tokens=300,
        temperature=0.5,
    )
    collect(model, request)
    body = double.requests[0].body
    assert body["system"] == [
        {"text": "You are Coach Sam."},
        {"cachePoint": {"type": "default"}},
        {"text": "Today the athlete trains legs."},
    ]
    assert body["messages"][0]["content"] == [
        {"image": {"format": "png", "source": {"bytes": base64.b64encode(b"\x89PNG").decode()}}},
        {"text": "Check my form"},
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.5}


def test_no_cache_point_when_caching_is_off(double: BedrockDouble, model: BedrockModel) -> None:
    request = ModelRequest(DEFAULT_SIDE_MODEL_ID, REQUEST.messages, SystemPrompt("Static only", cache=False))
    model.converse(request)
    assert double.requests[0].body["system"] == [{"text": "Static only"}]


def test_throttling_is_retried_three_times_then_unavailable(double: BedrockDouble, model: BedrockModel) -> None:
    double.enqueue(*[Script.error(429, "ThrottlingException", "Too many requests")] * 3)
    with pytest.raises(ModelUnavailable) as raised:
        list(model.stream(REQUEST))
    assert raised.value.cause == "ThrottlingException"
    assert len(double.requests) == 3


def test_validation_errors_are_not_retried(double: BedrockDouble, model: BedrockModel) -> None:
    double.enqueue(Script.error(400, "ValidationException", "bad input"))
    with pytest.raises(ModelUnavailable, match="bad input"):
        list(model.stream(REQUEST))
    assert len(double.requests) == 1


def test_a_server_error_then_success_is_invisible(double: BedrockDouble, model: BedrockModel) -> None:
    double.enqueue(Script.error(500, "InternalServerException"), Script.reply("ok"))
    assert collect(model)[0] == "ok"
    assert len(double.requests) == 2


FAILURES_AFTER_TEXT = {
    "exception event": StreamException("modelStreamErrorException", "boom"),
    "cut connection": Cut(),
    "stall beyond the read timeout": Stall(2.0),
    "no messageStop": None,
}


@pytest.mark.parametrize("failure", FAILURES_AFTER_TEXT.values(), ids=FAILURES_AFTER_TEXT.keys())
def test_failure_after_text_is_interrupted_with_the_partial_text(
    double: BedrockDouble, model: BedrockModel, failure: StreamException | Cut | Stall | None
) -> None:
    double.enqueue(Script.of(Text("Keep your "), Text("chest up"), *([failure] if failure else [])))
    received: list[str] = []
    started = time.monotonic()
    with pytest.raises(ModelStreamInterrupted) as raised:
        received.extend(e.text for e in model.stream(REQUEST) if isinstance(e, TextDelta))
    assert raised.value.partial_text == "Keep your chest up" == "".join(received)
    assert time.monotonic() - started < 1.5
    assert len(double.requests) == 1  # nothing after the first byte is retried


@pytest.mark.parametrize("failure", FAILURES_AFTER_TEXT.values(), ids=FAILURES_AFTER_TEXT.keys())
def test_failure_before_text_is_unavailable(
    double: BedrockDouble, model: BedrockModel, failure: StreamException | Cut | Stall | None
) -> None:
    double.enqueue(Script.of(*([failure] if failure else [])))
    with pytest.raises(ModelUnavailable):
        list(model.stream(REQUEST))


def test_exception_event_cause_is_the_bedrock_code(double: BedrockDouble, model: BedrockModel) -> None:
    double.enqueue(Script.of(Text("a"), StreamException("throttlingException", "slow down")))
    with pytest.raises(ModelStreamInterrupted) as raised:
        list(model.stream(REQUEST))
    assert raised.value.cause == "throttlingException"


def test_closing_the_stream_early_releases_it(double: BedrockDouble, model: BedrockModel) -> None:
    double.enqueue(Script.reply("one ", "two ", "three", delay=0.01), Script.reply("again"))
    stream = model.stream(REQUEST)
    assert next(stream) == TextDelta("one ")
    stream.close()
    assert collect(model)[0] == "again"


def test_converse_returns_the_whole_reply(double: BedrockDouble, model: BedrockModel) -> None:
    double.enqueue(Script.of(Text('{"route": '), Text('"workout"}'), Finish("end_turn", 9, 4, 80)))
    reply = model.converse(ModelRequest(DEFAULT_SIDE_MODEL_ID, REQUEST.messages))
    assert (reply.text, reply.stop_reason, reply.usage, reply.latency_ms) == (
        '{"route": "workout"}',
        "end_turn",
        Usage(9, 4),
        80,
    )
    assert double.requests[0].operation == "converse"
    assert double.requests[0].model_id == DEFAULT_SIDE_MODEL_ID


@pytest.mark.parametrize(
    "script",
    [Script.error(400, "ValidationException"), Script.of(Stall(2.0)), Script.of(Cut())],
    ids=["validation", "read timeout", "cut"],
)
def test_converse_failures_are_unavailable(double: BedrockDouble, model: BedrockModel, script: Script) -> None:
    double.enqueue(*[script] * 3)
    with pytest.raises(ModelUnavailable):
        model.converse(ModelRequest(DEFAULT_SIDE_MODEL_ID, REQUEST.messages))


def test_the_default_double_coaches_through_the_adapter(model: BedrockModel) -> None:
    text, end = collect(model)
    assert "How deep should I squat?" in text
    assert end.usage.output_tokens > 0


def test_settings_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {"MODEL_ID_REPLY": "r", "MODEL_ID_SIDE": "s"}
    defaults = ModelSettings.from_env(ids)
    assert (defaults.provider, defaults.max_attempts, defaults.connect_timeout, defaults.read_timeout) == (
        "bedrock",
        3,
        3.0,
        60.0,
    )
    custom = ModelSettings.from_env({**ids, "MODEL_READ_TIMEOUT_SECONDS": "5"})
    assert (custom.reply_model_id, custom.side_model_id, custom.read_timeout) == ("r", "s", 5.0)
    # The model ids come from the stack: no silent default that would only exist locally.
    with pytest.raises(SettingsError, match="MODEL_ID_REPLY is required; MODEL_ID_SIDE is required"):
        ModelSettings.from_env({})
    with pytest.raises(SettingsError, match="MODEL_PROVIDER"):
        ModelSettings.from_env({**ids, "MODEL_PROVIDER": "azure"})
    with pytest.raises(SettingsError, match="OPENAI_BASE_URL"):
        ModelSettings.from_env({**ids, "MODEL_PROVIDER": "openai"})


def test_client_config_standard_retries_and_timeouts(double: BedrockDouble, model: BedrockModel) -> None:
    config = model.client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (config.connect_timeout, config.read_timeout) == (3.0, 0.3)
    assert model.client.meta.endpoint_url == double.url
    assert model.client is model.client


def test_the_model_port_is_the_adapter_the_provider_names() -> None:
    assert type(create_model_port(ModelSettings(provider="bedrock"))).__name__ == "BedrockModel"
    openai = ModelSettings(provider="openai", openai_base_url="http://127.0.0.1:9")
    assert type(create_model_port(openai)).__name__ == "OpenAICompatibleModel"
