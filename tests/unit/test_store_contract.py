"""The store ports' contract, run against both adapters: the in-memory fakes and DynamoDB on moto.

The pipeline tests use the fakes without a table; every behaviour they rely on is pinned here on
both sides, so a fake that drifted from the DynamoDB adapter fails here first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.errors import IdempotencyMismatch, RateLimited
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.dynamodb.memories import DynamoMemoryRepository, DynamoWorkoutRepository
from shared.store.dynamodb.rate_limit import DynamoRateLimiter
from shared.store.errors import RecordNotFound, WriteConflict
from shared.store.ports import (
    WRITES_BUDGET,
    CoachRepository,
    ConversationRepository,
    CreatorSessionRepository,
    MemoryRepository,
    RequestLimiter,
    TurnStart,
    WorkoutRepository,
)
from shared.store.records import (
    ChatMessage,
    Coach,
    Conversation,
    CreatorSession,
    Memory,
    MessageMetadata,
    MessageStatus,
    QuestionAnswer,
    Workout,
)
from tests.fakes import (
    InMemoryCoachRepository,
    InMemoryConversationRepository,
    InMemoryCreatorSessionRepository,
    InMemoryMemoryRepository,
    InMemoryRateLimiter,
    InMemoryWorkoutRepository,
    race,
)
from tests.fakes.clock import SettableClock as Clock

USER = "user-1"
COACH = "coach-1"
NOW = 60 * 20_000_000 + 15.5  # an epoch second 15.5 s into a minute
LATER = int(NOW) + 120


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture(params=["in-memory", "dynamodb"])
def adapter(request: pytest.FixtureRequest) -> Callable[[Callable[[], Any], Callable[[Any], Any]], Any]:
    """`adapter(make_fake, make_dynamo)`: the adapter this run of the test is about."""

    def build(make_fake: Callable[[], Any], make_dynamo: Callable[[Any], Any]) -> Any:
        if request.param == "in-memory":
            return make_fake()
        return make_dynamo(request.getfixturevalue("table"))

    return build


@pytest.fixture
def conversations(adapter, clock: Clock) -> ConversationRepository:
    return adapter(
        lambda: InMemoryConversationRepository(clock=clock),
        lambda table: DynamoConversationRepository(table, clock=clock),
    )


@pytest.fixture
def sessions(adapter, clock: Clock) -> CreatorSessionRepository:
    return adapter(
        lambda: InMemoryCreatorSessionRepository(clock=clock),
        lambda table: DynamoCreatorSessionRepository(table, clock=clock),
    )


@pytest.fixture
def conversation(conversations: ConversationRepository) -> Conversation:
    return conversations.create_conversation(USER, COACH, "Squats")


def message(ident: str, client_id: str | None = None, *, role: str = "user", status: MessageStatus = "complete"):
    """Ids sort in the order the test stores them, so equal server times still list in that order."""
    metadata = MessageMetadata(model="m", status=status) if role == "assistant" else None
    return ChatMessage(
        id=ident,
        role=role,
        content=f"text of {ident}",
        timestamp="2026-01-01T00:00:00.000Z",
        client_message_id=client_id,
        metadata=metadata,
    )


def answer(question_id: str = "goals") -> QuestionAnswer:
    return QuestionAnswer(question_id=question_id, question="Q?", answer=f"about {question_id}", ai_response="Nice.")


def assert_holds(conversations: ConversationRepository, conversation: Conversation, *expected: ChatMessage) -> None:
    """The conversation lists `expected`, oldest first, and counts exactly those messages."""
    assert conversations.list_messages(USER, conversation.conversation_id) == list(expected)
    current = conversations.get_conversation(USER, COACH, conversation.conversation_id)
    assert current is not None and current.message_count == len(expected)


# --- conversations -------------------------------------------------------------------------------


def test_a_conversation_is_read_back_by_its_owner_only(conversations: ConversationRepository) -> None:
    created = conversations.create_conversation(USER, COACH, "Squats")
    assert (created.title, created.message_count, created.summary, created.summarized_through) == ("Squats", 0, "", 0)
    assert conversations.get_conversation(USER, COACH, created.conversation_id) == created
    assert conversations.get_conversation("user-2", COACH, created.conversation_id) is None
    assert conversations.get_conversation(USER, "coach-2", created.conversation_id) is None


def begin(
    conversations: ConversationRepository, conversation: Conversation, user: ChatMessage, digest: str = "same"
) -> TurnStart:
    """A turn's start as the flow makes it: `digest` stands for the request's content."""
    return conversations.begin_turn(conversation, user, digest=digest, until_epoch=LATER)


def test_a_turn_stores_both_messages_oldest_first_and_counts_them(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    user = message("m01")
    turn = begin(conversations, conversation, user)
    assert (turn.user_message, turn.replay, turn.attempt) == (user, None, 1)
    reply = message("m02", role="assistant")
    conversations.finish_turn(conversation, turn, reply)

    assert_holds(conversations, conversation, user, reply)
    assert conversations.list_messages("user-2", conversation.conversation_id) == []


def test_limit_gives_the_most_recent_messages_still_oldest_first(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    sent = [message(f"m{index:02}") for index in range(5)]
    for each in sent:
        begin(conversations, conversation, each)
    listed = conversations.list_messages
    assert listed(USER, conversation.conversation_id, limit=2) == sent[-2:]
    assert listed(USER, conversation.conversation_id, limit=5) == sent
    assert listed(USER, conversation.conversation_id, limit=50) == sent
    assert listed(USER, conversation.conversation_id) == sent


def test_without_a_client_message_id_every_message_is_new(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    first, second = message("m01"), message("m02")
    assert begin(conversations, conversation, first).replay is None
    turn = begin(conversations, conversation, second)
    assert turn.replay is None
    conversations.fail_turn(conversation, turn)  # nothing to mark
    assert_holds(conversations, conversation, first, second)


def test_overlapping_turns_are_stored_turn_by_turn(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    first, second = message("m01"), message("m02")
    first_turn = begin(conversations, conversation, first)
    second_turn = begin(conversations, conversation, second)
    second_reply, first_reply = message("m03", role="assistant"), message("m04", role="assistant")
    conversations.finish_turn(conversation, second_turn, second_reply)  # the later turn answers first
    conversations.finish_turn(conversation, first_turn, first_reply)
    assert_holds(conversations, conversation, first, first_reply, second, second_reply)


def test_a_finished_client_message_is_replayed_from_the_store(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    user, reply = message("m01", "c-1"), message("m02", role="assistant")
    conversations.finish_turn(conversation, begin(conversations, conversation, user), reply)

    repeated = begin(conversations, conversation, message("m03", "c-1"))
    assert (repeated.user_message, repeated.replay) == (user, reply)
    assert_holds(conversations, conversation, user, reply)


def test_a_repeat_with_other_content_is_refused_and_changes_nothing(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    user, reply = message("m01", "c-1"), message("m02", role="assistant")
    conversations.finish_turn(conversation, begin(conversations, conversation, user), reply)
    with pytest.raises(IdempotencyMismatch):
        begin(conversations, conversation, message("m03", "c-1"), digest="other")
    assert_holds(conversations, conversation, user, reply)


def test_a_client_message_in_flight_is_a_conflict(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    user = message("m01", "c-1")
    begin(conversations, conversation, user)
    with pytest.raises(WriteConflict, match="already being answered"):
        begin(conversations, conversation, message("m02", "c-1"))
    assert_holds(conversations, conversation, user)


def test_a_turn_whose_process_died_is_taken_over_once_its_claim_lapses(
    conversations: ConversationRepository, conversation: Conversation, clock: Clock
) -> None:
    user = message("m01", "c-1")
    begin(conversations, conversation, user)  # and then nothing: the process died
    clock.now = LATER  # not yet past the claim
    with pytest.raises(WriteConflict):
        begin(conversations, conversation, message("m02", "c-1"))
    clock.now = LATER + 1
    retry = begin(conversations, conversation, message("m03", "c-1"))
    assert (retry.user_message, retry.replay, retry.attempt) == (user, None, 2)
    reply = message("m04", role="assistant")
    conversations.finish_turn(conversation, retry, reply)
    assert_holds(conversations, conversation, user, reply)


def test_concurrent_repeats_of_a_client_message_store_it_once(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    won, lost = race(8, lambda index: begin(conversations, conversation, message(f"m{index:02}", "c-1")))
    assert (len(won), len(lost)) == (1, 7)
    assert all(isinstance(exc, WriteConflict) for exc in lost)
    assert_holds(conversations, conversation, won[0].user_message)


def test_a_failed_turn_is_taken_over_by_one_retry(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    user = message("m01", "c-1")
    conversations.fail_turn(conversation, begin(conversations, conversation, user))

    won, lost = race(5, lambda index: begin(conversations, conversation, message(f"m1{index}", "c-1")))
    assert [(turn.user_message, turn.attempt) for turn in won] == [(user, 2)], "the retry answers the first message"
    assert len(lost) == 4 and all(isinstance(exc, WriteConflict) for exc in lost)

    reply = message("m02", role="assistant")
    conversations.finish_turn(conversation, won[0], reply)
    assert begin(conversations, conversation, message("m03", "c-1")).replay == reply
    assert_holds(conversations, conversation, user, reply)


def test_a_retry_supersedes_the_partial_reply_it_answers_again(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    user, partial = message("m01", "c-1"), message("m02", role="assistant", status="interrupted")
    conversations.finish_turn(conversation, begin(conversations, conversation, user), partial)
    listed = conversations.list_messages(USER, conversation.conversation_id)
    assert listed == [user, partial], "a partial reply is stored and shown until a retry answers"

    retry = begin(conversations, conversation, message("m03", "c-1"))
    assert (retry.user_message, retry.attempt, retry.replay) == (user, 2, None)
    reply = message("m04", role="assistant")
    conversations.finish_turn(conversation, retry, reply)
    assert conversations.list_messages(USER, conversation.conversation_id) == [user, reply]
    current = conversations.get_conversation(USER, COACH, conversation.conversation_id)
    assert current is not None and current.message_count == 3, "the partial stays stored, marked superseded"


def test_a_late_cleanup_cannot_unsettle_a_stored_reply(
    conversations: ConversationRepository, conversation: Conversation
) -> None:
    user, reply = message("m01", "c-1"), message("m02", role="assistant")
    turn = begin(conversations, conversation, user)
    conversations.finish_turn(conversation, turn, reply)
    conversations.fail_turn(conversation, turn)  # e.g. after the reply's write reported an error it had applied
    assert begin(conversations, conversation, message("m03", "c-1")).replay == reply


def test_a_turn_in_a_missing_conversation_is_not_found_and_stores_nothing(
    conversations: ConversationRepository,
) -> None:
    gone = Conversation(user_id=USER, coach_id=COACH, conversation_id="gone")
    for _ in range(2):  # the second is not found either: no marker was left behind
        with pytest.raises(RecordNotFound):
            begin(conversations, gone, message("m01", "c-1"))
    assert conversations.list_messages(USER, "gone") == []
    assert conversations.get_conversation(USER, COACH, "gone") is None


def test_a_summary_only_moves_forward(conversations: ConversationRepository, conversation: Conversation) -> None:
    def summary() -> tuple[str, int]:
        current = conversations.get_conversation(USER, COACH, conversation.conversation_id)
        assert current is not None
        return current.summary, current.summarized_through

    for text, through, expected in [
        ("first ten", 10, ("first ten", 10)),
        ("a late older one", 5, ("first ten", 10)),
        ("the same point again", 10, ("first ten", 10)),
        ("twenty", 20, ("twenty", 20)),
    ]:
        conversations.save_summary(conversation, text, through)
        assert summary() == expected

    gone = Conversation(user_id=USER, coach_id=COACH, conversation_id="gone")
    conversations.save_summary(gone, "nobody reads this", 30)
    assert conversations.get_conversation(USER, COACH, "gone") is None


# --- creator sessions ----------------------------------------------------------------------------


def test_a_new_session_is_open_at_its_first_question(sessions: CreatorSessionRepository) -> None:
    created = sessions.create_session(USER, "goals")
    assert (created.version, created.current_question_id, created.is_complete, created.history) == (
        0,
        "goals",
        False,
        [],
    )
    assert (created.sophistication_level, created.coach_config_status, created.answering) == ("BEGINNER", "none", None)
    assert sessions.get_session(USER, created.session_id) == created
    assert sessions.get_session("user-2", created.session_id) is None


def test_claim_then_commit_records_the_answer_and_ends_the_claim(sessions: CreatorSessionRepository) -> None:
    claimed = sessions.claim(sessions.create_session(USER, "goals"), "req-1", LATER)
    assert (claimed.version, claimed.answering, claimed.answering_until) == (1, "req-1", LATER)

    committed = sessions.commit(claimed, answer(), "experience", "INTERMEDIATE", is_complete=False)
    assert (committed.version, committed.answering, committed.answering_until) == (2, None, None)
    assert (committed.history, committed.current_question_id) == ([answer()], "experience")
    assert (committed.sophistication_level, committed.is_complete, committed.coach_config_status) == (
        "INTERMEDIATE",
        False,
        "none",
    )
    assert sessions.get_session(USER, claimed.session_id) == committed


def test_the_last_answer_completes_the_session(sessions: CreatorSessionRepository) -> None:
    session = sessions.create_session(USER, "goals")
    first = sessions.commit(sessions.claim(session, "req-1", LATER), answer(), "motivation", "BEGINNER", False)
    done = sessions.commit(sessions.claim(first, "req-2", LATER), answer("motivation"), None, "ADVANCED", True)
    assert [qa.question_id for qa in done.history] == ["goals", "motivation"]
    assert (done.is_complete, done.current_question_id, done.coach_config_status) == (True, None, "generating")
    assert sessions.get_session(USER, session.session_id) == done


def test_of_concurrent_claims_exactly_one_wins(sessions: CreatorSessionRepository) -> None:
    session = sessions.create_session(USER, "goals")
    won, lost = race(10, lambda index: sessions.claim(session, f"req-{index}", LATER))
    assert (len(won), len(lost)) == (1, 9)
    assert all(isinstance(exc, WriteConflict) for exc in lost)
    stored = sessions.get_session(USER, session.session_id)
    assert stored == won[0]


@pytest.mark.parametrize(
    ("second_claim_from", "refusal"),
    [("stale", "changed; reload it"), ("claimed", "already being answered")],
)
def test_a_claim_is_refused_while_another_holds_or_changed_the_session(
    sessions: CreatorSessionRepository, second_claim_from: str, refusal: str
) -> None:
    session = sessions.create_session(USER, "goals")
    claimed = sessions.claim(session, "req-1", LATER)
    with pytest.raises(WriteConflict, match=refusal):
        sessions.claim(session if second_claim_from == "stale" else claimed, "req-2", LATER)
    assert sessions.get_session(USER, session.session_id) == claimed


def test_an_expired_claim_is_taken_over_and_the_loser_changes_nothing(
    sessions: CreatorSessionRepository, clock: Clock
) -> None:
    first = sessions.claim(sessions.create_session(USER, "goals"), "req-1", int(NOW) + 10)
    clock.now = NOW + 10  # `until` is inclusive
    with pytest.raises(WriteConflict, match="already being answered"):
        sessions.claim(first, "req-2", LATER)
    clock.now = NOW + 11
    second = sessions.claim(first, "req-2", LATER)
    assert (second.answering, second.version) == ("req-2", 2)

    with pytest.raises(WriteConflict, match="changed; reload it"):
        sessions.commit(first, answer(), "experience", "BEGINNER", is_complete=False)
    sessions.release(first)  # a lost claim is left alone
    assert sessions.get_session(USER, first.session_id) == second
    assert sessions.commit(second, answer(), "experience", "BEGINNER", is_complete=False).history == [answer()]


def test_an_expired_claim_nobody_took_still_commits(sessions: CreatorSessionRepository, clock: Clock) -> None:
    claimed = sessions.claim(sessions.create_session(USER, "goals"), "req-1", int(NOW) + 1)
    clock.now = NOW + 600
    assert sessions.commit(claimed, answer(), "experience", "BEGINNER", is_complete=False).version == 2


def test_a_complete_session_refuses_claims_even_from_a_stale_read(sessions: CreatorSessionRepository) -> None:
    session = sessions.create_session(USER, "goals")
    done = sessions.commit(sessions.claim(session, "req-1", LATER), answer(), None, "BEGINNER", is_complete=True)
    for read in (done, session):
        with pytest.raises(WriteConflict, match="already complete"):
            sessions.claim(read, "req-2", LATER)
    assert sessions.get_session(USER, session.session_id) == done


def test_release_ends_the_claim_and_records_nothing(sessions: CreatorSessionRepository) -> None:
    session = sessions.create_session(USER, "goals")
    sessions.release(session)  # not a claim: nothing to do
    sessions.release(sessions.claim(session, "req-1", LATER))
    released = sessions.get_session(USER, session.session_id)
    assert released is not None
    assert (released.version, released.answering, released.answering_until) == (2, None, None)
    assert (released.history, released.current_question_id) == ([], "goals")
    assert sessions.claim(released, "req-2", LATER).answering == "req-2"


def test_commit_needs_a_claim(sessions: CreatorSessionRepository) -> None:
    session = sessions.create_session(USER, "goals")
    with pytest.raises(ValueError, match="claim"):
        sessions.commit(session, answer(), None, "BEGINNER", is_complete=True)
    assert sessions.get_session(USER, session.session_id) == session


def test_a_missing_session_is_not_found_for_claim_and_commit(sessions: CreatorSessionRepository) -> None:
    gone = CreatorSession(user_id=USER, session_id="gone", current_question_id="goals")
    with pytest.raises(RecordNotFound):
        sessions.claim(gone, "req-1", LATER)
    with pytest.raises(RecordNotFound):
        sessions.commit(gone.model_copy(update={"answering": "req-1"}), answer(), None, "BEGINNER", True)
    assert sessions.get_session(USER, "gone") is None


def test_an_attached_coach_is_ready_and_never_marked_failed(sessions: CreatorSessionRepository) -> None:
    session = sessions.create_session(USER, "goals")

    def status() -> tuple[str | None, str, int]:
        current = sessions.get_session(USER, session.session_id)
        assert current is not None
        return current.coach_id, current.coach_config_status, current.version

    sessions.mark_coach_failed(USER, session.session_id)
    assert status() == (None, "failed", 0)
    for _ in range(2):
        sessions.attach_coach(USER, session.session_id, "coach-x")
        assert status() == ("coach-x", "ready", 0)
    sessions.mark_coach_failed(USER, session.session_id)
    assert status() == ("coach-x", "ready", 0)

    sessions.mark_coach_failed(USER, "gone")  # nothing to mark, nothing created
    assert sessions.get_session(USER, "gone") is None
    with pytest.raises(RecordNotFound):
        sessions.attach_coach(USER, "gone", "coach-x")


# --- coaches, memories, workouts, the request limit ----------------------------------------------


def test_a_coach_is_created_once_and_listed_for_its_user_only(adapter) -> None:
    coaches: CoachRepository = adapter(InMemoryCoachRepository, DynamoCoachRepository)
    riley, sam = Coach(user_id=USER, coach_id="b", name="Riley"), Coach(user_id=USER, coach_id="a", name="Sam")
    assert coaches.create_coach(riley) and coaches.create_coach(sam)
    assert not coaches.create_coach(riley.model_copy(update={"name": "Impostor"}))
    assert coaches.create_coach(Coach(user_id="user-2", coach_id="b", name="Other"))
    assert coaches.get_coach(USER, "b") == riley
    assert coaches.get_coach(USER, "missing") is None
    assert coaches.list_coaches(USER) == [sam, riley]


def test_memories_come_newest_first_per_coach_and_save_idempotently(adapter) -> None:
    memories: MemoryRepository = adapter(InMemoryMemoryRepository, DynamoMemoryRepository)
    saved = [
        Memory(memory_id=f"m{day}", coach_id=COACH, content=f"fact {day}", created_at=f"2026-01-0{day}")
        for day in (1, 3, 2)
    ]
    for memory in [*saved, saved[0]]:
        memories.save_memory(USER, memory)
    memories.save_memory(USER, Memory(memory_id="x", coach_id="coach-2", content="other", created_at="2026-01-09"))
    assert [m.memory_id for m in memories.recent_memories(USER, COACH)] == ["m3", "m2", "m1"]
    assert [m.memory_id for m in memories.recent_memories(USER, COACH, limit=2)] == ["m3", "m2"]
    assert memories.recent_memories("user-2", COACH) == []


def test_workouts_come_most_recent_first_and_save_idempotently(adapter) -> None:
    workouts: WorkoutRepository = adapter(InMemoryWorkoutRepository, DynamoWorkoutRepository)
    for day in (2, 1, 3, 2):
        workout = Workout(
            workout_id=f"w{day}", coach_id=COACH, conversation_id="v", performed_on=f"2026-02-0{day}", summary="s"
        )
        workouts.save_workout(USER, workout)
    assert [w.workout_id for w in workouts.recent_workouts(USER)] == ["w3", "w2", "w1"]
    assert [w.workout_id for w in workouts.recent_workouts(USER, limit=1)] == ["w3"]


def test_the_request_limit_admits_at_most_the_limit_in_any_window(adapter, clock: Clock) -> None:
    limiter: RequestLimiter = adapter(
        lambda: InMemoryRateLimiter(2, clock=clock),
        lambda table: DynamoRateLimiter(2, table, clock=clock, name=WRITES_BUDGET),
    )
    limiter.hit(USER)
    clock.now = NOW + 40
    limiter.hit(USER)
    for _ in range(2):  # a refused request counts nothing
        with pytest.raises(RateLimited) as refused:
            limiter.hit(USER)
        assert refused.value.retry_after_seconds == 20  # when the first leaves the window, not at a minute's turn
    limiter.hit("user-2")
    clock.now = NOW + 60
    limiter.hit(USER)
    with pytest.raises(RateLimited) as refused:
        limiter.hit(USER)
    assert refused.value.retry_after_seconds == 40


def test_a_limit_of_zero_never_refuses(adapter, clock: Clock) -> None:
    limiter: RequestLimiter = adapter(
        lambda: InMemoryRateLimiter(0, clock=clock),
        lambda table: DynamoRateLimiter(0, table, clock=clock, name=WRITES_BUDGET),
    )
    for _ in range(5):
        limiter.hit(USER)
