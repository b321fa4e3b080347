"""The OpenAI-compatible adapter against a real model: llama.cpp's server with SmolLM2-135M-Instruct.

The adapter's unit tests meet a scripted server that says what the tests expect; here a real server
and a real (tiny) model answer, so the framing, the finish, the usage (none, in a stream) and the
failures are llama.cpp's own. `scripts/install-llm.sh` installs the pinned server and model on first use: the first run on a
machine builds llama.cpp (minutes; the wheel is cached outside the repository, so later runs install
in seconds). Where it cannot be built (no compiler, no registry) the tests skip and say why.

The last tests run both flows end to end through the local stack as `make dev-llm` starts it.
Select them all with `-m real_model`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from local.deployed import synthesize
from local.llama_server import DESCRIPTION, MODEL_ALIAS, LlamaServer, RealModelUnavailable, install
from local.stack import LocalStack, StackPorts
from shared.coach_conversation.router import DEFAULT_ROUTE, decide_route, parse_route
from shared.json_text import first_json_object
from shared.models import (
    Message,
    ModelError,
    ModelPort,
    ModelReply,
    ModelRequest,
    ModelSettings,
    ModelStreamInterrupted,
    StreamEnd,
    SystemPrompt,
    TextDelta,
)
from shared.models.openai_compat import OpenAICompatibleModel
from shared.models.port import ModelEvent
from tests.integration.sse_client import iter_events

# The first run builds llama.cpp inside the fixture's setup, which this timeout covers too.
pytestmark = [pytest.mark.integration, pytest.mark.real_model, pytest.mark.timeout(1800)]

COACH = SystemPrompt(static="You are Coach Riley, a friendly strength coach. Answer briefly.", cache=False)
LONG_ANSWER = "List twenty different exercises for strong legs, one per line, each with a short explanation."
CONVERSATION_FUNCTION = "stream-coach-conversation"
CREATOR_FUNCTION = "stream-coach-creator-session"
HANG_BOUND_S = 20.0  # far past any read timeout below: a stream still running then is a hang


@pytest.fixture(scope="module")
def installed() -> None:
    try:
        install()
    except RealModelUnavailable as error:
        pytest.skip(f"no real model on this machine: {error}")


def start_server(log_dir: Path) -> LlamaServer:
    return LlamaServer(log_path=log_dir / "llama-server.log").start(timeout=120)


@pytest.fixture(scope="module")
def server(installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    llama = start_server(tmp_path_factory.mktemp("llama"))
    yield llama
    llama.stop()


def adapter(server: LlamaServer, read_timeout: float = 60.0) -> OpenAICompatibleModel:
    settings = ModelSettings(
        provider="openai",
        reply_model_id=MODEL_ALIAS,
        side_model_id=MODEL_ALIAS,
        openai_base_url=server.url,
        read_timeout=read_timeout,
        max_attempts=1,
    )
    return OpenAICompatibleModel(settings)


def request(text: str, max_tokens: int) -> ModelRequest:
    return ModelRequest(
        model_id=MODEL_ALIAS,
        messages=(Message(role="user", text=text),),
        system=COACH,
        max_tokens=max_tokens,
        temperature=0.0,
    )


def test_a_streamed_reply_arrives_in_pieces_then_ends(server: LlamaServer) -> None:
    arrivals: list[tuple[float, ModelEvent]] = []
    for event in adapter(server).stream(request("How do I squat deeper?", max_tokens=64)):
        arrivals.append((time.monotonic(), event))
    deltas = [(at, event.text) for at, event in arrivals if isinstance(event, TextDelta)]
    end = arrivals[-1][1]

    assert isinstance(end, StreamEnd)
    assert sum(isinstance(event, StreamEnd) for _, event in arrivals) == 1
    assert len(deltas) >= 3
    assert "".join(text for _, text in deltas).strip()
    # Token by token: the pieces arrive over time as the model produces them, not in one burst.
    assert deltas[-1][0] - deltas[0][0] > 0.005 * len(deltas)
    assert end.stop_reason in ("end_turn", "max_tokens")
    assert end.model_id == MODEL_ALIAS
    # llama-cpp-python's streams carry no usage (it ignores `stream_options`): the end says zero, not a guess.
    assert end.usage.output_tokens in (0, len(deltas))


def test_a_request_beside_a_running_stream_waits_instead_of_cutting_it_off(server: LlamaServer) -> None:
    """llama.cpp answers one request at a time; a classifier asked beside a reply must not end the reply
    early (the server's default would close it with a bare `[DONE]`, which reads like a whole reply)."""
    model = adapter(server)
    stream = model.stream(request(LONG_ANSWER, max_tokens=60))
    first = next(stream)
    assert isinstance(first, TextDelta)
    beside: list[ModelReply] = []
    thread = threading.Thread(target=lambda: beside.append(model.converse(request("Hi", max_tokens=8))))
    thread.start()
    time.sleep(0.2)  # the second request is waiting at the server while the stream goes on

    rest = list(stream)
    thread.join(HANG_BOUND_S)

    end = rest[-1]
    assert isinstance(end, StreamEnd)
    assert end.stop_reason == "max_tokens", "the stream was ended before its own limit"
    assert len(beside) == 1, "the request beside it was answered after the stream"
    assert beside[0].usage.output_tokens > 0


@dataclass
class RecordingModel(ModelPort):
    """The real adapter, with each whole reply kept, so a test sees what the router was given."""

    inner: ModelPort
    replies: list[ModelReply] = field(default_factory=list)

    def converse(self, request: ModelRequest) -> ModelReply:
        reply = self.inner.converse(request)
        self.replies.append(reply)
        return reply

    def stream(self, request: ModelRequest) -> Iterator[ModelEvent]:
        return self.inner.stream(request)


def test_the_router_degrades_to_its_default_route_when_the_model_breaks_the_json(server: LlamaServer) -> None:
    recording = RecordingModel(adapter(server))

    decision = decide_route(recording, MODEL_ALIAS, "I did 5x5 squats at 100kg today, how should I progress?")

    assert len(recording.replies) == 1, "the router made exactly one whole call to the real server"
    reply = recording.replies[0]
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.output_tokens > 0
    assert decision == parse_route(reply.text)
    found = first_json_object(reply.text)
    if found is None:
        assert decision is DEFAULT_ROUTE  # no JSON at all: the reply still comes, the extras are skipped
    else:
        assert decision.defaulted is (decision is DEFAULT_ROUTE)


@dataclass
class Consumer:
    """Reads a stream on its own thread, so a hang shows up as a thread still running, not a stuck test."""

    stream: Iterator[ModelEvent]
    texts: list[str] = field(default_factory=list)
    error: BaseException | None = None
    first_text: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            for event in self.stream:
                if isinstance(event, TextDelta):
                    self.texts.append(event.text)
                    if len(self.texts) >= 2:
                        self.first_text.set()
        except BaseException as error:  # the assertion below names it
            self.error = error
        finally:
            self.first_text.set()
            self.done.set()


def freeze(server: LlamaServer) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)


STOPS = {"killed": LlamaServer.kill, "frozen": freeze}
READ_TIMEOUT_S = 5.0  # longer than a warm server's first token on a busy 2-core machine


@pytest.mark.parametrize("stop", STOPS.values(), ids=STOPS.keys())
def test_a_server_that_stops_mid_stream_raises_the_model_error_without_hanging(
    installed: None, tmp_path: Path, stop
) -> None:
    llama = start_server(tmp_path)  # its own server: this test ends it
    try:
        adapter(llama).converse(request("Hello", max_tokens=4))  # warm: the first reply is the slowest
        consumer = Consumer(adapter(llama, read_timeout=READ_TIMEOUT_S).stream(request(LONG_ANSWER, max_tokens=400)))
        threading.Thread(target=consumer.run, daemon=True).start()
        assert consumer.first_text.wait(60), "no text arrived from the real model"
        stopped_at = time.monotonic()
        stop(llama)

        assert consumer.done.wait(HANG_BOUND_S), "the adapter hung after the server stopped"
        assert time.monotonic() - stopped_at < READ_TIMEOUT_S + 3
        assert isinstance(consumer.error, ModelStreamInterrupted), f"got {consumer.error!r}"
        assert isinstance(consumer.error, ModelError)
        assert consumer.error.partial_text == "".join(consumer.texts)
        assert len(consumer.texts) >= 2
    finally:
        if llama.process is not None and llama.process.poll() is None:
            llama.process.send_signal(signal.SIGCONT)
        llama.stop()


def test_the_stack_points_only_the_functions_model_settings_at_the_local_model(tmp_path: Path) -> None:
    """Where `make dev-llm` differs from the templates, and nowhere else: the model's provider, address
    and names (Bedrock's ids mean nothing to llama.cpp)."""
    stack = LocalStack(StackPorts.ephemeral(), tmp_path, model="llama", deploy_environ={}, overrides_file=None)
    stack.deployed = synthesize(stack.definitions, stack.deploy_environ)
    assert stack.llama is not None
    assert stack.bedrock is None
    assert DESCRIPTION in stack.model_description()

    for name in (CONVERSATION_FUNCTION, CREATOR_FUNCTION):
        template = stack.template_environment(name)
        environment = stack.function_environment(name)
        changed = {key for key, value in template.items() if environment.get(key) != value}
        assert changed <= {"MODEL_PROVIDER", "MODEL_ID_REPLY", "MODEL_ID_SIDE"}, changed
        assert environment["MODEL_PROVIDER"] == "openai"
        assert environment["OPENAI_BASE_URL"] == stack.llama.url
        assert environment["MODEL_ID_REPLY"] == environment["MODEL_ID_SIDE"] == MODEL_ALIAS
    assert "MODEL_ID_REPLY" not in stack.model_environment({"COACH_TABLE_NAME"})


@pytest.fixture(scope="module")
def llama_stack(installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack as `make dev-llm` runs it (its own llama.cpp server), on free ports."""
    state = tmp_path_factory.mktemp("llama-stack")
    stack = LocalStack(StackPorts.ephemeral(), state, model="llama", deploy_environ={}, overrides_file=None)
    try:
        yield stack.start()
    finally:
        stack.stop()


def stream_turn(url: str, token: str, text: str) -> list[tuple[float, dict]]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("POST", url, headers=headers, json={"userResponse": text}, timeout=120) as response:
        assert response.status_code == 200, response.read()
        return list(iter_events(response))


def assert_streamed_reply(events: list[tuple[float, dict]]) -> tuple[dict, str]:
    """Start first, then the reply in several chunks arriving over time, then `complete`; returns both."""
    types = [event["type"] for _, event in events]
    assert types[0] == "start"
    assert types[-1] == "complete", events[-1][1]
    chunks = [(at, event["content"]) for at, event in events if event["type"] == "chunk"]
    assert len(chunks) >= 3
    assert chunks[-1][0] > chunks[0][0], "the chunks arrived in one burst"
    return events[-1][1], "".join(text for _, text in chunks)


# The creator first: the conversation's post-turn work calls the same one-at-a-time server afterwards.
def test_a_coach_creator_answer_streams_the_real_models_reply(llama_stack: LocalStack) -> None:
    user_id = "llama-creator"
    token = llama_stack.issuer.mint(user_id)
    api = llama_stack.outputs()["apiUrl"]
    created = httpx.post(
        f"{api}/users/{user_id}/coach-creator-sessions", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert created.status_code == 201, created.text
    url = f"{llama_stack.function_urls[CREATOR_FUNCTION].url}/users/{user_id}/coach-creator-sessions/"
    url += f"{created.json()['sessionId']}/stream"

    complete, _ = assert_streamed_reply(stream_turn(url, token, "I want to get stronger; my left knee is sore."))

    assert complete["aiResponse"].strip()
    assert complete["progressDetails"]["questionsCompleted"] >= 1


def test_a_conversation_turn_streams_the_real_models_reply_and_stores_it(llama_stack: LocalStack) -> None:
    demo = llama_stack.demo
    token = llama_stack.issuer.mint(demo["userId"])
    path = f"/users/{demo['userId']}/coaches/{demo['coachId']}/conversations/{demo['conversationId']}"
    url = llama_stack.function_urls[CONVERSATION_FUNCTION].url + path + "/stream"

    complete, reply = assert_streamed_reply(stream_turn(url, token, "I did 5x5 squats at 100kg today, what next?"))

    assert reply.strip()
    assert complete["fullMessage"] == reply
    assert complete["aiMessage"]["metadata"]["model"] == MODEL_ALIAS
    stored = httpx.get(f"{llama_stack.outputs()['apiUrl']}{path}", headers={"Authorization": f"Bearer {token}"})
    assert stored.status_code == 200
    assert stored.json()["messages"][-1]["content"] == reply
