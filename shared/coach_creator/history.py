"""A session's history read as the interview: which steps count, and what a recorded answer said.

The history keeps the steps in the order they happened. An answer (status `complete`) counts: it
closed its question and opened the next. A failed attempt (`interrupted` or `timeout`: the reply
broke off after some text, ran out of time, or the client left while it streamed) is kept with what
the user said and the part of the reply they were shown, but counts for nothing: its question stayed
open, and the answer recorded after it at the same question supersedes it. Progress, the prompts and
the coach build read `answers()` only.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.coach_creator.questions import Level, Question, question_by_id
from shared.store.records import CreatorSession, QuestionAnswer


def is_answer(step: QuestionAnswer) -> bool:
    return step.status == "complete"


def answers(session: CreatorSession) -> list[QuestionAnswer]:
    """The steps that count, oldest first: at most one per question."""
    return [step for step in session.history if is_answer(step)]


def answered_ids(session: CreatorSession) -> set[str]:
    return {step.question_id for step in answers(session)}


def step_with_id(session: CreatorSession, client_message_id: str) -> int | None:
    """Where the step sent with this `clientMessageId` is: its answer if one was recorded, else its
    last failed attempt; None if the id was never recorded."""
    found = [index for index, step in enumerate(session.history) if step.client_message_id == client_message_id]
    answered = [index for index in found if is_answer(session.history[index])]
    return (answered or found or [None])[-1]


@dataclass(frozen=True)
class AnswerResult:
    """The interview right after one answer was recorded: what that answer's `complete` said."""

    answered: frozenset[str]
    following: Question | None
    is_complete: bool
    level: Level


def result_of(session: CreatorSession, index: int) -> AnswerResult:
    """What came of the answer at `session.history[index]`.

    The question opened after it is the one the next step was about (or, after the latest answer,
    the session's open question), and only the last answer can have completed the session. The
    level is the session's: exact for the latest answer (what a lost response is retried for, and
    failed attempts never move the level), the current one for an older answer, since the history
    does not keep the level each answer left.
    """
    later = session.history[index + 1 :]
    answered = frozenset(step.question_id for step in session.history[: index + 1] if is_answer(step))
    following_id = later[0].question_id if later else session.current_question_id
    return AnswerResult(
        answered=answered,
        following=question_by_id(following_id) if following_id else None,
        is_complete=session.is_complete and not any(is_answer(step) for step in later),
        level=session.sophistication_level,
    )
