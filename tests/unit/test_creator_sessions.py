"""Creator sessions against moto's DynamoDB: claims, commits, races and the lost-update guarantee."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shared.errors import Conflict, NotFound
from shared.http.errors import Problem
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.records import CreatorSession, QuestionAnswer

USER = "user-1"


def later() -> int:
    """A claim's expiry five minutes from now (from the test's own start: the suite may run for longer)."""
    return int(time.time()) + 300


@pytest.fixture
def repo(table: Any) -> DynamoCreatorSessionRepository:
    return DynamoCreatorSessionRepository(table)


def qa(question_id: str = "goals", answer: str = "Run a marathon") -> QuestionAnswer:
    return QuestionAnswer(
        question_id=question_id,
        question="What are your goals?",
        answer=answer,
        ai_response="Great goal.",
        answered_at="2026-01-01T00:00:00.000Z",
    )


def test_create_then_get(repo: DynamoCreatorSessionRepository, table: Any) -> None:
    created = repo.create_session(USER, "goals")
    assert (created.version, created.current_question_id, created.is_complete) == (0, "goals", False)
    assert (created.sophistication_level, created.coach_config_status, created.history) == ("BEGINNER", "none", [])
    assert len(created.session_id) == 32
    assert repo.get_session(USER, created.session_id) == created
    assert repo.get_session("user-2", created.session_id) is None
    assert repo.get_session(USER, "missing") is None
    item = table.get_item(Key={"pk": f"USER#{USER}", "sk": f"CREATOR#{created.session_id}"})["Item"]
    assert item["type"] == "creator-session"


def test_claim_then_commit_records_the_answer(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    until = later()
    claimed = repo.claim(session, "req-1", until)
    assert (claimed.version, claimed.answering, claimed.answering_until) == (1, "req-1", until)

    committed = repo.commit(claimed, qa(), "experience", "INTERMEDIATE", is_complete=False)
    assert committed.version == 2
    assert (committed.answering, committed.answering_until) == (None, None)
    assert committed.history == [qa()]
    assert (committed.current_question_id, committed.sophistication_level) == ("experience", "INTERMEDIATE")
    assert (committed.is_complete, committed.coach_config_status) == (False, "none")
    assert repo.get_session(USER, session.session_id) == committed

    again = repo.commit(repo.claim(committed, "req-2", later()), qa("experience", "5 years"), None, "ADVANCED", True)
    assert [entry.answer for entry in again.history] == ["Run a marathon", "5 years"]
    assert (again.is_complete, again.coach_config_status, again.current_question_id) == (True, "generating", None)
    assert again.history[0].api()["aiResponse"] == "Great goal."


def test_ten_concurrent_claims_exactly_one_wins(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    barrier = threading.Barrier(10)
    won: list[CreatorSession] = []
    lost: list[Conflict] = []

    def answer(index: int) -> None:
        barrier.wait()
        try:
            won.append(repo.claim(session, f"req-{index}", later()))
        except Conflict as exc:
            lost.append(exc)

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (len(won), len(lost)) == (1, 9)
    assert {Problem.of(exc).status for exc in lost} == {409}
    repo.commit(won[0], qa(), "experience", "BEGINNER", is_complete=False)
    stored = repo.get_session(USER, session.session_id)
    assert stored is not None
    assert (len(stored.history), stored.version, stored.answering) == (1, 2, None)


def test_concurrent_answers_never_lose_an_update(repo: DynamoCreatorSessionRepository) -> None:
    """Each answer reloads and retries on 409: all of them end up recorded, each exactly once."""
    session = repo.create_session(USER, "q0")

    def answer(index: int) -> None:
        while True:
            current = repo.get_session(USER, session.session_id)
            assert current is not None
            try:
                claimed = repo.claim(current, f"req-{index}", later())
                repo.commit(claimed, qa(f"q{index}", f"answer {index}"), None, "BEGINNER", is_complete=False)
                return
            except Conflict:
                time.sleep(0.001)

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = repo.get_session(USER, session.session_id)
    assert stored is not None
    assert sorted(entry.answer for entry in stored.history) == [f"answer {i}" for i in range(5)]
    assert stored.version == 10


def test_a_stale_read_cannot_claim(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    repo.release(repo.claim(session, "req-1", later()))
    with pytest.raises(Conflict, match="changed; reload it"):
        repo.claim(session, "req-2", later())


def test_a_live_claim_refuses_another_answer(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    claimed = repo.claim(session, "req-1", later())
    with pytest.raises(Conflict, match="already being answered"):
        repo.claim(claimed, "req-2", later())


def test_commit_with_a_stale_claim_is_a_conflict_and_writes_nothing(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    first = repo.claim(session, "req-1", int(time.time()) - 1)  # already expired
    second = repo.claim(first, "req-2", later())  # taken over
    with pytest.raises(Conflict, match="changed; reload it"):
        repo.commit(first, qa(answer="stale"), "experience", "BEGINNER", is_complete=False)
    repo.release(first)  # a lost claim is left alone
    assert repo.get_session(USER, session.session_id) == second

    committed = repo.commit(second, qa(answer="fresh"), "experience", "BEGINNER", is_complete=False)
    assert [entry.answer for entry in committed.history] == ["fresh"]


def test_an_expired_claim_can_be_taken_over(repo: DynamoCreatorSessionRepository) -> None:
    now = [1_000.0]
    clocked = DynamoCreatorSessionRepository(repo.table, clock=lambda: now[0])
    session = clocked.create_session(USER, "goals")
    claimed = clocked.claim(session, "req-1", 1_010)
    now[0] = 1_010.0
    with pytest.raises(Conflict, match="already being answered"):
        clocked.claim(claimed, "req-2", 1_100)  # until is inclusive
    now[0] = 1_011.0
    taken = clocked.claim(claimed, "req-2", 1_100)
    assert (taken.answering, taken.version) == ("req-2", 2)


def test_a_complete_session_refuses_claims(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    done = repo.commit(repo.claim(session, "req-1", later()), qa(), None, "BEGINNER", is_complete=True)
    with pytest.raises(Conflict, match="already complete") as refused:
        repo.claim(done, "req-2", later())
    assert Problem.of(refused.value).status == 409
    with pytest.raises(Conflict, match="already complete"):
        repo.claim(session, "req-3", later())  # a stale read that still says "not complete"


def test_release_gives_the_session_back_unchanged(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    claimed = repo.claim(session, "req-1", later())
    repo.release(claimed)
    released = repo.get_session(USER, session.session_id)
    assert released is not None
    assert (released.version, released.answering, released.answering_until, released.history) == (2, None, None, [])
    assert repo.claim(released, "req-2", later()).answering == "req-2"
    repo.release(released)  # not a claim: nothing to do


def test_commit_needs_a_claim(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    with pytest.raises(ValueError, match="claim"):
        repo.commit(session, qa(), None, "BEGINNER", is_complete=True)


def test_claiming_a_deleted_session_is_not_found(repo: DynamoCreatorSessionRepository, table: Any) -> None:
    session = repo.create_session(USER, "goals")
    table.delete_item(Key={"pk": f"USER#{USER}", "sk": f"CREATOR#{session.session_id}"})
    with pytest.raises(NotFound):
        repo.claim(session, "req-1", later())


def test_attach_coach_and_mark_failed(repo: DynamoCreatorSessionRepository) -> None:
    session = repo.create_session(USER, "goals")
    repo.mark_coach_failed(USER, session.session_id)
    failed = repo.get_session(USER, session.session_id)
    assert failed is not None and failed.coach_config_status == "failed"

    repo.attach_coach(USER, session.session_id, "coach-x")
    repo.attach_coach(USER, session.session_id, "coach-x")
    repo.mark_coach_failed(USER, session.session_id)  # never downgrades a ready coach
    ready = repo.get_session(USER, session.session_id)
    assert ready is not None
    assert (ready.coach_id, ready.coach_config_status, ready.version) == ("coach-x", "ready", 0)

    repo.mark_coach_failed(USER, "missing")  # nothing to mark, no phantom item
    assert repo.get_session(USER, "missing") is None
    with pytest.raises(NotFound):
        repo.attach_coach(USER, "missing", "coach-x")


def test_fifteen_maximal_answers_fit_in_one_item(repo: DynamoCreatorSessionRepository) -> None:
    """Replies kept at 2,000 characters: moto counts the old list and the new one against 400 KB."""
    session = repo.create_session(USER, "q0")
    for index in range(15):
        claimed = repo.claim(session, f"req-{index}", later())
        entry = qa(f"q{index}", "x" * 10_000).model_copy(update={"ai_response": "y" * 2_000})
        session = repo.commit(claimed, entry, f"q{index + 1}", "ADVANCED", is_complete=index == 14)
    assert len(session.history) == 15
    assert session.is_complete
