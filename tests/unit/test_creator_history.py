"""Reading a creator session's history: answers count, failed attempts are kept but never counted.

Pure functions over records; the coach build reads the same `answers()`, so a failed attempt never
reaches the coach either.
"""

from __future__ import annotations

from shared.coach_creator.coach_builder import coach_builder_request, default_coach
from shared.coach_creator.history import answered_ids, answers, result_of, step_with_id
from shared.coach_creator.questions import question_by_id
from shared.store.records import CreatorSession, MessageStatus, QuestionAnswer


def step(
    question_id: str, words: str, status: MessageStatus = "complete", message_id: str | None = None
) -> QuestionAnswer:
    return QuestionAnswer(
        question_id=question_id,
        question=question_by_id(question_id).text,
        answer=words,
        ai_response=f"reply to {words}",
        status=status,
        client_message_id=message_id,
    )


GOALS = step("goals", "run a marathon", message_id="m-1")
FAILED = step("experience", "ten years of ultras", "interrupted", message_id="m-2")
EXPERIENCE = step("experience", "two years", message_id="m-3")
TIMED_OUT = step("current_activity", "my left knee hurts", "timeout", message_id="m-4")


def session(*history: QuestionAnswer, current: str | None, complete: bool = False) -> CreatorSession:
    return CreatorSession(
        user_id="user-1",
        session_id="s-1",
        history=list(history),
        current_question_id=current,
        is_complete=complete,
        sophistication_level="INTERMEDIATE",
    )


def test_only_answers_count() -> None:
    interview = session(GOALS, FAILED, EXPERIENCE, TIMED_OUT, current="current_activity")
    assert answers(interview) == [GOALS, EXPERIENCE]
    assert answered_ids(interview) == {"goals", "experience"}


def test_a_message_id_finds_its_answer_before_its_failed_attempts() -> None:
    retried = step("experience", "two years", message_id="m-2")
    interview = session(GOALS, FAILED, retried, TIMED_OUT, current="current_activity")
    assert step_with_id(interview, "m-2") == 2
    assert step_with_id(interview, "m-4") == 3
    assert step_with_id(interview, "m-1") == 0
    assert step_with_id(interview, "m-unknown") is None


def test_an_answer_result_is_what_followed_it() -> None:
    interview = session(GOALS, FAILED, EXPERIENCE, TIMED_OUT, current="current_activity")
    older = result_of(interview, 0)
    assert (older.answered, older.following, older.is_complete) == (
        frozenset({"goals"}),
        question_by_id("experience"),
        False,
    )
    latest = result_of(interview, 2)
    assert (latest.answered, latest.following, latest.level) == (
        frozenset({"goals", "experience"}),
        question_by_id("current_activity"),
        "INTERMEDIATE",
    )


def test_only_the_last_answer_of_a_complete_session_completed_it() -> None:
    done = session(GOALS, EXPERIENCE, current=None, complete=True)
    assert (result_of(done, 1).is_complete, result_of(done, 1).following) == (True, None)
    assert (result_of(done, 0).is_complete, result_of(done, 0).following) == (False, question_by_id("experience"))


def test_the_coach_is_built_from_answers_never_from_failed_attempts() -> None:
    injured_then_not = step("injuries", "my left knee hurts", "interrupted")
    interview = session(GOALS, injured_then_not, step("injuries", "no injuries"), current=None, complete=True)

    prompt = coach_builder_request("builder", interview).messages[0].text
    assert "no injuries" in prompt and "knee" not in prompt
    assert "knee" not in default_coach(interview, "coach-1").safety_notes
