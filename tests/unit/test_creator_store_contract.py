"""The creator session store's rules for failed attempts and for retried writes, on both adapters.

Run like `test_store_contract.py`: against the in-memory fake and the DynamoDB adapter on moto, so
the pipeline tests that rely on the fake rely on what the table does. A retried write is the same
call made twice with the same arguments: what botocore sends when a conditional update was applied
but its response was lost.
"""

from __future__ import annotations

import sys

import pytest

from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.errors import WriteConflict
from shared.store.ports import CreatorSessionRepository
from shared.store.records import CreatorSession, MessageStatus, QuestionAnswer
from tests.fakes import InMemoryCreatorSessionRepository
from tests.fakes.clock import SettableClock as Clock
from tests.unit.test_store_contract import LATER, NOW, USER


@pytest.fixture(params=["in-memory", "dynamodb"])
def sessions(request: pytest.FixtureRequest) -> CreatorSessionRepository:
    clock = request.getfixturevalue("clock")
    if request.param == "in-memory":
        return InMemoryCreatorSessionRepository(clock=clock)
    return DynamoCreatorSessionRepository(request.getfixturevalue("table"), clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def step(question_id: str = "goals", status: MessageStatus = "complete", words: str = "about it") -> QuestionAnswer:
    return QuestionAnswer(
        question_id=question_id,
        question="Q?",
        answer=words,
        ai_response=f"reply to {words}",
        answered_at="2026-01-01T00:00:00.000Z",
        status=status,
        client_message_id=f"m-{words.replace(' ', '-')}",
    )


def stored(sessions: CreatorSessionRepository, session: CreatorSession) -> CreatorSession:
    current = sessions.get_session(session.user_id, session.session_id)
    assert current is not None
    return current


# --- failed attempts -----------------------------------------------------------------------------


def test_a_failed_attempt_is_kept_without_moving_the_interview(sessions: CreatorSessionRepository) -> None:
    claimed = sessions.claim(sessions.create_session(USER, "goals"), "req-1", LATER)
    failed = step(status="interrupted")
    kept = sessions.record_failed_attempt(claimed, failed)

    assert (kept.version, kept.answering, kept.answering_until) == (2, None, None)
    assert (kept.history, kept.current_question_id, kept.is_complete) == ([failed], "goals", False)
    assert (kept.sophistication_level, kept.coach_config_status) == ("BEGINNER", "none")
    assert stored(sessions, claimed) == kept


def test_a_question_keeps_its_latest_failed_attempt_and_then_its_answer(sessions: CreatorSessionRepository) -> None:
    session = sessions.create_session(USER, "goals")
    answered = sessions.commit(sessions.claim(session, "req-1", LATER), step(), "experience", "BEGINNER", False)
    first = step("experience", "interrupted", "first try")
    after_first = sessions.record_failed_attempt(sessions.claim(answered, "req-2", LATER), first)
    second = step("experience", "timeout", "second try")
    after_second = sessions.record_failed_attempt(sessions.claim(after_first, "req-3", LATER), second)
    assert after_second.history == [step(), second]

    answer = step("experience", words="second try")
    done = sessions.commit(sessions.claim(after_second, "req-4", LATER), answer, "motivation", "BEGINNER", False)
    assert done.history == [step(), second, answer]
    third = step("motivation", "interrupted", "third")
    assert sessions.record_failed_attempt(sessions.claim(done, "req-5", LATER), third).history == [
        step(),
        second,
        answer,
        third,
    ]


@pytest.mark.parametrize("status", ["interrupted", "timeout"])
def test_commit_takes_answers_only_and_record_failed_attempt_failures_only(
    sessions: CreatorSessionRepository, status: MessageStatus
) -> None:
    session = sessions.create_session(USER, "goals")
    claimed = sessions.claim(session, "req-1", LATER)
    with pytest.raises(ValueError, match="not an answer"):
        sessions.commit(claimed, step(status=status), "experience", "BEGINNER", is_complete=False)
    with pytest.raises(ValueError, match="not a failed attempt"):
        sessions.record_failed_attempt(claimed, step())
    with pytest.raises(ValueError, match="claim"):
        sessions.record_failed_attempt(session, step(status=status))
    assert stored(sessions, session) == claimed


def test_a_failed_attempt_from_a_lost_claim_is_refused(sessions: CreatorSessionRepository, clock: Clock) -> None:
    first = sessions.claim(sessions.create_session(USER, "goals"), "req-1", int(NOW) + 1)
    clock.now = NOW + 2
    second = sessions.claim(first, "req-2", LATER)
    with pytest.raises(WriteConflict, match="changed; reload it"):
        sessions.record_failed_attempt(first, step(status="interrupted"))
    assert stored(sessions, first) == second


# --- every write survives the SDK retrying it ----------------------------------------------------


def test_a_retried_claim_returns_the_claim(sessions: CreatorSessionRepository) -> None:
    session = sessions.create_session(USER, "goals")
    claimed = sessions.claim(session, "req-1", LATER)
    again = sessions.claim(session, "req-1", LATER)
    assert (again.version, again.answering, again.answering_until) == (1, "req-1", LATER)
    assert again.model_copy(update={"updated_at": claimed.updated_at}) == claimed
    with pytest.raises(WriteConflict, match="already being answered"):
        sessions.claim(again, "req-2", LATER)  # another request's is still refused


def test_a_retried_commit_returns_the_committed_session(sessions: CreatorSessionRepository) -> None:
    claimed = sessions.claim(sessions.create_session(USER, "goals"), "req-1", LATER)
    committed = sessions.commit(claimed, step(), "experience", "INTERMEDIATE", is_complete=False)
    again = sessions.commit(claimed, step(), "experience", "INTERMEDIATE", is_complete=False)
    assert again == committed == stored(sessions, claimed)
    assert committed.history == [step()]


def test_a_retried_last_commit_returns_the_complete_session(sessions: CreatorSessionRepository) -> None:
    claimed = sessions.claim(sessions.create_session(USER, "goals"), "req-1", LATER)
    done = sessions.commit(claimed, step(), None, "BEGINNER", is_complete=True)
    assert sessions.commit(claimed, step(), None, "BEGINNER", is_complete=True) == done
    assert (done.is_complete, done.coach_config_status, len(done.history)) == (True, "generating", 1)


def test_a_retried_failed_attempt_returns_the_session(sessions: CreatorSessionRepository) -> None:
    claimed = sessions.claim(sessions.create_session(USER, "goals"), "req-1", LATER)
    failed = step(status="interrupted")
    kept = sessions.record_failed_attempt(claimed, failed)
    assert sessions.record_failed_attempt(claimed, failed) == kept == stored(sessions, claimed)
    assert kept.history == [failed]


def test_a_retried_release_changes_nothing(sessions: CreatorSessionRepository) -> None:
    claimed = sessions.claim(sessions.create_session(USER, "goals"), "req-1", LATER)
    sessions.release(claimed)
    released = stored(sessions, claimed)
    sessions.release(claimed)
    assert stored(sessions, claimed) == released
    assert (released.version, released.answering) == (2, None)


def test_a_retried_create_returns_the_same_session(
    sessions: CreatorSessionRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session id is new each time, so the retry is forced: both calls make the same id and stamp."""
    module = sys.modules[type(sessions).__module__]
    monkeypatch.setattr(module, "new_id", lambda: "session-1")
    monkeypatch.setattr(module, "now_iso", lambda: "2026-01-01T00:00:00.000Z")
    created = sessions.create_session(USER, "goals")
    assert sessions.create_session(USER, "goals") == created == stored(sessions, created)


def test_a_retry_is_told_from_a_lost_claim(sessions: CreatorSessionRepository, clock: Clock) -> None:
    """Only a write that was applied is answered as done: a claim taken over meanwhile is still a conflict."""
    session = sessions.create_session(USER, "goals")
    first = sessions.claim(session, "req-1", int(NOW) + 1)
    clock.now = NOW + 2
    second = sessions.claim(first, "req-2", LATER)
    with pytest.raises(WriteConflict, match="changed; reload it"):
        sessions.claim(session, "req-1", int(NOW) + 1)
    with pytest.raises(WriteConflict, match="changed; reload it"):
        sessions.commit(first, step(), "experience", "BEGINNER", is_complete=False)
    assert stored(sessions, first) == second


# --- a coach build that failed -------------------------------------------------------------------


def test_a_failed_build_is_marked_once_and_never_over_a_built_coach(sessions: CreatorSessionRepository) -> None:
    """Lambda may deliver a failure twice, or after a late attempt built the coach: one mark, one True."""
    building = sessions.create_session(USER, "goals")
    assert sessions.mark_coach_failed(USER, building.session_id) is True
    assert stored(sessions, building).coach_config_status == "failed"
    assert sessions.mark_coach_failed(USER, building.session_id) is False  # delivered again
    assert stored(sessions, building).coach_config_status == "failed"

    built = sessions.create_session(USER, "goals")
    sessions.attach_coach(USER, built.session_id, "coach-1")
    assert sessions.mark_coach_failed(USER, built.session_id) is False
    assert (stored(sessions, built).coach_id, stored(sessions, built).coach_config_status) == ("coach-1", "ready")

    assert sessions.mark_coach_failed(USER, "gone") is False
    assert sessions.get_session(USER, "gone") is None


def test_a_retried_mark_is_answered_as_the_mark_it_was(
    sessions: CreatorSessionRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK sends the applied write again, same arguments (forced: both calls make the same mark): that call
    still marked the session; a later delivery (a mark of its own) did not."""
    session = sessions.create_session(USER, "goals")
    module = sys.modules[type(sessions).__module__]
    monkeypatch.setattr(module, "new_id", lambda: "mark-1")
    assert sessions.mark_coach_failed(USER, session.session_id) is True
    assert sessions.mark_coach_failed(USER, session.session_id) is True
    monkeypatch.setattr(module, "new_id", lambda: "mark-2")
    assert sessions.mark_coach_failed(USER, session.session_id) is False
    assert stored(sessions, session).coach_config_status == "failed"
