"""The pure pieces of a conversation turn: routing, progress lines, prompts, deadlines, flags."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from shared.coach_conversation.progress import opening_line, route_lines
from shared.coach_conversation.prompts import REPLY_MAX_TOKENS, TurnContext, history_messages, reply_request
from shared.coach_conversation.router import DEFAULT_ROUTE, RouteDecision, first_json_object, parse_route
from shared.deadline import DeadlineExceeded, call_before_deadline, until_deadline
from shared.errors import ReplyTimedOut
from shared.events import ChunkEvent, CompleteEvent, StartEvent, TurnFailed
from shared.fallback import collect_complete
from shared.flags import use_streaming, user_bucket
from shared.http.errors import Problem
from shared.models import Message, ModelRequest, ModelUnavailable
from shared.reply_stream import ReplyOutcome, stream_reply
from shared.store.records import ChatMessage, Coach, Conversation, Memory
from tests.fixtures.fake_model import ScriptedModel


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"isWorkoutLog": true, "complexity": "simple"}',
            RouteDecision(is_workout_log=True, complexity="simple"),
        ),
        ('Sure! ```json\n{"hasMemoryToSave": true}\n```', RouteDecision(has_memory_to_save=True)),
        ('{"broken": } then {"needsMemoryRetrieval": true}', RouteDecision(needs_memory_retrieval=True)),
        ("no json here", DEFAULT_ROUTE),
        ('{"complexity": "galactic"}', DEFAULT_ROUTE),
        ('[1, 2] {"isWorkoutLog": false, "extra": 1}', RouteDecision()),
    ],
)
def test_router_answers_are_parsed_forgivingly(text, expected):
    assert parse_route(text) == expected


def test_first_json_object_skips_arrays_and_prose():
    assert first_json_object('say [1] then {"a": {"b": 1}} and {"c": 2}') == {"a": {"b": 1}}


@pytest.mark.parametrize(
    ("text", "update_type", "fragment"),
    [
        ("My deadlifts felt heavy", "workout_analysis", "recent deadlift sessions"),
        ("Went running for 5k", "workout_analysis", "running"),
        ("I'm so sore today", "recovery_check", "recovery"),
        ("my knee hurts", "safety_check", "careful"),
        ("hello coach", "thinking", "Thinking"),
    ],
)
def test_opening_lines_come_from_the_message_alone(text, update_type, fragment):
    line = opening_line(text)
    assert line.updateType == update_type
    assert fragment in line.content


def test_route_lines_follow_the_decision():
    lines = route_lines(RouteDecision(is_workout_log=True, has_memory_to_save=True))
    assert [line.updateType for line in lines] == ["workout_logging", "memory_save"]
    assert route_lines(RouteDecision()) == []


def message(role: str, content: str, ident: str) -> ChatMessage:
    return ChatMessage(id=ident, role=role, content=content, timestamp="2026-01-01T00:00:00Z")


def test_history_starts_with_the_user_and_alternates():
    history = [
        message("assistant", "orphan reply", "0"),
        message("user", "first", "1"),
        message("user", "retry of first", "2"),
        message("assistant", "answer", "3"),
        message("user", "current", "4"),
    ]
    shaped = history_messages(history, exclude_id="4")
    assert [(m.role, m.text) for m in shaped] == [
        ("user", "first\n\nretry of first"),
        ("assistant", "answer"),
    ]


def test_reply_request_puts_the_persona_in_the_cacheable_part():
    coach = Coach(user_id="u", coach_id="c", name="Riley", safety_notes="bad knee")
    conversation = Conversation(user_id="u", coach_id="c", conversation_id="v", summary="talked squats")
    context = TurnContext(
        history=[],
        memories=[Memory(memory_id="m", coach_id="c", content="trains mornings", created_at="")],
        workouts=[],
    )
    current = message("user", "what now?", "9")
    request = reply_request(
        "model-x",
        coach,
        conversation,
        context,
        current,
        (),
        datetime(2026, 11, 21, tzinfo=UTC),
    )
    assert "Riley" in request.system.static and "bad knee" in request.system.static
    assert "talked squats" in request.system.dynamic and "trains mornings" in request.system.dynamic
    assert "2026" not in request.system.static, "the cached part must not change every day"
    assert request.messages[-1].text == "what now?"
    assert request.model_id == "model-x"
    assert request.max_tokens == REPLY_MAX_TOKENS, "one cap: nothing in the request waits for the router"


def test_until_deadline_passes_items_and_stops_a_stall():
    assert list(until_deadline(iter([1, 2, 3]), time.monotonic() + 1)) == [1, 2, 3]
    release = threading.Event()

    def stalled():
        yield "a"
        release.wait(5)
        yield "b"

    received = []
    started = time.monotonic()

    def consume() -> None:
        for item in until_deadline(stalled(), time.monotonic() + 0.2):
            received.append(item)

    with pytest.raises(DeadlineExceeded):
        consume()
    release.set()
    assert received == ["a"]
    assert time.monotonic() - started < 1


def test_until_deadline_reraises_the_producers_error():
    def failing():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(until_deadline(failing(), time.monotonic() + 1))


def test_a_stalled_fallback_ends_the_reply_at_the_deadline_with_timeout():
    """The non-streaming fallback is bounded by the turn's deadline too, not by the model's retries."""
    release = threading.Event()

    class StallingModel(ScriptedModel):
        def stream(self, request):
            raise ModelUnavailable("throttled before the first token")

        def converse(self, request):
            release.wait(5)
            return super().converse(request)

    outcome = ReplyOutcome()
    request = ModelRequest("model-x", (Message("user", "hi"),))
    started = time.monotonic()
    chunks = list(stream_reply(StallingModel("late"), request, time.monotonic() + 0.3, outcome))
    release.set()
    assert chunks == []
    assert outcome.status == "timeout" and isinstance(outcome.error, ReplyTimedOut)
    assert time.monotonic() - started < 1.5


def test_call_before_deadline_returns_or_gives_up():
    assert call_before_deadline(lambda: 42, time.monotonic() + 1) == 42
    with pytest.raises(DeadlineExceeded):
        call_before_deadline(lambda: time.sleep(2), time.monotonic() + 0.1)


def test_buckets_are_stable_and_percentages_only_add_users(set_setting):
    assert user_bucket("alice") == user_bucket("alice")
    users = [f"user-{n}" for n in range(400)]
    set_setting("STREAMING_PERCENTAGE", "30")
    at_30 = {u for u in users if use_streaming(u)}
    set_setting("STREAMING_PERCENTAGE", "60")
    at_60 = {u for u in users if use_streaming(u)}
    assert at_30 < at_60
    assert 0.2 < len(at_30) / len(users) < 0.4
    set_setting("STREAMING_ENABLED", "false")
    assert not any(use_streaming(u) for u in users)


def test_collect_complete_returns_the_fields_or_the_stream_error():
    events = [
        StartEvent(requestId="r"),
        ChunkEvent(content="hi"),
        CompleteEvent(fullMessage="hi", conversationId="c"),
    ]
    assert collect_complete(events, ("conversationId", "fullMessage")) == {
        "conversationId": "c",
        "fullMessage": "hi",
    }
    with pytest.raises(ReplyTimedOut) as caught:
        collect_complete([StartEvent(requestId="r"), TurnFailed(ReplyTimedOut("slow"))], ("x",))
    assert (Problem.of(caught.value).status, Problem.of(caught.value).code) == (504, "TIMEOUT")
