"""A whole conversation turn on the in-memory adapters: no table, no model, no local stack.

Each test scripts the model and reads back what the stores hold, so the contract's promises (what is
stored when, which event comes last, which work is handed off) are checked end to end in-process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from shared.coach_conversation.pipeline import (
    ConversationMessage,
    ConversationTurn,
    TurnDependencies,
    open_conversation_turn,
)
from shared.errors import (
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InvalidRequest,
    NotFound,
    ReplyInterrupted,
    ReplyTimedOut,
)
from shared.events import CompleteEvent, ContextualEvent, StartEvent, TurnEvent
from shared.fallback import collect_complete
from shared.models import Image, ModelSettings
from shared.store.records import ChatMessage, Coach, Memory, MessageMetadata, Workout
from tests.fakes import (
    InMemoryCoachRepository,
    InMemoryConversationRepository,
    InMemoryImageSource,
    InMemoryMemoryRepository,
    InMemoryWorkoutRepository,
    RecordedMetrics,
    StreamingModel,
    interrupted_after,
    race,
    reply,
    stalls_after,
    unavailable,
)
from tests.fakes.model import CONVERSE_USAGE, STREAM_USAGE, StreamScript
from tests.unit.turn_events import chunks, failure, kinds, leave_after_first_chunk

USER = "user-1"
COACH = "coach-1"
SIDE = "side-model"
REPLY = "reply-model"
SENT_AT = "2026-03-10T08:00:00-05:00"
WORKOUT_AND_MEMORY = '{"isWorkoutLog": true, "hasMemoryToSave": true, "needsMemoryRetrieval": false}'
NOTHING_TO_DO = '{"isWorkoutLog": false, "hasMemoryToSave": false}'
SETTINGS = ModelSettings(reply_model_id=REPLY, side_model_id=SIDE)
PORTS = ("model", "conversations", "coaches", "images", "memories", "workouts")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@dataclass
class World:
    """The fakes one turn talks to, and the conversation it happens in."""

    conversations: InMemoryConversationRepository = field(default_factory=InMemoryConversationRepository)
    coaches: InMemoryCoachRepository = field(
        default_factory=lambda: InMemoryCoachRepository(Coach(user_id=USER, coach_id=COACH, name="Riley"))
    )
    images: InMemoryImageSource = field(default_factory=InMemoryImageSource)
    memories: InMemoryMemoryRepository = field(default_factory=InMemoryMemoryRepository)
    workouts: InMemoryWorkoutRepository = field(default_factory=InMemoryWorkoutRepository)
    model: StreamingModel = field(default_factory=StreamingModel)
    observed: RecordedMetrics = field(default_factory=RecordedMetrics)

    def __post_init__(self) -> None:
        self.conversation = self.conversations.create_conversation(USER, COACH, "Training")

    def script(
        self,
        *streams: StreamScript,
        route: str | None = NOTHING_TO_DO,
        fallback: str | None = None,
        route_delay: float = 0.0,
    ) -> None:
        """The model for the next turn(s): its streams, the router's answer (after `route_delay` s) and the
        fallback's."""
        answers = {SIDE: [route] if route else [], REPLY: [fallback] if fallback else []}
        # Unless the test makes the router slow, it answers before the reply's first token, every time.
        first = None if route_delay else SIDE
        self.model = StreamingModel(*streams, answers=answers, answer_delays={SIDE: route_delay}, streams_after=first)

    def deps(self) -> TurnDependencies:
        ports = {name: getattr(self, name) for name in PORTS}
        return TurnDependencies(model_settings=SETTINGS, observe=self.observed, **ports)

    def message(self, text: str = "How should I train today?", **changes: object) -> ConversationMessage:
        fields: dict[str, object] = {
            "user_id": USER,
            "coach_id": COACH,
            "conversation_id": self.conversation.conversation_id,
            "text": text,
            "timestamp": SENT_AT,
        }
        return ConversationMessage(**{**fields, **changes})  # type: ignore[arg-type]

    def open(self, message: ConversationMessage | None = None, seconds: float = 5.0) -> ConversationTurn:
        """Opens a turn whose deadline is `seconds` from now (negative: already past)."""
        return open_conversation_turn(self.deps(), message or self.message(), time.monotonic() + seconds, "req-1")

    def run(self, message: ConversationMessage | None = None, seconds: float = 5.0) -> list[TurnEvent]:
        return list(self.open(message, seconds).events())

    def stored(self, conversation_id: str | None = None) -> list[ChatMessage]:
        return self.conversations.list_messages(USER, conversation_id or self.conversation.conversation_id)

    def jobs(self) -> list[dict[str, object]]:
        """The post-turn jobs written beside the replies (the outbox the table's stream delivers)."""
        return list(self.conversations.outbox.values())

    def count(self) -> int:
        current = self.conversations.get_conversation(USER, COACH, self.conversation.conversation_id)
        assert current is not None
        return current.message_count


@pytest.fixture
def world() -> Iterator[World]:
    made = World()
    yield made
    made.model.release()  # a stalled stream's thread must not outlive its test


# --- the happy path ------------------------------------------------------------------------------


def test_a_turn_says_start_lines_chunks_complete_and_stores_both_messages(world: World) -> None:
    world.workouts.save_workout(
        USER,
        Workout(workout_id="w1", coach_id=COACH, conversation_id="v", performed_on="2026-03-08", summary="Easy 10k"),
    )
    world.script(reply("Nice ", "squats", "!"), route=WORKOUT_AND_MEMORY)
    text = "Did squats 5x5 at 100kg this morning"

    events = world.run(world.message(text))

    assert kinds(events) == ["StartEvent"] + ["ContextualEvent"] * 3 + ["ChunkEvent"] * 3 + ["CompleteEvent"]
    assert events[0] == StartEvent(requestId="req-1")
    assert [e.updateType for e in events if isinstance(e, ContextualEvent)] == [
        "workout_analysis",
        "workout_logging",
        "memory_save",
    ]
    assert chunks(events) == ["Nice ", "squats", "!"]
    user, answer = world.stored()
    assert (user.role, user.content, user.timestamp) == ("user", text, SENT_AT)
    assert (answer.role, answer.content) == ("assistant", "Nice squats!")
    assert answer.metadata == MessageMetadata(
        model=REPLY,
        input_tokens=STREAM_USAGE.input_tokens,
        output_tokens=STREAM_USAGE.output_tokens,
        status="complete",
        latency_ms=40,
    )
    assert world.count() == 2
    assert events[-1].to_dict() == {
        "type": "complete",
        "status": "finished",
        "conversationId": world.conversation.conversation_id,
        "messageId": answer.id,
        "fullMessage": "Nice squats!",
        "userMessage": user.contract(),
        "aiMessage": answer.contract(),
    }
    request = world.model.stream_requests[0]
    assert (request.model_id, request.messages[-1].text) == (REPLY, text)
    assert request.system is not None and "Easy 10k" in request.system.dynamic
    assert world.observed.values("OutputTokens") == [STREAM_USAGE.output_tokens]
    assert len(world.observed.values("TimeToFirstToken")) == len(world.observed.values("StreamDuration")) == 1


def test_the_post_turn_job_carries_the_turn_and_what_the_route_asked_for(world: World) -> None:
    world.script(reply("Logged."), route=WORKOUT_AND_MEMORY)
    events = world.run(world.message("Ran 5k in 25 minutes"))
    user, answer = world.stored()
    assert isinstance(events[-1], CompleteEvent)
    assert world.jobs() == [
        {
            "kind": "coach-conversation-post-turn",
            "userId": USER,
            "coachId": COACH,
            "conversationId": world.conversation.conversation_id,
            "userMessageId": user.id,
            "aiMessageId": answer.id,
            "userText": "Ran 5k in 25 minutes",
            "aiText": "Logged.",
            "messageTimestamp": SENT_AT,
            "isWorkoutLog": True,
            "hasMemoryToSave": True,
            "messageCount": 2,
        }
    ]


@pytest.mark.parametrize(
    "route", [NOTHING_TO_DO, "no JSON at all", None], ids=["nothing-to-do", "unreadable", "router-down"]
)
def test_a_turn_with_no_work_to_do_hands_nothing_off(world: World, route: str | None) -> None:
    # the reply waits long enough for the router's (immediate) answer to be known before `complete`;
    # a router still out then leaves the job to the post-turn worker, which another test covers
    world.script(reply("Sure.", delay=0.3), route=route)
    events = world.run()
    assert isinstance(events[-1], CompleteEvent)
    assert not any(isinstance(event, ContextualEvent) and event.updateType.endswith("_save") for event in events)
    assert [m.content for m in world.stored()] == ["How should I train today?", "Sure."]
    assert world.jobs() == []


def test_a_due_summary_is_handed_off_even_when_the_route_asks_nothing(world: World) -> None:
    for index in range(4):
        world.script(reply(f"answer {index}"))
        world.run(world.message(f"question {index}"))
        time.sleep(0.002)  # turns order by the millisecond they began in; one millisecond may hold two
    assert world.jobs() == []
    world.conversation = world.conversations.get_conversation(USER, COACH, world.conversation.conversation_id)
    world.script(reply("answer 4"))
    world.run(world.message("question 4"))
    assert [job["messageCount"] for job in world.jobs()] == [10]
    assert (world.jobs()[0]["isWorkoutLog"], world.jobs()[0]["hasMemoryToSave"]) == (False, False)
    history = world.model.stream_requests[-1].messages
    assert [m.text for m in history[:2]] == ["question 0", "answer 0"], "earlier turns reach the prompt"


def test_images_are_read_for_the_model_and_their_keys_stored(world: World) -> None:
    key = f"user-uploads/{USER}/form.png"
    world.images.objects[key] = PNG
    world.script(reply("Good depth."))
    events = world.run(world.message("Check my form", image_keys=(key,)))
    assert isinstance(events[-1], CompleteEvent)
    assert world.model.stream_requests[0].messages[-1].images == (Image(data=PNG, format="png"),)
    assert world.stored()[0].image_s3_keys == (key,)


# --- refusals before the stream --------------------------------------------------------------------


def missing_conversation(world: World) -> ConversationMessage:
    return world.message(conversation_id="gone")


def missing_coach(world: World) -> ConversationMessage:
    orphan = world.conversations.create_conversation(USER, "coach-deleted", "Orphan")
    return world.message(coach_id="coach-deleted", conversation_id=orphan.conversation_id)


def another_users_image(world: World) -> ConversationMessage:
    world.images.objects["user-uploads/user-2/theirs.png"] = PNG
    return world.message(image_keys=("user-uploads/user-2/theirs.png",))


def image_never_uploaded(world: World) -> ConversationMessage:
    return world.message(image_keys=(f"user-uploads/{USER}/missing.png",))


def repeat_in_flight(world: World) -> ConversationMessage:
    world.open(world.message(client_message_id="c-1"))  # opened, not answered yet
    return world.message(client_message_id="c-1")  # the same message, sent again


@pytest.mark.parametrize(
    ("refused", "error"),
    [
        (missing_conversation, NotFound),
        (missing_coach, NotFound),
        (another_users_image, Forbidden),
        (image_never_uploaded, InvalidRequest),
        (repeat_in_flight, Conflict),
    ],
)
def test_a_refused_turn_raises_before_any_event_and_stores_nothing(
    world: World, refused: Callable[[World], ConversationMessage], error: type[Exception]
) -> None:
    world.script(reply("never sent"), reply("never sent"))
    message = refused(world)
    before = world.stored(message.conversation_id)
    with pytest.raises(error):
        world.open(message)
    assert world.stored(message.conversation_id) == before
    assert (world.model.stream_requests, world.model.converse_requests) == ([], [])


def test_of_concurrent_sends_of_one_message_exactly_one_is_answered(world: World) -> None:
    world.script(reply("Once."))
    won, lost = race(6, lambda index: world.open(world.message(client_message_id="c-1")))
    assert (len(won), len(lost)) == (1, 5)
    assert all(isinstance(exc, Conflict) for exc in lost)
    assert isinstance(list(won[0].events())[-1], CompleteEvent)
    assert [m.content for m in world.stored()] == ["How should I train today?", "Once."]


def test_a_finished_message_sent_again_is_answered_from_the_store(world: World) -> None:
    world.script(reply("Rest ", "today."), route=WORKOUT_AND_MEMORY)
    first = world.run(world.message(client_message_id="c-1"))
    calls = (len(world.model.stream_requests), len(world.model.converse_requests))

    again = world.run(world.message(client_message_id="c-1"))

    assert kinds(again) == ["StartEvent", "ChunkEvent", "CompleteEvent"]
    assert chunks(again) == ["Rest today."]
    assert again[-1] == first[-1]
    assert (len(world.model.stream_requests), len(world.model.converse_requests)) == calls == (1, 1)
    assert [m.content for m in world.stored()] == ["How should I train today?", "Rest today."]
    assert len(world.jobs()) == 1, "a replay writes no second job"


# --- failures after `start` --------------------------------------------------------------------------

FALLBACK = "The stream failed, so this whole answer came from one call and streams in word groups."


def test_a_stream_failing_before_its_first_token_falls_back_to_one_call(world: World) -> None:
    world.script(unavailable(), fallback=FALLBACK)
    events = world.run()
    assert isinstance(events[-1], CompleteEvent)
    assert "".join(chunks(events)) == FALLBACK and len(chunks(events)) > 1
    answer = world.stored()[-1]
    assert answer.content == FALLBACK
    assert answer.metadata == MessageMetadata(
        model=REPLY,
        input_tokens=CONVERSE_USAGE.input_tokens,
        output_tokens=CONVERSE_USAGE.output_tokens,
        fallback=True,
        latency_ms=7,
    )
    assert world.observed.values("Fallbacks") == [1]


def test_a_stream_broken_after_text_stores_the_partial_and_ends_interrupted(world: World) -> None:
    world.script(interrupted_after("Keep ", "your back "), route=WORKOUT_AND_MEMORY)
    events = world.run(world.message(client_message_id="c-1"))

    assert chunks(events) == ["Keep ", "your back "]
    assert failure(events) is ReplyInterrupted
    assert not any(isinstance(event, CompleteEvent) for event in events)
    partial = world.stored()[-1]
    assert partial.content == "Keep your back "
    assert partial.metadata is not None and partial.metadata.status == "interrupted"
    assert world.jobs() == []

    world.script(reply("Keep your back straight."))
    retried = world.run(world.message(client_message_id="c-1"))
    assert isinstance(retried[-1], CompleteEvent), "an interrupted turn may be answered again"
    assert [m.content for m in world.stored()] == ["How should I train today?", "Keep your back straight."]
    assert world.count() == 3, "the partial reply stays stored, superseded"


def test_a_stalled_stream_stops_at_the_deadline_with_the_partial_stored(world: World) -> None:
    world.script(stalls_after("Warm ", "up "))
    started = time.monotonic()
    events = world.run(seconds=0.3)

    assert time.monotonic() - started < 1.5
    assert chunks(events) == ["Warm ", "up "]
    assert failure(events) is ReplyTimedOut
    partial = world.stored()[-1]
    assert partial.content == "Warm up "
    assert partial.metadata is not None and partial.metadata.status == "timeout"


def test_a_deadline_already_past_times_out_with_only_the_question_stored(world: World) -> None:
    world.script(reply("too late", delay=0.2))
    events = world.run(world.message(client_message_id="c-1"), seconds=-1)

    assert events[0] == StartEvent(requestId="req-1")
    assert (chunks(events), failure(events)) == ([], ReplyTimedOut)
    assert [m.role for m in world.stored()] == ["user"]
    world.script(reply("On time."))
    assert world.open(world.message(client_message_id="c-1")).begun.replay is None, "the message may be retried"


def test_what_was_streamed_is_stored_when_the_client_goes_away(world: World) -> None:
    """The contract: whatever reply text was produced is stored, even when the client has gone away."""
    world.script(reply("First ", "second ", "third", delay=0.02), route=WORKOUT_AND_MEMORY)
    leave_after_first_chunk(world.open().events())

    assert [m.content for m in world.stored()] == ["How should I train today?", "First "]
    assert world.stored()[-1].metadata.status == "interrupted"
    assert world.jobs() == []


def test_closing_a_turn_closes_the_models_stream(world: World) -> None:
    world.script(reply(*["word "] * 10, delay=0.03))
    leave_after_first_chunk(world.open().events())
    time.sleep(0.3)
    assert (world.model.streams_closed, world.model.streams_finished) == (1, 0)


def test_a_failed_reply_write_frees_the_message_for_a_retry_at_once(world: World) -> None:
    world.script(reply("Noted."), route=WORKOUT_AND_MEMORY)
    finish = world.conversations.finish_turn

    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the table is unavailable")

    world.conversations.finish_turn = unavailable  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.run(world.message(client_message_id="c-1"))
    assert [m.role for m in world.stored()] == ["user"], "the user's message stays"
    assert world.jobs() == []

    world.conversations.finish_turn = finish  # type: ignore[method-assign]
    world.script(reply("Noted, again."), route=WORKOUT_AND_MEMORY)
    retried = world.run(world.message(client_message_id="c-1"))
    assert isinstance(retried[-1], CompleteEvent), "no 409: the failed attempt released the message"
    assert [m.content for m in world.stored()] == ["How should I train today?", "Noted, again."]
    assert len(world.jobs()) == 1


def test_a_repeat_with_other_text_is_refused_before_anything_happens(world: World) -> None:
    world.script(reply("Noted."))
    world.run(world.message(client_message_id="c-1"))
    calls = len(world.model.stream_requests)
    with pytest.raises(IdempotencyMismatch):
        world.open(world.message("something else entirely", client_message_id="c-1"))
    assert len(world.model.stream_requests) == calls
    assert len(world.stored()) == 2


def test_the_non_streaming_answer_hands_the_post_turn_job_off_too(world: World) -> None:
    world.script(reply("Logged."), route=WORKOUT_AND_MEMORY)
    answer = collect_complete(world.open().events(), ("fullMessage",))
    assert answer == {"fullMessage": "Logged."}
    assert len(world.jobs()) == 1


# --- the reply first -----------------------------------------------------------------------------------


def test_a_slow_router_delays_neither_the_first_token_nor_complete(world: World) -> None:
    world.script(reply("Logged ", "that run."), route=WORKOUT_AND_MEMORY, route_delay=0.4)
    started = time.monotonic()
    turn = world.open(world.message("Ran 5k in 25 minutes"))
    seen: list[tuple[str, float]] = []
    for event in turn.events():
        seen.append((type(event).__name__, time.monotonic() - started))

    first_chunk = next(at for kind, at in seen if kind == "ChunkEvent")
    assert first_chunk < 0.2, "the reply streamed while the router was still thinking"
    assert len(world.model.stream_requests) == 1
    assert [kind for kind, _ in seen].count("ContextualEvent") == 1, "only the opening line: the route came late"
    assert seen[-1][0] == "CompleteEvent" and seen[-1][1] < 0.3, "complete does not wait for the router either"
    (job,) = world.jobs()
    assert (job["isWorkoutLog"], job["hasMemoryToSave"]) == (None, None), "unknown: the post-turn worker will ask"


def test_a_router_that_answers_before_the_first_token_leads_with_its_lines(world: World) -> None:
    world.script(reply("Nice ", "run.", delay=0.2), route=WORKOUT_AND_MEMORY)
    events = world.run(world.message("Ran 5k in 25 minutes"))
    kinds_in_order = kinds(events)
    first_chunk = kinds_in_order.index("ChunkEvent")
    lines = [e.updateType for e in events[:first_chunk] if isinstance(e, ContextualEvent)]
    assert lines == ["workout_analysis", "workout_logging", "memory_save"]
    assert isinstance(events[-1], CompleteEvent)


def test_the_prompt_does_not_wait_for_the_router(world: World) -> None:
    world.memories.save_memory(USER, Memory(memory_id="m1", coach_id=COACH, content="trains at dawn", created_at="1"))
    world.script(reply("Sure."), route=None, route_delay=0.3)  # the router fails, late
    world.run()
    (request,) = world.model.stream_requests
    assert "trains at dawn" in (request.system.dynamic if request.system else "")


class _SlowWrites(InMemoryConversationRepository):
    """Storing the user's message takes `seconds`, as a transaction over the network does."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.history_reads: list[float] = []
        self.write_span: tuple[float, float] = (0.0, 0.0)

    def list_messages(self, user_id: str, conversation_id: str, limit: int | None = None) -> list[ChatMessage]:
        self.history_reads.append(time.monotonic())
        return super().list_messages(user_id, conversation_id, limit)

    def begin_turn(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        time.sleep(self.seconds)
        try:
            return super().begin_turn(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            self.write_span = (started, time.monotonic())


def test_the_context_is_read_while_the_message_is_stored() -> None:
    world = World(conversations=_SlowWrites(0.15))
    world.script(reply("Sure."))
    turn = world.open()
    writes = world.conversations
    assert isinstance(writes, _SlowWrites)
    (read_at,) = writes.history_reads
    assert writes.write_span[0] <= read_at < writes.write_span[1], "the history read waited for the write"
    assert isinstance(list(turn.events())[-1], CompleteEvent)
    assert len(writes.history_reads) == 1, "the turn read its context once"


def test_a_turn_refused_before_its_write_reads_no_context() -> None:
    world = World(conversations=_SlowWrites(0.0))
    world.script(reply("never sent"))
    with pytest.raises(NotFound):
        world.open(world.message(coach_id="no-such-coach"))
    assert world.conversations.history_reads == []  # type: ignore[attr-defined]
