"""The interview's questions, kept as data in `questions.json` so they can change without code.

The file is loaded and validated once at import: a malformed question set fails the cold start
loudly instead of producing a broken interview halfway through a session.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Level = Literal["BEGINNER", "INTERMEDIATE", "ADVANCED"]
LEVELS: tuple[Level, ...] = ("BEGINNER", "INTERMEDIATE", "ADVANCED")


def level_rank(level: Level) -> int:
    """0 for BEGINNER up to 2 for ADVANCED, so levels can be compared."""
    return LEVELS.index(level)


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    topic: str
    min_level: Level = "BEGINNER"


class _QuestionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    min_level: Level = "BEGINNER"


class _QuestionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    questions: list[_QuestionSpec] = Field(min_length=12, max_length=15)

    @field_validator("questions")
    @classmethod
    def _check(cls, questions: list[_QuestionSpec]) -> list[_QuestionSpec]:
        ids = [q.id for q in questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids must be unique")
        # Every level must start with the same question, and a session begins before any level is known.
        if questions[0].min_level != "BEGINNER":
            raise ValueError("the first question must be asked at every level")
        return questions


def _load() -> tuple[Question, ...]:
    raw = resources.files(__package__).joinpath("questions.json").read_text(encoding="utf-8")
    spec = _QuestionSet.model_validate_json(raw)
    return tuple(Question(id=q.id, text=q.text, topic=q.topic, min_level=q.min_level) for q in spec.questions)


QUESTIONS: tuple[Question, ...] = _load()
_BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}


def question_by_id(question_id: str) -> Question:
    """The question with that id; KeyError for an unknown id (a session from an older question set)."""
    return _BY_ID[question_id]


def applicable_questions(level: Level) -> list[Question]:
    """The questions asked at `level`, in interview order."""
    rank = level_rank(level)
    return [q for q in QUESTIONS if level_rank(q.min_level) <= rank]


def next_question(answered_ids: Collection[str], level: Level) -> Question | None:
    """The first question for `level` not answered yet; None when the interview is over."""
    answered = set(answered_ids)
    return next((q for q in applicable_questions(level) if q.id not in answered), None)


@dataclass(frozen=True)
class Progress:
    questions_completed: int
    total_questions: int
    percentage: int
    sophistication_level: Level

    def contract(self) -> dict:
        """The `progressDetails` object of CONTRACT.md."""
        return {
            "questionsCompleted": self.questions_completed,
            "totalQuestions": self.total_questions,
            "percentage": self.percentage,
            "sophisticationLevel": self.sophistication_level,
        }


def progress(answered_ids: Collection[str], level: Level) -> Progress:
    """How far the interview is at `level`.

    Questions answered before the level dropped still count, in both the completed and the total,
    so the numbers never go backwards on the user. Unknown ids are ignored. The percentage reaches
    100 only when no question is left (rounding alone never claims the interview is done).
    """
    answered = {qid for qid in set(answered_ids) if qid in _BY_ID}
    applicable = {q.id for q in applicable_questions(level)}
    total = len(applicable | answered)
    completed = len(answered)
    left = len(applicable - answered)
    percentage = 100 if left == 0 else min(99, round(100 * completed / total))
    return Progress(
        questions_completed=completed, total_questions=total, percentage=percentage, sophistication_level=level
    )
