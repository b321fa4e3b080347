"""The coach an interview builds: one Converse call turning the answers into a coach configuration.

Runs in its own function, invoked asynchronously after the final answer, under Lambda's retries, so
it must be idempotent: the coach id derives from the session id and the coach is created with a
conditional write, so a retry (or a duplicate invocation) finds the coach and only re-attaches it.
A model failure raises, so the job is retried; an answer that is not the JSON asked for gets a plain
coach built from the answers themselves, since asking again would not reliably fix it and the user
is waiting for a coach to talk to.

When every attempt has failed, Lambda hands the job to `mark-coach-build-failed`, which calls
`mark_build_failed`: the session shows `failed` instead of generating forever, and the failure is
counted once (`CoachBuildsFailed`), however often the news arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from shared.clock import now_iso
from shared.coach_creator.build_job import BuildCoachJob
from shared.coach_creator.history import answers
from shared.json_text import first_json_object
from shared.models import Message, ModelDependencies, ModelRequest, SystemPrompt
from shared.store.ports import CoachRepository, CreatorSessionRepository
from shared.store.records import Coach, CreatorSession, QuestionAnswer

logger = logging.getLogger(__name__)

NO_INJURIES = "none reported"
MAX_NAME_CHARS = 60
MAX_FIELD_CHARS = 2_000
MAX_ANSWER_CHARS = 3_000  # per answer in the prompt: enough for a coach, bounded input tokens
DEFAULT_NAME = "Your Coach"
BUILD_FAILED_METRIC = "CoachBuildsFailed"  # alarmed on: a user was left without the coach they built

BUILDER_PROMPT = f"""You design a personal fitness coach from an intake interview with an athlete.
Answer with a single JSON object and nothing else:
{{"name": str, "personality": str, "methodology": str, "programFocus": str,
 "safetyNotes": str, "coachingStyle": str}}
- name: a short, friendly coach name (at most {MAX_NAME_CHARS} characters), not the athlete's name.
- personality: how the coach talks and motivates, fitted to what the athlete asked for.
- methodology: the training approach (progression, structure, intensity) suited to their level.
- programFocus: the goals, schedule and equipment the program is built around.
- safetyNotes: every injury, pain or medical limitation the athlete reported and how to train \
around it; exactly "{NO_INJURIES}" if they reported none.
- coachingStyle: feedback, check-ins and accountability, as the athlete prefers.
Each field is plain prose of one to four sentences. Use only what the interview says."""


@dataclass(frozen=True, kw_only=True)
class CoachBuilderDependencies(ModelDependencies):
    """The ports the builder talks to; tests swap adapters, never monkeypatch."""

    sessions: CreatorSessionRepository
    coaches: CoachRepository


@dataclass(frozen=True, kw_only=True)
class BuildFailureDependencies:
    """What marking a build failed needs: the sessions and where its metric goes."""

    sessions: CreatorSessionRepository
    observe: Callable[[str, float], None] = field(default=lambda name, value: None)


def mark_build_failed(job: BuildCoachJob, deps: BuildFailureDependencies) -> bool:
    """Lambda gave up on building `job`'s coach: its session shows `failed`, and the failure is counted.

    Idempotent: a failure delivered again, or one for a session whose coach exists after all (a late
    attempt that won), changes nothing and counts nothing. False then, True for the call that marked it.
    """
    marked = deps.sessions.mark_coach_failed(job.user_id, job.session_id)
    if marked:
        logger.error("building the coach failed on every attempt; the session is marked failed")
        deps.observe(BUILD_FAILED_METRIC, 1)
    else:
        logger.info("coach build failure already marked, or the coach exists: nothing to mark")
    return marked


class CoachDraft(BaseModel):
    """The model's answer, forgiving: missing fields default, lists are joined, everything is bounded."""

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)

    name: str = ""
    personality: str = ""
    methodology: str = ""
    program_focus: str = ""
    safety_notes: str = ""
    coaching_style: str = ""

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list | tuple):
            return " ".join(str(item).strip() for item in value if item is not None and str(item).strip())
        if isinstance(value, dict):
            return " ".join(f"{key}: {item}" for key, item in value.items())
        return str(value)

    @field_validator("*")
    @classmethod
    def _bounded(cls, value: str) -> str:
        return " ".join(value.split())[:MAX_FIELD_CHARS]


def coach_id_for(session_id: str) -> str:
    """One session, one coach: every retry of the job arrives at the same id."""
    return f"coach-{session_id}"


def coach_builder_request(model_id: str, session: CreatorSession) -> ModelRequest:
    return ModelRequest(
        model_id=model_id,
        messages=(Message(role="user", text=_interview(session)),),
        system=SystemPrompt(static=BUILDER_PROMPT, cache=False),
        max_tokens=1_500,
        temperature=0.3,
    )


def parse_coach_draft(text: str) -> CoachDraft | None:
    """The draft in the model's answer, or None when there is no usable JSON object in it."""
    found = first_json_object(text)
    if found is None:
        logger.warning("coach builder answered without JSON")
        return None
    try:
        draft = CoachDraft.model_validate(found)
    except ValidationError as exc:
        logger.warning("coach builder JSON did not fit the schema (%d errors)", exc.error_count())
        return None
    if not any((draft.personality, draft.methodology, draft.program_focus, draft.coaching_style)):
        logger.warning("coach builder JSON held none of the coach's fields")
        return None
    return draft


def build_coach(job: BuildCoachJob, deps: CoachBuilderDependencies) -> Coach | None:
    """Builds and attaches the session's coach; None when there is nothing (or nothing yet) to build."""
    session = deps.sessions.get_session(job.user_id, job.session_id)
    if session is None:
        logger.info("coach creator session is gone; nothing to build")
        return None
    if not session.is_complete:
        logger.warning("coach creator session is not complete; nothing to build")
        return None
    coach_id = coach_id_for(session.session_id)
    existing = deps.coaches.get_coach(session.user_id, coach_id)
    if existing is None:
        coach = _new_coach(session, coach_id, deps)
        if deps.coaches.create_coach(coach):
            deps.observe("CoachesBuilt", 1)
            existing = coach
        else:  # a concurrent run created it first: theirs stands
            existing = deps.coaches.get_coach(session.user_id, coach_id) or coach
    else:
        logger.info("coach already built; attaching it")
    deps.sessions.attach_coach(session.user_id, session.session_id, coach_id)
    return existing


def default_coach(session: CreatorSession, coach_id: str) -> Coach:
    """A plain, safe coach from the answers alone, for when the model's answer is unusable."""
    goals = _answer_about(session, "goal")
    style = _answer_about(session, "coaching_style", "coaching style")
    return Coach(
        user_id=session.user_id,
        coach_id=coach_id,
        name=DEFAULT_NAME,
        personality="Encouraging, clear and practical; explains the why behind each session.",
        methodology=(
            "Gradual progression with consistent, manageable sessions, adjusted from the athlete's feedback; "
            f"suited to a {session.sophistication_level.lower()} athlete."
        ),
        program_focus=_clip(goals or "General fitness built around the athlete's schedule and equipment."),
        safety_notes=_safety_notes(session, ""),
        coaching_style=_clip(style or "Supportive check-ins with concrete, actionable feedback."),
        created_at=now_iso(),
        source_session_id=session.session_id,
    )


def _new_coach(session: CreatorSession, coach_id: str, deps: CoachBuilderDependencies) -> Coach:
    """One model call (a `ModelError` propagates: the job is retried); an unusable answer gets the default."""
    request = coach_builder_request(deps.model_settings.reply_model_id, session)
    draft = parse_coach_draft(deps.model.converse(request).text)
    if draft is None:
        logger.warning("coach builder answer unusable; building the default coach from the answers")
        deps.observe("CoachBuildDefaults", 1)
        return default_coach(session, coach_id)
    return Coach(
        user_id=session.user_id,
        coach_id=coach_id,
        name=draft.name[:MAX_NAME_CHARS].strip() or DEFAULT_NAME,
        personality=draft.personality,
        methodology=draft.methodology,
        program_focus=draft.program_focus,
        safety_notes=_safety_notes(session, draft.safety_notes),
        coaching_style=draft.coaching_style,
        created_at=now_iso(),
        source_session_id=session.session_id,
    )


def _interview(session: CreatorSession) -> str:
    parts = [f"Athlete's training sophistication: {session.sophistication_level}", "", "Interview:"]
    for qa in answers(session):
        parts += [f"Q: {qa.question}", f"A: {qa.answer.strip()[:MAX_ANSWER_CHARS]}", ""]
    return "\n".join(parts).strip()


def _injury_answers(session: CreatorSession) -> list[QuestionAnswer]:
    return [qa for qa in answers(session) if "injur" in qa.question_id.lower() or "injur" in qa.question.lower()]


def _safety_notes(session: CreatorSession, drafted: str) -> str:
    """The model's notes; when it gave none, the athlete's own words, so an injury is never dropped."""
    if drafted.strip():
        return _clip(drafted)
    reported = " ".join(qa.answer.strip() for qa in _injury_answers(session) if qa.answer.strip())
    return _clip(f"Reported by the athlete: {reported}") if reported else NO_INJURIES


def _answer_about(session: CreatorSession, *needles: str) -> str:
    for qa in answers(session):
        if any(needle in qa.question_id.lower() for needle in needles) and qa.answer.strip():
            return qa.answer.strip()
    return ""


def _clip(text: str) -> str:
    return " ".join(text.split())[:MAX_FIELD_CHARS]
